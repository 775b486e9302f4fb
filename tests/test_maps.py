"""Material maps: unit normals that follow the relief, maps that tile as the texture does, and
strips that give the same maps as one pass."""
from __future__ import annotations

import numpy as np
import pytest

from gan_core import maps
from gan_core.checkpoint import load_generator
from gan_core.errors import ConfigError
from gan_core.maps import MapSettings
from gan_core.metrics import seam_ratio
from gan_core.texture import generate_texture
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "checkpoints" / "demo-textures"


def _bump(n=128, sigma=12.0):
    y, x = np.mgrid[:n, :n].astype(np.float32)
    h = np.exp(-((x - n / 2) ** 2 + (y - n / 2) ** 2) / (2 * sigma ** 2))
    return np.repeat((h * 255).round().astype(np.uint8)[..., None], 3, -1)


def test_normals_are_unit_length_and_follow_a_synthetic_bump():
    img = _bump()
    s = MapSettings(blur=0.0, strength=2.0, tileable=False)
    height = maps.height_map(img, s)
    assert height.dtype == np.uint16 and height[64, 64] > 60000 and height[0, 0] < 2000
    pit = maps.height_map(img, MapSettings(blur=0.0, tileable=False, invert=True))
    assert pit[64, 64] < 2000 and pit[0, 0] > 60000  # invert: dark is high
    n = maps.decode_normals(maps.normal_map(height, s))
    length = np.linalg.norm(n, axis=-1)
    assert np.abs(length - 1).max() <= 0.02
    assert n[64, 64, 2] > 0.99  # flat on the top of the bump
    right, left, top, bottom = n[64, 78], n[64, 50], n[50, 64], n[78, 64]
    assert right[0] > 0.3 and left[0] < -0.3 and abs(right[1]) < 0.05  # sides face away from the centre
    assert top[1] > 0.3 and bottom[1] < -0.3 and abs(top[0]) < 0.05  # green up (OpenGL)
    steeper = maps.decode_normals(maps.normal_map(height, MapSettings(blur=0.0, strength=6.0, tileable=False)))
    assert steeper[64, 78, 0] > right[0]  # strength raises the relief
    ao = maps.ao_map(height, s)
    ring = maps.ao_map(255 * 257 - height.astype(np.int64), s)  # a pit: its bottom is occluded
    assert ao[64, 64] == 255 and ring[64, 64] < 160


def test_maps_of_a_tileable_texture_tile_and_strips_change_nothing(monkeypatch):
    G, _ = load_generator(DEMO)
    img = generate_texture(G, 256, 192, seed=3, tileable=True, source=0)
    s = MapSettings(blur=2.0, contrast=1.5, strength=2.0)
    out = maps.make_maps(img, ["height", "normal", "roughness", "ao"], s)
    assert set(out) == set(maps.MAP_NAMES) and out["normal"].shape == (192, 256, 3)
    assert 0.8 < seam_ratio(out["normal"]) < 1.25 and 0.8 < seam_ratio(out["height"][..., None].astype(float)) < 1.25
    n = maps.decode_normals(out["normal"])
    assert np.abs(np.linalg.norm(n, axis=-1) - 1).max() <= 0.02
    # the same maps from a texture rolled by half: the maps roll with it (no edge is special)
    rolled = maps.make_maps(np.roll(img, (96, 128), (0, 1)), ["normal", "ao"], s)
    assert np.abs(rolled["normal"].astype(int) - np.roll(out["normal"], (96, 128), (0, 1))).max() <= 1
    assert np.abs(rolled["ao"].astype(int) - np.roll(out["ao"], (96, 128), (0, 1))).max() <= 1
    monkeypatch.setattr(maps, "STRIP", 7)  # many small strips with their margins = one pass
    small = maps.make_maps(img, ["height", "normal", "ao"], s)
    for k in small:
        assert np.abs(small[k].astype(int) - out[k]).max() <= 1, k


def test_map_names_and_settings_are_checked():
    assert maps.parse_maps("normal, height") == ["height", "normal"] and maps.parse_maps("all") == list(maps.MAP_NAMES)
    assert maps.parse_maps(None) == [] and maps.parse_maps("") == []
    with pytest.raises(ConfigError, match="Unknown map 'bump'"):
        maps.parse_maps("height,bump")
    with pytest.raises(ConfigError, match="strength must be between"):
        MapSettings(strength=-1).check()


def test_the_lit_view_follows_the_light():
    s = MapSettings(blur=0.0, strength=3.0, tileable=False)
    normal = maps.normal_map(maps.height_map(_bump(), s), s)
    from_right = maps.lit_view(normal, azimuth=0, elevation=30).astype(int)
    from_left = maps.lit_view(normal, azimuth=180, elevation=30).astype(int)
    assert from_right[64, 80].mean() > from_right[64, 48].mean() + 40  # the side facing the light is brighter
    assert from_left[64, 48].mean() > from_left[64, 80].mean() + 40


def test_maps_work_in_strips_not_whole_image_copies():
    """The numpy working memory of all maps (traced by tracemalloc; torch's own buffers are not
    traced, and are strip-sized by the same loop) stays far below one float copy of the image."""
    import tracemalloc

    rng = np.random.default_rng(0)
    img = np.tile(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), (8, 16, 1))  # 2048 x 4096
    lum_float = img.shape[0] * img.shape[1] * 4  # 32 MiB: one float32 plane of the image
    tracemalloc.start()
    try:
        out = maps.make_maps(img, "all", MapSettings())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    own = sum(m.nbytes for m in out.values())  # the maps themselves: 7 bytes per pixel
    assert peak - own < lum_float / 2
