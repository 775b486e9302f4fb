"""The Explore tab: a conditional model's images by seed, truncation, class blend and position between
two seeds; grids; PNG and looping animation export."""
from __future__ import annotations

from functools import partial

import gradio as gr

from gan_core import options, sampling

from .common import Context, errors_as_messages, model_picker, wire_model_picker

MAX_CLASS_SLIDERS = 8


def open_model(ctx: Context, path):
    """Sliders for the model's classes (the first at 1) and a line about it."""
    if not path:
        return [gr.update(visible=False)] * MAX_CLASS_SLIDERS + ["No model chosen."]
    m = ctx.ws.load_model(path, "cgan")
    names = m.class_names
    ups = [gr.update(visible=True, label=names[i], value=1.0 if i == 0 else 0.0) if i < len(names)
           else gr.update(visible=False, value=0.0) for i in range(MAX_CLASS_SLIDERS)]
    more = f" (sliders for the first {MAX_CLASS_SLIDERS})" if len(names) > MAX_CLASS_SLIDERS else ""
    return ups + [f"**{m.name}**: {len(names)} classes{more}, {m.cfg.model.resolution} px, "
                  f"checkpoint `{m.folder.name}`"]


def _model_view(ctx: Context, path, seed_a, seed_b, position, method, truncation, n, weights):
    m = ctx.ws.load_model(path, "cgan")
    return m, options.explore_view(m.class_names, weights, seed_a, seed_b, position, method, truncation, n)


def images(ctx: Context, path, seed_a, seed_b, position, method, truncation, n, *weights):
    m, view = _model_view(ctx, path, seed_a, seed_b, position, method, truncation, n, weights)
    return sampling.view_image(m.G, m.class_names, view)


def grid(ctx: Context, path, mode, seed_a, seed_b, position, method, truncation, n, *weights):
    m, view = _model_view(ctx, path, seed_a, seed_b, position, method, truncation, n, weights)
    if mode == "seeds x classes":
        return sampling.class_grid(m.G, m.class_names, view.n, view.seed_a, view.truncation)
    return sampling.interpolation_grid(m.G, m.class_names, view)


def export_png(ctx: Context, path, name, seed_a, seed_b, position, method, truncation, n, *weights):
    m, view = _model_view(ctx, path, seed_a, seed_b, position, method, truncation, n, weights)
    out = ctx.ws.export_image(name or m.name, sampling.view_image(m.G, m.class_names, view),
                              {**view.metadata(m.name), "checkpoint": m.folder.name})
    return gr.update(value=str(out), visible=True, label=f"Download {out.name}")


def export_animation(ctx: Context, path, name, frames, seed_a, seed_b, position, method, truncation, n,
                     progress=gr.Progress(), *weights):
    m, view = _model_view(ctx, path, seed_a, seed_b, position, method, truncation, n, weights)
    pics = sampling.loop_frames(m.G, m.class_names, view, options.value(frames, "frames"),
                                on_progress=lambda f: progress(0.9 * f, desc="Rendering frames"))
    progress(0.95, desc="Writing GIF and WebP")
    gif, webp = ctx.ws.export_animation(name or m.name, pics)
    return str(gif), [str(gif), str(webp)]


def build(ctx: Context) -> dict:
    E = errors_as_messages
    with gr.Tab("Explore", id="explore") as tab:
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=360):
                picker = model_picker("conditional")
                model, info = picker.model, picker.info
                with gr.Row():
                    seed_a = gr.Number(value=0, label="Seed A", min_width=90)
                    n_images = gr.Slider(1, 16, value=4, step=1, label="Images", min_width=150)
                truncation = gr.Slider(0.1, 1.0, value=1.0, step=0.05, label="Truncation",
                                       info="Lower: more typical pictures, less variety.")
                gr.Markdown("**Class blend**: the weights are normalised to sum 1.")
                sliders = [gr.Slider(0, 1, value=1.0 if i == 0 else 0.0, step=0.05, label=f"class {i + 1}",
                                     visible=False) for i in range(MAX_CLASS_SLIDERS)]
                with gr.Accordion("Interpolation between two seeds", open=True):
                    with gr.Row():
                        seed_b = gr.Number(value=1, label="Seed B", min_width=90)
                        method = gr.Radio(["slerp", "lerp"], value="slerp", label="Path",
                                          info="slerp keeps the noise's length.")
                    position = gr.Slider(0, 1, value=0, step=0.01, label="Position A -> B")
                    frames = gr.Slider(8, 96, value=32, step=4, label="Animation frames",
                                       info="The GIF / WebP loop goes A -> B -> A.")
            with gr.Column(scale=6, min_width=420):
                image = gr.Image(label="Images", type="numpy", format="png", interactive=False, height=300,
                                 elem_classes="pixelated", buttons=["fullscreen"])
                with gr.Row(equal_height=True):
                    export_name = gr.Textbox(placeholder="export name (optional)", show_label=False,
                                             container=False, scale=2, min_width=160)
                    export_btn = gr.Button("Export PNG", scale=1, min_width=130)
                    anim_btn = gr.Button("Export animation", scale=1, min_width=190)
                download = gr.DownloadButton("Download", visible=False, size="md")
                with gr.Row(equal_height=False):
                    anim_preview = gr.Image(label="Animation", type="filepath", interactive=False, visible=False,
                                            height=180, elem_classes="pixelated")
                    anim_files = gr.File(label="Animation files", file_count="multiple", visible=False, height=180)
                with gr.Row(equal_height=True):
                    grid_mode = gr.Radio(["seeds x classes", "interpolation steps"], value="seeds x classes",
                                         label="Grid view", scale=3)
                    grid_btn = gr.Button("Make grid", scale=1, min_width=120)
                grid_img = gr.Image(label="Grid", type="numpy", format="png", interactive=False, height=260,
                                    elem_classes="pixelated", buttons=["download", "fullscreen"])

    view = [seed_a, seed_b, position, method, truncation, n_images] + sliders
    redraw = dict(fn=E(partial(images, ctx)), inputs=[model] + view, outputs=image, show_progress="minimal",
                  trigger_mode="always_last", concurrency_id="explore", concurrency_limit=2)
    opened = wire_model_picker(ctx, "cgan", tab, picker, open_model, sliders + [info])
    opened.success(**redraw, api_visibility="private")
    gr.on([c.release for c in [position, truncation, n_images] + sliders]
          + [c.submit for c in (seed_a, seed_b)] + [c.blur for c in (seed_a, seed_b)], **redraw,
          api_visibility="private")
    method.change(**redraw, api_name="blend")
    export_btn.click(E(partial(export_png, ctx)), [model, export_name] + view, download, api_name="export_png",
                     concurrency_id="explore")
    anim_btn.click(E(partial(export_animation, ctx)), [model, export_name, frames] + view, [anim_preview, anim_files],
                   api_name="export_animation", concurrency_id="explore").success(
        lambda: (gr.update(visible=True), gr.update(visible=True)), None, [anim_preview, anim_files],
        api_visibility="private")
    grid_btn.click(E(partial(grid, ctx)), [model, grid_mode] + view, grid_img, api_name="grid", concurrency_id="explore")
    return {"model": model}
