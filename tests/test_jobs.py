"""The background job: one run at a time, errors become messages, stop ends within a step."""
from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from gan_core import checkpoint as ckpt
from gan_core.errors import ConfigError, StudioError
from gan_core.jobs import Jobs
from gan_core.runs import RunDir
from tests.conftest import tiny_cgan


def test_a_disk_error_in_the_studio_worker_is_a_message(tmp_path):
    jobs = Jobs()

    def work(**_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "stats.jsonl"))
    jobs.start(work, RunDir(tmp_path / "run"), "train")
    assert jobs.wait(10) and jobs.state == "failed"
    assert "No space left on device" in jobs.message and "resume" in jobs.message


def test_a_run_that_drifted_from_its_closest_reading_says_where_that_model_is(tmp_path):
    from gan_core.runs import best_label
    run = RunDir(tmp_path / "my-run")
    (run.path / "best").mkdir(parents=True)
    (run.path / "best" / "G_ema.safetensors").write_bytes(b"")
    (run.path / "best" / "best.json").write_text('{"step": 250, "swd": 50.2, "swd_floor": 58.7}')

    class Res:
        stopped, checkpoint = False, Path("step_00000500")

        def __init__(self, step):
            self.step = step
    for step, told in ((500, True), (250, False)):  # told only when the closest step is not the last
        jobs = Jobs()
        jobs.start(lambda **_: Res(step), run, "train")
        assert jobs.wait(10) and jobs.state == "finished"
        assert jobs.message.startswith(f"finished at step {step}")
        assert (best_label("my-run", 250) in jobs.message) == told


def test_two_starts_at_the_same_moment_exactly_one_runs(tmp_path):
    jobs = Jobs()
    release = threading.Event()

    class Res:
        step, stopped, checkpoint = 0, False, Path("step_00000000")

    def work(**_):
        release.wait(10)
        return Res()
    barrier, results = threading.Barrier(8), []

    def client(i):
        barrier.wait()
        try:
            jobs.start(work, RunDir(tmp_path / f"run{i}"), "train")
            results.append("started")
        except StudioError as e:
            results.append(str(e))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    release.set()
    assert results.count("started") == 1
    assert all(r.startswith("Busy: the run") for r in results if r != "started")
    assert jobs.wait(10) and jobs.state == "finished"


def test_stop_ends_within_one_step_with_a_loadable_checkpoint(class_dir, tmp_path):
    jobs, run = Jobs(), tmp_path / "run"
    cfg = tiny_cgan(class_dir, steps=10_000, ckpt_every=10_000, sample_every=10_000)
    jobs.train(cfg, RunDir(run))
    t0 = time.time()
    while jobs.step < 3 and time.time() - t0 < 300:
        time.sleep(0.01)
    assert jobs.stop()
    at_stop = jobs.step
    assert jobs.wait(300) and jobs.state == "stopped", jobs.message
    assert at_stop <= jobs.step <= at_stop + 1
    newest = ckpt.checkpoint_dirs(run)[0]
    assert int(newest.name[5:]) == jobs.step
    cfg2 = ckpt.read_config(newest)
    from gan_core.nets import build_discriminator, build_generator
    st = ckpt.load_training_state(newest, build_generator(cfg2), build_generator(cfg2), build_discriminator(cfg2))
    assert st["step"] == jobs.step


def test_resume_at_or_below_the_current_step_is_refused_and_nothing_is_rewritten(class_dir, tmp_path):
    run = RunDir(tmp_path / "run")
    jobs = Jobs()
    jobs.train(tiny_cgan(class_dir, steps=4, ckpt_every=2), run)
    assert jobs.wait(120) and jobs.state == "finished", jobs.message
    config = (run.path / "config.json").read_bytes()
    for total in (2, 4):
        with pytest.raises(ConfigError, match="at step 4 already"):
            jobs.resume(run, steps=total)
    with pytest.raises(ConfigError, match="finished its 4 steps"):
        jobs.resume(run)
    assert not jobs.busy() and jobs.state == "finished"  # nothing started, the last run's state stays
    assert (run.path / "config.json").read_bytes() == config
    jobs.resume(run, steps=6)
    assert jobs.wait(120) and jobs.state == "finished" and run.latest_step() == 6


def test_the_monitor_shows_the_training_run_else_the_chosen_one(class_dir, tmp_path):
    jobs, a, b = Jobs(), RunDir(tmp_path / "a"), RunDir(tmp_path / "b")
    for run, steps in ((a, 2), (b, 4)):
        jobs.train(tiny_cgan(class_dir, steps=steps, ckpt_every=2, sample_every=2), run)
        assert jobs.wait(120) and jobs.state == "finished"
    shown = jobs.view(a)  # no job runs: the chosen run
    assert shown.run == "a" and shown.state == "not running" and shown.step == 2 and shown.total == 2
    assert shown.variant == "cgan" and shown.sample is not None and len(shown.stats) >= 1
    assert jobs.view(a, since=shown.signature).signature == shown.signature  # nothing changed
    last = jobs.view(None)  # nothing chosen: the last job's run
    assert last.run == "b" and last.state == "finished" and last.step == 4
    release = threading.Event()

    def work(**_):
        release.wait(30)
        raise ConfigError("released")
    jobs.start(work, b, "train")
    try:
        assert jobs.view(a).run == "b" and jobs.view(a).busy  # a training run is always the one shown
    finally:
        release.set()
        jobs.wait(30)
    assert jobs.view(a).run == "a"


def test_the_view_after_a_job_ends_differs_from_one_taken_as_its_last_state_was_set(class_dir, tmp_path, monkeypatch):
    """The worker sets "stopped at step N" a moment before its job counts as done: a page that read the
    view in between must still be told that Start can be pressed again."""
    from gan_core import jobs as jobs_module
    run, between, release = RunDir(tmp_path / "run"), threading.Event(), threading.Event()
    real = jobs_module.earlier_best

    def held(*args):  # runs after the final state and message are set, before the job is done
        between.set()
        release.wait(30)
        return real(*args)
    monkeypatch.setattr(jobs_module, "earlier_best", held)
    jobs = Jobs()
    jobs.train(tiny_cgan(class_dir, steps=2, ckpt_every=2), run)
    assert between.wait(120)
    seen = jobs.view(run)
    assert seen.state == "finished" and seen.busy  # the last state, the job not yet done
    release.set()
    assert jobs.wait(30)
    now = jobs.view(run, since=seen.signature)
    assert now.signature != seen.signature and not now.busy and now.state == "finished"
