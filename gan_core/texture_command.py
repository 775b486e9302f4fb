"""The `texture` command's options and work: one texture (with its material maps) or a folder of
variations, with the same settings and checks as the studio's Texture tab."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import options
from .errors import StudioError


def add_arguments(tx: argparse.ArgumentParser) -> None:
    tx.add_argument("--tileable", action="store_true",
                    help="seamless tile (size rounded up to a multiple of 2**depth, 32 by default)")
    tx.add_argument("--seed", type=options.arg("seed"), default=0)
    tx.add_argument("--source", help="style: a source image (0-based) of a fused model, or random:SEED "
                                     "(a random style; default: random from --seed)")
    tx.add_argument("--mask", help="black-and-white picture: black = the first --brush, white = the second")
    tx.add_argument("--brush", action="append", metavar="STYLE",
                    help="with --mask: a brush's style, SOURCE or random:SEED (twice; default 0 and 1)")
    tx.add_argument("--feather", type=options.arg("feather"), help="soft edges of --mask regions in px")
    tx.add_argument("--morph", metavar="A:B", help="go from style A to style B across the canvas, e.g. 0:1 "
                                                   "(sources) or 0:random:7")
    tx.add_argument("--morph-direction", choices=options.MORPH_DIRECTIONS, default="horizontal")
    tx.add_argument("--maps", default="", help="material maps too: height,normal,roughness,ao or all "
                                               "(written as OUT_color, OUT_height (16-bit), ...)")
    tx.add_argument("--map-blur", type=float, default=1.0, help="height blur in px (default %(default)s)")
    tx.add_argument("--map-contrast", type=float, default=1.0, help="height contrast (default %(default)s)")
    tx.add_argument("--map-invert", action="store_true", help="dark is high in the height map (e.g. bright mortar "
                                                              "that lies deep)")
    tx.add_argument("--map-strength", type=float, default=1.0, help="normal map strength (default %(default)s)")
    tx.add_argument("--ao-radius", type=float, default=8.0, help="ambient occlusion radius in px (default %(default)s)")
    tx.add_argument("--format", default="png8", help="png8, png16 or jpeg (default %(default)s)")
    tx.add_argument("--variations", type=options.arg("variations"), default=1,
                    help="N textures, seeds --seed ... --seed+N-1, into the folder OUT with a contact sheet")
    tx.add_argument("--out", required=True, help="file to write (with --variations: a new folder)")


def _style(spec: str) -> tuple[int | None, int | None]:
    """A style on the command line: SOURCE (an index) or random:SEED -> (source, style seed)."""
    text = spec.strip().lower()
    try:
        if text.startswith("random"):
            _, _, seed = text.partition(":")
            return None, (int(seed) if seed else None)
        return int(text), None
    except ValueError:
        raise StudioError(f"bad style {spec!r}; write a source number (0, 1, ...) or random:SEED") from None


def run(a) -> int:
    """The texture command: one texture (and its maps), or a folder of variations."""
    import numpy as np

    from . import checkpoint, cli_explore, maps, texture, texture_files
    from .metrics import seam_ratio
    G, cfg = checkpoint.load_generator(cli_explore.resolve(a.run, a.workspace))
    if cfg.variant != "sgan":
        raise StudioError(f"{a.run} is a conditional model; use the sample command.")
    fmt = texture_files.check_format(a.format)
    wanted = maps.parse_maps(a.maps)
    settings = maps.MapSettings(a.map_blur, a.map_contrast, a.map_strength, a.ao_radius, a.tileable,
                                a.map_invert).check()
    if a.morph:
        ends = a.morph.replace("random:", "random=").split(":")
        if len(ends) != 2:
            raise StudioError(f"bad --morph {a.morph!r}; write A:B, e.g. 0:1 or 0:random:7")
        styles_, morph, style_map = [_style(e.replace("=", ":")) for e in ends], (1, 2), None
    elif a.mask:
        from PIL import Image
        with Image.open(a.mask) as im:
            style_map = texture.style_map_from_mask(np.asarray(im.convert("L")))
        styles_, morph = [_style(b) for b in (a.brush or ["0", "1"])], None
    else:
        styles_, morph, style_map = [_style(a.source) if a.source is not None else (None, None)], None, None
    req = options.texture_request(a.width, a.height, a.seed, a.tileable, [s[0] for s in styles_],
                                  [s[1] for s in styles_], style_map, a.feather, morph, a.morph_direction)
    out = Path(a.out)
    meta = {"model": str(a.run)}
    from tqdm import tqdm
    with tqdm(total=100, unit="%", desc="generating", leave=False) as bar:
        def tick(f: float) -> None:
            bar.n = round(100 * f)
            bar.refresh()
        if a.variations > 1:
            if out.exists():
                raise StudioError(f"{out} exists; --variations writes a new folder.")
            sheet, files = texture_files.variations(G, out, out.name, req.pop("seed"), a.variations, req, wanted,
                                                    settings, fmt, meta, tick)
            print(f"wrote {len(files)} files and the contact sheet {sheet}")
            return 0
        img, pmeta = texture.paint(G, on_progress=tick, bits=16 if fmt == "png16" else 8, precision="auto", **req)
    h, w = img.shape[:2]
    if (w, h) != (a.width, a.height):
        print(f"note: tileable size rounded up to {w}x{h} (a multiple of {cfg.model.scale})")
    files = texture_files.save_set(out.parent, out.stem, img, {**pmeta, **meta}, wanted, settings, fmt)
    ratio = seam_ratio(texture_files.to8(img), cfg.model.scale)
    print(f"wrote {', '.join(str(f) for f in files)} ({w}x{h}); {seam_note(ratio, a.tileable, cfg.model.scale)}")
    return 0


def seam_note(ratio: float, tileable: bool, cell: int) -> str:
    """What the seam ratio of a written texture says, with what to do when its seam would show."""
    from .metrics import SEAM_VISIBLE
    note = (f"seam ratio {ratio:.3f} (edge steps / steps across the other {cell} px cell lines: "
            "about 1 or less = no visible seam)")
    if ratio >= SEAM_VISIBLE and not tileable:
        note += "; its edges do not meet when repeated: add --tileable for a seamless tile"
    return note
