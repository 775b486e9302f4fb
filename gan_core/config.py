"""Configuration dataclasses for models and training runs, saved as JSON beside the weights.

A model is rebuilt from its config alone (`RunConfig.from_json` -> `nets.build_generator`).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .errors import ConfigError

VARIANTS = ("cgan", "sgan")
LOSSES = ("wgan-gp", "hinge", "rpgan")
RESOLUTIONS = (32, 64, 128)
AUGMENTS = ("color", "translation", "cutout")
PRECISIONS = ("auto", "fp32", "bf16")
ADA_SIGNALS = ("rank", "heldout")
NO_STEP_LIMIT = 10**8  # the step total of a run trained for a time budget alone

# Named sets of settings. Each recipe names its training settings ("train", on top of TrainConfig's
# defaults, which are the reference's) and its model family ("model", on top of the model config's
# defaults). "studio" is the default of the CLI and the studio: a resize-convolution generator, one
# critic step, the relativistic pairing loss with lazy R1 + R2, Adam 1e-4 and adaptive DiffAugment drawn
# per minibatch-std group (conditional models), the hinge loss, Adam 2e-4 and the mode-seeking term
# (textures), an EMA
# measured in images and a learning rate that falls to zero over the second half of the run (and, for
# the conditional models, one generated batch per step for both updates: 14% faster); chosen by
# bench/time_to_quality.py and bench/texture_quality.py on a 2-core CPU
# (README, "What to expect"). "reference": the reference system
# (transposed convolutions, WGAN-GP lambda 5, Adam 1e-4, betas (0.1, 0.9)). "fast": the reference
# networks with hinge loss, one critic step, Adam 2e-4 (0, 0.99) and the mode-seeking term.
LEGACY_MODEL = {"cgan": {"arch": "dcgan"}, "sgan": {"upsample": "transposed"}}

# A short time budget's schedule (TrainConfig.lr_boost 0, as the studio recipe's conditional models have
# it): a budget of at most SHORT_BUDGET minutes starts both learning rates at SHORT_BOOST times the base
# (for lr_boost_kimg thousand images, then back, as --lr-boost does) and lets them fall to zero over the
# last SHORT_DECAY of the budget instead of its last lr_decay; a budget of LONG_BUDGET minutes or more,
# or a run without one, keeps lr_decay and no boost; budgets between take the two in proportion.
# Chosen by 1- and 2-minute budgets in bench/time_to_quality.py (bench/RESULTS.md): the boost brought
# 1-minute runs far closer, a 2-minute run no closer than without it (nor a 10-minute run).
# A short budget's new model also starts the gains of its coarse noise maps at SHORT_NOISE (the studio
# recipe's conditional models have CGANConfig.noise_start None, "by the budget"; budgets between in
# proportion, none from LONG_BUDGET on): the seed then has a say in a picture's layout from the first
# step, where a young generator otherwise draws one picture per class. Chosen by 1-minute budgets in
# bench/time_to_quality.py: with 0.2, six runs of eight came as close as the further of the reference
# recipe's first two 10-minute runs of each dataset, against four of eighteen from zero; 0.4 was closer
# on the demo classes and further on the photo set. Against the reference recipe's 10-minute runs,
# 1-minute runs with 0.2 are level on the demo classes and behind on the photo set (the running tally:
# README, "What to expect"; each run: bench/RESULTS.md).
# At 10 minutes (an earlier model, fp32) a start of 0.2 drew a finer grid and seeds no more varied,
# so longer budgets keep zero.
SHORT_BUDGET, LONG_BUDGET = 1.0, 2.0
# The schedule fits the images a budget will see rather than its minutes alone: those budgets were
# chosen on a CPU with AVX512-BF16, where a minute is 10-12 thousand images; an AVX2-only CPU (fp32)
# sees 2-3.5 thousand in a minute and 4.5-5.5 thousand in two, where a 2-minute budget without the short
# schedule came out no closer than a 1-minute one with it, and with it closer in three pairings of four
# (bench/RESULTS.md). So a run whose pace (measured over its first steps, Trainer.expected_kimg) will
# see at most SHORT_KIMG thousand images within its budget takes the whole short schedule, from
# LONG_KIMG thousand none, in between in proportion; the larger of this and the minutes' share holds.
# The noise maps' start is set before the first step, so it follows the minutes alone.
SHORT_KIMG, LONG_KIMG = 8.0, 16.0
SHORT_BOOST, SHORT_DECAY, SHORT_NOISE = 3.0, 0.25, 0.2
# The critic's width (CGANConfig.d_channels, the first stage's; every later stage doubles it). The studio
# recipe's conditional models have None, "by the budget": a new run whose budget will see at most SHORT_KIMG
# thousand images at this machine's pace with the full-width critic (Trainer.probe_kimg, before the first
# step) trains a critic of SHORT_CRITIC channels, which costs a quarter of the full critic's work per image;
# any other run keeps CRITIC_WIDTH. Chosen by 1- and 2-minute budgets on a 2-core AVX2-only CPU (fp32,
# bench/time_to_quality.py): 40-70% more steps, and the seeds of a class more varied (on the photo set,
# different pictures where the full critic's drew one); at 1 minute the photo set 1.50x, 1.44x and 1.48x the
# real-vs-real distance against 2.06x, 2.36x and 2.56x (the reference recipe's 10 minutes there 1.62x), the
# demo classes 2.86x, 2.71x, 2.07x and 2.72x against 2.58x, 2.43x, 3.17x and 2.69x (reference 2.97x); at 2
# minutes the photo set 1.14x against 1.63x, the demo classes 2.62x against 1.88x pooled but closer on three
# classes of five, where the full critic drew a diagonal hatching. Over 10 fp32 minutes the half-width
# critic was further (brick 5.34x), so longer budgets keep the full width; a 1-minute budget on a CPU with
# AVX512-BF16 sees 10-12 thousand images and keeps it.
CRITIC_WIDTH, SHORT_CRITIC = 16, 8
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "studio": {
        "train": {"loss": "rpgan", "n_critic": 1, "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.0, "beta2": 0.99,
                  "augment": ["translation", "color", "cutout"], "aug_groups": True, "ada_target": 0.6,
                  "ema_kimg": 10.0, "lr_decay": 0.5, "r1_gamma": 1.0, "reuse_batch": True},
        # Textures train on random patches of the photos: a new view every step, nothing to memorise,
        # so no augmentation; the mode-seeking term keeps them from stamping one pattern. (On the
        # conditional models it pushed images apart by brightness and, after 3 minutes, made the
        # distance to the real images grow again: 2x -> 5x the floor in 10 minutes.) The hinge loss:
        # on the brick photo the relativistic loss drew more of the joints but left a 4 px grid.
        # The mirror term (mirror_balance, conditional models): the generator drew every picture of a
        # class with its diagonal detail leaning one way (hatching, single grid frequencies up to 6.7x
        # the photos'), which a critic judging one picture at a time cannot see. At 0.3 over four
        # 10-minute bf16 runs every class within 2.5x of the real-vs-real distance (18 of 18), pooled
        # 0.96-1.86x; at 1.0 the photo set's space class came out further and less varied.
        "train_cgan": {"mirror_balance": 0.3, "lr_boost": 0.0},
        "train_sgan": {"loss": "hinge", "lr_g": 2e-4, "lr_d": 2e-4, "augment": [], "ada_target": 0.0,
                       "diversity": 0.2},
        # Texture models draw a noise cell beyond each side of what the critic sees (SGANConfig.margin):
        # zero padding let a model anchor the brick photo's mortar lines to the patch border, and its
        # tileable textures, which have no border, came out flat.
        # Skip-layer excitation (sle): over seven paired 10-minute runs it kept every class within 2.5x
        # of the real-vs-real distance in five, the generator without it in two, at the same mean distance.
        # Colour at half resolution (half_chroma): over four 10-minute fp32 runs its largest grid
        # frequencies were a third to a half of the full-resolution head's in three, and its worst class
        # closer in three, at a pooled distance within the runs' spread.
        # The colour gate (colour_gate): over four 10-minute bf16 runs every class within 2.5x of the
        # real-vs-real distance (18 of 18, the generator without it 17), its worst class's grid mean lower
        # in three, and the grey classes drawn grey, at a pooled distance 0.06-0.39x further.
        # Two convolutions in the first three upsampling stages (g_extra 3; 8, 16 and 32 px at 64 px):
        # over four paired 10-minute bf16 runs (three demo, one photo set) the worst class closer in all
        # four (1.80x against 2.12x, 2.75x against 3.26x, 2.12x against 2.59x, 1.69x against 1.88x) and
        # the pooled distance in three, at 4-10% fewer steps.
        "model": {"cgan": {"arch": "upconv", "upsample": "nearest", "noise_maps": True, "sle": True,
                           "half_chroma": True, "colour_gate": True, "g_extra": 3, "noise_start": None,
                           "d_channels": None},
                  "sgan": {"upsample": "nearest", "margin": 1}},
    },
    "reference": {"train": {}, "model": LEGACY_MODEL},
    "fast": {
        "train": {"loss": "hinge", "n_critic": 1, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.0, "beta2": 0.99,
                  "diversity": 0.2},
        "model": LEGACY_MODEL,
    },
}
DEFAULT_RECIPE = "studio"


def recipe_model(name: str, variant: str) -> dict[str, Any]:
    """The model settings a recipe implies for a variant (its network family)."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}.")
    return dict(RECIPES[name]["model"].get(variant, {}))


