"""Data-parallel training with two CPU processes (gloo over loopback).

One torchrun launch of the CLI, and one launch of two processes from torch.multiprocessing that
call the training functions directly and save what each process holds at the end, are shared by
the tests below (module fixtures), which keeps the file to a few process start-ups.

"Equal" for a two-process run and a one-process run with the same global batch means: the weights
differ by less than 0.1% of how far they moved over the last two steps. Only the order of
floating-point sums differs, which gives about 1e-6 here; per-process BatchNorm statistics give
about 1.4e-2, and a one-process run that sees only one process's share of the data 0.15 to 0.9.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gan_core import checkpoint as ckpt
from gan_core import train as train_mod
from gan_core.__main__ import main
from gan_core.config import SHORT_CRITIC
from gan_core.errors import ConfigError
from gan_core.train import resume, train
from studio import free_port
from tests.conftest import make_class_folder, make_texture, tiny_cgan, tiny_sgan

pytestmark = pytest.mark.slow  # several processes under torchrun or torch.multiprocessing


REPO = Path(__file__).resolve().parent.parent
AUG = ["translation", "color", "cutout"]
CLI_ARGS = ["--steps", "4", "--batch", "8", "--res", "32", "--g-channels", "4", "--d-channels", "4",
            "--ckpt-every", "2", "--sample-every", "2", "--augment", ",".join(AUG), "--seed", "3",
            "--recipe", "reference", "--precision", "fp32"]  # fp32: bf16 rounds too coarsely to compare runs


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny models gain nothing from a second thread; the two-process runs use both cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _weights(folder: Path, name: str) -> dict[str, torch.Tensor]:
    return ckpt.read_safetensors(folder / name)


def _relative_difference(a: dict, b: dict, b_before: dict) -> float:
    """|a - b| relative to how far b moved from b_before (float tensors only)."""
    keys = [k for k in b if b[k].is_floating_point()]
    diff = math.sqrt(sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in keys))
    moved = math.sqrt(sum(float((b[k].float() - b_before[k].float()).pow(2).sum()) for k in keys))
    return diff / moved


def _assert_runs_agree(run: Path, ref: Path, step: int, before: int, tol: float = 1e-3) -> None:
    """The checkpoints of `step` agree, relative to how far `ref` moved since step `before`."""
    for name in ckpt.WEIGHT_FILES:
        r = _relative_difference(_weights(ckpt.checkpoint_path(run, step), name),
                                 _weights(ckpt.checkpoint_path(ref, step), name),
                                 _weights(ckpt.checkpoint_path(ref, before), name))
        assert r < tol, (name, r)


# ---- one torchrun launch of the CLI ---------------------------------------------------------
@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """A 2-process torchrun run (global batch 8), the same command in one process, the data."""
    root = tmp_path_factory.mktemp("cli")
    data = make_class_folder(root / "data")
    two, one = root / "two", root / "one"
    proc = _torchrun(["train", "cgan", data, "--out", str(two), *CLI_ARGS])
    assert main(["train", "cgan", data, "--out", str(one), *CLI_ARGS]) == 0
    return proc, two, one, data


def _torchrun(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """python -m torch.distributed.run --nproc_per_node=2 -m gan_core ARGS (CPU, gloo on loopback)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "gan_core", *args]
    p = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.terminate()  # torchrun passes SIGTERM on to its processes and waits for them
        out, err = p.communicate(timeout=60)
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def test_torchrun_writes_one_run_folder(cli_runs):
    proc, run, _, _ = cli_runs
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert out.count("finished at step 4") == 1  # only the lead process reports
    assert out.count("3 classes, 18 images") == 1  # and only it gets progress events (no second bar)
    assert [p.name for p in ckpt.checkpoint_dirs(run)] == ["step_00000004", "step_00000002"]
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # no stray temp folders
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # short runs log every step, and only the lead process writes
    assert json.loads((run / "config.json").read_text())["train"]["batch"] == 8  # the global batch
    G, cfg = ckpt.load_generator(run)
    assert cfg.model.class_names == ["blue", "green", "red"]
    with torch.no_grad():
        img = G(torch.randn(3, cfg.model.nz), torch.tensor([0, 1, 2]))
    assert img.shape == (3, 3, 32, 32) and torch.isfinite(img).all()


