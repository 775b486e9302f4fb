"""Bad input gets a clear message and nothing is lost: data folders, image files, settings,
crashes (kill -9), NaN/Inf, full or read-only disks, and the one-training-job rule."""
from __future__ import annotations

import errno
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gan_core import checkpoint as ckpt
from gan_core.__main__ import main as cli
from gan_core.data import MIN_SIDE, load_class_dataset, load_rgb, scan_class_folder
from gan_core.errors import ConfigError, DatasetError, StudioError
from gan_core.train import resume, train
from tests.conftest import make_texture, tiny_cgan

ROOT = Path(__file__).resolve().parent.parent
HYPO = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def png_bytes(w: int, h: int, rows: bytes = b"", ctype: int = 2, depth: int = 8) -> bytes:
    """A PNG built by hand: any declared size, any (possibly too short) pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def good_png(size=(40, 40), seed=0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def good_jpeg(size=(40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def bad_crc_png() -> bytes:
    """Pixels intact, but the IDAT checksum is wrong (a flipped bit on disk)."""
    data = bytearray(good_png())
    i = data.index(b"IDAT")
    n = struct.unpack(">I", data[i - 4:i])[0]
    data[i + 4 + n] ^= 0xFF
    return bytes(data)


def tiny(w, h) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


BAD_FILES = {  # name -> (bytes, words the reason must contain)
    "zero-byte.png": (b"", "cannot be read"),
    "truncated.png": (good_png()[:300], "cannot be read"),
    "truncated.jpg": (good_jpeg()[:200], "cannot be read"),
    "random-bytes.png": (np.random.default_rng(1).bytes(2000), "cannot be read"),
    "text.jpg": (b"this is a shopping list, not a photo\n" * 20, "cannot be read"),
    "bad-crc.png": (bad_crc_png(), "checksum"),
    "one-pixel.png": (tiny(1, 1), "only 1x1 pixels"),
    "three-by-seven.png": (tiny(3, 7), "only 3x7 pixels"),
    "bomb.png": (png_bytes(30000, 30000), "pixels"),
}


# ------------------------------------------------------------------------------------- folders
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


# -------------------------------------------------------------------------------------- images
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


# (mode, formats it can be saved in): every common way a picture is stored
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


def test_training_uses_the_good_images_and_lists_the_skipped_ones(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "only").mkdir(parents=True)  # a single class works too
    for i in range(3):
        (root / "only" / f"good{i}.png").write_bytes(good_png(seed=i))
    for name, (data, _) in BAD_FILES.items():
        (root / "only" / name).write_bytes(data)
    events = []
    res = train(tiny_cgan(str(root), steps=2, batch=2), tmp_path / "run", on_progress=events.append)
    assert res.step == 2
    skipped = dict(map(tuple, json.loads((tmp_path / "run" / "skipped.json").read_text())))
    assert {Path(p).name for p in skipped} == set(BAD_FILES)
    for p, why in skipped.items():
        assert BAD_FILES[Path(p).name][1] in why, (p, why)
    summary = events[0].message
    assert "1 classes, 3 images" in summary and f"skipped {len(BAD_FILES)} file(s)" in summary
    assert all(name in summary for name in BAD_FILES)
    G, cfg = ckpt.load_generator(tmp_path / "run")
    assert cfg.model.class_names == ["only"]
    # and when nothing is usable: a clear error on the command line, no traceback
    (tmp_path / "bad" / "c").mkdir(parents=True)
    for name, (data, _) in BAD_FILES.items():
        (tmp_path / "bad" / "c" / name).write_bytes(data)
    assert cli(["train", "cgan", str(tmp_path / "bad"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "None of the 9 image files" in err and "bad-crc.png: cannot be read" in err
    assert "and 5 more" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("args,msg", [
    (["train", "cgan", "D", "--out", "R", "--steps", "0"], "--steps: must be at least 1"),
    (["train", "cgan", "D", "--out", "R", "--steps", "-5"], "--steps: must be at least 1"),
    (["train", "cgan", "D", "--out", "R", "--batch", "0"], "--batch: must be at least 1"),
    (["train", "sgan", "T", "--out", "R", "--patch", "0"], "--patch: must be at least 1"),
    (["texture", "R", "--width", "0", "--out", "x.png"], "--width: must be at least 1"),
    (["resume", "R", "--steps", "-1"], "--steps: must be at least 1"),
])
def test_cli_refuses_bad_numbers_with_a_message(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        cli(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and "Traceback" not in err


def test_cli_refuses_bad_settings_that_need_the_data(class_dir, tmp_path, capsys):
    tex = make_texture(tmp_path / "t.png")
    assert cli(["train", "cgan", class_dir, "--out", str(tmp_path / "r"), "--batch", "100"]) == 2
    assert "batch (100) is larger than the dataset (18 images)" in capsys.readouterr().err
    assert cli(["train", "sgan", tex, "--out", str(tmp_path / "s"), "--patch", "1024"]) == 2
    assert "patch must be between 32 and 512" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli(["train", "cgan", class_dir, "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert "afile" in err and "Traceback" not in err


def test_studio_refuses_bad_settings_before_starting(class_dir, tmp_path):
    import studio

    s = studio.Studio(tmp_path / "ws", models_dir=None, jobs=studio.JobManager())
    base = dict(variant="cgan", data_text=class_dir, resolution="32", steps=10, batch=4, recipe="reference",
                augment=[], g_channels=4, d_channels=4, lr=1e-4, seed=0, sample_every=5, ckpt_every=5,
                patch=32, depth=3)
    for over, msg in [({"steps": 0}, "Steps must be between 1"), ({"steps": -3}, "Steps must be between 1"),
                      ({"steps": 2.5}, "Steps must be a whole number"), ({"batch": 100}, r"Batch \(100\) is larger"),
                      ({"resolution": "48"}, "resolution must be one of"), ({"lr": float("nan")}, "finite"),
                      ({"variant": "sgan", "patch": 0}, "Patch must be between 32"),
                      ({"variant": "sgan", "patch": 1024}, "Patch must be between 32"),
                      ({"data_text": str(tmp_path / "nowhere")}, "does not exist")]:
        with pytest.raises(StudioError, match=msg):
            s.build_config(**{**base, **over, **({"data_text": make_texture(tmp_path / "t.png")}
                                                  if over.get("variant") == "sgan" else {})})
    for w, h in ((0, 64), (64, 0), (9000, 64)):
        with pytest.raises(ConfigError, match="between 1 and 8192"):
            s._texture(None, w, h, 0, True, None, [])
    for name in ("../../etc", "a/b", "..", "%2e%2e"):
        with pytest.raises(ConfigError, match="letters, digits"):
            s.start(name, "cgan", class_dir, "32", 10, 4, "wgan-gp", [], 4, 4, 1e-4, 0, 5, 5, 32, 3)
    assert not s.jobs.busy() and list(s.ws.runs.iterdir()) == []


# ------------------------------------------------------------------------- crashes and faults
def test_soak_kill_resume_a_few_times(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "bench/soak_kill_resume.py", "--kills", "3", "--quiet",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["kills"] == 3 and res["checkpoints_failed_to_load"] == 0 and res["checkpoints_loaded"] >= 3
    assert res["steps_lost"]["max"] <= res["ckpt_every"] and res["modes"]["checkpoint"] >= 1
    assert res["identical_to_uninterrupted"] and res["stats_each_step_once"] and not res["problems"]


def test_leftovers_of_a_crash_are_never_taken_for_a_checkpoint(class_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_cgan(class_dir, steps=4), run)
    root = run / "checkpoints"
    newest = ckpt.checkpoint_dirs(run)[0]
    # what a kill can leave: a half-written new checkpoint, a half-deleted old one
    half = root / ".tmp_step_00000006_4242"
    half.mkdir()
    (half / "G.safetensors").write_bytes((newest / "G.safetensors").read_bytes()[:100])
    old = root / ".old_step_00000000_4242"
    old.mkdir()
    (old / "config.json").write_text("{")
    assert [d.name for d in ckpt.checkpoint_dirs(run)] == ["step_00000004", "step_00000002"]
    res = resume(run, steps=6)
    assert res.step == 6 and not half.exists() and not old.exists()
    assert [d.name for d in ckpt.checkpoint_dirs(run)] == ["step_00000006", "step_00000004"]


def _breaking_step(monkeypatch, when, what):
    """Make train_step poison the model (`what`) on the calls listed in `when`."""
    from gan_core import train as train_mod
    real, calls = train_mod._Loop.train_step, {"n": 0}

    def step(self):
        calls["n"] += 1
        rec = real(self)
        if when(calls["n"]):
            what(self, rec)
        return rec
    monkeypatch.setattr(train_mod._Loop, "train_step", step)


def _all_finite(run):
    return all(torch.isfinite(v).all() for d in ckpt.checkpoint_dirs(run) for n in ckpt.WEIGHT_FILES
               for v in ckpt.read_safetensors(d / n).values())


@pytest.mark.parametrize("what", ["nan in averaged weights", "inf in critic weights"])
def test_non_finite_weights_roll_back_and_are_never_saved(class_dir, tmp_path, monkeypatch, what):
    def poison(loop, rec):
        with torch.no_grad():
            if what.startswith("nan"):  # the averaged generator feeds no loss: only the save check sees it
                next(loop.G_ema.parameters()).fill_(float("nan"))
            else:
                next(loop.D.parameters()).fill_(float("inf"))
    _breaking_step(monkeypatch, lambda n: n == 2, poison)
    events = []
    res = train(tiny_cgan(class_dir, steps=3, sample_every=100), tmp_path / "run", on_progress=events.append)
    rolled = [e for e in events if e.event == "rollback"]
    assert res.step == 3 and len(rolled) == 1 and "rolled back to step 0" in rolled[0].message
    assert _all_finite(tmp_path / "run")
    steps = [json.loads(l)["step"] for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # the redone steps are logged once


def test_training_that_keeps_diverging_stops_with_a_clear_message(class_dir, tmp_path, monkeypatch, capsys):
    def poison(loop, rec):
        rec["d_loss"] = float("nan")
    _breaking_step(monkeypatch, lambda n: n >= 3, poison)
    run = tmp_path / "run"
    assert cli(["train", "cgan", class_dir, "--out", str(run), "--res", "32", "--g-channels", "4",
                "--d-channels", "4", "--batch", "4", "--steps", "6", "--ckpt-every", "2"]) == 2
    err = capsys.readouterr().err
    assert "Training diverged 4 times" in err and "lower learning rate" in err and "step_00000002" in err
    assert "Traceback" not in err
    assert [d.name for d in ckpt.checkpoint_dirs(run)] == ["step_00000002", "step_00000000"]
    assert _all_finite(run)


class _DiskFull:
    """safetensors' save_file that writes part of the file, then fails like a full disk."""

    def __init__(self, real, fail_from: int, err=errno.ENOSPC):
        self.real, self.fail_from, self.err, self.calls = real, fail_from, err, 0

    def __call__(self, tensors, path, *a, **k):
        if "checkpoints" not in str(path):  # the data cache
            return self.real(tensors, path, *a, **k)
        self.calls += 1
        if self.calls >= self.fail_from:
            with open(path, "wb") as f:
                f.write(b"\0" * 64)
            raise OSError(self.err, os.strerror(self.err), path)
        return self.real(tensors, path, *a, **k)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_disk_full_or_read_only_keeps_the_previous_checkpoint(class_dir, tmp_path, monkeypatch, err, capsys):
    import safetensors.torch
    run = tmp_path / "run"
    # step 0 and step 2 are saved (3 files each); the save of step 4 fails on its second file
    monkeypatch.setattr(safetensors.torch, "save_file", _DiskFull(safetensors.torch.save_file, 8, err))
    code = cli(["train", "cgan", class_dir, "--out", str(run), "--res", "32", "--g-channels", "4",
                "--d-channels", "4", "--batch", "4", "--steps", "6", "--ckpt-every", "2"])
    out = capsys.readouterr().err
    assert code == 2 and os.strerror(err) in out and "step_00000002) is intact" in out
    assert "Traceback" not in out
    assert [d.name for d in ckpt.checkpoint_dirs(run)] == ["step_00000002", "step_00000000"]
    assert not list((run / "checkpoints").glob(".tmp_*"))
    monkeypatch.undo()
    assert resume(run, steps=4).step == 4  # once there is room again, the run goes on


