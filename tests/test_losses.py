"""Training losses: the generator's penalty on the 2-pixel grid."""
from __future__ import annotations

import torch

from gan_core.losses import mirror_asymmetry, pixel_grid_excess, pixel_grid_power
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


def _streaks(n: int, size: int = 32, k: int = 3) -> torch.Tensor:
    """n noisy images with diagonal streaks running one way (k cycles per image along x and y)."""
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    lines = torch.sin(2 * torch.pi * k * (xx + yy) / size)
    return 0.3 * torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0)) + lines


def test_mirror_asymmetry_sees_a_one_way_grain_per_class_and_not_a_set_flipped_at_random():
    x, y = _streaks(4), torch.tensor([0, 0, 2, 2])
    lean, present = mirror_asymmetry(x, y, 3)
    assert lean.shape == (3, 3) and present.tolist() == [True, False, True]  # bands 2-4, 4-8, 8-16 at 32 px
    assert lean[0, 0] > 2 and lean[2, 0] > 2  # 3 cycles per image: the first band, one way
    assert torch.allclose(mirror_asymmetry(x.flip(3), y, 3)[0], -lean, atol=1e-4)  # the mirror images: the other way
    both = mirror_asymmetry(torch.cat([x, x.flip(3)]), torch.cat([y, y]), 3)[0]
    assert both.abs().max() < 1e-4  # each image with its mirror image: no lean


def test_the_generators_mirror_term_pulls_against_a_lasting_lean(tmp_path):
    from tests.conftest import make_class_folder, tiny_cgan
    from gan_core.train import Trainer
    cfg = tiny_cgan(make_class_folder(tmp_path / "data"), mirror_balance=1.0, precision="fp32")
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path / "run", torch.device("cpu"))
    fake, y = _streaks(4).requires_grad_(True), torch.tensor([0, 0, 1, 1])
    rec = {}
    for _ in range(100):  # the lean lasts: its running average approaches it
        term = loop.mirror_term(fake, y, rec)
    lean = mirror_asymmetry(fake.detach(), y, 3)[0]
    assert torch.allclose(loop.mirror_bias[:2], lean[:2], rtol=0.2) and loop.mirror_bias[2].abs().max() == 0
    assert rec["mirror_bias"] > 0.5
    term.backward()
    stepped = fake.detach() - 0.5 * fake.grad / fake.grad.abs().max()
    assert mirror_asymmetry(stepped, y, 3)[0][:2, 0].max() < lean[:2, 0].min()  # down the gradient: less lean
