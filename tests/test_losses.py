"""Training losses: the generator's penalty on the 2-pixel grid."""
from __future__ import annotations

import torch

from gan_core.losses import pixel_grid_excess, pixel_grid_power
from gan_core.metrics import power_spectrum


def _smooth(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


def test_pixel_grid_power_is_the_spectrum_at_half_a_cycle_per_pixel():
    x = torch.randn(4, 3, 16, 12, generator=torch.Generator().manual_seed(1))
    p = power_spectrum(x) / (16 * 12)
    assert torch.allclose(pixel_grid_power(x), torch.stack([p[0, 6], p[8, 0], p[8, 6]]), rtol=1e-4)


def test_pixel_grid_excess_is_zero_like_the_real_images_and_falls_under_its_gradient():
    real = _smooth(seed=0)
    assert pixel_grid_excess(real, real) == 0 and pixel_grid_excess(0.5 * real, real) == 0  # as much or less
    ii, jj = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checker = (1 - 2 * ((ii + jj) % 2)).float()
    fake = (real + 0.2 * checker).requires_grad_(True)  # real images with a checkerboard over them
    before = pixel_grid_excess(fake, real)
    assert before > 3  # the checkerboard: e^3 = 20x the real power at the diagonal 1/2 frequency
    before.backward()
    with torch.no_grad():
        after = pixel_grid_excess(fake - 0.002 * fake.grad / fake.grad.abs().max(), real)
    assert after < before
    # the gradient lies at the 2-pixel period alone: it changes nothing at any other frequency
    g = power_spectrum(fake.grad)
    assert g[16, 16] > 0.999 * g.sum()
