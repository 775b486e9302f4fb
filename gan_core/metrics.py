"""Image metrics that need no downloaded network: seam visibility and sliced Wasserstein distance."""
from __future__ import annotations

import numpy as np
import torch


def seam_ratio(img: np.ndarray) -> float:
    """How visible the wrap-around seam of a texture is, for an (H, W, C) image.

    Mean absolute difference between the last and first column (and row), divided by the mean
    difference between neighbouring columns (and rows) inside the image. About 1 means the seam
    looks like any other neighbour step; a visible seam is well above 1.
    """
    a = img.astype(np.float64)
    across = np.abs(a[:, -1] - a[:, 0]).mean() + np.abs(a[-1] - a[0]).mean()
    inside = np.abs(np.diff(a, axis=1)).mean() + np.abs(np.diff(a, axis=0)).mean()
    return float(across / max(inside, 1e-12))


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_proj: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two sets of vectors (N, D) and (M, D).

    Both sets are projected onto the same random unit directions; per direction the 1-D
    distance is computed between the sorted projections (resampled to a common length).
    """
    a, b = a.float().flatten(1), b.float().flatten(1)
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], n_proj, generator=g)
    dirs /= dirs.norm(dim=0, keepdim=True)
    pa, _ = (a @ dirs).sort(0)
    pb, _ = (b @ dirs).sort(0)
    n = max(len(pa), len(pb))
    q = torch.linspace(0, 1, n)
    ia = (q * (len(pa) - 1)).round().long()
    ib = (q * (len(pb) - 1)).round().long()
    return float((pa[ia] - pb[ib]).abs().mean())
