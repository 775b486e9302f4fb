"""The Texture tab: a spatial model's textures of any size (to 8192 px), seamless tiles seen 3 x 3 at
real scale, styles painted (soft edges, imported masks) or morphed across the canvas, material
maps with a lit view, and exports that match the settings on screen."""
from __future__ import annotations

from functools import partial

import gradio as gr

from gan_core import options, texture, texture_files
from gan_core.errors import StudioError
from gan_core.maps import MAP_NAMES, MapSettings, lit_view, make_maps
from gan_core.metrics import SEAM_VISIBLE, seam_ratio_sampled
from gan_core.workspace import safe_filename

from . import texture_view as tv
from .common import Context, errors_as_messages, model_picker, wire_model_picker

# One brush colour per painted style; the first one is also what unpainted canvas means.
BRUSHES = (("#e4572e", "red"), ("#2e86ab", "blue"), ("#76b041", "green"), ("#f3c623", "yellow"))
RANDOM_STYLE = ("random style (seed)", -1)
SIZE_PRESETS = ("512", "1024", "2048", "4096", "8192")
FORMATS = (("PNG 8-bit", "png8"), ("PNG 16-bit", "png16"), ("JPEG", "jpeg"))
MODES = ("Paint", "Morph")


def open_model(ctx: Context, path):
    """Each brush's choice of source image (brush i starts on source i), its label, and a line
    about the model."""
    if not path:
        return [gr.update()] * (2 * len(BRUSHES)) + ["No model chosen."]
    m = ctx.ws.load_model(path, "sgan")
    choices = [RANDOM_STYLE] + [(f"{i}: {n}", i) for i, n in enumerate(m.source_names)]
    picks = [choices[1 + i] if 1 + i < len(choices) else RANDOM_STYLE for i in range(len(BRUSHES))]
    ups = [gr.update(choices=choices, value=v) for _, v in picks]
    labels = [tv.brush_label(i, c, n, lab) for i, ((c, n), (lab, _)) in enumerate(zip(BRUSHES, picks))]
    return ups + labels + [f"**{m.name}**: {len(m.source_names)} source texture(s) ({', '.join(m.source_names)}); "
                           f"sizes are rounded to multiples of {m.cfg.model.scale} px when tileable; "
                           f"checkpoint `{m.folder.name}`"]


def _request(width, height, seed, tileable, feather, mode, morph_from, morph_to, direction, canvas, brushes):
    style_map = None if mode == "Morph" else \
        texture.style_map_from_canvas(tv.painted(canvas), [c for c, _ in BRUSHES])
    morph = (morph_from, morph_to) if mode == "Morph" else None
    return options.texture_request(width, height, seed, tileable, list(brushes[0::2]), list(brushes[1::2]),
                                   style_map, feather, morph, direction or "horizontal")


def _make(ctx: Context, path, req: dict, bits: int, on_progress, owner=None):
    """The texture of a request and its settings (model and checkpoint added)."""
    m = ctx.ws.load_model(path, "sgan")  # after the settings: no model is loaded for a typo
    ctx.textures.start(owner)
    img, meta = texture.paint(m.G, on_progress=ctx.textures.watch(on_progress), bits=bits, precision="auto", **req)
    return img, {**meta, "model": m.name, "checkpoint": m.folder.name, "bits": str(bits)}


def _seam_text(ratio: float, tileable: bool, cell: int) -> str:
    if ratio < SEAM_VISIBLE:
        return (f"Seam check: **no visible seam** (steps across the wrap-around edge are {ratio:.2f}x "
                f"those across the model's other {cell} px cell lines inside).")
    hint = "" if tileable else " Tick *Tileable* for a seamless tile."
    return f"Seam check: **the seam shows** when repeated (steps across the edge are {ratio:.2f}x those inside).{hint}"


