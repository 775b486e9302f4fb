import json

import numpy as np

import pytest
import torch

from gan_core import checkpoint as ckpt
from gan_core.errors import CheckpointError
from gan_core.explore import class_grid
from gan_core.texture import generate_texture, wrap_error
from gan_core.train import resume, train
from tests.conftest import tiny_cgan, tiny_sgan


def _weights(run_dir, name="G_ema.safetensors"):
    return ckpt.read_safetensors(ckpt.checkpoint_dirs(run_dir)[0] / name)


def test_run_folder_has_everything(class_dir, tmp_path):
    events = []
    res = train(tiny_cgan(class_dir), tmp_path / "run", on_progress=lambda p: events.append(p.event))
    run = tmp_path / "run"
    assert res.step == 4 and not res.stopped
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["class_names"] == ["blue", "green", "red"]
    stats = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2, 3, 4]
    assert {"d_loss", "g_loss", "img_per_s", "elapsed"} <= set(stats[0])
    assert (run / "samples" / "step_00000004.png").is_file() and (run / "loss_plot.png").is_file()
    d = ckpt.checkpoint_dirs(run)[0]
    assert d.name == "step_00000004"
    assert {p.name for p in d.iterdir()} == {"config.json", "G.safetensors", "G_ema.safetensors",
                                             "D.safetensors", "train_state.pt"}
    assert len(ckpt.checkpoint_dirs(run)) == 2  # older ones pruned
    assert {"log", "sample", "checkpoint", "done"} <= set(events)


def test_checkpoint_roundtrip_gives_identical_outputs(class_dir, tmp_path):
    train(tiny_cgan(class_dir), tmp_path / "run")
    G1, cfg = ckpt.load_generator(tmp_path / "run")
    G2, _ = ckpt.load_generator(ckpt.checkpoint_dirs(tmp_path / "run")[0])
    z = torch.randn(5, cfg.model.nz)
    y = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        assert torch.equal(G1(z, y), G2(z, y))
    # and a sample grid has one row per class
    img = class_grid(G1, cfg.model.class_names, 4)
    assert img.shape[0] > 3 * 32 and img.dtype.name == "uint8"


