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
    a = np.asarray(img)
    across = np.abs(a[:, -1].astype(np.float32) - a[:, 0]).mean() + np.abs(a[-1].astype(np.float32) - a[0]).mean()
    inside, n_rows = 0.0, a.shape[0]
    for y in range(0, n_rows, 512):  # in row blocks: an 8192 px image stays within a few hundred MB
        blk = a[y:min(y + 513, n_rows)].astype(np.float32)
        inside += np.abs(np.diff(blk[: min(512, n_rows - y)], axis=1)).sum() / (n_rows * (a.shape[1] - 1))
        if len(blk) > 1:
            inside += np.abs(np.diff(blk, axis=0)).sum() / ((n_rows - 1) * a.shape[1])
    return float(across / max(inside / (a.shape[2] if a.ndim == 3 else 1), 1e-12))


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
