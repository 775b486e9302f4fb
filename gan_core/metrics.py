"""Image metrics that need no downloaded network: seam visibility, sliced Wasserstein distance and
the grid-artifact measure."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch


SEAM_VISIBLE = 1.5  # a seam_ratio from which the wrap-around seam shows when the texture is repeated


def seam_ratio(img: np.ndarray, cell: int | None = None) -> float:
    """How visible the wrap-around seam of a texture is, for an (H, W, C) image.

    Mean absolute difference between the last and first column (and row), divided by the mean
    difference between neighbouring columns (and rows) inside the image. About 1 means the seam
    looks like any other neighbour step; a visible seam is well above 1.

    cell: the texture generator's cell size (2**depth px). Its textures are drawn on that lattice
    and the wrap-around edge is a lattice line, so with `cell` the edge is compared with the steps
    across the other lattice lines only: a model that puts its brick joints mid-cell has small
    steps on every lattice line, and the plain ratio would read that as "smoother than inside".
    """
    a = np.asarray(img)
    across = np.abs(a[:, -1].astype(np.float32) - a[:, 0]).mean() + np.abs(a[-1].astype(np.float32) - a[0]).mean()
    if cell and cell < min(a.shape[:2]):
        def lines(axis: int) -> float:  # mean step across the inner lattice lines along an axis
            at = np.arange(cell, a.shape[axis], cell)
            return float(np.abs(np.take(a, at, axis).astype(np.float32) - np.take(a, at - 1, axis)).mean())
        return float(across / max(lines(1) + lines(0), 1e-12))
    inside, n_rows = 0.0, a.shape[0]
    for y in range(0, n_rows, 512):  # in row blocks: an 8192 px image stays within a few hundred MB
        blk = a[y:min(y + 513, n_rows)].astype(np.float32)
        inside += np.abs(np.diff(blk[: min(512, n_rows - y)], axis=1)).sum() / (n_rows * (a.shape[1] - 1))
        if len(blk) > 1:
            inside += np.abs(np.diff(blk, axis=0)).sum() / ((n_rows - 1) * a.shape[1])
    return float(across / max(inside / (a.shape[2] if a.ndim == 3 else 1), 1e-12))


def seam_ratio_sampled(img: np.ndarray, limit: int = 4096, cell: int | None = None) -> float:
    """seam_ratio; above limit x limit px measured on the four corner blocks (they hold every
    wrap-around neighbour pair near the corners), which keeps time and memory bounded. With `cell`
    only the lattice lines are read, which stays small at any size."""
    h, w = img.shape[:2]
    if cell or h * w <= limit * limit:
        return seam_ratio(img, cell)
    m = limit // 4
    rows = np.r_[0:min(m, h), max(h - m, 0):h] if h > 2 * m else np.arange(h)
    cols = np.r_[0:min(m, w), max(w - m, 0):w] if w > 2 * m else np.arange(w)
    return seam_ratio(img[np.ix_(rows, cols)])


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


def patch_descriptors(images: torch.Tensor, n_per_image: int, size: int = 7, seed: int = 0) -> torch.Tensor:
    """Random size x size RGB neighbourhoods of images (B, 3, H, W), flattened to (B * n, 3 * size**2)."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = images.shape
    ys = torch.randint(h - size + 1, (b, n_per_image), generator=g)
    xs = torch.randint(w - size + 1, (b, n_per_image), generator=g)
    off = torch.arange(size)
    rows = (ys[..., None] + off)[..., :, None].expand(b, n_per_image, size, size)
    cols = (xs[..., None] + off)[..., None, :].expand(b, n_per_image, size, size)
    bi = torch.arange(b)[:, None, None, None].expand_as(rows)
    patches = images.float().permute(0, 2, 3, 1)[bi, rows, cols]  # (b, n, size, size, c)
    return patches.reshape(b * n_per_image, -1)


