"""Run folders and model folders: the one place that knows what a run folder holds.

    RUN/config.json            the settings (rewritten on resume)
    RUN/stats.jsonl            one line of losses and speed every few steps
    RUN/quality.jsonl          the quality gauge (distance to held-back images, grid measure)
    RUN/samples/latest.png     the newest sample grid (and step_NNNNNNNN.png)
    RUN/checkpoints/step_N/    complete checkpoints (see checkpoint.py)
    RUN/best/                  a model folder: the weights of the gauge's closest reading so far

`RunDir` reads them (tolerating a line being written or torn by a crash), `list_models` finds the
models of a variant and `load_model` loads one, cached.
"""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint
from .config import RunConfig
from .errors import ConfigError, StudioError
from .io import inside


def read_jsonl(path: Path, required: tuple[str, ...] = ("step",)) -> list[dict]:
    """The records of a .jsonl file whose `required` fields are numbers; other lines are skipped
    (a line being written, or torn by a crash)."""
    out = []
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            if not all(math.isfinite(float(rec[k])) for k in required):
                continue
        except (ValueError, KeyError, TypeError):
            continue
        out.append(rec)
    return out


def read_quality(run_dir: str | os.PathLike) -> list[dict]:
    """The quality gauge's records of a run, oldest first."""
    return read_jsonl(Path(run_dir) / "quality.jsonl", ("step", "swd", "grid"))


class RunDir:
    """A training run's folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.name = self.path.name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def stats_file(self) -> Path:
        return self.path / "stats.jsonl"

    @property
    def quality_file(self) -> Path:
        return self.path / "quality.jsonl"

    @property
    def sample_file(self) -> Path:
        return self.path / "samples" / "latest.png"

    def exists(self) -> bool:
        return self.path.is_dir()

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, newest first."""
        return checkpoint.checkpoint_dirs(self.path)

    def has_checkpoint(self) -> bool:
        return bool(self.checkpoints())

    def latest_step(self) -> int:
        """The step of the newest complete checkpoint (0 without one)."""
        ckpts = self.checkpoints()
        return int(ckpts[0].name[5:]) if ckpts else 0

    def last_active(self) -> float:
        """When the run last wrote a checkpoint or a statistics line (seconds since the epoch)."""
        times = [p.stat().st_mtime for p in [self.stats_file] + self.checkpoints()[:1] if p.exists()]
        return max(times, default=self.path.stat().st_mtime if self.path.exists() else 0.0)

    def config(self) -> RunConfig:
        """The run's settings (config.json), checked."""
        return checkpoint.read_config(self.path)

    def settings(self) -> RunConfig | None:
        """The run's settings, or None while its config.json is missing or unreadable."""
        try:
            return self.config()
        except StudioError:
            return None

    def limits(self, cfg: RunConfig | None = None) -> tuple[int, float]:
        """The run's step total and time budget in minutes (0: none) from `cfg` (default: its own
        settings); (0, 0) if they cannot be read. (config.json's numbers are checked finite.)"""
        cfg = cfg or self.settings()
        return (cfg.train.steps, cfg.train.minutes) if cfg else (0, 0.0)

    def stats(self) -> list[dict]:
        return read_jsonl(self.stats_file, ("step", "d_loss", "g_loss"))

    def quality(self) -> list[dict]:
        return read_quality(self.path)

    def latest_sample(self) -> np.ndarray | None:
        """The newest sample grid as an (H, W, 3) array; None if there is none (or it is being
        replaced at this moment)."""
        from PIL import Image

        try:
            with Image.open(self.sample_file) as im:
                return np.asarray(im.convert("RGB"))
        except OSError:
            return None

    def signature(self) -> tuple:
        """Changes whenever the statistics, the gauge or the samples change (cheap: file stats)."""
        def sig(p: Path):
            try:
                s = p.stat()
                return s.st_mtime_ns, s.st_size
            except OSError:
                return None
        return str(self.path), sig(self.stats_file), sig(self.quality_file), sig(self.sample_file)

    def check_resume(self, steps: int | None = None, minutes: float | None = None) -> None:
        """Refuse, before anything starts or is rewritten, a resume that would not train."""
        if not self.has_checkpoint():
            raise ConfigError(f"The run '{self.name}' has no checkpoint to resume from.")
        at = self.latest_step()
        if steps is not None and steps <= at:
            raise ConfigError(f"The run '{self.name}' is at step {at} already: give a new total above {at}, "
                              "or leave the total at 0 and add time.")
        if steps is None and not minutes:
            total, _ = self.limits()
            if total and at >= total:
                raise ConfigError(f"The run '{self.name}' has finished its {total} steps: give a new total "
                                  "above that, or add time.")


