"""Looks within a class: training images of a class grouped by how they look, and latents tied to
the groups (TrainConfig.submodes).

A class folder often holds several different looks (two photos cut into crops: a black star field
and a white space suit). A generator given the class alone decides for itself how much of its noise
goes to each look, and a short run can give one look far more of its seeds than the folder has
(bench/mode_share.py). With submodes K, each class's training images are split into K groups by
their 8 x 8 colours and how busy they are (k-means); the critic is told each image's group, and the
generator's first latent value carries it: group s of a class owns the slice of N(0, 1) whose
probability is the group's share of the class's images. A generated image's group is thus set by
its noise, and the critic holds it to that group's images; the generator itself is unchanged, and
noise drawn as usual (samples, Explore, exports) falls in each group at the images' own share.
"""
from __future__ import annotations

import torch

from .data import to_float

ITERATIONS = 25  # k-means rounds (a few hundred small descriptions: settled well before)
EDGE = 1e-6  # latent quantiles stay this far inside (0, 1)
CHUNK = 256  # images described at a time


def describe(images: torch.Tensor) -> torch.Tensor:
    """A small description of each image (B, 3, H, W) in [-1, 1]: its 8 x 8 average colours and the
    spread of each channel at full and half size (how busy it is), the two parts scaled alike."""
    x = images.float()
    coarse = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
    half = torch.nn.functional.avg_pool2d(x, 2)
    busy = torch.cat([x.flatten(2).std(2), half.flatten(2).std(2)], 1)
    return torch.cat([coarse / 8, busy], 1)  # 192 colour values count about as much as the 6 spreads


def kmeans(points: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Centres (k', D) of k-means on points (N, D), k' = min(k, N); k-means++ starts drawn with
    `seed`, so the same images always give the same groups. A centre left without points restarts at
    the point farthest from every centre."""
    g = torch.Generator().manual_seed(seed)
    n, k = len(points), min(k, len(points))
    centres = [points[int(torch.randint(n, (1,), generator=g))]]
    for _ in range(1, k):  # k-means++: the next start far from those chosen, drawn by squared distance
        d2 = torch.cdist(points, torch.stack(centres)).min(1).values.pow(2)
        pick = int(torch.multinomial(d2, 1, generator=g)) if d2.sum() > 0 else int(torch.randint(n, (1,), generator=g))
        centres.append(points[pick])
    c = torch.stack(centres).clone()
    for _ in range(ITERATIONS):
        d = torch.cdist(points, c)
        near = d.argmin(1)
        for j in range(k):
            members = points[near == j]
            if len(members):
                c[j] = members.mean(0)
            else:
                c[j] = points[d.min(1).values.argmax()]
    return c


def split_classes(images: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor, n_classes: int,
                  k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The group (0..k-1) of every image, and each class's cumulative group shares (n_classes, k + 1).

    images: uint8 or float (N, 3, H, W); groups are fitted per class on its training images
    (train_idx) and every image, held-back ones too, goes to its nearest centre. Groups are numbered
    by size, largest first; a class with fewer than k training images has fewer groups, and the
    others' shares are 0."""
    desc = torch.cat([describe(to_float(x) if x.dtype == torch.uint8 else x)
                      for x in images.split(CHUNK)])  # in chunks: a large folder's images as floats at once
    group = torch.zeros(len(labels), dtype=torch.long)
    bounds = torch.zeros(n_classes, k + 1)
    train = torch.zeros(len(labels), dtype=torch.bool)
    train[train_idx] = True
    for c in range(n_classes):
        members = torch.nonzero(labels == c).flatten()
        fit = members[train[members]]
        if not len(fit):
            bounds[c, 1:] = 1.0
            continue
        centres = kmeans(desc[fit], k, seed + c)
        near = torch.cdist(desc[members], centres).argmin(1)
        counts = torch.bincount(near[train[members]], minlength=len(centres)).float()
        order = torch.argsort(counts, descending=True, stable=True)  # renumber: largest group first
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order))
        group[members] = rank[near]
        share = torch.zeros(k)
        share[:len(centres)] = counts[order] / counts.sum()
        bounds[c, 1:] = share.cumsum(0)
        bounds[c, -1] = 1.0
    return group, bounds


def class_of(cond: torch.Tensor, k: int) -> torch.Tensor:
    """The class of each critic condition (class * k + group; with k = 1 the condition is the class)."""
    return torch.div(cond, k, rounding_mode="floor")


def place(z: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Latents z (B, nz) drawn from N(0, I) with their first value moved into the slice of N(0, 1)
    between the quantiles lo and hi (B,): the value's own quantile u becomes lo + u (hi - lo), so a
    latent of N(0, I) is still one, given its group's slice."""
    u = torch.special.ndtr(z[:, 0].float())
    q = (lo.float() + u * (hi - lo).float()).clamp(EDGE, 1 - EDGE)
    out = z.clone()
    out[:, 0] = torch.special.ndtri(q).to(z.dtype)
    return out


def group_of_latent(z: torch.Tensor, bounds: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The group whose slice holds each latent's first value (z (B, nz), classes y (B,))."""
    u = torch.special.ndtr(z[:, 0].float())
    inner = bounds[y][:, 1:-1].float()  # (B, k - 1): the slices' inner edges
    return (u[:, None] >= inner).sum(1)
