"""Texture files: 16-bit PNG that keeps every bit, JPEG, map sets named NAME_<map>, and a batch of
variations with its contact sheet."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_core import texture_files as tf
from gan_core.checkpoint import load_generator
from gan_core.errors import ConfigError
from gan_core.maps import MapSettings, decode_normals

DEMO = Path(__file__).resolve().parents[1] / "checkpoints" / "demo-textures"


def _read_png16(path: Path) -> tuple[np.ndarray, dict]:
    """A 16-bit RGB PNG decoded here (Pillow reads it as 8 bits): rows of filter type 0."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, text = 8, b"", {}
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 16 and colour == 2
        elif kind == b"IDAT":
            idat += body
        elif kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            text[k.decode()] = v.decode()
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * 6)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].copy().view(">u2").reshape(h, w, 3).astype(np.uint16), text


def test_16_bit_png_keeps_every_bit_and_jpeg_its_settings(tmp_path):
    img = np.random.default_rng(0).integers(0, 65536, (300, 70, 3), dtype=np.uint16)
    p = tf.save_image(tmp_path / "t", img, {"seed": "5", "tileable": "True"}, "png16")
    back, text = _read_png16(p)
    assert p.suffix == ".png" and (back == img).all() and text == {"seed": "5", "tileable": "True"}
    small = np.broadcast_to(np.linspace(0, 255, 70).astype(np.uint8)[None, :, None], (300, 70, 3)).copy()
    j = tf.save_image(tmp_path / "t", small, {"seed": "5"}, "jpeg")
    with Image.open(j) as im:
        assert j.suffix == ".jpg" and im.format == "JPEG" and json.loads(im.info["comment"])["seed"] == "5"
        assert np.abs(np.asarray(im).astype(int) - small).max() < 12  # lossy, but this picture
    assert tf.to8(np.array([[0, 257, 65535]], np.uint16)).tolist() == [[0, 1, 255]]
    with pytest.raises(ConfigError, match="png8, png16 or jpeg"):
        tf.check_format("tiff")


def test_a_set_and_a_batch_of_variations(tmp_path):
    G, _ = load_generator(DEMO)
    from gan_core.texture import paint
    img, meta = paint(G, 96, 64, seed=2, tileable=True, brushes=[{"source": 1, "style_seed": None}])
    files = tf.save_set(tmp_path / "set", "wall", img, meta, ["height", "normal", "ao"], MapSettings(), "png8")
    assert [f.name for f in files] == ["wall_color.png", "wall_height.png", "wall_normal.png", "wall_ao.png"]
    with Image.open(files[1]) as h:
        assert h.mode.startswith("I;16") and h.text["map_blur"] == "1.0" and h.text["seed"] == "2"
    with Image.open(files[2]) as n:
        length = np.linalg.norm(decode_normals(np.asarray(n)), axis=-1)
        assert n.size == (96, 64) and np.abs(length - 1).max() <= 0.02
    with Image.open(files[0]) as c:
        assert (np.asarray(c) == img).all()
    sheet, made = tf.variations(G, tmp_path / "batch", "gravel", 10, 3,
                                dict(width=64, height=64, tileable=True, brushes=[{"source": 0, "style_seed": 1}]),
                                ["normal"], MapSettings(), "png8")
    names = sorted(p.name for p in made)
    assert names == sorted(f"gravel_seed{s}_{k}.png" for s in (10, 11, 12) for k in ("color", "normal"))
    colours = [np.asarray(Image.open(tmp_path / "batch" / f"gravel_seed{s}_color.png")) for s in (10, 11, 12)]
    assert not (colours[0] == colours[1]).all()
    with Image.open(sheet) as s:
        assert sheet.name == "gravel_sheet.png" and s.width > 3 * 64
    with pytest.raises(ConfigError, match="Variations must be"):
        tf.check_count(0)
