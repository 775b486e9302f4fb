"""The Explore tab: a conditional model's images by seed, truncation, class blend and position between
two seeds, shown large in a gallery; breeding (children, crossbreed, lineage with undo, favourites);
discovered directions; labelled grids; exports of pictures and keyframe walks (MP4, GIF, WebP)."""
from __future__ import annotations

import inspect
from functools import partial

import gradio as gr

from gan_core import explore, options, sampling
from gan_core.breeding import Specimen

from . import explore_api
from . import explore_breed as B
from .common import Context, errors_as_messages, model_picker, wire_model_picker

MAX_CLASS_SLIDERS = 8

# Arrow keys on a focused slider and Enter in its number box end a change as letting go of the
# slider does (Gradio sends "release" only on pointer-up and on leaving the number box).
KEYS_JS = """() => {
  if (window.__studioKeys) return; window.__studioKeys = true;
  const keys = ['ArrowLeft','ArrowRight','ArrowUp','ArrowDown','Home','End','PageUp','PageDown'];
  document.addEventListener('keyup', (e) => {
    const t = e.target;
    if (!(t instanceof HTMLInputElement)) return;
    if ((t.type === 'range' && keys.includes(e.key)) || (t.type === 'number' && e.key === 'Enter'))
      t.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));
  }, true);
}"""


DIRECTION_NAMES = [f"direction_{i + 1}" for i in range(B.N_DIRECTIONS)]


def named(fn, *names):
    """fn with API parameter names (its inputs end with the direction sliders, for *args)."""
    def call(*args):
        return fn(*args)
    call.__name__ = getattr(fn, "__name__", getattr(getattr(fn, "func", None), "__name__", "handler"))
    call.__signature__ = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                            for n in names])
    return call


def open_model(ctx: Context, path, names, *weights):
    """Sliders for the model's classes, keeping the weight of every class the last model shared
    with it by name (a new model starts with its first class at 1), and a line about it."""
    if not path:
        return [gr.update(visible=False)] * MAX_CLASS_SLIDERS + ["No model chosen.", names]
    m = ctx.ws.load_model(path, "cgan")
    new = m.class_names
    kept = {n: float(w) for n, w in zip(names or [], weights) if w}
    if not any(n in kept for n in new[:MAX_CLASS_SLIDERS]):
        kept = {new[0]: 1.0}
    ups = [gr.update(visible=True, label=new[i], value=kept.get(new[i], 0.0)) if i < len(new)
           else gr.update(visible=False, value=0.0) for i in range(MAX_CLASS_SLIDERS)]
    more = f" (sliders for the first {MAX_CLASS_SLIDERS})" if len(new) > MAX_CLASS_SLIDERS else ""
    return ups + [f"**{m.name}**: {len(new)} classes{more}, {m.cfg.model.resolution} px, "
                  f"checkpoint `{m.folder.name}`", new]


def _model_view(ctx: Context, path, seed_a, seed_b, position, method, truncation, n, weights):
    m = ctx.ws.load_model(path, "cgan")
    return m, options.explore_view(m.class_names, weights, seed_a, seed_b, position, method, truncation, n)


def blend_hint(names, weights) -> str:
    """Why a class slider may change nothing: one class alone (weights are normalised), or none."""
    on = [n for n, w in zip(names or [], weights) if w and float(w) > 0]
    if not on:
        return "**All class sliders are at 0**: move one above zero to draw pictures."
    if len(on) == 1:
        return (f"Only **{on[0]}** is above zero, so its weight does not change the pictures (weights are "
                "normalised to sum 1): raise a second class to blend.")
    return "Blend: " + ", ".join(on) + " (normalised to sum 1)."


def images(ctx: Context, path, seed_a, seed_b, position, method, truncation, n, *weights):
    m, view = _model_view(ctx, path, seed_a, seed_b, position, method, truncation, n, weights)
    return sampling.view_image(m.G, m.class_names, view)


def view_specimens(m, view: sampling.View) -> list[Specimen]:
    z = view.latents(m.cfg.model.nz)
    first = view.seed_a if view.position < 0.5 else view.seed_b
    return [Specimen(z[i].tolist(), dict(view.blend), f"seed {first + i}", first + i) for i in range(view.n)]


