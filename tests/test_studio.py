"""The studio app through its API (gradio_client against the launched app), plus its helpers."""
from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import studio
from gan_core import checkpoint
from gan_core.errors import ConfigError, DatasetError
from tests.studio_helpers import launch, make_class_zip, read_image, shutdown, studio_env

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

BLEND = ["0: stripes", 0, studio.RANDOM_STYLE, 5, studio.RANDOM_STYLE, 2, studio.RANDOM_STYLE, 3]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    env = studio_env(tmp_path_factory.mktemp("studio"))
    demo, jobs, url = launch(env)
    env.update(demo=demo, jobs=jobs, url=url, client=Client(url, verbose=False))
    yield env
    shutdown(demo, jobs)


def _value(out):
    """An output that came back as an update (value plus visibility) -> its value."""
    return out["value"] if isinstance(out, dict) and out.get("__type__") == "update" else out


def _error(excinfo) -> str:
    return str(excinfo.value)


# ------------------------------------------------------------------ helpers, no server
@pytest.mark.parametrize("bad", ["../evil", "a/b", "..", "with space", "", "x" * 65, "dot.name", "C:\\x"])
def test_run_names_that_are_paths_are_refused(bad):
    with pytest.raises(ConfigError, match="letters, digits|Give the run a name"):
        studio.check_run_name(bad)


def test_export_names_are_sanitised(tmp_path):
    assert studio.safe_filename("../../etc/passwd") == "etc_passwd"
    assert studio.safe_filename("  ") == "export"
    ws = studio.Workspace(tmp_path / "ws")
    p = ws.export_path("../../../tmp/x y", ".png")
    assert p.parent == ws.exports and p.name.startswith("tmp_x_y-")


def test_zip_is_extracted_inside_the_workspace_and_attacks_are_refused(tmp_path):
    ws = studio.Workspace(tmp_path / "ws")
    folder = studio.extract_zip(make_class_zip(tmp_path / "pics.zip", tmp_path), ws.uploads)
    assert folder.parent.parent == ws.uploads and sorted(p.name for p in folder.iterdir()) == ["blue", "green", "red"]

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("ok/a.png", b"x")
        z.writestr("../../escaped.png", b"x")
    with pytest.raises(DatasetError, match="outside"):
        studio.extract_zip(evil, ws.uploads)
    assert not (tmp_path / "escaped.png").exists() and not (ws.root / "escaped.png").exists()

    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("cls/link.png")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="link"):
        studio.extract_zip(link, ws.uploads)

    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("cls/a.png", b"\0" * 5_000_000)  # compresses to a few kB
    with pytest.raises(DatasetError, match="more than"):
        studio.extract_zip(big, ws.uploads, max_bytes=1_000_000)
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"hello")
    with pytest.raises(DatasetError, match="not a readable zip"):
        studio.extract_zip(not_zip, ws.uploads)
    assert [p.name for p in ws.uploads.iterdir()] == ["pics"]  # failed uploads leave nothing


def test_painted_canvas_becomes_a_brush_map():
    canvas = np.zeros((20, 40, 4), np.uint8)  # transparent = unpainted
    canvas[:, 20:] = [0x2e, 0x86, 0xab, 255]  # brush 2 (blue)
    canvas[:5, :5] = [250, 250, 250, 255]  # white paper counts as unpainted
    canvas[10:, :10] = [0x70, 0xb0, 0x40, 255]  # close to brush 3 (green)
    labels = studio.labels_from_canvas({"composite": canvas, "background": None, "layers": []})
    assert labels.shape == (20, 40) and labels.dtype == np.int64
    assert (labels[:, 20:] == 1).all() and (labels[:5, :5] == 0).all() and (labels[10:, :10] == 2).all()
    assert studio.labels_from_canvas({"composite": np.zeros((8, 8, 4), np.uint8)}) is None
    assert studio.labels_from_canvas(None) is None


