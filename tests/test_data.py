import io

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core.data import load_class_dataset, load_rgb, sample_patches, scan_class_folder, to_float, to_uint8
from gan_core.errors import DatasetError


def _odd_folder(root):
    """One class folder per kind of awkward file, plus things that must be ignored or skipped."""
    a, b = root / "alpha", root / "beta"
    a.mkdir(parents=True)
    b.mkdir()
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :15, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba, "RGBA").save(a / "transparent.PNG")
    pal = Image.new("P", (20, 20))
    pal.putpalette([0, 0, 255] * 256)
    pal.info["transparency"] = 0
    pal.save(a / "palette.png", transparency=0)
    Image.fromarray(np.full((20, 20), 128, np.uint8), "L").save(a / "gray.jpeg")
    Image.fromarray(np.full((20, 20), 65535, np.uint16)).save(a / "sixteen.tif")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(b / "cmyk.JPG")  # red in CMYK
    Image.new("RGB", (20, 20), (0, 255, 0)).save(b / "green.webp")
    Image.new("RGB", (20, 20), (0, 0, 0)).save(b / "black.bmp")
    (b / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (b / "notes.txt").write_text("not an image")
    (b / ".hidden.png").write_bytes(b"ignored")
    (root / ".thumbs").mkdir()
    Image.new("RGB", (20, 20)).save(root / ".thumbs" / "x.png")
    (root / "empty").mkdir()
    return root


def test_scan_finds_classes_and_ignores_hidden_and_non_images(tmp_path):
    rep = scan_class_folder(_odd_folder(tmp_path / "d"))
    assert rep.class_names == ["alpha", "beta"]
    assert rep.counts() == {"alpha": 4, "beta": 4}  # broken.png counts until decoded
    assert any("empty" in p for p, _ in rep.skipped)


def test_dataset_converts_every_mode_and_skips_broken_with_reason(tmp_path):
    ds = load_class_dataset(_odd_folder(tmp_path / "d"), 32)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (7, 3, 32, 32)
    skipped = dict(ds.report.skipped)
    broken = [p for p in skipped if p.endswith("broken.png")]
    assert broken and "cannot be read" in skipped[broken[0]]
    files = [f.rsplit("/", 1)[1] for c in ds.class_names for f in ds.report.classes[c]]
    px = {name: ds.images[i, :, 16, :].float().mean(1).tolist() for i, name in enumerate(files)}
    assert px["gray.jpeg"] == pytest.approx([128, 128, 128], abs=2)
    assert px["sixteen.tif"] == pytest.approx([255, 255, 255], abs=1)  # 16-bit white stays white
    assert px["cmyk.JPG"][0] > 200 and px["cmyk.JPG"][1] < 60
    i = files.index("transparent.PNG")
    # the crop is the image's centre; its left part is red, its right part transparent -> white
    left, right = ds.images[i, :, 16, 2].tolist(), ds.images[i, :, 16, 30].tolist()
    assert left[0] > 200 and left[1] < 40 and min(right) > 240


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif, quality=95)
    out = load_rgb(p)
    assert out.size == (20, 40)
    top = np.asarray(out)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the blue half ends up on top


def test_decompression_bomb_rejected_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("1", (30000, 30000)).save(p)  # a small file declaring 900 million pixels
    assert p.stat().st_size < 2_000_000
    with pytest.raises(DatasetError, match="pixels"):
        load_rgb(p)


@pytest.mark.parametrize("make,msg", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file"),
    (lambda p: (p / "e").mkdir() or p / "e", "no class subfolders"),
    (lambda p: ((p / "e" / "c").mkdir(parents=True), (p / "e" / "c" / "a.txt").write_text("x")) and p / "e",
     "No images found"),
])
def test_bad_folders_give_clear_errors(tmp_path, make, msg):
    with pytest.raises(DatasetError, match=msg):
        scan_class_folder(make(tmp_path))


def test_only_broken_images_is_a_clear_error(tmp_path):
    (tmp_path / "d" / "c").mkdir(parents=True)
    (tmp_path / "d" / "c" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="could be read"):
        load_class_dataset(tmp_path / "d", 32)


def test_cache_is_reused_until_the_folder_changes(class_dir, tmp_path):
    cache = tmp_path / "run"
    cache.mkdir()
    a = load_class_dataset(class_dir, 32, cache_dir=cache)
    stamp = (cache / "data_cache.safetensors").stat().st_mtime_ns
    b = load_class_dataset(class_dir, 32, cache_dir=cache)
    assert torch.equal(a.images, b.images) and (cache / "data_cache.safetensors").stat().st_mtime_ns == stamp
    Image.new("RGB", (40, 40), (0, 0, 0)).save(f"{class_dir}/red/new.png")
    c = load_class_dataset(class_dir, 32, cache_dir=cache)
    assert len(c) == len(a) + 1


def test_uint8_float_roundtrip_uses_fixed_scale():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(to_float(x)), x)
    assert to_uint8(torch.full((1,), 0.0)).item() == 128  # not stretched to the full range


def test_patches_come_from_the_sources_and_are_reproducible():
    a = torch.zeros(3, 50, 60, dtype=torch.uint8)
    b = torch.full((3, 40, 40), 255, dtype=torch.uint8)
    x1, s1 = sample_patches([a, b], 16, 32, torch.Generator().manual_seed(0))
    x2, s2 = sample_patches([a, b], 16, 32, torch.Generator().manual_seed(0))
    assert torch.equal(x1, x2) and torch.equal(s1, s2) and x1.shape == (16, 3, 32, 32)
    assert torch.all(x1[s1 == 0] == -1) and torch.all(x1[s1 == 1] == 1)
