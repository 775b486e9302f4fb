"""What the three tabs share: the page's style, the context they work in, errors shown as messages,
and the pictures of the Train tab's monitor (progress bar, loss chart, quality gauge)."""
from __future__ import annotations

import base64
import functools
import html
import inspect
import io
import math
from dataclasses import dataclass, field
from functools import partial

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from gan_core.config import NO_STEP_LIMIT
from gan_core.errors import StudioError, os_error_text
from gan_core.jobs import Jobs, RunView
from gan_core.live import draw_distance
from gan_core.texture import KeptTexture
from gan_core.workspace import Workspace

MAX_UPLOAD_MB = 200  # per uploaded file (the zip of class folders)
MAX_QUEUE = 64  # requests waiting in the queue; more are refused ("queue is full")
LOSS_COLORS = {"critic (d_loss)": "#1f77b4", "generator (g_loss)": "#ff7f0e"}

CSS = """
.pixelated .image-container { padding-top: 38px; box-sizing: border-box; }
.pixelated img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
.brush-row { gap: 8px; align-items: center; }
.studio-progress { font-size: 0.95rem; line-height: 1.5; }
.studio-progress .bar { height: 12px; background: var(--neutral-200); border-radius: 6px; overflow: hidden;
                        margin: 4px 0 6px 0; }
.studio-progress .fill { height: 100%; background: var(--color-accent); transition: width 0.4s; }
.studio-progress .failed { color: #c0392b; font-weight: 600; }
.brush-swatch { display: inline-block; width: 14px; height: 14px; border-radius: 3px; margin-right: 6px;
                vertical-align: -2px; border: 1px solid #0003; }
.hint { color: var(--body-text-color-subdued); font-size: 0.85rem; }
.explore-gallery img { image-rendering: pixelated; }
.explore-gallery .grid-wrap { height: auto !important; max-height: 640px; }
.lineage-strip .caption-label { font-size: 0.7rem; }
.lineage-strip img { image-rendering: pixelated; }
.fav-gallery .grid-container { grid-template-columns: repeat(6, minmax(0, 1fr)) !important; }
.lineage-strip .grid-container { grid-template-columns: repeat(8, minmax(0, 1fr)) !important; }
"""


@dataclass
class Context:
    """What every handler works on: the workspace (runs, models, exports), the training job and the
    newest texture (kept for its export)."""

    ws: Workspace
    jobs: Jobs
    textures: KeptTexture = field(default_factory=KeptTexture)


def errors_as_messages(fn):
    """Show a StudioError's (or a file system error's) message in the page (gr.Error), never a traceback."""
    if inspect.isgeneratorfunction(fn):
        raise TypeError("generators are not wrapped")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except OSError as e:  # a full disk, a vanished folder: what and where, not a traceback
            raise gr.Error(f"{os_error_text(e)}.", print_exception=False) from None
    return wrapper


