"""Training throughput: the project's default conditional GAN against the reference setup.

Measures real images consumed by the critic per second, and wall time per 1,000 such images, for
  reference   the reference conditional GAN (bench/reference_cgan.py: REFERENCE), images decoded
              from their files every epoch by a torch DataLoader
  default@64  gan_core's training step with TrainConfig() defaults and CGANConfig() defaults,
              batch 64 (the reference's batch)
  default@32  the same with the project's own default batch (32)
on the same folder in one process. Contenders take turns: a round runs one window of each (whole
training steps worth at least --window-images images), so a change in the machine's load hits all
of them alike; figures are medians of --windows rounds after --warmup windows per contender. On a
shared machine, a round during which other processes used more than --max-other of the CPU
(measured from /proc/stat minus this process's own CPU time) is repeated, up to --max-rounds.
The project's step is gan_core.train.Trainer.train_step, the step that
gan_core.train.train runs; --train-check-steps also runs train() itself (with its logging,
sampling and checkpoints) and reports the images/s it logs.

--levers adds contenders that change one thing of default@32: bf16 autocast, the default memory
layout instead of channels-last, one critic step, one thread, torch.compile of the generator, and
the "fast" recipe (hinge, one critic step, augmentation).

The profile (skip with --no-profile) reports where one window of the reference and of default@64 spends its time
(torch.profiler, top operators by self CPU time) and their floating-point work per image.

    python bench/train_throughput.py                  # about 5 minutes on a free 2-core CPU
    python bench/train_throughput.py --windows 2 --window-images 64 --no-profile   # smoke run
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, OtherLoad, command_line, count_flops, load_average, machine, md_table, median

import torch

from gan_core.config import CGANConfig, RunConfig, TrainConfig
from gan_core.train import Trainer, train
from reference_cgan import REFERENCE, ReferenceTrainer

FAST = dict(loss="hinge", n_critic=1, lr_g=2e-4, lr_d=2e-4, beta1=0.0, beta2=0.99, diversity=0.2,
            augment=["translation", "color"])


class Contender:
    name = ""
    threads: int | None = None
    images_per_step = 0

    def step(self) -> int:
        raise NotImplementedError

    def window(self, min_images: int) -> tuple[int, int, float]:
        """Whole steps until at least min_images; returns (images, generator steps, seconds)."""
        prev = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            imgs = steps = 0
            t0 = time.perf_counter()
            while imgs < min_images:
                imgs += self.step()
                steps += 1
            return imgs, steps, time.perf_counter() - t0
        finally:
            torch.set_num_threads(prev)


class Reference(Contender):
    def __init__(self, folder: str):
        self.name = "reference"
        self.t = ReferenceTrainer(folder)
        self.images_per_step = REFERENCE.batch * REFERENCE.n_critic

    def step(self) -> int:  # one generator step and its n_critic critic steps
        return self.t.cycle()

    def data_fn(self):
        return self.t, "_batch"


class Project(Contender):
    def __init__(self, name: str, folder: str, tmp: Path, mem=None, threads=None, compile_g=False, **train_kw):
        self.name, self.threads = name, threads
        cfg = RunConfig("cgan", CGANConfig(), TrainConfig(**train_kw), data=[folder])
        cfg.validate(require_names=False)
        run_dir = tmp / name.replace("@", "_").replace(" ", "_")
        run_dir.mkdir(parents=True)
        self.loop = Trainer(cfg, run_dir, torch.device("cpu"))
        if mem is not None:  # lever: another memory layout than the loop's channels-last
            self.loop.mem = mem
            self.loop.G.to(memory_format=mem)
            self.loop.D.to(memory_format=mem)
        self.compile_s = None
        if compile_g:
            self.loop.G = torch.compile(self.loop.G)
        t = cfg.train
        self.images_per_step = t.batch * t.n_critic
        self.compile_g = compile_g

    def step(self) -> int:
        if self.compile_g and self.compile_s is None:
            t0 = time.perf_counter()
            self.loop.train_step()  # the first step compiles
            self.compile_s = time.perf_counter() - t0
        else:
            self.loop.train_step()
        return self.images_per_step

    def data_fn(self):
        return self.loop, "real_batch"


def timed_share(obj, attr: str, fn) -> tuple[float, float]:
    """Run fn() while timing every call of obj.attr; returns (seconds in attr, total seconds)."""
    orig = getattr(obj, attr)
    spent = [0.0]

    def wrapped(*a, **k):
        t0 = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t0

    setattr(obj, attr, wrapped)
    try:
        t0 = time.perf_counter()
        fn()
        return spent[0], time.perf_counter() - t0
    finally:
        delattr(obj, attr) if attr in vars(obj) else None


def profile_table(c: Contender, min_images: int, top: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        c.window(min_images)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    rows = []
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        rows.append([f"`{e.key}`", e.count, f"{e.self_cpu_time_total / 1e3:.0f}",
                     f"{100 * e.self_cpu_time_total / max(total, 1):.1f}%"])
    return md_table(["operator", "calls", "self CPU ms", "share"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO / "assets/demo/classes"), help="class folder (default: the demo classes)")
    p.add_argument("--windows", type=int, default=5, help="timed rounds (one window per contender each; "
                   "default %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed windows per contender first (default %(default)s)")
    p.add_argument("--max-other", type=float, default=0.15,
                   help="repeat a round in which other processes used more than this share of the CPU "
                        "(default %(default)s)")
    p.add_argument("--max-rounds", type=int, default=12, help="give up repeating after this many rounds "
                   "(then the least disturbed are used; default %(default)s)")
    p.add_argument("--window-images", type=int, default=320,
                   help="real images per window at least; 320 = one reference generator step (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own, the core count)")
    p.add_argument("--levers", action="store_true", help="also measure the levers (bf16, layout, n_critic, threads, compile, fast recipe)")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the profiles")
    p.add_argument("--top", type=int, default=10, help="operators listed per profile (default %(default)s)")
    p.add_argument("--train-check-steps", type=int, default=30,
                   help="also run gan_core.train.train() this many steps at the default batch and report the "
                        "images/s it logs (0: skip; default %(default)s)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    tmp = Path(tempfile.mkdtemp(prefix="bench_throughput_"))
    try:
        return run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp: Path) -> int:
    print(f"machine: {machine()}")
    print(f"command: {command_line()}")
    load0 = load_average()
    cs: list[Contender] = [Reference(a.data),
                           Project("default@64", a.data, tmp, batch=64),
                           Project("default@32", a.data, tmp)]
    if a.levers:
        n = torch.get_num_threads()
        cs += [Project("default@32 bf16", a.data, tmp, precision="bf16"),
               Project("default@32 contiguous", a.data, tmp, mem=torch.contiguous_format),
               Project("default@32 n_critic=1", a.data, tmp, n_critic=1),
               Project("default@32 1 thread", a.data, tmp, threads=1),
               Project("default@32 compiled G", a.data, tmp, compile_g=True),
               Project("fast recipe@32", a.data, tmp, **FAST)]
        if n == 1:
            print("note: torch has one thread here; the 1-thread lever equals the default")
    for c in cs:  # warm-up
        for _ in range(a.warmup):
            r = c.window(a.window_images)
            print(f"  warm-up  {c.name:<24} {r[0] / r[2]:8.1f} img/s", flush=True)
    rounds: list[tuple[float, dict]] = []  # (others' CPU share, {contender: (images, g steps, seconds)})
    while len(rounds) < a.max_rounds and sum(sh <= a.max_other for sh, _ in rounds) < a.windows:
        with OtherLoad() as ol:
            rnd = {c.name: c.window(a.window_images) for c in cs}
        rounds.append((ol.share, rnd))
        print(f"  round {len(rounds):>2} (others used {100 * ol.share:3.0f}% of the CPU) "
              + "  ".join(f"{n} {r[0] / r[2]:.1f}" for n, r in rnd.items()), flush=True)
    clean = [r for r in rounds if r[0] <= a.max_other]
    kept = clean if len(clean) >= a.windows else sorted(rounds, key=lambda r: r[0])[: a.windows]
    results = {c.name: [rnd[c.name] for _, rnd in kept] for c in cs}
    shares = [sh for sh, _ in kept]
    load1 = load_average()

    ips = {n: median([i / s for i, _, s in r]) for n, r in results.items()}
    gsps = {n: median([g / s for _, g, s in r]) for n, r in results.items()}
    flops = {}
    for c in cs:  # one more window each, counting its matmul and convolution work
        f, (imgs, _, _) = count_flops(lambda: c.window(a.window_images))
        flops[c.name] = f / imgs
    ref = ips["reference"]
    rows = [[n, f"{ips[n]:.1f}", f"{1000 / ips[n]:.1f}", f"{gsps[n]:.3f}", f"**{ips[n] / ref:.1f}x**",
             f"{min(i / s for i, _, s in r):.1f}-{max(i / s for i, _, s in r):.1f}",
             f"{flops[n] / 1e9:.2f}", f"{flops[n] * ips[n] / 1e9:.0f}"]
            for n, r in results.items()]
    print()
    print("## Training throughput (`bench/train_throughput.py`)\n")
    print(f"Machine: {machine()}. Load average {load0:.2f} at the start, {load1:.2f} at the end.\n")
    print(f"Command: `{command_line()}`\n")
    print(f"Median of {len(kept)} rounds; in a round each contender runs one window of whole training steps "
          f"(>= {a.window_images} real images), one after another; {a.warmup} warm-up window(s) each first. "
          f"Rounds in which other processes used more than {100 * a.max_other:.0f}% of the CPU are repeated "
          f"(up to {a.max_rounds} rounds): {len(rounds) - len(clean)} of {len(rounds)} rounds were over the limit"
          + ("" if len(clean) >= a.windows else f"; too few clean rounds, so the {len(kept)} least disturbed are used")
          + f". Other processes' share of the CPU in the rounds used: median {100 * median(shares):.0f}%, "
          f"max {100 * max(shares):.0f}%. GFLOP per real image: matrix products and convolutions, forward and "
          f"backward (gradient penalty included), counted over one more window.\n")
    print(md_table(["contender", "real img/s", "s per 1000 img", "generator steps/s", "vs reference",
                    "range img/s", "GFLOP per real img", "GFLOP/s achieved"], rows))
    for c in cs:
        if isinstance(c, Project) and c.compile_s is not None:
            print(f"\ntorch.compile of the generator: first step took {c.compile_s:.1f} s (compile included).")
    verdict = "met" if ips["default@32"] >= 10 * ref and ips["default@64"] >= 10 * ref else "missed"
    print(f"\nTarget (default >= 10x the reference's images/s): **{verdict}** "
          f"(default@64 {ips['default@64'] / ref:.1f}x, default@32 {ips['default@32'] / ref:.1f}x).")

    if a.profile:
        print("\n### Where the time goes\n")
        for c in cs[:2]:
            obj, attr = c.data_fn()
            data_s, total_s = timed_share(obj, attr, lambda: c.window(a.window_images))
            table = profile_table(c, a.window_images, a.top)
            print(f"**{c.name}**: data loading {100 * data_s / total_s:.1f}% of a window's time "
                  f"({'DataLoader batches' if c.name == 'reference' else 'batches from the uint8 cache'}); "
                  f"top operators by self CPU time over one window (torch.profiler):\n")
            print(table + "\n")

    if a.train_check_steps:
        recs = []
        cfg = RunConfig("cgan", CGANConfig(), TrainConfig(steps=a.train_check_steps), data=[a.data])
        train(cfg, tmp / "train_check", on_progress=lambda pr: recs.append(pr.record) if pr.event == "log" else None)
        speeds = [r["img_per_s"] for r in recs]
        print(f"gan_core.train.train() with TrainConfig() defaults ({a.train_check_steps} steps, batch 32, with its "
              f"logging, sampling and checkpoints), not interleaved: logged {median(speeds):.1f} img/s "
              f"(median of {len(speeds)} log windows: {', '.join(f'{s:.0f}' for s in speeds)}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
