"""Sampling a conditional generator: seeds, truncation, class blending, interpolation, grids,
looping animations and PNG / GIF / WebP files with their settings written in.

A `View` is what the Explore tab (or a notebook) shows: seeds A and B, the position between them,
the path (slerp or lerp), truncation, the number of images and the class blend.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, PngImagePlugin

from .data import to_uint8
from .errors import ConfigError
from .io import atomic_write
from . import spectrum


def noise(seeds: list[int], nz: int, truncation: float = 1.0) -> torch.Tensor:
    """One latent vector per seed (the same seed always gives the same vector).

    truncation in (0, 1]: below 1, values beyond 2 standard deviations are redrawn and the vector
    is scaled by `truncation`, pulling samples towards the average image (less variety, fewer
    odd samples). 1 gives the plain normal distribution the model was trained on.
    """
    if not 0 < truncation <= 1:
        raise ConfigError(f"truncation must be in (0, 1], got {truncation}.")
    out = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        z = torch.randn(nz, generator=g)
        if truncation < 1.0:
            bound = 2.0
            bad = z.abs() > bound
            while bad.any():  # resample outliers from the same seeded stream
                z[bad] = torch.randn(int(bad.sum()), generator=g)
                bad = z.abs() > bound
            z = z * truncation
        out.append(z)
    return torch.stack(out)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation along the great circle between a and b (per row)."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def class_weights(class_names: list[str], spec: dict[str, float] | str) -> torch.Tensor:
    """(1, n_classes) blend weights from {"urban": 0.3, "forest": 0.7} or a single class name."""
    if isinstance(spec, str):
        spec = {spec: 1.0}
    w = torch.zeros(1, len(class_names))
    for name, v in spec.items():
        if name not in class_names:
            raise ConfigError(f"unknown class {name!r}; this model knows: {', '.join(class_names)}.")
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"class weights must be finite and not negative, got {name}={v}.")
        w[0, class_names.index(name)] = float(v)
    if w.sum() <= 0:
        raise ConfigError("at least one class weight must be above zero.")
    return w / w.sum()


@torch.inference_mode()
def generate(G, z: torch.Tensor, weights: torch.Tensor, equalise: bool = True) -> torch.Tensor:
    """Images (B, 3, R, R) in [-1, 1] for latents z (B, nz) and class weights (1 or B, n_classes),
    through the generator's spectral equaliser where it has one (gan_core.spectrum) unless not
    `equalise`."""
    dev = next(G.parameters()).device
    emb = G.class_embedding(weights.to(dev)).expand(z.shape[0], -1)
    x = G(z.to(dev), embedding=emb).float().cpu()
    gains = getattr(G, "spectral_gain", None) if equalise else None
    if gains is not None:
        w = weights.float().cpu()
        x = spectrum.equalise(x, spectrum.blend(gains, w / w.sum(1, keepdim=True)))
    return x


def grid(images: torch.Tensor, ncol: int, pad: int = 2) -> np.ndarray:
    """Tile images (B, 3, H, W) in [-1, 1] into one uint8 (H', W', 3) array, row by row, on white."""
    if images.shape[0] == 1:  # make_grid returns a lone image without its frame
        tiled = F.pad(images[0].float(), (pad,) * 4, value=1.0)
    else:
        from torchvision.utils import make_grid  # here: importing torchvision takes seconds, and most
        #                                          commands (help, checks, textures) draw no grid
        tiled = make_grid(images.float(), nrow=ncol, padding=pad, pad_value=1.0)
    return to_uint8(tiled).permute(1, 2, 0).numpy().copy()


def picture_grid(pictures: list[np.ndarray], ncol: int = 8, pad: int = 2) -> np.ndarray:
    """`grid` for pictures already drawn: (H, W, 3) uint8 arrays of one size, in rows of `ncol`."""
    t = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return grid(t, min(len(pictures), ncol), pad)


def class_grid(G, class_names: list[str], n_per_class: int, seed: int = 0, truncation: float = 1.0) -> np.ndarray:
    """One row per class, the same noise in every row (so columns compare classes)."""
    z = noise(list(range(seed, seed + n_per_class)), G.cfg.nz, truncation)
    rows = [generate(G, z, class_weights(class_names, c)) for c in class_names]
    return grid(torch.cat(rows), n_per_class)


def save_png(path: str | os.PathLike, img: np.ndarray, metadata: dict[str, str] | None = None) -> None:
    """Atomically write an (H, W, 3) uint8 image as PNG, with text metadata (e.g. the parameters)."""
    info = PngImagePlugin.PngInfo()
    for k, v in (metadata or {}).items():
        info.add_text(str(k), str(v))
    atomic_write(path, lambda p: Image.fromarray(img).save(p, format="PNG", pnginfo=info))


# ---------------------------------------------------------------------------------------------
# Views: what the Explore tab shows
# ---------------------------------------------------------------------------------------------
@dataclass
class View:
    """Seeds A and B (image i uses seed + i), the position between them, the path, truncation,
    the number of images, and the class blend ({class name: weight}, normalised when drawn)."""

    blend: dict[str, float] = field(default_factory=dict)
    seed_a: int = 0
    seed_b: int = 1
    position: float = 0.0
    method: str = "slerp"
    truncation: float = 1.0
    n: int = 4

    def latents(self, nz: int, t: float | None = None) -> torch.Tensor:
        """The n latents at position t (default: the view's position) on the path from A to B."""
        za = noise(list(range(self.seed_a, self.seed_a + self.n)), nz, self.truncation)
        zb = noise(list(range(self.seed_b, self.seed_b + self.n)), nz, self.truncation)
        path = slerp if self.method == "slerp" else lerp
        return path(za, zb, self.position if t is None else float(t))

    def metadata(self, model_name: str) -> dict[str, str]:
        """The settings, as text to write into an exported file."""
        return {"software": "GAN Studio", "model": model_name, "classes": json.dumps(self.blend),
                "seed_a": str(self.seed_a), "seed_b": str(self.seed_b), "position": f"{self.position:.3f}",
                "interpolation": self.method, "truncation": f"{self.truncation:.3f}", "n": str(self.n)}


def view_image(G, class_names: list[str], view: View, t: float | None = None) -> np.ndarray:
    """The view's images in one picture (up to 8 per row)."""
    z = view.latents(G.cfg.nz, t)
    return grid(generate(G, z, class_weights(class_names, view.blend)), min(z.shape[0], 8))


def interpolation_grid(G, class_names: list[str], view: View, steps: int = 8) -> np.ndarray:
    """One row from seed A to seed B in `steps` steps (the first image of the view)."""
    one = View(view.blend, view.seed_a, view.seed_b, 0.0, view.method, view.truncation, 1)
    z = torch.cat([one.latents(G.cfg.nz, k / (steps - 1)) for k in range(steps)])
    return grid(generate(G, z, class_weights(class_names, view.blend)), steps)


def loop_frames(G, class_names: list[str], view: View, frames: int,
                on_progress: Callable[[float], None] | None = None) -> list[np.ndarray]:
    """Frames of a loop A -> B -> A with eased speed, so it repeats without a jump."""
    out = []
    for i in range(frames):
        out.append(view_image(G, class_names, view, t=0.5 - 0.5 * math.cos(2 * math.pi * i / frames)))
        if on_progress:
            on_progress((i + 1) / frames)
    return out


def save_animation(frames: list[np.ndarray], path: str | os.PathLike, ms: int = 60) -> None:
    """Atomically write frames as a looping GIF or (lossless) WebP, chosen by the file's suffix."""
    kind = os.path.splitext(str(path))[1].lower()
    opts = {".gif": {"format": "GIF", "disposal": 2}, ".webp": {"format": "WEBP", "lossless": True}}.get(kind)
    if opts is None:
        raise ConfigError(f"Animations are written as .gif or .webp, not {kind or 'a file without suffix'}.")
    pics = [Image.fromarray(f) for f in frames]
    atomic_write(path, lambda p: pics[0].save(p, save_all=True, append_images=pics[1:], duration=ms, loop=0,
                                              **opts))
