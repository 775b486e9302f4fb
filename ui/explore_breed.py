"""The Explore tab's handlers for breeding, directions, favourites, keyframe walks and opening an
export. Each is thin: widget values -> gan_core (explore, breeding, walks, media) -> updates.
The tab's session (gan_core.explore.Session) lives in a gr.State per browser tab."""

import json

import gradio as gr

from gan_core import explore, media, options, sampling
from gan_core.breeding import Favourites, Specimen
from gan_core.errors import ConfigError
from gan_core.walks import EASINGS, Keyframe, StopFlags, export_walk

from .common import Context

N_DIRECTIONS = 6
_CANCEL = StopFlags()  # per browser session: Cancel asks that session's running export to stop


def session(state, ctx: Context | None = None, model=None) -> explore.Session:
    """The browser tab's session; a new one when the model changed (a lineage, picks and keyframes
    belong to one model: another model's noise may not even fit it)."""
    s = state if isinstance(state, explore.Session) else explore.Session()
    if ctx is not None and model:
        key = str(ctx.ws.load_model(model, "cgan").path)
        if s.model not in (None, key):
            s = explore.Session()
        s.model = key
    return s


def model_and_dirs(ctx: Context, path):
    m = ctx.ws.load_model(path, "cgan")
    return m, explore.model_directions(m, ctx.ws.cache, N_DIRECTIONS)


def gallery_items(ctx: Context, path, s: explore.Session, offsets: dict[int, float]):
    """(picture, caption) per image of the session's current generation."""
    m, dirs = model_and_dirs(ctx, path)
    pics = explore.pictures(m.G, m.class_names, s.specimens, dirs, offsets)
    caps = [("▶ " if s.picks and i == s.picks[-1] else "A · " if len(s.picks) == 2 and i == s.picks[0]
             else "") + sp.label for i, sp in enumerate(s.specimens)]
    return list(zip(pics, caps))


def lineage_text(s: explore.Session) -> str:
    steps = s.lineage.steps
    if not steps:
        return ""
    bits = [f"**{st['what']}**" if i == s.lineage.at else st["what"] for i, st in enumerate(steps)]
    return "Lineage: " + " → ".join(bits[-6:]) + ("" if len(bits) <= 6 else f"  ({len(bits)} generations)")


def picks_text(s: explore.Session) -> str:
    if not s.picks:
        return "Click an image to make it the parent; click a second one to crossbreed the two."
    sp = s.specimens
    text = f"Parent: **{sp[s.picks[-1]].label}**"
    if len(s.picks) == 2:
        text += f" · A for a crossbreed: **{sp[s.picks[0]].label}**"
    return text


def shown(ctx: Context, path, s: explore.Session, dir_values):
    """The outputs every gallery change updates: the strip of pictures (model size), the gallery,
    the lineage, the picks line, undo, redo and the session."""
    items = gallery_items(ctx, path, s, explore.offsets_from(dir_values))
    chosen = gr.update(value=items, selected_index=s.picks[-1] if s.picks else None)  # the frame follows ▶
    line = s.strip(items[0][0])
    return (sampling.picture_grid([p for p, _ in items]), chosen, lineage_text(s), picks_text(s),
            gr.update(interactive=s.lineage.can_undo()), gr.update(interactive=s.lineage.can_redo()), s,
            gr.update(value=line, selected_index=s.lineage.at if line else None))


def pick(ctx: Context, path, state, evt: gr.SelectData, *dir_values):
    explore.offsets_from(dir_values)  # checked before anything changes
    s = session(state, ctx, path)
    s.pick(evt.index)
    return shown(ctx, path, s, dir_values)


def show_api(ctx: Context, model, seed, n, classes, truncation, state, *dir_values):
    """The API's seed view: pictures of seeds seed..seed+n-1 for a blend "brick=0.3, grass=0.7"."""
    from .explore_api import parse_classes
    m = ctx.ws.load_model(model, "cgan")
    blend = parse_classes(classes, m.class_names)
    sampling.class_weights(m.class_names, blend)  # unknown classes and all-zero blends are refused here
    seed, n = options.value(seed, "seed"), options.value(n, "images")
    t = options.value(truncation, "truncation")
    sps = [Specimen.from_seed(k, m.cfg.model.nz, blend, t) for k in range(seed, seed + n)]
    s = session(state, ctx, model)
    s.show_seeds(sps, f"seeds {seed}-{seed + n - 1}")
    return shown(ctx, model, s, dir_values)


def pick_index(ctx: Context, model, index, state, *dir_values):
    """The API's way to click an image (index from 0)."""
    explore.offsets_from(dir_values)  # checked before anything changes
    s = session(state, ctx, model)
    s.pick(int(index or 0))
    return shown(ctx, model, s, dir_values)


def breed(ctx: Context, model, children, strength, class_mutation, seed, state, *dir_values):
    s = session(state, ctx, model)
    m, dirs = model_and_dirs(ctx, model)
    s.breed(m.class_names, int(children), float(strength), float(class_mutation), int(seed or 0), dirs,
            explore.offsets_from(dir_values))
    return shown(ctx, model, s, [0] * len(dir_values)) + tuple(gr.update(value=0) for _ in dir_values)


