"""The studio (ui/ and studio.py) through its API: gradio_client against the launched app. It binds to
127.0.0.1, serves only its exports, bounds uploads and its queue, and keeps one training job while
others generate."""
from __future__ import annotations

import http.client
import json
import os
import tempfile
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import studio
from gan_core import checkpoint
from gan_core import checkpoint as ckpt
from gan_core.datacheck import DataCheck
from gan_core.io import inside
from gan_core.jobs import Jobs
from tests.conftest import make_class_folder
from tests.helpers import (Payload, cut_weights, launch, make_class_zip, make_model_folder, patch_config, read_image,
                           shutdown, studio_env)

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402




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


# ------------------------------------------------------------------ the launcher


def test_workshop_mode_needs_a_password_and_a_data_root(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GAN_STUDIO_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as e:
        studio.main(["--listen", "--workspace", str(tmp_path / "ws")])
    assert e.value.code == 2 and "--password" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        studio.main(["--listen", "--password", "long-enough", "--workspace", str(tmp_path / "ws")])
    assert "--data-root" in capsys.readouterr().err
    (tmp_path / "shared").mkdir()
    with pytest.raises(SystemExit):
        studio.main(["--listen", "--password", "x", "--data-root", str(tmp_path / "shared")])
    assert "at least 8 characters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        studio.main(["--host", "0.0.0.0", "--workspace", str(tmp_path / "ws")])
    assert "--listen" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        studio.main(["--host", "::1", "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert "IPv4 addresses only" in err and "Traceback" not in err


# ------------------------------------------------------------------ the app through its API
@pytest.mark.slow
def test_check_data_shows_classes_counts_and_skipped_files(app):
    c = app["client"]
    md, sheet = c.predict("cgan", app["data"], 4, 128, api_name="/check_data")
    assert "3 classes, 18 images" in md
    assert "**red**: 6 images" in md
    assert "empty" in md and "no image files" in md  # a class folder without images is reported
    assert "`broken.png`: cannot be read as an image" in md
    sheet = read_image(_value(sheet))
    assert sheet.shape[0] == 3 * (48 + 4) + 4  # one row of thumbnails per class
    md, sheet = c.predict("sgan", app["texture"], 8, 64, api_name="/check_data")
    assert "1 usable texture image" in md and "96x96" in md and read_image(_value(sheet)).shape[0] == 96 + 8
    with pytest.raises(Exception) as e:
        c.predict("cgan", str(app["root"] / "missing"), 4, 128, api_name="/check_data")
    assert "does not exist" in _error(e) and "Traceback" not in _error(e)


@pytest.mark.slow
def test_zip_upload_fills_in_the_data_folder(app, tmp_path):
    upload = make_class_zip(tmp_path / "my pics.zip", tmp_path)
    server_temp = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
    before = set(server_temp.rglob("*.zip"))
    folder = app["client"].predict(handle_file(str(upload)), api_name="/upload_zip")
    assert upload.exists()  # the user's own zip stays; the server's copy of it is gone once unpacked
    assert set(server_temp.rglob("*.zip")) - before == set()
    assert Path(folder).is_dir() and inside(Path(folder), app["ws"] / "uploads")
    md, _ = app["client"].predict("cgan", folder, 4, 128, api_name="/check_data")
    assert "3 classes, 9 images" in md


def _settings(app, name, **over):
    s = dict(run_name=name, variant="cgan", data=app["data"], resolution="32", steps=100000, batch=4,
             recipe="reference", augment=["translation"], g_channels=4, d_channels=4, lr=1e-4,
             seed=0, sample_every=2, ckpt_every=100000, patch=32, depth=3, minutes=0)
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


@pytest.mark.slow
def test_start_busy_stop_resume(app):
    c, jobs = app["client"], app["jobs"]
    with pytest.raises(Exception) as e:
        c.predict(**_settings(app, "../escape"), api_name="/start")
    assert "only letters, digits" in _error(e)
    for over, words in (({"steps": 2.5}, "Steps must be a whole number, got 2.5"),
                        ({"batch": None}, "Batch must be a whole number; it is empty"),
                        ({"lr": -1}, "Learning rate must be between 0 (not included) and 1")):
        with pytest.raises(Exception) as e:
            c.predict(**_settings(app, "refused", **over), api_name="/start")
        assert words in _error(e) and "Traceback" not in _error(e)
    assert not (app["ws"] / "runs" / "refused").exists() and not jobs.busy()
    msg, _ = c.predict(**_settings(app, "tiny"), api_name="/start")
    assert "Started 'tiny'" in msg
    with pytest.raises(Exception) as e:
        c.predict(**_settings(app, "other"), api_name="/start")
    assert "Busy" in _error(e)
    plot, html, sample, *_ = _monitor_until(c, lambda o: "step" in o[1] and o[2] and " 0 /" not in o[1]
                                        and isinstance(o[0], dict) and len(o[0].get("data", [])) > 0)
    assert "tiny" in html and "running" in html and "/ 100000" in html
    assert {row[2] for row in plot["data"]} == {"critic (d_loss)", "generator (g_loss)"}
    assert sample["label"] == "Latest samples (one row per class)"
    assert read_image(_value(sample)).shape[0] > 3 * 32  # one row per class
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


@pytest.mark.slow
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
    h, w = grid.shape[:2]  # 3 x 3 pictures of 32 px shown at 3x, class names on the left, seeds on top
    assert 3 * 100 < h < 3 * 100 + 60 and 3 * 100 + 20 < w < 3 * 100 + 200
    assert (grid[:8, :20] == 255).all() and (grid[-40:, -40:] != 255).any()
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


@pytest.mark.slow
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


def _texture(c, m, **settings):
    """The /texture endpoint with named settings (the rest as the page starts)."""
    args = dict(model=m, width=64, height=64, seed=7, tileable=True, canvas=None, brush1_source=0, brush1_seed=0)
    return c.predict(**{**args, **settings}, api_name="/texture")


@pytest.mark.slow
def test_texture_tileable_previews_and_export(app):
    c, m = app["client"], app["texture_run"]
    listed = c.predict(None, api_name="/list_sgan_models")
    assert [v for _, v in listed["choices"]] == [m]
    out = c.predict(m, api_name="/open_sgan_model")
    assert out[0]["value"] == 0 and "<b>1</b> stripes" in out[4] and "multiples of 8 px" in out[-1]
    real, overview, crop, relief, canvas, info = _texture(c, m, width=100, height=60)
    t, cr, lit = read_image(overview), read_image(crop), read_image(relief)
    assert t.shape == cr.shape == lit.shape == (64, 104, 3)  # rounded up to multiples of 2**depth = 8
    assert (cr == t).all() and _value(real).startswith("data:image/png;base64,") and real["props"]["tex_w"] == 104
    assert "104 x 64 px" in info and "rounded up from 100x60" in info and "no visible seam" in info
    assert float(info.split("edge are ")[1].split("x")[0]) < 1.5

    canvas = np.zeros((32, 32, 4), np.uint8)
    canvas[:, 16:] = [0x2e, 0x86, 0xab, 255]
    Image.fromarray(canvas).save(app["root"] / "canvas.png")
    painted_value = {"background": None, "layers": [], "composite": handle_file(str(app["root"] / "canvas.png"))}
    painted = read_image(_texture(c, m, canvas=painted_value, brush2_source=-1, brush2_seed=5)[1])
    plain = read_image(_texture(c, m)[1])
    assert painted.shape == plain.shape == (64, 64, 3) and not (painted[:, 40:] == plain[:, 40:]).all()

    mask = np.zeros((40, 80), np.uint8)
    mask[:, 40:] = 255
    Image.fromarray(mask).save(app["root"] / "mask.png")
    value = c.predict(mask=handle_file(str(app["root"] / "mask.png")), canvas=None, api_name="/import_mask")
    layer = read_image(value["layers"][0]["path"] if isinstance(value["layers"][0], dict) else value["layers"][0])
    assert layer.shape[:2] == (512, 512)  # stretched over the square texture on screen, as painting is
    near = lambda a, rgb: np.abs(a.astype(int) - rgb).max() <= 12  # noqa: E731 (the page gets a WebP)
    assert near(layer[:, 5], [0xe4, 0x57, 0x2e]) and near(layer[:, -5], [0x2e, 0x86, 0xab])  # brush 1 | 2

    # export = the settings on screen: the texture shown above was 64 px, seed 7, tileable
    up, line = c.predict(name="my texture", model=m, width=48, height=40, seed=5, tileable=False, canvas=None,
                         brush1_source=0, brush1_seed=0, maps=["height", "normal"], api_name="/export_texture")
    saved = sorted((app["ws"] / "exports").glob("my_texture-48x40-*"))
    assert [p.name.rsplit("_", 1)[1] for p in saved] == ["color.png", "height.png", "normal.png"] and up["value"]
    with Image.open(saved[0]) as im:
        assert im.size == (48, 40) and im.text["tileable"] == "False" and im.text["seed"] == "5"
        assert im.text["requested_size"] == "48x40" and im.text["model"] == "stripes" and "feather_px" in im.text
    with Image.open(saved[1]) as im:
        assert im.mode.startswith("I;16") and im.size == (48, 40) and im.text["map"] == "height"
    # unchanged settings: the very pixels shown
    shown = read_image(_texture(c, m, seed=9)[1])
    c.predict(name="same", model=m, width=64, height=64, seed=9, tileable=True, canvas=None, brush1_source=0,
              brush1_seed=0, api_name="/export_texture")
    same = next((app["ws"] / "exports").glob("same-64x64-*.png"))
    with Image.open(same) as im:
        assert (np.asarray(im.convert("RGB")) == shown).all()

    # 16-bit PNG, and a batch of variations in a folder with its contact sheet
    from tests.test_texture_files import _read_png16
    c.predict(name="deep", model=m, width=64, height=64, seed=9, tileable=True, canvas=None, brush1_source=0,
              brush1_seed=0, file_format="png16", api_name="/export_texture")
    deep, text = _read_png16(next((app["ws"] / "exports").glob("deep-64x64-*.png")))
    # the picture shown: previews are drawn in bf16 where the CPU runs it fast (gan_core.texture.render:
    # within 2 of 255 levels of fp32), 16-bit files always in fp32; elsewhere both fp32, a rounding step apart
    import torch

    from gan_core.train import use_bf16
    diff = np.abs((deep >> 8).astype(int) - shown)
    tol = 4 if use_bf16("auto", torch.device("cpu")) else 1
    assert text["bits"] == "16" and text["format"] == "png16" and diff.max() <= tol and diff.mean() < 1
    up, line = c.predict(name="batch", model=m, width=32, height=32, seed=3, tileable=True, canvas=None,
                         variations=3, maps=["normal"], api_name="/export_texture")
    folder = next((app["ws"] / "exports").glob("batch-variations-*"))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"batch_seed{s}_{k}.png" for s in (3, 4, 5) for k in ("color", "normal")] + ["batch_sheet.png"])
    assert up["value"].endswith("batch_sheet.png") and "6 files" in line

    # Cancel: an 8192 px texture stops at its next tile, with a line that says so
    job = c.submit(model=m, width=8192, height=8192, seed=1, tileable=True, canvas=None, api_name="/texture")
    t0 = time.time()
    while not (job.status().progress_data or job.done()) and time.time() - t0 < 60:
        time.sleep(0.1)
    c.predict(api_name="/cancel_texture")
    assert "Cancelled" in job.result(timeout=600)[-1]

    info = _texture(c, m, width=10000)[-1]  # a notice, the pictures stay as they were
    assert "Not generated" in info and "8192" in info
    _, line = c.predict(name="", model=m, width=64, height=64, seed=7, tileable=True, canvas=None, variations=0,
                        api_name="/export_texture")
    assert "Not exported" in line and "Variations must be between 1 and 64" in line


@pytest.mark.slow
def test_only_exports_are_served_as_files(app):
    import httpx

    secret = app["ws"] / "runs" / "stripes" / "config.json"
    r = httpx.get(f"{app['url']}gradio_api/file={secret}")
    assert r.status_code == 403
    exported = next((app["ws"] / "exports").glob("*.png"), None)
    if exported is not None:
        assert httpx.get(f"{app['url']}gradio_api/file={exported}").status_code == 200


# ------------------------------------------------------------------ guarded: limits and faults
@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A studio with a small queue and upload limit, a good model and three damaged ones."""
    from gradio_client import Client

    root = tmp_path_factory.mktemp("sec")
    data = make_class_folder(root / "data", n_per_class=4, size=34)
    models = root / "models"
    make_model_folder(models / "good")
    for name in ("truncated", "pickle", "other widths"):
        make_model_folder(models / name)
    sentinel = root / "payload-ran"
    cut_weights(models / "truncated", -100)
    (models / "pickle" / "G_ema.safetensors").write_bytes(pickle.dumps(Payload(sentinel)))
    patch_config(models / "other widths", g_channels=8)
    jobs = Jobs()
    import ui
    demo = ui.build_app(root / "ws", models_dir=models, jobs=jobs)
    port = studio.free_port()
    ui.launch_app(demo, port=port, prevent_thread_lock=True, quiet=True, max_queue=4, max_upload_mb=1)
    url = f"http://127.0.0.1:{port}/"
    exported = demo.ctx.ws.exports / "mine.png"
    exported.write_bytes((Path(data) / "red" / "img0.png").read_bytes())
    env = dict(root=root, data=data, models=models, demo=demo, jobs=jobs, port=port, url=url,
               exported=exported, sentinel=sentinel, client=Client(url, verbose=False))
    yield env
    jobs.stop()
    jobs.wait(60)
    demo.close()


def _get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request("GET", path)  # sent as written: no client-side normalising of dots or escapes
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


@pytest.mark.slow
def test_studio_binds_to_localhost_without_a_share_link(guarded, monkeypatch, tmp_path):
    import ui
    assert guarded["demo"].server_name == "127.0.0.1" and guarded["demo"].share is False
    seen = []

    def launch(demo, **kw):  # record what main() asks for, serve nothing
        seen.append((demo, kw))
        demo.server_port = 0
    monkeypatch.setattr(ui, "launch_app", launch)
    monkeypatch.delenv("GAN_STUDIO_PASSWORD", raising=False)
    assert studio.main(["--workspace", str(tmp_path / "ws"), "--models", str(tmp_path)]) == 0
    assert seen[-1][1]["host"] == "127.0.0.1" and seen[-1][1]["auth"] is None
    assert seen[-1][0].ctx.ws.data_root is None
    (tmp_path / "shared").mkdir()
    assert studio.main(["--listen", "--password", "long-enough", "--data-root", str(tmp_path / "shared"),
                        "--workspace", str(tmp_path / "ws"), "--models", str(tmp_path)]) == 0
    demo, kw = seen[-1]
    assert kw["host"] == "0.0.0.0" and kw["auth"] == ("studio", "long-enough")
    assert demo.ctx.ws.data_root == (tmp_path / "shared").resolve()


@pytest.mark.slow
def test_only_exported_files_are_served(guarded):
    img = str(Path(guarded["data"]) / "red" / "img0.png")
    secret = (Path(guarded["data"]) / "red" / "img0.png").read_bytes()
    exp, port = str(guarded["exported"].parent), guarded["port"]
    status, body = _get(port, f"/gradio_api/file={guarded['exported']}")
    assert status == 200 and body == secret  # the same picture, once exported, is served
    up = "../" * 12 + img.lstrip("/")
    refused = [f"/gradio_api/file={img}", f"/gradio_api/file/{img}", f"/gradio_api/file={exp}/../../../data/red/img0.png",
               f"/gradio_api/file={exp}/%2e%2e/%2e%2e/%2e%2e/data/red/img0.png",
               f"/gradio_api/file={exp}/%2E%2E/%2E%2E/%2E%2E/data/red/img0.png",
               f"/gradio_api/file={exp}/..%2f..%2f..%2fdata%2fred%2fimg0.png",
               f"/gradio_api/file={exp}/%252e%252e/%252e%252e/%252e%252e/data/red/img0.png",
               f"/gradio_api/file={exp}/..\\..\\..\\data\\red\\img0.png", f"/gradio_api/file=file://{img}",
               f"/gradio_api/file=//{img}", f"/gradio_api/file={img.upper()}", f"/gradio_api/file={img.title()}",
               f"/gradio_api/file/{exp}/../../../data/red/img0.png", f"/static/{up}", f"/assets/{up}",
               f"/static/{'%2e%2e/' * 12}{img.lstrip('/')}", f"/assets/{'%2E%2E/' * 12}{img.lstrip('/')}"]
    for path in refused:
        status, body = _get(port, path)
        assert status == 403 and secret not in body, (path, status)
    for path in (f"/GRADIO_API/FILE={img}", f"/Gradio_Api/File={img}", f"/gradio_api/FILE={img}", f"/file={img}"):
        status, body = _get(port, path)  # no such route in any letter case: nothing is served
        assert status in (403, 404) and secret not in body, (path, status)
    config = (guarded["root"] / "ws" / "runs")
    assert _get(port, f"/gradio_api/file={config}")[0] == 403


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(st.data())
def test_mangled_paths_to_a_dataset_image_are_refused(guarded, data):
    """Any mix of escapes, doubled slashes and dot segments on the way to the image."""
    img = Path(guarded["data"]) / "red" / "img0.png"
    secret = img.read_bytes()
    exp = guarded["exported"].parent
    depth = len(exp.parts) - 1
    route = data.draw(st.sampled_from(["/gradio_api/file=", "/gradio_api/file/"]))
    up = [data.draw(st.sampled_from(["..", "%2e%2e", "%2E%2e", ".%2e", "%252e%252e"])) for _ in range(depth)]
    sep = data.draw(st.sampled_from(["/", "%2f", "//", "%2F"]))
    path = route + str(exp) + sep + sep.join(up + list(img.parts[1:]))
    status, body = _get(guarded["port"], path)
    assert status == 403 and secret not in body, (path, status)


@pytest.mark.slow
def test_uploads_over_the_limit_are_refused(guarded):
    import httpx

    r = httpx.post(f"{guarded['url']}gradio_api/upload", files={"files": ("big.zip", b"\0" * 1_100_000)})
    assert r.status_code == 413 and "maximum allowed size" in r.text
    r = httpx.post(f"{guarded['url']}gradio_api/upload", files={"files": ("small.zip", b"\0" * 500_000)})
    assert r.status_code == 200
    # the limit holds for the request as a whole: three files under the limit each, over it together
    three = [("files", (f"part{i}.zip", b"\0" * 500_000)) for i in range(3)]
    r = httpx.post(f"{guarded['url']}gradio_api/upload", files=three)
    assert r.status_code == 413 and "maximum allowed size" in r.text


@pytest.mark.slow
def test_the_request_queue_is_bounded_and_stop_never_waits_in_it(guarded):
    import httpx

    demo, gate = guarded["demo"], threading.Event()
    fn = next(i for i, f in demo.fns.items() if f.api_name == "check_data")

    def slow(*args, **kwargs):
        gate.wait(30)
        return DataCheck("cgan", "slow")
    demo.ctx.ws.check_data = slow  # every request waits until the gate opens
    try:
        codes = []
        for i in range(8):
            r = httpx.post(f"{guarded['url']}gradio_api/queue/join", timeout=20, json={
                "data": ["cgan", guarded["data"], 4, 128], "fn_index": fn, "session_hash": f"q{i}", "event_data": None,
                "trigger_id": None})
            codes.append(r.status_code)
            if r.status_code != 200:
                assert "Queue is full" in r.text
            time.sleep(0.2)
        # the queue is full, yet Stop is answered (it is not queued: the page posts it directly)
        r = httpx.post(f"{guarded['url']}gradio_api/api/stop/", json={"data": [], "session_hash": "s"}, timeout=20)
        assert r.status_code == 200 and "No training is running" in r.text, r.text
        deps = httpx.get(f"{guarded['url']}config", timeout=20).json()["dependencies"]
        assert [d["queue"] for d in deps if d.get("api_name") == "stop"] == [False]
    finally:
        gate.set()
        del demo.ctx.ws.check_data
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {503}  # 1 running + 4 waiting, the rest refused
    assert demo._queue.max_size == 4
    t0 = time.time()
    while len(demo._queue) and time.time() - t0 < 30:  # the queue drains once the slow requests end
        time.sleep(0.1)
    md, _ = guarded["client"].predict("cgan", guarded["data"], 4, 128, api_name="/check_data")
    assert "3 classes, 12 images" in md


@pytest.mark.slow
def test_a_failed_model_load_keeps_the_previous_model_generating(guarded):
    c, good = guarded["client"], str(guarded["models"] / "good")
    w = [1, 0.5, 0, 0, 0, 0, 0, 0]
    c.predict(good, api_name="/open_cgan_model")
    before = read_image(c.predict(good, 0, 1, 0, "slerp", 1.0, 4, *w, api_name="/blend"))
    for name, words in (("truncated", "G_ema.safetensors is damaged or truncated"),
                        ("pickle", "pickle/zip file, not safetensors"),
                        ("other widths", "config.json needs")):
        with pytest.raises(Exception) as e:
            c.predict(str(guarded["models"] / name), api_name="/open_cgan_model")
        assert words in str(e.value) and "Traceback" not in str(e.value)
        after = read_image(c.predict(good, 0, 1, 0, "slerp", 1.0, 4, *w, api_name="/blend"))
        assert (after == before).all()
    assert not guarded["sentinel"].exists()


@pytest.mark.slow
def test_two_clients_start_at_once_one_trains_the_other_is_told_busy_and_generating_goes_on(guarded):
    from gradio_client import Client

    jobs = guarded["jobs"]
    settings_ = dict(variant="cgan", data=guarded["data"], resolution="32", steps=100_000, batch=4, recipe="fast",
                     augment=[], g_channels=4, d_channels=4, lr=1e-4, seed=0, sample_every=100_000,
                     ckpt_every=100_000, patch=32, depth=3, minutes=0)
    clients = [Client(guarded["url"], verbose=False) for _ in range(2)]
    barrier, results = threading.Barrier(2), {}

    def start(i):
        barrier.wait()
        try:
            results[i] = clients[i].predict(run_name=f"race{i}", **settings_, api_name="/start")[0]
        except Exception as e:
            results[i] = str(e)
    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    started = [r for r in results.values() if r.startswith("Started")]
    assert len(started) == 1 and any("Busy: the run" in r for r in results.values()), results
    t0 = time.time()
    while jobs.step < 2 and time.time() - t0 < 300:
        time.sleep(0.05)
    assert jobs.busy() and jobs.state == "running"
    good = str(guarded["models"] / "good")
    img = read_image(clients[1].predict(good, 0, 1, 0, "slerp", 1.0, 2, 1, 0, 0, 0, 0, 0, 0, 0, api_name="/blend"))
    assert img.shape == (36, 70, 3) and jobs.busy()  # generated while the other client trains
    assert "Stopping" in clients[0].predict(api_name="/stop")  # (within one step: test_reliability)
    assert jobs.wait(300) and jobs.state == "stopped"
    G, cfg = ckpt.load_generator(jobs.run.path)
    assert cfg.model.class_names == ["blue", "green", "red"]
    assert int(ckpt.checkpoint_dirs(jobs.run.path)[0].name[5:]) == jobs.step


@pytest.mark.slow
def test_requests_addressed_to_another_host_get_nothing(guarded):
    import httpx

    ok = httpx.get(guarded["url"], timeout=20)
    assert ok.status_code == 200 and "GAN Studio" in ok.text
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example"):  # DNS rebinding
        r = httpx.get(guarded["url"], headers={"Host": host}, timeout=20)
        assert r.status_code == 400 and "GAN Studio" not in r.text
        r = httpx.post(f"{guarded['url']}gradio_api/queue/join", headers={"Host": host}, json={}, timeout=20)
        assert r.status_code == 400


@pytest.mark.slow
def test_workshop_mode_asks_for_the_password_and_limits_guesses(tmp_path):
    import httpx
    from gradio_client import Client

    env = studio_env(tmp_path)
    import ui
    demo = ui.build_app(env["ws"], models_dir=env["models"], jobs=Jobs())
    port = studio.free_port()
    ui.launch_app(demo, port=port, prevent_thread_lock=True, quiet=True, auth=("studio", "long-enough"))
    url = f"http://127.0.0.1:{port}/"
    try:
        page = httpx.get(url, timeout=20)
        assert "GAN Studio workshop: ask the host for the password" in page.text  # the login page
        assert "check_data" not in page.text and "/open_cgan_model" not in page.text  # no list of actions
        assert httpx.get(f"{url}gradio_api/info", timeout=20).status_code in (401, 403)
        with pytest.raises(Exception):
            Client(url, verbose=False).predict(None, api_name="/list_cgan_models")
        good = Client(url, auth=("studio", "long-enough"), verbose=False)
        assert good.predict(None, api_name="/list_cgan_models")["value"] == env["demo_model"]
        assert httpx.get(f"{url}gradio_api/heartbeat/someone", timeout=20).status_code == 401
        with httpx.Client(base_url=url, timeout=20) as session:
            assert session.post("login", data={"username": "studio", "password": "long-enough"}).status_code == 200
            assert "/check_data" in session.get("").text  # once logged in, the page is whole
            with session.stream("GET", "gradio_api/heartbeat/someone") as beat:
                assert beat.status_code == 200  # once logged in
        codes = [httpx.post(f"{url}login", data={"username": "studio", "password": f"guess{i}"}, timeout=20).status_code
                 for i in range(12)]
        assert codes[-1] == 429 and 429 not in codes[:8]  # a few guesses, then a wait
    finally:
        demo.close()
