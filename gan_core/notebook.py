"""GAN Studio in a notebook: a few calls over the same core as the studio and the command line.

    from gan_core import notebook as gs

    run = gs.train("cgan", "assets/demo/classes", minutes=10)  # live bar + chart; interrupt: stop, checkpoint
    run.samples()                                              # one row per class
    run.blend({"brick": 0.3, "grass": 0.7})                    # a class blend
    gs.texture("demo-textures", 2048, tileable=True)           # a shipped model, a run, or a folder
    gs.model("demo-classes").blend("flowers", n=16)

Pictures are PIL images (`np.asarray(pic)` is the uint8 array); a notebook shows them (scaled down
to at most 1024 px), and `pic.export("name")` writes the full picture with its settings into the
workspace's exports. `model.images(...)` gives plain tensors. Training is the studio's background
job (`gan_core.jobs.Jobs`) in the studio's workspace folder (./workspace, or the folder in
GAN_STUDIO_WORKSPACE, or `gs.use(folder)`), so `studio.launch()` in the same notebook shows the
same runs and the same training job.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import SHIPPED_MODELS, checkpoint, live, sampling, texture as textures
from .errors import StudioError
from .jobs import Jobs
from .runs import Model, RunDir, find_model, load_model
from .workspace import Workspace, check_run_name, safe_filename

DISPLAY_SIDE = 1024  # pictures are shown at most this large; the picture itself keeps its size

__all__ = ["use", "workspace", "train", "run", "runs", "model", "models", "texture", "Run", "GAN", "Picture"]


# ---------------------------------------------------------------------------------------------
# The session: one workspace and one training job, shared with an inline studio
# ---------------------------------------------------------------------------------------------
@dataclass
class Session:
    ws: Workspace
    jobs: Jobs


_session: Session | None = None


def use(folder: str | os.PathLike | None = None, models: str | os.PathLike | None = None) -> Workspace:
    """Work in this workspace folder (default: GAN_STUDIO_WORKSPACE, else ./workspace) with the
    models of `models` (default: the shipped checkpoints/) beside its runs."""
    global _session
    jobs = _session.jobs if _session else Jobs()
    if jobs.busy():
        raise StudioError(f"The run '{jobs.run.name}' is training; stop it (run.stop()) before changing the "
                          "workspace.")
    folder = folder or os.environ.get("GAN_STUDIO_WORKSPACE") or "workspace"
    _session = Session(Workspace(folder, models or SHIPPED_MODELS), jobs)
    return _session.ws


def session() -> Session:
    if _session is None:
        use()
    return _session


def workspace() -> Workspace:
    """The workspace the notebook works in (its runs/, exports/, uploads/)."""
    return session().ws


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------
class Picture(Image.Image):
    """A PIL image that a notebook shows (at most DISPLAY_SIDE px) and that remembers how it was
    made (`pic.info`, written into the PNG by `export`). Operations on it give plain PIL images."""

    @classmethod
    def of(cls, arr: np.ndarray, settings: dict | None = None) -> "Picture":
        im = Image.fromarray(np.ascontiguousarray(arr))
        im.__class__ = cls
        im.info.update({str(k): str(v) for k, v in (settings or {}).items()})
        return im

    def _repr_png_(self) -> bytes:
        import io

        small = textures.shrink(np.asarray(self.convert("RGB")), DISPLAY_SIDE)
        buf = io.BytesIO()
        Image.fromarray(small).save(buf, format="PNG")
        return buf.getvalue()

    def _repr_jpeg_(self):  # one picture per output, the PNG
        return None

    def export(self, name: str = "picture") -> Path:
        """Write the full picture as a new PNG in the workspace's exports/ (settings included)."""
        return workspace().export_image(name, np.asarray(self.convert("RGB")), dict(self.info))


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
class GAN:
    """A loaded generator: a conditional model (samples, blend, images, interpolate) or a texture
    model (texture)."""

    def __init__(self, m: Model):
        self.m = m

    @property
    def name(self) -> str:
        return self.m.name

    @property
    def variant(self) -> str:
        return self.m.cfg.variant

    @property
    def classes(self) -> list[str]:
        return self.m.class_names

    @property
    def sources(self) -> list[str]:
        return self.m.source_names

    @property
    def G(self) -> torch.nn.Module:
        return self.m.G

    def __repr__(self) -> str:
        what = f"classes {', '.join(self.classes)}" if self.variant == "cgan" else \
            f"texture sources {', '.join(self.sources)}"
        return f"<GAN {self.name!r}: {what}>"

    def _need(self, variant: str, call: str) -> None:
        if self.variant != variant:
            other = "texture()" if variant == "cgan" else "samples() or blend()"
            raise StudioError(f"{self.name} is a {'texture' if self.variant == 'sgan' else 'conditional'} model: "
                              f"{call} needs a {'conditional' if variant == 'cgan' else 'texture'} model; "
                              f"use {other}.")

    def images(self, classes: dict[str, float] | str, seeds: list[int] | int = 8, truncation: float = 1.0,
               equalise: bool = True) -> torch.Tensor:
        """Images (B, 3, R, R) in [-1, 1] as a plain tensor: one per seed (a number n: seeds 0..n-1).
        `equalise=False`: as the generator draws them, without the model's spectral equaliser."""
        self._need("cgan", "images()")
        seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
        z = sampling.noise(seeds, self.m.cfg.model.nz, truncation)
        return sampling.generate(self.G, z, sampling.class_weights(self.classes, classes), equalise)

    def samples(self, n: int = 8, seed: int = 0, truncation: float = 1.0) -> Picture:
        """One row per class, `n` seeds from `seed` (the same noise in every row)."""
        self._need("cgan", "samples()")
        img = sampling.class_grid(self.G, self.classes, n, seed, truncation)
        return Picture.of(img, {"software": "GAN Studio", "model": self.name, "classes": "one row per class",
                                "seed": seed, "n": n, "truncation": truncation})

    def blend(self, classes: dict[str, float] | str, n: int = 8, seed: int = 0, truncation: float = 1.0,
              seed_b: int | None = None, position: float = 0.0) -> Picture:
        """`n` images of a class blend ({"urban": .3, "forest": .7}, or one class name); with `seed_b`,
        `position` (0..1) moves them towards the images of seed_b (slerp), as the Explore tab does."""
        self._need("cgan", "blend()")
        blend = {classes: 1.0} if isinstance(classes, str) else dict(classes)
        view = sampling.View(blend, seed, seed + n if seed_b is None else seed_b, position, "slerp", truncation, n)
        return Picture.of(sampling.view_image(self.G, self.classes, view), view.metadata(self.name))

    def interpolate(self, classes: dict[str, float] | str, seed_a: int = 0, seed_b: int = 1, steps: int = 8,
                    truncation: float = 1.0) -> Picture:
        """One row from seed A to seed B in `steps` steps."""
        self._need("cgan", "interpolate()")
        blend = {classes: 1.0} if isinstance(classes, str) else dict(classes)
        view = sampling.View(blend, seed_a, seed_b, 0.0, "slerp", truncation, 1)
        return Picture.of(sampling.interpolation_grid(self.G, self.classes, view, steps), view.metadata(self.name))

    def texture(self, width: int = 1024, height: int | None = None, seed: int = 0, tileable: bool = False,
                source: int | str | None = None, style_seed: int | None = None) -> Picture:
        """A texture of any size up to 8192 px (`tileable`: seamless, size rounded up to a multiple of
        2**depth). `source`: a source image of a fused model (its number or name); `style_seed`: a
        random style instead."""
        self._need("sgan", "texture()")
        if isinstance(source, str):
            if source not in self.sources:
                raise StudioError(f"unknown source {source!r}; this model has: {', '.join(self.sources)}.")
            source = self.sources.index(source)
        height = width if height is None else height
        textures.check_size(width, height)
        img = textures.generate_texture(self.G, width, height, seed=seed, tileable=tileable, source=source,
                                        style_seed=style_seed, precision="auto")
        from .metrics import seam_ratio_sampled
        return Picture.of(img, {"software": "GAN Studio", "model": self.name, "seed": seed, "tileable": tileable,
                                "requested_size": f"{width}x{height}", "source": source, "style_seed": style_seed,
                                "seam_ratio": f"{seam_ratio_sampled(img, cell=self.G.cfg.scale):.3f}"})