def draw_opened(ctx: Context, model, seed_a, seed_b, position, method, truncation, n, state, *values):
    """draw, after a model opened (the pictures of an export opened just before stay)."""
    return draw(ctx, model, seed_a, seed_b, position, method, truncation, n, state, *values, opened=True)


def draw(ctx: Context, model, seed_a, seed_b, position, method, truncation, n, state, *values, opened=False):
    """The seed controls' pictures (values: the direction sliders, then the class sliders)."""
    dirs, weights = values[:B.N_DIRECTIONS], values[B.N_DIRECTIONS:]
    m = ctx.ws.load_model(model, "cgan")
    hint = blend_hint(m.class_names, weights)
    if not any(w and float(w) > 0 for w in weights[:len(m.class_names)]):
        return (gr.skip(),) * 8 + (hint,)  # the pictures stay; the hint says why nothing is drawn
    _, view = _model_view(ctx, model, seed_a, seed_b, position, method, truncation, n, weights)
    s = B.session(state, ctx, model)
    s.show_seeds(view_specimens(m, view), f"seeds {view.seed_a}-{view.seed_a + view.n - 1}", opened)
    return B.shown(ctx, model, s, dirs) + (hint,)


def redirect(ctx: Context, model, state, *dir_values):
    """The current pictures moved along the directions."""
    return B.shown(ctx, model, B.session(state, ctx, model), dir_values)


def grid(ctx: Context, path, mode, seed_a, seed_b, position, method, truncation, n, *weights):
    m, view = _model_view(ctx, path, seed_a, seed_b, position, method, truncation, n, weights)
    if mode == "seeds x classes":
        return explore.class_seed_grid(m.G, m.class_names, list(range(view.seed_a, view.seed_a + view.n)),
                                       view.truncation, scale=explore.display_size(m.cfg.model.resolution, 96))
    return sampling.interpolation_grid(m.G, m.class_names, view)