def crossbreed(ctx: Context, model, children, seed, state, *dir_values):
    s = session(state, ctx, model)
    m, dirs = model_and_dirs(ctx, model)
    s.cross(m.class_names, int(children), int(seed or 0), dirs, explore.offsets_from(dir_values))
    return shown(ctx, model, s, [0] * len(dir_values)) + tuple(gr.update(value=0) for _ in dir_values)


def goto(ctx: Context, model, state, evt: gr.SelectData, *dir_values):
    explore.offsets_from(dir_values)
    s = session(state, ctx, model)
    s.goto(evt.index)
    return shown(ctx, model, s, dir_values)


def undo(ctx: Context, model, state, *dir_values):
    explore.offsets_from(dir_values)  # checked before anything changes
    s = session(state, ctx, model)
    s.undo()
    return shown(ctx, model, s, dir_values)


def redo(ctx: Context, model, state, *dir_values):
    explore.offsets_from(dir_values)  # checked before anything changes
    s = session(state, ctx, model)
    s.redo()
    return shown(ctx, model, s, dir_values)


def favourites(ctx: Context):
    """The favourites gallery: (png, caption) newest first."""
    return [(str(png), f"{rec['model']}: {rec['specimen'].get('label', '')}")
            for png, rec in Favourites(ctx.ws.favourites).entries()]


def add_favourite(ctx: Context, model, truncation, state, *dir_values):
    s = session(state, ctx, model)
    m, dirs = model_and_dirs(ctx, model)
    sp = s.parent(dirs, explore.offsets_from(dir_values))
    pic = explore.pictures(m.G, m.class_names, [sp])[0]
    big = media.upscale(pic, explore.display_size(pic.shape[0], 256))
    Favourites(ctx.ws.favourites).add(m.name, sp, big, {"truncation": options.value(truncation, "truncation")})
    gr.Info(f"Kept {sp.label} in the favourites.")
    return favourites(ctx)


def open_favourite(ctx: Context, model, state, evt: gr.SelectData, *dir_values):
    entries = Favourites(ctx.ws.favourites).entries()
    if not 0 <= evt.index < len(entries):
        raise ConfigError("That favourite is gone; press Refresh.")
    return restore_favourite(ctx, model, entries[evt.index][1], state, dir_values)


def restore_favourite(ctx: Context, model, rec: dict, state, dir_values):
    s = session(state, ctx, model)
    m = ctx.ws.load_model(model, "cgan")
    if rec.get("model") != m.name:
        raise ConfigError(f"This favourite comes from the model {rec.get('model')!r}; choose it first.")
    s.restore([Specimen.from_dict(rec["specimen"])], "favourite")
    return shown(ctx, model, s, dir_values)


def direction_preview(ctx: Context, model, state, *dir_values):
    """One row per direction: the parent (or the first image) moved from -3 to +3."""
    s = session(state, ctx, model)
    if not s.specimens:
        return None
    m, dirs = model_and_dirs(ctx, model)
    sp = s.parent(dirs, explore.offsets_from(dir_values)) if s.picks else s.specimens[0]
    ts = [-3, 0, 3]
    rows = [explore.pictures(m.G, m.class_names, [Specimen((sp.latent() + t * d).tolist(), sp.blend) for t in ts])
            for d in dirs]
    return explore.labelled_grid(rows, [f"direction {i + 1}" for i in range(len(dirs))], [f"{t:+g}" for t in ts],
                                 scale=explore.display_size(m.cfg.model.resolution, 96))


def export_picked(ctx: Context, model, name, scale, truncation, state, *dir_values):
    """The picked picture (or, with none picked, all shown, captioned) at 1x-8x, with its settings:
    the images as they were before the direction offsets, and the offsets."""
    s = session(state, ctx, model)
    m, dirs = model_and_dirs(ctx, model)
    offsets = explore.offsets_from(dir_values)
    chosen = [s.specimens[s.picks[-1]]] if s.picks else s.specimens
    pics = explore.pictures(m.G, m.class_names, chosen, dirs, offsets)
    img = pics[0] if len(chosen) == 1 else explore.specimen_grid(pics, chosen)
    out = ctx.ws.export_path(name or m.name, ".png")
    settings = explore.export_settings(m.name, chosen, options.value(truncation, "truncation"), offsets,
                                       {"checkpoint": m.folder.name})
    explore.write_png(out, img, settings, int(scale))
    return gr.update(value=str(out), visible=True, label=f"Download {out.name}")


def add_key(ctx: Context, model, ease, state, *dir_values):
    s = session(state, ctx, model)
    if ease not in EASINGS:
        raise ConfigError(f"Easing is one of {', '.join(EASINGS)}, not {ease!r}.")
    m, dirs = model_and_dirs(ctx, model)
    sp = s.parent(dirs, explore.offsets_from(dir_values)) if s.picks else None
    if sp is None:
        raise ConfigError("Click the image to add as a keyframe first.")
    s.keys.append({"z": sp.z, "blend": sp.blend, "ease": ease, "label": sp.label})
    return keys_text(s), s


