import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gan_core.data import (MIN_SIDE, load_class_dataset, load_rgb, sample_patches, scan_class_folder, to_float,
                           to_uint8)
from gan_core.errors import DatasetError
from tests.helpers import BAD_FILES, good_jpeg, good_png, png_bytes


ROOT = Path(__file__).resolve().parent.parent
HYPO = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


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


# ---------------------------------------------------------- unusable folders and files
@pytest.mark.parametrize("make,msg", [
    (lambda p: p / "missing", "does not exist. Check the path"),
    (lambda p: (p / "f.png").write_bytes(good_png()) and p / "f.png", "is a file, not a folder"),
    (lambda p: (p / "e").mkdir() or p / "e", "no class subfolders"),
    (lambda p: ((p / "flat").mkdir(), (p / "flat" / "a.png").write_bytes(good_png()),
                (p / "flat" / "b.JPG").write_bytes(good_jpeg())) and p / "flat",
     "It holds 2 loose image.* one subfolder per class"),
    (lambda p: ((p / "h" / ".git").mkdir(parents=True), (p / "h" / ".git" / "a.png").write_bytes(good_png()))
     and p / "h", "no class subfolders"),
])
def test_unusable_data_folders_say_what_to_do(tmp_path, make, msg):
    with pytest.raises(DatasetError, match=msg):
        scan_class_folder(make(tmp_path))