def _model_path(what) -> Path:
    """A model's folder from a name (a shipped model, then a run of the workspace), a path or a Run."""
    if isinstance(what, Run):
        return what.path
    ws = workspace()
    return find_model(what, ws.runs, ws.models_dir)


def model(what) -> GAN:
    """Load a model: a run of the workspace or a shipped model by name ("demo-classes"), a run or
    model folder, or a Run (its newest checkpoint). Loaded generators are cached."""
    if isinstance(what, GAN):
        return what
    p = _model_path(what)
    variant = checkpoint.read_config(checkpoint.resolve_model_dir(p)).variant
    return GAN(load_model(p, variant))


def models() -> list[tuple[str, str]]:
    """(name, kind) of every model the notebook can open: shipped models, then runs with a checkpoint."""
    ws = workspace()
    out = []
    for variant, kind in (("cgan", "conditional"), ("sgan", "texture")):
        out += [(Path(path).name, kind) for _, path in ws.models(variant)]
    return out


def texture(what, width: int = 1024, height: int | None = None, seed: int = 0, tileable: bool = False,
            source: int | str | None = None, style_seed: int | None = None) -> Picture:
    """A texture from a texture model (name, folder, Run or GAN); see GAN.texture."""
    return model(what).texture(width, height, seed, tileable, source, style_seed)


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------
class Run:
    """A training run of the workspace: its progress, its records and its newest model."""

    def __init__(self, rd: RunDir):
        self.dir = rd

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def training(self) -> bool:
        jobs = session().jobs
        return jobs.busy() and jobs.run == self.dir

    @property
    def step(self) -> int:
        jobs = session().jobs
        if jobs.run == self.dir and jobs.busy():
            return jobs.step
        stats = self.dir.stats()
        return max(stats[-1]["step"] if stats else 0, self.dir.latest_step())

    @property
    def state(self) -> str:
        jobs = session().jobs
        return jobs.state if jobs.run == self.dir else ("stopped" if self.dir.has_checkpoint() else "empty")

    def __repr__(self) -> str:
        total, minutes = self.dir.limits()
        limit = f"{minutes:g} min" if minutes else f"{total} steps"
        return f"<Run {self.name!r}: {self.state}, step {self.step} (limit {limit}); {self.path}>"

    def stats(self) -> list[dict]:
        """The statistics lines (losses, images/s, time used), oldest first."""
        return self.dir.stats()

    def quality(self) -> list[dict]:
        """The quality gauge's records (swd, swd_floor, grid), oldest first."""
        return self.dir.quality()

    def chart(self) -> Picture:
        """The losses and the quality gauge as a picture."""
        from io import BytesIO
        png = live.chart_png(self.stats(), self.quality(), self.name)
        return Picture.of(np.asarray(Image.open(BytesIO(png)).convert("RGB")), {"run": self.name})

    def watch(self) -> "Run":
        """Show the progress (bar and chart) until training ends. Interrupting (the notebook's stop
        button, or Ctrl-C) stops the run after its current step with a checkpoint."""
        jobs = session().jobs
        if not self.training:
            return self
        try:
            live.follow(jobs, self.dir)
        except KeyboardInterrupt:
            jobs.stop()
            print(f"stopping '{self.name}' after this step and saving a checkpoint ...", flush=True)
            jobs.wait()
        if jobs.state == "failed":
            raise StudioError(jobs.message)
        print(f"{self.name}: {jobs.message}", flush=True)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (without a display) until training ends; True when it has."""
        return session().jobs.wait(timeout) if self.training else True

    def stop(self) -> bool:
        """Stop training after the current step (a checkpoint is saved); False if it is not training."""
        return session().jobs.stop() if self.training else False

    def resume(self, minutes: float | None = None, steps: int | None = None, wait: bool = True) -> "Run":
        """Go on training: `minutes` more, or to a new step total (see the studio's Resume)."""
        session().jobs.resume(self.dir, steps=steps, minutes=minutes)
        return self.watch() if wait else self

    def model(self) -> GAN:
        """The newest checkpoint's averaged generator."""
        if not self.dir.has_checkpoint():
            raise StudioError(f"The run '{self.name}' has no checkpoint yet; wait for its first one.")
        return model(self.path)

    def samples(self, n: int = 8, seed: int = 0, truncation: float = 1.0) -> Picture:
        return self.model().samples(n, seed, truncation)

    def blend(self, classes: dict[str, float] | str, n: int = 8, seed: int = 0, truncation: float = 1.0,
              seed_b: int | None = None, position: float = 0.0) -> Picture:
        return self.model().blend(classes, n, seed, truncation, seed_b, position)

    def images(self, classes: dict[str, float] | str, seeds: list[int] | int = 8, truncation: float = 1.0
               ) -> torch.Tensor:
        return self.model().images(classes, seeds, truncation)

    def texture(self, width: int = 1024, height: int | None = None, seed: int = 0, tileable: bool = False,
                source: int | str | None = None, style_seed: int | None = None) -> Picture:
        return self.model().texture(width, height, seed, tileable, source, style_seed)

    def export(self, out: str | os.PathLike) -> Path:
        """A small model folder (config.json + float16 averaged generator) at `out`, as
        `python -m gan_core export`; the studio lists it when `out` is in its models folder."""
        return checkpoint.export_model(self.path, out)


def _free_name(ws: Workspace, data) -> str:
    """A new run name from the data's name (ASCII letters, digits, - and _) and a number."""
    first = data if isinstance(data, (str, os.PathLike)) else (list(data) or ["run"])[0]
    stem = safe_filename(Path(str(first)).stem, "run")[:40]
    n = 1
    while (ws.runs / f"{stem}-{n}").exists():
        n += 1
    return f"{stem}-{n}"


def train(variant: str, data, minutes: float | None = None, steps: int | None = None, name: str | None = None,
          recipe: str = "studio", wait: bool = True, **settings) -> Run:
    """Train a new run: "cgan" on a folder with one subfolder per class, or "sgan" on one or more
    texture photos (a path, or a list of paths), for `minutes` and/or `steps` (neither: the
    recipe's steps). `name`: the run's folder name (default: the data's name and a number).
    Other settings as in the studio's form and the CLI (batch, resolution, g_channels, lr, seed,
    augment, ...). With `wait` (the default) the progress shows until the run ends; interrupting
    the cell stops it with a checkpoint. Without, it trains in the background: run.watch() later."""
    s = session()
    name = check_run_name(name) if name else _free_name(s.ws, data)
    rd = s.ws.run(name)
    s.jobs.refuse_start(rd)
    data = str(data) if isinstance(data, os.PathLike) else data if isinstance(data, str) else [str(d) for d in data]
    cfg = s.ws.run_config(variant, data, recipe,
                          steps=steps, minutes=minutes, **settings)
    s.jobs.train(cfg, rd)
    r = Run(rd)
    return r.watch() if wait else r


def run(name: str) -> Run:
    """A run of the workspace by name (see runs())."""
    rd = workspace().find_run(name)
    if rd is None:
        raise StudioError(f"No run named {name!r} in {workspace().runs}; runs: {', '.join(runs()) or 'none yet'}.")
    return Run(rd)


def runs() -> list[str]:
    """The names of the workspace's runs with a checkpoint, the most recently trained last."""
    return workspace().run_names()


def _short_errors() -> None:
    """Inside IPython a StudioError (bad input: a wrong class name, a missing folder, a busy job)
    shows as its one-line message, as the studio and the CLI show it, not as a traceback."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return

    def one_line(shell, etype, value, tb, tb_offset=None):
        shell._showtraceback(etype, value, [f"{etype.__name__}: {value}"])
    ip.set_custom_exc((StudioError,), one_line)


_short_errors()
