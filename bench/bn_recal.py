"""How much a conditional model's pictures depend on the estimate of its BatchNorm statistics.

The averaged (EMA) generator gets BatchNorm statistics of its own before it draws (Trainer.
recalibrate_bn): batches of fresh noise run through it in training mode. Those statistics are an
estimate, and every picture of the model goes through them. This script takes a kept averaged
generator (time_to_quality.py --keep, trained on the photo set or the demo classes), estimates its
statistics anew in several ways, each from several seeds, refits the spectral equaliser after each
(as a checkpoint does) and scores the pictures as time_to_quality.py scores them: per class the SWD
of as many samples as held-out images against them, over the class's real-vs-real floor, the mean of
--draws draws of noise and floor images, and the same for all classes pooled. With --first-seed at the
run's training seed + 3, the "studio" row's first seed is what the run itself showed at its end.
Estimates:

  - "random classes, N batches": N batches of the training batch size whose classes are drawn at
    random among the training images, plain noise (the simple estimate);
  - "studio": what the studio does (Trainer.recalibrate_bn: classes at the training frequencies in
    every pair of batches, noise in antithetic pairs);
  - "random classes, --long batches": one long estimate, the yardstick the others try to reach.

Where one class's figure moves much between seeds of the same estimate, the estimate, not the
training, decides how that class looks.

    python bench/bn_recal.py MODEL --data photos --seeds 5 --threads 2

Needs scikit-image for the photo set; about 2 minutes per model on 2 cores.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _common import REPO, command_line, machine, md_table, run_in_temp_dir

import torch

from gan_core.checkpoint import load_weights, read_config, read_safetensors
from gan_core.data import load_class_dataset, to_float
from gan_core.metrics import image_swd
from gan_core.spectrum import equalise
from gan_core.train import Trainer, fresh_batchnorm_statistics
from time_to_quality import split_folder


def plain_estimate(loop: Trainer, batches: int, seed: int) -> None:
    """BatchNorm statistics from `batches` batches whose classes are drawn at random (the
    training images' labels) with plain noise, cumulative average."""
    gen = torch.Generator().manual_seed(seed)
    with fresh_batchnorm_statistics(loop.G_ema):
        for _ in range(batches):
            loop._ema_forward(loop.cfg.train.batch, gen)
    loop._bn_step = loop.step  # these statistics are the ones to use (no recalibration on top)


def studio_estimate(loop: Trainer, seed: int, batches: int | None = None) -> None:
    loop.cfg.train.seed = seed - 3  # recalibrate_bn seeds its stream with the run's seed + 3
    loop._bn_step = None
    loop.recalibrate_bn(batches)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model folder kept by time_to_quality.py --keep")
    p.add_argument("--data", default="photos", help="what it was trained on: 'photos' or 'demo' (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the split's seed (time_to_quality.py --seed; default %(default)s)")
    p.add_argument("--holdout", type=float, default=0.3, help="held-out fraction per class (default %(default)s)")
    p.add_argument("--seeds", type=int, default=5, help="seeds of each short estimate (default %(default)s)")
    p.add_argument("--first-seed", type=int, default=1000, help="the first of those seeds (default %(default)s; "
                                                                   "a run's own: its training seed + 3)")
    p.add_argument("--short", type=int, default=4, help="batches of the simple short estimate (default %(default)s)")
    p.add_argument("--long", type=int, default=160, help="batches of the long estimate (default %(default)s)")
    p.add_argument("--studio-batches", default="", help="also the studio's estimate with these numbers of batches, "
                                                        "comma-separated (default: its own number only)")
    p.add_argument("--kimg", type=float, default=100.0,
                   help="thousands of images the model had seen, for the equaliser's coarse reach "
                        "(spectrum.coarse_reach; default %(default)s, about a 10-minute run on 2 cores)")
    p.add_argument("--draws", type=int, default=6, help="draws averaged in the SWD figures (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    a = p.parse_args(argv)
    return run_in_temp_dir(a, "bench_bn_recal_", run)


def run(a, tmp: Path) -> int:
    print(f"machine: {machine()}")
    print(f"command: {command_line()}\n")
    model = Path(a.model)
    if not (model / "G_ema.safetensors").is_file():
        print(f"{model}: not a model folder with an averaged generator; pass a folder time_to_quality.py --keep wrote.")
        return 2
    cfg = read_config(model)
    if cfg.variant != "cgan":
        print(f"{model}: a texture model; this script measures conditional models.")
        return 2
    res = cfg.model.resolution
    if a.data == "photos":
        from photo_set import build
        src = build(tmp / "photos", size=res)
    else:
        src = REPO / "assets/demo/classes"
    train_dir, held_dir = split_folder(src, tmp / "split", a.holdout, a.seed)
    tr, held = load_class_dataset(train_dir, res), load_class_dataset(held_dir, res)
    if held.class_names != cfg.model.class_names:
        print(f"{model}: trained on other classes ({', '.join(cfg.model.class_names)}) than {a.data}.")
        return 2
    names = held.class_names
    order = torch.argsort(held.labels, stable=True)
    real, y = to_float(held.images[order]), held.labels[order]
    # per class, the mean over the draws of class-matched training images, drawn as time_to_quality.py
    # draws them (one random stream per draw, through the classes in turn), so the floors are its floors
    per_draw = []
    for d in range(a.draws):
        g = torch.Generator().manual_seed(a.seed + 7919 * d)
        pick = [torch.nonzero(tr.labels == c).flatten()[torch.randperm(int((tr.labels == c).sum()), generator=g)]
                [: int((y == c).sum())] for c in range(len(names))]
        per_draw.append([image_swd(to_float(tr.images[p]), real[y == c]) for c, p in enumerate(pick)]
                        + [image_swd(to_float(tr.images[torch.cat(pick)]), real)])
    floors = [statistics.mean(f) for f in zip(*per_draw)]  # the classes', then all of them pooled
    zs = [torch.randn(len(y), cfg.model.nz, generator=torch.Generator().manual_seed(a.seed + 1 + 1000 * d))
          for d in range(a.draws)]

    cfg.data = [str(train_dir)]
    loop = Trainer(cfg, tmp / "run", torch.device("cpu"))
    load_weights(loop.G_ema, read_safetensors(model / "G_ema.safetensors"), "G_ema.safetensors")
    loop.step = max(1, round(a.kimg * 1000 / (cfg.train.batch * cfg.train.n_critic)))  # the equaliser's age

    def score() -> list[float]:
        """Per class SWD / floor (mean of the draws), equaliser refitted for these statistics."""
        loop._gains_step = None
        gains = loop.spectrum_gains(final=True)
        with torch.inference_mode():
            fakes = [equalise(torch.cat([loop.G_ema(zz, yy).float() for zz, yy in zip(z.split(64), y.split(64))]),
                              gains[y]) for z in zs]
        return ([statistics.mean(image_swd(f[y == ci], real[y == ci]) for f in fakes) / floors[ci]
                 for ci in range(len(names))] + [statistics.mean(image_swd(f, real) for f in fakes) / floors[-1]])

    estimates = [(f"random classes, {a.short} batches", lambda s: plain_estimate(loop, a.short, s), a.seeds),
                 ("studio", lambda s: studio_estimate(loop, s), a.seeds)]
    estimates += [(f"studio's, {n} batches", lambda s, n=n: studio_estimate(loop, s, n), a.seeds)
                  for n in (int(v) for v in a.studio_batches.split(",") if v.strip())]
    estimates += [(f"random classes, {a.long} batches", lambda s: plain_estimate(loop, a.long, s), 1)]
    print(f"{a.data}: {len(tr)} training / {len(held)} held-out images; per class SWD / floor, mean of {a.draws} "
          f"draws of {len(held) // len(names)} samples; floors {', '.join(f'{n} {f:.1f}' for n, f in zip(names + ['all'], floors))}\n")
    rows, summary = [], []
    for name, estimate, seeds in estimates:
        got, took = [], []
        for s in range(seeds):
            t0 = time.perf_counter()
            estimate(a.first_seed + s)
            took.append(time.perf_counter() - t0)
            got.append(score())
            rows.append([name, str(a.first_seed + s)] + [f"{r:.2f}x" for r in got[-1]] + [f"{max(got[-1][:-1]):.2f}x"])
            print(" | ".join(rows[-1]), flush=True)
        cols = list(zip(*got))
        summary.append([name, str(seeds), f"{statistics.mean(took):.2f} s"]
                       + [f"{statistics.mean(c):.2f}x ({min(c):.2f}-{max(c):.2f})" for c in cols]
                       + [f"{statistics.mean(max(g[:-1]) for g in got):.2f}x"])
    print()
    print(md_table(["estimate", "seed"] + names + ["all (pooled)", "worst class"], rows))
    print()
    print(md_table(["estimate", "seeds", "time per estimate"] + [f"{n}: mean (range over seeds)" for n in names + ["all (pooled)"]]
                   + ["worst class, mean"], summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