def test_workshop_mode_needs_a_password_and_a_data_root(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GAN_STUDIO_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as e:
        studio.main(["--listen", "--workspace", str(tmp_path / "ws")])
    assert e.value.code == 2 and "--password" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        studio.main(["--listen", "--password", "pw", "--workspace", str(tmp_path / "ws")])
    assert "--data-root" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        studio.main(["--host", "0.0.0.0", "--workspace", str(tmp_path / "ws")])
    assert "--listen" in capsys.readouterr().err


def test_workshop_mode_keeps_training_data_inside_the_data_root(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    s = studio.Studio(tmp_path / "ws", models_dir=None, data_root=root)
    with pytest.raises(DatasetError, match="must be inside"):
        s.check_data("cgan", str(tmp_path))
    with pytest.raises(DatasetError, match="must be inside"):
        s.check_data("cgan", str(root / ".." / "elsewhere"))


# ------------------------------------------------------------------ the app through its API
def test_check_data_shows_classes_counts_and_skipped_files(app):
    c = app["client"]
    md, sheet = c.predict("cgan", app["data"], api_name="/check_data")
    assert "3 classes, 18 images" in md
    assert "**red**: 6 images" in md
    assert "empty" in md and "no image files" in md  # a class folder without images is reported
    assert "`broken.png`: cannot be read as an image" in md
    sheet = read_image(_value(sheet))
    assert sheet.shape[0] == 3 * (48 + 4) + 4  # one row of thumbnails per class
    md, sheet = c.predict("sgan", app["texture"], api_name="/check_data")
    assert "1 texture image" in md and "96x96" in md and read_image(_value(sheet)).shape[0] == 96 + 8
    with pytest.raises(Exception) as e:
        c.predict("cgan", str(app["root"] / "missing"), api_name="/check_data")
    assert "does not exist" in _error(e) and "Traceback" not in _error(e)


def test_zip_upload_fills_in_the_data_folder(app, tmp_path):
    folder = app["client"].predict(handle_file(str(make_class_zip(tmp_path / "my pics.zip", tmp_path))),
                                   api_name="/upload_zip")
    assert Path(folder).is_dir() and studio._inside(Path(folder), app["ws"] / "uploads")
    md, _ = app["client"].predict("cgan", folder, api_name="/check_data")
    assert "3 classes, 9 images" in md


def _settings(app, name, **over):
    s = dict(run_name=name, variant="cgan", data=app["data"], resolution="32", steps=100000, batch=4,
             recipe="reference", augment=["translation"], generator_width=4, critic_width=4, learning_rate=1e-4,
             seed=0, sample_every=2, checkpoint_every=100000, patch=32, depth=3, train_for=0)
    s.update(over)
    return s


def _monitor_until(c, cond, timeout=120):
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        out = c.predict(None, api_name="/monitor")
        if isinstance(out[1], str):
            last = out
            if cond(out):
                return out
        time.sleep(0.5)
    raise AssertionError(f"monitor never satisfied the condition; last: {last and last[1]}")


def test_start_busy_stop_resume(app):
    c, jobs = app["client"], app["jobs"]
    with pytest.raises(Exception) as e:
        c.predict(**_settings(app, "../escape"), api_name="/start")
    assert "only letters, digits" in _error(e)
    msg, _ = c.predict(**_settings(app, "tiny"), api_name="/start")
    assert "Started 'tiny'" in msg
    with pytest.raises(Exception) as e:
        c.predict(**_settings(app, "other"), api_name="/start")
    assert "Busy" in _error(e)
    plot, html, sample, _ = _monitor_until(c, lambda o: "step" in o[1] and o[2] and " 0 /" not in o[1]
                                        and isinstance(o[0], dict) and len(o[0].get("data", [])) > 0)
    assert "tiny" in html and "running" in html and "/ 100000" in html
    assert {row[2] for row in plot["data"]} == {"critic (d_loss)", "generator (g_loss)"}
    assert read_image(sample).shape[0] > 3 * 32  # one row per class
    assert "Stopping" in c.predict(api_name="/stop")
    assert jobs.wait(60) and jobs.state == "stopped"
    run = app["ws"] / "runs" / "tiny"
    step = int(checkpoint.checkpoint_dirs(run)[0].name[5:])
    assert step == jobs.step >= 1
    _monitor_until(c, lambda o: "stopped at step" in o[1])
    assert "No training" in c.predict(api_name="/stop")
    with pytest.raises(Exception) as e:
        c.predict(**_settings(app, "tiny"), api_name="/start")
    assert "exists already" in _error(e)

    assert "Resuming" in c.predict("tiny", step + 2, api_name="/resume")
    assert jobs.wait(60) and jobs.state == "finished", jobs.message
    assert checkpoint.checkpoint_dirs(run)[0].name == f"step_{step + 2:08d}"
    steps = [json.loads(l)["step"] for l in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == step + 2


def test_explore_lists_models_and_blending_changes_the_image(app):
    c, m = app["client"], app["demo_model"]
    listed = c.predict(None, api_name="/list_cgan_models")
    assert [v for _, v in listed["choices"]][0] == m  # the shipped model folder comes first
    assert listed["value"] == m  # and is selected
    assert all("stripes" not in label for label, _ in listed["choices"])  # texture runs are not listed
    out = c.predict(m, api_name="/open_cgan_model")
    assert [u.get("label") for u in out[:3]] == ["blue", "green", "red"] and out[3]["visible"] is False
    w1 = [1, 0, 0, 0, 0, 0, 0, 0]
    w2 = [1, 0.8, 0, 0, 0, 0, 0, 0]
    a = read_image(c.predict(m, 0, 1, 0, "slerp", 1.0, 4, *w1, api_name="/blend"))
    b = read_image(c.predict(m, 0, 1, 0, "slerp", 1.0, 4, *w2, api_name="/blend"))
    again = read_image(c.predict(m, 0, 1, 0, "slerp", 1.0, 4, *w1, api_name="/blend"))
    assert a.shape == (2 + 34, 2 + 4 * 34, 3)  # 4 images of 32 px in a row with 2 px gaps
    assert np.abs(a.astype(int) - b).mean() > 2 and (a == again).all()
    moved = read_image(c.predict(m, 0, 1, 0.5, "lerp", 0.7, 4, *w1, api_name="/blend"))
    assert not (moved == a).all()
    grid = read_image(c.predict(m, "seeds x classes", 0, 1, 0, "slerp", 1.0, 3, *w1, api_name="/grid"))
    assert grid.shape[:2] == (2 + 3 * 34, 2 + 3 * 34)
    steps = read_image(c.predict(m, "interpolation steps", 0, 1, 0, "slerp", 1.0, 3, *w2, api_name="/grid"))
    assert steps.shape[:2] == (36, 2 + 8 * 34)
    with pytest.raises(Exception) as e:
        c.predict(m, 0, 1, 0, "slerp", 1.0, 4, *[0] * 8, api_name="/blend")
    assert "at least one class slider" in _error(e)
    with pytest.raises(Exception) as e:
        c.predict("/etc", 0, 1, 0, "slerp", 1.0, 4, *w1, api_name="/blend")
    assert "workspace runs and the checkpoints folder" in _error(e)
    with pytest.raises(Exception) as e:
        c.predict(app["texture_run"], api_name="/open_cgan_model")
    assert "texture model" in _error(e)


def test_explore_exports_png_with_parameters_and_a_looping_animation(app):
    c, m = app["client"], app["demo_model"]
    w = [0.3, 0.7, 0, 0, 0, 0, 0, 0]
    up = c.predict(m, "../../my blend", 3, 9, 0.25, "lerp", 0.8, 2, *w, api_name="/export_png")
    saved = sorted((app["ws"] / "exports").glob("my_blend-*.png"))
    assert len(saved) == 1 and up["label"] == f"Download {saved[0].name}"
    with Image.open(saved[0]) as im:
        meta = im.text
    assert json.loads(meta["classes"]) == {"blue": 0.3, "green": 0.7}
    assert meta["seed_a"] == "3" and meta["seed_b"] == "9" and meta["interpolation"] == "lerp"
    assert meta["truncation"] == "0.800" and meta["position"] == "0.250"
    gif, files = c.predict(m, "loop", 8, 0, 1, 0, "slerp", 1.0, 2, *w, api_name="/export_animation")
    assert sorted(Path(f).suffix for f in files) == [".gif", ".webp"]
    for f in (app["ws"] / "exports").glob("loop-loop-*"):
        with Image.open(f) as im:
            assert im.n_frames == 8 and im.info.get("loop") == 0
            first = np.asarray(im.convert("RGB"))
            im.seek(4)
            middle = np.asarray(im.convert("RGB"))
        assert not (first == middle).all()  # A at the start, B halfway


def test_texture_tileable_previews_and_export(app):
    c, m = app["client"], app["texture_run"]
    listed = c.predict(None, api_name="/list_sgan_models")
    assert [v for _, v in listed["choices"]] == [m]
    out = c.predict(m, api_name="/open_sgan_model")
    assert out[0]["value"] == "0: stripes" and "multiples of 8 px" in out[-1]
    tex, tiled, offset, info = c.predict(m, 100, 60, 7, True, None, *BLEND, api_name="/texture")
    t, tl, off = read_image(tex), read_image(tiled), read_image(offset)
    assert t.shape == (64, 104, 3)  # rounded up to multiples of 2**depth = 8
    assert tl.shape == (128, 208, 3) and (tl[:64, :104] == t).all() and (tl[64:, 104:] == t).all()
    assert (off == np.roll(t, (32, 52), axis=(0, 1))).all()
    assert "104 x 64 px" in info and "rounded up from 100x60" in info and "Seam ratio" in info
    ratio = float(info.split("Seam ratio **")[1].split("**")[0])
    assert ratio < 2.0

    canvas = np.zeros((32, 32, 4), np.uint8)
    canvas[:, 16:] = [0x2e, 0x86, 0xab, 255]
    Image.fromarray(canvas).save(app["root"] / "canvas.png")
    painted_value = {"background": None, "layers": [], "composite": handle_file(str(app["root"] / "canvas.png"))}
    painted = read_image(c.predict(m, 64, 64, 7, True, painted_value, *BLEND, api_name="/texture")[0])
    plain = read_image(c.predict(m, 64, 64, 7, True, None, *BLEND, api_name="/texture")[0])
    assert painted.shape == plain.shape == (64, 64, 3) and not (painted[:, 40:] == plain[:, 40:]).all()

    up = c.predict("my texture", m, 64, 64, 7, True, None, *BLEND, api_name="/export_texture")
    saved = sorted((app["ws"] / "exports").glob("my_texture-64x64-*.png"))
    assert len(saved) == 1 and up["value"]
    with Image.open(saved[0]) as im:
        assert im.size == (64, 64) and im.text["tileable"] == "True" and im.text["seed"] == "7"
        assert (np.asarray(im.convert("RGB")) == plain).all()
    with pytest.raises(Exception) as e:
        c.predict(m, 9000, 64, 0, True, None, *BLEND, api_name="/texture")
    assert "8192" in _error(e)


def test_only_exports_are_served_as_files(app):
    import httpx

    secret = app["ws"] / "runs" / "stripes" / "config.json"
    r = httpx.get(f"{app['url']}gradio_api/file={secret}")
    assert r.status_code == 403
    exported = next((app["ws"] / "exports").glob("*.png"), None)
    if exported is not None:
        assert httpx.get(f"{app['url']}gradio_api/file={exported}").status_code == 200


def test_seam_number_of_very_large_textures_matches_the_full_measure():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (600, 900, 3), dtype=np.uint8)
    stripes = np.tile((np.sin(np.arange(900) / 7)[None, :, None] * 100 + 120), (600, 1, 3)).astype(np.uint8)
    for img in (noise, stripes):
        full = studio.seam_ratio(img)
        assert studio.seam_number(img) == full  # small: the exact measure
        assert abs(studio.seam_number(img, limit=256) - full) < 0.05 * full  # corners only


def test_progress_follows_the_time_budget_and_the_gauge_draws_distance_and_floor():
    from gan_core.config import NO_STEP_LIMIT
    html = studio.progress_html("running", 120, NO_STEP_LIMIT, {"used_s": 150, "eta_s": 450, "img_per_s": 90},
                                "", "flowers", budget_s=600)
    assert "2 min 30 s of 10 min 00 s" in html and "width:25.0%" in html and "about 7 min 30 s left" in html
    steps = studio.progress_html("running", 50, 200, {}, "", "flowers")
    assert "step 50 / 200" in steps and "width:25.0%" in steps
    assert studio.quality_figure([]) is None
    fig = studio.quality_figure([{"step": 0, "swd": 600.0, "swd_floor": 40.0, "grid": 3.0, "used_s": 0},
                                 {"step": 250, "swd": 90.0, "swd_floor": 40.0, "grid": 1.2, "used_s": 60}])
    dist, grid = fig.axes
    assert [list(l.get_ydata()) for l in dist.lines] == [[600.0, 90.0], [40.0, 40.0]]  # samples, dashed floor
    assert dist.lines[1].get_linestyle() == "--" and list(grid.lines[0].get_ydata()) == [3.0, 1.2]


def test_train_for_minutes_sets_a_time_budget_without_a_step_limit(class_dir, tmp_path):
    from gan_core.config import NO_STEP_LIMIT
    s = studio.Studio(tmp_path / "ws", models_dir=None, jobs=studio.JobManager())
    base = dict(variant="cgan", data_text=class_dir, resolution="32", steps=10, batch=4, recipe="studio",
                augment=[], g_channels=4, d_channels=4, lr=1e-4, seed=0, sample_every=5, ckpt_every=5,
                patch=32, depth=3)
    timed = s.build_config(**base, train_for=10)
    assert timed.train.minutes == 10 and timed.train.steps == NO_STEP_LIMIT and timed.model.arch == "upconv"
    stepped = s.build_config(**base, train_for=0)
    assert stepped.train.minutes == 0 and stepped.train.steps == 10
    ref = s.build_config(**{**base, "recipe": "reference"}, train_for=0)
    assert ref.model.arch == "dcgan" and ref.train.loss == "wgan-gp"
    with pytest.raises(ConfigError, match="Train for"):
        s.build_config(**base, train_for=-5)


def test_switching_the_variant_sets_that_variants_recipe_settings():
    """Conditional models and textures train with different learning rates and batches in the
    studio recipe; switching the variant must not keep the other variant's."""
    from gan_core.config import TrainConfig
    for variant in ("cgan", "sgan"):
        shown, batch, *_, augment, lr = studio.variant_defaults(variant, "studio")
        t = TrainConfig.recipe("studio", variant)
        assert (batch, augment, lr) == (t.batch, t.augment, t.lr_g)
        assert shown["visible"] == (variant == "cgan")  # resolution is a conditional-model setting
    assert studio.variant_defaults("cgan", "studio")[-1] != studio.variant_defaults("sgan", "studio")[-1]