def test_a_disk_error_in_the_studio_worker_is_a_message(tmp_path):
    import studio

    jobs = studio.JobManager()

    def work(**_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "stats.jsonl"))
    jobs.start(work, tmp_path / "run", "train")
    assert jobs.wait(10) and jobs.state == "failed"
    assert "No space left on device" in jobs.message and "resume" in jobs.message


# ------------------------------------------------------------------------------- concurrency
def test_two_starts_at_the_same_moment_exactly_one_runs(tmp_path):
    import studio

    jobs = studio.JobManager()
    release = threading.Event()

    class Res:
        step, stopped, checkpoint = 0, False, Path("step_00000000")

    def work(**_):
        release.wait(10)
        return Res()
    barrier, results = threading.Barrier(8), []

    def client(i):
        barrier.wait()
        try:
            jobs.start(work, tmp_path / f"run{i}", "train")
            results.append("started")
        except StudioError as e:
            results.append(str(e))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    release.set()
    assert results.count("started") == 1
    assert all(r.startswith("Busy: the run") for r in results if r != "started")
    assert jobs.wait(10) and jobs.state == "finished"


def test_stop_ends_within_one_step_with_a_loadable_checkpoint(class_dir, tmp_path):
    import studio

    jobs, run = studio.JobManager(), tmp_path / "run"
    cfg = tiny_cgan(class_dir, steps=10_000, ckpt_every=10_000, sample_every=10_000)
    jobs.start(lambda **kw: train(cfg, run, **kw), run, "train")
    t0 = time.time()
    while jobs.step < 3 and time.time() - t0 < 300:
        time.sleep(0.01)
    assert jobs.stop()
    at_stop = jobs.step
    assert jobs.wait(300) and jobs.state == "stopped", jobs.message
    assert at_stop <= jobs.step <= at_stop + 1
    newest = ckpt.checkpoint_dirs(run)[0]
    assert int(newest.name[5:]) == jobs.step
    cfg2 = ckpt.read_config(newest)
    from gan_core.nets import build_discriminator, build_generator
    st = ckpt.load_training_state(newest, build_generator(cfg2), build_generator(cfg2), build_discriminator(cfg2))
    assert st["step"] == jobs.step
