"""Command line: python -m gan_core {check,train,resume,sample,animate,breed,directions,texture,export} ... (see --help
of each). Settings pass through gan_core.options, as the studio's do, so both doors accept and
refuse the same values.

`train` and `resume` also run under torchrun (data parallel, one process per GPU or CPU share):
torchrun --nproc_per_node=N -m gan_core train ...
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from . import SHIPPED_MODELS, cli_explore, options, texture_command
from .config import (AUGMENTS, CRITIC_WIDTH, DEFAULT_RECIPE, LOSSES, NO_STEP_LIMIT, RECIPES, RESOLUTIONS, SHORT_CRITIC,
                     SHORT_KIMG, CGANConfig, RunConfig, SGANConfig, TrainConfig)
from .errors import StudioError, os_error_text

DEMO_CGAN = SHIPPED_MODELS / "demo-classes"
DEMO_SGAN = SHIPPED_MODELS / "demo-textures"

EPILOG = """examples:
  python -m gan_core check assets/demo/classes
  python -m gan_core check assets/demo/textures/brick.png --texture
  python -m gan_core train cgan assets/demo/classes --out runs/demo --minutes 10
  python -m gan_core resume runs/demo --minutes 5
  python -m gan_core train cgan assets/demo/classes --out runs/demo-steps --steps 3000
  python -m gan_core resume runs/demo-steps --steps 5000
  python -m gan_core sample runs/demo --class brick --n 16 --out brick.png
  python -m gan_core animate runs/demo --class brick=0.3 --class grass=0.7 --seed-b 5 --out loop.gif
  python -m gan_core animate --keys 0,7,3,9 --out walk.mp4      (a looped keyframe walk, shipped demo)
  python -m gan_core breed demo-classes --parent 7 --children 8 --strength 0.4 --out kids.png
  python -m gan_core breed --from kids.png --pick 3 --out grandkids.png
  python -m gan_core directions --k 5 --out directions.png
  python -m gan_core train sgan assets/demo/textures/brick.png --out runs/brick
  python -m gan_core texture runs/brick --width 1536 --height 1024 --tileable --out brick.png
  python -m gan_core texture --tileable --maps height,normal --out wall.png   (wall_color.png, wall_height.png, ...)
  python -m gan_core texture --width 2048 --height 512 --morph 0:1 --out morph.png
  python -m gan_core export runs/demo --out checkpoints/my-model
  python -m gan_core sample --out demo.png          (the shipped demo model)
  torchrun --nproc_per_node=2 -m gan_core train cgan assets/demo/classes --out runs/demo2 --batch 64
