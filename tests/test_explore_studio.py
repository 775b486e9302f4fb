"""Explore's breeding, directions, favourites, walks and exports through the studio's API
(gradio_client against the launched app): a whole breeding session, a restart included."""
from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from gan_core.media import read_frames, read_settings
from tests.helpers import launch, read_image, shutdown, studio_env

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

pytestmark = pytest.mark.slow
M = "demo-colours"  # the model as the list names it


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return studio_env(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def app(env):
    demo, jobs, url = launch(env)
    env.update(demo=demo, jobs=jobs, url=url)
    yield env
    shutdown(demo, jobs)


def _gallery(out, i=1):
    g = out[i]
    return g["value"] if isinstance(g, dict) else g


def _caps(out, i=1):
    return [g["caption"] for g in _gallery(out, i)]


def _pic(entry) -> np.ndarray:
    return read_image(entry["image"])


def test_a_breeding_session_survives_a_restart(env, app):
    c = Client(app["url"], verbose=False)
    out = c.predict(model=M, seed=5, n=6, classes="green=0.5, red=0.5", api_name="/show")
    assert _caps(out) == [f"seed {k}" for k in range(5, 11)] and "seeds 5-10" in out[2]
    out = c.predict(model=M, index=2, api_name="/pick")
    assert _caps(out)[2] == "▶ seed 7" and "Parent: **seed 7**" in out[3]
    parent = _pic(_gallery(out)[2])
    out = c.predict(model=M, children=8, strength=0.3, api_name="/children")
    assert len(_gallery(out)) == 9 and _caps(out)[0] == "▶ seed 7"
    assert (np.abs(_pic(_gallery(out)[0]).astype(int) - parent) < 2).all()  # the parent leads its children
    kids = [_pic(g) for g in _gallery(out)[1:]]
    assert all(0.5 < np.abs(k.astype(int) - parent).mean() for k in kids)  # variations, not copies
    assert "children of seed 7" in out[2]
    c.predict(model=M, index=1, api_name="/pick")
    out = c.predict(model=M, index=3, api_name="/pick")
    assert "A for a crossbreed: **child 1**" in out[3]
    out = c.predict(model=M, children=8, api_name="/crossbreed")
    assert _caps(out)[0] == "A" and _caps(out)[-1] == "B" and len(_gallery(out)) == 10
    assert "cross of child 1 and child 3" in out[2]
    out = c.predict(model=M, api_name="/undo")
    assert "**children of seed 7**" in out[2] and len(_gallery(out)) == 9  # back to the children
    assert _caps(out, 4) == ["1. seeds 5-10", "2. children of seed 7", "3. cross of child 1 and child 3"]
    assert out[4]["selected_index"] == 1  # the lineage strip marks the generation shown
    out = c.predict(model=M, api_name="/redo")
    assert "**cross of child 1 and child 3**" in out[2]
    c.predict(model=M, api_name="/undo")
    c.predict(model=M, index=4, api_name="/pick")
    favs = c.predict(model=M, api_name="/favourite")
    assert [f["caption"] for f in favs] == ["demo-colours: child 4"]
    files = list((app["ws"] / "favourites").glob("*"))
    assert sorted(f.suffix for f in files) == [".json", ".png"]

    shutdown(app["demo"], app["jobs"])  # a restart: a new server on the same workspace
    demo, jobs, url = launch(env)
    app.update(demo=demo, jobs=jobs, url=url)
    c = Client(url, verbose=False)
    favs = c.predict(api_name="/favourites")
    assert [f["caption"] for f in favs] == ["demo-colours: child 4"]
    rec = read_settings(favs[0]["image"])
    assert rec["model"] == M and rec["specimen"]["label"] == "child 4"


def test_named_pictures_endpoint_and_direction_offsets(app):
    c = Client(app["url"], verbose=False)
    r = c.predict(model=M, classes="green=0.5, red=0.5", seeds="3,4", scale=2, api_name="/pictures")
    assert r["labels"] == ["seed 3", "seed 4"]
    img = lambda u: np.asarray(Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).convert("RGB"))  # noqa
    a = img(r["images"][0])
    assert a.shape == (64, 64, 3)
    moved = img(c.predict(model=M, classes="green=0.5, red=0.5", seeds="3", scale=2, directions="1=3",
                          api_name="/pictures")["images"][0])
    assert np.abs(moved.astype(int) - a).mean() > 2
    with pytest.raises(Exception) as e:
        c.predict(model=M, classes="purple", api_name="/pictures")
    assert "unknown class 'purple'" in str(e.value)
    with pytest.raises(Exception) as e:
        c.predict(model="nope", api_name="/pictures")
    assert "There is no model named 'nope'" in str(e.value) and "demo-colours" in str(e.value)