def image_swd(fake: torch.Tensor, real: torch.Tensor, levels: int = 3, n_per_image: int = 64,
              n_proj: int = 512, seed: int = 0) -> float:
    """Sliced Wasserstein distance between two image sets (B, 3, H, W) in [-1, 1], x 1000.

    The ProGAN recipe without any learned network: at each level of an image pyramid (full size,
    1/2, 1/4), random 7x7 neighbourhoods are taken from every image, normalised with the real
    set's per-coordinate mean and spread, and compared by sliced Wasserstein distance; the levels
    are averaged. It sees colour, local texture and (at the coarse levels) layout. 0 means the same
    distribution; a set against a fresh draw of its own kind gives the practical floor.
    """
    fake, real = fake.float(), real.float()
    dists = []
    for level in range(levels):
        if level:
            fake, real = torch.nn.functional.avg_pool2d(fake, 2), torch.nn.functional.avg_pool2d(real, 2)
        if min(fake.shape[-1], real.shape[-1]) < 7:
            break
        df = patch_descriptors(fake, n_per_image, seed=seed + level)
        dr = patch_descriptors(real, n_per_image, seed=seed + 100 + level)
        mean, std = dr.mean(0), dr.std(0).clamp_min(1e-6)
        dists.append(sliced_wasserstein((df - mean) / std, (dr - mean) / std, n_proj, seed + level))
    return 1000 * sum(dists) / len(dists)


def spread(images: torch.Tensor, limit: int = 64, pool: int = 1) -> float:
    """How much a set of images (B, C, H, W) differ from each other: the mean absolute difference per
    value over all pairs of its first `limit` images. A generator that ignores its noise gives about
    0; compare with the spread of real images of the same class (a ratio of about 1 = as varied).

    `pool` > 1 averages pool x pool pixels first, so pixel-scale speckle (which differs between any
    two noisy images) stops counting and what is left is how much the layout and colour differ: eight
    seeds that draw one picture with different speckle are varied at pool 1 and alike at pool 8."""
    x = images[:limit].float()
    if pool > 1:
        x = torch.nn.functional.avg_pool2d(x, pool)
    x = x.flatten(1)
    if len(x) < 2:
        return float("nan")
    d = torch.cdist(x, x, p=1) / x.shape[1]
    return float(d.sum() / (len(x) * (len(x) - 1)))


GRID_PERIODS = (2, 4, 8, 16, 32)


def power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean 2-D power spectrum (H, W) of images (B, C, H, W), each channel's own mean removed."""
    x = images.float()
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return torch.fft.fft2(x).abs().pow(2).mean(dim=(0, 1))


def grid_frequencies(h: int, w: int, periods=GRID_PERIODS) -> list[tuple[str, int, int]]:
    """The spectrum bins a stride-2 stage leaves its pattern at: the multiples of 1/p cycles per pixel
    (p in `periods`, up to the Nyquist frequency 1/2) along x, along y and along the diagonal, as
    (label, row bin, column bin). Periods longer than the image are left out."""
    out, seen = [], set()
    for p in periods:
        if p > min(h, w) or h % p or w % p:
            continue
        for k in range(1, p // 2 + 1):  # k / p cycles per pixel
            by, bx = h * k // p, w * k // p
            for label, b in (("x", (0, bx)), ("y", (by, 0)), ("diagonal", (by, bx))):
                if (label, b) not in seen:
                    seen.add((label, b))
                    out.append((f"{label} {Fraction(k, p)}", *b))  # e.g. "x 3/8": 3/8 cycles per pixel
    return out


def grid_artifacts(fake: torch.Tensor, real: torch.Tensor, periods=GRID_PERIODS) -> dict:
    """How much more regular grid than real images a set of images (B, 3, H, W) carries.

    At each bin of grid_frequencies, the power of the generated images divided by that of the real
    ones, normalised by the ratio of their total power (DC left out), so a set that is merely
    blurrier or sharper overall stays near 1 and a stride pattern stands out. Returns {"mean": the
    mean of those ratios (about 1 = like real images), "max": the largest, "at": its bin's label,
    "ratios": {label: ratio}}.
    """
    if fake.shape[-2:] != real.shape[-2:]:
        raise ValueError("grid_artifacts needs images of the same size")
    pf, pr = power_spectrum(fake), power_spectrum(real)
    overall = float(pf.sum() / pr.sum().clamp_min(1e-12))
    h, w = pf.shape
    ratios = {label: float(pf[by, bx] / pr[by, bx].clamp_min(1e-12)) / max(overall, 1e-12)
              for label, by, bx in grid_frequencies(h, w, periods)}
    if not ratios:
        return {"mean": float("nan"), "max": float("nan"), "at": "", "ratios": {}}
    at = max(ratios, key=ratios.get)
    return {"mean": sum(ratios.values()) / len(ratios), "max": ratios[at], "at": at, "ratios": ratios}
