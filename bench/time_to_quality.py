"""Time to quality: sample quality reached within the same wall-clock training budget.

The class folder is split into train and held-out copies in a temporary folder (--holdout of each
class, default 20%). Each contender trains on the train copy for --budget seconds of its own
training time:
  reference   the reference conditional GAN (bench/reference_cgan.py)
  default     gan_core's training step with TrainConfig() and CGANConfig() defaults
  fast        gan_core with the "fast" recipe: hinge loss, one critic step, lr 2e-4, betas (0, 0.99),
              mode-seeking term 0.2, translation + colour augmentation
At --points equally spaced moments of the budget each contender's samples are scored by sliced
Wasserstein distance (gan_core.metrics.image_swd, x1000, lower is better) against the HELD-OUT
real images: as many samples as held-out images, with the same classes, from fixed noise (the
project samples with its averaged generator, the reference with its generator in eval mode).
Contenders take turns slice by slice, so load changes of the machine hit all alike; scoring is
not counted as training time. The floor is held-out vs an equal-sized, class-matched draw of
training images (real vs real); the ceiling is each untrained generator (point 0).

Time counts from building the contender (the project's first-run preprocessing of the folder is
included) and covers training steps only: no checkpoints or sample grids are written.

    python bench/time_to_quality.py --budget 600     # the recorded run: about 35 minutes
    python bench/time_to_quality.py --budget 60      # a quick check
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from pathlib import Path

from _common import REPO, OtherLoad, command_line, load_average, machine, md_table, run_in_temp_dir

import torch

from gan_core.config import CGANConfig, RunConfig, TrainConfig
from gan_core.data import is_image_name, load_class_dataset, to_float
from gan_core.metrics import image_swd
from gan_core.train import _Loop
from reference_cgan import REFERENCE, ReferenceTrainer

FAST = dict(loss="hinge", n_critic=1, lr_g=2e-4, lr_d=2e-4, beta1=0.0, beta2=0.99, diversity=0.2,
            augment=["translation", "color"])


def split_folder(src: Path, dst: Path, holdout: float, seed: int) -> tuple[Path, Path]:
    """Copy each class's images into dst/train/<class> and dst/heldout/<class> (holdout fraction)."""
    rng = random.Random(seed)
    tr, ho = dst / "train", dst / "heldout"
    for cls in sorted(d for d in src.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(f for f in cls.iterdir() if f.is_file() and is_image_name(f.name))
        rng.shuffle(files)
        k = max(1, round(len(files) * holdout))
        for part, chosen in ((ho, files[:k]), (tr, files[k:])):
            (part / cls.name).mkdir(parents=True, exist_ok=True)
            for f in chosen:
                shutil.copy2(f, part / cls.name / f.name)
    return tr, ho


class Contender:
    def __init__(self, name: str):
        self.name = name
        self.train_s = 0.0
        self.images = 0
        self.steps = 0
        self.curve: list[tuple[float, float, int, int]] = []  # (train seconds, swd, steps, images)

    def train_until(self, seconds: float) -> None:
        while self.train_s < seconds:
            t0 = time.perf_counter()
            self.images += self.step()
            self.steps += 1
            self.train_s += time.perf_counter() - t0


class Reference(Contender):
    def __init__(self, folder: Path, seed: int):
        super().__init__("reference")
        t0 = time.perf_counter()
        self.t = ReferenceTrainer(str(folder), seed=seed)
        self.train_s += time.perf_counter() - t0

    def step(self) -> int:  # one critic step (and the generator step after every n_critic-th)
        return self.t.step()

    def sample(self, z, y):
        return self.t.sample(z, y)


class Project(Contender):
    def __init__(self, name: str, folder: Path, run_dir: Path, **train_kw):
        super().__init__(name)
        t0 = time.perf_counter()
        cfg = RunConfig("cgan", CGANConfig(), TrainConfig(**train_kw), data=[str(folder)])
        cfg.validate(require_names=False)
        run_dir.mkdir(parents=True)
        self.loop = _Loop(cfg, run_dir, torch.device("cpu"))
        self.per_step = cfg.train.batch * cfg.train.n_critic
        self.train_s += time.perf_counter() - t0

    def step(self) -> int:
        self.loop.train_step()
        return self.per_step

    @torch.inference_mode()
    def sample(self, z, y):
        return self.loop.G_ema(z, y).float()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO / "assets/demo/classes"), help="class folder (default: the demo classes)")
    p.add_argument("--budget", type=float, default=120, help="training seconds per contender (default %(default)s)")
    p.add_argument("--points", type=int, default=10, help="evaluations spread over the budget (default %(default)s)")
    p.add_argument("--holdout", type=float, default=0.2, help="held-out fraction per class (default %(default)s)")
    p.add_argument("--contenders", default="reference,default,fast", help="comma-separated (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    a = p.parse_args(argv)
    return run_in_temp_dir(a, "bench_quality_", run)


def run(a, tmp: Path) -> int:
    print(f"machine: {machine()}")
    print(f"command: {command_line()}")
    load0 = load_average()
    train_dir, held_dir = split_folder(Path(a.data), tmp / "split", a.holdout, a.seed)
    held = load_class_dataset(held_dir, REFERENCE.resolution)
    tr = load_class_dataset(train_dir, REFERENCE.resolution)
    real = to_float(held.images)
    y = held.labels
    # real vs real floor: a class-matched draw of training images of the held-out set's size
    g = torch.Generator().manual_seed(a.seed)
    pick = torch.cat([torch.nonzero(tr.labels == c).flatten()[torch.randperm(int((tr.labels == c).sum()), generator=g)]
                      [: int((y == c).sum())] for c in range(len(held.class_names))])
    floor = image_swd(to_float(tr.images[pick]), real)
    z = torch.randn(len(y), REFERENCE.nz, generator=torch.Generator().manual_seed(a.seed + 1))
    print(f"{len(tr)} training and {len(held)} held-out images in {len(held.class_names)} classes; "
          f"real-vs-real SWD (floor) {floor:.1f}", flush=True)

    names = [n.strip() for n in a.contenders.split(",") if n.strip()]
    cs: list[Contender] = []
    for n in names:
        if n == "reference":
            cs.append(Reference(train_dir, a.seed))
        elif n == "default":
            cs.append(Project("default", train_dir, tmp / "default", seed=a.seed))
        elif n == "fast":
            cs.append(Project("fast", train_dir, tmp / "fast", seed=a.seed, **FAST))
        else:
            raise SystemExit(f"unknown contender {n!r}; choose from reference, default, fast")

    def evaluate(c: Contender) -> None:
        fake = c.sample(z, y)
        swd = image_swd(fake, real)
        c.curve.append((c.train_s, swd, c.steps, c.images))
        print(f"  {c.name:<10} {c.train_s:7.1f} s  {c.steps:6d} steps  {c.images:7d} img  SWD {swd:7.1f}", flush=True)

    ol = OtherLoad().start()
    for c in cs:
        evaluate(c)  # point 0: the untrained generator (construction time already counted)
    for k in range(1, a.points + 1):
        for c in cs:
            c.train_until(a.budget * k / a.points)
            evaluate(c)
    ol.stop()
    load1 = load_average()

    print(f"\n## Time to quality (`bench/time_to_quality.py`)\n")
    print(f"Machine: {machine()}. Load average {load0:.2f} at the start, {load1:.2f} at the end; other processes "
          f"used {100 * ol.share:.0f}% of the CPU during the run.\n")
    print(f"Command: `{command_line()}`\n")
    print(f"{len(tr)} training / {len(held)} held-out images; SWD x1000 of {len(held)} samples against the held-out "
          f"images (lower is better). Floor (held-out vs training images): **{floor:.1f}**.\n")
    header = ["budget"] + [f"{c.name} SWD" for c in cs]
    rows = []
    for i in range(a.points + 1):
        rows.append([f"{100 * i // a.points}%"] + [f"{c.curve[i][1]:.1f}" for c in cs])
    rows.append(["steps / real images at 100%"] + [f"{c.curve[-1][2]} / {c.curve[-1][3]}" for c in cs])
    print(md_table(header, rows))
    print()
    for c in cs:
        print(f"- {c.name}: untrained (ceiling) {c.curve[0][1]:.1f}, final {c.curve[-1][1]:.1f}, "
              f"best {min(s for _, s, _, _ in c.curve[1:]):.1f}")
    ref = next((c for c in cs if c.name == "reference"), None)
    if ref is not None:
        target = ref.curve[-1][1]
        print(f"\nReference quality after the whole budget: SWD {target:.1f}.")
        for c in cs:
            if c is ref:
                continue
            hit = next((i for i in range(1, a.points + 1) if c.curve[i][1] <= target), None)
            if hit:
                print(f"- {c.name} reached it at {100 * hit // a.points}% of the budget ({c.curve[hit][0]:.0f} s)")
            else:
                print(f"- {c.name} did not reach it within the budget")
        d = next((c for c in cs if c.name == "default"), None)
        if d is not None and a.points % 10 == 0:
            i = a.points // 10
            ok = d.curve[i][1] <= target
            print(f"\nTarget (default at 1/10 of the budget as good as the reference at the end): "
                  f"**{'met' if ok else 'missed'}** (default at 10%: SWD {d.curve[i][1]:.1f}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
