"""Painting textures: a canvas becomes a brush map, the brushes style their regions (soft edges,
random styles, morphs), the views show the centre at 1:1, and the texture that was shown is the one
exported."""
from __future__ import annotations

import numpy as np
import torch

from gan_core import texture
from gan_core.texture import KeptTexture, paint, style_map_from_canvas, views
from gan_core.train import train
from gan_core.checkpoint import load_generator
from tests.conftest import make_texture, tiny_sgan

PALETTE = ["#e4572e", "#2e86ab", "#76b041", "#f3c623"]


def test_painted_canvas_becomes_a_brush_map():
    canvas = np.zeros((20, 40, 4), np.uint8)  # transparent = unpainted
    canvas[:, 20:] = [0x2e, 0x86, 0xab, 255]  # brush 2 (blue)
    canvas[:5, :5] = [250, 250, 250, 255]  # white paper counts as unpainted
    canvas[10:, :10] = [0x70, 0xb0, 0x40, 255]  # close to brush 3 (green)
    labels = style_map_from_canvas(canvas, PALETTE)
    assert labels.shape == (20, 40) and labels.dtype == np.int64
    assert (labels[:, 20:] == 1).all() and (labels[:5, :5] == 0).all() and (labels[10:, :10] == 2).all()
    assert style_map_from_canvas(np.zeros((8, 8, 4), np.uint8), PALETTE) is None
    assert style_map_from_canvas(None, PALETTE) is None


def test_brushes_style_their_regions_and_previews_show_the_seams(tmp_path):
    train(tiny_sgan([make_texture(tmp_path / "t.png")], steps=2), tmp_path / "run")
    G, _ = load_generator(tmp_path / "run")
    left_right = np.zeros((8, 8), np.int64)
    left_right[:, 4:] = 1
    brushes = [{"source": None, "style_seed": 1}, {"source": None, "style_seed": 2}]
    img, meta = paint(G, 64, 64, seed=3, tileable=True, style_map=left_right, brushes=brushes)
    first, _ = paint(G, 64, 64, seed=3, tileable=True, brushes=brushes)  # no map: brush 1 everywhere
    second, _ = paint(G, 64, 64, seed=3, tileable=True, brushes=brushes[1:])

    def dist(a, b):
        return np.abs(a.astype(int) - b).mean()
    assert img.shape == first.shape == (64, 64, 3)
    assert dist(img[:, :16], first[:, :16]) < dist(img[:, :16], second[:, :16])  # the left follows brush 1
    assert dist(img[:, 48:], second[:, 48:]) < dist(img[:, 48:], first[:, 48:])  # the right brush 2
    assert meta["painted"] == "True" and meta["requested_size"] == "64x64" and '"style_seed": 2' in meta["brushes"]
    overview, crop = views(img, overview=32, crop=16)
    assert overview.shape == (32, 32, 3) and (crop == img[24:40, 24:40]).all()  # the centre at 1:1
    full, crop = views(img)
    assert (full == img).all() and (crop == img).all()


def test_the_kept_texture_is_the_newest_only():
    kept = KeptTexture()
    a = kept.keep(np.zeros((2, 2, 3), np.uint8), {"seed": "1"})
    assert kept.take(a)[1] == {"seed": "1"}
    b = kept.keep(np.ones((2, 2, 3), np.uint8), {"seed": "2"})
    assert kept.take(a) is None and kept.take(None) is None and kept.take(b)[0].max() == 1


def test_sizes_below_the_minimum_are_refused():
    import pytest
    from gan_core.errors import ConfigError

    for w, h in ((texture.MIN_SIDE - 1, 64), (64, texture.MAX_SIDE + 1)):
        with pytest.raises(ConfigError, match=f"between {texture.MIN_SIDE} and {texture.MAX_SIDE}"):
            texture.check_size(w, h)