"""


def _augment(v: str) -> list[str]:
    try:
        return options.augment_list(v)
    except StudioError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_train_options(p: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--out", required=True, help="run folder to create (checkpoints, samples, stats)")
    g.add_argument("--steps", type=options.arg("steps"),
                   help=f"generator steps (default {defaults.steps}; with --minutes: no step limit)")
    g.add_argument("--minutes", type=options.arg("minutes"),
                   help="train for this much time, then stop with a checkpoint (with --steps: whichever "
                        "comes first)")
    g.add_argument("--batch", type=options.arg("batch"),
                   help=f"images per batch, over all processes under torchrun (default {defaults.batch})")
    g.add_argument("--recipe", choices=tuple(RECIPES), default=DEFAULT_RECIPE,
                   help="studio: resize-convolution generators (nearest x2 + convolution), 1 critic step, "
                        "Adam betas 0 0.99 with the rate falling to 0 over the second half of the run, EMA over "
                        "10k images; for conditional models the rpgan loss, Adam 1e-4 and adaptive augmentation "
                        "(translation, colour, cutout; one draw per group of 4 images the critic compares) and "
                        f"--mirror-balance {RECIPES['studio']['train_cgan']['mirror_balance']}, "
                        "for textures the hinge loss, Adam 2e-4 and --diversity 0.2; "
                        "reference: the reference networks (transposed convolutions) with WGAN-GP (lambda 5), "
                        "2 critic steps, Adam 1e-4 betas 0.1 0.9; fast: the reference networks with hinge loss, "
                        "1 critic step, Adam 2e-4 betas 0 0.99, --diversity 0.2 (default %(default)s). "
                        "The options below override single settings of the recipe")
    g.add_argument("--loss", choices=LOSSES, help="wgan-gp: Wasserstein loss with gradient penalty; hinge: hinge "
                                                  "loss; rpgan: relativistic pairing with R1 + R2 penalties")
    g.add_argument("--gp-lambda", type=options.arg("gp_lambda"), help=f"gradient penalty weight (default {defaults.gp_lambda})")
    g.add_argument("--r1-gamma", type=options.arg("r1_gamma"),
                   help="rpgan: weight of the zero-centred R1 + R2 penalties (studio recipe: "
                        f"{RECIPES['studio']['train']['r1_gamma']})")
    g.add_argument("--n-critic", type=options.arg("n_critic"), help="critic updates per generator update")
    g.add_argument("--lr", type=options.arg("lr"), help="Adam learning rate of both networks")
    g.add_argument("--lr-d", type=options.arg("lr_d"),
                   help="critic learning rate, if it should differ from --lr (e.g. 4e-4 with --lr 1e-4)")
    g.add_argument("--lr-boost", type=options.arg("lr_boost"),
                   help="both learning rates start at this multiple for the first 10k images and fall back "
                        "over the next 10k, whatever the budget (1: off). Default: by the budget; the studio "
                        "recipe's conditional models start at 3x for budgets up to 1 minute (their rates "
                        "falling over the last quarter), at 1x from 2 minutes on, see README")
    g.add_argument("--betas", type=float, nargs=2, metavar=("B1", "B2"), help="Adam betas")
    g.add_argument("--augment", type=_augment, default=None, metavar="LIST",
                   help=f"comma-separated differentiable augmentations for small datasets: {','.join(AUGMENTS)} "
                        "or none (default: the recipe's)")
    g.add_argument("--diversity", type=options.arg("diversity"),
                   help="weight of a mode-seeking term that keeps samples of one class from collapsing into "
                        "one image (e.g. 0.2; 0: off)")
    g.add_argument("--mirror-balance", type=options.arg("mirror_balance"),
                   help="conditional models: weight of the generator's term against every picture of a class "
                        "leaning its diagonal detail one way (studio recipe: "
                        f"{RECIPES['studio']['train_cgan']['mirror_balance']}; 0: off)")
    g.add_argument("--no-mirror", action="store_true", help="do not flip real images at random")
    g.add_argument("--ema", type=options.arg("ema"),
                   help=f"EMA decay per step of the sampling generator, instead of the recipe's half-life in "
                        f"images (reference default {defaults.ema_beta})")
    g.add_argument("--seed", type=options.arg("seed"), help=f"random seed (default {defaults.seed})")
    g.add_argument("--sample-every", type=options.arg("sample_every"),
                   help=f"steps between sample grids (default {defaults.sample_every})")
    g.add_argument("--ckpt-every", type=options.arg("ckpt_every"),
                   help=f"steps between checkpoints (default {defaults.ckpt_every})")
    g.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 autocast where the hardware is fast at it, else fp32")
    g.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, or cuda[:N]; "
                                                     "under torchrun auto, cpu or cuda (the GPU of each local rank)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gan_core", description="Train and sample GANs headless.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ck = sub.add_parser("check", help="read training data as training would, and say what it holds",
                        description="Decode every image of a data folder (or texture images) and list the "
                                    "classes, the counts and the files that cannot be used, with the reasons; "
                                    "exit status 2 when training could not start on it.")
    ck.add_argument("data", nargs="+", metavar="DATA", help="class folder, or (with --texture) texture images "
                                                             "or a folder of them")
    ck.add_argument("--texture", action="store_true", help="check texture images instead of class folders")
    ck.add_argument("--batch", type=options.arg("batch"), help="also check that the data holds a batch")
    ck.add_argument("--patch", type=options.arg("patch"),
                    help=f"textures: the training patch (default {TrainConfig.for_variant('sgan').patch})")

    tr = sub.add_parser("train", help="start a training run")
    tsub = tr.add_subparsers(dest="variant", required=True, metavar="VARIANT")
    c = tsub.add_parser("cgan", help="conditional GAN on a folder with one subfolder per class",
                        description="Train a conditional GAN. DATA_DIR holds one subfolder per class "
                                    "(e.g. urban/, forest/) with jpg/png/webp/bmp/tif images.")
    c.add_argument("data", metavar="DATA_DIR", help="folder with one subfolder of images per class")
    mc = CGANConfig()
    c.add_argument("--res", type=int, choices=RESOLUTIONS, help=f"image size (default {mc.resolution})")
    c.add_argument("--g-channels", type=options.arg("g_channels"), help=f"generator width (default {mc.g_channels})")
    c.add_argument("--d-channels", type=options.arg("d_channels"),
                   help=f"critic width (default: the recipe's; in studio 0, by the time budget: {SHORT_CRITIC} for a "
                        f"budget this computer trains on at most {SHORT_KIMG:g} thousand images, else {CRITIC_WIDTH})")
    c.add_argument("--conditioning", choices=("projection", "concat"),
                   help=f"how the critic sees the class (default {mc.conditioning})")
    c.add_argument("--noise-maps", action=argparse.BooleanOptionalAction, default=None,
                   help="a noise map per upsampling stage of the generator (default: the recipe's; on in studio)")
    c.add_argument("--sle", action=argparse.BooleanOptionalAction, default=None,
                   help="skip-layer excitation in the generator (default: the recipe's; on in studio)")
    c.add_argument("--half-chroma", action=argparse.BooleanOptionalAction, default=None,
                   help="colour drawn at half the resolution of brightness (default: the recipe's; on in studio)")
    c.add_argument("--g-extra", type=options.arg("g_extra"), metavar="N",
                   help="the generator's first N upsampling stages (8 px, 16 px, ...) draw with two 3x3 "
                        "convolutions instead of one; the last stage always has one (default: the recipe's; "
                        f"{RECIPES['studio']['model']['cgan'].get('g_extra', 0)} in studio)")
    c.add_argument("--colour-gate", action=argparse.BooleanOptionalAction, default=None,
                   help="the class sets how much colour is drawn, so grey classes can be grey (needs half-chroma; "
                        "default: the recipe's; on in studio)")
    _add_train_options(c, TrainConfig.for_variant("cgan"))

    s = tsub.add_parser("sgan", help="spatial (texture) GAN on one or several texture images",
                        description="Train a spatial GAN on random patches of one or more texture images. "
                                    "Several images are fused into one model with one style per image.")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="texture image files, or a folder of them")
    ms, ts = SGANConfig(), TrainConfig.for_variant("sgan")
    s.add_argument("--patch", type=options.arg("patch"), help=f"training patch size in pixels (default {ts.patch})")
    s.add_argument("--max-side", type=options.arg("max_side"),
                   help=f"shrink sources so their shorter side is at most this (default {ts.max_side})")
    s.add_argument("--depth", type=options.arg("depth"), help=f"stride-2 layers (default {ms.depth})")
    s.add_argument("--g-channels", type=options.arg("g_channels"), help=f"generator width (default {ms.g_channels})")
    s.add_argument("--d-channels", type=options.arg("d_channels"), help=f"critic width (default {ms.d_channels})")
    _add_train_options(s, ts)

    r = sub.add_parser("resume", help="continue a stopped or crashed run from its newest checkpoint")
    r.add_argument("run", metavar="RUN", help="run folder, or the name of a run in --workspace")
    r.add_argument("--workspace", default="workspace", help="where runs are found by name (default %(default)s)")
    r.add_argument("--steps", type=options.arg("steps"), help="new total number of steps (default: the run's own)")
    r.add_argument("--minutes", type=options.arg("add_minutes"), help="train this much more time (without --steps: no step limit)")
    r.add_argument("--device", default="auto")

    sm = sub.add_parser("sample", help="write a grid of images from a conditional model")
    sm.add_argument("run", metavar="RUN", nargs="?", default=str(DEMO_CGAN),
                    help="run or model folder, or a model's name (default: the shipped demo, %(default)s)")
    sm.add_argument("--workspace", default="workspace", help="where runs are found by name (default %(default)s)")
    sm.add_argument("--class", dest="cls", action="append", metavar="NAME",
                    help="class to draw (repeat, or NAME=WEIGHT to blend, e.g. --class urban=0.3 --class forest=0.7); "
                         "default: one row per class")
    sm.add_argument("--n", type=options.arg("images"), default=16, help="images (per class row) (default %(default)s)")
    sm.add_argument("--seed", type=int, default=0, help="first seed; image i uses seed+i (default %(default)s)")
    sm.add_argument("--truncation", type=options.arg("truncation"), default=1.0, help="0 < t <= 1; lower is less varied (default %(default)s)")
    sm.add_argument("--raw", action="store_true",
                    help="the generator's pictures as drawn, without the model's spectral equaliser (see README)")
    sm.add_argument("--out", required=True, help="PNG file to write")

    an = sub.add_parser("animate", help="write a looping animation (MP4, GIF or WebP) from a conditional model",
                        description="With --keys, a looped walk through keyframes (seeds), each segment eased; "
                                    "else images of seeds A, A+1, ... move to seeds B, B+1, ... and back (a loop "
                                    "without a jump), for a class or a blend of classes. The format comes from "
                                    "the file name.")
    an.add_argument("run", metavar="RUN", nargs="?", default=str(DEMO_CGAN),
                    help="run or model folder, or a model's name (default: the shipped demo, %(default)s)")
    an.add_argument("--class", dest="cls", action="append", metavar="NAME",
                    help="class, or NAME=WEIGHT to blend (repeat); default: the first class")
    an.add_argument("--seed-a", type=options.arg("seed"), default=0, help="first seed of A (default %(default)s)")
    an.add_argument("--seed-b", type=options.arg("seed"), default=1, help="first seed of B (default %(default)s)")
    an.add_argument("--n", type=options.arg("images"), default=4, help="images side by side (default %(default)s)")
    an.add_argument("--frames", type=options.arg("frames"), default=32, help="frames of the loop (default %(default)s)")
    an.add_argument("--path", choices=("slerp", "lerp"), default="slerp", help="interpolation (default %(default)s)")
    an.add_argument("--truncation", type=options.arg("truncation"), default=1.0,
                    help="0 < t <= 1; lower is less varied (default %(default)s)")
    an.add_argument("--out", required=True, help="file to write: .mp4, .gif or .webp")
    cli_explore.add_walk_options(an)
    cli_explore.add_parsers(sub, "run or model folder, or a model's name (default: the shipped demo, demo-classes)")

    tx = sub.add_parser("texture", help="write a texture from a spatial model")
    tx.add_argument("run", metavar="RUN", nargs="?", default=str(DEMO_SGAN),
                    help="run or model folder, or a model's name (default: the shipped demo, %(default)s)")
    tx.add_argument("--workspace", default="workspace", help="where runs are found by name (default %(default)s)")
    tx.add_argument("--width", type=options.arg("width"), default=1024, help="pixels, up to 8192 (default %(default)s)")
    tx.add_argument("--height", type=options.arg("height"), default=1024, help="pixels, up to 8192 (default %(default)s)")
    texture_command.add_arguments(tx)

    eq = sub.add_parser("equalise", help="fit a conditional model's spectral equaliser to its class folder "
                                         "(for models saved before it existed; training fits its own)")
    eq.add_argument("run", metavar="MODEL", help="model folder, run folder (its newest checkpoint) or a model's name")
    eq.add_argument("--data", help="the class folder it was trained on (default: the one in its config.json)")
    eq.add_argument("--workspace", default="workspace", help="where runs are found by name (default %(default)s)")
    ex = sub.add_parser("export", help="write a small model folder (config.json + float16 EMA generator) from a run",
                        description="Copy a run's newest generator into a model folder for sharing or for the "
                                    "studio's model list: config.json and G_ema.safetensors in float16, "
                                    "without the critic, optimizer state or data paths of this machine.")
    ex.add_argument("run", metavar="RUN", help="run, checkpoint or model folder, or a model's name")
    ex.add_argument("--workspace", default="workspace", help="where runs are found by name (default %(default)s)")
    ex.add_argument("--out", required=True, help="model folder to create (must not exist)")
    ex.add_argument("--fp32", action="store_true", help="keep float32 weights (twice the size)")
    return p


class _Bar:
    """tqdm progress with losses; Ctrl-C (or SIGTERM, SIGHUP) asks the loop to stop after saving a
    checkpoint. (Under torchrun only the lead process gets progress events; `quiet` keeps the
    others silent.)"""

    def __init__(self, quiet: bool = False):
        self.bar = None
        self.stop = False
        self.quiet = quiet
        self.before = {}  # the handlers to put back when training ends (main() may run inside a program)
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # a closed terminal or `kill` saves as Ctrl-C does
            if hasattr(signal, name):
                self.before[name] = signal.signal(getattr(signal, name), self._sigint)

    def _sigint(self, *_):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        if not self.quiet:
            print("\nstopping after this step and saving a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for name, handler in self.before.items():
            signal.signal(getattr(signal, name), handler)
        self.before = {}

    def __call__(self, p) -> None:
        from tqdm import tqdm
        if p.event == "data":
            print(p.message)
            return
        by_time = bool(p.budget_s) and p.total >= NO_STEP_LIMIT  # a time budget alone: a bar of seconds
        if self.bar is None:
            if by_time:  # a budget under half a second, or a first report after it ran out, still draws
                total = max(1, round(p.budget_s))
                self.bar = tqdm(total=total, initial=min(round(p.used_s), total), unit="s", dynamic_ncols=True,
                                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s{postfix}")
            else:
                self.bar = tqdm(total=p.total, initial=p.step, unit="step", dynamic_ncols=True)
        self.bar.n = min(round(p.used_s), self.bar.total) if by_time else p.step
        if p.event == "log":
            r = p.record
            self.bar.set_postfix(**({"step": p.step} if by_time else {}), d=f"{r['d_loss']:.3f}",
                                 g=f"{r['g_loss']:.3f}", ips=f"{r['img_per_s']:.0f}")
        elif p.event in ("rollback",):
            self.bar.write(p.message)
        elif p.event == "quality" and p.step:
            self.bar.write(f"step {p.step}: {_quality_line(p.record)}")
        self.bar.refresh()
        if p.event == "done":
            self.bar.close()


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return _dispatch(a)
    except StudioError as e:
        rank = os.environ.get("RANK", "0")  # set by torchrun: each process reports its own error
        print(f"error: {e}" if rank == "0" else f"error (rank {rank}): {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only folder, a path that is a file...
        print(f"error: {os_error_text(e)}. Check the path, free some disk space or make the folder "
              "writable; a run's earlier checkpoints are kept and it can be resumed.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aborted; the run can be resumed from its newest checkpoint", file=sys.stderr)
        return 130


def _dispatch(a) -> int:
    from . import checkpoint, parallel, sampling, train

    if a.command in ("train", "resume"):
        with parallel.process_group(a.device) as device:  # joins torchrun's processes, if any
            lead = parallel.current_share().lead
            bar = _Bar(quiet=not lead)
            try:
                if a.command == "train":
                    res = train.train(_run_config(a), a.out, on_progress=bar, should_stop=lambda: bar.stop,
                                      device=device)
                else:
                    from .runs import find_model
                    run = find_model(a.run, Path(a.workspace) / "runs", None)  # a run: never a shipped model
                    res = train.resume(run, steps=a.steps, minutes=a.minutes, on_progress=bar,
                                       should_stop=lambda: bar.stop, device=device)
            finally:
                bar.close()  # an error message starts on a line of its own
        if lead:
            _report(res)
        return 0
    if a.command == "check":
        from .datacheck import check_data
        variant = "sgan" if a.texture else "cgan"
        if variant == "cgan" and len(a.data) > 1:
            raise StudioError("A class folder is one folder (with one subfolder per class); give one path.")
        patch = a.patch or (TrainConfig.for_variant("sgan").patch if a.texture else None)
        rep = check_data(variant, a.data, batch=a.batch, patch=patch)
        print(rep.text())
        return 0 if rep.ok else 2
    if a.command in ("breed", "directions"):
        return cli_explore.dispatch(a)
    if a.command == "animate" and a.keys:
        return cli_explore.walk(a)
    if a.command == "animate":
        G, cfg = checkpoint.load_generator(cli_explore.resolve(a.run, a.workspace))
        if cfg.variant != "cgan":
            raise StudioError(f"{a.run} is a texture model; animations are made from conditional models.")
        names = cfg.model.class_names
        view = sampling.View(dict(_weight(s) for s in a.cls) if a.cls else {names[0]: 1.0}, a.seed_a, a.seed_b,
                             0.0, a.path, a.truncation, a.n)
        sampling.class_weights(names, view.blend)  # an unknown class is refused before any frame
        frames = sampling.loop_frames(G, names, view, a.frames)
        from .media import save_video, upscale
        save_video([upscale(f, a.scale or 1) for f in frames], a.out, a.fps or 1000 / 60)
        print(f"wrote {a.out} ({len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]})")
        return 0
    if a.command == "sample":
        G, cfg = checkpoint.load_generator(cli_explore.resolve(a.run, a.workspace), equalise=not a.raw)
        if cfg.variant != "cgan":
            raise StudioError(f"{a.run} is a texture model; use the texture command.")
        names = cfg.model.class_names
        if not a.cls:
            img = sampling.class_grid(G, names, a.n, a.seed, a.truncation)
            spec = "one row per class"
        else:
            blend = dict(_weight(s) for s in a.cls)
            z = sampling.noise(list(range(a.seed, a.seed + a.n)), cfg.model.nz, a.truncation)
            img = sampling.grid(sampling.generate(G, z, sampling.class_weights(names, blend)), min(a.n, 8))
            spec = json.dumps(blend)
        sampling.save_png(a.out, img, {"model": str(a.run), "classes": spec, "seed": str(a.seed),
                                      "n": str(a.n), "truncation": str(a.truncation),
                                      "equaliser": "off" if a.raw or G.spectral_gain is None else "on"})
        print(f"wrote {a.out} ({img.shape[1]}x{img.shape[0]})")
        return 0
    if a.command == "texture":
        return texture_command.run(a)
    if a.command == "equalise":
        from .spectrum import SPECTRUM_FILE, fit_folder
        folder = checkpoint.resolve_model_dir(cli_explore.resolve(a.run, a.workspace))
        data = a.data or checkpoint.read_config(folder).data[0]
        if not Path(data).is_dir():
            raise StudioError(f"The class folder {data} is not there; give it with --data.")
        gains = fit_folder(folder, data)
        print(f"wrote {folder / SPECTRUM_FILE}: gains {float(gains.min()):.2f}-1 over the frequencies of "
              f"{len(gains)} classes (1 = left as drawn)")
        return 0
    if a.command == "export":
        out = checkpoint.export_model(cli_explore.resolve(a.run, a.workspace), a.out, half=not a.fp32)
        size = sum(f.stat().st_size for f in out.iterdir())
        print(f"wrote {out} ({size / 2**20:.1f} MiB)")
        return 0
    raise AssertionError(a.command)


def _run_config(a) -> RunConfig:
    """The command line's settings, through the same door as the studio's (gan_core.options)."""
    given = {k: getattr(a, k, None) for k in ("steps", "minutes", "batch", "g_channels", "d_channels", "loss",
                                              "n_critic", "lr", "lr_d", "betas", "diversity", "augment", "ema",
                                              "seed", "sample_every", "ckpt_every", "gp_lambda", "conditioning",
                                              "patch", "max_side", "depth", "r1_gamma", "mirror_balance",
                                              "g_extra", "lr_boost", *options.MODEL_SWITCHES)}
    given.update(mirror=not a.no_mirror, precision=a.precision)
    if a.variant == "cgan":
        given["resolution"] = a.res
    data = [a.data] if a.variant == "cgan" else a.images
    return options.run_config(a.variant, data, recipe=a.recipe, **given)


def _weight(spec: str) -> tuple[str, float]:
    name, _, w = spec.partition("=")
    try:
        return name, float(w) if w else 1.0
    except ValueError:
        raise StudioError(f"bad class weight in {spec!r}; write NAME or NAME=WEIGHT, e.g. forest=0.7") from None


def _quality_line(q: dict) -> str:
    """The quality gauge in words: distance to the user's images against the real-vs-real floor."""
    floor = q.get("swd_floor")
    near = f" = {q['swd'] / floor:.1f}x the distance between your own images ({floor:.0f})" if floor else ""
    return f"distance to your images {q['swd']:.0f}{near}; grid pattern {q['grid']:.2f} (1 = like your images)"


def _report(res) -> None:
    from . import checkpoint
    from .runs import earlier_best, read_quality
    state = "stopped" if res.stopped else "finished"
    print(f"{state} at step {res.step}; checkpoint {res.checkpoint}")
    q = read_quality(res.run_dir)
    if q:
        print(_quality_line(q[-1]))
    best = earlier_best(res.run_dir, res.step)
    if best:
        print(f"closest at step {best['step']}: {_quality_line(best)}; that model is "
              f"{res.run_dir / checkpoint.BEST_SUBDIR} (sample or export it like any model folder)")
    print(f"samples: {res.run_dir / 'samples'}   loss plot: {res.run_dir / 'loss_plot.png'}   "
          f"quality: {res.run_dir / 'quality.jsonl'}")


if __name__ == "__main__":
    sys.exit(main())