def clear_keys(state):
    s = session(state)
    s.keys = []
    return keys_text(s), s


def keys_text(s: explore.Session) -> str:
    if not s.keys:
        return "No keyframes yet: click an image, then *Add keyframe* (two at least; the walk loops back)."
    return "Keyframes: " + " → ".join(f"{i + 1}. {k['label']} ({k['ease']})" for i, k in enumerate(s.keys)) + " → 1."


def export_walk_video(ctx: Context, model, name, frames_per_key, fps, scale, kind, truncation, state,
                      request: gr.Request, progress=gr.Progress()):
    s = session(state, ctx, model)
    m = ctx.ws.load_model(model, "cgan")
    if len(s.keys) < 2:
        raise ConfigError("Add two keyframes at least (click an image, then Add keyframe).")
    keys = [Keyframe(z=k["z"], blend=k["blend"], ease=k["ease"]) for k in s.keys]
    should_stop = _CANCEL.start(_who(request))
    out = ctx.ws.export_path(f"{name or m.name}-walk", f".{kind}")
    meta = {"comment": json.dumps({"model": m.name, "keys": [k.to_dict() for k in keys]})}
    stages = {"frames": (0.0, 0.85, "Drawing frames"), "writing": (0.85, 0.15, f"Writing {kind.upper()}")}

    def tick(stage, f):
        lo, span, desc = stages[stage]
        progress(lo + span * f, desc=desc)

    path, n = export_walk(m.G, m.class_names, keys, out, blend=keys[0].blend, frames_per_key=int(frames_per_key),
                          fps=float(fps), truncation=options.value(truncation, "truncation"), scale=int(scale),
                          metadata=meta if kind == "mp4" else None, on_progress=tick, should_stop=should_stop)
    video = gr.update(value=str(path) if kind == "mp4" else None)
    return video, gr.update(value=str(path), visible=True), f"Wrote {path.name}: {n} frames, {n / float(fps):.1f} s."


def cancel_export(request: gr.Request):
    _CANCEL.stop(_who(request))
    return "Cancelling…"


def _who(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def open_export(ctx: Context, model, file, state, *dir_values):
    """Settings of a dropped PNG: the model (its name), images, truncation and direction offsets."""
    if file is None:
        return (gr.skip(),) * (8 + len(dir_values))
    rec = media.read_settings(getattr(file, "name", file))
    name = rec.get("model")
    listed = {label.split("  (")[0]: folder for label, folder in ctx.ws.models("cgan")}
    if name not in listed:
        raise ConfigError(f"This export was made with the model {name!r}, which is not in the list; "
                          "train or copy it, then press Refresh.")
    path = listed[name]
    s = session(state, ctx, path)  # the exported model's session (a fresh one for another model)
    if "specimens" in rec:
        sps = [Specimen.from_dict(d) for d in rec["specimens"]]
    elif "specimen" in rec:
        sps = [Specimen.from_dict(rec["specimen"])]
    else:
        v = rec["view"]
        view = sampling.View(v["blend"], v["seed_a"], v["seed_b"], v["position"], v["method"], v["truncation"], v["n"])
        z = view.latents(ctx.ws.load_model(path, "cgan").cfg.model.nz)
        sps = [Specimen(z[i].tolist(), view.blend, f"seed {view.seed_a + i}", view.seed_a + i) for i in range(view.n)]
    s.restore(sps, "opened export")
    s.keep_next = True  # if the model changes, its opening redraws but keeps these pictures
    offsets = {int(k): float(v) for k, v in (rec.get("directions") or {}).items()}
    values = [offsets.get(i, 0.0) for i in range(len(dir_values))]
    trunc = rec.get("truncation") or rec.get("view", {}).get("truncation")
    return (gr.update(value=path), gr.update(value=float(trunc)) if trunc else gr.skip()) \
        + shown(ctx, path, s, values) + tuple(gr.update(value=v) for v in values)


def with_ctx(ctx: Context):
    """The handlers that Gradio hands event data, the request or progress, bound to ctx (Gradio
    finds those by the annotations, which a functools.partial does not carry)."""
    def pick_(path, state, evt: gr.SelectData, *dir_values):
        return pick(ctx, path, state, evt, *dir_values)

    def open_favourite_(model, state, evt: gr.SelectData, *dir_values):
        return open_favourite(ctx, model, state, evt, *dir_values)

    def export_walk_(model, name, frames_per_key, fps, scale, kind, truncation, state, request: gr.Request,
                     progress=gr.Progress()):
        return export_walk_video(ctx, model, name, frames_per_key, fps, scale, kind, truncation, state, request,
                                 progress)
    def goto_(model, state, evt: gr.SelectData, *dir_values):
        return goto(ctx, model, state, evt, *dir_values)
    return pick_, open_favourite_, export_walk_, goto_