def test_a_painted_map_blends_on_canvases_smaller_than_the_blur():
    from gan_core.texture import brush_weights

    labels = np.zeros((16, 16), np.int64)
    labels[:, 8:] = 1
    for h, w in ((1, 1), (2, 3), (4, 4)):  # a tileable 32-128 px texture has only a few noise cells
        for tileable in (True, False):
            m = brush_weights(labels, 2, h, w, tileable)
            assert m.shape == (2, h, w) and torch.allclose(m.sum(0), torch.ones(h, w))
    wide = brush_weights(labels, 2, 4, 16, tileable=False)
    assert wide[0, :, 0].min() > 0.9 and wide[1, :, -1].min() > 0.9  # each side keeps its brush


def test_a_huge_painted_canvas_is_read_at_a_bounded_size():
    canvas = np.zeros((6000, 4000, 4), np.uint8)
    canvas[:, 2000:] = [0x2e, 0x86, 0xab, 255]
    labels = style_map_from_canvas(canvas, PALETTE)
    assert max(labels.shape) <= texture.MAX_STYLE_MAP and (labels[:, -10:] == 1).all() and (labels[:, :10] == 0).all()


# ------------------------------------------------------------------ styles on the demo model
from pathlib import Path  # noqa: E402

from gan_core import styles  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "checkpoints" / "demo-textures"  # sources: gravel, brick


def _demo():
    return load_generator(DEMO)[0]


def _edges(img: np.ndarray) -> float:
    """Mean step between vertically neighbouring pixels: high on gravel, low on brick's long bricks."""
    return float(np.abs(np.diff(img.astype(float).mean(-1), axis=0)).mean())


def test_the_random_style_brush_paints_a_style_of_its_own():
    G = _demo()
    brushes = [{"source": 0, "style_seed": 1}, {"source": 1, "style_seed": 1}, {"source": None, "style_seed": 2}]
    half = np.zeros((16, 16), np.int64)
    half[:, 8:] = 2  # the right half: the random-style brush
    img, _ = paint(G, 512, 256, seed=1, tileable=True, style_map=half, brushes=brushes)
    gravel, _ = paint(G, 512, 256, seed=1, tileable=True, brushes=brushes[:1])
    brick, _ = paint(G, 512, 256, seed=1, tileable=True, brushes=brushes[1:2])
    right = (slice(None), slice(320, 512))
    e_rand, e_gravel, e_brick = _edges(img[right]), _edges(gravel[right]), _edges(brick[right])
    assert e_brick + 2 < e_rand < e_gravel - 2  # between the two sources, like neither
    assert _edges(img[:, :192]) > e_gravel - 1  # the left half stays gravel
    for seed in (1, 2, 3, 4):
        w = styles.source_weights(G, None, seed)
        assert 0 < w.min() and abs(float(w.sum()) - 1) < 1e-5  # a mix, never a source alone


def test_a_style_path_is_measured_once_per_model_and_serves_both_directions(tmp_path, monkeypatch):
    train(tiny_sgan([make_texture(tmp_path / "a.png"), make_texture(tmp_path / "b.png")], steps=2),
          tmp_path / "run")
    measured = []
    look = styles._look
    monkeypatch.setattr(styles, "_look", lambda *a: measured.append(1) or look(*a))
    monkeypatch.setattr(styles, "_PATHS", {})
    wa, wb = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    forth = styles.even_path(load_generator(tmp_path / "run")[0], wa, wb)
    again = load_generator(tmp_path / "run")[0]  # a second load of the same weights
    back = styles.even_path(again, wb, wa)
    assert len(measured) == 1 and np.allclose(back, 1 - forth[::-1])
    assert forth[0] == 0 and forth[-1] == 1 and (np.diff(forth) > 0).all()
    styles._PATHS.clear()
    assert np.allclose(styles.even_path(again, wb, wa), back, atol=1e-5)  # as if measured that way
    with torch.no_grad():
        next(again.parameters()).add_(0.5)  # new weights: measured afresh
    styles.even_path(again, wa, wb)
    assert len(measured) == 3


def _profile(imgs: list[np.ndarray], band: int = 8) -> np.ndarray:
    """Per band of columns: the vertical edge statistic, averaged over the images."""
    out = []
    for im in imgs:
        d = np.abs(np.diff(im.astype(float).mean(-1), axis=0)).mean(0)
        out.append(d.reshape(-1, band).mean(1))
    return np.mean(out, 0)


