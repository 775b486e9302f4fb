"""Training speed with one and with two processes (torchrun, gloo on the CPU) on the demo classes.

    python bench/ddp_scaling.py                      # small defaults: about two minutes on 2 cores
    python bench/ddp_scaling.py --steps 40 --repeats 5 --batch 32 --threads 4

It trains the conditional model on assets/demo/classes with the same global batch twice per
repeat: one process with `--threads` threads, and two processes under torchrun with half the
threads each, so both use the same cores (on a 2-core machine: 1 process x 2 threads against
2 processes x 1 thread). images/s is read from the run's stats.jsonl, leaving out the first
logged window of 10 steps (start-up, warm-up); the median over the repeats is printed, with a
line for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG_EVERY = 10  # the CLI logs every 10 steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _speed(run: Path) -> float:
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    later = [r["img_per_s"] for r in records if r["step"] > LOG_EVERY]
    return sum(later) / len(later)


def _train(procs: int, threads: int, a, out: Path) -> float:
    args = ["-m", "gan_core", "train", "cgan", str(REPO / "assets/demo/classes"), "--out", str(out),
            "--steps", str(a.steps), "--batch", str(a.batch), "--res", str(a.res), "--device", "cpu",
            "--sample-every", "100000", "--ckpt-every", "100000"]
    if procs > 1:
        args = ["-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())] + args
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, *args], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return _speed(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="steps per run, a multiple of 10 above 10 (default 20)")
    p.add_argument("--batch", type=int, default=16, help="global batch (default 16)")
    p.add_argument("--res", type=int, default=64, help="image size (default 64)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="threads in all (default: all cores)")
    p.add_argument("--repeats", type=int, default=3, help="runs per setting; the median is reported (default 3)")
    a = p.parse_args()
    if a.steps <= LOG_EVERY or a.steps % LOG_EVERY:
        p.error("--steps must be a multiple of 10 above 10")
    if a.threads < 2 or a.threads % 2 or a.batch % 2:
        p.error("--threads and --batch must be even (they are split over two processes)")
    settings = [(1, a.threads), (2, a.threads // 2)]
    speeds: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.repeats):
            for procs, threads in settings:  # interleaved, so slow periods of a shared machine hit both
                v = _train(procs, threads, a, Path(tmp) / f"run_{procs}_{rep}")
                speeds[(procs, threads)].append(v)
                print(f"repeat {rep + 1}: {procs} process(es) x {threads} thread(s): {v:.1f} images/s", flush=True)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"cgan {a.res}x{a.res}, global batch {a.batch}, {a.steps} steps, median of {a.repeats}")
    print("| processes x threads | images/s (median) | runs |")
    print("|---|---|---|")
    for (procs, threads), v in speeds.items():
        print(f"| {procs} x {threads} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")


if __name__ == "__main__":
    main()
