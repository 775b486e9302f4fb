"""The command line's exploring commands: breed, directions, and animate's keyframe walks
(python -m gan_core breed|directions|animate ...). A model is a run or model folder, or the name
of a shipped model or of a run in the workspace."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import SHIPPED_MODELS, options
from .errors import ConfigError, StudioError


def resolve(text: str, workspace: str | None = "workspace") -> str:
    """A model folder from a path, a shipped model's name or a workspace run's name (runs.find_model)."""
    from .runs import find_model
    return str(find_model(text, Path(workspace or "workspace") / "runs", SHIPPED_MODELS))


def _load(a):
    from .checkpoint import load_generator, resolve_model_dir
    folder = resolve(a.run, a.workspace)
    G, cfg = load_generator(folder)
    if cfg.variant != "cgan":
        raise StudioError(f"{a.run} is a texture model; this command works on conditional models.")
    return G, cfg, resolve_model_dir(folder), Path(folder).resolve().name


def _blend(specs: list[str] | None, names: list[str]) -> dict[str, float]:
    from .sampling import class_weights
    blend = {}
    for s in specs or [names[0]]:
        name, _, w = s.partition("=")
        try:
            blend[name] = float(w) if w else 1.0
        except ValueError:
            raise StudioError(f"bad class weight in {s!r}; write NAME or NAME=WEIGHT, e.g. forest=0.7") from None
    class_weights(names, blend)  # refuses unknown classes and all-zero blends
    return blend


def _offsets(specs: list[str] | None) -> dict[int, float]:
    out = {}
    for s in specs or []:
        k, _, v = s.partition("=")
        try:
            i, x = int(k), float(v)
        except ValueError:
            raise StudioError(f"bad direction {s!r}; write INDEX=AMOUNT, e.g. 1=2.5 (directions count from 1)") \
                from None
        if i < 1:
            raise StudioError(f"directions count from 1, got {i}")
        out[i - 1] = x
    from .explore import offsets_from
    offsets_from([out.get(i, 0.0) for i in range(max(out, default=-1) + 1)])  # range check
    return out


def add_parsers(sub, model_help: str) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("run", metavar="RUN", nargs="?", default="demo-classes", help=model_help)
    common.add_argument("--workspace", default="workspace", help="where runs are found by name (default %(default)s)")
    common.add_argument("--class", dest="cls", action="append", metavar="NAME",
                        help="class, or NAME=WEIGHT to blend (repeat); default: the first class")
    common.add_argument("--truncation", type=options.arg("truncation"), default=1.0,
                        help="0 < t <= 1; lower is less varied (default %(default)s)")
    common.add_argument("--scale", type=int, default=4, choices=range(1, 9), metavar="1-8",
                        help="upscale factor of the written pictures (default %(default)s)")

    b = sub.add_parser("breed", parents=[common], help="children (or crossbreeds) of an image, as a captioned grid",
                       description="Variations of a parent image: its latent mixed with fresh noise by --strength "
                                   "(0 copies it, 1 is a new image), optionally the class blend too. With --cross, "
                                   "mixes of two parents. The PNG keeps every child's settings: breed again from "
                                   "it with --from FILE --pick N.")
    src = b.add_mutually_exclusive_group()
    src.add_argument("--parent", type=options.arg("seed"), default=0, help="seed of the parent (default %(default)s)")
    src.add_argument("--from", dest="from_png", metavar="PNG", help="a PNG written by breed (or the studio)")
    b.add_argument("--pick", type=int, default=1, help="with --from: which image of it is the parent, from 1")
    b.add_argument("--cross", type=options.arg("seed"), help="seed of a second parent: crossbreed instead")
    b.add_argument("--children", type=int, default=8, help="how many, 1-16 (default %(default)s)")
    b.add_argument("--strength", type=float, default=0.5, help="latent mutation 0-1 (default %(default)s)")
    b.add_argument("--class-mutation", type=float, default=0.0, help="class blend mutation 0-1 (default 0)")
    b.add_argument("--seed", type=int, default=0, help="seed of the mutations (default %(default)s)")
    b.add_argument("--out", required=True, help="PNG file to write")

    d = sub.add_parser("directions", parents=[common], help="the model's discovered directions, as a picture",
                       description="Closed-form factorisation of the generator's first layer gives the directions "
                                   "in which its images change most (no other network). Writes one row per "
                                   "direction, the image moved from -SPAN to +SPAN, and prints how much each "
                                   "changes the pictures.")
    d.add_argument("--k", type=int, default=5, help="directions, 1-10 (default %(default)s)")
    d.add_argument("--seed", type=options.arg("seed"), default=0, help="the image moved (default %(default)s)")
    d.add_argument("--span", type=float, default=3.0, help="furthest offset (default %(default)s)")
    d.add_argument("--steps", type=int, default=7, help="pictures per row (default %(default)s)")
    d.add_argument("--out", required=True, help="PNG file to write")


def add_walk_options(an) -> None:
    an.add_argument("--keys", metavar="SEEDS",
                    help="a looped keyframe walk through these seeds, e.g. 0,7,3,9 (a key may name its class: "
                         "7:grass or 7:grass=0.5+gravel=0.5); without it, seeds A -> B -> A")
    an.add_argument("--frames-per-key", type=int, default=24, help="with --keys: frames per segment (default 24)")
    an.add_argument("--ease", default="smooth", choices=("smooth", "linear", "ease-in", "ease-out"),
                    help="with --keys: easing of every segment (default smooth)")
    an.add_argument("--fps", type=float, default=None,
                    help="frames per second (default 24 with --keys, else about 16.7: 60 ms a frame)")
    an.add_argument("--scale", type=int, choices=range(1, 9), metavar="1-8", default=None,
                    help="upscale factor (default: 4 for --keys, 1 otherwise)")
    an.add_argument("--direction", action="append", metavar="I=AMOUNT",
                    help="with --keys: move every key along discovered direction I (from 1), e.g. 1=2")
    an.add_argument("--workspace", default="workspace", help="where runs are found by name (default %(default)s)")


def walk(a) -> int:
    from tqdm import tqdm

    from .explore import model_directions
    from .runs import Model
    from .walks import export_walk, parse_keys

    G, cfg, folder, name = _load(a)
    names = cfg.model.class_names
    keys = parse_keys(a.keys)
    fps = a.fps or 24
    offsets = _offsets(a.direction)
    for k in keys:
        k.ease, k.offsets = a.ease, offsets
    dirs = model_directions(Model(G, cfg, folder, folder), Path(a.workspace) / "cache") if offsets else None
    blend = _blend(a.cls, names)
    meta = {"comment": json.dumps({"model": name, "keys": [k.to_dict() for k in keys], "blend": blend})}
    with tqdm(total=100, unit="%", leave=False) as bar:
        def tick(stage, f):
            bar.set_description(stage)
            bar.n = round(100 * f)
            bar.refresh()
        out, n = export_walk(G, names, keys, a.out, blend=blend, frames_per_key=a.frames_per_key, fps=fps,
                             truncation=a.truncation, scale=a.scale or 4, dirs=dirs, metadata=meta,
                             on_progress=tick)
    print(f"wrote {out} ({n} frames, {len(keys)} keyframes, {n / fps:.1f} s at {fps:g} fps)")
    return 0


def dispatch(a) -> int:
    from .breeding import Specimen, children, crossbreed
    from .explore import export_settings, labelled_grid, model_directions, pictures, \
        specimen_grid, write_png
    from .runs import Model

    G, cfg, folder, name = _load(a)
    names = cfg.model.class_names
    blend = _blend(a.cls, names)
    if a.command == "breed":
        if a.from_png:
            from .media import read_settings
            got = read_settings(a.from_png).get("specimens") or []
            if not 1 <= a.pick <= len(got):
                raise ConfigError(f"{a.from_png} holds {len(got)} images; --pick one from 1 to {len(got)}.")
            parent = Specimen.from_dict(got[a.pick - 1])
        else:
            parent = Specimen.from_seed(a.parent, cfg.model.nz, blend, a.truncation)
        if a.cross is not None:
            other = Specimen.from_seed(a.cross, cfg.model.nz, blend, a.truncation)
            kids = crossbreed(parent, other, names, a.children, seed=a.seed)
        else:
            kids = children(parent, names, a.children, a.strength, a.class_mutation, seed=a.seed)
        img = specimen_grid(pictures(G, names, [parent] + kids), [parent] + kids, per_row=9)
        write_png(a.out, img, export_settings(name, [parent] + kids, a.truncation, {}), a.scale)
        print(f"wrote {a.out}: the parent ({parent.label}) and {len(kids)} "
              f"{'crossbreeds' if a.cross is not None else 'children'}")
        return 0
    # directions
    if not 1 <= a.k <= 10 or not 2 <= a.steps <= 15:
        raise ConfigError("--k is 1 to 10 and --steps 2 to 15.")
    from . import directions as D
    from .sampling import class_weights, noise
    dirs = model_directions(Model(G, cfg, folder, folder), Path(a.workspace) / "cache")[:a.k]
    z = noise([a.seed], cfg.model.nz, a.truncation)
    w = class_weights(names, blend)
    ts = [a.span * (2 * i / (a.steps - 1) - 1) for i in range(a.steps)]
    sp = Specimen(z[0].tolist(), blend, f"seed {a.seed}", a.seed)
    rows = [pictures(G, names, [Specimen((z[0] + t * d).tolist(), blend) for t in ts]) for d in dirs]
    img = labelled_grid(rows, [f"direction {i + 1}" for i in range(len(dirs))], [f"{t:+.1f}" for t in ts])
    write_png(a.out, img, export_settings(name, [sp], a.truncation, {}, {"directions_shown": a.k}), a.scale)
    e = D.effects(G, w, dirs, noise(list(range(a.seed, a.seed + 16)), cfg.model.nz, a.truncation), step=1.0)
    print(f"wrote {a.out} ({len(dirs)} directions from -{a.span:g} to +{a.span:g})")
    print("direction  mean pixel change per unit step (0-255)  largest |correlation| with another")
    for i, ch in enumerate(e["per_unit_step"]):
        others = [abs(c) for j, c in enumerate(e["correlation"][i]) if j != i]
        print(f"{i + 1:>9}  {ch:>6.2f}  {max(others, default=0):>6.2f}")
    return 0