def _relief(img, blur, contrast, strength, invert, azimuth, elevation):
    """The lit view of the texture's centre at 1:1 (at most 512 px)."""
    _, crop = texture.views(img, crop=512)
    s = MapSettings(blur=float(blur), contrast=float(contrast), strength=float(strength), tileable=False,
                    invert=bool(invert))
    return lit_view(make_maps(crop, ["normal"], s)["normal"], float(azimuth), float(elevation), color=crop)


def generate(ctx: Context, model, width, height, seed, tileable, feather, mode, morph_from, morph_to,
             morph_direction, canvas, brush1_source, brush1_seed, brush2_source, brush2_seed, brush3_source,
             brush3_seed, brush4_source, brush4_seed, map_blur, map_contrast, map_strength, map_invert,
             light_azimuth, light_elevation, request: gr.Request = None, progress=gr.Progress()):
    """A texture from the settings: the real-scale viewer, the overview, the 1:1 crop, the lit
    relief, the style map over the texture, a line about size and seam, and the kept texture's
    token. A setting that cannot be used leaves the pictures as they were and says why."""
    brushes = (brush1_source, brush1_seed, brush2_source, brush2_seed, brush3_source, brush3_seed,
               brush4_source, brush4_seed)
    try:
        req = _request(width, height, seed, tileable, feather, mode, morph_from, morph_to, morph_direction,
                       canvas, brushes)
        progress(0, desc="Preparing")
        img, meta = _make(ctx, model, req, 8, lambda f: progress(0.9 * f, desc="Generating texture"),
                          getattr(request, "session_hash", None))
        progress(0.92, desc="Making previews")
        relief = _relief(img, map_blur, map_contrast, map_strength, map_invert, light_azimuth, light_elevation)
    except StudioError as e:
        gr.Warning(str(e))
        return *[gr.update()] * 5, f"**Not generated:** {e}", gr.update()
    token = ctx.textures.keep(img, meta, options.texture_key(model, req))
    cell = ctx.ws.load_model(model, "sgan").cfg.model.scale  # the lattice its textures are drawn on
    H, W = img.shape[:2]
    note = "" if f"{W}x{H}" == meta["requested_size"] else \
        f" (rounded up from {meta['requested_size']} so it tiles exactly)"
    info = (f"**{W} x {H} px**{note}, seed {meta['seed']}. {_seam_text(seam_ratio_sampled(img, cell=cell), req['tileable'], cell)} "
            "*Export* writes the full-size file.")
    overview, crop = texture.views(img)
    return tv.viewer_update(img), overview, crop, relief, tv.canvas_value(img, canvas), info, token


def relight(ctx: Context, token, map_blur, map_contrast, map_strength, map_invert, light_azimuth, light_elevation):
    """The lit relief again for new map settings or light (no new texture)."""
    kept = ctx.textures.take(token)
    if kept is None:
        return gr.update()
    return _relief(kept[0], map_blur, map_contrast, map_strength, map_invert, light_azimuth, light_elevation)