def _transition(p: np.ndarray, band: int = 8) -> tuple[float, float]:
    """(largest step between neighbouring bands, px from 80 % to 20 % of the change) of a
    left-to-right profile, as fractions of the whole change."""
    left, right = p[: len(p) // 4].mean(), p[-len(p) // 4:].mean()
    q = (p - right) / (left - right)
    a = int(np.argmax(q < 0.8))
    b = int(np.argmax(q < 0.2))
    return float(np.abs(np.diff(q)).max()), float((b - a) * band)


def test_a_feathered_edge_changes_smoothly_over_its_width():
    G = _demo()
    labels = np.zeros((64, 256), np.int64)
    labels[:, 128:] = 1  # gravel | brick, edge at x = 512 px
    brushes = [{"source": 0, "style_seed": 1}, {"source": 1, "style_seed": 1}]

    def canvas(feather):
        return [paint(G, 1024, 256, seed=s, tileable=False, style_map=labels, brushes=brushes, feather=feather)[0]
                for s in range(4)]
    hard_step, hard_width = _transition(_profile(canvas(0)))
    soft_step, soft_width = _transition(_profile(canvas(32)))
    assert soft_step < 0.33 < hard_step  # no hard edge: no 8 px band carries a third of the change
    assert soft_width >= 24 and soft_width > hard_width  # spread out (measured: 32 px against 16 for a hard cut)


def test_a_morph_goes_from_one_source_to_the_other_evenly():
    G = _demo()
    brushes = [{"source": 0, "style_seed": 1}, {"source": 1, "style_seed": 1}]
    img, meta = paint(G, 1024, 128, seed=2, tileable=False, brushes=brushes, morph=(0, 1))
    p = _profile([img], band=128)  # 8 bands across
    assert p[0] > 11 and p[-1] < 5 and meta["morph"] == "1->2 horizontal"
    assert (np.diff(p) < 1.0).all()  # on the way down, never back up by much
    assert np.abs(np.diff(p)).max() < 0.4 * (p[0] - p[-1])  # no single jump
    loop, _ = paint(G, 512, 64, seed=2, tileable=True, brushes=brushes, morph=(0, 1))
    # tileable morphs go there and back, so they still tile: the step across the wrap-around edge is
    # like those across the nearest lines of the generator's lattice, in the same (first) style
    step = lambda a, b: np.abs(loop[:, a].astype(float) - loop[:, b]).mean()  # noqa: E731
    s = G.cfg.scale
    assert step(-1, 0) < 1.5 * (step(s - 1, s) + step(-s - 1, -s)) / 2
    import pytest
    from gan_core.errors import ConfigError
    with pytest.raises(ConfigError, match="between two brushes numbered 1 to 2"):
        paint(G, 64, 64, brushes=brushes, morph=(0, 2))


def test_a_texture_that_does_not_tile_has_no_frame_at_its_edges():
    # the demo model was trained on windows away from its canvas border (SGANConfig.margin), so
    # a canvas that is not tileable is drawn past its edges and cropped; drawn with the zero-padded
    # border instead it gets a dark frame about 75 grey levels off the middle's brightness
    G = _demo()

    def frame_gap(img, k=8):
        frame = np.concatenate([img[:k].reshape(-1, 3), img[-k:].reshape(-1, 3),
                                img[:, :k].reshape(-1, 3), img[:, -k:].reshape(-1, 3)]).astype(float)
        return abs(frame.mean() - img[48:-48, 48:-48].astype(float).mean())

    for source in (0, 1):
        img = texture.generate_texture(G, 200, 160, seed=1, tileable=False, source=source, style_seed=1)
        assert img.shape == (160, 200, 3) and frame_gap(img) < 15
    G.cfg.margin = 0
    assert frame_gap(texture.generate_texture(G, 200, 160, seed=1, tileable=False, source=0, style_seed=1)) > 30