def test_two_processes_train_like_one_with_the_same_global_batch(cli_runs, tmp_path):
    proc, two, one, data = cli_runs
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _assert_runs_agree(two, one, 4, 2)
    a, b = ([json.loads(line) for line in (r / "stats.jsonl").read_text().splitlines()] for r in (two, one))
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        for k in ("d_loss", "gp", "w_dist", "g_loss"):  # logged losses are the mean over the processes
            assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-6), (ra["step"], k)
        assert ra["kimg"] == rb["kimg"]  # the same number of images per step
    # the check can fail: one process that sees only one process's share (batch 4) is far off
    share = tmp_path / "share"
    args = [x if x != "8" else "4" for x in CLI_ARGS]
    assert main(["train", "cgan", data, "--out", str(share), *args]) == 0
    with pytest.raises(AssertionError):
        _assert_runs_agree(share, one, 4, 2)


def test_run_from_two_processes_resumes_in_one(cli_runs, tmp_path):
    proc, two, one, _ = cli_runs
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = {}
    for name, src in (("two", two), ("one", one)):
        runs[name] = shutil.copytree(src, tmp_path / name)
        events = []
        res = resume(runs[name], steps=6, on_progress=lambda p: events.append((p.event, p.step)))
        assert res.step == 6 and not res.stopped
        assert events[0] == ("data", 4)  # continued from the 2-process run's last checkpoint
        steps = [json.loads(line)["step"] for line in (runs[name] / "stats.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3, 4, 5, 6]  # the 2-process run's lines, then the resumed run's
    _assert_runs_agree(runs["two"], runs["one"], 6, 4)


# ---- two processes started by the test, calling the training functions -----------------------
def _dump(loop, res, events) -> dict:
    return {"G": loop.G.state_dict(), "D": loop.D.state_dict(), "G_ema": loop.G_ema.state_dict(),
            "opt_g": loop.opt_g.state_dict(), "opt_d": loop.opt_d.state_dict(), "rng": loop.gen.get_state(),
            "step": res.step, "stopped": res.stopped, "checkpoint": str(res.checkpoint), "events": events}


def _faults(rank: int):
    """Rank 1 alone: its third step gives a NaN loss (and NaN weights), and from its seventh
    look at should_stop on it asks to stop. Rank 0 sees neither."""
    calls = {"step": 0, "stop": 0}
    real_step = train_mod.Trainer.train_step

    def step(self):
        calls["step"] += 1
        rec = real_step(self)
        if rank == 1 and calls["step"] == 3:
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
            rec["g_loss"] = float("nan")
        return rec

    def stop():
        calls["stop"] += 1
        return rank == 1 and calls["stop"] >= 7

    train_mod.Trainer.train_step = step
    return stop


def _rank_main(rank: int, world: int, store: str, jobs: list[dict], out: str) -> None:
    torch.set_num_threads(1)
    # a collective that waits this long fails (a deadlock shows as an error, not a hang)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    real_run, real_step = train_mod._run, train_mod.Trainer.train_step
    try:
        for job in jobs:
            if job["kind"] == "batch-error":
                try:
                    train(job["cfg"], job["run"])
                except ConfigError as e:
                    torch.save({"error": str(e)}, f"{out}/{job['name']}_{rank}.pt")
                continue
            held = {}

            def run(loop, *a, **k):
                held["loop"] = loop
                return real_run(loop, *a, **k)

            train_mod._run = run
            stop = _faults(rank) if job.get("faults") else None
            events = []
            on_progress = lambda p: events.append((p.event, p.step))  # noqa: E731
            if job["kind"] == "train":
                res = train(job["cfg"], job["run"], on_progress=on_progress, should_stop=stop)
            else:
                res = resume(job["run"], steps=job["steps"], on_progress=on_progress)
            torch.save(_dump(held["loop"], res, events), f"{out}/{job['name']}_{rank}.pt")
            train_mod._run, train_mod.Trainer.train_step = real_run, real_step
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    """Runs the jobs in two processes; returns {job name: (rank 0 dump, rank 1 dump)} and paths."""
    root = tmp_path_factory.mktemp("spawned")
    data = make_class_folder(root / "data")
    textures = [make_texture(root / "stripes.png"), make_texture(root / "stripes2.png", size=80)]
    # fp32 everywhere: bf16 autocast (chosen on CPUs with AVX512-BF16) rounds too coarsely to compare runs
    cgan = lambda **k: tiny_cgan(data, **{"batch": 8, "augment": AUG, "precision": "fp32", **k})  # noqa: E731
    sgan = lambda **k: tiny_sgan(textures, **{"batch": 4, "steps": 4, "precision": "fp32", **k})  # noqa: E731
    # one process, for comparison, and a run that two processes go on with
    train(cgan(steps=4), root / "cgan_one")
    train(sgan(), root / "sgan_one")
    train(cgan(steps=2), root / "resumed")
    train(cgan(steps=4, loss="hinge", diversity=0.5), root / "diverse_one")
    short_budget = cgan(steps=4, minutes=0.05)
    short_budget.model.d_channels = None
    jobs = [
        {"kind": "train", "name": "diverse", "cfg": cgan(steps=4, loss="hinge", diversity=0.5),
         "run": str(root / "diverse_two")},
        {"kind": "train", "name": "sgan", "cfg": sgan(), "run": str(root / "sgan_two")},
        {"kind": "resume", "name": "resumed", "run": str(root / "resumed"), "steps": 4},
        {"kind": "batch-error", "name": "batch", "cfg": cgan(batch=3), "run": str(root / "odd")},
        {"kind": "train", "name": "faults", "cfg": cgan(steps=8), "run": str(root / "faults"), "faults": True},
        # a critic left to a short budget: both processes time their share and settle on one width
        {"kind": "train", "name": "critic", "cfg": short_budget, "run": str(root / "critic")},
    ]
    out = root / "out"
    out.mkdir()
    ctx = mp.start_processes(_rank_main, args=(2, str(root / "store"), jobs, str(out)), nprocs=2,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + 600  # a last resort: a deadlock ends in gloo's timeout first
    try:
        while not ctx.join(timeout=2):
            assert time.monotonic() < deadline, "the two processes did not finish (deadlock?)"
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    dumps = {}
    for job in jobs:
        dumps[job["name"]] = tuple(torch.load(out / f"{job['name']}_{r}.pt", weights_only=True) for r in (0, 1))
    return root, dumps


def _assert_identical(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_identical(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}/{i}")
    else:
        assert a == b, where


@pytest.mark.parametrize("job", ["sgan", "resumed", "faults", "diverse", "critic"])
def test_processes_end_with_identical_weights_buffers_and_state(spawned, job):
    _, dumps = spawned
    a, b = dumps[job]
    assert any(k.endswith("_u") for k in a["D"])  # spectral norm's power-iteration vectors are compared
    assert any(k.endswith("running_var") for k in a["G"])  # and BatchNorm's running statistics
    for part in ("G", "D", "G_ema", "opt_g", "opt_d", "rng", "step", "stopped", "checkpoint"):
        _assert_identical(a[part], b[part], part)


def test_processes_settle_on_one_critic_width_for_a_short_budget(spawned):
    root, dumps = spawned
    for dump in dumps["critic"]:
        assert dump["D"]["features.0.parametrizations.weight.original"].shape[0] == SHORT_CRITIC
    assert json.loads((root / "critic" / "config.json").read_text())["model"]["d_channels"] == SHORT_CRITIC


def test_sgan_two_processes_train_like_one(spawned):
    root, dumps = spawned
    assert dumps["sgan"][0]["step"] == 4
    assert sorted(p.name for p in (root / "sgan_two" / "samples").iterdir()) == \
        ["latest.png", "step_00000002.png", "step_00000004.png"]
    _assert_runs_agree(root / "sgan_two", root / "sgan_one", 4, 2)


def test_mode_seeking_pairs_stay_within_a_process(spawned):
    root, _ = spawned  # rows i and i + 4 of the global batch of 8 are pairs: both on the same rank
    _assert_runs_agree(root / "diverse_two", root / "diverse_one", 4, 2)


def test_run_from_one_process_resumes_in_two(spawned):
    root, dumps = spawned
    lead, other = dumps["resumed"]
    assert lead["step"] == 4 and lead["events"][0] == ("data", 2)
    assert other["events"] == []  # only the lead process reports
    _assert_runs_agree(root / "resumed", root / "cgan_one", 4, 2)


def test_stop_or_nan_in_one_process_is_acted_on_by_all(spawned):
    root, dumps = spawned
    lead, other = dumps["faults"]
    # rank 1 alone had a NaN at its third step: both rolled back to step 2 and went on
    assert ("rollback", 2) in lead["events"]
    # rank 1 alone asked to stop: both stopped after step 5, and a checkpoint of it was written
    assert lead["stopped"] and lead["step"] == 5 and other["step"] == 5
    assert lead["checkpoint"].endswith("step_00000005")
    assert [p.name for p in ckpt.checkpoint_dirs(root / "faults")] == ["step_00000005", "step_00000004"]
    assert all(torch.isfinite(v).all() for v in lead["G"].values() if v.is_floating_point())
    assert other["events"] == []


def test_batch_that_does_not_split_evenly_is_refused(spawned):
    _, dumps = spawned
    for d in dumps["batch"]:
        assert "batch (3) must split evenly across the 2 training processes" in d["error"]
        assert "such as 2 or 4" in d["error"]
