"""Adversarial losses and the gradient penalty. Always computed in float32."""
from __future__ import annotations

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
