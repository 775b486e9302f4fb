"""Sampling a conditional model: views, interpolation, grids and looping animations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core.checkpoint import load_generator
from gan_core.errors import ConfigError
from gan_core.sampling import View, grid, interpolation_grid, loop_frames, noise, picture_grid, save_animation, \
    view_image
from tests.helpers import make_model_folder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    G, cfg = load_generator(make_model_folder(tmp_path_factory.mktemp("m") / "colours"))
    return G, cfg.model.class_names


def test_a_view_moves_from_seed_a_to_seed_b():
    v = View({"red": 1.0}, seed_a=3, seed_b=9, n=2, method="lerp")
    assert torch.equal(v.latents(8, 0.0), noise([3, 4], 8)) and torch.allclose(v.latents(8, 1.0), noise([9, 10], 8))
    s = View({"red": 1.0}, seed_a=3, seed_b=9, n=2)
    half = s.latents(8, 0.5)
    assert torch.allclose(half.norm(dim=1), (noise([3, 4], 8).norm(dim=1) + noise([9, 10], 8).norm(dim=1)) / 2,
                          rtol=0.1)  # slerp keeps the noise's length (about)
    assert not torch.allclose(half, v.latents(8, 0.5))


def test_views_grids_and_interpolation_rows(model):
    G, names = model
    v = View({names[0]: 1.0}, 0, 1, 0.0, "slerp", 1.0, 3)
    img = view_image(G, names, v)
    assert img.shape == (2 + 34, 2 + 3 * 34, 3) and (img[0] == 255).all()  # a white frame
    row = interpolation_grid(G, names, v, steps=5)
    assert row.shape == (36, 2 + 5 * 34, 3)
    assert (row[2:34, 2:34] == img[2:34, 2:34]).all()  # the row starts at the view's first image
    blended = view_image(G, names, View({names[0]: 0.3, names[1]: 0.7}, 0, 1, 0.0, "slerp", 1.0, 3))
    assert np.abs(blended.astype(int) - img).mean() > 2
    assert grid(torch.zeros(1, 3, 4, 4), 8).shape == (8, 8, 3)  # a lone image keeps its frame


def test_a_loop_returns_to_its_start_and_is_written_as_gif_and_webp(model, tmp_path):
    G, names = model
    frames = loop_frames(G, names, View({names[0]: 1.0}, 0, 5, n=1), 8)
    assert len(frames) == 8 and not (frames[0] == frames[4]).all()  # A at the start, B halfway
    assert np.abs(frames[1].astype(int) - frames[7]).mean() < 1  # eased: the way back mirrors the way out
    for suffix in (".gif", ".webp"):
        save_animation(frames, tmp_path / f"loop{suffix}")
        with Image.open(tmp_path / f"loop{suffix}") as im:
            assert im.n_frames == 8 and im.info.get("loop") == 0
    with pytest.raises(ConfigError, match=".gif or .webp"):
        save_animation(frames, tmp_path / "loop.png")


def test_pictures_already_drawn_are_tiled_in_rows_of_eight_on_white():
    pics = [np.full((4, 6, 3), 10 * i, np.uint8) for i in range(10)]
    out = picture_grid(pics)
    assert out.shape == (2 * 4 + 3 * 2, 8 * 6 + 9 * 2, 3)  # two rows of 8 columns with 2 px gaps
    assert (out[2:6, 2:8] == 0).all() and (out[2:6, 10:16] == 10).all()  # first row, in order
    assert (out[8:12, 2:8] == 80).all() and (out[8:12, 10:16] == 90).all()  # the ninth starts row two
    assert (out[:2] == 255).all() and (out[8:12, 18:24] == 255).all()  # gaps and the empty cells are white