def export(ctx: Context, token, name, file_format, maps, variations, model, width, height, seed, tileable, feather,
           mode, morph_from, morph_to, morph_direction, canvas, brush1_source, brush1_seed, brush2_source,
           brush2_seed, brush3_source, brush3_seed, brush4_source, brush4_seed, map_blur, map_contrast,
           map_strength, map_invert=False, request: gr.Request = None, progress=gr.Progress()):
    """Export what the settings on screen make: the texture shown if they are unchanged, else a new
    one. With maps, a set NAME_color, NAME_height (16-bit), ...; with variations > 1, that many
    seeds from the seed on, in a folder with a contact sheet. Returns the download and a line."""
    brushes = (brush1_source, brush1_seed, brush2_source, brush2_seed, brush3_source, brush3_seed,
               brush4_source, brush4_seed)
    req = _request(width, height, seed, tileable, feather, mode, morph_from, morph_to, morph_direction, canvas,
                   brushes)
    fmt = texture_files.check_format(file_format or "png8")
    wanted = [m for m in MAP_NAMES if m in (maps or [])]
    s = MapSettings(blur=float(map_blur), contrast=float(map_contrast), strength=float(map_strength),
                    tileable=req["tileable"], invert=bool(map_invert)).check()
    n = options.value(variations if variations not in (None, "") else 1, "variations")
    bits = 16 if fmt == "png16" else 8
    owner = getattr(request, "session_hash", None)
    m = ctx.ws.load_model(model, "sgan")
    stem = name or m.name
    if n > 1:
        folder = ctx.ws.exports / ctx.ws.export_set_name(f"{stem}-variations")
        ctx.textures.start(owner)
        paint_args = {k: v for k, v in req.items() if k != "seed"} | {"bits": bits}
        sheet, files = texture_files.variations(
            m.G, folder, safe_filename(stem), req["seed"], n, paint_args, wanted, s, fmt,
            {"model": m.name, "checkpoint": m.folder.name, "bits": str(bits)},
            ctx.textures.watch(lambda f: progress(f, desc="Variations")))
        return (gr.update(value=str(sheet), visible=True, label=f"Download {sheet.name}"),
                f"Wrote {len(files)} files and a contact sheet to `{folder}`.")
    kept = None if bits == 16 else ctx.textures.take(token, options.texture_key(model, req))
    if kept is None:
        progress(0, desc="Generating texture (the settings changed)" if token else "Generating texture")
        kept = _make(ctx, model, req, bits, lambda f: progress(0.7 * f, desc="Generating texture"), owner)
    img, meta = kept
    H, W = img.shape[:2]
    progress(0.75, desc="Writing files")
    files = texture_files.save_set(ctx.ws.exports, ctx.ws.export_set_name(f"{stem}-{W}x{H}"), img, meta,
                                   wanted, s, fmt, on_progress=lambda f: progress(0.75 + 0.25 * f, desc="Maps"))
    names = ", ".join(f"`{f.name}`" for f in files)
    return gr.update(value=str(files[0]), visible=True, label=f"Download {files[0].name}"), f"Wrote {names}."


def export_or_notice(ctx: Context, token, name, file_format, maps, variations, model, width, height, seed, tileable,
                     feather, mode, morph_from, morph_to, morph_direction, canvas, brush1_source, brush1_seed,
                     brush2_source, brush2_seed, brush3_source, brush3_seed, brush4_source, brush4_seed, map_blur,
                     map_contrast, map_strength, map_invert, request: gr.Request = None, progress=gr.Progress()):
    """export, with a setting that cannot be used (or a cancel) said in a notice and in the line
    under the button, not as an error on every output."""
    try:
        return export(ctx, token, name, file_format, maps, variations, model, width, height, seed, tileable, feather,
                      mode, morph_from, morph_to, morph_direction, canvas, brush1_source, brush1_seed, brush2_source,
                      brush2_seed, brush3_source, brush3_seed, brush4_source, brush4_seed, map_blur, map_contrast,
                      map_strength, map_invert, request, progress)
    except StudioError as e:
        gr.Warning(str(e))
        return gr.update(), f"**Not exported:** {e}"


def cancel(ctx: Context, request: gr.Request = None):
    if ctx.textures.cancel(getattr(request, "session_hash", None)):
        gr.Info("Cancelling: the texture stops at its next tile.")


def mask_to_canvas(ctx: Context, mask, token, canvas):
    """An imported black-and-white mask as the style map: white = brush 2, black = brush 1."""
    labels = texture.style_map_from_mask(mask)
    if labels is None:
        return gr.update()
    kept = ctx.textures.take(token)
    import numpy as np
    under = kept[0] if kept else np.full((*labels.shape, 3), 200, np.uint8)
    value = tv.canvas_value(under, None)
    h, w = value["background"].shape[:2]
    return tv.canvas_value(under, None, tv.mask_layer(labels, [c for c, _ in BRUSHES], (h, w)))


def follow_fields(w, h):
    """The size preset that the fields show (none when they show another size)."""
    try:
        w, h = int(w), int(h)
    except (TypeError, ValueError):
        return gr.update(value=None)
    return gr.update(value=str(w) if w == h and str(w) in SIZE_PRESETS else None)