def test_hidden_nested_upper_case_and_empty_classes(tmp_path):
    root = tmp_path / "d"
    for rel in ("cats/a.PNG", "cats/b.JpEg", "cats/2020/summer/c.TIFF", "dogs/d.WebP", "dogs/.e.png",
                ".thumbs/f.png", "dogs/.cache/g.png", "dogs/deep/.hidden/h.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    (root / "empty").mkdir()
    (root / "only-text").mkdir()
    (root / "only-text" / "readme.txt").write_text("x")
    rep = scan_class_folder(root)
    assert rep.classes == {"cats": [str(root / "cats/a.PNG"), str(root / "cats/b.JpEg"),
                                    str(root / "cats/2020/summer/c.TIFF")],
                           "dogs": [str(root / "dogs/d.WebP")]}
    assert dict(rep.skipped) == {str(root / "empty"): "class folder has no image files",
                                 str(root / "only-text"): "class folder has no image files"}


def test_links_that_loop_or_leave_the_folder_are_not_followed(tmp_path):
    root, outside = tmp_path / "d", tmp_path / "private"
    for p in (root / "a", root / "b" / "sub", outside):
        p.mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(good_png())
    (root / "b" / "sub" / "y.png").write_bytes(good_png(seed=1))
    (outside / "secret.png").write_bytes(good_png(seed=2))
    os.symlink(root, root / "loop")  # the data folder inside itself
    os.symlink(root / "b", root / "b" / "sub" / "again")  # a loop further down
    os.symlink(outside, root / "elsewhere")  # a class folder that is somewhere else
    os.symlink(outside / "secret.png", root / "a" / "leak.png")  # one file from elsewhere
    os.symlink(root / "a" / "gone.png", root / "a" / "dangling.png")
    os.symlink(root / "a" / "x.png", root / "b" / "linked.png")  # inside the folder: fine
    rep = scan_class_folder(root)
    assert rep.classes == {"a": [str(root / "a/x.png")],
                           "b": [str(root / "b/linked.png"), str(root / "b/sub/y.png")]}
    why = dict(rep.skipped)
    assert "outside the data folder" in why[str(root / "elsewhere")]
    assert "outside the data folder" in why[str(root / "a/leak.png")]
    assert "not followed" in why[str(root / "loop")]
    assert "link loop" in why[str(root / "b/sub/again")]
    assert "broken link" in why[str(root / "a/dangling.png")]
    ds = load_class_dataset(root, 32)  # and decoding works on what is left, without a traceback
    assert len(ds) == 3 and ds.class_names == ["a", "b"]


def test_ten_thousand_other_files_scan_fast(tmp_path):
    root = tmp_path / "d"
    (root / "c").mkdir(parents=True)
    (root / "c" / "real.png").write_bytes(good_png())
    for i in range(10_000):
        (root / "c" / f"note{i}.{('txt', 'json', 'xmp', 'raw')[i % 4]}").touch()
    t0 = time.process_time()  # CPU time: the scan's own work, whatever else the machine runs
    rep = scan_class_folder(root)
    elapsed = time.process_time() - t0
    assert rep.counts() == {"c": 1} and elapsed < 1.0, elapsed


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_image_files_are_refused_with_a_reason(tmp_path, name):
    data, words = BAD_FILES[name]
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(DatasetError, match=words) as e:
        load_rgb(p)
    assert "Traceback" not in str(e.value)


def test_decompression_bomb_is_refused_before_decoding_and_memory_stays_low(tmp_path):
    bombs = []
    for w, h in ((30000, 30000), (10000, 10000)):  # above Pillow's own hard limit, and between
        p = tmp_path / f"bomb{w}.png"
        p.write_bytes(png_bytes(w, h, b"\0" * 3001 * 10))  # a few hundred bytes declaring 100M+ pixels
        assert p.stat().st_size < 1000
        bombs.append(str(p))
    code = ("import resource, sys; from gan_core.data import load_rgb; from gan_core.errors import DatasetError\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "for p in sys.argv[1:]:\n"
            "    try: load_rgb(p); print('decoded', p)\n"
            "    except DatasetError as e: print('refused:', e)\n"
            "print('grew_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    out = subprocess.run([sys.executable, "-c", code, *bombs], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("refused:") and "pixels" in lines[0], out.stdout + out.stderr
    assert lines[1].startswith("refused:") and "10000x10000" in lines[1]
    assert int(lines[2].split()[1]) < 20_000  # kB: nothing near 100 million pixels was allocated
    assert "Warning" not in out.stderr


def test_sixteen_bit_gradient_is_kept_not_clipped_white(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")  # 16-bit greyscale PNG
    dark = np.full((16, 16), 2570, np.uint16)  # 2570 / 65535 = 10 / 255
    Image.fromarray(dark).save(tmp_path / "dark.png")
    assert Image.open(tmp_path / "ramp.png").mode == "I;16"
    row = np.asarray(load_rgb(tmp_path / "ramp.png"))[8, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all()
    assert np.abs(row - np.linspace(0, 255, 64)).max() <= 1
    assert (np.asarray(load_rgb(tmp_path / "dark.png")) == 10).all()  # dark stays dark


MODES = {"1": ("png", "tiff", "bmp"), "L": ("png", "jpeg", "tiff", "bmp", "webp"), "LA": ("png", "tiff"),
         "P": ("png", "bmp", "tiff"), "PT": ("png",), "RGB": ("png", "jpeg", "tiff", "bmp", "webp"),
         "RGBA": ("png", "tiff", "webp"), "CMYK": ("jpeg", "tiff"), "I;16": ("png", "tiff"), "F": ("tiff",)}


def expected_colour(mode: str, rgb, alpha: int, v16: int):
    """What an image of one colour must become, worked out by hand per mode."""
    grey = (rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16  # ITU-R 601 luma, 16-bit fixed point
    on_white = lambda c: c * alpha / 255 + 255 * (1 - alpha / 255)
    return {"1": [255 if grey >= 128 else 0] * 3, "L": [grey] * 3, "LA": [on_white(grey)] * 3,
            "P": list(rgb), "PT": [255, 255, 255], "RGB": list(rgb), "RGBA": [on_white(c) for c in rgb],
            "CMYK": list(rgb), "I;16": [v16 / 65535 * 255] * 3, "F": [v16 / 65535 * 255] * 3}[mode]


def solid(mode: str, size, rgb, alpha: int, v16: int) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.full(size[::-1], v16, np.uint16))
    if mode == "F":
        return Image.fromarray(np.full(size[::-1], v16 / 65535, np.float32))
    if mode in ("P", "PT"):
        im = Image.new("P", size, 0)
        im.putpalette(list(rgb) + [0, 0, 0] * 255)
        if mode == "PT":
            im.info["transparency"] = 0
        return im
    if mode in ("RGBA", "LA"):
        return Image.new("RGBA", size, tuple(rgb) + (alpha,)).convert(mode)
    if mode == "1":
        return Image.new("RGB", size, tuple(rgb)).convert("L").convert("1", dither=Image.Dither.NONE)
    return Image.new("RGB", size, tuple(rgb)).convert(mode)


@HYPO
@given(mode=st.sampled_from(sorted(MODES)), data=st.data(), w=st.integers(MIN_SIDE, 48),
       h=st.integers(MIN_SIDE, 48), rgb=st.tuples(*[st.integers(0, 255)] * 3), alpha=st.integers(0, 255),
       v16=st.integers(0, 65535))
def test_any_mode_and_size_becomes_rgb_of_the_right_colour(tmp_path, mode, data, w, h, rgb, alpha, v16):
    fmt = data.draw(st.sampled_from(MODES[mode]))
    p = tmp_path / f"x.{fmt}"
    kw = {"transparency": 0} if mode == "PT" else {}
    kw.update({"quality": 95} if fmt == "jpeg" else {"lossless": True} if fmt == "webp" else {})
    solid(mode, (w, h), rgb, alpha, v16).save(p, **kw)
    out = load_rgb(p)
    assert out.mode == "RGB" and out.size == (w, h)
    arr = np.asarray(out).reshape(-1, 3).astype(float)
    tol = 12 if fmt == "jpeg" else 1.5
    assert np.abs(arr - expected_colour(mode, rgb, alpha, v16)).max() <= tol, (mode, fmt)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotated_jpegs_come_out_upright(tmp_path, orientation):
    upright = Image.new("RGB", (48, 32), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 24, 16))  # red top-left quarter
    # how a camera stores the upright picture for each orientation tag (its inverse is applied on display)
    store = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
             7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}[orientation]
    stored = upright.transpose(store) if store is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    out = np.asarray(load_rgb(tmp_path / "photo.jpg")).astype(int)
    assert out.shape == (32, 48, 3)
    assert out[4, 4, 0] > 200 and out[4, 4, 2] < 60  # red in the top-left corner
    assert out[28, 44, 2] > 200 and out[28, 44, 0] < 60


@HYPO
@given(data=st.binary(max_size=600), suffix=st.sampled_from([".png", ".jpg", ".webp", ".tif", ".bmp"]))
def test_arbitrary_bytes_never_escape_as_anything_but_a_dataset_error(tmp_path, data, suffix):
    p = tmp_path / f"junk{suffix}"
    p.write_bytes(good_png()[:8] + data if suffix == ".png" else data)
    try:
        im = load_rgb(p)
    except DatasetError as e:
        assert str(e)
    else:
        assert im.mode == "RGB" and min(im.size) >= MIN_SIDE


def test_a_deep_folder_is_scanned_without_resolving_every_level(tmp_path, monkeypatch):
    """Each level is told apart by one stat; resolving the full path at every level (what made a
    900-level zip take 37 s per scan) would cost time quadratic in the depth."""
    import gan_core.data as data_mod

    d = tmp_path / "root" / "c"
    for _ in range(300):
        d = d / "d"
    d.mkdir(parents=True)
    (d / "a.png").write_bytes(good_png())
    calls = []
    real = os.path.realpath
    monkeypatch.setattr(data_mod.os.path, "realpath", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    assert scan_class_folder(tmp_path / "root").counts() == {"c": 1}
    assert len(calls) < 10  # the data folder and its class folders, not the 300 levels
