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

import contextlib
import copy
import json
import math
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import checkpoint as ckpt
from . import parallel, spectrum, submodes
from .augment import augment
from .config import CRITIC_WIDTH, NO_STEP_LIMIT, RunConfig
from .data import load_class_dataset, load_textures, sample_patches, to_float
from .errors import CheckpointError, ConfigError, StudioError
from .io import atomic_write
from .losses import d_loss, g_loss, gradient_penalty, mirror_asymmetry, pixel_grid_excess, zero_centred_penalty
from .metrics import grid_artifacts, image_swd
from .nets import build_discriminator, build_generator
from .nets.cgan import group_size
from .sampling import class_grid, grid, save_png

try:
    import fcntl
except ImportError:  # Windows: no run-folder lock
    fcntl = None

LOCK_FILE = ".lock"
DRIFT = 1e-3  # small penalty on the critic's real scores, keeps WGAN scores from drifting away
MAX_ROLLBACKS = 3
PACE_SKIP, PACE_STEPS = 2, 5  # a session's first steps set up kernels; the pace is timed over the next five
PLOT_EVERY_S = 60.0  # the loss plot is redrawn at a checkpoint at most once a minute, and at the end
MIRROR_RATE = 0.02  # per step: the generator's diagonal lean is averaged over about the last 50 steps
_plot_clock = time.monotonic


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
    budget_s: float = 0.0  # the run's time budget (0: steps only)
    used_s: float = 0.0  # training time used so far, counted against the budget

    @property
    def fraction(self) -> float:
        """How far the run is, 0..1: by time under a budget, else by steps."""
        by_steps = self.step / self.total if self.total else 0.0
        return min(1.0, max(by_steps, self.used_s / self.budget_s if self.budget_s else 0.0))


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stopped: bool
    checkpoint: Path


def pick_device(device: str | None = None) -> torch.device:
    """'auto': a CUDA GPU, else Apple's MPS (Macs with Apple silicon), else the CPU."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    return torch.device(device)


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast only where the hardware runs it fast; on CPUs without AVX512-BF16/AMX
    bf16 convolutions are many times slower than fp32 (measured), so 'auto' keeps fp32 there.
    On GPUs 'auto' is fp32 too: these networks are small, and on an H200 a 64 px conditional step
    ran at 1322 images/s in fp32 and 1185 in bf16 (bench/gpu_check.py); MPS always runs fp32."""
    if precision != "auto":
        return precision == "bf16"
    if device.type != "cpu":
        return False
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


# 64 px conditional steps (batch 32, the studio recipe) in 10 minutes on 2-core AMD EPYCs: in bf16
# autocast with AVX512-BF16, and in fp32 on one with AVX2 only (bench/RESULTS.md, "Time to quality";
# the bf16 CPU itself, in fp32 with its kernels held at AVX2, made about 2200). The
# bf16 figure is from before one generated batch per step (reuse_batch), which made fp32 steps 14%
# faster; it is kept as measured.
STEPS_10MIN_BF16, STEPS_10MIN_FP32 = 3000, 760


def speed_note(device: str | None = None) -> str:
    """One sentence on how far a 10-minute run gets on this machine, for the studio's Train tab: the
    device training will use and, on a CPU, whether it has the bf16 instructions (measured figures:
    the AVX512-BF16 CPU made about 4x the steps of the AVX2-only one, 1.7x its own in fp32; a CPU
    with more cores is faster)."""
    dev = pick_device(device)
    if dev.type == "cuda":
        return f"Training runs on the GPU ({torch.cuda.get_device_name(dev)}), far faster than on a CPU."
    if dev.type == "mps":
        return "Training runs on Apple's GPU (MPS), which has not been measured here."
    if use_bf16("auto", dev):
        return (f"This CPU trains in bf16 (AVX512-BF16): on 2 cores a 10-minute 64 px run makes about "
                f"{STEPS_10MIN_BF16} steps, enough for recognisable pictures.")
    return (f"This CPU has no AVX512-BF16, so training runs in fp32: on a 2-core CPU with AVX2 only a 10-minute "
            f"64 px run makes about {STEPS_10MIN_FP32} steps (colours and rough layout, the seeds of a class often "
            "alike), and 45 minutes about as many as 10 minutes on a CPU with AVX512-BF16 (walls with joints, "
            "stones); AVX512 or more cores make more.")