def label_brush(ctx: Context, i: int, model, value) -> str:
    """A brush's label after its style was chosen: the source's name, or random style."""
    hexc, cname = BRUSHES[i]
    try:
        names = ctx.ws.load_model(model, "sgan").source_names if model else []
        v = int(value)
    except (StudioError, TypeError, ValueError):
        return tv.brush_label(i, hexc, cname, None)
    return tv.brush_label(i, hexc, cname, RANDOM_STYLE[0] if v < 0 else f"{v}: {names[v]}" if v < len(names) else None)


def first_texture(ctx: Context, token, model, *args):
    """The first texture when the tab opens (nothing is made again once one was)."""
    if token or not model:
        return [gr.update()] * 7
    return generate(ctx, model, *args)


def build(ctx: Context) -> dict:
    E = errors_as_messages
    with gr.Tab("Texture", id="texture") as tab:
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=360):
                picker = model_picker("texture")
                model, info = picker.model, picker.info
                preset = gr.Radio(list(SIZE_PRESETS), value="1024", label="Size preset (px)")
                with gr.Row():
                    width = gr.Number(value=1024, label="Width", min_width=90)
                    height = gr.Number(value=1024, label="Height", min_width=90)
                    seed = gr.Number(value=0, label="Seed", min_width=90)
                tileable = gr.Checkbox(value=True, label="Tileable (seamless when repeated)")
                with gr.Row(equal_height=True):
                    generate_btn = gr.Button("Generate texture", variant="primary", scale=2)
                    cancel_btn = gr.Button("Cancel", scale=1, min_width=80)
                result = gr.Markdown()
                with gr.Accordion("Styles: brushes, soft edges, morph", open=True):
                    mode = gr.Radio(list(MODES), value="Paint", label="Style mode",
                                    info="Paint: the style map decides. Morph: from one brush to another across "
                                         "the canvas.")
                    brush_inputs, brush_labels = [], []
                    for i, (hexc, cname) in enumerate(BRUSHES):
                        with gr.Row(equal_height=True, elem_classes="brush-row"):
                            brush_labels.append(gr.HTML(tv.brush_label(i, hexc, cname, None), min_width=150, scale=2))
                            src = gr.Dropdown([RANDOM_STYLE], value=RANDOM_STYLE[1], show_label=False,
                                              label=f"Brush {i + 1} source", container=False, scale=2, min_width=120)
                            sseed = gr.Number(value=i, show_label=False, label=f"Brush {i + 1} style seed",
                                              container=False, scale=1, min_width=70)
                        brush_inputs += [src, sseed]
                    gr.Markdown("<span class='hint'>Per brush: its style (a source texture, or a random style "
                                "from the seed on the right). Unpainted areas use brush 1.</span>")
                    feather = gr.Slider(0, 256, value=32, step=4, label="Feather (px)",
                                        info="Soft edges: the styles blend over this distance on each side.")
                    with gr.Row():
                        morph_from = gr.Dropdown([1, 2, 3, 4], value=1, label="Morph from brush", min_width=90)
                        morph_to = gr.Dropdown([1, 2, 3, 4], value=2, label="to brush", min_width=90)
                        direction = gr.Radio(list(options.MORPH_DIRECTIONS), value="horizontal", label="Direction",
                                             min_width=160)
                    mask = gr.Image(label="Import a mask (white = brush 2, black = brush 1)", type="numpy",
                                    height=120, sources=["upload"])
                with gr.Accordion("Export", open=True):
                    with gr.Row():
                        file_format = gr.Radio(FORMATS, value="png8", label="Format", min_width=200, scale=3)
                        variations = gr.Number(value=1, label="Variations (seeds)", min_width=90, scale=1)
                    maps = gr.CheckboxGroup(list(MAP_NAMES), value=[], label="Material maps (NAME_height.png is 16-bit)")
                    with gr.Row(equal_height=True):
                        export_name = gr.Textbox(placeholder="export name (optional)", show_label=False,
                                                 container=False, scale=2)
                        export_btn = gr.Button("Export", scale=1, min_width=100)
                    download = gr.DownloadButton("Download", visible=False, size="md")
                    exported = gr.Markdown()
            with gr.Column(scale=6, min_width=420):
                with gr.Tabs():
                    with gr.Tab("Real scale 3 x 3"):
                        real = tv.viewer()
                    with gr.Tab("Overview"):
                        overview = gr.Image(label="Texture", type="numpy", format="png", interactive=False,
                                            height=500, buttons=["fullscreen"])
                    with gr.Tab("1:1 crop"):
                        crop = gr.Image(label="Centre at 1:1", type="numpy", format="png", interactive=False,
                                        height=500, buttons=["fullscreen"], elem_classes="pixelated")
                    with gr.Tab("Relief (lit)"):
                        relief = gr.Image(label="Lit relief (centre, 1:1)", type="numpy", format="png",
                                          interactive=False, height=380)
                        with gr.Row():
                            azimuth = gr.Slider(0, 360, value=135, step=5, label="Light direction (deg)")
                            elevation = gr.Slider(5, 90, value=40, step=5, label="Light height (deg)")
                        with gr.Row():
                            map_blur = gr.Slider(0, 8, value=1, step=0.5, label="Height blur (px)")
                            map_contrast = gr.Slider(0.2, 4, value=1, step=0.1, label="Height contrast")
                            map_strength = gr.Slider(0.1, 8, value=1, step=0.1, label="Normal strength")
                        map_invert = gr.Checkbox(value=False, label="Invert height (dark is high, e.g. bright mortar "
                                                                    "that lies deep)")
                canvas = gr.Sketchpad(label="Style map (over the texture): pick the brush tool, paint", type="numpy",
                                      format="png",
                                      image_mode="RGBA", canvas_size=(512, 512), height=420,
                                      brush=gr.Brush(colors=[(c, tv.PAINT_OPACITY) for c, _ in BRUSHES],
                                                     default_color=(BRUSHES[1][0], tv.PAINT_OPACITY),
                                                     color_mode="fixed", default_size=48), layers=False)
                token = gr.State(None)

    settings = [model, width, height, seed, tileable, feather, mode, morph_from, morph_to, direction, canvas] + \
        brush_inputs
    look = [map_blur, map_contrast, map_strength, map_invert]
    wire_model_picker(ctx, "sgan", tab, picker, open_model, brush_inputs[0::2] + brush_labels + [info])
    preset.input(lambda p: (int(p), int(p)), preset, [width, height], api_visibility="private")
    for f in (width, height):
        f.change(follow_fields, [width, height], preset, api_visibility="private", queue=False)
    for i, src in enumerate(brush_inputs[0::2]):
        src.input(partial(label_brush, ctx, i), [model, src], brush_labels[i], api_visibility="private")
    outputs = [real, overview, crop, relief, canvas, result, token]
    gen = generate_btn.click(E(partial(generate, ctx)), settings + look + [azimuth, elevation], outputs,
                             api_name="texture", concurrency_id="texture", concurrency_limit=1)
    cancel_btn.click(partial(cancel, ctx), None, None, api_name="cancel_texture", queue=False)
    tab.select(partial(first_texture, ctx), [token] + settings + look + [azimuth, elevation], outputs,
               api_visibility="private", concurrency_id="texture", concurrency_limit=1)
    for c in look + [azimuth, elevation]:
        event = c.change if c is map_invert else c.release
        event(E(partial(relight, ctx)), [token] + look + [azimuth, elevation], relief, api_visibility="private")
    mask.upload(E(partial(mask_to_canvas, ctx)), [mask, token, canvas], canvas, api_name="import_mask")
    export_btn.click(E(partial(export_or_notice, ctx)), [token, export_name, file_format, maps, variations] + settings + look,
                     [download, exported], api_name="export_texture", concurrency_id="texture", concurrency_limit=1)
    del gen
    return {"model": model}
