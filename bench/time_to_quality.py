"""Time to quality: how close each contender's samples come to held-out real images within the same
wall-clock training time, on this machine.

Each class folder is split into a training and a held-out copy in a temporary folder (--holdout of
each class). Every contender trains on the training copy for --budget seconds of its own training
time; the contenders take turns slice by slice in one process, so a change of the machine's load
hits all alike, and scoring is not counted as training time. Contenders (--contenders):

  seed           the reference system as its README describes it (bench/reference_cgan.py)
  reference      gan_core with --recipe reference (transposed-convolution networks, WGAN-GP)
  fast           gan_core with --recipe fast (the reference networks, hinge loss, mode seeking)
  studio         gan_core with --recipe studio, the default (nearest resize + 3x3 convolution and a
                 noise map from z in each generator stage, a second 3x3 convolution in the first three
                 stages, skip-layer excitation from each stage to the one two doublings finer, colour
                 drawn at half the resolution of brightness, the relativistic pairing loss with lazy
                 R1 + R2 of weight 1, Adam 1e-4, adaptive DiffAugment drawn once per minibatch-std
                 group, EMA over 10k images, learning rate falling to zero over the second half of the
                 budget; one generated batch per step, shared by the critic's and the generator's updates;
                 budgets up to 1 minute start the learning rates at 3x and let them fall over the last
                 quarter instead, and start the coarse noise maps' gains at 0.2, gan_core.config.SHORT_BUDGET;
                 a budget this machine trains on at most 8 thousand images with the full critic trains
                 one of half its width, gan_core.config.SHORT_CRITIC)
  studio-noshort studio without the short budget's learning-rate schedule (lr_boost 1)
  studio-by-minutes  the default before: studio whose short schedule follows the budget's minutes
                 alone, not also the images it will see at this machine's pace (short_by_pace)
  studio-noise0  the default before: studio whose coarse noise maps start at gain 0 whatever the budget
  studio-noreuse the default before: studio drawing a second generated batch for the generator's update
  studio-reuse   the same settings as studio: the name of the runs that chose one generated batch per step
  studio-nosle   the default before: studio without skip-layer excitation
  studio-chroma  the same settings as studio: the name of the runs that chose colour at half resolution
                 (half_chroma)
  studio-fullchroma  the default before: studio drawing colour at full resolution with the brightness
  studio-sle     the same settings as studio: the name of the runs that chose skip-layer excitation (sle)
  studio-prev    the default before the noise maps: no noise maps, no skip-layer excitation, R1 + R2 weight 0.1
  The contenders below are studio with one change; the runs of them in bench/RESULTS.md from
  before skip-layer excitation became the default had it off:
  studio-nonoise studio without the noise maps (R1 + R2 weight 1)
  studio-nonoise-r1-3  studio without the noise maps, R1 + R2 weight 3
  studio-slow-g  studio with half the generator's learning rate (Adam 5e-5; the critic keeps 1e-4)
  studio-reflect studio whose generator pads its convolutions by mirroring (g_padding "reflect")
  studio-reflect-notch  studio-reflect with the notched output convolution (rgb_notch)
  The contenders below change the default of their time (runs before the noise maps, in
  bench/RESULTS.md, had them without the noise maps and with R1 + R2 weight 0.1):
  studio-hinge   studio with the hinge loss and Adam 2e-4 (the studio recipe before the relativistic loss)
  studio-fast-lr studio with Adam 2e-4 instead of 1e-4
  studio-boost   studio whose learning rates start at 2x for 10k images and fall back to 1x over the
                 next 10k (studio-boost20: 20k each; studio-boost3, studio-boost4: 3x, 4x for 10k; the
                 train option --lr-boost, which holds whatever the budget)
  studio-boost3-b16, studio-boost3-ld25, studio-boost3-ld0  studio-boost3 with batches of 16, with the
                 learning rates falling over the last quarter of the budget, and with no fall at all
  studio-hinge-slow  studio with the hinge loss (and the default Adam 1e-4)
  studio-bilinear  studio with bilinear instead of nearest-neighbour resizing
  studio-wide    studio with twice the channels in the generator and the critic
  studio-d12     studio with a narrower critic: 12 channels in its first stage instead of 16 (doubling per
                 stage as before), about 20% less time per step on a 2-core CPU
  studio-d8      studio with half the critic's channels (8 in its first stage), about 40% less time per step
  studio-d12-full16  studio-d12 whose full-resolution layer keeps 16 channels (d_full_res), the layer that
                 sees pixel-scale patterns
  studio-d16     studio with the full-width critic whatever the budget (the default before the short
                 budget's half-width critic)
  studio-half    studio with half the channels in the generator and the critic
  studio-b64     studio with batches of 64
  studio-b16     studio with batches of 16
  studio-nodecay studio with constant learning rates (no fall to zero over the second half)
  studio-noaug   studio without augmentation
  studio-div     studio with the mode-seeking term (weight 0.2; studio-div1: weight 1; studio-div005: 0.05)
  studio-r1-0.3  studio with R1 + R2 at weight 0.3 instead of 1 (studio-r1-3: at weight 3)
  studio-beta1-05  studio with Adam's first beta at 0.5 instead of 0 (momentum; DCGAN's setting)
  studio-beta2-09  studio with Adam's second beta at 0.9 instead of 0.99 (the reference's)
  studio-nc2     studio with two critic steps per generator step (the reference's n_critic; each draws its
                 own generated batch); studio-nc2-noise4: with the coarse noise maps starting at 0.4
  studio-ttur2   studio whose critic learns at twice the generator's rate (Adam 2e-4 against 1e-4,
                 both boosted alike at short budgets)
  studio-ga      the same settings as studio: the name of the runs that chose augmentation drawn per
                 critic group (bench/RESULTS.md)
  studio-per-image  studio with augmentation drawn per image (the default before)
  studio-ga-grid studio with the generator's penalty on power at the 2 px period (grid_penalty 1)
  studio-grid-0.1  the same penalty at a tenth of the weight (grid_penalty 0.1)
  studio-reg16   studio with R1 + R2 every 16th step instead of every 4th (scaled to the same mean pull)
  studio-notch   studio whose output convolution passes nothing at the 2 px period (rgb_notch)
  studio-noise32 studio whose noise maps stop at the stage before the last (32 px at 64 px; noise_last off)
  studio-notch-noise32  studio-notch with the noise maps of studio-noise32
  studio-cbn     studio whose class also sets the generator's BatchNorm gains and biases (cond_bn)
  studio-zbn     studio whose noise z also sets the generator's BatchNorm gains and biases (latent_bn)
  studio-coarse-noise  studio whose noise maps at the coarse stages (8 and 16 px at 64 px) start at
                 gain 0.2 (noise_start) whatever the budget, so the seed sets the layout from the first
                 step (as the default does for budgets up to 1 minute; studio-coarse-noise4,
                 studio-coarse-noise6: 0.4, 0.6)
  studio-noise-lr10  studio whose noise maps' gains learn 10x faster (noise_lr 10: each gain is 10x its
                 parameter, so Adam moves it 10x as far per step); studio-noise-lr10-0: the same with the
                 coarse maps starting at zero whatever the budget, so the gains find their own level
  studio-skip    studio whose coarse stages (8, 16 and 32 px at 64 px) also draw images of their own,
                 resized up and added to the picture (skip_rgb 32, StyleGAN2's skip generator)
  studio-skip16  studio-skip with images from the 8 and 16 px stages only, where the layout is set (skip_rgb 16)
  studio-noflip  studio without the random horizontal flips of the real images
  studio-v1      the first candidate: hinge loss, the mode-seeking term, augmentation strength
                 rising 5x faster (0 to 1 over 20k images) and a constant learning rate
  studio-fp32    studio in fp32 (with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 in the environment,
                 a CPU with bf16 instructions stands in for one with AVX2 only)
  studio-ada25   studio whose augmentation strength can move 4x faster (ada_kimg 25)
  studio-decay1  studio whose learning rates fall linearly to zero from the first step (lr_decay 1.0)
  studio-heldout studio whose augmentation follows the critic's memory of its training images, measured
                 on the run's held-back images (ada_signal "heldout", target 0.6) instead of how sure it
                 is of the training batch
  studio-mirror  studio with the generator's term against a lasting one-way diagonal grain per class
                 (mirror_balance 1.0, losses.mirror_asymmetry)
  studio-mirror03 studio-mirror with the term at 0.3 of its weight (mirror_balance 0.3, the default's)
  studio-nomirror studio without the mirror term (mirror_balance 0: the default before it)
  studio-nosn    studio whose critic is not spectrally normalised (d_spectral_norm off; R1 + R2 alone hold
                 it smooth, as in R3GAN)
  studio-g2      studio whose generator draws only its 8 and 16 px stages with two 3x3 convolutions (g_extra 2)
  studio-g3      the same settings as studio: the name of the runs that chose two 3x3 convolutions at 8, 16
                 and 32 px (g_extra 3)
  studio-g0      the default before: one 3x3 convolution per generator stage (g_extra 0)
  studio-ada40   studio whose augmentation controller aims lower (ada_target 0.4 instead of 0.6): more
                 augmentation, raised while the critic ranks more than 70% of real images above generated ones
  studio-sub2    studio with each class's images in two look groups (submodes 2): the critic is told the
                 group, the generator's first latent value carries it (gan_core/submodes.py)
  studio-sub2pair  studio-sub2 whose critic is not told the group (group_critic off): it scores by
                 class, and only the pairing of each generated image with a real one of its group
                 (the relativistic loss compares the two) carries the group
  studio-dealt   studio whose batches hold every class at its share, dealt in turn (class_balance), where
                 drawn at random a class of five is missing from one batch in six and at twice its share
                 in others
  studio-mbstd4  studio whose critic sees its images' spread across a minibatch-std group in four planes,
                 one per quarter of its features (mbstd_channels 4), instead of one over all of them
  studio-group8  studio whose critic measures that spread across groups of eight images of a class
                 instead of four (mbstd_group 8; a batch of 32 then holds four class groups)

At --points equally spaced moments the samples of each (the averaged generator, its BatchNorm
statistics recomputed and its spectral equaliser fitted at that step, as the studio shows it; the
seed's generator in eval mode) are scored against
the held-out images: the sliced Wasserstein distance (gan_core.metrics.image_swd, x1000; as many
samples as held-out images, same classes, fixed noise). At the end also per class, and the
grid-artifact measure (gan_core.metrics.grid_artifacts: spectral power at the periods stride-2
stages leave, relative to the held-out images; about 1 = like real images). The floor is the
held-out images against an equal, class-matched draw of training images (real vs real). Each
point also prints the augmentation probability and the critic's r_v (ADA's validation heuristic:
how much lower it scores held-out photos than its training photos, as a fraction of how much lower
it scores generated images; 0 = it has not learnt its training images by heart, 1 = it scores
unseen photos like fakes).

    python bench/time_to_quality.py --budget 600 --contenders reference,studio     # demo classes
    python bench/time_to_quality.py --data photos --budget 600 --contenders studio  # bench/photo_set.py
    python bench/time_to_quality.py --budget 60 --points 3                          # a quick check
    python bench/time_to_quality.py --data photos --res 128 --budget 1800 --contenders studio

The figures at the end (pooled and per class) are means over --draws independent draws: each draw
is a fresh set of noise for the samples and a fresh class-matched draw of training images for the
floor. One draw of 45 images a side moves a class's ratio by up to +-40% on its own (measured on a
fixed model), which is more than most settings change it; the range over the draws is printed too.

--ema-probes KIMG:RAMP,... trains nothing more: it keeps extra averaged copies of each contender's
generator, with those half-lives (thousands of images; at most RAMP x the images seen), and scores
them at the end beside the contender's own average. --keep DIR saves each contender's final
averaged generator (BatchNorm recalibrated) as DIR/<contender>/ (a model folder the studio opens).

--sheets DIR writes each contender's final samples (a row per class) as DIR/<data>_<contender>.png.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import math
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

from _common import REPO, OtherLoad, command_line, load_average, machine, md_table, run_in_temp_dir

import torch

from gan_core.config import CGANConfig, RunConfig, TrainConfig, recipe_model
from gan_core.data import is_image_name, load_class_dataset, to_float
from gan_core.losses import mirror_asymmetry
from gan_core.sampling import grid, save_png
from gan_core.metrics import grid_artifacts, image_swd, spread
from gan_core.checkpoint import export_model
from gan_core.spectrum import equalise
from gan_core.train import Trainer, average_into

RAW = "without the equaliser"  # a column of the final table: the averaged generator's pictures as drawn

# name -> (recipe, model overrides, training overrides)
CONTENDERS = {
    "reference": ("reference", {}, {}),
    "fast": ("fast", {}, {}),
    "studio": ("studio", {}, {}),
    "studio-bilinear": ("studio", {"upsample": "bilinear"}, {}),
    "studio-noaug": ("studio", {}, {"augment": [], "ada_target": 0.0}),
    "studio-div": ("studio", {}, {"diversity": 0.2}),
    "studio-div1": ("studio", {}, {"diversity": 1.0}),
    "studio-div005": ("studio", {}, {"diversity": 0.05}),
    "studio-r1-0.3": ("studio", {}, {"r1_gamma": 0.3}),
    "studio-v1": ("studio", {}, {"loss": "hinge", "lr_g": 2e-4, "lr_d": 2e-4, "diversity": 0.2, "ada_kimg": 20.0,
                                 "lr_decay": 0.0}),
    "studio-hinge": ("studio", {}, {"loss": "hinge", "lr_g": 2e-4, "lr_d": 2e-4}),
    "studio-fast-lr": ("studio", {}, {"lr_g": 2e-4, "lr_d": 2e-4}),
    "studio-boost": ("studio", {}, {"lr_boost": 2.0, "lr_boost_kimg": 10.0}),
    "studio-boost20": ("studio", {}, {"lr_boost": 2.0, "lr_boost_kimg": 20.0}),
    "studio-boost3": ("studio", {}, {"lr_boost": 3.0, "lr_boost_kimg": 10.0}),
    "studio-boost4": ("studio", {}, {"lr_boost": 4.0, "lr_boost_kimg": 10.0}),
    "studio-noshort": ("studio", {}, {"lr_boost": 1.0}),
    "studio-half-short": ("studio", {}, {"lr_boost": 2.0, "lr_boost_kimg": 10.0, "lr_decay": 0.375}),
    "studio-by-minutes": ("studio", {}, {"short_by_pace": False}),
    "studio-noise0": ("studio", {"noise_start": 0.0}, {}),
    "studio-boost3-b16": ("studio", {}, {"lr_boost": 3.0, "lr_boost_kimg": 10.0, "batch": 16}),
    "studio-boost3-ld25": ("studio", {}, {"lr_boost": 3.0, "lr_boost_kimg": 10.0, "lr_decay": 0.25}),
    "studio-boost3-ld0": ("studio", {}, {"lr_boost": 3.0, "lr_boost_kimg": 10.0, "lr_decay": 0.0}),
    "studio-wide": ("studio", {"g_channels": 32, "d_channels": 32}, {}),
    "studio-d12": ("studio", {"d_channels": 12}, {}),
    "studio-d8": ("studio", {"d_channels": 8}, {}),
    "studio-half": ("studio", {"g_channels": 8, "d_channels": 8}, {}),
    "studio-d16": ("studio", {"d_channels": 16}, {}),
    "studio-d12-full16": ("studio", {"d_channels": 12, "d_full_res": 16}, {}),
    "studio-b64": ("studio", {}, {"batch": 64}),
    "studio-b16": ("studio", {}, {"batch": 16}),
    "studio-nodecay": ("studio", {}, {"lr_decay": 0.0}),
    "studio-hinge-slow": ("studio", {}, {"loss": "hinge", "lr_g": 1e-4, "lr_d": 1e-4}),
    "studio-ga": ("studio", {}, {"aug_groups": True}),
    "studio-per-image": ("studio", {}, {"aug_groups": False}),
    "studio-ga-grid": ("studio", {}, {"aug_groups": True, "grid_penalty": 1.0}),
    "studio-grid-0.1": ("studio", {}, {"aug_groups": True, "grid_penalty": 0.1}),
    "studio-notch": ("studio", {"rgb_notch": True}, {}),
    "studio-noise32": ("studio", {"noise_last": False}, {}),
    "studio-notch-noise32": ("studio", {"rgb_notch": True, "noise_last": False}, {}),
    "studio-cbn": ("studio", {"cond_bn": True}, {}),
    "studio-zbn": ("studio", {"latent_bn": True}, {}),
    "studio-coarse-noise": ("studio", {"noise_start": 0.2}, {}),
    "studio-coarse-noise4": ("studio", {"noise_start": 0.4}, {}),
    "studio-coarse-noise6": ("studio", {"noise_start": 0.6}, {}),
    "studio-noise-lr10": ("studio", {"noise_lr": 10.0}, {}),
    "studio-noise-lr10-0": ("studio", {"noise_lr": 10.0, "noise_start": 0.0}, {}),
    "studio-skip": ("studio", {"skip_rgb": 32}, {}),
    "studio-skip16": ("studio", {"skip_rgb": 16}, {}),
    "studio-gate": ("studio", {"colour_gate": True}, {}),
    "studio-nogate": ("studio", {"colour_gate": False}, {}),
    "studio-noflip": ("studio", {}, {"mirror": False}),
    "studio-prev": ("studio", {"noise_maps": False, "sle": False}, {"r1_gamma": 0.1}),
    "studio-nosle": ("studio", {"sle": False}, {}),
    "studio-nonoise": ("studio", {"noise_maps": False}, {}),
    "studio-nonoise-r1-3": ("studio", {"noise_maps": False}, {"r1_gamma": 3.0}),
    "studio-slow-g": ("studio", {}, {"lr_g": 5e-5}),
    "studio-reflect": ("studio", {"g_padding": "reflect"}, {}),
    "studio-bilinear-reflect": ("studio", {"upsample": "bilinear", "g_padding": "reflect"}, {}),
    "studio-reflect-notch": ("studio", {"g_padding": "reflect", "rgb_notch": True}, {}),
    "studio-sle": ("studio", {"sle": True}, {}),
    "studio-reuse": ("studio", {}, {}),
    "studio-noreuse": ("studio", {}, {"reuse_batch": False}),
    "studio-ttur": ("studio", {}, {"lr_d": 3e-4}),
    "studio-chroma": ("studio", {"half_chroma": True}, {}),
    "studio-fullchroma": ("studio", {"half_chroma": False, "colour_gate": False}, {}),
    "studio-reg16": ("studio", {}, {"reg_every": 16}),
    # the default in fp32 on a CPU with bf16 instructions; with ATEN_CPU_CAPABILITY=avx2 and
    # ONEDNN_MAX_CPU_ISA=AVX2 in the environment it stands in for a CPU without them
    "studio-fp32": ("studio", {}, {"precision": "fp32"}),
    "studio-ada25": ("studio", {}, {"ada_kimg": 25.0}),
    "studio-decay1": ("studio", {}, {"lr_decay": 1.0}),
    "studio-heldout": ("studio", {}, {"ada_signal": "heldout", "ada_target": 0.6}),
    "studio-mirror": ("studio", {}, {"mirror_balance": 1.0}),
    "studio-mirror03": ("studio", {}, {"mirror_balance": 0.3}),
    "studio-nomirror": ("studio", {}, {"mirror_balance": 0.0}),
    "studio-nosn": ("studio", {"d_spectral_norm": False}, {}),
    "studio-g2": ("studio", {"g_extra": 2}, {}),
    "studio-g3": ("studio", {"g_extra": 3}, {}),
    "studio-g0": ("studio", {"g_extra": 0}, {}),
    "studio-ada40": ("studio", {}, {"ada_target": 0.4}),
    "studio-dealt": ("studio", {}, {"class_balance": True}),
    "studio-mbstd4": ("studio", {"mbstd_channels": 4}, {}),
    "studio-group8": ("studio", {"mbstd_group": 8}, {}),
    "studio-sub2": ("studio", {}, {"submodes": 2}),
    "studio-sub2pair": ("studio", {}, {"submodes": 2, "group_critic": False}),
    "studio-beta1-05": ("studio", {}, {"beta1": 0.5}),
    "studio-beta2-09": ("studio", {}, {"beta2": 0.9}),
    "studio-r1-3": ("studio", {}, {"r1_gamma": 3.0}),
    "studio-nc2": ("studio", {}, {"n_critic": 2, "reuse_batch": False}),
    "studio-nc2-noise4": ("studio", {"noise_start": 0.4}, {"n_critic": 2, "reuse_batch": False}),
    "studio-ttur2": ("studio", {}, {"lr_d": 2e-4}),
}


def split_folder(src: Path, dst: Path, holdout: float, seed: int) -> tuple[Path, Path]:
    """Copy each class's images into dst/train/<class> and dst/heldout/<class> (holdout fraction)."""
    rng = random.Random(seed)
    tr, ho = dst / "train", dst / "heldout"
    for cls in sorted(d for d in src.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(f for f in cls.iterdir() if f.is_file() and is_image_name(f.name))
        rng.shuffle(files)
        k = max(1, round(len(files) * holdout))
        for part, chosen in ((ho, files[:k]), (tr, files[k:])):
            (part / cls.name).mkdir(parents=True, exist_ok=True)
            for f in chosen:
                shutil.copy2(f, part / cls.name / f.name)
    return tr, ho


class Contender:
    def __init__(self, name: str):
        self.name = name
        self.train_s = 0.0
        self.images = 0
        self.steps = 0
        self.curve: list[tuple[float, float, int, int]] = []  # (train seconds, swd, steps, images)

    def train_until(self, seconds: float) -> None:
        while self.train_s < seconds:
            t0 = time.perf_counter()
            self.images += self.step()
            self.steps += 1
            self.train_s += time.perf_counter() - t0
            self.after_step()

    def after_step(self) -> None:  # untimed work after each step
        pass


class Seed(Contender):
    def __init__(self, folder: Path, seed: int):
        super().__init__("seed")
        from reference_cgan import ReferenceTrainer
        t0 = time.perf_counter()
        self.t = ReferenceTrainer(str(folder), seed=seed)
        self.train_s += time.perf_counter() - t0

    def step(self) -> int:  # one critic step (and the generator step after every n_critic-th)
        return self.t.step()

    def sample(self, z, y):
        return self.t.sample(z, y)


class Project(Contender):
    def __init__(self, name: str, folder: Path, run_dir: Path, seed: int, res: int, seconds: float):
        super().__init__(name)
        recipe, model_kw, train_kw = CONTENDERS[name]
        t0 = time.perf_counter()
        # the bench's budget, so the run's schedules (learning rate) and new model fit it as in the studio
        t = TrainConfig.recipe(recipe, "cgan", seed=seed, quality_every=0, minutes=seconds / 60, **train_kw)
        model = CGANConfig(**{**recipe_model(recipe, "cgan"), "resolution": res, **model_kw})
        cfg = RunConfig("cgan", model, t, data=[str(folder)])
        cfg.validate(require_names=False)
        run_dir.mkdir(parents=True)
        self.loop = Trainer(cfg, run_dir, torch.device("cpu"))
        self.per_step = cfg.train.batch * cfg.train.n_critic
        self.final = False  # at the end of the budget: the equaliser from the larger fit a run ends with
        self.probes: dict[str, tuple[float, float, torch.nn.Module]] = {}
        self.train_s += time.perf_counter() - t0

    def add_probe(self, kimg: float, ramp: float) -> None:
        """An extra average of the generator (half-life kimg thousand images, at most ramp x the
        images seen), updated outside the timed step."""
        self.probes[f"ema {kimg:g}k, ramp {ramp:g}"] = (kimg, ramp, copy.deepcopy(self.loop.G_ema))

    def after_step(self) -> None:  # the probes follow the generator
        for kimg, ramp, m in self.probes.values():
            average_into(m, self.loop.G, self.loop.ema_decay(kimg, ramp))

    @contextlib.contextmanager
    def as_average(self, probe: str):
        """The loop's averaged generator replaced by a probe while inside (its BatchNorm recalibrated
        and its equaliser fitted for it)."""
        own, self.loop.G_ema = self.loop.G_ema, self.probes[probe][2]
        self.loop._bn_step = self.loop._gains_step = None
        try:
            yield self
        finally:
            self.loop.G_ema, self.loop._bn_step, self.loop._gains_step = own, None, None

    def keep(self, folder: Path) -> None:
        """The averaged generator as a model folder (config.json + G_ema.safetensors, float32): a
        checkpoint of the run (BatchNorm recalibrated), exported as `python -m gan_core export` does."""
        export_model(self.loop.save(), folder, half=False)

    def step(self) -> int:
        self.loop.wall = self.train_s  # the run's clock: its own training time
        rec = self.loop.train_step()
        self.loop.update_ada(rec)
        return self.per_step

    @torch.no_grad()
    def critic_gap(self, train_x, held_x, fake, y) -> float:
        """ADA's validation heuristic r_v: (E D(training) - E D(held-out)) / (E D(training) - E D(generated)),
        the critic's scores of unaugmented images (same classes): 0 when it scores images it never saw
        as it scores its training images, 1 when it scores them as it scores generated ones (it has
        learnt its training images by heart). Untimed; scored as Trainer.critic_scores scores them (in
        eval mode: training goes on as it would without the measurement)."""
        def mean_score(x):
            return torch.cat([self.loop.critic_scores(xx, yy) for xx, yy in zip(x.split(64), y.split(64))]).mean().item()
        t, h, f = mean_score(train_x), mean_score(held_x), mean_score(fake)
        return (t - h) / (t - f) if abs(t - f) > 1e-6 else float("nan")

    @torch.inference_mode()
    def sample(self, z, y, raw: bool = False):
        """Samples as the studio shows them: through the spectral equaliser fitted at this step, as
        a checkpoint of this step would hold it (untimed, as checkpoints are here; at the end of the
        budget the larger fit of a run's last checkpoint); `raw`: without."""
        self.loop.recalibrate_bn()
        fake = torch.cat([self.loop.G_ema(zz, yy).float() for zz, yy in zip(z.split(64), y.split(64))])
        gains = None if raw else self.loop.spectrum_gains(final=self.final)
        return fake if gains is None else equalise(fake, gains[y])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="demo", help="class folder, 'demo' (assets/demo/classes) or 'photos' "
                                                  "(bench/photo_set.py, needs scikit-image) (default %(default)s)")
    p.add_argument("--budget", type=float, default=120, help="training seconds per contender (default %(default)s)")
    p.add_argument("--points", type=int, default=10, help="evaluations spread over the budget (default %(default)s)")
    p.add_argument("--holdout", type=float, default=0.3, help="held-out fraction per class (default %(default)s)")
    p.add_argument("--contenders", default="reference,fast,studio", help="comma-separated (default %(default)s)")
    p.add_argument("--res", type=int, default=64, choices=(64, 128), help="image size (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the split, the scoring noise and (unless --train-seed) training")
    p.add_argument("--train-seed", type=int, default=None,
                   help="training's own seed, to see how far two runs on the same split differ (default: --seed)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--sheets", default=None, help="folder for each contender's final sample sheet")
    p.add_argument("--draws", type=int, default=6, help="noise and floor draws averaged in the final figures "
                                                        "(default %(default)s)")
    p.add_argument("--ema-probes", default="", help="extra averages scored at the end, KIMG:RAMP,... (e.g. 20:0.1)")
    p.add_argument("--keep", default=None, help="folder for each contender's final averaged generator")
    a = p.parse_args(argv)
    return run_in_temp_dir(a, "bench_quality_", run)


