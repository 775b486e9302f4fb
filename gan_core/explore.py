"""Sampling a conditional generator: seeds, truncation, class blending, interpolation, grids, PNGs."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from .data import to_uint8
from .errors import ConfigError
from .io import atomic_write


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
        if v < 0:
            raise ConfigError("class weights must not be negative.")
        w[0, class_names.index(name)] = float(v)
    if w.sum() <= 0:
        raise ConfigError("at least one class weight must be above zero.")
    return w / w.sum()


@torch.inference_mode()
def generate(G, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, R, R) in [-1, 1] for latents z (B, nz) and class weights (1 or B, n_classes)."""
    dev = next(G.parameters()).device
    emb = G.class_embedding(weights.to(dev)).expand(z.shape[0], -1)
    return G(z.to(dev), embedding=emb).float().cpu()


def grid(images: torch.Tensor, ncol: int, pad: int = 2) -> np.ndarray:
    """Tile images (B, 3, H, W) in [-1, 1] into one uint8 (H', W', 3) array, row by row."""
    b, _, h, w = images.shape
    nrow = (b + ncol - 1) // ncol
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    arr = to_uint8(images).permute(0, 2, 3, 1).numpy()
    for i in range(b):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = arr[i]
    return out


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
