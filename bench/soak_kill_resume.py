"""Kill/resume soak: SIGKILL (or SIGTERM) a tiny training run at random moments and resume it, many times.

    python bench/soak_kill_resume.py                  # 50 kills (a few minutes on a laptop CPU)
    python bench/soak_kill_resume.py --kills 5 --json soak.json

Each round starts a worker process that trains (or, once a checkpoint exists, resumes) a tiny
conditional GAN that writes a checkpoint every 3 steps, and kills it with SIGKILL at one of three
kinds of moment, in turn:

  random      a random moment (0-3 s) after the worker has finished its first step,
  checkpoint  the moment a checkpoint is being written (its temporary folder has appeared),
  startup     a random moment before the first step (while loading, resuming, writing caches).

After every kill the harness loads every checkpoint folder of the run completely (config, all
three weight files, training state) and counts those that fail (must be 0), and records the steps
lost: the last step the killed worker completed minus the step of the newest checkpoint, which is
where the next worker continues (checked too). At the end the run is finished without a kill and
compared with an uninterrupted run of the same length: resuming is exact, so every weight must be
identical and the loss log must hold each step once.

--signal term sends SIGTERM instead, which a worker answers as the command line does: it saves a
checkpoint after the current step and ends. --writers 2 starts two workers on the run folder at
the same moment in every round: the run-folder lock must turn one away (counted), so no run is
ever silently replaced by another.

    python bench/soak_kill_resume.py --kills 50 --signal term --writers 2

Exit status 0 when every check holds, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CKPT_EVERY = 3
FOREVER = 1_000_000  # steps of the killed run; it never gets there
REFUSED = 3  # exit status of a worker the run-folder lock turned away


# ---------------------------------------------------------------------------------------------
# worker: one process that trains or resumes, reporting each finished step
# ---------------------------------------------------------------------------------------------
def tiny_config(data: str, steps: int):
    from gan_core.config import CGANConfig, RunConfig, TrainConfig

    return RunConfig("cgan", CGANConfig(resolution=32, nz=8, embed_dim=4, g_channels=4, d_channels=4),
                     TrainConfig(steps=steps, batch=4, log_every=1, sample_every=5, ckpt_every=CKPT_EVERY,
                                 keep_checkpoints=2, seed=0), data=[data])


def worker(run: str, data: str, total: int | None, progress: str) -> int:
    import torch

    from gan_core.checkpoint import checkpoint_dirs
    from gan_core.errors import StudioError
    from gan_core.train import resume, train

    torch.set_num_threads(1)  # the same arithmetic in every process, so resuming is exact
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))  # as the command line does: save, then end

    def report(p) -> None:
        if p.event == "log":
            with open(progress, "a") as f:
                f.write(f"{p.step}\n")

    try:
        if checkpoint_dirs(run):
            resume(run, steps=total, on_progress=report, should_stop=lambda: bool(stop))
        else:
            train(tiny_config(data, total or FOREVER), run, on_progress=report, should_stop=lambda: bool(stop))
    except StudioError as e:
        print(f"refused: {e}", flush=True)
        return REFUSED
    return 0


# ---------------------------------------------------------------------------------------------
# harness
# ---------------------------------------------------------------------------------------------
def make_data(root: Path) -> str:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            arr = np.clip(np.array(rgb) + rng.normal(0, 12, (40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return str(root)


def steps_done(progress: Path) -> list[int]:
    if not progress.exists():
        return []
    out = []
    for line in progress.read_text().splitlines():
        if line.strip().isdigit():
            out.append(int(line))
    return out


def check_checkpoints(run: Path) -> tuple[int | None, list[str]]:
    """(step of the newest checkpoint, problems): every step_* folder must load completely."""
    import torch

    from gan_core import checkpoint as ckpt
    from gan_core.errors import StudioError
    from gan_core.nets import build_discriminator, build_generator

    newest, problems = None, []
    for d in ckpt.checkpoint_dirs(run):
        try:
            cfg = ckpt.read_config(d)
            G, D = build_generator(cfg), build_discriminator(cfg)
            st = ckpt.load_training_state(d, G, build_generator(cfg), D)
            if int(st["step"]) != int(d.name[5:]):
                raise ValueError(f"state says step {st['step']}")
            if not all(torch.isfinite(p).all() for p in G.parameters()):
                raise ValueError("non-finite weights")
        except (StudioError, ValueError, OSError) as e:
            problems.append(f"{d.name}: {e}")
            continue
        newest = max(newest or 0, int(d.name[5:]))
    return newest, problems


WORKERS: list[subprocess.Popen] = []


def spawn(run: Path, data: str, progress: Path, log: Path, total: int | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(run), "--data", data,
           "--progress", str(progress)]
    if total:
        cmd += ["--total", str(total)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with open(log, "ab") as out:
        WORKERS.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env))
    return WORKERS[-1]


def wait_for(cond, proc: subprocess.Popen, timeout: float, poll: float = 0.002) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def soak(kills: int, seed: int, work: Path, verbose: bool = True, sig: str = "kill", writers: int = 1) -> dict:
    rng = random.Random(seed)
    data = make_data(work / "data")
    run, progress, log = work / "run", work / "progress.txt", work / "worker.log"
    tmp_glob = lambda: list((run / "checkpoints").glob(".tmp_*")) if (run / "checkpoints").is_dir() else []
    rounds, problems, startup_s, refused = [], [], 3.0, 0
    t_start = time.monotonic()
    for i in range(kills):
        mode = "checkpoint" if i % 2 else ("startup" if i % 10 == 8 else "random")
        resume_from, _ = check_checkpoints(run)
        tmp_before = set(tmp_glob())
        progress.unlink(missing_ok=True)
        t0 = time.monotonic()
        procs = [spawn(run, data, progress, log) for _ in range(writers)]  # all at once on one folder
        proc = procs[0]
        if writers > 1:  # all but one must be refused by the run-folder lock, and only they end by themselves
            if not wait_for(lambda: sum(q.poll() is not None for q in procs) >= writers - 1, procs[0], 300) and \
                    sum(q.poll() is not None for q in procs) < writers - 1:
                problems.append(f"kill {i + 1}: {writers} workers ran on one folder at once")
            codes = [q.poll() for q in procs]
            refused += sum(c == REFUSED for c in codes)
            if sum(c == REFUSED for c in codes) != writers - 1 or sum(c is None for c in codes) != 1:
                problems.append(f"kill {i + 1}: exit codes {codes}, expected one running and the rest refused")
            proc = next((q for q in procs if q.poll() is None), procs[0])
        if mode == "startup":
            time.sleep(rng.uniform(0, startup_s))
        else:
            if not wait_for(lambda: steps_done(progress), proc, 300):
                raise SystemExit(f"worker {i} made no progress; see {log}:\n{log.read_text()[-3000:]}")
            startup_s = time.monotonic() - t0
            if mode == "random":
                time.sleep(rng.uniform(0, 3.0))
            elif not wait_for(lambda: set(tmp_glob()) - tmp_before, proc, 120, poll=0.0005):
                raise SystemExit(f"worker {i} wrote no checkpoint; see {log}")
        if proc.poll() is not None:
            raise SystemExit(f"worker {i} exited by itself; see {log}:\n{log.read_text()[-3000:]}")
        proc.send_signal(signal.SIGTERM if sig == "term" else signal.SIGKILL)
        proc.wait()
        during_write = bool(set(tmp_glob()) - tmp_before)  # the kill left a half-written checkpoint
        done = steps_done(progress)
        newest, bad = check_checkpoints(run)
        problems += [f"kill {i + 1}: {b}" for b in bad]
        first = done[0] if done else None
        if first is not None and first != (resume_from or 0) + 1:
            problems.append(f"kill {i + 1}: the worker started at step {first}, the newest checkpoint "
                            f"was {resume_from}")
        lost = (max(done) - (newest or 0)) if done else 0
        if lost > CKPT_EVERY:
            problems.append(f"kill {i + 1}: lost {lost} steps, more than the {CKPT_EVERY} between checkpoints")
        rounds.append({"kill": i + 1, "mode": mode, "reached": max(done) if done else None,
                       "checkpoint": newest, "lost": lost, "during_write": during_write,
                       "loaded_ok": len(list((run / 'checkpoints').glob('step_*'))) - len(bad)
                       if (run / "checkpoints").is_dir() else 0, "failed": len(bad)})
        if verbose:
            print(f"kill {i + 1:3d} {mode:10s} reached {rounds[-1]['reached']!s:>5} newest checkpoint "
                  f"{newest!s:>5} lost {lost} {'(during a checkpoint write)' if during_write else ''}",
                  flush=True)
    # finish the run, then run the same length without interruption and compare
    reached = max([r["reached"] or 0 for r in rounds] + [check_checkpoints(run)[0] or 0])
    total = reached + CKPT_EVERY
    progress.unlink(missing_ok=True)
    if spawn(run, data, progress, log, total).wait() != 0:
        raise SystemExit(f"the final resume failed; see {log}")
    ref = work / "reference"
    if spawn(ref, data, work / "ref_progress.txt", log, total).wait() != 0:
        raise SystemExit(f"the reference run failed; see {log}")
    identical = compare(run, ref)
    if not identical:
        problems.append("the finished run differs from the uninterrupted one")
    steps = [json.loads(l)["step"] for l in (run / "stats.jsonl").read_text().splitlines()]
    if steps != list(range(1, total + 1)):
        problems.append("stats.jsonl does not hold each step exactly once")
    newest, bad = check_checkpoints(run)
    problems += [f"final: {b}" for b in bad]
    lost = [r["lost"] for r in rounds]
    return {
        "kills": kills, "signal": sig, "writers": writers, "second_writers_refused": refused,
        "seed": seed, "ckpt_every": CKPT_EVERY, "total_steps": total,
        "modes": {m: sum(r["mode"] == m for r in rounds) for m in ("random", "checkpoint", "startup")},
        "kills_during_checkpoint_write": sum(r["during_write"] for r in rounds),
        "checkpoints_loaded": sum(r["loaded_ok"] for r in rounds),
        "checkpoints_failed_to_load": sum(r["failed"] for r in rounds) + len(bad),
        "steps_lost": {"mean": round(statistics.mean(lost), 2) if lost else 0, "max": max(lost, default=0),
                       "counts": {str(k): lost.count(k) for k in sorted(set(lost))}},
        "identical_to_uninterrupted": identical,
        "stats_each_step_once": steps == list(range(1, total + 1)),
        "wall_s": round(time.monotonic() - t_start, 1),
        "problems": problems, "rounds": rounds,
    }


def compare(a: Path, b: Path) -> bool:
    import torch

    from gan_core import checkpoint as ckpt

    da, db = ckpt.checkpoint_dirs(a)[0], ckpt.checkpoint_dirs(b)[0]
    if da.name != db.name:
        return False
    for name in ckpt.WEIGHT_FILES:
        x, y = ckpt.read_safetensors(da / name), ckpt.read_safetensors(db / name)
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=50, help="how many times to kill the run (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments (default %(default)s)")
    p.add_argument("--workdir", help="folder for the run (default: a temporary folder, removed afterwards)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.add_argument("--signal", choices=("kill", "term"), default="kill",
                   help="SIGKILL (no chance to save) or SIGTERM (the worker saves, as the CLI does) (default %(default)s)")
    p.add_argument("--writers", type=int, default=1,
                   help="workers started at once on the run folder each round; all but one must be refused "
                        "(default %(default)s)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--total", type=int, help=argparse.SUPPRESS)
    p.add_argument("--progress", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return worker(a.worker, a.data, a.total, a.progress)
    if a.kills < 1:
        p.error("--kills must be at least 1")
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup below runs
    try:
        res = soak(a.kills, a.seed, work, verbose=not a.quiet, sig=a.signal, writers=a.writers)
    finally:
        for w in WORKERS:  # never leave a worker behind
            if w.poll() is None:
                w.kill()
                w.wait()
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"\n{res['kills']} kills with SIG{res['signal'].upper()} ({', '.join(f'{n} {m}' for m, n in res['modes'].items())}), "
          f"{res['kills_during_checkpoint_write']} during a checkpoint write; checkpoint every {CKPT_EVERY} steps")
    print(f"steps lost per kill: mean {res['steps_lost']['mean']}, max {res['steps_lost']['max']} "
          f"(counts {res['steps_lost']['counts']})")
    print(f"checkpoints loaded after kills: {res['checkpoints_loaded']}, failed to load: "
          f"{res['checkpoints_failed_to_load']}")
    if res["writers"] > 1:
        print(f"{res['writers']} workers started at once each round: {res['second_writers_refused']} refused by the "
              "run-folder lock")
    print(f"finished run ({res['total_steps']} steps) identical to an uninterrupted run: "
          f"{'yes' if res['identical_to_uninterrupted'] else 'NO'}; loss log holds each step once: "
          f"{'yes' if res['stats_each_step_once'] else 'NO'}; {res['wall_s']} s")
    for prob in res["problems"]:
        print("PROBLEM:", prob)
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