def run(a, tmp: Path) -> int:
    print(f"machine: {machine()}")
    print(f"command: {command_line()}")
    load0 = load_average()
    if a.data == "demo":
        src, data_name = REPO / "assets/demo/classes", "demo"
    elif a.data == "photos":
        from photo_set import build
        src, data_name = build(tmp / "photos", size=a.res), "photos"  # crops cut at the training size
    else:
        src = Path(a.data)
        data_name = src.name
    train_dir, held_dir = split_folder(src, tmp / "split", a.holdout, a.seed)
    held = load_class_dataset(held_dir, a.res)
    tr = load_class_dataset(train_dir, a.res)
    names_c = held.class_names
    order = torch.argsort(held.labels, stable=True)
    real, y = to_float(held.images[order]), held.labels[order]
    # real vs real floor: a class-matched draw of training images of the held-out set's size

    def class_matched(k: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(a.seed + 7919 * k)
        pick = torch.cat([torch.nonzero(tr.labels == c).flatten()[torch.randperm(int((tr.labels == c).sum()), generator=g)]
                          [: int((y == c).sum())] for c in range(len(names_c))])
        return to_float(tr.images[pick])

    # the floor: a mean over a.draws class-matched draws (one draw of 45 images a class is noisy)
    others = [class_matched(k) for k in range(a.draws)]
    other = others[0]
    floors_c = [[image_swd(o[y == ci], real[y == ci]) for o in others] for ci in range(len(names_c))]
    floors = [image_swd(o, real) for o in others]
    floor, floor_cm = statistics.mean(floors), [statistics.mean(f) for f in floors_c]
    # noise for the samples: the curve uses the first draw, the final figures all of them
    zs = [torch.randn(len(y), 100, generator=torch.Generator().manual_seed(a.seed + 1 + 1000 * k))
          for k in range(a.draws)]
    z = zs[0]
    print(f"{data_name}: {len(tr)} training and {len(held)} held-out images in {len(names_c)} classes; "
          f"real-vs-real SWD (floor) {floor:.1f}", flush=True)

    names = [n.strip() for n in a.contenders.split(",") if n.strip()]
    train_seed = a.seed if a.train_seed is None else a.train_seed
    cs: list[Contender] = []
    for n in names:
        if n == "seed":
            cs.append(Seed(train_dir, train_seed))
        elif n in CONTENDERS:
            cs.append(Project(n, train_dir, tmp / n, train_seed, a.res, a.budget))
        else:
            raise SystemExit(f"unknown contender {n!r}; choose from seed, {', '.join(CONTENDERS)}")

    def evaluate(c: Contender) -> torch.Tensor:
        fake = c.sample(z, y)
        swd = image_swd(fake, real)
        c.curve.append((c.train_s, swd, c.steps, c.images))
        aug = (f"  aug p {c.loop.aug_p:.2f}  critic r_v {c.critic_gap(other, real, fake, y):.2f}"
               + (f"  memory {c.loop.memory:.2f}" if c.loop.memory is not None else "")
               + (f"  lean {c.loop.mirror_bias.abs().mean():.2f}" if c.loop.mirror_bias is not None else "")
               if isinstance(c, Project) else "")
        print(f"  {c.name:<14} {c.train_s:7.1f} s  {c.steps:6d} steps  {c.images:7d} img  SWD {swd:7.1f} "
              f"({swd / floor:.2f}x floor){aug}", flush=True)
        return fake

    probes = [tuple(float(v) for v in p.split(":")) for p in a.ema_probes.split(",") if p.strip()]
    ol = OtherLoad().start()
    for c in cs:
        if isinstance(c, Project):
            for kimg, ramp in probes:
                c.add_probe(kimg, ramp)
        evaluate(c)  # point 0: the untrained generator (construction time already counted)
    finals = {}
    for k in range(1, a.points + 1):
        for c in cs:
            c.train_until(a.budget * k / a.points)
            if isinstance(c, Project):
                c.final = k == a.points
            finals[c.name] = evaluate(c)
    ol.stop()
    load1 = load_average()

    print(f"\n## Time to quality on `{data_name}` (`bench/time_to_quality.py`)\n")
    print(f"Machine: {machine()}. Load average {load0:.2f} at the start, {load1:.2f} at the end; other processes "
          f"used {100 * ol.share:.0f}% of the CPU during the run.\n")
    print(f"Command: `{command_line()}`\n")
    print(f"{len(tr)} training / {len(held)} held-out images; SWD x1000 of {len(held)} samples against the held-out "
          f"images (lower is better). Floor (held-out vs training images, mean of {a.draws} draws): **{floor:.1f}**.\n")
    header = ["training time"] + [f"{c.name} SWD (x floor)" for c in cs]
    rows = [[f"{c0.curve[i][0]:.0f} s"] + [f"{c.curve[i][1]:.1f} ({c.curve[i][1] / floor:.2f}x)" for c in cs]
            for i, c0 in ((i, cs[0]) for i in range(a.points + 1))]
    rows.append(["steps / real images at the end"] + [f"{c.curve[-1][2]} / {c.curve[-1][3]}" for c in cs])
    print(md_table(header, rows))
    # the held-out images' own spread per class, plain and over 8 x 8 averages: the samples' is read against it
    real_spread = [(spread(real[y == ci]), spread(real[y == ci], pool=8)) for ci in range(len(names_c))]

    def lean(images: torch.Tensor) -> float:
        """How much more power the images' diagonals carry one way than the other (losses.mirror_asymmetry,
        averaged over its bands): 1 = even, as photos flipped at random are; 2 or 0.5 = twice as much."""
        r, _ = mirror_asymmetry(images, torch.zeros(len(images), dtype=torch.long), 1)
        return math.exp(r.mean().item())

    def final_figures(c: Contender, probe: str | None) -> tuple[list[str], str]:
        with (c.as_average(probe) if probe and probe != RAW else contextlib.nullcontext()):
            fakes = [c.sample(zz, y, raw=True) if probe == RAW else c.sample(zz, y) for zz in zs]
        cells = []
        for ci in range(len(names_c)):
            m = y == ci
            r = [image_swd(f[m], real[m]) / floor_cm[ci] for f in fakes]
            gm = grid_artifacts(torch.cat([f[m] for f in fakes]), real[m])
            cells.append(f"{statistics.mean(r):.2f}x ({min(r):.2f}-{max(r):.2f}); spread "
                         f"{spread(fakes[0][m]) / real_spread[ci][0]:.2f} (8 px: "
                         f"{spread(fakes[0][m], pool=8) / real_spread[ci][1]:.2f}); grid {gm['mean']:.2f} "
                         f"(max {gm['max']:.1f} at {gm['at']}); lean {lean(torch.cat([f[m] for f in fakes])):.2f}")
        r = [image_swd(f, real) / floor for f in fakes]
        gm = grid_artifacts(torch.cat(fakes), real)
        return cells, (f"{statistics.mean(r):.2f}x ({min(r):.2f}-{max(r):.2f}); grid {gm['mean']:.2f} "
                       f"(max {gm['max']:.1f} at {gm['at']})")

    columns = ([(c, None) for c in cs] + [(c, RAW) for c in cs if isinstance(c, Project)]
               + [(c, p) for c in cs if isinstance(c, Project) for p in c.probes])
    # the final figures draw and score a.draws sets of samples per column (a few minutes on a slow CPU):
    # say so, so that a log that stops after its curve is not taken for a finished one
    print(f"\nscoring the end: {a.draws} draws for each of {len(columns)} column(s)...", flush=True)
    results = [final_figures(c, p) for c, p in columns]
    print(f"\nAt the end, per class, means over {a.draws} draws of samples and of floor images: SWD / floor "
          "(the range over the draws); spread (how much the samples of the class differ from each other, over "
          "the held-out images' spread: about 1 = as varied, near 0 = one image; in brackets the same over 8 x 8 "
          "pixel averages, which leaves speckle out and sees layout and colour); and the grid measure of all "
          "the draws' samples (mean; largest single frequency). \"real vs real grid\": the grid measure of each "
          "draw of floor images against the held-out images, as a range over the draws (how far real images "
          "stray from each other on it at this many images), then \"pooled\": of all the draws together, as the "
          "samples' figure pools its draws (the one to hold the samples' figure against):\n")
    header = ["class", "floor", "real vs real grid"] + [c.name + (f" ({p})" if p else "") for c, p in columns]
    rows = []

    def real_grid(m: torch.Tensor) -> str:
        """The grid measure of each floor draw against the held-out images: its spread is the
        measure's own at this many images (the range over the draws); then of the draws pooled,
        as the samples' figure pools its draws."""
        gs = [grid_artifacts(o[m], real[m]) for o in others]
        means, peaks = [g["mean"] for g in gs], [g["max"] for g in gs]
        pooled = grid_artifacts(torch.cat([o[m] for o in others]), real[m])
        return (f"{min(means):.2f}-{max(means):.2f} (max {min(peaks):.1f}-{max(peaks):.1f}); "
                f"pooled {pooled['mean']:.2f} (max {pooled['max']:.1f})")

    for ci, cname in enumerate(names_c):
        rows.append([cname, f"{floor_cm[ci]:.1f}", f"{real_grid(y == ci)}; lean {lean(real[y == ci]):.2f}"]
                    + [cells[ci] for cells, _ in results])
    rows.append(["all", f"{floor:.1f}", real_grid(torch.ones_like(y, dtype=torch.bool))] + [pooled for _, pooled in results])
    print(md_table(header, rows))
    if a.keep:
        for c in cs:
            if isinstance(c, Project):
                c.keep(Path(a.keep) / c.name)
                print(f"kept: {Path(a.keep) / c.name}")
    ref = next((c for c in cs if c.name == "reference"), None)
    if ref is not None:
        target = ref.curve[-1][1]
        print(f"\nThe reference recipe's quality after the whole budget: SWD {target:.1f}.")
        for c in cs:
            if c is ref:
                continue
            hit = next((i for i in range(1, a.points + 1) if c.curve[i][1] <= target), None)
            print(f"- {c.name}: " + (f"reached it after {c.curve[hit][0]:.0f} s of training" if hit
                                     else "did not reach it within the budget"))
    if a.sheets:
        out = Path(a.sheets)
        out.mkdir(parents=True, exist_ok=True)
        for c in cs:
            rows_ = [finals[c.name][y == ci][:8] for ci in range(len(names_c))]
            path = out / f"{data_name}_{c.name}{'' if a.res == 64 else f'_{a.res}px'}.png"
            save_png(path, grid(torch.cat(rows_), 8), {"contender": c.name, "data": data_name,
                                                        "training_s": f"{c.train_s:.0f}"})
            print(f"sample sheet: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
