"""Texture files: colour as PNG (8 or 16 bits per channel) or JPEG, material map sets
(NAME_color, NAME_height 16-bit, NAME_normal, NAME_roughness, NAME_ao), and batches of
variations (one folder, one set per seed, and a contact sheet). Every file is written atomically
and carries the settings that made it (PNG text chunks; JPEG: a comment)."""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin

from .errors import ConfigError
from .io import atomic_write
from .maps import MapSettings, make_maps

FORMATS = ("png8", "png16", "jpeg")
MAX_VARIATIONS = 64


def check_format(fmt: str) -> str:
    fmt = str(fmt).lower().replace("-", "").replace(" ", "").replace("bit", "")
    fmt = {"png": "png8", "jpg": "jpeg"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ConfigError(f"The file format is png8, png16 or jpeg, not {fmt!r}.")
    return fmt


def to8(img: np.ndarray) -> np.ndarray:
    """A 16-bit image as 8 bits (the same rounding as the generator's 8-bit output)."""
    return img if img.dtype == np.uint8 else ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _png_rgb16(path: str, img: np.ndarray, meta: dict[str, str]) -> None:
    """A 16-bit RGB PNG (Pillow writes 16 bits for grey only), compressed row block by row block."""
    h, w = img.shape[:2]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)))
        for k, v in meta.items():
            f.write(chunk(b"tEXt", str(k).encode("latin-1", "replace")[:79] + b"\0" +
                          str(v).encode("latin-1", "replace")))
        z = zlib.compressobj(6)
        for y0 in range(0, h, 256):
            rows = np.ascontiguousarray(img[y0:y0 + 256].astype(">u2").reshape(-1, w * 3))
            raw = np.concatenate([np.zeros((len(rows), 1), np.uint8), rows.view(np.uint8)], 1)
            f.write(chunk(b"IDAT", z.compress(raw.tobytes())))
        f.write(chunk(b"IDAT", z.flush()) + chunk(b"IEND", b""))


def save_image(path: str | os.PathLike, img: np.ndarray, meta: dict[str, str], fmt: str = "png8") -> Path:
    """Write a colour (H, W, 3) or grey (H, W) image: png8, png16 (uint16 kept, uint8 widened) or
    jpeg (quality 95); the suffix follows the format."""
    fmt = check_format(fmt)
    path = Path(path).with_suffix(".jpg" if fmt == "jpeg" else ".png")
    meta = {k: str(v) for k, v in meta.items()}
    if fmt == "png16" or img.dtype == np.uint16:
        img16 = img if img.dtype == np.uint16 else img.astype(np.uint16) * 257
        if img16.ndim == 2:
            info = PngImagePlugin.PngInfo()
            for k, v in meta.items():
                info.add_text(k, v)
            atomic_write(path, lambda p: Image.fromarray(img16).save(p, format="PNG", pnginfo=info))
        else:
            atomic_write(path, lambda p: _png_rgb16(p, img16, meta))
    elif fmt == "jpeg":
        comment = json.dumps(meta).encode()
        atomic_write(path, lambda p: Image.fromarray(to8(img)).save(p, format="JPEG", quality=95, comment=comment))
    else:
        info = PngImagePlugin.PngInfo()
        for k, v in meta.items():
            info.add_text(k, v)
        atomic_write(path, lambda p: Image.fromarray(to8(img)).save(p, format="PNG", pnginfo=info))
    return path


def save_set(folder: str | os.PathLike, name: str, img: np.ndarray, meta: dict[str, str], maps: list[str],
             settings: MapSettings, fmt: str = "png8",
             on_progress: Callable[[float], None] | None = None) -> list[Path]:
    """NAME_color (in `fmt`) and, per map asked for, NAME_<map>.png (height 16-bit) in `folder`.
    Without maps the colour file is NAME.<ext> alone."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "format": check_format(fmt)}
    made = make_maps(to8(img), maps, settings, on_progress) if maps else {}
    out = [save_image(folder / (f"{name}_color" if made else name), img, meta, fmt)]
    meta = {**meta, **settings.meta()}
    for kind, m in made.items():
        out.append(save_image(folder / f"{name}_{kind}", m, {**meta, "map": kind}, "png16" if kind == "height" else "png8"))
    return out


def contact_sheet(images: list[np.ndarray], labels: list[str], cell: int = 256, cols: int = 4) -> np.ndarray:
    """Thumbnails in a grid, each with its label underneath."""
    from .texture import shrink

    rows = -(-len(images) // cols)
    lab = 18
    sheet = Image.new("RGB", (cols * (cell + 8) + 8, rows * (cell + lab + 8) + 8), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    for i, (im, text) in enumerate(zip(images, labels)):
        x, y = 8 + (i % cols) * (cell + 8), 8 + (i // cols) * (cell + lab + 8)
        t = Image.fromarray(shrink(to8(im), cell))
        sheet.paste(t, (x + (cell - t.width) // 2, y + (cell - t.height) // 2))
        draw.text((x + 2, y + cell + 3), text, fill=(20, 20, 20))
    return np.asarray(sheet)


def check_count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, float)) or n != int(n) or not 1 <= n <= MAX_VARIATIONS:
        raise ConfigError(f"Variations must be a whole number between 1 and {MAX_VARIATIONS}, got {n}.")
    return int(n)


def variations(G, folder: str | os.PathLike, name: str, first_seed: int, count: int, paint_args: dict,
               maps: list[str], settings: MapSettings, fmt: str = "png8", extra_meta: dict | None = None,
               on_progress: Callable[[float], None] | None = None) -> tuple[Path, list[Path]]:
    """`count` textures with seeds first_seed, first_seed + 1, ... (all other settings alike), each
    saved as a set in `folder`, plus NAME_sheet.png (a contact sheet). Returns (sheet, files)."""
    from .texture import paint, shrink

    count = check_count(count)
    files, thumbs, labels = [], [], []
    for i in range(count):
        seed = int(first_seed) + i
        step = (lambda f, i=i: on_progress((i + 0.8 * f) / count)) if on_progress else None
        img, meta = paint(G, seed=seed, on_progress=step, precision="auto", **paint_args)
        files += save_set(folder, f"{name}_seed{seed}", img, {**meta, **(extra_meta or {})}, maps, settings, fmt)
        thumbs.append(shrink(to8(img), 256))  # only a thumbnail is kept: memory stays one texture
        labels.append(f"seed {seed}")
        if on_progress:
            on_progress((i + 1) / count)
    sheet = save_image(Path(folder) / f"{name}_sheet", contact_sheet(thumbs, labels),
                       {"software": "GAN Studio", "seeds": f"{first_seed}..{int(first_seed) + count - 1}"})
    return sheet, files
