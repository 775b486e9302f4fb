import numpy as np
import torch

from gan_core.metrics import seam_ratio, sliced_wasserstein


def test_seam_ratio_is_about_one_without_a_seam_and_high_with_one():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (700, 600, 3))
    fy, fx = np.fft.fftfreq(700)[:, None, None], np.fft.rfftfreq(600)[None, :, None]
    smooth = np.fft.irfft2(np.fft.rfft2(noise, axes=(0, 1)) * np.exp(-(fy**2 + fx**2) * 800), s=(700, 600), axes=(0, 1))
    plain = np.clip(128 + smooth / smooth.std() * 30, 0, 255).astype(np.uint8)  # smooth and periodic
    yy, xx = np.mgrid[:700, :600]
    ramp = np.clip(plain + (xx / 600 * 100)[..., None], 0, 255).astype(np.uint8)  # a jump at the wrap
    assert 0.8 < seam_ratio(plain) < 1.25  # no structure: the wrap step is like any other step
    assert seam_ratio(ramp) > 2 * seam_ratio(plain)


def test_the_seam_of_a_texture_drawn_on_a_lattice_is_compared_with_the_lattice_lines():
    # exactly periodic, with a thin bright line in the middle of every 32 px cell (as a model that
    # puts its mortar lines mid-cell): no seam, but every lattice line, the wrap edge among them,
    # is flat, so the plain ratio reads far below 1
    rng = np.random.default_rng(1)
    cell = np.full((256, 32, 3), 100.0) + rng.normal(0, 2, (256, 32, 3))
    cell[:, 15:17] += 80
    img = np.tile(cell, (1, 10, 1)).clip(0, 255).astype(np.uint8)  # 320 px wide, periodic
    assert seam_ratio(img) < 0.5
    assert 0.8 < seam_ratio(img, cell=32) < 1.25
    jump = img.copy()
    jump[:, :8] = (jump[:, :8].astype(int) + 60).clip(0, 255).astype(np.uint8)  # the first columns brighter: a seam
    assert seam_ratio(jump, cell=32) > 2


def test_sliced_wasserstein_is_zero_for_equal_sets_and_grows_with_shift():
    a = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(a, a) == 0
    near, far = sliced_wasserstein(a, a + 0.1), sliced_wasserstein(a, a + 1.0)
    assert 0 < near < far


def _blobs(n, seed, shift=0.0):
    """Smooth random colour images (n, 3, 32, 32) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False)
    return (x + shift).clamp(-1, 1)


def test_image_swd_ranks_a_fresh_draw_below_shifted_and_collapsed_sets():
    from gan_core.metrics import image_swd
    real, fresh = _blobs(64, 0), _blobs(64, 1)
    same = image_swd(fresh, real)
    shifted = image_swd(_blobs(64, 1, shift=0.5), real)
    collapsed = image_swd(fresh[:1].expand(64, -1, -1, -1), real)
    assert same < shifted / 3 and same < collapsed / 3


def test_grid_measure_is_about_one_for_real_images_and_finds_a_stride_pattern():
    from gan_core.metrics import grid_artifacts, grid_frequencies
    real, fresh = _blobs(96, 0), _blobs(96, 1)
    assert len(grid_frequencies(32, 32)) == 3 * 16  # 1/32 ... 16/32 cycles/px along x, y and the diagonal
    like = grid_artifacts(fresh, real)
    assert 0.7 < like["mean"] < 1.4 and like["max"] < 2.5
    # what a stride-2 stage leaves: every other pixel brighter (a checkerboard of period 2)
    board = fresh.clone()
    board[..., ::2, ::2] += 0.05
    bad = grid_artifacts(board, real)
    assert bad["max"] > 50 and bad["at"] == "diagonal 1/2" and bad["mean"] > 3 * like["mean"]
    # a merely blurrier set keeps the measure near 1 (normalised by the overall power ratio)
    blurred = grid_artifacts(torch.nn.functional.avg_pool2d(fresh, 3, 1, 1), real)
    assert blurred["max"] < bad["max"] / 10


def test_the_sampled_seam_ratio_of_large_images_follows_the_full_measure():
    from gan_core.metrics import seam_ratio_sampled

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (600, 900, 3), dtype=np.uint8)
    stripes = np.tile((np.sin(np.arange(900) / 7)[None, :, None] * 100 + 120), (600, 1, 3)).astype(np.uint8)
    for img in (noise, stripes):
        full = seam_ratio(img)
        assert seam_ratio_sampled(img) == full  # small: the exact measure
        assert abs(seam_ratio_sampled(img, limit=256) - full) < 0.05 * full  # corners only


def test_spread_is_zero_for_copies_and_grows_with_difference():
    from gan_core.metrics import spread
    x = torch.rand(1, 3, 8, 8).expand(6, -1, -1, -1)
    assert spread(x) == 0.0
    noisy = x + 0.1 * torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    more = x + 0.3 * torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert 0 < spread(noisy) < spread(more)
    assert abs(spread(more) - 3 * spread(noisy)) < 1e-5  # mean absolute difference: linear in the scale


def test_pooled_spread_ignores_speckle_but_not_layout():
    from gan_core.metrics import spread
    gen = torch.Generator().manual_seed(1)
    base = torch.rand(1, 3, 32, 32, generator=gen)
    speckled = base + 0.3 * torch.randn(8, 3, 32, 32, generator=gen)  # one picture, new speckle per seed
    layouts = torch.rand(8, 3, 4, 4, generator=gen).repeat_interleave(8, 2).repeat_interleave(8, 3)
    # at full resolution the speckled copies look as varied as different layouts ...
    assert spread(speckled) > 0.5 * spread(layouts)
    # ... averaged over 8 x 8 pixels the speckle is gone and the layouts' differences stay whole
    assert spread(speckled, pool=8) < 0.2 * spread(layouts, pool=8)
    assert abs(spread(layouts, pool=8) - spread(layouts)) < 1e-5