@dataclass
class CGANConfig:
    """Conditional generator/critic for square images at `resolution`."""

    resolution: int = 64
    nz: int = 100
    embed_dim: int = 50
    g_channels: int = 16  # width of the last generator stage; earlier stages double it (capped at 512)
    d_channels: int | None = CRITIC_WIDTH  # width of the first critic stage; later stages double it (capped at
    #                                      512); None: the time budget's (SHORT_CRITIC above), set when a run starts
    d_full_res: int = 0  # width of the critic's full-resolution layer alone (0: d_channels), e.g. 16 with d_channels 12
    d_spectral_norm: bool = True  # the critic's layers are spectrally normalised (the reference's critic)
    conditioning: str = "projection"  # or "concat": the embedding as extra input planes
    mbstd_group: int = 4  # critic sees feature spread within groups of this many images (0: off)
    mbstd_channels: int = 1  # that spread in this many planes, one per equal slice of the critic's features
    arch: str = "upconv"  # "upconv": x2 resize + 3x3 conv per stage; "dcgan": the reference's transposed convs
    upsample: str = "nearest"  # the resize of "upconv": "nearest" or "bilinear"
    rgb_notch: bool = False  # the last convolution passes nothing at the 2 px period (x, y, diagonal)
    cond_bn: bool = False  # the class sets each upsampling stage's BatchNorm gain and bias
    latent_bn: bool = False  # z sets each upsampling stage's BatchNorm gain and bias (with cond_bn: z and the class)
    noise_maps: bool = False  # each upsampling stage adds a per-pixel noise map made from z
    noise_last: bool = True  # with noise_maps: the last (full-resolution) stage gets one too
    noise_start: float | None = 0.0  # with noise_maps: the starting gain of the coarse stages' maps (all but the
    #                                  last two); None: the time budget's (TrainConfig.noise_start), set when a run starts
    noise_lr: float = 1.0  # with noise_maps: each gain is this times its parameter (an equalised learning rate:
    #                        Adam moves it this much faster; 1: the parameter is the gain)
    g_extra: int = 0  # the first this many upsampling stages (8 px, 16 px, ...) draw with a second 3x3 convolution
    sle: bool = False  # skip-layer excitation: each stage's features gate those two stages finer, per channel
    half_chroma: bool = False  # colour (beyond grey) drawn by the stage before the last, at half resolution
    colour_gate: bool = False  # with half_chroma: the class sets how much colour is drawn (0-2x), so grey classes can be grey
    skip_rgb: int = 0  # stages up to this size (px, below the resolution) also draw an image, resized up and added (0: off)
    g_padding: str = "zeros"  # the generator's convolutions pad their borders with "zeros" or "reflect"
    class_names: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def critic_widths(self) -> list[int]:
        """The critic's channel widths, from its full-resolution layer to its 4x4 stage: d_channels
        doubling per stage (capped at 512). The full-resolution layer may be wider (d_full_res): it
        is the layer that sees pixel-scale patterns, and with three input channels a small share of
        the critic's work."""
        stages = int(math.log2(self.resolution)) - 2
        base = CRITIC_WIDTH if self.d_channels is None else self.d_channels  # None builds the full width
        ch = [min(base * 2 ** i, 512) for i in range(stages + 1)]
        ch[0] = self.d_full_res or ch[0]
        return ch

    def validate(self) -> None:
        if self.resolution not in RESOLUTIONS:
            raise ConfigError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}.")
        if self.arch not in ("upconv", "dcgan"):
            raise ConfigError(f"arch must be 'upconv' or 'dcgan', got {self.arch!r}.")
        if self.upsample not in ("bilinear", "nearest"):
            raise ConfigError(f"upsample must be 'bilinear' or 'nearest', got {self.upsample!r}.")
        if self.conditioning not in ("projection", "concat"):
            raise ConfigError("conditioning must be 'projection' or 'concat'.")
        if self.g_padding not in ("zeros", "reflect"):
            raise ConfigError(f"g_padding must be 'zeros' or 'reflect', got {self.g_padding!r}.")
        if self.skip_rgb and self.skip_rgb not in [2 ** k for k in range(3, int(math.log2(self.resolution)))]:
            raise ConfigError(f"skip_rgb must be 0 (off) or a stage's size below the resolution (8, 16, ... "
                              f"{self.resolution // 2}), got {self.skip_rgb}.")
        if self.colour_gate and not self.half_chroma:
            raise ConfigError("colour_gate needs half_chroma (the gate scales the half-resolution colour): "
                              "turn half_chroma on (--half-chroma) or the gate off (--no-colour-gate).")
        for name, lo, hi in (("nz", 1, 4096), ("embed_dim", 1, 4096), ("g_channels", 1, 1024), ("d_channels", 1, 1024),
                             ("d_full_res", 0, 1024), ("noise_start", 0, 10), ("noise_lr", 0.01, 100), ("g_extra", 0, 5)):  # d_full_res 0: as d_channels
            value = getattr(self, name)
            if value is None and name in ("noise_start", "d_channels"):  # by the budget
                continue
            if not (isinstance(value, (int, float)) and lo <= value <= hi):  # also false for NaN
                raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}.")
        if not 0 <= self.mbstd_group <= 64:
            raise ConfigError(f"mbstd_group must be between 0 and 64, got {self.mbstd_group}.")
        width = self.critic_widths()[-1]
        if not (isinstance(self.mbstd_channels, int) and 1 <= self.mbstd_channels <= 16
                and width % self.mbstd_channels == 0):
            raise ConfigError(f"mbstd_channels must be between 1 and 16 and divide the critic's last width "
                              f"({width}), got {self.mbstd_channels}.")
        _check_names(self.class_names, "class_names")


