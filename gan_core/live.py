"""A training run's progress, live, for a notebook or a terminal: a tqdm bar (the notebook's widget
bar where it can be drawn, the text bar elsewhere) and, in a notebook, one chart of the losses and
the quality gauge that is redrawn in place while the run trains.

It only reads: the job's state (`Jobs.view`) and the run folder's records. Stopping is the
caller's (see `gan_core.notebook.Run.watch`).
"""
from __future__ import annotations

import io
import time

from .config import NO_STEP_LIMIT
from .jobs import Jobs, RunView
from .runs import RunDir


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where rich output is shown), False in a terminal or script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def progress_bar(total: float, desc: str, unit: str):
    """The notebook's widget bar inside a kernel with ipywidgets, else tqdm's text bar."""
    if in_notebook():
        try:
            from tqdm.notebook import tqdm as notebook_tqdm
            return notebook_tqdm(total=total, desc=desc, unit=unit)
        except ImportError:  # no ipywidgets: the text bar works everywhere
            pass
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit)


def draw_distance(ax, x: list[float], records: list[dict]) -> None:
    """The quality gauge's curve on a matplotlib axis: the samples' distance to the user's images
    (SWD, log scale) at `x`, and the distance between their own images (the floor) dashed."""
    ax.plot(x, [r["swd"] for r in records], marker="o", ms=3, color="#2e86ab", label="your images vs samples")
    floors = [r["swd_floor"] for r in records if r.get("swd_floor")]
    if floors:
        ax.axhline(floors[-1], ls="--", color="#555", lw=1, label="your images vs each other")
    ax.set_yscale("log")


def chart_png(stats: list[dict], quality: list[dict], title: str = "") -> bytes:
    """One PNG: the critic and generator losses by step, and the quality gauge (distance of the
    samples to the user's images, with the distance between their own images dashed)."""
    from matplotlib.figure import Figure  # no pyplot: nothing global is touched

    fig = Figure(figsize=(9.0, 3.0), dpi=90)
    a, b = fig.subplots(1, 2)
    for key, label in (("d_loss", "critic"), ("g_loss", "generator")):
        pts = [(r["step"], r[key]) for r in stats if key in r]
        if pts:
            a.plot(*zip(*pts), lw=1, label=label)
    a.set_title("losses", fontsize=9)
    a.set_xlabel("step", fontsize=8)
    if stats:
        a.legend(fontsize=7)
    q = [r for r in quality if "swd" in r]
    if q:
        draw_distance(b, [r["step"] for r in q], q)
        b.legend(fontsize=7)
    b.set_title("distance to your images (lower is closer)", fontsize=9)
    b.set_xlabel("step", fontsize=8)
    for ax in (a, b):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class Monitor:
    """Draws a run's progress each time `update(view)` is called; `close()` ends the bar."""

    def __init__(self, name: str, chart_every: float = 3.0):
        self.name, self.chart_every = name, chart_every
        self.bar = None
        self.by_time = False
        self.chart = None  # the notebook's display handle of the chart (below the bar)
        self._chart_sig, self._chart_t = None, 0.0
        self.notebook = in_notebook()

    def update(self, v: RunView, final: bool = False) -> None:
        if self.bar is None and v.state not in ("starting", "idle") and (v.budget_s or v.total):
            self.by_time = bool(v.budget_s) and v.total >= NO_STEP_LIMIT
            total = round(v.budget_s) if self.by_time else v.total
            self.bar = progress_bar(total, self.name, "s" if self.by_time else "step")
        if self.bar is not None:
            rec = v.record or {}
            pos = float(rec.get("used_s", 0) or 0) if self.by_time else v.step
            self.bar.n = min(self.bar.total, round(pos)) if self.bar.total else round(pos)
            post = {"step": v.step} if self.by_time else {}
            for key, label in (("d_loss", "critic"), ("g_loss", "gen"), ("img_per_s", "img/s")):
                if key in rec:
                    post[label] = f"{rec[key]:.3g}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.refresh()
        now = time.monotonic()
        sig = (len(v.stats), len(v.quality))
        if self.notebook and v.stats and sig != self._chart_sig and (
                final or now - self._chart_t >= self.chart_every):
            from IPython.display import Image, display
            img = Image(data=chart_png(v.stats, v.quality, self.name), format="png")
            if self.chart is None:
                self.chart = display(img, display_id=True)
            else:
                self.chart.update(img)
            self._chart_sig, self._chart_t = sig, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def follow(jobs: Jobs, run: RunDir, every: float = 0.5) -> RunView:
    """Show the job's progress on `run` until the job ends; returns the last view. A
    KeyboardInterrupt passes through (the caller stops the job)."""
    mon = Monitor(run.name)
    try:
        while jobs.busy() and jobs.run == run:  # (the view says idle until the run's folder exists)
            mon.update(jobs.view(run))
            time.sleep(every)
        v = jobs.view(run)
        mon.update(v, final=True)
        return v
    finally:
        mon.close()
