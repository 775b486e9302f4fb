"""GAN Studio: train your own GANs on your own images, then play with them, in the browser.

    python studio.py                         # http://127.0.0.1:7860, workspace in ./workspace
    python studio.py --port 8000 --workspace ~/gan-work
    python studio.py --listen --password SECRET --data-root /srv/datasets   # workshop mode (LAN)

This file is only the user interface. Every model, training and image operation is a call into
`gan_core`; the command line (`python -m gan_core`) is the other door onto the same functions.

Tabs: Train (check a data folder, start / stop / resume one run in a background worker, live loss
chart and samples), Explore (conditional models: seeds, truncation, class blending, latent
interpolation, grids, PNG and animation export) and Texture (spatial models: any size up to
8192 px, seamless tiles, styles painted on a canvas, PNG export).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import socket
import stat
import sys
import threading
import time
import traceback
import zipfile
from collections import OrderedDict
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from gan_core import checkpoint, explore, texture
from gan_core import train as training
from gan_core.config import (AUGMENTS, DEFAULT_RECIPE, NO_STEP_LIMIT, RESOLUTIONS, CGANConfig, RunConfig, SGANConfig,
                             TrainConfig, recipe_model)
from gan_core.data import IMAGE_EXTENSIONS, is_image_name, list_texture_files, load_rgb, resize_crop, scan_class_folder
from gan_core.errors import ConfigError, DatasetError, StudioError
from gan_core.io import atomic_write
from gan_core.metrics import seam_ratio

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS_DIR = HERE / "checkpoints"  # shipped demo models (may be empty)

MAX_UPLOAD_MB = 200  # per uploaded file (the zip of class folders)
MAX_QUEUE = 64  # requests waiting in the queue; more are refused ("queue is full")
MAX_UNZIPPED_BYTES = 1_000_000_000  # total size of the extracted images
MAX_ZIP_MEMBERS = 20_000
MAX_CLASS_SLIDERS = 8
MAX_VERIFY = 5000  # images decoded by 'Check data'
PREVIEW_SIDE = 1024  # texture previews are shrunk to this; exports keep the full size
SIZE_PRESETS = ("512", "1024", "2048", "4096")
# One brush colour per painted style; the first one is also what unpainted canvas means.
BRUSHES = (("#e4572e", "red"), ("#2e86ab", "blue"), ("#76b041", "green"), ("#f3c623", "yellow"))
RANDOM_STYLE = "random style (seed)"
LOSS_COLORS = {"critic (d_loss)": "#1f77b4", "generator (g_loss)": "#ff7f0e"}
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

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
"""


# ---------------------------------------------------------------------------------------------
# Names and paths
# ---------------------------------------------------------------------------------------------
def check_run_name(text: str | None) -> str:
    """A run name becomes a folder name: letters, digits, - and _ only, never a path."""
    name = (text or "").strip()
    if not name:
        raise ConfigError("Give the run a name, e.g. flowers-64 (letters, digits, - and _).")
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"The run name {name!r} may contain only letters, digits, - and _ "
                          "(no spaces, dots or slashes; at most 64 characters).")
    return name


def safe_filename(text: str | None, default: str = "export") -> str:
    """A file name stem made from user text: other characters become '_', length is capped."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", (text or "").strip()).strip("_-")[:60]
    return stem or default


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


class Workspace:
    """WORKSPACE/runs/<name>/ (training runs), exports/ (downloads), uploads/ (unpacked zips)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.runs = self.root / "runs"
        self.exports = self.root / "exports"
        self.uploads = self.root / "uploads"
        for d in (self.runs, self.exports, self.uploads):
            d.mkdir(parents=True, exist_ok=True)

    def run_dir(self, name: str) -> Path:
        return self.runs / check_run_name(name)

    def run_names(self) -> list[str]:
        return sorted(p.name for p in self.runs.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name))

    def export_path(self, stem: str, suffix: str) -> Path:
        """A new file in exports/ named from sanitised text and the time; never overwrites."""
        base = f"{safe_filename(stem)}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = self.exports / f"{base}{suffix}"
        n = 2
        while path.exists():
            path = self.exports / f"{base}-{n}{suffix}"
            n += 1
        assert path.parent == self.exports
        return path


def extract_zip(zip_path: str | os.PathLike, uploads: Path, max_bytes: int = MAX_UNZIPPED_BYTES,
                max_members: int = MAX_ZIP_MEMBERS) -> Path:
    """Unpack the image files of an uploaded zip into a new folder under `uploads`.

    Members whose path is absolute, climbs out with '..', or is a link are refused; only image
    files are written; the total size is counted while writing (zip headers can lie). Returns
    the folder holding the class folders (a single top-level folder in the zip is stepped into).
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise DatasetError("The upload is not a readable zip file. Zip the folder that holds one "
                           "subfolder per class and upload that.") from None
    with zf:
        members = zf.infolist()
        if len(members) > max_members:
            raise DatasetError(f"The zip holds {len(members)} entries; the limit is {max_members}.")
        stem = safe_filename(Path(str(zip_path)).stem, "upload")
        dest = uploads / stem
        n = 2
        while dest.exists():
            dest = uploads / f"{stem}-{n}"
            n += 1
        tmp = uploads / f".tmp-{dest.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        total, written = 0, 0
        try:
            for m in members:
                name = m.filename.replace("\\", "/")
                parts = [p for p in name.split("/") if p not in ("", ".")]
                if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                    raise DatasetError(f"The zip entry {m.filename!r} points outside the folder; "
                                       "the upload was refused.")
                if stat.S_ISLNK(m.external_attr >> 16):
                    raise DatasetError(f"The zip entry {m.filename!r} is a link; links are not accepted.")
                if m.is_dir() or not parts or not is_image_name(parts[-1]):
                    continue
                if any(p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue
                target = tmp.joinpath(*parts)
                if not _inside(target, tmp):
                    raise DatasetError(f"The zip entry {m.filename!r} points outside the folder.")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise DatasetError(f"The zip unpacks to more than {max_bytes // 1_000_000} MB "
                                               "of images; use a local folder path instead.")
                        out.write(chunk)
                written += 1
            if not written:
                raise DatasetError("The zip holds no image files (" + ", ".join(IMAGE_EXTENSIONS) + ").")
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and any(c.is_dir() for c in entries[0].iterdir()):
        return entries[0]
    return dest


# ---------------------------------------------------------------------------------------------
# The one training job
# ---------------------------------------------------------------------------------------------
class JobManager:
    """Runs at most one training job in a background thread; its state outlives browser sessions.

    The page's timer reads `snapshot()`, so reloading the page (or opening a second tab) shows
    the running job. `stop()` sets the flag the training loop polls; the loop then saves a
    checkpoint and returns.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.run_dir: Path | None = None
        self.kind = ""
        self.state = "idle"  # idle, starting, running, stopping, finished, stopped, failed
        self.message = ""
        self.step = 0
        self.total = 0
        self.record: dict = {}
        self.started = 0.0

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, work, run_dir: Path, kind: str) -> None:
        """`work(on_progress=..., should_stop=...)` runs in the worker thread."""
        with self._lock:
            if self.busy():
                raise StudioError(f"Busy: the run '{self.run_dir.name}' is training. Stop it (or wait "
                                  "until it finishes) before starting another one.")
            self._stop.clear()
            self.run_dir, self.kind, self.state = Path(run_dir), kind, "starting"
            self.message, self.step, self.total, self.record = "loading the data", 0, 0, {}
            self.started = time.time()
            self._thread = threading.Thread(target=self._work, args=(work,), name="gan-studio-training",
                                            daemon=True)
            self._thread.start()

    def _work(self, work) -> None:
        try:
            res = work(on_progress=self._on_progress, should_stop=self._stop.is_set)
            self.step = res.step
            self.state = "stopped" if res.stopped else "finished"
            self.message = f"{self.state} at step {res.step}; checkpoint saved ({res.checkpoint.name})"
        except StudioError as e:
            self.state, self.message = "failed", str(e)
        except OSError as e:
            where = f" ({e.filename})" if e.filename else ""
            self.state, self.message = "failed", (
                f"Training stopped: {e.strerror or e}{where}. Free some disk space or make the workspace "
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

    def stop(self) -> bool:
        if not self.busy():
            return False
        self._stop.set()
        self.state, self.message = "stopping", "saving a checkpoint"
        return True

    def wait(self, timeout: float | None = None) -> bool:
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self.busy()

    def snapshot(self) -> dict:
        return {"run_dir": self.run_dir, "state": self.state, "message": self.message, "step": self.step,
                "total": self.total, "record": dict(self.record), "busy": self.busy(), "kind": self.kind}


JOBS = JobManager()


# ---------------------------------------------------------------------------------------------
# Loaded generators, cached per checkpoint folder
# ---------------------------------------------------------------------------------------------
class ModelCache:
    def __init__(self, size: int = 4):
        self.size = size
        self._items: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike):
        """(G, cfg, folder) for the newest checkpoint of a run folder, or a model folder."""
        for attempt in range(2):
            folder = checkpoint.resolve_model_dir(path)
            key = str(folder)
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
                try:
                    G, cfg = checkpoint.load_generator(folder, device=training.pick_device())
                except StudioError:
                    if attempt == 0 and not folder.exists():  # pruned by a running training: retry
                        continue
                    raise
                self._items[key] = (G, cfg, folder)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
                return self._items[key]
        raise StudioError(f"{path} changed while it was being loaded; try again.")