@dataclass
class SGANConfig:
    """Fully convolutional texture generator/discriminator with a PSGAN spatial latent."""

    depth: int = 5  # stride-2 layers; output = noise size * 2**depth
    kernel: int = 5
    nz_local: int = 20
    nz_global: int = 40
    nz_periodic: int = 4
    source_dim: int = 8  # learned style code per source image (used when there are 2+ sources)
    g_channels: int = 32  # width of the last generator layer; earlier layers double it (capped)
    d_channels: int = 32
    max_channels: int = 256
    upsample: str = "nearest"  # x2 resize + convolution ("nearest" or "bilinear"), or "transposed" convs
    # Noise cells drawn beyond the border: in training the critic sees a window of the canvas half a
    # cell to 1.5 cells in from its zero-padded border, and a canvas that is not tileable is drawn this
    # much larger and cropped, so no output ever shows the border (0: the zero-padded border is drawn).
    margin: int = 0
    source_names: list[str] = field(default_factory=list)

    @property
    def n_sources(self) -> int:
        return max(1, len(self.source_names))

    @property
    def scale(self) -> int:
        return 2**self.depth

    def validate(self) -> None:
        if not 1 <= self.depth <= 7:
            raise ConfigError("depth must be between 1 and 7.")
        if self.upsample not in ("bilinear", "nearest", "transposed"):
            raise ConfigError(f"upsample must be 'bilinear', 'nearest' or 'transposed', got {self.upsample!r}.")
        if self.kernel not in (3, 5):
            raise ConfigError("kernel must be 3 or 5.")
        if isinstance(self.margin, bool) or not isinstance(self.margin, int) or not 0 <= self.margin <= 4:
            raise ConfigError(f"margin must be a whole number of noise cells from 0 to 4, got {self.margin!r}.")
        if self.nz_local < 1 or self.nz_global < 0 or self.nz_periodic < 0:
            raise ConfigError("noise channel counts must be positive (periodic and global may be 0).")
        for name, lo, hi in (("nz_local", 1, 1024), ("nz_global", 0, 1024), ("nz_periodic", 0, 256),
                             ("source_dim", 0, 1024), ("g_channels", 1, 1024), ("d_channels", 1, 1024),
                             ("max_channels", 1, 4096)):
            if not lo <= getattr(self, name) <= hi:
                raise ConfigError(f"{name} must be between {lo} and {hi}, got {getattr(self, name)}.")
        _check_names(self.source_names, "source_names")
        if self.nz_periodic and not self.nz_global:
            raise ConfigError("periodic noise needs global noise to derive its wave numbers from.")


