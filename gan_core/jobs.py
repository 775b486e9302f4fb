"""One background training run at a time, for the studio (or a notebook): start, stop, wait,
snapshot, and a view of a run for a live monitor.

The job's state outlives browser sessions: a page that reloads (or a second tab) reads the same
`snapshot()`. `stop()` sets the flag the training loop polls; the loop then saves a checkpoint
and returns.
"""
from __future__ import annotations

import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import train as training
from .config import RunConfig
from .errors import StudioError, os_error_text
from .runs import RunDir, best_label, earlier_best


@dataclass
class RunView:
    """What a monitor shows of a run: the job's state if it is the running one, else the folder's."""

    run: str = ""  # run name ("" for none)
    variant: str = ""  # cgan or sgan ("" if unknown)
    state: str = "idle"
    step: int = 0
    total: int = 0
    budget_s: float = 0.0
    record: dict = field(default_factory=dict)  # the newest statistics line (losses, speed, time used)
    message: str = ""
    busy: bool = False
    stats: list[dict] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)
    sample: np.ndarray | None = None
    signature: tuple = ()  # equal signatures: nothing to redraw


class Jobs:
    """Runs at most one training job in a worker thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gan-studio-training")
        self._future: Future | None = None
        self._stop = threading.Event()
        self.run: RunDir | None = None
        self.kind = ""
        self.state = "idle"  # idle, starting, running, stopping, finished, stopped, failed
        self.message = ""
        self.step = 0
        self.total = 0
        self.record: dict = {}

    def busy(self) -> bool:
        return self._future is not None and not self._future.done()

    # ---- starting -----------------------------------------------------------------------
    def refuse_start(self, run: RunDir) -> None:
        """Raise the reason a new run could not start in `run` now (one trains, or the name is taken)."""
        self._refuse_if_busy()
        if run.has_checkpoint():
            raise StudioError(f"A run named '{run.name}' exists already. Resume it, or choose another name.")

    def train(self, cfg: RunConfig, run: RunDir) -> None:
        """Start a new run (refused if one trains, or if the folder holds a run already)."""
        self.refuse_start(run)
        self.start(lambda **kw: training.train(cfg, run.path, **kw), run, "train")

    def resume(self, run: RunDir, steps: int | None = None, minutes: float | None = None) -> None:
        """Continue a run; a new total at or below its step is refused before anything starts."""
        self._refuse_if_busy()
        run.check_resume(steps, minutes)
        self.start(lambda **kw: training.resume(run.path, steps=steps, minutes=minutes, **kw), run, "resume")

    def start(self, work, run: RunDir, kind: str) -> None:
        """`work(on_progress=..., should_stop=...)` runs in the worker thread."""
        # The worker draws the loss plot while the caller may draw charts: import the plotting
        # library here first, as two threads importing it at once can see it half loaded
        # (AttributeError: module 'matplotlib' has no attribute ...).
        import matplotlib.figure  # noqa: F401
        with self._lock:
            self._refuse_if_busy()
            self._stop.clear()
            self.run, self.kind, self.state = run, kind, "starting"
            self.message, self.step, self.total, self.record = "loading the data", 0, 0, {}
            self._future = self._pool.submit(self._work, work)

    def _refuse_if_busy(self) -> None:
        if self.busy():
            raise StudioError(f"Busy: the run '{self.run.name}' is training. Stop it (or wait until it "
                              "finishes) before starting another one.")

    def _work(self, work) -> None:
        try:
            res = work(on_progress=self._on_progress, should_stop=self._stop.is_set)
            self.step = res.step
            self.state = "stopped" if res.stopped else "finished"
            self.message = f"{self.state} at step {res.step}; checkpoint saved ({res.checkpoint.name})"
            best = earlier_best(self.run.path, res.step)
            if best:
                self.message += (f". It came closest to your images at step {best['step']}: the model lists "
                                 f"offer that one as '{best_label(self.run.name, int(best['step']))}'")
        except StudioError as e:
            self.state, self.message = "failed", str(e)
        except OSError as e:
            self.state, self.message = "failed", (
                f"Training stopped: {os_error_text(e)}. Free some disk space or make the workspace "
                "writable, then resume the run; its earlier checkpoints are kept.")
        except Exception as e:  # keep the server alive and tell the user; details go to the console
            traceback.print_exc()
            self.state, self.message = "failed", f"Training stopped by an unexpected error: {type(e).__name__}: {e}"

    def _on_progress(self, p) -> None:
        if p.event == "data":  # a note about the data while it loads
            self.message = p.message
            return
        self.step, self.total = p.step, p.total
        if p.event == "log":
            self.record = dict(p.record)
        if p.event == "rollback":
            self.message = p.message
        elif self.state in ("starting", "running"):
            self.state, self.message = "running", ""

    # ---- stopping and waiting -----------------------------------------------------------
    def stop(self) -> bool:
        """Ask the running job to stop after its step; False when none runs."""
        if not self.busy():
            return False
        self._stop.set()
        self.state, self.message = "stopping", "saving a checkpoint"
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; True when none is running."""
        f = self._future
        if f is not None:
            try:
                f.result(timeout)
            except TimeoutError:
                pass
        return not self.busy()

    def snapshot(self) -> dict:
        return {"run": self.run, "state": self.state, "message": self.message, "step": self.step,
                "total": self.total, "record": dict(self.record), "busy": self.busy(), "kind": self.kind}

    # ---- monitoring ---------------------------------------------------------------------
    def view(self, chosen: RunDir | None = None, since: tuple | None = None) -> RunView:
        """The run to monitor: the training one while a job runs, else the chosen run, else the
        last job's. With `since` (an earlier view's signature) and no change, the view carries only
        its signature (and nothing needs reading)."""
        snap = self.snapshot()
        run = snap["run"] if snap["busy"] or chosen is None else chosen
        if run is None or not run.exists():
            v = RunView(state="idle", message=snap["message"])
            v.signature = ("none", snap["state"], snap["message"])
            return v
        mine = run == snap["run"]
        # busy too: the worker sets the final state and message just before its job counts as done, and a
        # view taken between the two must not be the last (the page would keep Start disabled)
        sig = run.signature() + ((snap["state"], snap["step"], snap["message"], snap["busy"]) if mine
                                 else ("not running",))
        if sig == since:
            return RunView(run=run.name, signature=sig)
        cfg = run.settings()  # None while a new run's config.json is still being written
        limit_steps, minutes = run.limits(cfg)
        stats = run.stats()
        v = RunView(run=run.name, variant=cfg.variant if cfg else "", budget_s=minutes * 60, stats=stats,
                    quality=run.quality(), sample=run.latest_sample(), signature=sig)
        if mine:
            v.state, v.step, v.total = snap["state"], snap["step"], snap["total"] or limit_steps
            v.record, v.message, v.busy = snap["record"], snap["message"], snap["busy"]
        else:
            v.state, v.total = "not running", limit_steps
            v.step = max(stats[-1]["step"] if stats else 0, run.latest_step())
        if not v.record and stats:
            v.record = stats[-1] if v.state == "running" else {"used_s": stats[-1].get("used_s", 0)}
        return v