MODELS = ModelCache()


def model_choices(ws: Workspace, models_dir: Path | None, variant: str) -> list[tuple[str, str]]:
    """(label, folder) for the shipped model folders and the workspace runs (with a checkpoint) of a
    variant; shipped models first, so a fresh studio opens with a demo selected."""
    shipped, runs = [], []
    if models_dir and models_dir.is_dir():
        for d in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                cfg = checkpoint.read_config(checkpoint.resolve_model_dir(d))
            except StudioError:
                continue
            if cfg.variant == variant:
                shipped.append((f"{d.name}  (demo)", str(d)))
    for name in ws.run_names():
        ckpts = checkpoint.checkpoint_dirs(ws.runs / name)
        if not ckpts:
            continue
        try:
            cfg = checkpoint.read_config(ckpts[0])
        except StudioError:
            continue
        if cfg.variant == variant:
            runs.append((f"{name}  (run, step {int(ckpts[0].name[5:])})", str(ws.runs / name)))
    return shipped + runs


# ---------------------------------------------------------------------------------------------
# Small helpers for pictures (no model maths here)
# ---------------------------------------------------------------------------------------------
def contact_sheet(rows: list[tuple[str, list[str]]], size: int = 48, n: int = 8) -> np.ndarray | None:
    """One picture: per row a caption and up to n thumbnails (decoded with gan_core's reader)."""
    from PIL import ImageDraw, ImageFont

    if not rows:
        return None
    label_w, gap = 150, 4
    sheet = Image.new("RGB", (label_w + n * (size + gap), len(rows) * (size + gap) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType
        font = ImageFont.load_default()
    for r, (caption, files) in enumerate(rows):
        y = gap + r * (size + gap)
        text = caption if len(caption) <= 22 else caption[:21] + "..."
        draw.text((4, y + size // 2), text, fill=(40, 40, 40), font=font, anchor="lm")
        x = label_w
        for f in files[:n]:
            try:
                sheet.paste(resize_crop(load_rgb(f), size), (x, y))
            except StudioError:
                continue
            x += size + gap
    return np.asarray(sheet)


def shrink(img: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= side:
        return img
    s = side / max(h, w)
    im = Image.fromarray(img).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    return np.asarray(im)


def labels_from_canvas(canvas, n_brushes: int = len(BRUSHES)) -> np.ndarray | None:
    """An integer brush map from the painted canvas: nearest brush colour per pixel.

    Transparent or white (unpainted) pixels count as brush 0. None when nothing is painted.
    """
    if canvas is None:
        return None
    img = canvas.get("composite") if isinstance(canvas, dict) else canvas
    if img is None:
        return None
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    rgb = a[..., :3].astype(np.int32)
    painted = np.ones(a.shape[:2], bool) if a.shape[-1] < 4 else a[..., 3] >= 128
    painted &= ~(rgb.min(-1) >= 235)  # the white paper
    if not painted.any():
        return None
    palette = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c, _ in BRUSHES[:n_brushes]], np.int32)
    dist = ((rgb[..., None, :] - palette[None, None]) ** 2).sum(-1)
    labels = dist.argmin(-1)
    labels[~painted] = 0
    return labels.astype(np.int64)


def seam_number(img: np.ndarray, limit: int = 4096) -> float:
    """gan_core's seam ratio; above limit x limit px it is measured on the four corner blocks
    (they hold every wrap-around neighbour pair near the corners) to keep memory bounded."""
    h, w = img.shape[:2]
    if h * w <= limit * limit:
        return seam_ratio(img)
    m = limit // 4
    rows = np.r_[0:min(m, h), max(h - m, 0):h] if h > 2 * m else np.arange(h)
    cols = np.r_[0:min(m, w), max(w - m, 0):w] if w > 2 * m else np.arange(w)
    return seam_ratio(img[np.ix_(rows, cols)])


RECIPE_CHOICES = [("Studio (recommended)", "studio"),
                  ("Fast (older networks, hinge)", "fast"),
                  ("Reference (older networks, WGAN-GP, 2 critic updates)", "reference")]
TRAIN_FOR = [("5 minutes", 5), ("10 minutes", 10), ("20 minutes", 20), ("60 minutes", 60),
             ("the number of steps", 0)]
ADD_TIME = [("no time (use steps)", 0), ("5 minutes", 5), ("10 minutes", 10), ("20 minutes", 20),
            ("60 minutes", 60)]
RESOLUTION_HINT = ("64 px: a 10-minute run on a laptop gives recognisable pictures. 128 px costs about 4x the "
                   "time per image: give it 30 minutes or more.")


def train_defaults(variant: str, recipe: str = DEFAULT_RECIPE) -> TrainConfig:
    """gan_core's training settings for a variant and recipe (textures use their own batch)."""
    return TrainConfig.recipe(recipe, variant)


def variant_defaults(variant: str, recipe: str):
    """The Train tab's fields when the variant changes: resolution (shown for conditional models
    only), batch, widths, sample and checkpoint intervals, augmentation and learning rate."""
    t, m = train_defaults(variant, recipe), (CGANConfig() if variant == "cgan" else SGANConfig())
    return (gr.update(visible=variant == "cgan"), t.batch, m.g_channels, m.d_channels,
            t.sample_every, t.ckpt_every, t.augment, t.lr_g)


def _fmt_time(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "?"
    s = int(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def read_stats(run_dir: Path) -> list[dict]:
    out = []
    p = run_dir / "stats.jsonl"
    if not p.is_file():
        return out
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            float(rec["step"]), float(rec["d_loss"]), float(rec["g_loss"])
        except (ValueError, KeyError, TypeError):
            continue  # a line being written, or torn by a crash
        out.append(rec)
    return out


def loss_frame(stats: list[dict], max_points: int = 800) -> pd.DataFrame:
    if len(stats) > max_points:  # keep the chart light for long runs: every k-th record and the last
        k = -(-len(stats) // max_points)
        stats = stats[::k] + ([stats[-1]] if (len(stats) - 1) % k else [])
    rows = []
    for r in stats:
        rows.append({"step": r["step"], "loss": r["d_loss"], "curve": "critic (d_loss)"})
        rows.append({"step": r["step"], "loss": r["g_loss"], "curve": "generator (g_loss)"})
    df = pd.DataFrame(rows, columns=["step", "loss", "curve"])
    return df.astype({"step": "int64", "loss": "float64", "curve": "str"})


def quality_figure(records: list[dict]):
    """The quality gauge: distance of the samples to the user's held-back images (SWD) with the
    real-vs-real floor dashed, and the grid measure, over training time. None without records."""
    if not records:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mins = [r.get("used_s", 0) / 60 for r in records]
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.2, 3.0), dpi=100)
    a.plot(mins, [r["swd"] for r in records], marker="o", ms=3, color="#2e86ab", label="your images vs samples")
    floors = [r["swd_floor"] for r in records if "swd_floor" in r]
    if floors:
        a.axhline(floors[-1], ls="--", color="#555", lw=1, label="your images vs each other")
    a.set_yscale("log")
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
    plt.close(fig)
    return fig


def progress_html(state: str, step: int, total: int, rec: dict, message: str, run: str,
                  budget_s: float = 0.0) -> str:
    import html
    used = float(rec.get("used_s", 0) or 0) if rec else 0.0
    by_time = bool(budget_s) and total >= NO_STEP_LIMIT
    pct = min(100.0, 100.0 * max(step / total if total else 0.0, used / budget_s if budget_s else 0.0))
    bits = [f"<b>{html.escape(run)}</b> &middot; {html.escape(state)}" if run else "No training run yet."]
    if by_time:
        bits.append(f"{_fmt_time(used)} of {_fmt_time(budget_s)} &middot; step {step}")
    elif total:
        bits.append(f"step {step} / {total}")
    if rec and state in ("running", "stopping"):
        bits.append(f"{rec.get('img_per_s', 0):.1f} images/s")
        bits.append(f"about {_fmt_time(rec.get('eta_s'))} left")
    line = " &middot; ".join(bits)
    msg = ""
    if message:
        cls = "failed" if state == "failed" else "hint"
        msg = f"<div class='{cls}'>{html.escape(message)}</div>"
    return (f"<div class='studio-progress'><div>{line}</div>"
            f"<div class='bar'><div class='fill' style='width:{pct:.1f}%'></div></div>{msg}</div>")


def _int(v, name: str, lo: int | None = None, hi: int | None = None) -> int:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number.") from None
    if not np.isfinite(f) or f != int(f):
        raise ConfigError(f"{name} must be a whole number, got {v}.")
    n = int(f)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {n}.")
    return n


def _float(v, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number.") from None
    if not np.isfinite(f):
        raise ConfigError(f"{name} must be a finite number.")
    return f


def errors_as_messages(fn):
    """Show a StudioError's message in the page (gr.Error), never a traceback."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(fn):
        raise TypeError("generators are not wrapped")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None
    return wrapper


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------
class Studio:
    """The handlers behind the page, bound to one workspace."""

    def __init__(self, workspace: str | os.PathLike, models_dir: str | os.PathLike | None = DEFAULT_MODELS_DIR,
                 data_root: str | os.PathLike | None = None, jobs: JobManager = JOBS):
        self.ws = Workspace(workspace)
        self.models_dir = Path(models_dir).resolve() if models_dir else None
        self.data_root = Path(data_root).expanduser().resolve() if data_root else None
        self.jobs = jobs
        self._last_texture: dict = {}
        self._tex_lock = threading.Lock()

    # ---- data -------------------------------------------------------------------------------
    def _data_paths(self, variant: str, text: str | None) -> list[Path]:
        raw = [t.strip().strip('"') for t in re.split(r"[\n;]", text or "") if t.strip()]
        if not raw:
            what = "the folder that holds one subfolder per class" if variant == "cgan" else \
                "a texture image or a folder of texture images"
            raise DatasetError(f"Enter the path of {what}, or upload a zip.")
        if variant == "cgan" and len(raw) > 1:
            raise DatasetError("Conditional training uses one folder (with one subfolder per class).")
        paths = [Path(p).expanduser().resolve() for p in raw]
        if self.data_root is not None:
            for p in paths:
                if not (_inside(p, self.data_root) or _inside(p, self.ws.uploads)):
                    raise DatasetError(f"In workshop mode training data must be inside {self.data_root} "
                                       "(or be an uploaded zip).")
        return paths

    def check_data(self, variant: str, text: str, progress=gr.Progress()):
        paths = self._data_paths(variant, text)
        if variant == "cgan":
            rep = scan_class_folder(paths[0])
            skipped = list(rep.skipped)
            # Decode every file now (as training will), so unreadable ones are listed before a run.
            total, done, unchecked = sum(rep.counts().values()), 0, 0
            counts: dict[str, int] = {}
            good: dict[str, list[str]] = {}
            for c, files in rep.classes.items():
                for f in files:
                    done += 1
                    if done > MAX_VERIFY:
                        unchecked += 1
                        good.setdefault(c, []).append(f)
                        continue
                    try:
                        load_rgb(f)
                        good.setdefault(c, []).append(f)
                    except DatasetError as e:
                        skipped.append((f, str(e)))
                    if done % 100 == 0:
                        progress(done / total, desc="Reading images")
                counts[c] = len(good.get(c, []))
            lines = [f"**{len(counts)} classes, {sum(counts.values())} images** in `{rep.root}`", ""]
            lines += [f"- **{c}**: {n} images" for c, n in counts.items()]
            if unchecked:
                lines.append(f"\n{unchecked} files were not opened (only the first {MAX_VERIFY} are checked here).")
            if len([n for n in counts.values() if n]) < 2:
                lines.append("\nOne class only: the model will not be able to blend classes.")
            sheet = contact_sheet([(f"{c} ({len(files)})", files) for c, files in good.items()])
        else:
            files = list_texture_files(paths)
            lines = [f"**{len(files)} texture image(s)**", ""]
            good, skipped = [], []
            for f in files:
                try:
                    im = load_rgb(f)
                except DatasetError as e:
                    skipped.append((f, str(e)))
                    continue
                good.append(f)
                lines.append(f"- `{Path(f).name}`: {im.size[0]}x{im.size[1]} px")
            sheet = contact_sheet([(Path(f).name, [f]) for f in good[:12]], size=96, n=1)
        if skipped:
            lines += ["", f"**Skipped {len(skipped)} file(s):**"]
            lines += [f"- `{Path(p).name}`: {why}" for p, why in skipped[:30]]
            if len(skipped) > 30:
                lines.append(f"- ... and {len(skipped) - 30} more")
        return "\n".join(lines), sheet

    def upload_zip(self, file) -> str:
        if not file:
            raise DatasetError("Choose a zip file first.")
        path = file if isinstance(file, str) else getattr(file, "name", None) or file["path"]
        folder = extract_zip(path, self.ws.uploads)
        return str(folder)

    # ---- training ---------------------------------------------------------------------------
    def build_config(self, variant, data_text, resolution, steps, batch, recipe, augment, g_channels,
                     d_channels, lr, seed, sample_every, ckpt_every, patch, depth, train_for=0) -> RunConfig:
        if variant not in ("cgan", "sgan"):
            raise ConfigError("Choose what to train: conditional images or texture.")
        paths = self._data_paths(variant, data_text)
        minutes = _float(train_for or 0, "Train for")
        if not 0 <= minutes <= 100_000:
            raise ConfigError("Train for must be between 0 (use the steps) and 100000 minutes.")
        steps = NO_STEP_LIMIT if minutes else _int(steps, "Steps", 1, 10_000_000)
        t = dataclasses.replace(
            train_defaults(variant, recipe), steps=steps, minutes=minutes, batch=_int(batch, "Batch", 1, 4096),
            augment=list(augment or []), lr_g=_float(lr, "Learning rate"), lr_d=_float(lr, "Learning rate"),
            seed=_int(seed, "Seed"), log_every=max(1, min(TrainConfig.log_every, steps // 50)),
            quality_every=max(1, min(TrainConfig.quality_every, steps // 8)),
            sample_every=_int(sample_every, "Sample every", 1), ckpt_every=_int(ckpt_every, "Checkpoint every", 1))
        if variant == "cgan":
            res = _int(resolution, "Resolution")
            model = CGANConfig(resolution=res, g_channels=_int(g_channels, "Generator width", 1, 512),
                               d_channels=_int(d_channels, "Critic width", 1, 512), **recipe_model(recipe, "cgan"))
            data = [str(paths[0])]
            n = sum(scan_class_folder(paths[0]).counts().values())  # fail now with a clear message, not in the worker
            if t.batch > n:
                raise ConfigError(f"Batch ({t.batch}) is larger than the dataset ({n} images). Use a smaller "
                                  "batch or add images.")
        else:
            t.patch = _int(patch, "Patch", 32, 512)
            model = SGANConfig(depth=_int(depth, "Depth", 1, 7), g_channels=_int(g_channels, "Generator width", 1, 512),
                               d_channels=_int(d_channels, "Critic width", 1, 512), **recipe_model(recipe, "sgan"))
            data = [str(p) for p in paths]
            list_texture_files(paths)
        cfg = RunConfig(variant, model, t, data=data)
        cfg.validate(require_names=False)
        return cfg

    def start(self, run_name, variant, data, resolution, steps, batch, recipe, augment, generator_width,
              critic_width, learning_rate, seed, sample_every, checkpoint_every, patch, depth, train_for=0):
        settings = (variant, data, resolution, steps, batch, recipe, augment, generator_width, critic_width,
                    learning_rate, seed, sample_every, checkpoint_every, patch, depth, train_for)
        run_dir = self.ws.run_dir(run_name)
        if self.jobs.busy():
            raise StudioError(f"Busy: the run '{self.jobs.run_dir.name}' is training. Stop it (or wait until "
                              "it finishes) before starting another one.")
        if checkpoint.checkpoint_dirs(run_dir):
            raise StudioError(f"A run named '{run_dir.name}' exists already. Resume it below, or choose "
                              "another name.")
        cfg = self.build_config(*settings)
        self.jobs.start(lambda **kw: training.train(cfg, run_dir, **kw), run_dir, "train")
        return f"Started '{run_dir.name}'.", gr.update(value=run_dir.name)

    def resume(self, run_name, steps, add_minutes=0):
        run_dir = self.ws.run_dir(run_name)
        if not checkpoint.checkpoint_dirs(run_dir):
            raise StudioError(f"The run '{run_dir.name}' has no checkpoint to resume from.")
        total = _int(steps, "Total steps", 0) if steps not in (None, "") else 0
        minutes = _float(add_minutes or 0, "Add time")
        if not 0 <= minutes <= 100_000:
            raise ConfigError("Add time must be between 0 and 100000 minutes.")
        self.jobs.start(lambda **kw: training.resume(run_dir, steps=total or None, minutes=minutes or None, **kw),
                        run_dir, "resume")
        return f"Resuming '{run_dir.name}'" + (f" for {minutes:g} more minutes." if minutes else ".")

    def stop(self):
        if self.jobs.stop():
            return "Stopping: the run saves a checkpoint and ends after the current step."
        return "No training is running."

    def run_list(self, current=None):
        names = [n for n in self.ws.run_names() if checkpoint.checkpoint_dirs(self.ws.runs / n)]
        value = current if current in names else (names[-1] if names else None)
        return gr.update(choices=names, value=value)

    def monitor(self, selected_run, last_sig):
        """Timer tick: progress, loss chart and newest samples of the job (or the chosen run)."""
        snap = self.jobs.snapshot()
        run_dir = snap["run_dir"]
        if run_dir is None and selected_run and NAME_RE.fullmatch(str(selected_run)):
            run_dir = self.ws.runs / selected_run
        if run_dir is None or not run_dir.is_dir():
            html = progress_html("idle", 0, 0, {}, snap["message"], "")
            sig = ("none", snap["state"], snap["message"])
            if sig == last_sig:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), last_sig
            return None, html, None, None, sig
        stats_p, sample_p = run_dir / "stats.jsonl", run_dir / "samples" / "latest.png"
        quality_p = run_dir / "quality.jsonl"
        st = stats_p.stat() if stats_p.exists() else None
        sm = sample_p.stat() if sample_p.exists() else None
        qm = quality_p.stat() if quality_p.exists() else None
        sig = (str(run_dir), snap["state"], snap["step"], snap["message"],
               st and (st.st_mtime_ns, st.st_size), sm and sm.st_mtime_ns, qm and (qm.st_mtime_ns, qm.st_size))
        if sig == last_sig:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), last_sig
        stats = read_stats(run_dir)
        limit_steps, minutes = self._run_limits(run_dir)
        if snap["run_dir"] == run_dir:
            state, step, total, rec, msg = snap["state"], snap["step"], snap["total"], snap["record"], snap["message"]
            if not total:
                total = limit_steps
        else:
            state, msg, rec = "not running", "", {}
            step = stats[-1]["step"] if stats else 0
            total = limit_steps
        if not rec and stats and state == "running":
            rec = stats[-1]
        sample = None
        if sm is not None:
            try:
                with Image.open(sample_p) as im:
                    sample = np.asarray(im.convert("RGB"))
            except OSError:
                sample = gr.skip()  # being replaced right now; next tick
        # An empty table would leave the chart without colour scale for the lines that follow: None.
        chart = loss_frame(stats) if stats else None
        if not rec and stats:
            rec = {"used_s": stats[-1].get("used_s", 0)}
        gauge = quality_figure(training.read_quality(run_dir)) if qm is not None else None
        html = progress_html(state, step, total, rec, msg, run_dir.name, minutes * 60)
        return chart, html, sample, gauge, sig

    @staticmethod
    def _run_limits(run_dir: Path) -> tuple[int, float]:
        """The run's step total and time budget in minutes (0: none), from its config.json."""
        try:
            t = json.loads((run_dir / "config.json").read_text())["train"]
            minutes = float(t.get("minutes", 0) or 0)
            return int(t["steps"]), minutes if np.isfinite(minutes) else 0.0
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return 0, 0.0

    # ---- models -----------------------------------------------------------------------------
    def model(self, path, variant: str):
        if not path:
            what = "conditional" if variant == "cgan" else "texture"
            raise StudioError(f"Choose a {what} model first (train one in the Train tab, then press Refresh).")
        p = Path(str(path)).expanduser().resolve()
        roots = [self.ws.runs] + ([self.models_dir] if self.models_dir else [])
        if not any(_inside(p, r) for r in roots):
            raise StudioError("Models are read from the workspace runs and the checkpoints folder only.")
        G, cfg, folder = MODELS.get(p)
        if cfg.variant != variant:
            other = "Texture" if cfg.variant == "sgan" else "Explore"
            raise StudioError(f"{p.name} is a {'texture' if cfg.variant == 'sgan' else 'conditional'} model; "
                              f"use the {other} tab.")
        return G, cfg, folder

    def refresh_models(self, variant: str, current=None):
        choices = model_choices(self.ws, self.models_dir, variant)
        values = [v for _, v in choices]
        value = current if current in values else (values[0] if values else None)
        return gr.update(choices=choices, value=value)

    # ---- explore ----------------------------------------------------------------------------
    def on_cgan_model(self, path):
        if not path:
            return [gr.update(visible=False)] * MAX_CLASS_SLIDERS + ["No model chosen."]
        G, cfg, folder = self.model(path, "cgan")
        names = cfg.model.class_names
        ups = []
        for i in range(MAX_CLASS_SLIDERS):
            if i < len(names):
                ups.append(gr.update(visible=True, label=names[i], value=1.0 if i == 0 else 0.0))
            else:
                ups.append(gr.update(visible=False, value=0.0))
        more = f" (sliders for the first {MAX_CLASS_SLIDERS})" if len(names) > MAX_CLASS_SLIDERS else ""
        info = (f"**{Path(path).name}**: {len(names)} classes{more}, {cfg.model.resolution} px, "
                f"checkpoint `{folder.name}`")
        return ups + [info]

    def _blend(self, cfg, weights) -> dict[str, float]:
        names = cfg.model.class_names
        blend = {n: float(w) for n, w in zip(names, weights) if w and float(w) > 0}
        if not blend:
            raise ConfigError("Move at least one class slider above zero.")
        return blend

    def _latents(self, cfg, seed_a, seed_b, position, method, truncation, n, t=None):
        n = _int(n, "Images", 1, 64)
        a, b = _int(seed_a, "Seed A"), _int(seed_b, "Seed B")
        tr = _float(truncation, "Truncation")
        za = explore.noise(list(range(a, a + n)), cfg.model.nz, tr)
        zb = explore.noise(list(range(b, b + n)), cfg.model.nz, tr)
        f = explore.slerp if method == "slerp" else explore.lerp
        return f(za, zb, float(position) if t is None else t)

    def blend_images(self, path, seed_a, seed_b, position, method, truncation, n, *weights):
        G, cfg, _ = self.model(path, "cgan")
        w = explore.class_weights(cfg.model.class_names, self._blend(cfg, weights))
        z = self._latents(cfg, seed_a, seed_b, position, method, truncation, n)
        return explore.grid(explore.generate(G, z, w), min(z.shape[0], 8))

    def grid_view(self, path, mode, seed_a, seed_b, position, method, truncation, n, *weights):
        G, cfg, _ = self.model(path, "cgan")
        if mode == "seeds x classes":
            return explore.class_grid(G, cfg.model.class_names, _int(n, "Images", 1, 64), _int(seed_a, "Seed A"),
                                      float(truncation))
        w = explore.class_weights(cfg.model.class_names, self._blend(cfg, weights))
        steps = 8
        z = [self._latents(cfg, seed_a, seed_b, 0, method, truncation, 1, t=k / (steps - 1)) for k in range(steps)]
        import torch  # only to stack the latents gan_core made
        return explore.grid(explore.generate(G, torch.cat(z), w), steps)

    def _params(self, path, seed_a, seed_b, position, method, truncation, n, weights, cfg) -> dict:
        return {"software": "GAN Studio", "model": Path(str(path)).name,
                "classes": json.dumps(self._blend(cfg, weights)),
                "seed_a": str(seed_a), "seed_b": str(seed_b), "position": f"{float(position):.3f}",
                "interpolation": str(method), "truncation": f"{float(truncation):.3f}", "n": str(n)}

    def export_png(self, path, name, seed_a, seed_b, position, method, truncation, n, *weights):
        G, cfg, folder = self.model(path, "cgan")
        img = self.blend_images(path, seed_a, seed_b, position, method, truncation, n, *weights)
        meta = self._params(path, seed_a, seed_b, position, method, truncation, n, weights, cfg)
        meta["checkpoint"] = folder.name
        out = self.ws.export_path(name or Path(str(path)).name, ".png")
        explore.save_png(out, img, meta)
        return gr.update(value=str(out), visible=True, label=f"Download {out.name}")

    def export_animation(self, path, name, frames, seed_a, seed_b, position, method, truncation, n,
                         progress=gr.Progress(), *weights):
        G, cfg, _ = self.model(path, "cgan")
        w = explore.class_weights(cfg.model.class_names, self._blend(cfg, weights))
        k = _int(frames, "Frames", 4, 240)
        pics = []
        for i in range(k):  # A -> B -> A with eased speed: loops without a jump
            t = 0.5 - 0.5 * np.cos(2 * np.pi * i / k)
            z = self._latents(cfg, seed_a, seed_b, 0, method, truncation, n, t=float(t))
            pics.append(Image.fromarray(explore.grid(explore.generate(G, z, w), min(z.shape[0], 8))))
            progress((i + 1) / (k + 2), desc="Rendering frames")
        stem = (name or Path(str(path)).name) + "-loop"
        gif, webp = self.ws.export_path(stem, ".gif"), self.ws.export_path(stem, ".webp")
        ms = 60
        atomic_write(gif, lambda p: pics[0].save(p, format="GIF", save_all=True, append_images=pics[1:],
                                                 duration=ms, loop=0, disposal=2))
        progress((k + 1) / (k + 2), desc="Writing WebP")
        atomic_write(webp, lambda p: pics[0].save(p, format="WEBP", save_all=True, append_images=pics[1:],
                                                  duration=ms, loop=0, lossless=True))
        return str(gif), [str(gif), str(webp)]

    # ---- texture ----------------------------------------------------------------------------
    def on_sgan_model(self, path):
        if not path:
            return [gr.update()] * len(BRUSHES) + ["No model chosen."]
        G, cfg, folder = self.model(path, "sgan")
        names = cfg.model.source_names or ["texture"]
        choices = [RANDOM_STYLE] + [f"{i}: {n}" for i, n in enumerate(names)]
        ups = [gr.update(choices=choices, value=choices[1 + i] if 1 + i < len(choices) else RANDOM_STYLE)
               for i in range(len(BRUSHES))]
        info = (f"**{Path(str(path)).name}**: {len(names)} source texture(s) ({', '.join(names)}); "
                f"sizes are rounded to multiples of {cfg.model.scale} px when tileable; checkpoint `{folder.name}`")
        return ups + [info]

    @staticmethod
    def _brushes(brush_args) -> list[dict]:
        out = []
        for i in range(len(BRUSHES)):
            src, seed = brush_args[2 * i], brush_args[2 * i + 1]
            source = None
            if src and src != RANDOM_STYLE:
                try:
                    source = int(str(src).split(":", 1)[0])
                except ValueError:
                    raise ConfigError(f"Brush {i + 1}: choose a source texture from the list.") from None
            style_seed = None if seed in (None, "") else _int(seed, f"Style seed of brush {i + 1}")
            out.append({"source": source, "style_seed": style_seed})
        return out

    def _texture(self, path, width, height, seed, tileable, canvas, brush_args, on_progress=None):
        W = _int(width, "Width", 1, texture.MAX_SIDE)  # settings first: no model is loaded for a typo
        H = _int(height, "Height", 1, texture.MAX_SIDE)
        seed = _int(seed, "Seed")
        G, cfg, folder = self.model(path, "sgan")
        labels = labels_from_canvas(canvas)
        brushes = self._brushes(brush_args)
        if labels is not None:
            used = int(labels.max()) + 1
            brushes = brushes[:max(used, 1)]
        else:
            brushes = brushes[:1]
        img = texture.generate_texture(G, W, H, seed=seed, tileable=bool(tileable), style_map=labels,
                                       brushes=brushes, on_progress=on_progress)
        meta = {"software": "GAN Studio", "model": Path(str(path)).name, "checkpoint": folder.name,
                "seed": str(seed), "tileable": str(bool(tileable)), "requested_size": f"{W}x{H}",
                "brushes": json.dumps(brushes), "painted": str(labels is not None)}
        return img, meta

    def generate_texture(self, path, width, height, seed, tileable, canvas, progress=gr.Progress(), *brush_args):
        progress(0, desc="Preparing")
        img, meta = self._texture(path, width, height, seed, tileable, canvas, brush_args,
                                  on_progress=lambda f: progress(0.9 * float(f), desc="Generating texture"))
        progress(0.92, desc="Making previews")
        H, W = img.shape[:2]
        token = f"{time.time_ns()}"
        with self._tex_lock:  # one full-size texture kept for export (bounded memory)
            self._last_texture = {"token": token, "img": img, "meta": meta}
        small = shrink(img, PREVIEW_SIDE // 2)
        tiled = np.tile(small, (2, 2, 1))
        offset = shrink(np.roll(img, (H // 2, W // 2), axis=(0, 1)), PREVIEW_SIDE)
        ratio = seam_number(img)
        note = ""
        if f"{W}x{H}" != meta["requested_size"]:
            note = f" (rounded up from {meta['requested_size']} so it tiles exactly)"
        verdict = "no visible seam" if ratio < 1.5 else "the seam may show"
        info = (f"**{W} x {H} px**{note}. Seam ratio **{ratio:.2f}** ({verdict}; about 1 = no visible seam). "
                "Press *Export PNG* for the full-size file.")
        return shrink(img), tiled, offset, info, token

    def export_texture(self, token, name, path, width, height, seed, tileable, canvas, progress=gr.Progress(),
                       *brush_args):
        with self._tex_lock:
            last = dict(self._last_texture)
        if last and token and last.get("token") == token:
            img, meta = last["img"], last["meta"]
        else:  # another texture was made since: the same settings give the same pixels
            img, meta = self._texture(path, width, height, seed, tileable, canvas, brush_args,
                                      on_progress=lambda f: progress(0.8 * float(f), desc="Generating texture"))
        progress(0.85, desc="Writing PNG")
        H, W = img.shape[:2]
        out = self.ws.export_path(f"{name or meta['model']}-{W}x{H}", ".png")
        explore.save_png(out, img, meta)
        return gr.update(value=str(out), visible=True, label=f"Download {out.name}")


def keep_model(path):
    """Remember the model that opened; after a failed load the dropdown is set back to it."""
    return path


def build_app(workspace: str | os.PathLike = "workspace", models_dir: str | os.PathLike | None = DEFAULT_MODELS_DIR,
              data_root: str | os.PathLike | None = None, jobs: JobManager = JOBS,
              refresh_seconds: float = 1.5) -> gr.Blocks:
    """The whole page. Launch it with `launch_app` (queue limits, allowed paths, upload limit)."""
    s = Studio(workspace, models_dir, data_root, jobs)
    E = errors_as_messages
    td, mc = train_defaults("cgan"), CGANConfig()
    sc, tex_t = SGANConfig(), train_defaults("sgan")

    with gr.Blocks(title="GAN Studio", analytics_enabled=False) as demo:
        demo.studio = s
        gr.Markdown("## GAN Studio\nTrain a GAN on your own pictures, then explore it and paint textures with it.")
        with gr.Tabs():
            # ================================ Train ================================
            with gr.Tab("Train", id="train"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=380):
                        variant = gr.Radio([("Conditional images (class folders)", "cgan"), ("Texture", "sgan")],
                                           value="cgan", label="What to train",
                                           info="Conditional: one subfolder of images per class. "
                                                "Texture: one or more texture images.")
                        with gr.Row(equal_height=True):
                            data_path = gr.Textbox(label="Training data", placeholder="/path/to/my-pictures", scale=4,
                                                   info="A folder on this computer (textures: image files or a "
                                                        "folder; several paths separated by ;)")
                            check_btn = gr.Button("Check data", size="md", scale=1, min_width=110)
                        with gr.Accordion("Or upload a zip of class folders", open=False):
                            zip_file = gr.File(label="Zip file", file_types=[".zip"], type="filepath", height=120)
                            gr.Markdown(f"<span class='hint'>At most {MAX_UPLOAD_MB} MB. It is unpacked into the "
                                        "workspace and the path above is filled in.</span>")
                        data_summary = gr.Markdown()
                        data_sheet = gr.Image(label="Thumbnails", type="numpy", format="png", interactive=False,
                                                visible=False, show_label=False, buttons=["fullscreen"])
                        with gr.Row():
                            run_name = gr.Textbox(label="Run name", placeholder="e.g. flowers-64", scale=2,
                                                  info="Letters, digits, - and _")
                            train_for = gr.Dropdown(TRAIN_FOR, value=10, label="Train for", scale=1, min_width=150,
                                                    info="Stops with a checkpoint")
                            steps = gr.Number(value=td.steps, precision=0, minimum=1, label="Steps", scale=1,
                                              min_width=100, info="When training for steps")
                            batch = gr.Number(value=td.batch, precision=0, minimum=1, label="Batch", scale=1,
                                              min_width=100, info="Images per step")
                        with gr.Row():
                            resolution = gr.Radio([str(r) for r in RESOLUTIONS], value=str(mc.resolution),
                                                  label="Resolution (px)", info=RESOLUTION_HINT)
                            recipe = gr.Radio(RECIPE_CHOICES, value=DEFAULT_RECIPE, label="Recipe",
                                              info="How the two networks are optimised")
                        augment = gr.CheckboxGroup(list(AUGMENTS), value=list(td.augment), label="Augmentation",
                                                   info="Helps small datasets (under ~1000 images)")
                        with gr.Accordion("More settings", open=False):
                            with gr.Row():
                                g_channels = gr.Number(value=mc.g_channels, precision=0, minimum=1,
                                                       label="Generator width",
                                                       info="Channels; bigger = more capacity, slower.")
                                d_channels = gr.Number(value=mc.d_channels, precision=0, minimum=1,
                                                       label="Critic width")
                            with gr.Row():
                                lr = gr.Number(value=td.lr_g, label="Learning rate", info="Adam, both networks.")
                                seed = gr.Number(value=td.seed, precision=0, label="Seed")
                            with gr.Row():
                                sample_every = gr.Number(value=td.sample_every, precision=0, minimum=1,
                                                         label="Samples every (steps)")
                                ckpt_every = gr.Number(value=td.ckpt_every, precision=0, minimum=1,
                                                       label="Checkpoint every (steps)")
                            with gr.Row():
                                patch = gr.Number(value=tex_t.patch, precision=0, minimum=32, label="Patch (textures)",
                                                  info="Training crop size in px; a multiple of 2^depth.")
                                depth = gr.Number(value=sc.depth, precision=0, minimum=1, maximum=7,
                                                  label="Depth (textures)", info="Stride-2 layers of the generator.")
                        with gr.Row():
                            start_btn = gr.Button("Start training", variant="primary")
                            stop_btn = gr.Button("Stop", variant="stop")
                        with gr.Accordion("Resume a stopped run", open=False):
                            with gr.Row():
                                resume_run = gr.Dropdown([], label="Run", allow_custom_value=True, scale=3)
                                resume_minutes = gr.Dropdown(ADD_TIME, value=10, label="Add time", scale=2)
                                resume_steps = gr.Number(value=0, precision=0, minimum=0, label="New total steps",
                                                         info="0 keeps the run's own total.", scale=2)
                            with gr.Row():
                                resume_btn = gr.Button("Resume")
                                runs_refresh = gr.Button("Refresh list")
                        train_msg = gr.Markdown()
                    with gr.Column(scale=6, min_width=420):
                        progress_box = gr.HTML(progress_html("idle", 0, 0, {}, "", ""))
                        sample_img = gr.Image(label="Latest samples (one row per class)", type="numpy", format="png",
                                              interactive=False, height=300, elem_classes="pixelated",
                                              buttons=["download", "fullscreen"])
                        quality_plot = gr.Plot(None, label="Quality: how close the samples come to your images",
                                               format="png")
                        loss_plot = gr.LinePlot(None, x="step", y="loss", color="curve", color_map=LOSS_COLORS,
                                                label="Losses: critic (blue), generator (orange)",
                                                x_title="step", y_title="loss", height=240)
                monitor_sig = gr.State(None)
                timer = gr.Timer(refresh_seconds)

            # ================================ Explore ================================
            with gr.Tab("Explore", id="explore") as explore_tab:
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=360):
                        with gr.Row():
                            cmodel = gr.Dropdown([], label="Conditional model", allow_custom_value=True, scale=4)
                            cmodel_refresh = gr.Button("Refresh", size="sm", scale=1, min_width=80)
                        cmodel_info = gr.Markdown("Train a conditional model, then press Refresh.")
                        with gr.Row():
                            seed_a = gr.Number(value=0, precision=0, label="Seed A", min_width=90)
                            n_images = gr.Slider(1, 16, value=4, step=1, label="Images", min_width=150)
                        truncation = gr.Slider(0.1, 1.0, value=1.0, step=0.05, label="Truncation",
                                               info="Lower: more typical pictures, less variety.")
                        gr.Markdown("**Class blend**: the weights are normalised to sum 1.")
                        sliders = [gr.Slider(0, 1, value=1.0 if i == 0 else 0.0, step=0.05, label=f"class {i + 1}",
                                             visible=False) for i in range(MAX_CLASS_SLIDERS)]
                        with gr.Accordion("Interpolation between two seeds", open=True):
                            with gr.Row():
                                seed_b = gr.Number(value=1, precision=0, label="Seed B", min_width=90)
                                method = gr.Radio(["slerp", "lerp"], value="slerp", label="Path",
                                                  info="slerp keeps the noise's length.")
                            position = gr.Slider(0, 1, value=0, step=0.01, label="Position A -> B")
                            anim_frames = gr.Slider(8, 96, value=32, step=4, label="Animation frames",
                                                    info="The GIF / WebP loop goes A -> B -> A.")
                    with gr.Column(scale=6, min_width=420):
                        blend_img = gr.Image(label="Images", type="numpy", format="png", interactive=False,
                                             height=300, elem_classes="pixelated", buttons=["fullscreen"])
                        with gr.Row(equal_height=True):
                            export_name = gr.Textbox(placeholder="export name (optional)", show_label=False,
                                                     container=False, scale=2, min_width=160)
                            export_btn = gr.Button("Export PNG", scale=1, min_width=130)
                            anim_btn = gr.Button("Export animation", scale=1, min_width=190)
                        export_dl = gr.DownloadButton("Download", visible=False, size="md")
                        with gr.Row(equal_height=False):
                            anim_preview = gr.Image(label="Animation", type="filepath", interactive=False,
                                                    visible=False, height=180, elem_classes="pixelated")
                            anim_files = gr.File(label="Animation files", file_count="multiple", visible=False,
                                                 height=180)
                        with gr.Row(equal_height=True):
                            grid_mode = gr.Radio(["seeds x classes", "interpolation steps"], value="seeds x classes",
                                                 label="Grid view", scale=3)
                            grid_btn = gr.Button("Make grid", scale=1, min_width=120)
                        grid_img = gr.Image(label="Grid", type="numpy", format="png", interactive=False,
                                            height=260, elem_classes="pixelated", buttons=["download", "fullscreen"])

            # ================================ Texture ================================
            with gr.Tab("Texture", id="texture") as texture_tab:
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=360):
                        with gr.Row():
                            smodel = gr.Dropdown([], label="Texture model", allow_custom_value=True, scale=4)
                            smodel_refresh = gr.Button("Refresh", size="sm", scale=1, min_width=80)
                        smodel_info = gr.Markdown("Train a texture model, then press Refresh.")
                        preset = gr.Radio(list(SIZE_PRESETS), value="1024", label="Size preset (px)")
                        with gr.Row():
                            width = gr.Number(value=1024, precision=0, minimum=16, maximum=texture.MAX_SIDE,
                                              label="Width", min_width=90)
                            height = gr.Number(value=1024, precision=0, minimum=16, maximum=texture.MAX_SIDE,
                                               label="Height", min_width=90)
                            tseed = gr.Number(value=0, precision=0, label="Seed", min_width=90)
                        tileable = gr.Checkbox(value=True, label="Tileable (seamless when repeated)")
                        with gr.Row(equal_height=True):
                            tex_btn = gr.Button("Generate texture", variant="primary", scale=2)
                            tex_export = gr.Button("Export PNG", scale=1, min_width=110)
                        tex_name = gr.Textbox(placeholder="export name (optional)", show_label=False, container=False)
                        tex_dl = gr.DownloadButton("Download", visible=False, size="md")
                        tex_info = gr.Markdown()
                        gr.Markdown("**Style brushes**: paint regions on the style map (it is stretched over "
                                    "the texture); each colour is one style: a source texture of the model, or a "
                                    "random style from its seed. Unpainted areas use brush 1.")
                        brush_inputs = []
                        for i, (hexc, cname) in enumerate(BRUSHES):
                            with gr.Row(equal_height=True, elem_classes="brush-row"):
                                gr.HTML(f"<span class='brush-swatch' style='background:{hexc}'></span>"
                                        f"<b>{i + 1}</b> {cname}", min_width=96, scale=0)
                                src = gr.Dropdown([RANDOM_STYLE], value=RANDOM_STYLE, show_label=False,
                                                  allow_custom_value=True,
                                                  label=f"Brush {i + 1} source", container=False, scale=3,
                                                  min_width=140)
                                sseed = gr.Number(value=i, precision=0, show_label=False,
                                                  label=f"Brush {i + 1} style seed",
                                                  container=False, scale=1, min_width=70)
                            brush_inputs += [src, sseed]
                        gr.Markdown("<span class='hint'>Per brush: source texture, then style seed.</span>")
                    with gr.Column(scale=6, min_width=420):
                        tex_img = gr.Image(label="Texture", type="numpy", format="png", interactive=False, height=300,
                                           buttons=["fullscreen"])
                        with gr.Row():
                            tex_tiled = gr.Image(label="Tiled 2 x 2", type="numpy", format="png", interactive=False,
                                                 height=220)
                            tex_offset = gr.Image(label="Half-offset (seam in the middle)",
                                                  type="numpy", format="png", interactive=False, height=220)
                        canvas = gr.Sketchpad(label="Style map: pick the brush tool, paint",
                                              type="numpy", image_mode="RGBA", canvas_size=(256, 256), height=340,
                                              brush=gr.Brush(colors=[c for c, _ in BRUSHES],
                                                             default_color=BRUSHES[1][0],
                                                             color_mode="fixed", default_size=24),
                                              layers=False)
                        tex_token = gr.State(None)

        # ------------------------------ Train events ------------------------------
        train_inputs = [variant, data_path, resolution, steps, batch, recipe, augment, g_channels, d_channels, lr,
                        seed, sample_every, ckpt_every, patch, depth, train_for]

        def _check(v, t, progress=gr.Progress()):
            md, sheet = s.check_data(v, t, progress)
            return md, gr.update(value=sheet, visible=sheet is not None)

        check_btn.click(E(_check), [variant, data_path], [data_summary, data_sheet], api_name="check_data")
        zip_file.upload(E(s.upload_zip), zip_file, data_path, api_name="upload_zip").success(
            E(_check), [variant, data_path], [data_summary, data_sheet], api_visibility="private")

        variant.change(variant_defaults, [variant, recipe], [resolution, batch, g_channels, d_channels,
                                                              sample_every, ckpt_every, augment, lr],
                       api_visibility="private")
        recipe.change(lambda r, v: (train_defaults(v, r).lr_g, train_defaults(v, r).augment), [recipe, variant],
                      [lr, augment], api_visibility="private")
        start_btn.click(E(s.start), [run_name] + train_inputs, [train_msg, resume_run], api_name="start",
                        concurrency_id="train_control")
        stop_btn.click(s.stop, None, train_msg, api_name="stop", concurrency_id="train_control")
        resume_btn.click(E(s.resume), [resume_run, resume_steps, resume_minutes], train_msg, api_name="resume",
                         concurrency_id="train_control")
        runs_refresh.click(s.run_list, resume_run, resume_run, api_name="list_runs")
        timer.tick(s.monitor, [resume_run, monitor_sig], [loss_plot, progress_box, sample_img, quality_plot, monitor_sig],
                   api_name="monitor", show_progress="hidden", concurrency_id="monitor", concurrency_limit=4)

        # ------------------------------ Explore events ------------------------------
        view = [seed_a, seed_b, position, method, truncation, n_images] + sliders
        blend_evt = dict(fn=E(s.blend_images), inputs=[cmodel] + view, outputs=blend_img, show_progress="minimal",
                         trigger_mode="always_last", concurrency_id="explore", concurrency_limit=2)
        cmodel_refresh.click(lambda cur: s.refresh_models("cgan", cur), cmodel, cmodel, api_name="list_cgan_models")
        explore_tab.select(lambda cur: s.refresh_models("cgan", cur), cmodel, cmodel, api_visibility="private")
        cmodel_ok = gr.State(None)  # the model that last opened; a model that fails to load does not replace it
        opened = cmodel.change(E(s.on_cgan_model), cmodel, sliders + [cmodel_info], api_name="open_cgan_model")
        opened.success(**blend_evt, api_visibility="private")
        opened.success(keep_model, cmodel, cmodel_ok, api_visibility="private")
        opened.failure(keep_model, cmodel_ok, cmodel, api_visibility="private")
        for comp in [position, truncation, n_images] + sliders:
            comp.release(**blend_evt, api_visibility="private")
        for comp in (seed_a, seed_b):
            comp.submit(**blend_evt, api_visibility="private")
            comp.blur(**blend_evt, api_visibility="private")
        method.change(**blend_evt, api_name="blend")
        export_btn.click(E(s.export_png), [cmodel, export_name] + view, export_dl, api_name="export_png",
                         concurrency_id="explore")
        anim_btn.click(E(s.export_animation), [cmodel, export_name, anim_frames] + view, [anim_preview, anim_files],
                       api_name="export_animation", concurrency_id="explore").success(
            lambda: (gr.update(visible=True), gr.update(visible=True)), None, [anim_preview, anim_files],
            api_visibility="private")
        grid_btn.click(E(s.grid_view), [cmodel, grid_mode] + view, grid_img, api_name="grid",
                       concurrency_id="explore")

        # ------------------------------ Texture events ------------------------------
        tex_view = [smodel, width, height, tseed, tileable, canvas] + brush_inputs
        smodel_refresh.click(lambda cur: s.refresh_models("sgan", cur), smodel, smodel, api_name="list_sgan_models")
        texture_tab.select(lambda cur: s.refresh_models("sgan", cur), smodel, smodel, api_visibility="private")
        smodel_ok = gr.State(None)
        opened = smodel.change(E(s.on_sgan_model), smodel, brush_inputs[0::2] + [smodel_info],
                               api_name="open_sgan_model")
        opened.success(keep_model, smodel, smodel_ok, api_visibility="private")
        opened.failure(keep_model, smodel_ok, smodel, api_visibility="private")
        preset.change(lambda p: (int(p), int(p)), preset, [width, height], api_visibility="private")
        tex_btn.click(E(s.generate_texture), tex_view, [tex_img, tex_tiled, tex_offset, tex_info, tex_token],
                      api_name="texture", concurrency_id="texture", concurrency_limit=1)
        tex_export.click(E(s.export_texture), [tex_token, tex_name] + tex_view, tex_dl, api_name="export_texture",
                         concurrency_id="texture", concurrency_limit=1)

        # ------------------------------ page load ------------------------------
        def _load(cur_run, cur_c, cur_s):
            return s.run_list(cur_run), s.refresh_models("cgan", cur_c), s.refresh_models("sgan", cur_s)

        demo.load(_load, [resume_run, cmodel, smodel], [resume_run, cmodel, smodel], api_visibility="private")
    return demo


def launch_app(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, auth=None,
               prevent_thread_lock: bool = False, quiet: bool = False, max_queue: int = MAX_QUEUE,
               max_upload_mb: int = MAX_UPLOAD_MB):
    """Queue with concurrency limits, serve only the exports folder, cap uploads, no share link."""
    ws: Workspace = demo.studio.ws
    demo.queue(default_concurrency_limit=1, max_size=max_queue)
    return demo.launch(server_name=host, server_port=port, share=False, auth=auth,
                       auth_message="GAN Studio workshop: ask the host for the password." if auth else None,
                       allowed_paths=[str(ws.exports)], max_file_size=f"{max_upload_mb}mb",
                       prevent_thread_lock=prevent_thread_lock, quiet=quiet, show_error=True,
                       footer_links=["api", "settings"], theme=gr.themes.Soft(), css=CSS,
                       inbrowser=False, ssr_mode=False)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python studio.py", description="GAN Studio: train GANs on your own images "
                                "and play with them in the browser.")
    p.add_argument("--host", default=None, help="address to serve on (default 127.0.0.1; 0.0.0.0 with --listen)")
    p.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
    p.add_argument("--workspace", default="workspace", help="folder for runs and exports (default ./workspace)")
    p.add_argument("--models", default=str(DEFAULT_MODELS_DIR),
                   help="folder of ready model folders (default: checkpoints/ beside studio.py)")
    p.add_argument("--listen", action="store_true",
                   help="workshop mode: serve on the local network; needs --password and --data-root")
    p.add_argument("--user", default="studio", help="login name in workshop mode (default %(default)s)")
    p.add_argument("--password", default=os.environ.get("GAN_STUDIO_PASSWORD"),
                   help="login password in workshop mode (or set GAN_STUDIO_PASSWORD)")
    p.add_argument("--data-root", help="in workshop mode, training folders must be inside this folder")
    a = p.parse_args(argv)
    auth, data_root = None, None
    host = a.host or ("0.0.0.0" if a.listen else "127.0.0.1")
    if a.listen:
        if not a.password:
            p.error("--listen serves the studio to the whole network, so it needs --password "
                    "(or the GAN_STUDIO_PASSWORD environment variable).")
        if not a.data_root or not Path(a.data_root).expanduser().is_dir():
            p.error("--listen needs --data-root: an existing folder that holds the training data people may use.")
        auth, data_root = (a.user, a.password), a.data_root
    elif host not in ("127.0.0.1", "localhost", "::1"):
        p.error(f"--host {host} would expose the studio to other machines; use --listen with --password.")
    demo = build_app(Path(a.workspace), models_dir=a.models, data_root=data_root)
    try:
        launch_app(demo, host=host, port=a.port, auth=auth, prevent_thread_lock=True, quiet=True)
    except OSError as e:
        print(f"error: cannot serve on {host}:{a.port} ({e}). Is another studio running? Try --port.",
              file=sys.stderr)
        return 2
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"GAN Studio is running at http://{shown}:{demo.server_port}/  (Ctrl-C to quit)")
    print(f"workspace: {demo.studio.ws.root}")
    if a.listen:
        print(f"workshop mode: serving on {host}, login '{a.user}', training data only from {data_root}")
    sys.stdout.flush()
    try:
        while demo.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nclosing GAN Studio")
    try:
        if JOBS.stop():
            print("stopping the training run after this step and saving a checkpoint "
                  "(Ctrl-C again to quit at once)", flush=True)
            JOBS.wait(300)
        demo.close()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
