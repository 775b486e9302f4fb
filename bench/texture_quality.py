"""Texture quality over training time: spatial GAN contenders side by side on one photo.

Each contender trains on the photo for --budget seconds of its own training time (turns taken slice
by slice, as in time_to_quality.py). At the end each renders a 1024 x 1024 tileable texture and is
scored against the photo:
  SWD       sliced Wasserstein distance (x1000) of 48 random 128 px crops of the texture against
            48 random 128 px crops of the photo; floor: photo crops against other photo crops
  grid      the grid-artifact measure (gan_core.metrics.grid_artifacts) of the same crops: spectral
            power at the periods 2..32 px along x, y and the diagonal, relative to the photo's
            (about 1 = like the photo); the largest single frequency is named (a band every 32 px
            along y shows as "y 1/32")
  seam      seam ratio of the tile (gan_core.metrics.seam_ratio; about 1 = no visible seam)
Contenders: reference (transposed convolutions, WGAN-GP: --recipe reference), fast, studio (the
default: nearest resize + 5x5 convolutions, hinge, mode seeking), and studio variants named in
TEXTURE_CONTENDERS (bilinear resizing, WGAN-GP, the relativistic loss, Adam 1e-4, no mode seeking,
circular padding while training: studio-wrap; zero padding and no margin, the default before:
studio-zeropad; studio-margin is studio, named for the runs that chose it).

    python bench/texture_quality.py assets/demo/textures/brick.png --budget 600 --sheets bench/sheets
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import OtherLoad, command_line, machine, md_table, run_in_temp_dir

import numpy as np
import torch

from gan_core.config import RunConfig, SGANConfig, TrainConfig, recipe_model
from gan_core.data import load_textures
from gan_core.sampling import save_png
from gan_core.metrics import grid_artifacts, image_swd, seam_ratio
from gan_core.texture import generate_texture
from gan_core.train import Trainer

TEXTURE_CONTENDERS = {
    "reference": ("reference", {}, {}),
    "fast": ("fast", {}, {}),
    "studio": ("studio", {}, {}),
    "studio-bilinear": ("studio", {"upsample": "bilinear"}, {}),
    "studio-wgan": ("studio", {}, {"loss": "wgan-gp", "n_critic": 2}),
    "studio-bilinear-wgan": ("studio", {"upsample": "bilinear"}, {"loss": "wgan-gp", "n_critic": 2}),
    "studio-nodiv": ("studio", {}, {"diversity": 0.0}),
    "studio-hinge": ("studio", {}, {"loss": "hinge"}),
    "studio-rpgan": ("studio", {}, {"loss": "rpgan"}),
    "studio-slow": ("studio", {}, {"lr_g": 1e-4, "lr_d": 1e-4}),
    "studio-rpgan-slow": ("studio", {}, {"loss": "rpgan", "lr_g": 1e-4, "lr_d": 1e-4}),
    "studio-wrap": ("studio", {"margin": 0}, {"wrap_train": True}),
    "studio-zeropad": ("studio", {"margin": 0}, {}),
    "studio-margin": ("studio", {"margin": 1}, {}),
}


def crops(img: torch.Tensor, n: int, size: int, seed: int) -> torch.Tensor:
    """n random size x size crops of an image (3, H, W) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = int(torch.randint(img.shape[1] - size + 1, (1,), generator=g))
        x = int(torch.randint(img.shape[2] - size + 1, (1,), generator=g))
        out.append(img[:, y:y + size, x:x + size])
    return torch.stack(out)