@dataclass
class TrainConfig:
    steps: int = 2000  # generator steps
    batch: int = 32
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.1
    beta2: float = 0.9
    n_critic: int = 2  # critic updates per generator update
    loss: str = "wgan-gp"
    gp_lambda: float = 5.0
    ema_beta: float = 0.999  # EMA decay per step, used when ema_kimg is 0
    ema_kimg: float = 0.0  # EMA half-life in thousands of images (StyleGAN2-ADA); 0: use ema_beta
    ema_rampup: float = 0.05  # the half-life is at most this fraction of the images seen so far
    ada_target: float = 0.0  # adaptive augmentation: target of the critic's overfitting signal; 0: augment every image
    ada_signal: str = "rank"  # that signal: "rank", E[sign] of the critic's verdicts on the training batch
    #                           (ADA's r_t); "heldout", the share of (training, held-back) image pairs of a class
    #                           in which the critic scores the training image higher (0.5: no memory of them)
    ada_every: int = 4  # steps between measurements of the held-back signal
    ada_kimg: float = 100.0  # thousands of images for the augmentation probability to go from 0 to 1
    lr_decay: float = 0.0  # last fraction of the run (of its time budget, else its steps) in which both
    #                        learning rates fall linearly to zero; 0: constant
    lr_boost: float = 1.0  # both learning rates start at this multiple of lr_g and lr_d ...
    lr_boost_kimg: float = 10.0  # ... for this many thousand images, then fall to them over as many again
    #                              (lr_boost 0: the multiple, and the decay, that the time budget calls for:
    #                              short_share() and SHORT_BUDGET above)
    r1_gamma: float = 0.1  # rpgan loss: weight of the zero-centred R1 and R2 penalties
    reg_every: int = 4  # rpgan loss: penalties every this many critic steps (lazy, scaled up to match)
    minutes: float = 0.0  # time budget: stop with a checkpoint after this much training time (0: steps only)
    quality_every: int = 250  # steps between quality checks (SWD to held-back images; 0: off)
    diversity: float = 0.0  # weight of the mode-seeking term against collapse within a class (0: off)
    mirror_balance: float = 0.0  # conditional models: weight of the generator's term against a lasting one-way
    #                              diagonal grain in a class (losses.mirror_asymmetry; 0: off)
    augment: list[str] = field(default_factory=list)
    grid_penalty: float = 0.0  # weight of the generator's penalty on power at the 2 px period above the real images'
    aug_groups: bool = False  # conditional models: the images of a minibatch-std group share their augmentation
    class_balance: bool = False  # conditional models: each batch's classes are dealt in turn (every class at its
    #                              share of the batch, give or take one group) instead of drawn at random
    submodes: int = 1  # conditional models: each class's images split into this many groups by how they look;
    #                    the critic is told the group, the generator's first latent value carries it (submodes.py)
    group_critic: bool = True  # with submodes: False leaves the critic's score to the class alone, so only the
    #                            pairing of each generated image with a real one of its group carries the group
    short_by_pace: bool = True  # lr_boost 0: the short schedule also follows the images the budget will see
    #                             at this machine's pace (SHORT_KIMG above), not its minutes alone
    reuse_batch: bool = False  # rpgan, one critic step: the generator step reuses the critic step's generated
    #                            batch and real scores instead of drawing and scoring them again
    seed: int = 0
    log_every: int = 10
    sample_every: int = 200
    ckpt_every: int = 200
    keep_checkpoints: int = 2
    precision: str = "auto"
    mirror: bool = True  # random flips of the real images (horizontal; textures also vertical)
    # texture (sgan) runs only
    wrap_train: bool = False  # the generator pads circularly while training: no patch border to draw from
    #                           (bench/RESULTS.md: brick no longer flat in tileable textures, but a 4 px grid)
    patch: int = 128
    max_side: int = 512

    def budget_share(self) -> float:
        """How short the time budget is: 1 for at most SHORT_BUDGET minutes, 0 from LONG_BUDGET minutes on
        and without a budget, in between in proportion."""
        if not self.minutes:
            return 0.0
        return min(1.0, max(0.0, (LONG_BUDGET - self.minutes) / (LONG_BUDGET - SHORT_BUDGET)))

    def short_share(self, kimg: float | None = None) -> float:
        """How much of the short budget's schedule this run takes, with lr_boost 0 only: budget_share(),
        or (short_by_pace, `kimg` the thousands of images the whole budget is expected to see at this
        machine's pace) the images' share if that is larger."""
        if self.lr_boost:
            return 0.0
        share = self.budget_share()
        if kimg is not None and self.short_by_pace and self.minutes:
            share = max(share, min(1.0, max(0.0, (LONG_KIMG - kimg) / (LONG_KIMG - SHORT_KIMG))))
        return share

    def critic_width(self, kimg: float | None) -> int:
        """The critic's width for a new model whose CGANConfig.d_channels is None: SHORT_CRITIC if the
        budget will see at most SHORT_KIMG thousand images (`kimg`, at this machine's pace with the
        full-width critic; None: no budget), else CRITIC_WIDTH."""
        return SHORT_CRITIC if self.minutes and kimg is not None and kimg <= SHORT_KIMG else CRITIC_WIDTH

    def noise_start(self) -> float:
        """The coarse noise maps' starting gain for a new model whose CGANConfig.noise_start is None."""
        return round(SHORT_NOISE * self.budget_share(), 4)

    def boost(self, kimg: float | None = None) -> float:
        """The multiple the learning rates start at: lr_boost, or (lr_boost 0) the budget's
        (short_share: `kimg` as there)."""
        return self.lr_boost or 1.0 + (SHORT_BOOST - 1.0) * self.short_share(kimg)

    def decay(self, kimg: float | None = None) -> float:
        """The last fraction of the run in which the learning rates fall to zero: lr_decay, or
        (lr_boost 0, a decay to begin with) the budget's (short_share: `kimg` as there)."""
        if not self.lr_decay:
            return 0.0
        return self.lr_decay + (SHORT_DECAY - self.lr_decay) * self.short_share(kimg)

    @property
    def heldout_signal(self) -> bool:
        """Whether the augmentation controller follows the critic's memory of its training images,
        which needs images held back from training (whether or not the quality gauge is on)."""
        return self.ada_signal == "heldout" and self.ada_target > 0 and bool(self.augment)

    @classmethod
    def recipe(cls, name: str, variant: str = "cgan", **overrides) -> "TrainConfig":
        """Defaults of a variant with a named recipe's settings (RECIPES) and then `overrides`."""
        if name not in RECIPES:
            raise ConfigError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}.")
        r = RECIPES[name]
        return cls.for_variant(variant, **{**r["train"], **r.get(f"train_{variant}", {}), **overrides})

    @classmethod
    def for_variant(cls, variant: str, **overrides) -> "TrainConfig":
        """Defaults per variant. Texture patches are large (128 px, 16 critic scores each), so a
        texture run uses small batches. (The hinge loss with one critic step is 2.5x faster per
        step, but on the brick photo its critic won outright within 100 steps and the generator
        made coloured pixel noise; WGAN-GP gave smooth, source-coloured output in the same time.)"""
        base = {"sgan": {"batch": 8}}.get(variant, {})
        return cls(**{**base, **overrides})

    def validate(self, variant: str) -> None:
        ints = ("steps", "batch", "n_critic", "log_every", "sample_every", "ckpt_every", "keep_checkpoints",
                "reg_every", "ada_every")
        for name in ints:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a whole number of at least 1, "
                                  f"got {getattr(self, name)!r}.")
        for name in ("lr_g", "lr_d"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be between 0 and 1.")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("Adam betas must be in [0, 1).")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}.")
        if self.diversity < 0:
            raise ConfigError("diversity must not be negative.")
        if not (math.isfinite(self.grid_penalty) and self.grid_penalty >= 0):
            raise ConfigError("grid-penalty must be a finite number of at least 0.")
        if self.gp_lambda < 0:
            raise ConfigError("gp-lambda must not be negative.")
        if not 0 <= self.ema_beta < 1:
            raise ConfigError("ema-beta must be in [0, 1).")
        for name in ("ema_kimg", "ema_rampup", "ada_kimg", "r1_gamma", "minutes", "mirror_balance", "lr_boost_kimg"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name.replace('_', '-')} must be a finite number of at least 0, got {v!r}.")
        if self.minutes > 100_000:
            raise ConfigError("minutes must be at most 100000.")
        if not (math.isfinite(self.lr_boost) and (1 <= self.lr_boost <= 10 or self.lr_boost == 0)):
            raise ConfigError(f"lr-boost must be a number from 1 to 10 (or 0: by the time budget), "
                              f"got {self.lr_boost!r}.")
        if not (math.isfinite(self.lr_decay) and 0 <= self.lr_decay <= 1):
            raise ConfigError("lr-decay must be between 0 and 1.")
        if not 0 <= self.ada_target < 1:
            raise ConfigError("ada-target must be in [0, 1) (0: fixed augmentation).")
        if self.ada_signal not in ADA_SIGNALS:
            raise ConfigError(f"ada-signal must be one of {', '.join(ADA_SIGNALS)}, got {self.ada_signal!r}.")
        if not (isinstance(self.submodes, int) and 1 <= self.submodes <= 8):
            raise ConfigError(f"submodes must be a whole number between 1 and 8, got {self.submodes!r}.")
        if not isinstance(self.group_critic, bool):
            raise ConfigError(f"group_critic must be true or false, got {self.group_critic!r}.")
        if variant == "sgan" and self.submodes != 1:
            raise ConfigError("submodes is for conditional models; a texture model's sources are its groups already.")
        if not isinstance(self.quality_every, int) or self.quality_every < 0:
            raise ConfigError("quality-every must be a whole number of at least 0.")
        bad = [a for a in self.augment if a not in AUGMENTS]
        if bad:
            raise ConfigError(f"unknown augmentation {bad[0]!r}; choose from {', '.join(AUGMENTS)}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}.")
        if self.batch > 4096 or self.steps > NO_STEP_LIMIT:
            raise ConfigError(f"batch must be at most 4096 and steps at most {NO_STEP_LIMIT}.")
        if variant == "sgan":
            if self.patch < 32 or self.patch > 512:
                raise ConfigError("patch must be between 32 and 512 pixels.")
            if not self.patch <= self.max_side <= 16384:
                raise ConfigError("max-side must be at least the patch size and at most 16384.")
            if self.batch * self.patch**2 > MAX_PATCH_PIXELS:
                most = max(1, MAX_PATCH_PIXELS // self.patch**2)
                raise ConfigError(f"A batch of {self.batch} patches of {self.patch} px needs far more memory than a "
                                  f"laptop has; use a batch of at most {most} at that patch size.")


@dataclass
class RunConfig:
    """Everything needed to rebuild a model and continue its training."""

    variant: str
    model: CGANConfig | SGANConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    data: list[str] = field(default_factory=list)  # dataset folder (cgan) or texture files (sgan)
    version: str = __version__

    def validate(self, require_names: bool = True) -> None:
        """Check every setting; `require_names=False` before the data has set the class names."""
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {self.variant!r}.")
        expected = CGANConfig if self.variant == "cgan" else SGANConfig
        if not isinstance(self.model, expected):
            raise ConfigError(f"a {self.variant} run needs a {expected.__name__}.")
        self.model.validate()
        self.train.validate(self.variant)
        if require_names and self.variant == "cgan" and not self.model.class_names:
            raise ConfigError("a conditional model needs at least one class name.")
        if self.variant == "sgan" and self.train.patch % self.model.scale:
            raise ConfigError(f"patch ({self.train.patch}) must be a multiple of 2**depth "
                              f"({self.model.scale}).")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError("config.json must hold a JSON object.")
        try:
            variant = d["variant"]
            model_cls = CGANConfig if variant == "cgan" else SGANConfig
            model = d["model"]
            if isinstance(model, dict):  # saved before the family was a setting: the reference's networks
                model = {**LEGACY_MODEL.get(variant, {}), **model}
            train = d.get("train", {})
            if isinstance(train, dict) and "quality_every" not in train:  # saved before the gauge existed:
                train = {**train, "quality_every": 0}  # keep training on every image it trained on
            data = d.get("data", [])
            if not (isinstance(data, list) and all(isinstance(x, str) for x in data)):
                raise ConfigError("data in config.json must be a list of paths.")
            cfg = cls(
                variant=variant,
                model=_build(model_cls, model),
                train=_build(TrainConfig, train),
                data=list(data),
                version=str(d.get("version", "unknown"))[:100],
            )
        except KeyError as e:
            raise ConfigError(f"config.json lacks the field {e.args[0]!r}.") from None
        cfg.validate()
        return cfg

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        if len(text) > MAX_CONFIG_CHARS:
            raise ConfigError(f"config.json is {len(text)} characters long; a run's settings fit in far fewer.")
        try:
            d = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config.json is not valid JSON ({e.msg} at line {e.lineno}).") from None
        except ValueError as e:  # NaN / Infinity, or an integer of thousands of digits
            raise ConfigError(f"config.json holds a number this program does not accept: {e}") from None
        except RecursionError:
            raise ConfigError("config.json is nested too deeply to be a run's settings.") from None
        return cls.from_dict(d)


MAX_CONFIG_CHARS = 1_000_000


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a setting can have")


MAX_PATCH_PIXELS = 2**23  # texture batch x patch area: 32 patches of 512 px, 512 of 128 px


def _check_names(names: list[str], what: str) -> None:
    if len(names) > 10_000 or any(len(n) > 200 for n in names):
        raise ConfigError(f"{what} holds {len(names)} names (at most 10000 of at most 200 characters).")


def _build(dc, d: Any):
    if not isinstance(d, dict):
        raise ConfigError(f"config section for {dc.__name__} must be a JSON object.")
    known = {f.name: f for f in dataclasses.fields(dc)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"config.json has unknown {dc.__name__} setting(s): {', '.join(unknown)}.")
    try:
        obj = dc(**d)
    except TypeError as e:
        raise ConfigError(f"config.json does not fit {dc.__name__}: {e}") from None
    for name, f in known.items():  # reject wrong JSON types early (e.g. "64" for an int)
        v = getattr(obj, name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, bool) and not isinstance(v, bool):
            raise ConfigError(f"{name} must be true or false.")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{name} must be a number.")
            if not math.isfinite(v) or abs(v) > 1e15:  # 1e400 parses as inf
                raise ConfigError(f"{name} must be a finite number of sensible size, got {v!r}.")
            if isinstance(default, int) and not isinstance(default, bool) and v != int(v):
                raise ConfigError(f"{name} must be a whole number.")
            setattr(obj, name, type(default)(v))
        if isinstance(default, list) and not (isinstance(v, list) and all(isinstance(s, str) for s in v)):
            raise ConfigError(f"{name} must be a list of names.")
    return obj
