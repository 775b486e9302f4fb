"""Untrusted files and the web app: pickles are never run, damaged model files are refused by
name of the problem, the studio serves only its exports, bounds uploads and its queue, binds to
127.0.0.1, and keeps one training job while others generate."""
from __future__ import annotations

import http.client
import json
import os
import pickle
import struct
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import studio
from gan_core import checkpoint as ckpt
from gan_core.__main__ import main as cli
from gan_core.errors import CheckpointError, ConfigError, DatasetError
from gan_core.train import resume, train
from tests.conftest import make_class_folder, tiny_cgan
from tests.studio_helpers import make_model_folder, read_image

HYPO = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Payload:
    """What a hostile pickle does when it is loaded: create the sentinel file."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def pickles(sentinel) -> dict[str, bytes]:
    """A payload in every pickle protocol, and as torch.save writes it (zip and legacy)."""
    out = {f"protocol{p}": pickle.dumps({"weight": Payload(sentinel)}, protocol=p) for p in range(6)}
    for name, zip_format in (("torch.save", True), ("torch.save-legacy", False)):
        path = Path(str(sentinel) + ".tmp")
        torch.save({"weight": Payload(sentinel)}, path, _use_new_zipfile_serialization=zip_format)
        out[name] = path.read_bytes()
        path.unlink()
    return out


# ------------------------------------------------------------------------------ untrusted files
def test_pickled_models_are_refused_without_running_them(tmp_path, capsys):
    sentinel = tmp_path / "payload-ran"
    for kind, data in pickles(sentinel).items():
        for suffix in (".pt", ".pth", ".ckpt"):
            f = tmp_path / f"model-{kind}{suffix}"
            f.write_bytes(data)
            assert cli(["sample", str(f), "--out", str(tmp_path / "x.png")]) == 2
            assert "is a file; give the model or run folder" in capsys.readouterr().err
        folder = make_model_folder(tmp_path / f"renamed-{kind}")
        (folder / "G_ema.safetensors").write_bytes(data)  # the same bytes under the trusted name
        with pytest.raises(CheckpointError, match="pickle/zip file, not safetensors|not a valid safetensors"):
            ckpt.load_generator(folder)
        assert cli(["sample", str(folder), "--out", str(tmp_path / "x.png")]) == 2
        assert "G_ema.safetensors" in capsys.readouterr().err
    only_pickle = make_model_folder(tmp_path / "only-pt")
    (only_pickle / "G_ema.safetensors").rename(only_pickle / "G_ema.pt")
    with pytest.raises(CheckpointError, match="G.safetensors is missing"):
        ckpt.load_generator(only_pickle)
    assert not sentinel.exists()


def test_a_pickled_training_state_is_refused_and_the_run_falls_back(class_dir, tmp_path):
    sentinel, run = tmp_path / "payload-ran", tmp_path / "run"
    train(tiny_cgan(class_dir, steps=2, ckpt_every=1, sample_every=100), run)
    newest, older = ckpt.checkpoint_dirs(run)
    torch.save({"step": 2, "opt_g": Payload(sentinel)}, newest / ckpt.STATE_FILE)
    events = []
    assert resume(run, steps=3, on_progress=events.append).step == 3
    assert events[0].step == int(older.name[5:])  # went on from the checkpoint before
    for d in ckpt.checkpoint_dirs(run):
        torch.save({"x": Payload(sentinel)}, d / ckpt.STATE_FILE)
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        resume(run, steps=4)
    assert not sentinel.exists()


def test_a_safetensors_header_starting_like_a_pickle_still_loads(tmp_path):
    from safetensors.torch import save_file

    # a 128-byte header: its length field starts with 0x80, the first byte of a pickle
    p = tmp_path / "x.safetensors"
    save_file({"k" * 68: torch.ones(2)}, str(p))
    assert p.read_bytes()[0] == 0x80
    assert torch.equal(ckpt.read_safetensors(p)["k" * 68], torch.ones(2))


def _model(tmp_path, name="m", **cfg_over) -> Path:
    folder = make_model_folder(tmp_path / name)
    if cfg_over:
        cfg = json.loads((folder / "config.json").read_text())
        cfg["model"].update(cfg_over)
        (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _rewrite(folder: Path, change) -> None:
    from safetensors.torch import save_file
    t = dict(ckpt.read_safetensors(folder / "G_ema.safetensors"))
    change(t)
    save_file({k: v.contiguous() for k, v in t.items()}, str(folder / "G_ema.safetensors"))


def _cut(folder, n):
    p = folder / "G_ema.safetensors"
    p.write_bytes(p.read_bytes()[:n] if n >= 0 else p.read_bytes()[:p.stat().st_size + n])


MALFORMED = {  # name -> (how to damage a good model folder, words of the message)
    "truncated": (lambda f: _cut(f, -100), "G_ema.safetensors is damaged or truncated"),
    "cut in the header": (lambda f: _cut(f, 40), "not a valid safetensors file"),
    "header length beyond the file": (
        lambda f: (f / "G_ema.safetensors").write_bytes(struct.pack("<Q", 10**6) + b'{"a": 1}'),
        "header length says 1000000 bytes in a file of 16"),
    "header not json": (lambda f: (f / "G_ema.safetensors").write_bytes(struct.pack("<Q", 8) + b"{garbage"),
                        "G_ema.safetensors is damaged or truncated"),
    "empty": (lambda f: (f / "G_ema.safetensors").write_bytes(b""), "truncated \\(only 0 bytes\\)"),
    "wrong shapes": (lambda f: _rewrite(f, lambda t: t.update({k: torch.zeros(3, 3) for k in list(t)[:1]})),
                     "has shape \\(3, 3\\), config.json needs"),
    "missing key": (lambda f: _rewrite(f, lambda t: t.pop(sorted(t)[0])), "does not match config.json: missing"),
    "extra key": (lambda f: _rewrite(f, lambda t: t.update({"evil.weight": torch.zeros(1)})),
                  "unexpected \\['evil.weight'\\]"),
    "nan weights": (lambda f: _rewrite(f, lambda t: t[next(k for k in t if t[k].is_floating_point())].fill_(float("nan"))),
                    "holds NaN or infinite values"),
    "inf weights": (lambda f: _rewrite(f, lambda t: t[next(k for k in t if t[k].is_floating_point())].fill_(float("inf"))),
                    "holds NaN or infinite values"),
    "config with other widths": (lambda f: _patch_config(f, g_channels=8), "config.json needs"),
    "config with more classes": (lambda f: _patch_config(f, class_names=["a", "b", "c", "d"]),
                                 "config.json needs"),
    "config not json": (lambda f: (f / "config.json").write_text("{'model':"), "config.json is not valid JSON"),
    "config of a texture model": (lambda f: (f / "config.json").write_text(json.dumps(
        {"variant": "sgan", "model": {}})), "does not match config.json"),
    "config missing": (lambda f: (f / "config.json").unlink(), "no checkpoints/step_\\* folder or config.json"),
    "config out of range": (lambda f: _patch_config(f, resolution=48), "resolution must be one of"),
}


def _patch_config(folder, **over):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"].update(over)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_model_folders_are_refused_naming_the_problem(tmp_path, capsys, name):
    damage, words = MALFORMED[name]
    folder = _model(tmp_path)
    damage(folder)
    with pytest.raises(CheckpointError, match=words):
        ckpt.load_generator(folder)
    assert cli(["sample", str(folder), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and not (tmp_path / "x.png").exists()


@HYPO
@given(cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), max_size=4))
def test_damaged_bytes_load_correctly_or_are_refused(tmp_path, cut, flips):
    folder = tmp_path / "m"
    if not folder.exists():
        make_model_folder(folder)
        (tmp_path / "good").write_bytes((folder / "G_ema.safetensors").read_bytes())
    data = bytearray((tmp_path / "good").read_bytes())
    for pos, x in flips:
        data[pos % len(data)] ^= x
    data = data[:len(data) - cut] if cut else data
    (folder / "G_ema.safetensors").write_bytes(bytes(data))
    try:
        G, _ = ckpt.load_generator(folder)
    except CheckpointError as e:
        assert "G_ema.safetensors" in str(e)
    else:
        assert all(torch.isfinite(p).all() for p in G.parameters())


# ----------------------------------------------------------------------------- names and paths
@HYPO
@given(st.text(max_size=80))
def test_any_run_name_stays_one_folder_inside_runs(tmp_path, text):
    ws = studio.Workspace(tmp_path / "ws")
    try:
        d = ws.run_dir(text)
    except ConfigError:
        return
    assert d.parent == ws.runs and d.resolve().parent == ws.runs and d.name not in (".", "..")


@HYPO
@given(st.text(max_size=120))
def test_export_names_never_leave_the_exports_folder(tmp_path, text):
    ws = studio.Workspace(tmp_path / "ws")
    p = ws.export_path(text, ".png")
    assert p.parent == ws.exports and p.resolve().parent == ws.exports
    assert all(c.isalnum() and c.isascii() or c in "-_." for c in p.name)


SEGMENTS = ["..", ".", "%2e%2e", "%2E%2E", "~", "inside", "sub", "out-link", "..\\..", "", "INSIDE"]


@HYPO
@given(parts=st.lists(st.sampled_from(SEGMENTS), max_size=8), absolute=st.booleans(), sep=st.sampled_from(["/", "//"]))
def test_workshop_mode_keeps_every_path_inside_the_data_root(tmp_path, parts, absolute, sep):
    root = tmp_path / "shared"
    if not root.exists():
        (root / "inside" / "sub").mkdir(parents=True)
        (tmp_path / "private").mkdir()
        os.symlink(tmp_path / "private", root / "out-link")
    s = studio.Studio(tmp_path / "ws", models_dir=None, data_root=root, jobs=studio.JobManager())
    text = (str(root) + sep if absolute else "") + sep.join(parts)
    try:
        paths = s._data_paths("cgan", text)
    except DatasetError as e:
        assert "inside" in str(e) or "Enter the path" in str(e)
        return
    for p in paths:
        assert studio._inside(p, root) or studio._inside(p, s.ws.uploads)
        assert not studio._inside(p, tmp_path / "private")


@HYPO
@given(st.lists(st.text(alphabet="ab./\\:.C~", min_size=1, max_size=12), min_size=1, max_size=5))
def test_zip_members_never_land_outside_the_uploads_folder(tmp_path, names):
    ws = studio.Workspace(tmp_path / "ws")
    z = tmp_path / "up.zip"
    with zipfile.ZipFile(z, "w") as f:
        for i, n in enumerate(names):
            f.writestr(f"{n}{i}.png", b"x")
    before = {p for p in tmp_path.rglob("*")}
    try:
        studio.extract_zip(z, ws.uploads)
    except DatasetError:
        pass
    new = {p for p in tmp_path.rglob("*")} - before
    assert all(studio._inside(p, ws.uploads) for p in new), new


# ----------------------------------------------------------------------------------- the app
@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from gradio_client import Client

    root = tmp_path_factory.mktemp("sec")
    data = make_class_folder(root / "data", n_per_class=4, size=34)
    models = root / "models"
    make_model_folder(models / "good")
    for name in ("truncated", "pickle", "other widths"):
        make_model_folder(models / name)
    sentinel = root / "payload-ran"
    _cut(models / "truncated", -100)
    (models / "pickle" / "G_ema.safetensors").write_bytes(pickle.dumps(Payload(sentinel)))
    _patch_config(models / "other widths", g_channels=8)
    jobs = studio.JobManager()
    demo = studio.build_app(root / "ws", models_dir=models, jobs=jobs)
    port = studio.free_port()
    studio.launch_app(demo, port=port, prevent_thread_lock=True, quiet=True, max_queue=4, max_upload_mb=1)
    url = f"http://127.0.0.1:{port}/"
    exported = demo.studio.ws.exports / "mine.png"
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


def test_studio_binds_to_localhost_without_a_share_link(app, monkeypatch, tmp_path):
    assert app["demo"].server_name == "127.0.0.1" and app["demo"].share is False
    seen = []

    def launch(demo, **kw):  # record what main() asks for, serve nothing
        seen.append((demo, kw))
        demo.server_port = 0
    monkeypatch.setattr(studio, "launch_app", launch)
    monkeypatch.delenv("GAN_STUDIO_PASSWORD", raising=False)
    assert studio.main(["--workspace", str(tmp_path / "ws"), "--models", str(tmp_path)]) == 0
    assert seen[-1][1]["host"] == "127.0.0.1" and seen[-1][1]["auth"] is None
    assert seen[-1][0].studio.data_root is None
    (tmp_path / "shared").mkdir()
    assert studio.main(["--listen", "--password", "pw", "--data-root", str(tmp_path / "shared"),
                        "--workspace", str(tmp_path / "ws"), "--models", str(tmp_path)]) == 0
    demo, kw = seen[-1]
    assert kw["host"] == "0.0.0.0" and kw["auth"] == ("studio", "pw")
    assert demo.studio.data_root == (tmp_path / "shared").resolve()


def test_only_exported_files_are_served(app):
    img = str(Path(app["data"]) / "red" / "img0.png")
    secret = (Path(app["data"]) / "red" / "img0.png").read_bytes()
    exp, port = str(app["exported"].parent), app["port"]
    status, body = _get(port, f"/gradio_api/file={app['exported']}")
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
    config = (app["root"] / "ws" / "runs")
    assert _get(port, f"/gradio_api/file={config}")[0] == 403


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_mangled_paths_to_a_dataset_image_are_refused(app, data):
    """Any mix of escapes, doubled slashes and dot segments on the way to the image."""
    img = Path(app["data"]) / "red" / "img0.png"
    secret = img.read_bytes()
    exp = app["exported"].parent
    depth = len(exp.parts) - 1
    route = data.draw(st.sampled_from(["/gradio_api/file=", "/gradio_api/file/"]))
    up = [data.draw(st.sampled_from(["..", "%2e%2e", "%2E%2e", ".%2e", "%252e%252e"])) for _ in range(depth)]
    sep = data.draw(st.sampled_from(["/", "%2f", "//", "%2F"]))
    path = route + str(exp) + sep + sep.join(up + list(img.parts[1:]))
    status, body = _get(app["port"], path)
    assert status == 403 and secret not in body, (path, status)


def test_uploads_over_the_limit_are_refused(app):
    import httpx

    r = httpx.post(f"{app['url']}gradio_api/upload", files={"files": ("big.zip", b"\0" * 1_100_000)})
    assert r.status_code == 413 and "maximum allowed size" in r.text
    r = httpx.post(f"{app['url']}gradio_api/upload", files={"files": ("small.zip", b"\0" * 500_000)})
    assert r.status_code == 200
    assert studio.MAX_UPLOAD_MB == 200  # and the studio's own default is a limit too


def test_the_request_queue_is_bounded(app):
    import httpx

    demo, gate = app["demo"], threading.Event()
    fn = next(i for i, f in demo.fns.items() if f.api_name == "check_data")

    def slow(*args, **kwargs):
        gate.wait(30)
        return "done", None
    demo.studio.check_data = slow  # every request waits until the gate opens
    try:
        codes = []
        for i in range(8):
            r = httpx.post(f"{app['url']}gradio_api/queue/join", timeout=20, json={
                "data": ["cgan", app["data"]], "fn_index": fn, "session_hash": f"q{i}", "event_data": None,
                "trigger_id": None})
            codes.append(r.status_code)
            if r.status_code != 200:
                assert "Queue is full" in r.text
            time.sleep(0.2)
    finally:
        gate.set()
        del demo.studio.check_data
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {503}  # 1 running + 4 waiting, the rest refused
    assert demo._queue.max_size == 4 and studio.MAX_QUEUE == 64
    t0 = time.time()
    while len(demo._queue) and time.time() - t0 < 30:  # the queue drains once the slow requests end
        time.sleep(0.1)
    md, _ = app["client"].predict("cgan", app["data"], api_name="/check_data")
    assert "3 classes, 12 images" in md


def test_a_failed_model_load_keeps_the_previous_model_generating(app):
    c, good = app["client"], str(app["models"] / "good")
    w = [1, 0.5, 0, 0, 0, 0, 0, 0]
    c.predict(good, api_name="/open_cgan_model")
    before = read_image(c.predict(good, 0, 1, 0, "slerp", 1.0, 4, *w, api_name="/blend"))
    for name, words in (("truncated", "G_ema.safetensors is damaged or truncated"),
                        ("pickle", "pickle/zip file, not safetensors"),
                        ("other widths", "config.json needs")):
        with pytest.raises(Exception) as e:
            c.predict(str(app["models"] / name), api_name="/open_cgan_model")
        assert words in str(e.value) and "Traceback" not in str(e.value)
        after = read_image(c.predict(good, 0, 1, 0, "slerp", 1.0, 4, *w, api_name="/blend"))
        assert (after == before).all()
    assert not app["sentinel"].exists()
    # in the page, a failed load sets the model dropdown back to the model that was open
    demo = app["demo"]
    for api in ("open_cgan_model", "open_sgan_model"):
        k, opened = next((k, f) for k, f in demo.fns.items() if f.api_name == api)
        back = [f for f in demo.fns.values() if f.trigger_after == k and f.trigger_only_on_failure]
        keep = [f for f in demo.fns.values() if f.trigger_after == k and f.trigger_only_on_success
                and getattr(f.fn, "__name__", "") == "keep_model"]
        assert len(back) == 1 and back[0].outputs == opened.inputs and back[0].inputs == keep[0].outputs
        assert back[0].fn("runs/previous") == "runs/previous"


def test_two_clients_start_at_once_one_trains_the_other_is_told_busy_and_generating_goes_on(app):
    from gradio_client import Client

    jobs = app["jobs"]
    settings_ = dict(variant="cgan", data=app["data"], resolution="32", steps=100_000, batch=4, recipe="fast",
                     augment=[], generator_width=4, critic_width=4, learning_rate=1e-4, seed=0,
                     sample_every=100_000, checkpoint_every=100_000, patch=32, depth=3, train_for=0)
    clients = [Client(app["url"], verbose=False) for _ in range(2)]
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
    good = str(app["models"] / "good")
    img = read_image(clients[1].predict(good, 0, 1, 0, "slerp", 1.0, 2, 1, 0, 0, 0, 0, 0, 0, 0, api_name="/blend"))
    assert img.shape == (36, 70, 3) and jobs.busy()  # generated while the other client trains
    assert "Stopping" in clients[0].predict(api_name="/stop")  # (within one step: test_reliability)
    assert jobs.wait(300) and jobs.state == "stopped"
    G, cfg = ckpt.load_generator(jobs.run_dir)
    assert cfg.model.class_names == ["blue", "green", "red"]
    assert int(ckpt.checkpoint_dirs(jobs.run_dir)[0].name[5:]) == jobs.step