class Contender:
    def __init__(self, name: str, photo: str, run_dir: Path, seed: int, patch: int, device: str = "cpu"):
        recipe, model_kw, train_kw = TEXTURE_CONTENDERS[name]
        self.name, self.train_s, self.steps = name, 0.0, 0
        t0 = time.perf_counter()
        t = TrainConfig.recipe(recipe, "sgan", seed=seed, quality_every=0, patch=patch, **train_kw)
        cfg = RunConfig("sgan", SGANConfig(**{**recipe_model(recipe, "sgan"), **model_kw}), t, data=[photo])
        cfg.validate(require_names=False)
        run_dir.mkdir(parents=True)
        self.loop = Trainer(cfg, run_dir, torch.device(device))
        self.train_s += time.perf_counter() - t0

    def train_until(self, seconds: float) -> None:
        while self.train_s < seconds:
            self.loop.wall = self.train_s  # the run's clock, for its learning-rate schedule
            t0 = time.perf_counter()
            self.loop.update_ada(self.loop.train_step())
            self.steps += 1
            self.train_s += time.perf_counter() - t0

    def texture(self, size: int = 1024, seed: int = 1) -> np.ndarray:
        self.loop.recalibrate_bn()
        return generate_texture(self.loop.G_ema, size, size, seed=seed, tileable=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo", help="texture photo")
    p.add_argument("--budget", type=float, default=120, help="training seconds per contender (default %(default)s)")
    p.add_argument("--points", type=int, default=2, help="evaluations over the budget (default %(default)s)")
    p.add_argument("--contenders", default="reference,studio", help="comma-separated (default %(default)s)")
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu or cuda (a GPU screens recipes faster; the times are then "
                                                   "the GPU's)")
    p.add_argument("--sheets", default=None, help="folder for each contender's 1024 px texture (as 512 px PNG)")
    a = p.parse_args(argv)
    return run_in_temp_dir(a, "bench_texture_", run)


def run(a, tmp: Path) -> int:
    print(f"machine: {machine()}")
    print(f"command: {command_line()}")
    photo = load_textures([a.photo], a.patch, 4096)[0][0]
    real = crops(photo.float() / 127.5 - 1, 48, 128, a.seed)
    floor = image_swd(crops(photo.float() / 127.5 - 1, 48, 128, a.seed + 1), real)
    name = Path(a.photo).stem
    cs = [Contender(n, a.photo, tmp / n, a.seed, a.patch, a.device) for n in a.contenders.split(",")]
    for c in cs:
        c.loop.cfg.train.minutes = a.budget / 60  # schedules fit the budget, as in the studio
    rows = []
    ol = OtherLoad().start()
    for k in range(1, a.points + 1):
        for c in cs:
            c.train_until(a.budget * k / a.points)
            tex = c.texture()
            fake = crops(torch.from_numpy(tex).permute(2, 0, 1).float() / 127.5 - 1, 48, 128, a.seed + 2)
            g = grid_artifacts(fake, real)
            swd = image_swd(fake, real)
            rows.append([c.name, f"{c.train_s:.0f} s", c.steps, f"{swd:.0f} ({swd / floor:.2f}x)",
                         f"{g['mean']:.2f}", f"{g['max']:.1f} at {g['at']}", f"{seam_ratio(tex, c.loop.G_ema.cfg.scale):.3f}"])
            print("  " + " | ".join(str(x) for x in rows[-1]), flush=True)
            if a.sheets and k == a.points:
                out = Path(a.sheets)
                out.mkdir(parents=True, exist_ok=True)
                from PIL import Image
                small = np.asarray(Image.fromarray(tex).resize((512, 512), Image.Resampling.LANCZOS))
                save_png(out / f"texture_{name}_{c.name}.png", small,
                         {"contender": c.name, "training_s": f"{c.train_s:.0f}", "note": "1024 px texture at half size"})
    ol.stop()
    print(f"\n## Texture quality on `{name}` (`bench/texture_quality.py`)\n")
    print(f"Machine: {machine()}; other processes used {100 * ol.share:.0f}% of the CPU.\n")
    print(f"Command: `{command_line()}`\n")
    print(f"Floor (photo crops vs other photo crops): SWD **{floor:.0f}**.\n")
    print(md_table(["contender", "training", "steps", "SWD (x floor)", "grid mean", "grid max", "seam ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
