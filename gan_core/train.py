"""One training loop for both GAN variants, driven by callbacks.

`train(cfg, run_dir, on_progress=..., should_stop=...)` starts a run, `resume(run_dir)` continues
one from its newest checkpoint. Neither knows about any user interface: the CLI runs them in the
foreground with a progress bar, the studio in a worker thread. Every random draw of the loop
(data, noise, augmentation, penalty interpolation) comes from one torch.Generator whose state is
saved with each checkpoint, so a resumed run continues exactly as if it had never stopped.

Under torchrun the same loop runs in every process: each computes its rows of the global batch,
DistributedDataParallel averages the gradients, and only the lead process (rank 0) reports and
writes files. How that keeps the processes identical, and equal to one process: parallel.py.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import checkpoint as ckpt
from . import parallel
from .augment import augment
from .config import RunConfig
from .data import load_class_dataset, load_textures, sample_patches, to_float
from .errors import CheckpointError, ConfigError, StudioError
from .explore import class_grid, grid, save_png
from .io import atomic_write
from .losses import d_loss, g_loss, gradient_penalty
from .nets import build_discriminator, build_generator
from .nets.cgan import group_size

DRIFT = 1e-3  # small penalty on the critic's real scores, keeps WGAN scores from drifting away
MAX_ROLLBACKS = 3


class TrainingError(StudioError):
    """Training cannot go on (for example it diverged repeatedly)."""


@dataclass
class Progress:
    """What the loop reports: event is 'data' (dataset summary in message), 'log' (record),
    'sample' / 'checkpoint' (path), 'rollback' (message) or 'done'."""

    event: str
    step: int
    total: int
    record: dict = field(default_factory=dict)
    path: str | None = None
    message: str = ""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stopped: bool
    checkpoint: Path


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast only where the hardware runs it fast; on CPUs without AVX512-BF16/AMX
    bf16 convolutions are many times slower than fp32 (measured), so 'auto' keeps fp32 there."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


class _Loop:
    """The state of one run: models, optimizers, data and the random stream."""

    def __init__(self, cfg: RunConfig, run_dir: Path, device: torch.device):
        self.cfg, self.run_dir, self.device = cfg, run_dir, device
        t = cfg.train
        self.share = parallel.current_share()  # the rows of each batch this process computes
        self.share.split(t.batch)  # refuses a batch that the processes cannot share evenly
        if t.diversity and self.share.world > 1 and t.batch % (2 * self.share.world):
            raise ConfigError(f"with --diversity on {self.share.world} processes the batch must be a multiple of "
                              f"{2 * self.share.world}, so that each process holds whole pairs; got {t.batch}.")
        self.bf16 = use_bf16(t.precision, device)
        self.mem = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self._load_data()
        torch.manual_seed(t.seed)
        self.G = build_generator(cfg).to(device, memory_format=self.mem)
        self.D = build_discriminator(cfg).to(device, memory_format=self.mem)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        betas = (t.beta1, t.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=betas)
        # what a training step calls: G and D, or under torchrun their DistributedDataParallel wrappers
        self.G_train = parallel.wrap_generator(self.G, device)
        self.D_train = parallel.wrap_critic(self.D, device)
        self.gen = torch.Generator().manual_seed(t.seed + 1)
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self.rollbacks = 0

    # ---- data ---------------------------------------------------------------------------
    def _load_data(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        if cfg.variant == "cgan":
            ds = load_class_dataset(cfg.data[0], cfg.model.resolution, cache_dir=self.run_dir)
            if cfg.model.class_names and cfg.model.class_names != ds.class_names:
                raise CheckpointError(
                    f"The data folder's classes ({', '.join(ds.class_names)}) differ from the run's "
                    f"({', '.join(cfg.model.class_names)}). Restore the folder or start a new run.")
            cfg.model.class_names = ds.class_names
            self.images, self.labels = ds.images, ds.labels
            self.by_class = [torch.nonzero(ds.labels == c).flatten() for c in range(len(ds.class_names))]
            self.skipped = ds.report.skipped
            self.summary = ds.report.summary()
            if t.batch > len(ds):
                raise StudioError(f"batch ({t.batch}) is larger than the dataset ({len(ds)} images). "
                                  "Use a smaller batch or add images.")
        else:
            self.textures, names, self.skipped = load_textures(cfg.data, t.patch, t.max_side)
            self.summary = "\n".join([f"{len(names)} texture image(s): " + ", ".join(
                f"{n} ({x.shape[2]}x{x.shape[1]})" for n, x in zip(names, self.textures))]
                + [f"  skipped {p}: {why}" for p, why in self.skipped])
            if cfg.model.source_names and cfg.model.source_names != names:
                raise CheckpointError(f"The texture images ({', '.join(names)}) differ from the run's "
                                      f"({', '.join(cfg.model.source_names)}).")
            cfg.model.source_names = names

    def _class_batch(self, b: int) -> torch.Tensor:
        """Image indices for a batch whose critic groups each hold one class.

        The critic's minibatch-std groups are images i, i + b/g, i + 2b/g, ...; drawing each
        group from one class lets the critic see a generator that ignores its noise within a
        class (a mixed-class group is diverse anyway). Anchors are drawn over all images, so
        classes keep their frequencies.
        """
        g = group_size(b, self.cfg.model.mbstd_group)
        anchors = torch.randint(len(self.labels), (b // g,), generator=self.gen)
        idx = [anchors]
        for _ in range(g - 1):
            pick = []
            for a in anchors.tolist():
                members = self.by_class[int(self.labels[a])]
                pick.append(members[int(torch.randint(len(members), (1,), generator=self.gen))])
            idx.append(torch.stack(pick))
        return torch.cat(idx)

    def real_batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows of a global batch of b real images (all b in a single process)."""
        t = self.cfg.train
        if self.cfg.variant == "cgan":
            idx = self.share.rows(self._class_batch(b))
            x, y = to_float(self.images[idx]), self.labels[idx]
            if t.mirror:
                flip = self.share.rows(torch.rand(b, generator=self.gen)) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
        else:
            x, y = sample_patches(self.textures, self.share.split(b), t.patch, self.gen, t.mirror, self.share)
        return x.to(self.device, memory_format=self.mem), y.to(self.device)

    def fake_batch(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated images for conditions y, and the latent each was made from (flattened)."""
        b = y.shape[0]
        if self.cfg.variant == "cgan":
            z = self.share.randn(self.gen, b, self.cfg.model.nz).to(self.device)
            return self.G_train(z, y), z
        n = self.cfg.train.patch // self.cfg.model.scale
        noise = self.G.make_noise(b, n, n, self.gen, sources=y.cpu(), share=self.share).to(self.device)
        return self.G_train(noise), torch.cat([noise.local.flatten(1), noise.style[:, :, 0, 0]], 1)

    def labels_for_g(self, b: int, paired: bool = False) -> torch.Tensor:
        """This process's rows of b conditions for a generator step. `paired`: rows i and i + b/2
        of the global batch get the same condition (the pairs of the mode-seeking term); with the
        strided shares of several processes the pairs stay within a process when b/2 splits evenly."""
        if self.cfg.variant == "cgan":
            y = self.labels[self._class_batch(b)]
        else:
            y = torch.randint(len(self.textures), (b,), generator=self.gen)
        if paired:
            y = torch.cat([y[: b // 2], y[: b - b // 2]])
        return self.share.rows(y).to(self.device)

    # ---- one step -----------------------------------------------------------------------
    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def train_step(self) -> dict:
        t = self.cfg.train
        aug = (lambda x: augment(x, t.augment, self.gen, self.share)) if t.augment else (lambda x: x)
        self.D.requires_grad_(True)
        rec = {"d_loss": 0.0, "gp": 0.0, "w_dist": 0.0}
        for _ in range(t.n_critic):
            real, y = self.real_batch(t.batch)
            with torch.no_grad(), self.autocast():
                fake = self.fake_batch(y)[0].float()
            real_a, fake_a = aug(real), aug(fake)
            with self.autocast():
                s_real, s_fake = self.D_train(real_a, y).float(), self.D_train(fake_a, y).float()
            loss = d_loss(s_real, s_fake, t.loss)
            if t.loss == "wgan-gp":
                # D itself, not its DDP wrapper: the penalty's inner autograd.grad must not start
                # DDP's gradient reduction; its share of D's gradient is reduced in loss.backward()
                with self.autocast():
                    gp = gradient_penalty(lambda x: self.D(x, y), real_a, fake_a, self.gen, self.share)
                loss = loss + t.gp_lambda * gp + DRIFT * s_real.pow(2).mean()
                rec["gp"] += gp.item() / t.n_critic
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
            rec["d_loss"] += loss.item() / t.n_critic
            rec["w_dist"] += (s_real.mean() - s_fake.mean()).item() / t.n_critic
        self.D.requires_grad_(False)
        y = self.labels_for_g(t.batch, paired=t.diversity > 0)
        with self.autocast():
            fake, latent = self.fake_batch(y)
            lg = g_loss(self.D(aug(fake.float()), y), t.loss)  # D is fixed here: nothing of it to reduce
        if t.diversity:
            ms = mode_seeking(fake.float(), latent.float())
            lg = lg + t.diversity * ms
            rec["mode_seeking"] = ms.item()
        self.opt_g.zero_grad(set_to_none=True)
        lg.backward()
        self.opt_g.step()
        rec["g_loss"] = lg.item()
        self.update_ema()
        self.step += 1
        return rec

    @torch.no_grad()
    def update_ema(self) -> None:
        beta = min(self.cfg.train.ema_beta, (1 + self.step) / (10 + self.step))
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
            pe.lerp_(p, 1 - beta)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(b)

    # ---- outputs ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"step": self.step, "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": self.gen.get_state(), "torch_rng": torch.get_rng_state(), "elapsed": self.elapsed,
                "history": self.history, "rollbacks": self.rollbacks}

    def load(self, path: Path) -> None:
        st = ckpt.load_training_state(path, self.G, self.G_ema, self.D)
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        self.gen.set_state(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        self.step, self.elapsed = int(st["step"]), float(st["elapsed"])
        self.history, self.rollbacks = list(st["history"]), int(st.get("rollbacks", 0))

    def finite(self) -> bool:
        return all(torch.isfinite(p).all() for m in (self.G, self.D, self.G_ema) for p in m.parameters())

    def save(self) -> Path:
        if not self.finite():
            raise TrainingError("The weights hold NaN or infinite values; no checkpoint was written.")
        if not self.share.lead:  # the lead process writes it; the others hold the same state
            return ckpt.checkpoint_path(self.run_dir, self.step)
        path = ckpt.save_checkpoint(self.run_dir, self.cfg, self.G, self.G_ema, self.D, self.state(),
                                    keep=self.cfg.train.keep_checkpoints)
        plot_losses(self.history, self.run_dir / "loss_plot.png")
        return path

    def sample(self) -> Path:
        out = self.run_dir / "samples"
        path = out / f"step_{self.step:08d}.png"
        if not self.share.lead:
            return path
        out.mkdir(exist_ok=True)
        img = sample_image(self.G_ema, self.cfg)
        save_png(path, img, {"step": str(self.step)})
        save_png(out / "latest.png", img, {"step": str(self.step)})
        return path


def mode_seeking(fake: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """Mode-seeking term (Mao et al. 2019, MSGAN): for pairs of images made from the same condition
    and different latents, the inverse of (image distance / latent distance). It is large when the
    generator maps different latents to the same image, the collapse a conditional generator falls
    into within a class, and fades once the images differ as much as their latents do."""
    h = fake.shape[0] // 2  # pairs are rows (i, i + h); an odd last row is left out
    d_img = (fake[:h] - fake[h:2 * h]).abs().flatten(1).mean(1)
    d_lat = (latent[:h] - latent[h:2 * h]).abs().mean(1)
    return (1.0 / (d_img / d_lat + 1e-5)).mean()


def sample_image(G: nn.Module, cfg: RunConfig, n: int = 8, seed: int = 0) -> "object":
    """The run's fixed-noise preview: one row per class, or one 256 px canvas per source texture."""
    G.eval()
    if cfg.variant == "cgan":
        return class_grid(G, cfg.model.class_names, n, seed)
    from .texture import generate_texture
    tiles = [torch.from_numpy(generate_texture(G, 256, 256, seed=seed, source=i if cfg.model.n_sources > 1 else None,
                                               style_seed=seed)).permute(2, 0, 1).float() / 127.5 - 1
             for i in range(cfg.model.n_sources)]
    return grid(torch.stack(tiles), len(tiles))


def plot_losses(history: list[dict], path: Path) -> None:
    """Write the loss curves (critic, generator, Wasserstein estimate) as a PNG."""
    if not history:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for key, label in (("d_loss", "critic loss"), ("g_loss", "generator loss"), ("w_dist", "real - fake score")):
        ax.plot(steps, [h[key] for h in history], label=label, linewidth=1)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


def _truncate_stats(path: Path, step: int) -> None:
    """Drop records past `step` (steps lost when a run stopped between checkpoints)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line from a crash
    atomic_write(path, ("\n".join(keep) + "\n" if keep else "").encode())


def train(cfg: RunConfig, run_dir: str | os.PathLike, *, on_progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] | None = None, device: str | None = None) -> TrainResult:
    """Start a new run in `run_dir` (which must not hold one already)."""
    cfg.validate(require_names=False)
    run_dir = Path(run_dir).expanduser()
    if ckpt.checkpoint_dirs(run_dir):
        raise CheckpointError(f"{run_dir} already holds a run. Resume it, or choose another folder.")
    run_dir.mkdir(parents=True, exist_ok=True)
    loop = _Loop(cfg, run_dir, pick_device(device))
    cfg.validate()
    if loop.share.lead:
        ckpt.write_json(run_dir / "config.json", cfg.to_dict())
        (run_dir / "stats.jsonl").unlink(missing_ok=True)
        if loop.skipped:
            ckpt.write_json(run_dir / "skipped.json", [list(s) for s in loop.skipped])
    return _run(loop, on_progress, should_stop)


def resume(run_dir: str | os.PathLike, *, steps: int | None = None,
           on_progress: Callable[[Progress], None] | None = None,
           should_stop: Callable[[], bool] | None = None, device: str | None = None) -> TrainResult:
    """Continue a run from its newest complete checkpoint; `steps` sets a new total."""
    run_dir = Path(run_dir).expanduser()
    ckpts = ckpt.checkpoint_dirs(run_dir)
    if not ckpts:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from (it stopped before its first "
                              "one was written); start it again with train.")
    last_error = None
    for path in ckpts:  # newest first; a damaged one falls back to the one before
        try:
            cfg = ckpt.read_config(path)
            if steps is not None:
                cfg.train.steps = steps
                cfg.validate()
            loop = _Loop(cfg, run_dir, pick_device(device))
            loop.load(path)
            break
        except CheckpointError as e:
            last_error = e
    else:
        raise CheckpointError(f"No checkpoint in {run_dir} could be loaded: {last_error}")
    if loop.share.lead:
        _truncate_stats(run_dir / "stats.jsonl", loop.step)
        ckpt.write_json(run_dir / "config.json", cfg.to_dict())
    return _run(loop, on_progress, should_stop, start=path)


def _run(loop: _Loop, on_progress, should_stop, start: Path | None = None) -> TrainResult:
    """The loop itself; `start` is the checkpoint a resumed run was loaded from."""
    cfg, t = loop.cfg, loop.cfg.train
    emit = (on_progress if loop.share.lead else None) or (lambda p: None)
    stop = should_stop or (lambda: False)
    emit(Progress("data", loop.step, t.steps, message=loop.summary))
    stats_path = loop.run_dir / "stats.jsonl"
    window: list[dict] = []
    t0, imgs0, step0 = time.perf_counter(), 0, loop.step
    last_ckpt = start or loop.save()  # a new run saves step 0, a state to roll back to
    stopped = False
    while loop.step < t.steps:
        if parallel.any_process(stop(), loop.device):  # all processes stop after the same step
            stopped = True
            break
        tick = time.perf_counter()
        rec = parallel.mean_over_processes(loop.train_step(), loop.device)  # so all take the same branch
        loop.elapsed += time.perf_counter() - tick
        due = loop.step % t.ckpt_every == 0 or loop.step == t.steps
        if not all(math.isfinite(v) for v in rec.values()) or (due and not loop.finite()):
            loop.rollbacks += 1
            if loop.rollbacks > MAX_ROLLBACKS:
                raise TrainingError(f"Training diverged {loop.rollbacks} times (NaN or infinite loss or weights). "
                                    "Try a lower learning rate or the hinge loss; the last good "
                                    f"checkpoint is {last_ckpt}.")
            rollbacks, gen_state = loop.rollbacks, loop.gen.get_state()
            loop.load(last_ckpt)
            loop.rollbacks = rollbacks
            loop.gen.set_state(gen_state)  # go on with fresh random draws, not the same ones
            _truncate_stats(stats_path, loop.step)  # the steps after the checkpoint are redone
            window.clear()
            emit(Progress("rollback", loop.step, t.steps,
                          message=f"NaN or infinite loss or weights; rolled back to step {loop.step} "
                                  f"(rollback {rollbacks} of at most {MAX_ROLLBACKS})"))
            continue
        window.append(rec)
        done_imgs = (loop.step - step0) * t.batch * t.n_critic
        if loop.step % t.log_every == 0 or loop.step == t.steps:
            wall = time.perf_counter() - t0
            speed = (done_imgs - imgs0) / max(wall, 1e-9)
            record = {k: sum(r[k] for r in window) / len(window) for k in window[0]}
            record.update(step=loop.step, img_per_s=round(speed, 2), elapsed=round(loop.elapsed, 2),
                          kimg=round(loop.step * t.batch * t.n_critic / 1000, 3),
                          eta_s=round((t.steps - loop.step) * t.batch * t.n_critic / max(speed, 1e-9), 1))
            loop.history.append(record)
            if loop.share.lead:
                with open(stats_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            window.clear()
            t0, imgs0 = time.perf_counter(), done_imgs
            emit(Progress("log", loop.step, t.steps, record))
        if loop.step % t.sample_every == 0 or loop.step == t.steps:
            emit(Progress("sample", loop.step, t.steps, path=str(loop.sample())))
        if due:
            last_ckpt = loop.save()
            emit(Progress("checkpoint", loop.step, t.steps, path=str(last_ckpt)))
    if stopped and int(last_ckpt.name[5:]) != loop.step:
        last_ckpt = loop.save()
        loop.sample()
        emit(Progress("checkpoint", loop.step, t.steps, path=str(last_ckpt)))
    emit(Progress("done", loop.step, t.steps, message="stopped" if stopped else "finished"))
    return TrainResult(loop.run_dir, loop.step, stopped, last_ckpt)
