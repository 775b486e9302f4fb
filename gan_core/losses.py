"""Adversarial losses and the gradient penalty. Always computed in float32."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .parallel import WHOLE, BatchShare


def d_loss(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    """Critic loss from the scores of real and generated images (any shape; averaged). For
    "rpgan" (relativistic pairing, R3GAN) the scores are paired row by row."""
    real, fake = real.float(), fake.float()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "rpgan":
        return F.softplus(fake - real).mean()
    raise ValueError(f"unknown loss {kind!r}")


def g_loss(fake: torch.Tensor, kind: str, real: torch.Tensor | None = None) -> torch.Tensor:
    """Generator loss: raise the critic's score of generated images (WGAN and hinge alike); for
    "rpgan", raise it above the paired real image's score (`real`)."""
    if kind == "rpgan":
        return F.softplus(real.float().detach() - fake.float()).mean()
    return -fake.float().mean()


def zero_centred_penalty(critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """R1 (on real images) or R2 (on generated ones): the mean squared norm of the critic's gradient
    with respect to its input, which pulls the critic towards flat at the data (Mescheder 2018)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).float().sum(), x, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, gen: torch.Generator | None = None,
                     share: BatchShare = WHOLE) -> torch.Tensor:
    """WGAN-GP: mean over samples of (||grad_x D(x_hat)|| - 1)^2 at random interpolates x_hat.

    `critic` scores a batch; the caller binds each image's own label (or source) to it, so that
    every interpolate is judged with the condition of the pair it was made from. The norm has a
    small epsilon so a zero gradient gives a finite penalty gradient instead of NaN. The mixing
    weights are drawn for the whole global batch and `share` picks this process's rows.
    """
    b = real.shape[0]
    alpha = share.rand(gen, b, 1, 1, 1).to(real.device, real.dtype)
    x = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    score = critic(x).float()
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    norm = torch.sqrt(grad.float().pow(2).flatten(1).sum(1) + 1e-12)
    return (norm - 1.0).pow(2).mean()


def pixel_grid_power(x: torch.Tensor) -> torch.Tensor:
    """Mean power of images (B, C, H, W) at the 2-pixel period: the three frequencies of half a cycle
    per pixel (along x, along y, and diagonal: the checkerboard), as a tensor of 3. These are the
    patterns a x2 nearest resize followed by a convolution leaves when its four output phases drift
    apart. (H and W even.)"""
    h, w = x.shape[-2:]
    sy = 1 - 2 * (torch.arange(h, device=x.device) % 2).to(x.dtype)  # +1, -1, +1, ...
    sx = 1 - 2 * (torch.arange(w, device=x.device) % 2).to(x.dtype)
    x = x.float() - x.float().mean(dim=(2, 3), keepdim=True)
    amps = torch.stack([(x * sx).sum((2, 3)), (x * sy[:, None]).sum((2, 3)), (x * sy[:, None] * sx).sum((2, 3))])
    return amps.pow(2).mean(dim=(1, 2)) / (h * w)


def pixel_grid_excess(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """How far the generated images' power at the 2-pixel period exceeds the real images' (in log
    units, summed over x, y and the diagonal; 0 where it does not). A generator penalty in the spirit
    of spectral regularisation (Durall et al. 2020), limited to the one pattern of resize upsampling:
    it does nothing to any other frequency."""
    eps = 1e-8
    return F.relu(torch.log(pixel_grid_power(fake) + eps) - torch.log(pixel_grid_power(real.detach()) + eps)).sum()


def mirror_asymmetry(x: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How much more power images (B, C, H, W) of each class carry along one diagonal than along its
    mirror image, per class and per octave band of frequency (2-4, 4-8, ... up to the Nyquist
    frequency, in cycles per image): the log of the power in the quadrant (fx > 0, fy > 0) over that
    in (fx < 0, fy > 0), the same frequencies mirrored left to right. Images flipped left-right at
    random, as the real ones are in training, give about 0; a generator whose pictures all carry
    diagonal streaks one way gives a clear sign, and the mirror images of a set give its negative.
    Returns (n_classes, bands) and a mask (n_classes,) of the classes present in y (H = W >= 8)."""
    h = x.shape[-1]
    x = x.float() - x.float().mean(dim=(2, 3), keepdim=True)
    p = torch.fft.fft2(x).abs().pow(2).mean(1)  # (B, H, W)
    k = torch.arange(1, h // 2, device=x.device)
    q_plus = p[:, 1:h // 2, 1:h // 2]  # fy = 1..h/2-1, fx = 1..h/2-1
    q_minus = p[:, 1:h // 2, h // 2 + 1:].flip(2)  # the same fy, fx = -1..-(h/2-1)
    radius = torch.maximum(k[:, None], k[None, :])
    edges = [2 ** i for i in range(1, int(math.log2(h)))]  # 2, 4, ..., h/2
    bands = [(radius >= lo) & (radius < hi) for lo, hi in zip(edges[:-1], edges[1:])]
    onehot = F.one_hot(y.long(), n_classes).to(p.dtype)  # (B, n_classes)
    count = onehot.sum(0)
    out = []
    for band in bands:
        plus = onehot.T @ (q_plus * band).sum((1, 2))  # (n_classes,) summed over the class's images
        minus = onehot.T @ (q_minus * band).sum((1, 2))
        out.append(torch.log(plus + 1e-8) - torch.log(minus + 1e-8))
    return torch.stack(out, 1), count > 0