def fmt_time(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_html(v: RunView) -> str:
    """The run's line (name, state, step or time, speed, time left), a bar and its message."""
    rec = v.record or {}
    used = float(rec.get("used_s", 0) or 0)
    by_time = bool(v.budget_s) and v.total >= NO_STEP_LIMIT
    done = max(v.step / v.total if v.total else 0.0, used / v.budget_s if v.budget_s else 0.0)
    pct = min(100.0, 100.0 * done)
    bits = [f"<b>{html.escape(v.run)}</b> &middot; {html.escape(v.state)}" if v.run else "No training run yet."]
    if by_time:
        bits.append(f"{fmt_time(used)} of {fmt_time(v.budget_s)} &middot; step {v.step}")
    elif v.total:
        bits.append(f"step {v.step} / {v.total}")
    if rec and v.state in ("running", "stopping"):
        bits.append(f"{rec.get('img_per_s', 0):.1f} images/s")
        bits.append(f"about {fmt_time(rec.get('eta_s'))} left")
    msg = ""
    if v.message:
        msg = f"<div class='{'failed' if v.state == 'failed' else 'hint'}'>{html.escape(v.message)}</div>"
    return (f"<div class='studio-progress'><div>{' &middot; '.join(bits)}</div>"
            f"<div class='bar'><div class='fill' style='width:{pct:.1f}%'></div></div>{msg}</div>")


def loss_frame(stats: list[dict], max_points: int = 800) -> pd.DataFrame | None:
    """The loss chart's table (None without records: an empty table would leave the chart
    without a colour scale for the lines that follow)."""
    if not stats:
        return None
    if len(stats) > max_points:  # keep the chart light for long runs: every k-th record and the last
        k = -(-len(stats) // max_points)
        stats = stats[::k] + ([stats[-1]] if (len(stats) - 1) % k else [])
    rows = []
    for r in stats:
        rows.append({"step": r["step"], "loss": r["d_loss"], "curve": "critic (d_loss)"})
        rows.append({"step": r["step"], "loss": r["g_loss"], "curve": "generator (g_loss)"})
    return pd.DataFrame(rows, columns=["step", "loss", "curve"]).astype(
        {"step": "int64", "loss": "float64", "curve": "str"})


def quality_figure(records: list[dict]):
    """The quality gauge: distance of the samples to the user's held-back images (SWD) with the
    real-vs-real floor dashed, and the grid measure, over training time. None without records."""
    if not records:
        return None
    from matplotlib.figure import Figure  # no pyplot: its global figure list is not safe across handler threads

    mins = [r.get("used_s", 0) / 60 for r in records]
    fig = Figure(figsize=(7.2, 3.0), dpi=100)
    a, b = fig.subplots(1, 2)
    draw_distance(a, mins, records)
    a.set_title("Distance to your images (lower is closer)", fontsize=9)
    a.set_xlabel("minutes of training", fontsize=8)
    a.legend(fontsize=7, loc="upper right")
    b.plot(mins, [r["grid"] for r in records], marker="o", ms=3, color="#e4572e")
    b.axhline(1.0, ls="--", color="#555", lw=1)
    b.set_title("Grid pattern (1 = like your images)", fontsize=9)
    b.set_xlabel("minutes of training", fontsize=8)
    for ax in (a, b):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.86))  # the top stays free for the component's label
    return fig


def keep(value):
    """Remember a value (e.g. the model that opened; after a failed load the dropdown is set back)."""
    return value


def model_list(ctx: Context, variant: str, current=None):
    """The model dropdown's choices; the current model stays chosen if it is still there."""
    choices = ctx.ws.models(variant)
    values = [v for _, v in choices]
    return gr.update(choices=choices, value=current if current in values else (values[0] if values else None))


@dataclass
class ModelPicker:
    model: gr.Dropdown
    refresh: gr.Button
    info: gr.Markdown
    opened: gr.State  # the model that last opened


def model_picker(kind: str) -> ModelPicker:
    """A model dropdown with its Refresh button, and a line about the open model (made inside the
    tab: a State outside any tab would be drawn as a tab of its own)."""
    with gr.Row():
        model = gr.Dropdown([], label=f"{kind.capitalize()} model", allow_custom_value=True, scale=4)
        refresh = gr.Button("Refresh", size="sm", scale=1, min_width=80)
    info = gr.Markdown(f"Train a {kind} model, then press Refresh.")
    return ModelPicker(model, refresh, info, gr.State(None))


def wire_model_picker(ctx: Context, variant: str, tab, picker: ModelPicker, opener, outputs, extra_inputs=()):
    """Refresh (and opening the tab) lists the models; choosing one runs `opener(ctx, path,
    *extra_inputs)`; a model that fails to load gives way to the one that was open. Returns the
    opening event."""
    listed = dict(fn=partial(model_list, ctx, variant), inputs=picker.model, outputs=picker.model)
    picker.refresh.click(**listed, api_name=f"list_{variant}_models")
    tab.select(**listed, api_visibility="private")
    opened = picker.model.change(errors_as_messages(partial(opener, ctx)), [picker.model, *extra_inputs], outputs,
                                 api_name=f"open_{variant}_model")
    opened.success(keep, picker.model, picker.opened, api_visibility="private")
    opened.failure(keep, picker.opened, picker.model, api_visibility="private")
    return opened


def data_uri(img: np.ndarray) -> str:
    """A picture for the page: PNG up to 1024 px (exact pixels), JPEG above (a few MB at 4096)."""
    buf = io.BytesIO()
    if max(img.shape[:2]) <= 1024:
        Image.fromarray(img).save(buf, format="PNG")
        kind = "png"
    else:
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        kind = "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(buf.getvalue()).decode()}"
