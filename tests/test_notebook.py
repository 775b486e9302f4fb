"""The notebook API (gan_core.notebook), the example notebook executed in a real kernel, and the
studio shown inline in a notebook kernel."""
from __future__ import annotations

import _thread
import io
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_core import checkpoint, notebook as gs
from gan_core.errors import StudioError
from tests.conftest import make_class_folder

REPO = Path(__file__).resolve().parent.parent
TINY = dict(resolution=32, batch=4, g_channels=4, d_channels=4)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setattr(gs, "_session", None)
    monkeypatch.setenv("GAN_STUDIO_WORKSPACE", str(tmp_path / "ws"))
    yield gs.workspace()
    gs.session().jobs.stop()
    gs.session().jobs.wait(120)


def test_train_samples_blend_export_in_the_workspace(ws, tmp_path):
    data = make_class_folder(tmp_path / "data", n_per_class=4, size=34)
    run = gs.train("cgan", data, steps=6, sample_every=3, ckpt_every=3, **TINY)
    assert run.path.parent == ws.runs and run.name == "data-1" and run.state == "finished" and run.step == 6
    assert checkpoint.checkpoint_dirs(run.path)[0].name == "step_00000006"
    assert [r["step"] for r in run.stats()][-1] == 6 and run.quality()
    assert gs.runs() == ["data-1"] and gs.run("data-1").path == run.path

    grid = run.samples(n=3)
    assert isinstance(grid, Image.Image) and np.asarray(grid).shape == (3 * 34 + 2, 3 * 34 + 2, 3)
    png = Image.open(io.BytesIO(grid._repr_png_()))
    assert png.size == grid.size and (np.asarray(png.convert("RGB")) == np.asarray(grid)).all()
    blend = run.blend({"red": 0.3, "blue": 0.7}, n=2)
    assert json.loads(blend.info["classes"]) == {"red": 0.3, "blue": 0.7} and blend.size == (70, 36)
    x = run.images({"red": 0.3, "blue": 0.7}, seeds=[0, 1])
    assert tuple(x.shape) == (2, 3, 32, 32) and -1 <= float(x.min()) and float(x.max()) <= 1
    # the blend's first image is the tensor's first image
    assert np.abs(np.asarray(blend)[2:34, 2:34].astype(int) - np.asarray(
        ((x[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte()).astype(int)).max() <= 1

    out = blend.export("my blend")
    assert out.parent == ws.exports and out.name.startswith("my_blend-")
    assert Image.open(out).text["classes"] == blend.info["classes"]
    folder = run.export(ws.exports / "model")
    assert gs.model(folder).classes == ["blue", "green", "red"]
    assert run.chart().size[0] > 300  # the losses and the gauge, drawn

    with pytest.raises(StudioError, match="unknown class 'green-ish'"):
        run.blend("green-ish")
    with pytest.raises(StudioError, match="texture\\(\\) needs a texture model"):
        run.texture(64)
    with pytest.raises(StudioError, match="exists already"):
        gs.train("cgan", data, steps=6, name="data-1", **TINY)
    second = gs.train("cgan", data, steps=2, wait=False, **TINY)
    assert second.name == "data-2" and second.wait(300) and second.state == "finished"


def test_textures_from_a_shipped_model_show_scaled_down_and_keep_their_size(ws):
    assert ("demo-textures", "texture") in gs.models() and ("demo-classes", "conditional") in gs.models()
    tex = gs.texture("demo-textures", 1100, 300, tileable=True, source="gravel")
    assert tex.size == (1120, 320)  # tileable: rounded up to a multiple of 32
    assert 0.8 < float(tex.info["seam_ratio"]) < 1.3 and tex.info["source"] == "0"
    shown = Image.open(io.BytesIO(tex._repr_png_()))
    assert shown.size == (1024, 293) and tex._repr_jpeg_() is None
    with pytest.raises(StudioError, match="unknown source 'wood'"):
        gs.texture("demo-textures", 64, source="wood")
    with pytest.raises(StudioError, match="There is no model or run named 'nothing'"):
        gs.model("nothing")


def test_a_run_is_named_after_its_data_even_when_the_folder_name_is_not_ascii(ws, tmp_path):
    data = make_class_folder(tmp_path / "forêt d'hiver", n_per_class=4, size=34)
    run = gs.train("cgan", data, steps=2, ckpt_every=2, **TINY)
    assert run.name == "for_t_d_hiver-1" and run.state == "finished"
    assert gs.train("cgan", data, steps=2, ckpt_every=2, **TINY).name == "for_t_d_hiver-2"


def test_interrupting_the_cell_stops_training_with_a_checkpoint(ws, tmp_path, capsys):
    data = make_class_folder(tmp_path / "data", n_per_class=4, size=34)
    jobs = gs.session().jobs

    returned = threading.Event()

    def interrupt_when_running():
        t0 = time.time()
        while jobs.step < 3 and time.time() - t0 < 300 and not returned.is_set():
            time.sleep(0.02)
        if not returned.is_set():
            _thread.interrupt_main()  # what the notebook's stop button does to the kernel
        if not returned.wait(120):
            jobs.stop()  # the interrupt was lost: end the run so the test fails instead of hanging
    threading.Thread(target=interrupt_when_running, daemon=True).start()
    # a kernel takes Ctrl-C; a suite started in the background by a shell (`pytest &`) ignores it,
    # and then interrupt_main does nothing
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = gs.train("cgan", data, steps=100_000, ckpt_every=100_000, **TINY)  # returns after the interrupt
    finally:
        returned.set()
        signal.signal(signal.SIGINT, before)
    assert not run.training and run.state == "stopped" and run.step >= 3
    assert checkpoint.checkpoint_dirs(run.path)[0].name == f"step_{run.step:08d}"
    assert "saving a checkpoint" in capsys.readouterr().out
    at = run.step
    assert run.resume(steps=at + 2) is run and run.state == "finished"
    assert checkpoint.checkpoint_dirs(run.path)[0].name == f"step_{at + 2:08d}"


# ---------------------------------------------------------------------------------------------
# In a real kernel
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernel spec that runs this interpreter (a fresh virtual environment needs nothing
    installed beyond requirements.txt), found first through JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / "gan-studio-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "GAN Studio tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("GAN_STUDIO_WORKSPACE", str(tmp_path / "ws"))
    return "gan-studio-test"


def image_outputs(nb) -> dict[int, list[str]]:
    """Per code cell (by index): the image types among its outputs."""
    out = {}
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            kinds = [k for k in o.get("data", {}) if k.startswith("image/")]
            if kinds:
                out.setdefault(i, []).extend(kinds)
    return out


@pytest.mark.slow
def test_the_quickstart_notebook_runs_and_draws_pictures(kernel_name, tmp_path):
    import httpx
    import nbformat
    from nbclient import NotebookClient

    path = REPO / "examples" / "quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") or c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=300,
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)  # raises CellExecutionError on any error
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors
        images = image_outputs(nb)
        src = {i: c.source for i, c in enumerate(nb.cells)}
        drawn = " ".join(src[i] for i in images)
        for call in ("run.chart()", "run.samples(", "demo.samples(", "demo.blend(", "demo.interpolate(",
                     "gs.texture(", "gs.model(folder).samples("):
            assert call in drawn, f"no picture from {call}"
        assert all(kinds == ["image/png"] for kinds in images.values())
        train = next(c for c in nb.cells if c.cell_type == "code" and "gs.train(" in c.source)
        kinds = [k for o in train.outputs for k in o.get("data", {})]
        assert "application/vnd.jupyter.widget-view+json" in kinds  # the notebook's progress bar
        assert kinds.index("application/vnd.jupyter.widget-view+json") < kinds.index("image/png")  # then the chart
        html = [o["data"]["text/html"] for o in nb.cells[-1].outputs if "text/html" in o.get("data", {})]
        url = html[0].split('src="')[1].split('"')[0]
        assert url.startswith("http://127.0.0.1:")
        page = httpx.get(url, timeout=30)  # the studio answers while the kernel lives
        assert page.status_code == 200 and "GAN Studio" in page.text
    exports = sorted(p.name for p in (tmp_path / "ws" / "exports").iterdir())
    assert any(n.startswith("brick-grass-") for n in exports) and any(n.startswith("brick-tile-") for n in exports)
    assert (tmp_path / "ws" / "runs" / "classes-1" / "checkpoints" / "step_00000060").is_dir()


@pytest.mark.slow
def test_the_inline_studio_answers_in_a_kernel_once_and_shares_the_workspace_and_job(kernel_name, tmp_path):
    import httpx
    import nbformat
    from gradio_client import Client
    from nbclient import NotebookClient

    data = make_class_folder(tmp_path / "data", n_per_class=4, size=34)
    cells = [f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
             "from gan_core import notebook as gs\nfrom studio import launch\nstudio = launch()",
             "again = launch()\n"
             "print(again is studio, again.url == studio.url, studio.demo.ctx.jobs is gs.session().jobs,\n"
             "      studio.workspace == gs.workspace().root)",
             f"run = gs.train('cgan', {data!r}, steps=2, resolution=32, batch=4, g_channels=4, d_channels=4)",
             "run.blend('purple')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=300, resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            client.allow_errors = i == len(cells) - 1
            client.execute_cell(cell, i)
        err = nb.cells[-1].outputs[-1]  # bad input: the one-line message, no traceback
        assert err["output_type"] == "error" and err["traceback"] == [
            "ConfigError: unknown class 'purple'; this model knows: blue, green, red."]
        frames = [o["data"]["text/html"] for c in nb.cells[:2] for o in c.outputs if "text/html" in o.get("data", {})]
        assert len(frames) == 2 and frames[0] == frames[1] and "<iframe" in frames[0]  # shown twice, one server
        assert "True True True True" in "".join(o.get("text", "") for o in nb.cells[1].outputs)
        url = frames[0].split('src="')[1].split('"')[0]
        assert url.startswith("http://127.0.0.1:")
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "GAN Studio" in page.text
        models = Client(url, verbose=False).predict(None, api_name="/list_cgan_models")
        paths = [c[1] if isinstance(c, (list, tuple)) else c for c in models["choices"]]
        assert str(tmp_path / "ws" / "runs" / "data-1") in paths  # the run trained in the notebook


@pytest.mark.slow
def test_the_notebook_stop_button_stops_training_with_a_checkpoint(kernel_name, tmp_path):
    from jupyter_client.manager import start_new_kernel

    data = make_class_folder(tmp_path / "data", n_per_class=4, size=34)
    km, kc = start_new_kernel(kernel_name=kernel_name, cwd=str(tmp_path))
    try:
        code = (f"import sys; sys.path.insert(0, {str(REPO)!r})\nfrom gan_core import notebook as gs\n"
                f"run = gs.train('cgan', {data!r}, steps=100000, ckpt_every=100000, name='long', resolution=32, "
                "batch=4, g_channels=4, d_channels=4)\nprint('returned', run.state, run.step)")
        msg_id = kc.execute(code)
        stats = tmp_path / "ws" / "runs" / "long" / "stats.jsonl"
        t0 = time.time()
        while (not stats.exists() or len(stats.read_text().splitlines()) < 3) and time.time() - t0 < 300:
            time.sleep(0.1)
        km.interrupt_kernel()  # the notebook's stop button
        text, status = "", None
        while status != "idle":
            msg = kc.get_iopub_msg(timeout=300)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            status = msg["content"].get("execution_state", status)
        reply = kc.get_shell_msg(timeout=60)["content"]
        assert reply["status"] == "ok", reply.get("traceback")  # the cell ends without an error
        assert "stopping 'long' after this step and saving a checkpoint" in text
        step = int(text.split("returned stopped ")[1].split()[0])
        assert step >= 3 and f"stopped at step {step}; checkpoint saved" in text
        assert checkpoint.checkpoint_dirs(tmp_path / "ws" / "runs" / "long")[0].name == f"step_{step:08d}"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