class Trainer:
    """The state of one run: models, optimizers, data and the random stream; `train_step()` is one
    generator step (with its critic steps). `train()` and `resume()` drive it; benchmarks drive it
    directly. It keeps its own copy of the settings: the caller's RunConfig is never changed."""

    def __init__(self, cfg: RunConfig, run_dir: Path, device: torch.device):
        cfg = copy.deepcopy(cfg)  # the data sets the class and source names in this copy
        self.cfg, self.run_dir, self.device = cfg, Path(run_dir), device
        t = cfg.train
        self.share = parallel.current_share()  # the rows of each batch this process computes
        self.share.split(t.batch)  # refuses a batch that the processes cannot share evenly
        if t.diversity and self.share.world > 1 and t.batch % (2 * self.share.world):
            raise ConfigError(f"with --diversity on {self.share.world} processes the batch must be a multiple of "
                              f"{2 * self.share.world}, so that each process holds whole pairs; got {t.batch}.")
        self.bf16 = use_bf16(t.precision, device)
        self.mem = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self._load_data()
        if cfg.variant == "cgan" and cfg.model.noise_start is None:  # a new run of the studio recipe: the
            cfg.model.noise_start = t.noise_start()                    # budget's, saved in config.json
        torch.manual_seed(t.seed)
        self.G = build_generator(cfg).to(device, memory_format=self.mem)
        if cfg.variant == "sgan" and t.wrap_train:
            # Padded with zeros, a texture generator can anchor its patterns to the borders of the
            # training patch (a brick photo's mortar lines came out along the edges of a canvas only,
            # and a tileable canvas, which has no edges, came out flat grey). Padded circularly, every
            # position looks alike to it, as in a tileable texture.
            self.G.set_tileable(True)
        rng_critic = torch.get_rng_state()  # the critic is drawn from here (again, if its width changes below)
        self._build_critic()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
        # what a training step calls: G and D, or under torchrun their DistributedDataParallel wrappers
        self.G_train = parallel.wrap_generator(self.G, device)
        self.gen = torch.Generator().manual_seed(t.seed + 1)
        self.step = 0
        self.elapsed = 0.0  # seconds spent in training steps
        self.wall = 0.0  # seconds of the whole loop (steps, samples, checkpoints): the time budget's clock
        self.aug_p = 0.0 if t.ada_target else 1.0  # adaptive augmentation probability
        self.memory: float | None = None  # the critic's last measured memory of its images (critic_memory)
        self._memory_batch: torch.Tensor | None = None  # the held-back images it is measured on
        self.mirror_bias: torch.Tensor | None = None  # per class and band: the generator's recent diagonal lean
        self.class_credit: torch.Tensor | None = None  # class_balance: the groups each class is owed
        self._bn_step: int | None = None  # the step whose averaged weights the BatchNorm statistics fit
        self._gains_step: int | None = None  # the step whose averaged weights the equaliser's gains fit
        self._gains_final = False  # whether that fit drew spectrum.FINAL_TIMES as many images
        self._real_power: list[torch.Tensor] | None = None  # per class: the training images' spectrum
        self.history: list[dict] = []
        self._plotted: tuple[float, int] | None = None  # (when, records drawn) of the last loss plot
        self.rollbacks = 0
        # the machine's pace, read by expected_kimg: (the step it is timed from, the clock then), and
        # the thousands of images the whole budget is expected to see at it
        self._pace_mark: tuple[int, float | None] | None = None
        self._pace_kimg: float | None = None
        if cfg.variant == "cgan" and cfg.model.d_channels is None:  # a new run of the studio recipe: the
            self._critic_by_budget(rng_critic)                       # budget's width, saved in config.json

    def _build_critic(self) -> None:
        """The critic, its optimizer and what a training step calls (its DDP wrapper under torchrun)."""
        t = self.cfg.train
        self.D = build_discriminator(self.cfg).to(self.device, memory_format=self.mem)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
        self.D_train = parallel.wrap_critic(self.D, self.device)

    def _critic_by_budget(self, rng_critic: torch.Tensor) -> None:
        """Settle the width of a critic left to the budget (config.SHORT_CRITIC): time the full-width
        critic's steps (probe_kimg), and if the budget is short, draw the critic again at the short
        width from the random state the first was drawn from, as a run given that width draws it."""
        t, m = self.cfg.train, self.cfg.model
        kimg = None
        if t.minutes:
            rng = torch.get_rng_state()
            kimg = self.probe_kimg()
            torch.set_rng_state(rng)
            if t.short_by_pace and not t.lr_boost:  # the schedule is judged by the same pace
                self._pace_kimg = kimg
        m.d_channels = t.critic_width(kimg)
        if m.d_channels != CRITIC_WIDTH:  # the critic above was drawn at the full width
            torch.set_rng_state(rng_critic)
            self._build_critic()
            self.summary += (f"\nA short budget: at this computer's pace a {t.minutes:g}-minute budget is about "
                             f"{kimg:.1f} thousand images, so the critic is {m.d_channels} channels wide "
                             f"instead of {CRITIC_WIDTH} (it learns faster; the generator is the same)")

    def probe_kimg(self) -> float:
        """Thousands of images the whole time budget would see at this machine's pace with the models as
        built: PACE_SKIP + PACE_STEPS training steps of copies of them, timed over the last PACE_STEPS,
        before the run's first step (its setup, outside the budget). The run's own models, optimizers
        and random streams are not touched. Under torchrun every process times its own share and all
        take the mean."""
        t = self.cfg.train
        probe = copy.copy(self)
        probe.G, probe.D, probe.G_ema = (copy.deepcopy(m) for m in (self.G, self.D, self.G_ema))
        probe.G_train, probe.D_train = probe.G, probe.D  # no gradient exchange: only the time is wanted
        probe.opt_g = torch.optim.Adam(probe.G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
        probe.opt_d = torch.optim.Adam(probe.D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
        probe.gen = torch.Generator().manual_seed(t.seed + 7)
        probe.mirror_bias = probe.class_credit = None
        probe._pace_mark = probe._pace_kimg = None
        start = 0.0
        for i in range(PACE_SKIP + PACE_STEPS):
            if i == PACE_SKIP:
                start = time.perf_counter()
            probe.train_step()
        step_s = max((time.perf_counter() - start) / PACE_STEPS, 1e-9)
        kimg = t.minutes * 60 / step_s * t.batch * t.n_critic / 1000
        if self.share.world > 1:
            kimg = parallel.mean_over_processes({"kimg": kimg}, self.device)["kimg"]
        return kimg

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
            # held back for the quality gauge, and for the augmentation controller's "heldout" signal
            self.held, self.train_idx = held_back_split(ds.labels, t.seed, t.quality_every > 0 or t.heldout_signal)
            self.by_class = [self.train_idx[self.labels[self.train_idx] == c] for c in range(len(ds.class_names))]
            # the critic's condition of each image: its class, or with submodes its class and look group
            # (submodes.py); groups of the critic's spread and the batches' pairs hold one condition
            k = t.submodes
            if k > 1:
                group, self.group_bounds = submodes.split_classes(ds.images, ds.labels, self.train_idx,
                                                                  len(ds.class_names), k, t.seed)
                self.cond = ds.labels * k + group
            else:
                self.cond, self.group_bounds = ds.labels, None
            self.by_cond = [self.train_idx[self.cond[self.train_idx] == c] for c in range(len(ds.class_names) * k)]
            self.skipped = ds.report.skipped
            self.summary = ds.report.summary()
            if len(self.held):
                why = ("how close the samples come to your images" if t.quality_every
                       else "whether the critic learns your images by heart")
                self.summary += f"\n{len(self.held)} images held back (not trained on) to measure {why}"
            if t.batch > len(self.train_idx):
                raise StudioError(f"batch ({t.batch}) is larger than the dataset ({len(self.train_idx)} images"
                                  f"{' to train on' if len(self.held) else ''}). Use a smaller batch or add images.")
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
        classes keep their frequencies; with class_balance their classes are dealt in turn
        (_deal_classes), at the same frequencies, and each anchor drawn within its class.
        """
        g = group_size(b, self.cfg.model.mbstd_group)
        if self.cfg.train.class_balance:
            anchors = torch.stack([self._member(c) for c in self._deal_classes(b // g)])
        else:
            anchors = self.train_idx[torch.randint(len(self.train_idx), (b // g,), generator=self.gen)]
        idx = [anchors]
        for _ in range(g - 1):
            pick = []
            for a in anchors.tolist():
                pick.append(self._member(int(self.cond[a])))
            idx.append(torch.stack(pick))
        return torch.cat(idx)

    def _member(self, c: int) -> torch.Tensor:
        """A training image of the critic's condition c (its class, or class and group), drawn at random."""
        members = self.by_cond[c]
        return members[int(torch.randint(len(members), (1,), generator=self.gen))]

    def _deal_classes(self, n: int) -> list[int]:
        """The classes of a batch's n critic groups, dealt in turn (class_balance): each class earns
        n x its share of the training images a batch, and a group goes to the class owed most (ties
        broken at random), so every class is in every batch at its share, give or take one group,
        where a random draw leaves a class of five out of one batch in six with 8 groups. With submodes
        the critic's conditions (a class's look groups) are dealt the same way."""
        counts = torch.tensor([len(m) for m in self.by_cond], dtype=torch.float32)
        if self.class_credit is None:
            self.class_credit = torch.zeros(len(counts))
        self.class_credit += n * counts / counts.sum()
        out = []
        for _ in range(n):
            owed = self.class_credit + 1e-3 * torch.rand(len(counts), generator=self.gen)
            owed[counts == 0] = -math.inf
            c = int(owed.argmax())
            self.class_credit[c] -= 1
            out.append(c)
        return out

    def real_batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows of a global batch of b real images (all b in a single process)."""
        t = self.cfg.train
        if self.cfg.variant == "cgan":
            idx = self.share.rows(self._class_batch(b))
            x, y = to_float(self.images[idx]), self.cond[idx]
            if t.mirror:
                flip = self.share.rows(torch.rand(b, generator=self.gen)) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
        else:
            x, y = sample_patches(self.textures, self.share.split(b), t.patch, self.gen, t.mirror, self.share)
        return x.to(self.device, memory_format=self.mem), y.to(self.device)

    def fake_batch(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated images for the critic's conditions y, and the latent each was made from (flattened).
        With submodes, y is class * k + group: the generator gets the class, and a latent whose first
        value lies in the group's slice of N(0, 1) (submodes.place)."""
        b = y.shape[0]
        if self.cfg.variant == "cgan":
            z = self.share.randn(self.gen, b, self.cfg.model.nz)
            k = self.cfg.train.submodes
            if k > 1:
                y = y.cpu()
                c, s = submodes.class_of(y, k), y % k
                z = submodes.place(z, self.group_bounds[c, s], self.group_bounds[c, s + 1])
                y = c.to(self.device)
            z = z.to(self.device)
            return self.G_train(z, y), z
        t, scale = self.cfg.train, self.cfg.model.scale
        m, n = self.texture_canvas()
        noise = self.G.make_noise(b, n, n, self.gen, sources=y.cpu(), share=self.share).to(self.device)
        out = self.G_train(noise)
        if m:
            # Zero padding lets a generator anchor its patterns to the canvas border (a brick photo's
            # mortar lines came out along the edges only, and flat in a tileable canvas, which has no
            # edge). With a margin the critic sees a window away from the border, at a random offset,
            # so what it judges is what the middle of any canvas, or a tileable one, looks like.
            oy, ox = (int(v) for v in torch.randint(m * scale // 2, m * scale * 3 // 2 + 1, (2,), generator=self.gen))
            out = out[..., oy:oy + t.patch, ox:ox + t.patch]
        return out, torch.cat([noise.local.flatten(1), noise.style[:, :, 0, 0]], 1)

    def texture_canvas(self) -> tuple[int, int]:
        """A texture model's training canvas: (margin, side) in noise cells. The margin is drawn beyond
        each side of the critic's patch (none when the generator pads circularly: it has no border)."""
        m = 0 if self.cfg.train.wrap_train else self.cfg.model.margin
        return m, self.cfg.train.patch // self.cfg.model.scale + 2 * m

    def labels_for_g(self, b: int, paired: bool = False) -> torch.Tensor:
        """This process's rows of b conditions for a generator step. `paired`: rows i and i + b/2
        of the global batch get the same condition (the pairs of the mode-seeking term); with the
        strided shares of several processes the pairs stay within a process when b/2 splits evenly."""
        if self.cfg.variant == "cgan":
            y = self.cond[self._class_batch(b)]
        else:
            y = torch.randint(len(self.textures), (b,), generator=self.gen)
        if paired:
            y = torch.cat([y[: b // 2], y[: b - b // 2]])
        return self.share.rows(y).to(self.device)

    # ---- one step -----------------------------------------------------------------------
    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def progress(self) -> float:
        """How far the run is, 0..1: by its time budget when it has one, else by its steps."""
        t = self.cfg.train
        if t.minutes:
            return min(1.0, self.wall / (t.minutes * 60))
        return min(1.0, self.step / t.steps)

    def set_learning_rates(self) -> None:
        """The learning rates of this step: the boost (TrainConfig.boost: lr_boost, or the time
        budget's) times the base rates over the first lr_boost_kimg thousand images, falling linearly
        to the base rates over as many again (a young generator far from the photos takes large
        steps), then (TrainConfig.decay > 0) a linear fall to zero over the last part of the run, so
        the last minutes of a budget settle the weights instead of stirring them. All processes use
        the mean of their progress (their clocks differ by a little)."""
        t = self.cfg.train
        kimg = self.expected_kimg()
        decay, boost = t.decay(kimg), t.boost(kimg)
        if not decay and boost == 1:
            return
        factor = 1.0
        if decay:
            f = self.progress()
            if self.share.world > 1:
                f = parallel.mean_over_processes({"f": f}, self.device)["f"]
            factor = min(1.0, (1.0 - f) / decay)
        factor *= self.boost_factor(boost)
        for opt, base in ((self.opt_g, t.lr_g), (self.opt_d, t.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * factor

    def expected_kimg(self) -> float | None:
        """The thousands of images the whole time budget is expected to see at this machine's pace
        (TrainConfig.short_share), timed over PACE_STEPS steps after the first PACE_SKIP of this session
        (which set up the kernels) and then kept; None before then, without a budget, or where the
        schedule does not follow the pace. All processes use the mean of their estimates."""
        t = self.cfg.train
        if self._pace_kimg is not None or not (t.minutes and t.short_by_pace and not t.lr_boost):
            return self._pace_kimg
        if self._pace_mark is None:
            self._pace_mark = (self.step + PACE_SKIP, None)
        start, wall0 = self._pace_mark
        if self.step == start:
            self._pace_mark = (start, self.wall)
        elif wall0 is not None and self.step >= start + PACE_STEPS:
            used = self.wall - wall0  # no time passed (a clock nobody advanced): no pace to read
            steps_per_s = (self.step - start) / used if used > 0 else math.inf
            kimg = self.kimg() * (1 + steps_per_s * max(0.0, t.minutes * 60 - self.wall) / self.step)
            if self.share.world > 1:
                kimg = parallel.mean_over_processes({"kimg": kimg}, self.device)["kimg"]
            self._pace_kimg = kimg
        return self._pace_kimg

    def kimg(self) -> float:
        """Thousands of real images the critic has seen (steps x global batch x critic steps)."""
        return self.step * self.cfg.train.batch * self.cfg.train.n_critic / 1000

    def boost_factor(self, boost: float) -> float:
        """The early multiplier of the learning rates at this step for a run that starts at `boost`
        (TrainConfig.boost): 1 once the boost is over."""
        t = self.cfg.train
        if boost == 1 or t.lr_boost_kimg <= 0:
            return 1.0
        seen = self.kimg() / t.lr_boost_kimg  # in boost periods
        return boost + (1 - boost) * min(1.0, max(0.0, seen - 1))

    def train_step(self) -> dict:
        t = self.cfg.train
        self.set_learning_rates()
        group = group_size(t.batch, self.cfg.model.mbstd_group) if t.aug_groups and self.cfg.variant == "cgan" else 1
        aug = (lambda x: augment(x, t.augment, self.gen, self.share, self.aug_p, group)) if t.augment else (lambda x: x)
        self.D.requires_grad_(True)
        rec = {"d_loss": 0.0, "gp": 0.0, "w_dist": 0.0, "real_sign": 0.0}
        # One generator forward per step instead of two: the generator step needs the same conditions
        # as the critic step's (rpgan pairs them), so its batch can be drawn once, with its graph kept.
        reuse = t.reuse_batch and t.loss == "rpgan" and t.n_critic == 1
        for i in range(t.n_critic):
            real, y = self.real_batch(t.batch)
            if reuse:
                with self.autocast():
                    fake_g, latent = self.fake_batch(y)
                fake = fake_g.detach().float()
            else:
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
            elif t.loss == "rpgan" and (self.step * t.n_critic + i) % t.reg_every == 0:
                # lazy R1 + R2, scaled by the interval so the average pull stays gamma / 2 per step
                with self.autocast():
                    r1 = zero_centred_penalty(lambda x: self.D(x, y), real_a)
                    r2 = zero_centred_penalty(lambda x: self.D(x, y), fake_a)
                loss = loss + t.r1_gamma / 2 * (r1 + r2) * t.reg_every
                rec["gp"] += (r1 + r2).item() / t.n_critic
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
            rec["d_loss"] += loss.item() / t.n_critic
            rec["w_dist"] += (s_real.mean() - s_fake.mean()).item() / t.n_critic
            # ADA's overfitting signal: how sure the critic is of the real images. The relativistic
            # loss only sees score differences (any offset is free), so there it is the share of
            # pairs in which the real image outranks the generated one.
            sure = s_real - s_fake if t.loss == "rpgan" else s_real
            rec["real_sign"] += sure.detach().sign().mean().item() / t.n_critic
        self.D.requires_grad_(False)
        if t.loss != "rpgan":
            y = self.labels_for_g(t.batch, paired=t.diversity > 0)
        with self.autocast():  # rpgan pairs each generated image with the last real batch, same conditions
            if reuse:  # the real scores of the critic step (before its update) stand for this step's
                fake, paired_real = fake_g, s_real.detach()
            else:
                fake, latent = self.fake_batch(y)
                paired_real = self.D(real_a, y) if t.loss == "rpgan" else None
            lg = g_loss(self.D(aug(fake.float()), y), t.loss, paired_real)  # D is fixed: nothing of it to reduce
        if t.grid_penalty:
            ge = pixel_grid_excess(fake, real)
            lg = lg + t.grid_penalty * ge
            rec["grid_excess"] = ge.item()
        if t.mirror_balance and self.cfg.variant == "cgan":
            lg = lg + t.mirror_balance * self.mirror_term(fake, submodes.class_of(y, t.submodes), rec)
        if t.diversity:
            ms = mode_seeking(fake.float(), latent.float(), y)
            lg = lg + t.diversity * ms
            rec["mode_seeking"] = ms.item()
        self.opt_g.zero_grad(set_to_none=True)
        lg.backward()
        self.opt_g.step()
        rec["g_loss"] = lg.item()
        self.update_ema()
        self.step += 1
        return rec

    def mirror_term(self, fake: torch.Tensor, y: torch.Tensor, rec: dict) -> torch.Tensor:
        """The generator's term against a one-way diagonal grain. The real images are flipped left to
        right at random, so every class's diagonals carry equal power both ways; the critic judges
        one picture at a time, and a picture with streaks one way looks as real as its mirror image,
        so nothing stops a generator whose every picture (often of every class) leans one way. Its
        lean per class and octave band (losses.mirror_asymmetry) is averaged over the last ~50
        steps (mirror_bias); the term is this batch's lean times that average, held fixed: its
        gradient pulls against a lean that lasts, not against the batch-to-batch wobble of a few
        images (which pulling r^2 to zero would do, pushing every picture to be symmetric)."""
        r, present = mirror_asymmetry(fake.float(), y, self.cfg.model.n_classes)
        if self.mirror_bias is None:
            self.mirror_bias = torch.zeros_like(r.detach())
        with torch.no_grad():
            self.mirror_bias[present] += MIRROR_RATE * (r[present] - self.mirror_bias[present])
        rec["mirror_bias"] = self.mirror_bias.abs().mean().item()
        return (r[present] * self.mirror_bias[present]).sum() / present.sum()

    def ema_decay(self, kimg: float | None = None, ramp: float | None = None) -> float:
        """Per-step decay of the averaged generator. With ema_kimg: a half-life of ema_kimg thousand
        images, at most ema_rampup x the images seen so far (StyleGAN2-ADA), so the average follows
        a young generator closely and settles as training goes on, however long the run. Otherwise
        ema_beta, with a warm-up over the first steps. `kimg` and `ramp` replace the run's
        ema_kimg and ema_rampup (for other averages of the same run)."""
        t = self.cfg.train
        kimg = t.ema_kimg if kimg is None else kimg
        ramp = t.ema_rampup if ramp is None else ramp
        if kimg <= 0:
            return min(t.ema_beta, (1 + self.step) / (10 + self.step))
        half_life = min(kimg * 1000, (self.step + 1) * t.batch * ramp)
        return 0.5 ** (t.batch / max(half_life, 1e-8))

    def update_ada(self, rec: dict) -> None:
        """ADA's controller: raise the augmentation probability while the critic's overfitting signal
        is above the target (it starts to memorise its training images), lower it otherwise.
        `rec` is the step's record averaged over processes, so all processes agree. The "heldout"
        signal (critic_memory) is measured every ada_every steps on the held-back images; a run with
        too few held back (a small dataset, or the gauge off) uses the "rank" signal."""
        t = self.cfg.train
        if not (t.ada_target and t.augment):
            return
        step = t.batch * t.n_critic / (t.ada_kimg * 1000)
        if t.heldout_signal and len(self.memory_batch()):
            if self.step % t.ada_every:
                return
            self.memory = self.critic_memory()
            signal, step = self.memory, step * t.ada_every
        else:
            signal = rec["real_sign"]
        self.aug_p = min(1.0, max(0.0, self.aug_p + step * (1 if signal > t.ada_target else -1)))

    def memory_batch(self) -> torch.Tensor:
        """The held-back images critic_memory scores, laid out as a training batch: minibatch-std
        groups (images i, i + n/g, ...) of one class each, so the critic's spread plane sees what it
        sees in training. Per class, whole groups only; empty when no class has a whole group."""
        if self._memory_batch is None:
            g = (self.cfg.model.mbstd_group or 1) if self.cfg.variant == "cgan" else 0
            groups = []
            if g and len(self.held):
                for c in self.cond[self.held].unique().tolist():
                    members = self.held[self.cond[self.held] == c]
                    groups += list(members[: len(members) // g * g].view(-1, g))
            self._memory_batch = (torch.stack(groups).T.flatten() if groups
                                  else torch.zeros(0, dtype=torch.long))
        return self._memory_batch

    @torch.no_grad()
    def critic_scores(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The critic's scores (B,) of images x (B, 3, R, R) in [-1, 1] with classes y, as one batch
        (its minibatch-std groups are those of the batch), in eval mode: its spectral normalisation
        does no power iteration here, so a measurement leaves training as it would have gone."""
        was_training = self.D.training
        self.D.eval()
        try:
            with self.autocast():
                return self.D(x.to(self.device, memory_format=self.mem), y.to(self.device)).float().flatten()
        finally:
            self.D.train(was_training)

    @torch.no_grad()
    def critic_memory(self, gen: torch.Generator | None = None, across: bool = True) -> float:
        """How far the critic has learnt its training images by heart: over pairs of one training
        and one held-back image of the same class, the share in which it scores the training image
        higher (ties count half). 0.5: it scores images it never saw as it scores those it trains
        on; 1: it tells them apart every time. ADA's validation heuristic r_v measures the same
        thing on the critic's raw scores; a share needs no scale. Each held-back image stands beside
        a training image of its class drawn afresh, in the same place of a batch of the same layout;
        both batches are scored unaugmented (critic_scores). The training images are drawn with
        `gen`, else with the run's own random stream; `across`: averaged over processes (all of
        them must call it then)."""
        held = self.memory_batch()
        y = self.cond[held]
        picks = torch.randint(1 << 30, (len(held),), generator=self.gen if gen is None else gen).tolist()
        train = torch.stack([self.by_cond[c][r % len(self.by_cond[c])] for c, r in zip(y.tolist(), picks)])
        s_train, s_held = (self.critic_scores(to_float(self.images[i]), y) for i in (train, held))
        same = (y[:, None] == y[None, :]).to(self.device)
        wins = (s_train[:, None] > s_held[None, :]).float() + 0.5 * (s_train[:, None] == s_held[None, :]).float()
        share = ((wins * same).sum() / same.sum()).item()
        if across and self.share.world > 1:
            share = parallel.mean_over_processes({"m": share}, self.device)["m"]
        return share

    @torch.no_grad()
    def recalibrate_bn(self, batches: int | None = None) -> None:
        """Give the averaged generator BatchNorm statistics of its own: averaged weights make
        activations whose mean and spread differ from the raw generator's, whose running statistics
        would otherwise be used. Batches of fresh noise in training mode (the training batch size),
        cumulative average, from a fixed seed (the training random stream is not touched).

        The statistics are estimates, and a poor estimate shifts every picture of the model: with a
        few batches of classes drawn at random, one class's look (its share of each mode, its
        colours) moved from one recalibration of the same weights to the next by as much as training
        changes it. So conditional models use 32 batches whose classes keep the training frequencies
        exactly (each pair of batches as nearly as its size allows, all of them together exactly) and
        whose noise comes in antithetic pairs (a pair's second batch draws -z for the same classes),
        which cancels much of the noise's own scatter. Textures average over whole canvases and keep
        4 batches of plain noise."""
        if not batchnorms(self.G_ema) or self._bn_step == self.step:  # already done for these weights
            return
        self._bn_step = self.step
        cgan = self.cfg.variant == "cgan"
        batches = batches or (32 if cgan else 4)
        b = self.cfg.train.batch
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 3)
        with fresh_batchnorm_statistics(self.G_ema):
            if not cgan:
                for _ in range(batches):
                    self._ema_forward(b, gen)
                return
            for i, y in enumerate(self.stratified_classes((batches + 1) // 2, b, gen)):
                z = torch.randn(b, self.cfg.model.nz, generator=gen)
                self._ema_forward(b, gen, y, z)
                if 2 * i + 1 < batches:  # the pair's second batch: the same classes, the noise mirrored
                    self._ema_forward(b, gen, y, -z)

    def stratified_classes(self, batches: int, b: int, gen: torch.Generator) -> list[torch.Tensor]:
        """`batches` batches of b class labels at the training images' class frequencies: the
        batches * b labels hold each class in proportion (largest remainders), and dealing them out
        in turn from class order gives each batch its share within one label; rows shuffled."""
        counts = torch.bincount(self.labels[self.train_idx], minlength=len(self.by_class)).double()
        want = counts / counts.sum() * batches * b
        n = want.floor().long()
        n[torch.argsort(n - want)[: batches * b - int(n.sum())]] += 1  # largest remainders first
        order = torch.repeat_interleave(torch.arange(len(n)), n)
        return [order[i::batches][torch.randperm(b, generator=gen)] for i in range(batches)]

    def _ema_forward(self, b: int, gen: torch.Generator, y: torch.Tensor | None = None,
                     z: torch.Tensor | None = None) -> torch.Tensor:
        """Images of the averaged generator from noise drawn with `gen` (classes y, or drawn too;
        noise z, or drawn)."""
        if self.cfg.variant == "cgan":
            if y is None:
                y = self.labels[self.train_idx[torch.randint(len(self.train_idx), (b,), generator=gen)]]
            if z is None:
                z = torch.randn(b, self.cfg.model.nz, generator=gen)
            with self.autocast():
                return self.G_ema(z.to(self.device), y.to(self.device)).float()
        # Textures: canvases as in training, the margin included (BatchNorm statistics of the same
        # kind), and the window the critic sees: a model trained with a margin never learned to draw
        # the border, which a tileable texture does not have.
        t, scale = self.cfg.train, self.cfg.model.scale
        m, n = self.texture_canvas()
        noise = self.G_ema.make_noise(b, n, n, gen).to(self.device)
        with self.autocast():
            out = self.G_ema(noise).float()
        return out[..., m * scale:m * scale + t.patch, m * scale:m * scale + t.patch]

    @torch.no_grad()
    def quality(self) -> dict:
        """The quality gauge: SWD (x1000) of averaged-generator samples against the held-back real
        images, the real-vs-real floor, and the grid-artifact measure against the same images.
        Textures compare patches of the training size with random patches of the photos."""
        if not hasattr(self, "_q_real"):
            self._q_real, self._q_labels, self._q_floor = self._quality_reference()
        self.recalibrate_bn()
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 4)
        chunks = self._q_real.split(32)
        labels = [None] * len(chunks) if self._q_labels is None else self._q_labels.split(32)
        fake = torch.cat([self._ema_forward(len(c), gen, y) for c, y in zip(chunks, labels)]).cpu()
        gains = getattr(self.G_ema, "spectral_gain", None)  # the latest fit (at most a checkpoint's steps old)
        raw = None
        if gains is not None and self._q_labels is not None:  # as the pictures are shown and exported
            raw, fake = fake, spectrum.equalise(fake, gains[self._q_labels])
        g = grid_artifacts(fake, self._q_real)
        out = {"step": self.step, "swd": round(image_swd(fake, self._q_real), 2),
               "grid": round(g["mean"], 3), "grid_max": round(g["max"], 3), "used_s": round(self.wall, 1)}
        if raw is not None:  # what the generator draws before the equaliser
            g = grid_artifacts(raw, self._q_real)
            out.update(grid_raw=round(g["mean"], 3), grid_max_raw=round(g["max"], 3))
        if self._q_floor is not None:
            out["swd_floor"] = round(self._q_floor, 2)
        if len(self.memory_batch()):  # (conditional models) its own draw: training's stream stays as it was
            # (the gauge runs in the lead process alone: nothing to average over processes)
            gen = torch.Generator().manual_seed(self.cfg.train.seed + 6)
            out["critic_memory"] = round(self.critic_memory(gen, across=False), 3)
        return out

    def _quality_reference(self):
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 5)
        if self.cfg.variant == "sgan":
            n, size = 32, self.cfg.train.patch
            real = sample_patches(self.textures, n, size, gen, False)[0]
            other = sample_patches(self.textures, n, size, gen, False)[0]
            return real.float(), None, image_swd(other.float(), real.float())
        if len(self.held):  # class-matched draw of training images: real vs real
            real, labels = to_float(self.images[self.held]), self.labels[self.held]
            pick = torch.cat([self.by_class[c][torch.randperm(len(self.by_class[c]), generator=gen)][:int((labels == c).sum())]
                              for c in range(self.cfg.model.n_classes)])
            order = torch.argsort(labels, stable=True)
            return real[order], labels[order], image_swd(to_float(self.images[pick]), real[order])
        idx = self.train_idx[torch.randperm(len(self.train_idx), generator=gen)[:64]]
        return to_float(self.images[idx]), self.labels[idx], None

    def keep_best(self, reading: dict) -> bool:
        """After a gauge reading of the averaged generator: if it is the run's closest to the
        held-back images so far (resumed runs included), write those weights to RUN/best, so a run
        that drifts away later (a critic overfitting a small set) still leaves its best model.
        Readings of the untrained generator (step 0) and without a real-vs-real floor (every image
        trained on) do not count. True when it wrote."""
        if not self.share.lead or reading["step"] == 0 or "swd_floor" not in reading:
            return False
        best = ckpt.read_best(self.run_dir)
        if best is not None and float(best["swd"]) <= reading["swd"]:
            return False
        ckpt.save_best(self.run_dir, self.cfg, self.G_ema, reading, self.spectrum_gains(final=True))
        return True

    @torch.no_grad()
    def spectrum_gains(self, final: bool = False) -> torch.Tensor | None:
        """Fit the averaged generator's spectral equaliser (gan_core.spectrum) to the training images,
        attach it to G_ema (so the run's sample sheets show it) and return the gains (classes, 3, R,
        R); once per step (sample sheet, checkpoint and RUN/best share a fit). Conditional runs only.
        About 0.06 s per class on 2 cores in bf16 (1% of a run); with the checkpoints, not every step.
        `final`: for a model that is kept (the run's last checkpoint, RUN/best), from
        spectrum.FINAL_TIMES as many images; a final fit also serves later requests at its step."""
        if self.cfg.variant != "cgan":
            return None
        if self._has_fit(final):
            return self.G_ema.spectral_gain
        self.recalibrate_bn()
        if self._real_power is None:
            self._real_power = spectrum.class_powers(self.images, self.by_class, self.cfg.train.mirror,
                                                     torch.Generator().manual_seed(self.cfg.train.seed + 6))
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 7)

        n = spectrum.fit_count(self.cfg.model.n_classes, final)

        def draw(c: int) -> torch.Tensor:
            y = torch.full((n,), c, dtype=torch.long)
            return torch.cat([self._ema_forward(len(part), gen, part).cpu() for part in y.split(48)])

        self.G_ema.spectral_gain = spectrum.fit_classes(draw, self._real_power, spectrum.coarse_reach(self.kimg()))
        self._gains_step, self._gains_final = self.step, final
        return self.G_ema.spectral_gain

    def _has_fit(self, final: bool) -> bool:
        """Whether G_ema's gains were fitted at this step (from the larger fit, when `final`)."""
        return self._gains_step == self.step and (self._gains_final or not final)

    def fit_final(self) -> bool:
        """Before a run's last gauge reading and checkpoint (lead process, conditional runs): the
        equaliser from the larger final fit, which the reading, RUN/best and the checkpoint then
        share. True when it fitted (False: a texture run, another process, or already done)."""
        if not self.share.lead or self._has_fit(final=True):
            return False
        return self.spectrum_gains(final=True) is not None

    def update_ema(self) -> None:
        average_into(self.G_ema, self.G, self.ema_decay())

    # ---- outputs ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"step": self.step, "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": self.gen.get_state(), "torch_rng": torch.get_rng_state(), "elapsed": self.elapsed,
                "history": self.history, "rollbacks": self.rollbacks, "wall": self.wall, "aug_p": self.aug_p,
                **({"mirror_bias": self.mirror_bias} if self.mirror_bias is not None else {}),
                **({"class_credit": self.class_credit} if self.class_credit is not None else {})}

    def load(self, path: Path) -> None:
        self._bn_step = self._gains_step = None  # the loaded buffers are the checkpoint's
        st = ckpt.load_training_state(path, self.G, self.G_ema, self.D)
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        self.gen.set_state(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        self.step, self.elapsed = int(st["step"]), float(st["elapsed"])
        self.history, self.rollbacks = list(st["history"]), int(st.get("rollbacks", 0))
        self.wall = float(st.get("wall", self.elapsed))
        self.aug_p = float(st.get("aug_p", self.aug_p))
        bias = st.get("mirror_bias")
        self.mirror_bias = None if bias is None else bias.to(self.device)
        credit = st.get("class_credit")
        self.class_credit = None if credit is None else credit.cpu()

    def finite(self) -> bool:
        return all(torch.isfinite(p).all() for m in (self.G, self.D, self.G_ema) for p in m.parameters())

    def save(self) -> Path:
        if not self.finite():
            raise TrainingError("The weights hold NaN or infinite values; no checkpoint was written.")
        self.recalibrate_bn()
        if not self.share.lead:  # the lead process writes it; the others hold the same state
            return ckpt.checkpoint_path(self.run_dir, self.step)
        path = ckpt.save_checkpoint(self.run_dir, self.cfg, self.G, self.G_ema, self.D, self.state(),
                                    keep=self.cfg.train.keep_checkpoints, spectral_gain=self.spectrum_gains())
        self.plot()
        return path

    def plot(self, final: bool = False) -> None:
        """Redraw loss_plot.png if there are new records: at most every PLOT_EVERY_S seconds
        (drawing takes about 0.2 s), and at the end of a run whatever the time."""
        if not self.share.lead or not self.history or (self._plotted and self._plotted[1] == len(self.history)):
            return
        now = _plot_clock()
        if final or not self._plotted or now - self._plotted[0] >= PLOT_EVERY_S:
            plot_losses(self.history, self.run_dir / "loss_plot.png")
            self._plotted = (now, len(self.history))

    def sample(self) -> Path:
        out = self.run_dir / "samples"
        path = out / f"step_{self.step:08d}.png"
        if not self.share.lead:
            return path
        out.mkdir(exist_ok=True)
        self.recalibrate_bn()
        if self.step % self.cfg.train.ckpt_every == 0 or getattr(self.G_ema, "spectral_gain", None) is None:
            self.spectrum_gains()  # the checkpoint of this step fits it anyway
        img = sample_image(self.G_ema, self.cfg)
        save_png(path, img, {"step": str(self.step)})
        save_png(out / "latest.png", img, {"step": str(self.step)})
        return path


@torch.no_grad()
def average_into(avg: nn.Module, src: nn.Module, beta: float) -> None:
    """One step of an exponential moving average: avg's weights move 1 - beta of the way to src's;
    buffers (BatchNorm statistics) are copied."""
    for pe, p in zip(avg.parameters(), src.parameters()):
        pe.lerp_(p, 1 - beta)
    for be, b in zip(avg.buffers(), src.buffers()):
        be.copy_(b)


HELD_MIN_IMAGES = 100  # smaller datasets hold nothing back: every image is needed for training
HELD_MAX = 64


def batchnorms(model: nn.Module) -> list[nn.Module]:
    """The model's BatchNorm layers."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def fresh_batchnorm_statistics(model: nn.Module):
    """Inside: `model` in training mode, its BatchNorm running statistics reset to a cumulative
    average of the batches that pass through (momentum None). After: eval mode, momenta restored."""
    bns = batchnorms(model)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with torch.no_grad():
            yield
    finally:
        model.eval()
        for m, mom in zip(bns, saved):
            m.momentum = mom


def held_back_split(labels: torch.Tensor, seed: int, enabled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-back, training) image indices. From datasets of HELD_MIN_IMAGES or more, about 1 in 12
    images (at most HELD_MAX, spread over the classes in proportion, at least one per class) is kept
    out of training, so the quality gauge compares samples with images the critic never saw. The
    choice depends only on the labels and the seed, so a resumed run holds back the same images."""
    n = len(labels)
    everything = torch.arange(n)
    if not enabled or n < HELD_MIN_IMAGES:
        return torch.zeros(0, dtype=torch.long), everything
    g = torch.Generator().manual_seed(seed + 2)
    k = min(HELD_MAX, n // 12)
    held = []
    for c in labels.unique().tolist():
        members = torch.nonzero(labels == c).flatten()
        take = max(1, round(k * len(members) / n))
        if len(members) > take + 1:
            held.append(members[torch.randperm(len(members), generator=g)[:take]])
    held = torch.cat(held).sort().values if held else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(n, dtype=torch.bool)
    keep[held] = False
    return held, everything[keep]


def mode_seeking(fake: torch.Tensor, latent: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
    """Mode-seeking term (Mao et al. 2019, MSGAN): for pairs of images made from the same condition
    and different latents, the inverse of (image distance / latent distance). It is large when the
    generator maps different latents to the same image, the collapse a conditional generator falls
    into within a class, and fades once the images differ as much as their latents do. Pairs are
    rows (i, i + B/2) (an odd last row is left out); with `cond` (the condition of each row) only
    the pairs of one condition count (the relativistic loss takes its conditions from the real
    batch, which are not paired), and with none such the term is 0."""
    h = fake.shape[0] // 2
    d_img = (fake[:h] - fake[h:2 * h]).abs().flatten(1).mean(1)
    d_lat = (latent[:h] - latent[h:2 * h]).abs().mean(1)
    inv = 1.0 / (d_img / d_lat + 1e-5)
    if cond is None:
        return inv.mean()
    same = (cond[:h] == cond[h:2 * h]).to(inv.dtype)
    return (inv * same).sum() / same.sum().clamp_min(1)


def sample_image(G: nn.Module, cfg: RunConfig, n: int = 8, seed: int = 0) -> "object":
    """The run's fixed-noise preview: one row per class, or one tileable 256 px canvas per source texture."""
    G.eval()
    if cfg.variant == "cgan":
        return class_grid(G, cfg.model.class_names, n, seed)
    from .texture import generate_texture
    tiles = [torch.from_numpy(generate_texture(G, 256, 256, seed=seed, source=i if cfg.model.n_sources > 1 else None,
                                               style_seed=seed, tileable=True)).permute(2, 0, 1).float() / 127.5 - 1
             for i in range(cfg.model.n_sources)]
    return grid(torch.stack(tiles), len(tiles))


def plot_losses(history: list[dict], path: Path) -> None:
    """Write the loss curves (critic, generator, Wasserstein estimate) as a PNG."""
    if not history:
        return
    from matplotlib.figure import Figure  # no pyplot: a notebook's plotting backend is left alone

    steps = [h["step"] for h in history]
    fig = Figure(figsize=(7, 3.5), dpi=100)
    ax = fig.subplots()
    for key, label in (("d_loss", "critic loss"), ("g_loss", "generator loss"), ("w_dist", "real - fake score")):
        ax.plot(steps, [h[key] for h in history], label=label, linewidth=1)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))


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


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold the run folder for this process (the lead one under torchrun): a second training or
    resume of the same folder is refused, naming who holds it, instead of both writing into it.
    The lock is the kernel's (flock), so it ends with the process, however that ends."""
    if fcntl is None or not parallel.current_share().lead:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    f = open(run_dir / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another training"
            raise TrainingError(f"{run_dir} is being trained right now ({who}). Wait until that run ends or "
                                "stop it; then resume this folder.") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.flush()
        yield
    finally:
        f.close()  # closing the file releases the lock


def train(cfg: RunConfig, run_dir: str | os.PathLike, *, on_progress: Callable[[Progress], None] | None = None,
          should_stop: Callable[[], bool] | None = None, device: str | None = None) -> TrainResult:
    """Start a new run in `run_dir` (which must not hold one already)."""
    cfg.validate(require_names=False)
    run_dir = Path(run_dir).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a file; give a folder for the run.")
    with run_lock(run_dir):
        return _train(cfg, run_dir, on_progress, should_stop, device)


def _train(cfg, run_dir, on_progress, should_stop, device) -> TrainResult:
    if ckpt.checkpoint_dirs(run_dir):
        raise CheckpointError(f"{run_dir} already holds a run. Resume it, or choose another folder.")
    loop = Trainer(cfg, run_dir, pick_device(device))
    cfg = loop.cfg  # with the names the data gave
    cfg.validate()
    if loop.share.lead:
        ckpt.write_json(run_dir / "config.json", cfg.to_dict())
        (run_dir / "stats.jsonl").unlink(missing_ok=True)
        (run_dir / "quality.jsonl").unlink(missing_ok=True)
        shutil.rmtree(run_dir / ckpt.BEST_SUBDIR, ignore_errors=True)  # from an earlier run in this folder
        if loop.skipped:
            ckpt.write_json(run_dir / "skipped.json", [list(s) for s in loop.skipped])
    return _run(loop, on_progress, should_stop)


def resume(run_dir: str | os.PathLike, *, steps: int | None = None, minutes: float | None = None,
           on_progress: Callable[[Progress], None] | None = None,
           should_stop: Callable[[], bool] | None = None, device: str | None = None) -> TrainResult:
    """Continue a run from its newest complete checkpoint; `steps` sets a new total, `minutes` adds
    that much training time to what the run has used (without `steps`, the step limit is lifted)."""
    run_dir = Path(run_dir).expanduser()
    if not ckpt.checkpoint_dirs(run_dir):
        return _resume(run_dir, steps, minutes, on_progress, should_stop, device)  # says why not
    with run_lock(run_dir):
        return _resume(run_dir, steps, minutes, on_progress, should_stop, device)


def _resume(run_dir, steps, minutes, on_progress, should_stop, device) -> TrainResult:
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
            loop = Trainer(cfg, run_dir, pick_device(device))
            try:
                loop.load(path)
            except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:  # e.g. optimizer groups
                raise CheckpointError(f"{path.name}: its training state does not fit the model ({e})") from None
            cfg = loop.cfg
            if minutes is not None:
                cfg.train.minutes = round(loop.wall / 60 + minutes, 4)
                if steps is None:
                    cfg.train.steps = NO_STEP_LIMIT
                cfg.validate()
            if loop.step >= cfg.train.steps:
                raise ConfigError(f"The run is at step {loop.step} already; give a total above that (or add time).")
            break
        except CheckpointError as e:
            last_error = e
    else:
        raise CheckpointError(f"No checkpoint in {run_dir} could be loaded: {last_error}")
    if loop.share.lead:
        _truncate_stats(run_dir / "stats.jsonl", loop.step)
        _truncate_stats(run_dir / "quality.jsonl", loop.step)
        ckpt.write_json(run_dir / "config.json", cfg.to_dict())
    return _run(loop, on_progress, should_stop, start=path)


def _run(loop: Trainer, on_progress, should_stop, start: Path | None = None) -> TrainResult:
    """The loop itself; `start` is the checkpoint a resumed run was loaded from."""
    t = loop.cfg.train
    budget = t.minutes * 60
    lead_emit = (on_progress if loop.share.lead else None) or (lambda p: None)

    def emit(event, **kw):
        lead_emit(Progress(event, loop.step, t.steps, budget_s=budget, used_s=loop.wall, **kw))

    stop = should_stop or (lambda: False)
    emit("data", message=loop.summary)
    stats_path, quality_path = loop.run_dir / "stats.jsonl", loop.run_dir / "quality.jsonl"
    window: list[dict] = []
    imgs0, step0 = 0, loop.step

    def clock() -> None:  # the budget counts the loop from the first step: steps, samples, checkpoints, gauge
        nonlocal mark
        now = time.perf_counter()
        loop.wall += now - mark
        mark = now

    last_read = -1  # the step of the gauge's last reading: a step is read once

    def gauge() -> None:
        nonlocal last_read
        if t.quality_every and loop.share.lead and last_read != loop.step:
            last_read = loop.step
            rec = loop.quality()
            with open(quality_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            loop.keep_best(rec)
            emit("quality", record=rec)

    if start is None and t.quality_every:
        gauge()  # the untrained generator: where the gauge starts
    last_ckpt = start or loop.save()  # a new run saves step 0, a state to roll back to
    # That reading and checkpoint are the run's setup, as loading the data and building the models
    # are: the budget's clock starts at the first step. (On a 2-core AVX2-only CPU they take about 8 s,
    # an eighth of a 1-minute budget, mostly the averaged generator's 32 batches of BatchNorm statistics.)
    mark = t0 = time.perf_counter()
    stopped = timed_out = False
    while loop.step < t.steps:
        clock()
        if parallel.any_process(stop(), loop.device):  # all processes stop after the same step
            stopped = True
            break
        if budget and parallel.any_process(loop.wall >= budget, loop.device):
            timed_out = True
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
            rollbacks, gen_state, wall = loop.rollbacks, loop.gen.get_state(), loop.wall
            loop.load(last_ckpt)
            loop.rollbacks, loop.wall = rollbacks, wall  # time spent stays spent
            loop.gen.set_state(gen_state)  # go on with fresh random draws, not the same ones
            _truncate_stats(stats_path, loop.step)  # the steps after the checkpoint are redone
            _truncate_stats(quality_path, loop.step)
            window.clear()
            emit("rollback", message=f"NaN or infinite loss or weights; rolled back to step {loop.step} "
                                     f"(rollback {rollbacks} of at most {MAX_ROLLBACKS})")
            continue
        loop.update_ada(rec)
        window.append(rec)
        done_imgs = (loop.step - step0) * t.batch * t.n_critic
        if loop.step % t.log_every == 0 or loop.step == t.steps:
            clock()
            wall = time.perf_counter() - t0
            speed = (done_imgs - imgs0) / max(wall, 1e-9)
            record = {k: sum(r[k] for r in window) / len(window) for k in window[0] if k != "real_sign"}
            eta = (t.steps - loop.step) * t.batch * t.n_critic / max(speed, 1e-9)
            if budget:
                eta = min(eta, max(0.0, budget - loop.wall))
            record.update(step=loop.step, img_per_s=round(speed, 2), elapsed=round(loop.elapsed, 2),
                          kimg=round(loop.kimg(), 3), eta_s=round(eta, 1),
                          used_s=round(loop.wall, 1))
            if t.augment and t.ada_target:
                record["aug_p"] = round(loop.aug_p, 4)
            if loop.memory is not None:
                record["critic_memory"] = round(loop.memory, 4)
            loop.history.append(record)
            if loop.share.lead:
                with open(stats_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            window.clear()
            t0, imgs0 = time.perf_counter(), done_imgs
            emit("log", record=record)
        if t.quality_every and loop.step % t.quality_every == 0 and loop.step != t.steps:
            gauge()
        if loop.step == t.steps:
            loop.fit_final()  # the last sample sheet, reading and checkpoint share it
        if loop.step % t.sample_every == 0 or loop.step == t.steps:
            emit("sample", path=str(loop.sample()))
        if due:
            if loop.step == t.steps:
                gauge()
            last_ckpt = loop.save()
            emit("checkpoint", path=str(last_ckpt))
    if (stopped or timed_out) and int(last_ckpt.name[5:]) != loop.step:
        loop.fit_final()
        if timed_out:
            gauge()
        clock()
        last_ckpt = loop.save()
        loop.sample()
        emit("checkpoint", path=str(last_ckpt))
    elif stopped or timed_out:  # the time ran out (or a stop came) right after a checkpoint
        if loop.fit_final():  # the checkpoint of this step holds a smaller fit
            ckpt.write_spectrum(last_ckpt, loop.G_ema.spectral_gain)
            loop.sample()
        if timed_out:  # the run's last reading is of its last step, as when it ends between checkpoints
            gauge()
    loop.plot(final=True)
    clock()
    emit("done", message="stopped" if stopped else ("time is up" if timed_out else "finished"))
    return TrainResult(loop.run_dir, loop.step, stopped, last_ckpt)