# ---------------------------------------------------------------------------------------------
# Models: listing and cached loading
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A loaded generator (EMA weights) with its settings: what Explore and Texture work on."""

    G: object
    cfg: RunConfig
    folder: Path  # the checkpoint or model folder the weights came from
    path: Path  # the run or model folder that was chosen

    @property
    def name(self) -> str:
        """The folder's name; a run's closest model (RUN/best) is RUN-best, so exports and favourites
        of two runs' best models do not share a name (find_model takes it back)."""
        p = self.path
        if p.name == checkpoint.BEST_SUBDIR and (p.parent / checkpoint.CKPT_SUBDIR).is_dir():
            return f"{p.parent.name}-{checkpoint.BEST_SUBDIR}"
        return p.name

    @property
    def class_names(self) -> list[str]:
        return list(self.cfg.model.class_names) if self.cfg.variant == "cgan" else []

    @property
    def source_names(self) -> list[str]:
        return (list(self.cfg.model.source_names) or ["texture"]) if self.cfg.variant == "sgan" else []


def list_models(variant: str, models_dir: Path | None, runs_dir: Path | None) -> list[tuple[str, str]]:
    """(label, folder) for the shipped model folders and the runs (with a checkpoint) of a
    variant; shipped models first, so a fresh studio opens with a demo selected."""
    shipped, runs = [], []
    if models_dir and models_dir.is_dir():
        for d in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                cfg = checkpoint.read_config(checkpoint.resolve_model_dir(d))
            except (StudioError, OSError, ValueError):  # one bad folder never hides the others
                continue
            if cfg.variant == variant:
                shipped.append((f"{d.name}  (demo)", str(d)))
    if runs_dir and runs_dir.is_dir():
        for d in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
            run = RunDir(d)
            ckpts = run.checkpoints()
            if not ckpts:
                continue
            try:
                cfg = checkpoint.read_config(ckpts[0])
            except (StudioError, OSError, ValueError):
                continue
            if cfg.variant == variant:
                runs.append((f"{run.name}  (run, step {run.latest_step()})", str(d)))
                best = earlier_best(d, run.latest_step())
                if best:
                    runs.append((best_label(run.name, int(best["step"])), str(d / checkpoint.BEST_SUBDIR)))
    return shipped + runs


def earlier_best(run_dir: str | os.PathLike, step: int) -> dict | None:
    """RUN/best's gauge reading when it comes from another step than `step` (the run's last: it
    drifted away from its closest model), else None."""
    best = checkpoint.read_best(run_dir)
    return best if best and int(best["step"]) != step else None


def best_label(run_name: str, step: int) -> str:
    """How the model lists name a run's closest model so far (RUN/best)."""
    return f"{run_name}  (run, best: step {step})"


def find_model(text: str | os.PathLike, runs: Path | None, models_dir: Path | None) -> Path:
    """A model's folder from what a person typed: a shipped model's name or a run's name (shipped
    models first, as the model lists show them), else a run, checkpoint or model folder. Write a
    folder of the current directory that shares a model's name as ./NAME."""
    t = str(text).strip()
    if t and os.sep not in t and "/" not in t and t not in (".", ".."):
        for root in (models_dir, runs):
            if root and (root / t).is_dir():
                return root / t
        best = f"-{checkpoint.BEST_SUBDIR}"
        if runs and t.endswith(best) and (runs / t[:-len(best)] / checkpoint.BEST_SUBDIR).is_dir():
            return runs / t[:-len(best)] / checkpoint.BEST_SUBDIR  # a run's closest model, as Model.name writes it
    p = Path(t).expanduser()
    if t and p.exists():
        return p
    names = [d.name for root in (models_dir, runs) if root and root.is_dir()
             for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    raise StudioError(f"There is no model or run named {t!r} and no such folder; give a run or model folder, or "
                      f"one of these names: {', '.join(names) or 'none yet'}.")


@functools.lru_cache(maxsize=4)
def _load(folder: str, device: str) -> tuple:
    return checkpoint.load_generator(folder, device=device)


def load_model(path: str | os.PathLike | None, variant: str, roots: list[Path] | None = None,
               device: str | None = None) -> Model:
    """The newest weights of a run folder (or a model folder), for a variant. `roots`: the
    folders models may come from; anything else is refused. Loaded generators are cached per
    checkpoint folder (a newer checkpoint of a run is a new entry)."""
    from .train import pick_device

    if not path:
        what = "conditional" if variant == "cgan" else "texture"
        raise StudioError(f"Choose a {what} model first (train one in the Train tab, then press Refresh).")
    p = Path(str(path)).expanduser().resolve()
    if roots is not None and not any(inside(p, r) for r in roots):
        raise StudioError("Models are read from the workspace runs and the checkpoints folder only.")
    dev = str(pick_device(device))
    for attempt in range(2):
        folder = checkpoint.resolve_model_dir(p)
        try:
            G, cfg = _load(str(folder), dev)
            break
        except StudioError:
            if attempt == 0 and not folder.exists():  # pruned by a running training: take the newer one
                continue
            raise
    else:
        raise StudioError(f"{p} changed while it was being loaded; try again.")
    if cfg.variant != variant:
        kind, tab = ("texture", "Texture") if cfg.variant == "sgan" else ("conditional", "Explore")
        raise StudioError(f"{p.name} is a {kind} model; use the {tab} tab.")
    return Model(G, cfg, folder, p)