@pytest.mark.parametrize("variant", ["cgan", "sgan"])
def test_resume_equals_uninterrupted_run(variant, class_dir, texture_files, tmp_path):
    make = (lambda **k: tiny_cgan(class_dir, augment=["color", "translation", "cutout"], **k)) \
        if variant == "cgan" else (lambda **k: tiny_sgan(texture_files, **k))
    train(make(steps=6), tmp_path / "full")
    stopped = train(make(steps=6), tmp_path / "part", should_stop=_stop_after(3))
    assert stopped.stopped and stopped.step == 3
    res = resume(tmp_path / "part")
    assert res.step == 6
    for name in ("G.safetensors", "G_ema.safetensors", "D.safetensors"):
        a, b = _weights(tmp_path / "full", name), _weights(tmp_path / "part", name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    full = [json.loads(l) for l in (tmp_path / "full" / "stats.jsonl").read_text().splitlines()]
    part = [json.loads(l) for l in (tmp_path / "part" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in part] == [r["step"] for r in full]
    assert [r["g_loss"] for r in part] == [r["g_loss"] for r in full]


def _stop_after(n):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > n
    return stop


def test_resume_drops_records_after_the_checkpoint(class_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_cgan(class_dir, steps=3, ckpt_every=2), run)
    ckpt_dir = ckpt.checkpoint_dirs(run)[0]
    import shutil
    shutil.rmtree(ckpt_dir)  # as if the process died after step 3 was logged but before it was saved
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 3, "torn')  # and a line torn by the crash
    res = resume(run, steps=4)
    steps = [json.loads(l)["step"] for l in (run / "stats.jsonl").read_text().splitlines()]
    assert res.step == 4 and steps == [1, 2, 3, 4]


def test_new_run_refuses_an_existing_run_folder(class_dir, tmp_path):
    train(tiny_cgan(class_dir, steps=2), tmp_path / "run")
    with pytest.raises(CheckpointError, match="already holds a run"):
        train(tiny_cgan(class_dir, steps=2), tmp_path / "run")


def test_non_finite_loss_rolls_back_and_never_saves_nan(class_dir, tmp_path, monkeypatch):
    from gan_core import train as train_mod
    real_step = train_mod._Loop.train_step
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        rec = real_step(self)
        if calls["n"] == 3:
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
            rec["g_loss"] = float("nan")
        return rec

    monkeypatch.setattr(train_mod._Loop, "train_step", flaky)
    events = []
    res = train(tiny_cgan(class_dir, steps=4), tmp_path / "run", on_progress=lambda p: events.append(p))
    assert res.step == 4
    assert any(e.event == "rollback" for e in events)
    for d in ckpt.checkpoint_dirs(tmp_path / "run"):
        for name in ckpt.WEIGHT_FILES:
            assert all(torch.isfinite(v).all() for v in ckpt.read_safetensors(d / name).values())


def test_pickle_renamed_to_safetensors_is_refused_unopened(tmp_path):
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    import pickle
    p = tmp_path / "G.safetensors"
    p.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="pickle"):
        ckpt.read_safetensors(p)
    torch.save({"x": Payload()}, tmp_path / "G2.safetensors")
    with pytest.raises(CheckpointError, match="pickle"):
        ckpt.read_safetensors(tmp_path / "G2.safetensors")
    assert not sentinel.exists()


def test_sgan_trains_and_tileable_output_wraps_exactly(texture_files, tmp_path):
    train(tiny_sgan(texture_files), tmp_path / "tex")
    G, cfg = ckpt.load_generator(tmp_path / "tex")
    assert cfg.model.source_names == ["stripes", "noise"]  # in the order given
    G.float()
    assert wrap_error(G, 4, 6, tileable=True) < 1e-5
    assert wrap_error(G, 4, 6, tileable=False) > 1e-3  # zero padding shows at the seam
    img = generate_texture(G, 48, 40, seed=1, tileable=True)
    assert img.shape == (40, 48, 3)  # already multiples of 2**depth = 8
    odd = generate_texture(G, 50, 30, seed=1)
    assert odd.shape == (30, 50, 3)
    assert not (generate_texture(G, 32, 32, seed=1) == generate_texture(G, 32, 32, seed=2)).all()


def _tiny_spatial_generator(n_sources=2):
    from gan_core.config import RunConfig, SGANConfig
    from gan_core.nets import build_generator
    torch.manual_seed(0)
    G = build_generator(RunConfig("sgan", SGANConfig(depth=3, nz_local=3, nz_global=4, nz_periodic=2,
                                                    g_channels=4, source_names=[f"s{i}" for i in range(n_sources)])))
    for m in G.modules():  # give BatchNorm non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return G.eval()


@pytest.mark.parametrize("tileable", [True, False])
def test_tiled_generation_equals_one_pass(tileable):
    from gan_core.texture import canvas_noise, render
    G = _tiny_spatial_generator()
    noise = canvas_noise(G, 9, 11, seed=4, tileable=tileable)
    tiled = render(G, noise, 72, 88, tileable, tile=4)
    G.set_tileable(tileable)
    with torch.no_grad():
        whole = G(noise)
    G.set_tileable(False)
    from gan_core.data import to_uint8
    ref = to_uint8(whole[0]).permute(1, 2, 0).numpy()
    assert np.abs(tiled.astype(int) - ref.astype(int)).max() <= 1  # at most a rounding step


def test_painted_map_follows_the_brushes_and_stays_tileable():
    from gan_core.metrics import seam_ratio
    from gan_core.texture import brush_weights
    G = _tiny_spatial_generator()
    paint = np.zeros((50, 100), np.int64)
    paint[:, 50:] = 1  # left half brush 0, right half brush 1
    wts = brush_weights(paint, 2, 4, 8, tileable=False)
    assert torch.allclose(wts.sum(0), torch.ones(4, 8))
    assert wts[0, :, 0].min() > 0.9 and wts[1, :, -1].min() > 0.9  # far from the border: pure
    assert 0.2 < wts[0, 0, 3] < 0.8 or 0.2 < wts[0, 0, 4] < 0.8  # smooth transition in between
    brushes = [{"source": 0}, {"source": 1}]
    img = generate_texture(G, 64, 32, seed=1, tileable=True, style_map=paint, brushes=brushes)
    plain = generate_texture(G, 64, 32, seed=1, tileable=True, source=0)
    assert img.shape == (32, 64, 3)
    assert (img[:, :16] == plain[:, :16]).mean() > 0.5 and not (img[:, 48:] == plain[:, 48:]).all()
    with pytest.raises(Exception, match="brush numbers"):
        generate_texture(G, 64, 32, style_map=paint + 5, brushes=brushes)
    assert seam_ratio(img) < 5


def test_resume_falls_back_to_the_previous_checkpoint_if_the_newest_is_damaged(class_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_cgan(class_dir, steps=4), run)
    newest, older = ckpt.checkpoint_dirs(run)
    data = (newest / "G.safetensors").read_bytes()
    (newest / "G.safetensors").write_bytes(data[: len(data) // 2])
    events = []
    res = resume(run, steps=5, on_progress=lambda p: events.append((p.event, p.step)))
    assert res.step == 5
    assert events[0] == ("data", int(older.name[5:]))  # loaded the older checkpoint
    assert [e for e in events if e[0] == "log"][0] == ("log", int(older.name[5:]) + 1)


def test_mode_seeking_term_punishes_identical_pairs():
    from gan_core.train import mode_seeking
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    same = torch.zeros(8, 3, 8, 8)
    varied = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert mode_seeking(same, z) > 1000 * mode_seeking(varied, z)


@pytest.mark.parametrize("batch", [4, 5])
def test_diversity_term_runs_and_is_logged_for_even_and_odd_batches(class_dir, tmp_path, batch):
    train(tiny_cgan(class_dir, diversity=0.5, batch=batch), tmp_path / "run")
    stats = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert all(s["mode_seeking"] > 0 for s in stats)