def test_walk_export_as_mp4_and_an_export_opens_again(app):
    c = Client(app["url"], verbose=False)
    c.predict(model=M, seed=0, n=4, classes="blue", api_name="/show")
    for i in (0, 1, 2, 3):
        c.predict(model=M, index=i, api_name="/pick")
        keys = c.predict(model=M, ease="smooth", api_name="/add_keyframe")
    assert keys.count("→") == 4
    video, file, msg = c.predict(model=M, name="walk", frames_per_key=5, fps=10, scale=2, kind="mp4",
                                 api_name="/export_walk")
    path = file["value"] if isinstance(file, dict) and "value" in file else file
    frames = read_frames(path)
    assert "21 frames" in msg and len(frames) == 21 and frames[0].shape == (64, 64, 3)
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() < 2
    c.predict(model=M, index=1, api_name="/pick")
    up = c.predict(model=M, name="one", scale=3, direction_2=1.5, api_name="/export_picture")
    png = app["ws"] / "exports" / up["label"].removeprefix("Download ")
    with Image.open(png) as im:
        assert im.size == (96, 96)
    out = c.predict(model=M, file=handle_file(str(png)), api_name="/open_export")
    assert out[0]["value"] == app["demo_model"] and _caps(out, 3) == ["▶ seed 1"]
    assert "opened export" in out[4]
    assert [u["value"] for u in out[7:13]] == [0.0, 1.5, 0.0, 0.0, 0.0, 0.0]
    plain = app["root"] / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(Exception) as e:
        c.predict(model=M, file=handle_file(str(plain)), api_name="/open_export")
    assert "holds no GAN Studio settings" in str(e.value)


def test_cancel_stops_a_running_walk_export_and_leaves_no_file(app):
    c = Client(app["url"], verbose=False)
    c.predict(model=M, seed=0, n=4, classes="red", api_name="/show")
    for i in range(4):
        c.predict(model=M, index=i, api_name="/pick")
        c.predict(model=M, ease="linear", api_name="/add_keyframe")
    before = set((app["ws"] / "exports").iterdir())
    job = c.submit(model=M, name="stopped", frames_per_key=96, fps=24, scale=8, kind="mp4", api_name="/export_walk")
    t0 = time.time()
    while time.time() - t0 < 60 and not (job.status().progress_data or job.done()):
        time.sleep(0.05)
    assert not job.done(), "the export finished before it could be cancelled"
    assert c.predict(api_name="/cancel_export") == "Cancelling…"
    with pytest.raises(Exception) as e:
        job.result()
    assert "Export cancelled; nothing was written" in str(e.value)
    assert set((app["ws"] / "exports").iterdir()) == before  # no file, no temporary file


def test_grid_export_at_a_scale_with_its_settings(app):
    c = Client(app["url"], verbose=False)
    w = [1, 0, 0, 0, 0, 0, 0, 0]
    up = c.predict(app["demo_model"], "g", 2, "seeds x classes", 4, 1, 0, "slerp", 1.0, 3, *w, api_name="/export_grid")
    png = app["ws"] / "exports" / up["label"].removeprefix("Download ")
    img = read_image(png)
    assert img.shape[0] > 3 * 64 and img.shape[1] > 3 * 64  # 32 px pictures at 2x, labelled
    s = read_settings(png)
    assert s["grid"] == "classes x seeds" and s["seeds"] == [4, 5, 6] and s["scale"] == 2