def export_grid(ctx: Context, path, name, scale, mode, seed_a, seed_b, position, method, truncation, n, *weights):
    """The grid (classes x seeds, labelled; or the interpolation row) at 1x-8x with its settings."""
    m, view = _model_view(ctx, path, seed_a, seed_b, position, method, truncation, n, weights)
    seeds = list(range(view.seed_a, view.seed_a + view.n))
    if mode == "seeds x classes":
        img = explore.class_seed_grid(m.G, m.class_names, seeds, view.truncation, scale=int(scale))
        extra = {"grid": "classes x seeds", "seeds": seeds}
    else:
        from gan_core.media import upscale
        img = upscale(sampling.interpolation_grid(m.G, m.class_names, view), int(scale))
        extra = {"grid": "interpolation steps", "view": {**vars(view)}}
    out = ctx.ws.export_path(f"{name or m.name}-grid", ".png")
    explore.write_png(out, img, {"model": m.name, "truncation": view.truncation, "checkpoint": m.folder.name,
                                 "scale": int(scale),
                                 **extra})
    return gr.update(value=str(out), visible=True, label=f"Download {out.name}")


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
        state = gr.State(None)
        names = gr.State(None)
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
                hint = gr.Markdown("", elem_classes="hint")
                with gr.Accordion("Directions (discovered in the model)", open=True):
                    gr.Markdown("The directions in which this model's pictures change most, found from its "
                                "first layer's weights. They move every picture shown.", elem_classes="hint")
                    dir_sliders = [gr.Slider(-explore.MAX_OFFSET, explore.MAX_OFFSET, value=0, step=0.25,
                                             label=f"direction {i + 1}") for i in range(B.N_DIRECTIONS)]
                    with gr.Row():
                        reset_dirs = gr.Button("Reset directions", size="sm")
                        preview_btn = gr.Button("Preview strips", size="sm")
                    preview = gr.Image(label="Direction previews (the parent, -3 to +3)", type="numpy",
                                       format="png", interactive=False, height=420, elem_classes="pixelated")
                with gr.Accordion("Interpolation between two seeds", open=True):
                    with gr.Row():
                        seed_b = gr.Number(value=1, label="Seed B", min_width=90)
                        method = gr.Radio(["slerp", "lerp"], value="slerp", label="Path",
                                          info="slerp keeps the noise's length.")
                    position = gr.Slider(0, 1, value=0, step=0.01, label="Position A -> B")
                    frames = gr.Slider(8, 96, value=32, step=4, label="Animation frames",
                                       info="The GIF / WebP loop goes A -> B -> A.")
            with gr.Column(scale=6, min_width=420):
                gr.Markdown("**Pictures**: click one to make it the parent.")
                gallery = gr.Gallery(label="Pictures", show_label=False, columns=4, height="auto",
                                     object_fit="contain", allow_preview=False, format="png",
                                     elem_classes="explore-gallery", buttons=[])
                picks = gr.Markdown(B.picks_text(B.session(None)))
                with gr.Row(equal_height=True):
                    n_children = gr.Slider(8, 16, value=8, step=1, label="Children", min_width=120)
                    strength = gr.Slider(0.05, 1.0, value=0.4, step=0.05, label="Strength", min_width=120,
                                         info="How far children stray from the parent.")
                    class_mut = gr.Slider(0, 1, value=0, step=0.05, label="Class mutation", min_width=120)
                    breed_seed = gr.Number(value=0, label="Mutation seed", min_width=90, precision=0)
                with gr.Row():
                    children_btn = gr.Button("Children", variant="primary", min_width=100)
                    cross_btn = gr.Button("Crossbreed", min_width=100)
                    undo_btn = gr.Button("Undo", interactive=False, min_width=70)
                    redo_btn = gr.Button("Redo", interactive=False, min_width=70)
                    fav_btn = gr.Button("Keep as favourite", min_width=140)
                lineage = gr.Markdown("")
                line_gallery = gr.Gallery(label="Lineage", show_label=False, columns=8, height=130,
                                          object_fit="contain", allow_preview=False, buttons=[],
                                          elem_classes="lineage-strip")
                image = gr.Image(label="Images", type="numpy", format="png", interactive=False, height=150,
                                 elem_classes="pixelated", buttons=["fullscreen"])
                with gr.Row(equal_height=True):
                    export_name = gr.Textbox("", placeholder="export name (optional)", show_label=False,
                                             container=False, scale=2, min_width=160)
                    scale = gr.Slider(1, 8, value=4, step=1, label="Export scale", scale=2, min_width=140)
                with gr.Row(equal_height=True):
                    pick_btn = gr.Button("Export picture", min_width=130)
                    export_btn = gr.Button("Export PNG", min_width=130)
                    anim_btn = gr.Button("Export animation", min_width=170)
                download = gr.DownloadButton("Download", visible=False, size="md")
                with gr.Row(equal_height=False):
                    anim_preview = gr.Image(label="Animation", type="filepath", interactive=False, visible=False,
                                            height=180, elem_classes="pixelated")
                    anim_files = gr.File(label="Animation files", file_count="multiple", visible=False, height=180)
                with gr.Accordion("Keyframe walk (video)", open=False):
                    keys_md = gr.Markdown(B.keys_text(B.session(None)))
                    with gr.Row(equal_height=True):
                        ease = gr.Dropdown(["smooth", "linear", "ease-in", "ease-out"], value="smooth",
                                           label="Easing to the next key", min_width=140)
                        add_key = gr.Button("Add keyframe", min_width=120)
                        clear_keys = gr.Button("Clear keyframes", min_width=120)
                    with gr.Row(equal_height=True):
                        per_key = gr.Slider(4, 96, value=24, step=1, label="Frames per keyframe", min_width=140)
                        fps = gr.Slider(6, 60, value=24, step=1, label="Frames per second", min_width=140)
                        kind = gr.Radio(["mp4", "gif", "webp"], value="mp4", label="Format", min_width=160)
                    with gr.Row():
                        walk_btn = gr.Button("Export walk", variant="primary")
                        cancel_btn = gr.Button("Cancel", interactive=False)
                    walk_msg = gr.Markdown("")
                    video = gr.Video(label="Walk", height=260, loop=True, autoplay=True, interactive=False)
                    walk_file = gr.File(label="Walk file", visible=False, height=80)
                with gr.Accordion("Favourites", open=True):
                    gr.Markdown("Click a favourite to bring it back.", elem_classes="hint")
                    favs = gr.Gallery(label="Favourites", show_label=False, columns=6, height=220,
                                      object_fit="contain", allow_preview=False,
                                      elem_classes="explore-gallery fav-gallery", buttons=[])
                    fav_refresh = gr.Button("Refresh favourites", size="sm")
                with gr.Row(equal_height=True):
                    grid_mode = gr.Radio(["seeds x classes", "interpolation steps"], value="seeds x classes",
                                         label="Grid view", scale=3)
                    grid_btn = gr.Button("Make grid", scale=1, min_width=120)
                    grid_export = gr.Button("Export grid", scale=1, min_width=120)
                grid_img = gr.Image(label="Grid", type="numpy", format="png", interactive=False, height=420,
                                    elem_classes="pixelated", buttons=["download", "fullscreen"])
                dropped = gr.File(label="Open an export: drop a PNG the studio wrote", file_types=[".png"],
                                  height=90)
        classes_txt = gr.Textbox("", visible=False)  # the API's class blend by name
        show_btn = gr.Button(visible=False)
        blend_btn = gr.Button(visible=False)  # the API's positional /blend (class sliders in order)
        pick_no = gr.Number(0, visible=False, precision=0)  # the API's "click on picture N" (from 0)
        pick_api = gr.Button(visible=False)
        explore_api.register(ctx)  # inside the tab: the page draws nothing for it

    view = [seed_a, seed_b, position, method, truncation, n_images] + sliders
    pick_, open_fav_, walk_, goto_ = B.with_ctx(ctx)
    shown = [image, gallery, lineage, picks, undo_btn, redo_btn, state, line_gallery]
    fast = dict(show_progress="minimal", trigger_mode="always_last", queue=False)  # no queue round trips
    redraw = dict(fn=E(partial(draw, ctx)), inputs=[model] + view[:6] + [state] + dir_sliders + sliders,
                  outputs=shown + [hint], **fast)
    opened = wire_model_picker(ctx, "cgan", tab, picker, open_model, sliders + [info, names],
                               extra_inputs=[names] + sliders)
    opened.success(**{**redraw, "fn": E(partial(draw_opened, ctx))}, api_visibility="private").success(
        E(partial(B.direction_preview, ctx)), [model, state] + dir_sliders, preview, api_visibility="private")
    gr.on([c.release for c in [position, truncation, n_images] + sliders]
          + [c.submit for c in (seed_a, seed_b)] + [c.blur for c in (seed_a, seed_b)], **redraw,
          api_visibility="private")
    method.change(**redraw, api_visibility="private")
    tab.select(None, js=KEYS_JS)
    gr.on([d.release for d in dir_sliders], E(partial(redirect, ctx)), [model, state] + dir_sliders, shown,
          api_visibility="private", **fast)
    reset_dirs.click(lambda: [gr.update(value=0)] * B.N_DIRECTIONS, None, dir_sliders,
                     api_visibility="private").then(E(partial(redirect, ctx)), [model, state] + dir_sliders, shown,
                                                    api_visibility="private")
    preview_btn.click(E(named(partial(B.direction_preview, ctx), "model", "state", *DIRECTION_NAMES)), [model, state] + dir_sliders, preview,
                      api_name="direction_preview", concurrency_id="explore")

    previewed = dict(fn=E(named(partial(B.direction_preview, ctx), "model", "state", *DIRECTION_NAMES)),
                     inputs=[model, state] + dir_sliders, outputs=preview, api_visibility="private",
                     show_progress="hidden", trigger_mode="always_last")
    gallery.select(E(pick_), [model, state] + dir_sliders, shown, api_visibility="private").success(**previewed)
    blend_btn.click(E(partial(images, ctx)), [model] + view, image, api_name="blend", concurrency_id="explore")
    show_btn.click(E(named(partial(B.show_api, ctx), "model", "seed", "n", "classes", "truncation", "state",
                           *DIRECTION_NAMES)), [model, seed_a, n_images, classes_txt, truncation, state] + dir_sliders,
                   shown, api_name="show", concurrency_id="explore")
    line_gallery.select(E(goto_), [model, state] + dir_sliders, shown, api_visibility="private").success(**previewed)
    pick_api.click(E(named(partial(B.pick_index, ctx), "model", "index", "state", *DIRECTION_NAMES)),
                   [model, pick_no, state] + dir_sliders, shown, api_name="pick")
    children_btn.click(E(named(partial(B.breed, ctx), "model", "children", "strength", "class_mutation", "seed", "state", *DIRECTION_NAMES)), [model, n_children, strength, class_mut, breed_seed, state]
                       + dir_sliders, shown + dir_sliders, api_name="children", concurrency_id="explore").success(**previewed)
    cross_btn.click(E(named(partial(B.crossbreed, ctx), "model", "children", "seed", "state", *DIRECTION_NAMES)), [model, n_children, breed_seed, state] + dir_sliders,
                    shown + dir_sliders, api_name="crossbreed", concurrency_id="explore").success(**previewed)
    undo_btn.click(E(named(partial(B.undo, ctx), "model", "state", *DIRECTION_NAMES)), [model, state] + dir_sliders, shown, api_name="undo",
                   concurrency_id="explore").success(**previewed)
    redo_btn.click(E(named(partial(B.redo, ctx), "model", "state", *DIRECTION_NAMES)), [model, state] + dir_sliders, shown, api_name="redo",
                   concurrency_id="explore").success(**previewed)
    fav_btn.click(E(named(partial(B.add_favourite, ctx), "model", "truncation", "state", *DIRECTION_NAMES)), [model, truncation, state] + dir_sliders, favs,
                  api_name="favourite")
    fav_refresh.click(E(partial(B.favourites, ctx)), None, favs, api_name="favourites")
    tab.select(E(partial(B.favourites, ctx)), None, favs, api_visibility="private")
    favs.select(E(open_fav_), [model, state] + dir_sliders, shown, api_visibility="private")

    pick_btn.click(E(named(partial(B.export_picked, ctx), "model", "name", "scale", "truncation", "state", *DIRECTION_NAMES)), [model, export_name, scale, truncation, state] + dir_sliders,
                   download, api_name="export_picture", concurrency_id="explore")
    export_btn.click(E(partial(export_png, ctx)), [model, export_name] + view, download, api_name="export_png",
                     concurrency_id="explore")
    anim_btn.click(E(partial(export_animation, ctx)), [model, export_name, frames] + view, [anim_preview, anim_files],
                   api_name="export_animation", concurrency_id="explore").success(
        lambda: (gr.update(visible=True), gr.update(visible=True)), None, [anim_preview, anim_files],
        api_visibility="private")
    grid_export.click(E(partial(export_grid, ctx)), [model, export_name, scale, grid_mode] + view, download,
                      api_name="export_grid", concurrency_id="explore")
    grid_btn.click(E(partial(grid, ctx)), [model, grid_mode] + view, grid_img, api_name="grid", concurrency_id="explore")

    add_key.click(E(named(partial(B.add_key, ctx), "model", "ease", "state", *DIRECTION_NAMES)), [model, ease, state] + dir_sliders, [keys_md, state], api_name="add_keyframe")
    clear_keys.click(B.clear_keys, state, [keys_md, state], api_name="clear_keyframes")
    busy = lambda: (gr.update(interactive=False), gr.update(interactive=True), "")  # noqa: E731
    idle = lambda: (gr.update(interactive=True), gr.update(interactive=False))  # noqa: E731
    walk_btn.click(busy, None, [walk_btn, cancel_btn, walk_msg], api_visibility="private", queue=False).then(
        E(walk_), [model, export_name, per_key, fps, scale, kind, truncation, state],
        [video, walk_file, walk_msg], api_name="export_walk", concurrency_id="walk", concurrency_limit=1).then(
        idle, None, [walk_btn, cancel_btn], api_visibility="private", queue=False)
    cancel_btn.click(B.cancel_export, None, walk_msg, api_name="cancel_export", queue=False)
    dropped.upload(E(named(partial(B.open_export, ctx), "model", "file", "state", *DIRECTION_NAMES)), [model, dropped, state] + dir_sliders,
                   [model, truncation] + shown + dir_sliders, api_name="open_export")
    return {"model": model}
