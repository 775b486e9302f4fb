"""Differentiable augmentation for small datasets (the DiffAugment idea, Zhao et al. 2020).

The same random transforms are applied to real and generated images before the critic sees
them, in both the critic and the generator step, so the critic cannot memorise a small dataset
and the generator still learns the un-augmented distribution. Every random draw comes from the
given torch.Generator, so a resumed run repeats the same augmentations. Under data-parallel
training the values are drawn for the whole global batch and each process applies its own rows
(`share`, see parallel.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .parallel import WHOLE, BatchShare


def color(x: torch.Tensor, gen: torch.Generator, share: BatchShare = WHOLE) -> torch.Tensor:
    b = x.shape[0]
    x = x + (share.rand(gen, b, 1, 1, 1).to(x.device) - 0.5)  # brightness
    m = x.mean(1, keepdim=True)
    x = (x - m) * (share.rand(gen, b, 1, 1, 1).to(x.device) * 2.0) + m  # saturation
    m = x.mean((1, 2, 3), keepdim=True)
    return (x - m) * (share.rand(gen, b, 1, 1, 1).to(x.device) + 0.5) + m  # contrast


def translation(x: torch.Tensor, gen: torch.Generator, share: BatchShare = WHOLE,
                ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels; uncovered pixels become 0 (mid grey)."""
    b, c, h, w = x.shape
    sy, sx = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    ty = share.randint(gen, -sy, sy + 1, b, 1, 1).to(x.device)
    tx = share.randint(gen, -sx, sx + 1, b, 1, 1).to(x.device)
    gy = (torch.arange(h, device=x.device)[None, :, None] + ty + 1).clamp(0, h + 1)
    gx = (torch.arange(w, device=x.device)[None, None, :] + tx + 1).clamp(0, w + 1)
    xp = F.pad(x, (1, 1, 1, 1))
    bi = torch.arange(b, device=x.device)[:, None, None]
    return xp.permute(0, 2, 3, 1)[bi, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, share: BatchShare = WHOLE, ratio: float = 0.5) -> torch.Tensor:
    """Zero a random square of ratio * size per image."""
    b, c, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = share.randint(gen, 0, h + (1 - ch % 2), b, 1, 1).to(x.device)
    ox = share.randint(gen, 0, w + (1 - cw % 2), b, 1, 1).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= oy - ch // 2) & (ys < oy - ch // 2 + ch) & (xs >= ox - cw // 2) & (xs < ox - cw // 2 + cw)
    return x * (~inside)[:, None].to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


class GroupDraws:
    """A BatchShare whose random values are drawn once per group of `group` images and shared by
    its members. The groups are the critic's minibatch-std groups: global rows i, i + B/g,
    i + 2B/g, ... (nets.cgan.minibatch_std). Transforms drawn per image would give a generator
    that makes one image per class the spread of a real group: shifted, recoloured and cut
    differently, its copies no longer look alike to the critic, which then cannot see the collapse."""

    def __init__(self, share: BatchShare, group: int):
        self.share, self.group = share, group

    def _draw(self, make, n: int, shape: tuple[int, ...]) -> torch.Tensor:
        total = n * self.share.world
        if total % self.group:
            raise ValueError(f"a batch of {total} does not split into groups of {self.group}")
        one = make((total // self.group, *shape))
        return self.share.rows(one.repeat(self.group, *([1] * len(shape))))

    def rand(self, gen, n: int, *shape: int) -> torch.Tensor:
        return self._draw(lambda size: torch.rand(size, generator=gen), n, shape)

    def randint(self, gen, low: int, high: int, n: int, *shape: int) -> torch.Tensor:
        return self._draw(lambda size: torch.randint(low, high, size, generator=gen), n, shape)


def augment(x: torch.Tensor, policy: list[str], gen: torch.Generator, share: BatchShare = WHOLE,
            p: float = 1.0, group: int = 1) -> torch.Tensor:
    """Apply each transform of `policy` in turn. With p < 1 each transform reaches each image with
    probability p (the adaptive strength of ADA, Karras et al. 2020); the others pass unchanged.
    `group` > 1: the images of each minibatch-std group share their draws (GroupDraws)."""
    if group > 1:
        share = GroupDraws(share, group)
    for name in policy:
        y = POLICIES[name](x, gen, share)
        if p < 1.0:
            keep = share.rand(gen, x.shape[0]).to(x.device) < p
            y = torch.where(keep[:, None, None, None], y, x)
        x = y
    return x
