"""The Texture tab: a spatial model's textures of any size (to 8192 px), seamless tiles, styles painted
on a canvas, PNG export."""
from __future__ import annotations

from functools import partial

import gradio as gr

from gan_core import options, texture
from gan_core.metrics import seam_ratio_sampled

from .common import Context, errors_as_messages, model_picker, wire_model_picker

# One brush colour per painted style; the first one is also what unpainted canvas means.
BRUSHES = (("#e4572e", "red"), ("#2e86ab", "blue"), ("#76b041", "green"), ("#f3c623", "yellow"))
RANDOM_STYLE = ("random style (seed)", -1)
SIZE_PRESETS = ("512", "1024", "2048", "4096")
PREVIEW_SIDE = 1024  # previews are shrunk to this; exports keep the full size


def open_model(ctx: Context, path):
    """Each brush's choice of source image (brush i starts on source i) and a line about the model."""
    if not path:
        return [gr.update()] * len(BRUSHES) + ["No model chosen."]
    m = ctx.ws.load_model(path, "sgan")
    choices = [RANDOM_STYLE] + [(f"{i}: {n}", i) for i, n in enumerate(m.source_names)]
    ups = [gr.update(choices=choices, value=choices[1 + i][1] if 1 + i < len(choices) else RANDOM_STYLE[1])
           for i in range(len(BRUSHES))]
    return ups + [f"**{m.name}**: {len(m.source_names)} source texture(s) ({', '.join(m.source_names)}); sizes "
                  f"are rounded to multiples of {m.cfg.model.scale} px when tileable; checkpoint `{m.folder.name}`"]


def _texture(ctx: Context, path, width, height, seed, tileable, canvas, brush_args, on_progress):
    w, h, seed = options.value(width, "width"), options.value(height, "height"), options.value(seed, "seed")
    m = ctx.ws.load_model(path, "sgan")  # after the settings: no model is loaded for a typo
    style_map = texture.style_map_from_canvas(canvas.get("composite") if isinstance(canvas, dict) else canvas,
                                              [c for c, _ in BRUSHES])
    img, meta = texture.paint(m.G, w, h, seed, bool(tileable), style_map,
                              options.brushes(brush_args[0::2], brush_args[1::2]), on_progress)
    return img, {**meta, "model": m.name, "checkpoint": m.folder.name}


def generate(ctx: Context, path, width, height, seed, tileable, canvas, progress=gr.Progress(), *brush_args):
    progress(0, desc="Preparing")
    img, meta = _texture(ctx, path, width, height, seed, tileable, canvas, brush_args,
                         lambda f: progress(0.9 * f, desc="Generating texture"))
    progress(0.92, desc="Making previews")
    token = ctx.textures.keep(img, meta)
    H, W = img.shape[:2]
    ratio = seam_ratio_sampled(img)
    note = "" if f"{W}x{H}" == meta["requested_size"] else \
        f" (rounded up from {meta['requested_size']} so it tiles exactly)"
    verdict = "no visible seam" if ratio < 1.5 else "the seam may show"
    info = (f"**{W} x {H} px**{note}. Seam ratio **{ratio:.2f}** ({verdict}; about 1 = no visible seam). "
            "Press *Export PNG* for the full-size file.")
    return *texture.previews(img, PREVIEW_SIDE), info, token


def export(ctx: Context, token, name, path, width, height, seed, tileable, canvas, progress=gr.Progress(),
           *brush_args):
    kept = ctx.textures.take(token)
    img, meta = kept or _texture(ctx, path, width, height, seed, tileable, canvas, brush_args,
                                 lambda f: progress(0.8 * f, desc="Generating texture"))
    progress(0.85, desc="Writing PNG")
    H, W = img.shape[:2]
    out = ctx.ws.export_image(f"{name or meta['model']}-{W}x{H}", img, meta)
    return gr.update(value=str(out), visible=True, label=f"Download {out.name}")


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
                    export_btn = gr.Button("Export PNG", scale=1, min_width=110)
                export_name = gr.Textbox(placeholder="export name (optional)", show_label=False, container=False)
                download = gr.DownloadButton("Download", visible=False, size="md")
                result = gr.Markdown()
                gr.Markdown("**Style brushes**: paint regions on the style map (it is stretched over the texture); "
                            "each colour is one style: a source texture of the model, or a random style from its "
                            "seed. Unpainted areas use brush 1.")
                brush_inputs = []
                for i, (hexc, cname) in enumerate(BRUSHES):
                    with gr.Row(equal_height=True, elem_classes="brush-row"):
                        gr.HTML(f"<span class='brush-swatch' style='background:{hexc}'></span><b>{i + 1}</b> {cname}",
                                min_width=96, scale=0)
                        src = gr.Dropdown([RANDOM_STYLE], value=RANDOM_STYLE[1], show_label=False,
                                          label=f"Brush {i + 1} source", container=False, scale=3, min_width=140)
                        sseed = gr.Number(value=i, show_label=False, label=f"Brush {i + 1} style seed",
                                          container=False, scale=1, min_width=70)
                    brush_inputs += [src, sseed]
                gr.Markdown("<span class='hint'>Per brush: source texture, then style seed.</span>")
            with gr.Column(scale=6, min_width=420):
                tex_img = gr.Image(label="Texture", type="numpy", format="png", interactive=False, height=300,
                                   buttons=["fullscreen"])
                with gr.Row():
                    tiled = gr.Image(label="Tiled 2 x 2", type="numpy", format="png", interactive=False, height=220)
                    offset = gr.Image(label="Half-offset (seam in the middle)", type="numpy", format="png",
                                      interactive=False, height=220)
                canvas = gr.Sketchpad(label="Style map: pick the brush tool, paint", type="numpy", image_mode="RGBA",
                                      canvas_size=(256, 256), height=340,
                                      brush=gr.Brush(colors=[c for c, _ in BRUSHES], default_color=BRUSHES[1][0],
                                                     color_mode="fixed", default_size=24), layers=False)
                token = gr.State(None)

    settings = [model, width, height, seed, tileable, canvas] + brush_inputs
    wire_model_picker(ctx, "sgan", tab, picker, open_model, brush_inputs[0::2] + [info])
    preset.change(lambda p: (int(p), int(p)), preset, [width, height], api_visibility="private")
    generate_btn.click(E(partial(generate, ctx)), settings, [tex_img, tiled, offset, result, token], api_name="texture",
                       concurrency_id="texture", concurrency_limit=1)
    export_btn.click(E(partial(export, ctx)), [token, export_name] + settings, download, api_name="export_texture",
                     concurrency_id="texture", concurrency_limit=1)
    return {"model": model}
