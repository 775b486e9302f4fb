import dataclasses
import errno
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gan_core import checkpoint as ckpt
from gan_core.data import to_float
from gan_core.errors import CheckpointError, ConfigError
from gan_core.__main__ import main as cli
from gan_core.sampling import class_grid
from gan_core.texture import generate_texture, wrap_error
from gan_core.train import STEPS_10MIN_BF16, STEPS_10MIN_FP32, resume, speed_note, train, use_bf16
from tests.conftest import make_class_folder, tiny_cgan, tiny_sgan
from tests.helpers import BAD_FILES, good_png

ROOT = Path(__file__).resolve().parent.parent


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
                                             "D.safetensors", "spectrum.safetensors", "train_state.pt"}
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
    make = (lambda **k: tiny_cgan(class_dir, augment=["color", "translation", "cutout"], quality_every=250, **k)) \
        if variant == "cgan" else (lambda **k: tiny_sgan(texture_files, **k))  # the gauge: once is enough
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


def test_the_loss_plot_is_redrawn_at_most_once_a_minute_and_at_the_end(class_dir, tmp_path, monkeypatch):
    import gan_core.train as T
    drawn, now = [], [1000.0]
    monkeypatch.setattr(T, "plot_losses", lambda history, path: drawn.append((now[0], history[-1]["step"])))
    monkeypatch.setattr(T, "_plot_clock", lambda: now[0])

    def tick(p):  # 25 s of wall clock per step
        if p.event == "log":
            now[0] += 25
    train(tiny_cgan(class_dir, steps=6, ckpt_every=1), tmp_path / "run", on_progress=tick)
    # checkpoints at steps 1-6; drawn at step 1, then at the first checkpoint 60 s later (step 4), then at the end
    assert drawn == [(1025.0, 1), (1100.0, 4), (1150.0, 6)]


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
    real_step = train_mod.Trainer.train_step
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        rec = real_step(self)
        if calls["n"] == 3:
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
            rec["g_loss"] = float("nan")
        return rec

    monkeypatch.setattr(train_mod.Trainer, "train_step", flaky)
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


@pytest.mark.parametrize("wrap", [True, False])
def test_a_texture_trained_wrapped_sees_no_patch_border(texture_files, tmp_path, wrap):
    from gan_core.train import Trainer
    cfg = tiny_sgan(texture_files, wrap_train=wrap)
    cfg.model.nz_periodic = 0  # waves are tied to absolute positions; local noise and style are not
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    n = cfg.train.patch // loop.G.cfg.scale
    noise = loop.G.make_noise(2, n, n, torch.Generator().manual_seed(0))
    loop.G.eval()
    with torch.no_grad():
        out = loop.G(noise)
        # the same local noise shifted by one cell: padded circularly, the image shifts with it
        # everywhere, borders included; padded with zeros, the rows at the border change
        shifted = loop.G(dataclasses.replace(noise, local=noise.local.roll(1, 2)))
    error = (shifted - out.roll(loop.G.cfg.scale, 2)).abs().amax(dim=(0, 1, 3))  # per image row
    assert loop.G.tileable == loop.G_ema.tileable == wrap
    if wrap:
        assert error.max() < 1e-4
    else:
        assert error[0] > 1e-3 and error[-1] > 1e-3  # the top and bottom rows feel the border


def test_a_texture_trained_with_a_margin_is_judged_away_from_the_canvas_border(texture_files, tmp_path):
    from gan_core.train import Trainer
    cfg = tiny_sgan(texture_files)
    cfg.model.margin = 1
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    loop.G.eval()
    patch, scale = cfg.train.patch, loop.G.cfg.scale
    y = torch.tensor([0, 1])
    state = loop.gen.get_state()
    with torch.no_grad():
        fake = loop.fake_batch(y)[0]
        loop.gen.set_state(state)  # the same draws again: the whole canvas the window was cut from
        n = patch // scale + 2
        full = loop.G(loop.G.make_noise(2, n, n, loop.gen, sources=y))
    assert fake.shape[-2:] == (patch, patch) and full.shape[-1] == patch + 2 * scale
    windows = [(oy, ox) for oy in range(2 * scale + 1) for ox in range(2 * scale + 1)
               if torch.equal(full[..., oy:oy + patch, ox:ox + patch], fake)]
    assert len(windows) == 1
    assert all(scale // 2 <= o <= 3 * scale // 2 for o in windows[0])  # at least half a cell from every border

def _tiny_spatial_generator(n_sources=2, upsample="bilinear"):
    from gan_core.config import RunConfig, SGANConfig
    from gan_core.nets import build_generator
    torch.manual_seed(0)
    G = build_generator(RunConfig("sgan", SGANConfig(depth=3, nz_local=3, nz_global=4, nz_periodic=2, upsample=upsample,
                                                    g_channels=4, source_names=[f"s{i}" for i in range(n_sources)])))
    for m in G.modules():  # give BatchNorm non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return G.eval()


@pytest.mark.parametrize("upsample", ["bilinear", "nearest", "transposed"])
@pytest.mark.parametrize("tileable", [True, False])
def test_tiled_generation_equals_one_pass(tileable, upsample):
    from gan_core.texture import canvas_noise, render
    G = _tiny_spatial_generator(upsample=upsample)
    noise = canvas_noise(G, 9, 11, seed=4, tileable=tileable)
    tiled = render(G, noise, 72, 88, tileable, tile=4)
    G.set_tileable(tileable)
    with torch.no_grad():
        whole = G(noise)
    G.set_tileable(False)
    from gan_core.data import to_uint8
    ref = to_uint8(whole[0]).permute(1, 2, 0).numpy()
    assert np.abs(tiled.astype(int) - ref.astype(int)).max() <= 1  # at most a rounding step


def test_textures_drawn_in_bf16_where_asked_except_16_bit_ones():
    from gan_core.texture import canvas_noise, render
    G = _tiny_spatial_generator()
    noise = canvas_noise(G, 6, 6, seed=2, tileable=True)
    seen = []
    hook = G.net[0].register_forward_hook(lambda m, x, out: seen.append(out.dtype))
    plain = render(G, noise, 48, 48, True, tile=4)
    half = render(G, noise, 48, 48, True, tile=4, precision="bf16")
    assert seen[0] == torch.float32 and seen[-1] == torch.bfloat16
    # the same picture to within bf16's rounding (8 bits of mantissa), on any CPU
    assert np.abs(half.astype(int) - plain.astype(int)).mean() < 3
    seen.clear()
    deep = render(G, noise, 48, 48, True, tile=4, bits=16, precision="bf16")
    hook.remove()
    assert set(seen) == {torch.float32}  # 16 bits a channel are more than bf16 holds: drawn in fp32
    assert np.array_equal(deep, render(G, noise, 48, 48, True, tile=4, bits=16))


def test_painted_map_follows_the_brushes_and_stays_tileable():
    from gan_core.metrics import seam_ratio
    from gan_core.texture import brush_weights
    G = _tiny_spatial_generator()
    paint = np.zeros((50, 200), np.int64)
    paint[:, 100:] = 1  # left half brush 0, right half brush 1
    wts = brush_weights(paint, 2, 4, 16, tileable=False)
    assert torch.allclose(wts.sum(0), torch.ones(4, 16))
    assert wts[0, :, 0].min() > 0.9 and wts[1, :, -1].min() > 0.9  # far from the border: pure
    assert 0.2 < wts[0, 0, 7] < 0.8 or 0.2 < wts[0, 0, 8] < 0.8  # smooth transition in between
    brushes = [{"source": 0}, {"source": 1}]
    img = generate_texture(G, 128, 32, seed=1, tileable=True, style_map=paint, brushes=brushes)
    plain = [generate_texture(G, 128, 32, seed=1, tileable=True, source=i).astype(int) for i in (0, 1)]
    assert img.shape == (32, 128, 3)
    # the middle of each half looks like its own brush's source, not the other one
    left, right = img[:, 24:40].astype(int), img[:, 88:104].astype(int)
    assert np.abs(left - plain[0][:, 24:40]).mean() < np.abs(left - plain[1][:, 24:40]).mean() / 2
    assert np.abs(right - plain[1][:, 88:104]).mean() < np.abs(right - plain[0][:, 88:104]).mean() / 2
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


def test_mode_seeking_counts_only_pairs_of_one_condition():
    from gan_core.train import mode_seeking
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    fake = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    fake[4] = fake[0]  # pair 0 is a collapsed pair, the others differ
    same_cond = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    other_cond = torch.tensor([0, 1, 2, 3, 1, 1, 2, 3])  # pair 0 now spans two conditions
    assert mode_seeking(fake, z, same_cond) > 100 * mode_seeking(fake, z, other_cond)
    assert mode_seeking(fake, z, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])) == 0  # no pair of one condition


@pytest.mark.parametrize("loss, expected", [("hinge", 1.0), ("rpgan", 0.0)])
def test_ada_signal_ignores_the_relativistic_critics_free_offset(class_dir, tmp_path, loss, expected):
    """The relativistic loss sees only score differences, so a critic that scores every image +5
    is not sure of anything there; for the hinge loss it is sure of the real images."""
    from gan_core.train import Trainer
    cfg = tiny_cgan(class_dir, loss=loss, n_critic=1, precision="fp32")
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    critic = loop.D_train
    loop.D_train = lambda x, y: 0 * critic(x, y) + 5.0
    rec = loop.train_step()
    assert rec["real_sign"] == expected


@pytest.mark.parametrize("batch", [4, 5])
def test_diversity_term_runs_and_is_logged_for_even_and_odd_batches(class_dir, tmp_path, batch):
    train(tiny_cgan(class_dir, diversity=0.5, batch=batch), tmp_path / "run")
    stats = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert all(s["mode_seeking"] > 0 for s in stats)


def test_a_time_budget_stops_with_a_checkpoint_and_resume_adds_time(class_dir, tmp_path):
    from gan_core.config import NO_STEP_LIMIT
    run = tmp_path / "run"
    events = []
    res = train(tiny_cgan(class_dir, steps=NO_STEP_LIMIT, minutes=0.05, ckpt_every=10**6), run,
                on_progress=events.append)
    assert not res.stopped and 0 < res.step < NO_STEP_LIMIT
    assert ckpt.checkpoint_dirs(run)[0].name == f"step_{res.step:08d}"  # saved where the time ran out
    assert events[-1].message == "time is up"
    used = [e.used_s for e in events if e.event == "log"]
    assert used == sorted(used) and 2.7 <= events[-1].used_s < 3.0 + 30  # budget 3 s (a step may overrun)
    assert events[-1].fraction == 1.0
    saved = torch.load(ckpt.checkpoint_dirs(run)[0] / ckpt.STATE_FILE, weights_only=True)["wall"]
    assert abs(saved - events[-1].used_s) < 30  # the time the checkpoint holds is the time used
    again = resume(run, minutes=0.02)
    assert again.step > res.step
    cfg = json.loads((run / "config.json").read_text())["train"]
    assert abs(cfg["minutes"] - (saved / 60 + 0.02)) < 1e-4  # the run's budget grew by 0.02 min


def test_the_budgets_clock_starts_at_the_first_step_after_the_untrained_reading_and_checkpoint(
        class_dir, tmp_path, monkeypatch):
    """A slow computer's step-0 reading and checkpoint are setup, as loading the data is: a budget
    shorter than they take still trains, and the time they took is not reported as used."""
    from gan_core.config import NO_STEP_LIMIT
    from gan_core.train import Trainer
    real_quality, real_save = Trainer.quality, Trainer.save

    def slow_at_step_0(real):
        def slow(self):
            if self.step == 0:
                time.sleep(2.5)  # the two together longer than the whole 3-s budget
            return real(self)
        return slow
    monkeypatch.setattr(Trainer, "quality", slow_at_step_0(real_quality))
    monkeypatch.setattr(Trainer, "save", slow_at_step_0(real_save))
    events = []
    res = train(tiny_cgan(class_dir, steps=NO_STEP_LIMIT, minutes=0.05, ckpt_every=10**6, quality_every=10**6),
                tmp_path / "run", on_progress=events.append)
    assert [e.step for e in events if e.event == "quality"] == [0, res.step]  # it read step 0 (and the last)
    assert res.step > 0 and events[-1].message == "time is up"
    first_log = next(e for e in events if e.event == "log")
    assert first_log.used_s < 2.5  # the sleeps are not on the clock
    assert 2.7 <= events[-1].used_s < 3.0 + 30


def test_held_back_images_are_fixed_disjoint_per_class_and_only_from_larger_datasets():
    from gan_core.train import held_back_split
    labels = torch.arange(300) % 3
    held, train_idx = held_back_split(labels, seed=5)
    assert len(held) == 24 and torch.equal(held, held_back_split(labels, seed=5)[0])
    assert set(held.tolist()).isdisjoint(train_idx.tolist()) and len(held) + len(train_idx) == 300
    assert torch.bincount(labels[held]).tolist() == [8, 8, 8]
    assert len(held_back_split(torch.arange(60) % 3, seed=5)[0]) == 0  # small: every image is trained on
    assert len(held_back_split(labels, seed=5, enabled=False)[0]) == 0


def test_quality_gauge_records_distance_floor_and_grid_measure(tmp_path):
    from gan_core.runs import read_quality
    data = make_class_folder(tmp_path / "data", n_per_class=50, size=32)
    run = tmp_path / "run"
    train(tiny_cgan(data, steps=4, quality_every=2), run)
    q = read_quality(run)
    assert [r["step"] for r in q] == [0, 2, 4]
    assert all(r["swd"] > 0 and r["swd_floor"] > 0 and r["grid"] > 0 for r in q)
    assert q[0]["swd"] > q[0]["swd_floor"]  # an untrained generator is far from the images
    assert all(0.0 <= r["critic_memory"] <= 1.0 for r in q)  # the critic's memory of its images, beside
    # a resumed run keeps records only up to its checkpoint, then adds its own
    (run / "quality.jsonl").open("a").write('{"step": 99, "swd": 1.0}\n{"torn')
    resume(run, steps=6)
    assert [r["step"] for r in read_quality(run)] == [0, 2, 4, 6]


def test_a_time_budget_that_runs_out_right_after_a_checkpoint_still_reads_the_gauge_at_the_last_step(tmp_path):
    """A checkpoint every step: the time always runs out just after one. The last reading must be of
    the last step (not the untrained step 0 the summary would otherwise report), read once."""
    from tests.conftest import make_class_folder
    from gan_core.config import NO_STEP_LIMIT
    from gan_core.runs import read_quality
    data = make_class_folder(tmp_path / "data", n_per_class=50, size=32)
    run = tmp_path / "run"
    # 3 s: room for a few steps (with their checkpoints) on a slow, busy CPU
    res = train(tiny_cgan(data, steps=NO_STEP_LIMIT, minutes=0.05, ckpt_every=1, quality_every=10**6), run)
    steps = [r["step"] for r in read_quality(run)]
    assert res.step > 0 and steps == [0, res.step]
    assert (run / "best" / "best.json").exists()


def test_the_closest_gauge_reading_keeps_its_weights_as_a_model_folder(tmp_path):
    import shutil
    from tests.conftest import make_class_folder
    from gan_core.runs import find_model, list_models, load_model, read_quality
    from gan_core.train import Trainer
    data = make_class_folder(tmp_path / "data", n_per_class=50, size=32)
    runs = tmp_path / "runs"
    run = runs / "r"
    train(tiny_cgan(data, steps=6, quality_every=2, keep_checkpoints=10), run)
    closest = min((r for r in read_quality(run) if r["step"] > 0), key=lambda r: r["swd"])
    best = ckpt.read_best(run)
    assert (best["step"], best["swd"]) == (closest["step"], closest["swd"])
    # the averaged generator's weights at that step, BatchNorm statistics included, as its checkpoint holds them
    kept = ckpt.read_safetensors(run / "best" / "G_ema.safetensors")
    then = ckpt.read_safetensors(ckpt.checkpoint_path(run, best["step"]) / "G_ema.safetensors")
    assert kept.keys() == then.keys() and all(torch.equal(kept[k], then[k]) for k in kept)
    assert ckpt.load_generator(run / "best")[1].variant == "cgan"  # a model folder, as every command takes

    loop = Trainer(ckpt.read_config(run), run, torch.device("cpu"))
    weights = (run / "best" / "G_ema.safetensors").read_bytes()
    assert not loop.keep_best({**closest, "step": 8, "swd": closest["swd"] + 1})  # farther: kept as it was
    assert ckpt.read_best(run)["step"] == best["step"] and (run / "best" / "G_ema.safetensors").read_bytes() == weights
    assert not loop.keep_best({**closest, "step": 0, "swd": 0.0})  # the untrained generator does not count
    (run / ".tmp_best_999").mkdir()  # left by a process killed while it wrote
    assert loop.keep_best({**closest, "step": 8, "swd": closest["swd"] / 2})  # closer: replaces it
    assert ckpt.read_best(run)["step"] == 8 and not list((run).glob(".tmp_*")) and not list(run.glob(".old_*"))
    # the studio's model lists offer it beside the run when it is not the run's newest step
    assert ("r  (run, best: step 8)", str(run / "best")) in list_models("cgan", None, runs)
    model = load_model(str(run / "best"), "cgan")
    assert model.name == "r-best" and find_model(model.name, runs, None) == run / "best"  # exports and favourites name it so

    # a new run in a folder that holds a best model from before starts without it
    shutil.copytree(run / "best", runs / "r2" / "best")
    train(tiny_cgan(data, steps=2), runs / "r2")
    assert ckpt.read_best(runs / "r2") is None and not (runs / "r2" / "best").exists()


def test_the_gauges_memory_reading_leaves_the_training_stream_alone(tmp_path):
    loop = _heldout_trainer(tmp_path, ada_target=0.0, quality_every=2)
    before = loop.gen.get_state()
    reading = loop.quality()
    assert 0.0 <= reading["critic_memory"] <= 1.0 and torch.equal(loop.gen.get_state(), before)
    loop.D = _KnowsItsImages(loop.images[loop.train_idx])
    assert loop.quality()["critic_memory"] == 1.0


def test_ema_half_life_is_measured_in_images_with_a_ramp_up(class_dir, tmp_path):
    from gan_core.train import Trainer
    cfg = tiny_cgan(class_dir, batch=4, ema_kimg=0.1, ema_rampup=0.5)
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    loop.step = 9  # 40 images seen: half-life min(100, 0.5 * 40) = 20 images = 5 steps
    assert abs(loop.ema_decay() ** 5 - 0.5) < 1e-9
    loop.step = 999  # ramp over: 100 images = 25 steps
    assert abs(loop.ema_decay() ** 25 - 0.5) < 1e-9


def test_averaged_generator_gets_batchnorm_statistics_of_its_own(class_dir, tmp_path):
    from gan_core.train import Trainer
    cfg = tiny_cgan(class_dir, precision="fp32")
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    bn = next(m for m in loop.G_ema.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var.fill_(100.0)  # statistics that do not fit the weights
    seen = []
    hook = bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    loop.recalibrate_bn()
    hook.remove()
    x = torch.cat(seen)  # what the layer saw during recalibration
    assert not bn.training and len(seen) == 32
    assert torch.allclose(bn.running_mean, x.mean((0, 2, 3)), atol=1e-4)
    # cumulative average of per-batch (unbiased) variances: close to the pooled variance
    assert torch.allclose(bn.running_var, x.var((0, 2, 3)), rtol=0.2, atol=1e-3)


def test_batchnorm_recalibration_keeps_class_shares_and_mirrors_its_noise(tmp_path):
    """The averaged generator's statistics come from batches whose classes hold the training
    frequencies (not drawn at random) and whose noise comes in pairs z, -z for the same classes."""
    from gan_core.train import Trainer
    root = tmp_path / "data"
    make_class_folder(root, n_per_class=12)
    names = sorted(p.name for p in root.iterdir())
    for i in range(9):  # an uneven set: 12, 3 and 12 images
        (root / names[1] / f"img{i}.png").unlink()
    cfg = tiny_cgan(str(root), batch=8, precision="fp32")
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path / "run", torch.device("cpu"))
    calls = []
    hook = loop.G_ema.register_forward_pre_hook(lambda m, args: calls.append((args[0].clone(), args[1].clone())))
    state = loop.gen.get_state()
    loop.recalibrate_bn()
    hook.remove()
    assert torch.equal(loop.gen.get_state(), state)  # the training random stream is left alone
    assert len(calls) == 32
    share = torch.bincount(loop.labels[loop.train_idx], minlength=3).double()
    share /= share.sum()
    for (z1, y1), (z2, y2) in zip(calls[0::2], calls[1::2]):
        assert torch.equal(z2, -z1) and torch.equal(y2, y1)
        # each batch within one image of its class share of 8 rows
        assert ((torch.bincount(y1, minlength=3) - 8 * share).abs() < 1).all()
    firsts = torch.cat([y for _, y in calls[0::2]])
    assert ((torch.bincount(firsts, minlength=3) - len(firsts) * share).abs() < 1).all()
    assert len({tuple(z[0].tolist()) for z, _ in calls}) == 32  # fresh noise for every pair


def test_adaptive_augmentation_follows_the_critics_confidence(class_dir, tmp_path):
    from gan_core.augment import augment
    from gan_core.train import Trainer
    cfg = tiny_cgan(class_dir, augment=["color", "translation"], ada_target=0.6, ada_kimg=0.04, n_critic=1)
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    assert loop.aug_p == 0.0
    loop.update_ada({"real_sign": 0.9})  # the critic is sure of the real images: augment more
    assert abs(loop.aug_p - 0.1) < 1e-9  # 4 images of 40 per full swing
    for _ in range(20):
        loop.update_ada({"real_sign": 0.9})
    assert loop.aug_p == 1.0
    loop.update_ada({"real_sign": 0.1})
    assert abs(loop.aug_p - 0.9) < 1e-9
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    assert torch.equal(augment(x, ["color", "cutout"], torch.Generator().manual_seed(0), p=0.0), x)
    full = augment(x, ["color"], torch.Generator().manual_seed(0))
    assert not torch.equal(full, x)


class _KnowsItsImages(nn.Module):
    """A stand-in critic that scores the images it was given (by their pixel sum) 1 and others 0."""

    def __init__(self, images):
        super().__init__()
        self.known = {round(x.sum().item(), 2) for x in to_float(images)}

    def forward(self, x, y):
        return torch.tensor([float(round(v.sum().item(), 2) in self.known) for v in x.float()])


def _heldout_trainer(tmp_path, **train):
    from gan_core.train import Trainer
    from tests.conftest import make_class_folder
    data = make_class_folder(tmp_path / "data", n_per_class=50, size=32)
    settings = dict(augment=["color"], ada_target=0.6, ada_signal="heldout", ada_kimg=0.04, n_critic=1, precision="fp32")
    cfg = tiny_cgan(data, **{**settings, **train})
    cfg.validate(require_names=False)
    return Trainer(cfg, tmp_path / "run", torch.device("cpu"))


def test_critic_memory_tells_a_critic_that_learnt_its_images_from_one_that_did_not(tmp_path):
    loop = _heldout_trainer(tmp_path)  # the gauge is off: the held-back signal alone holds images back
    assert len(loop.held) == 12 and set(loop.held.tolist()).isdisjoint(loop.train_idx.tolist())
    assert "12 images held back (not trained on) to measure whether the critic learns" in loop.summary
    batch = loop.memory_batch()  # laid out as minibatch-std groups (i, i + n/g, ...) of one class
    assert sorted(batch.tolist()) == loop.held.tolist()
    assert all(len(set(col.tolist())) == 1 for col in loop.labels[batch].view(4, -1).T)
    loop.D = _KnowsItsImages(loop.images[loop.train_idx])
    assert loop.critic_memory() == 1.0  # every training image outranks every held-back one of its class
    loop.D = _KnowsItsImages(loop.images)
    assert loop.critic_memory() == 0.5  # it scores unseen images as it scores its own
    loop.D = _KnowsItsImages(loop.images[loop.held])
    assert loop.critic_memory() == 0.0


def test_heldout_signal_drives_augmentation_every_few_steps(tmp_path):
    loop = _heldout_trainer(tmp_path, ada_every=2)
    loop.D = _KnowsItsImages(loop.images[loop.train_idx])  # memorised: augment more
    for step, expected in [(0, 0.2), (1, 0.2), (2, 0.4)]:  # 4 images of 40, twice per measurement
        loop.step = step
        loop.update_ada({"real_sign": -1.0})  # the batch signal is not used
        assert abs(loop.aug_p - expected) < 1e-9 and loop.memory == 1.0
    loop.D = _KnowsItsImages(loop.images)  # no memory of them (0.5, under the target 0.6): less
    loop.step = 4
    loop.update_ada({"real_sign": 1.0})
    assert abs(loop.aug_p - 0.2) < 1e-9 and loop.memory == 0.5


def test_without_held_back_images_the_controller_uses_the_batch_signal(class_dir, tmp_path):
    from gan_core.train import Trainer
    cfg = tiny_cgan(class_dir, augment=["color"], ada_target=0.6, ada_signal="heldout", ada_kimg=0.04, n_critic=1)
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))  # 18 images: none held back
    assert len(loop.held) == 0
    loop.update_ada({"real_sign": 0.9})
    assert abs(loop.aug_p - 0.1) < 1e-9 and loop.memory is None
    with pytest.raises(ConfigError, match="ada-signal must be one of rank, heldout"):
        tiny_cgan(class_dir, ada_signal="critic").validate(require_names=False)


def test_a_run_on_the_heldout_signal_logs_the_critics_memory(tmp_path):
    from tests.conftest import make_class_folder
    data = make_class_folder(tmp_path / "data", n_per_class=50, size=32)
    train(tiny_cgan(data, augment=["color"], ada_target=0.6, ada_signal="heldout", steps=6, ada_every=2, n_critic=1),
          tmp_path / "run")
    stats = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [("critic_memory" in s) for s in stats] == [False] + [True] * 5  # measured from step 2 on
    assert all(0.0 <= s["critic_memory"] <= 1.0 and 0.0 <= s["aug_p"] <= 1.0 for s in stats[1:])


def test_a_run_with_the_mirror_term_logs_its_lean_and_a_resumed_run_keeps_it(class_dir, tmp_path):
    from gan_core.train import Trainer
    run = tmp_path / "run"
    train(tiny_cgan(class_dir, mirror_balance=1.0, steps=4, n_critic=1), run)
    stats = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines()]
    assert all(s["mirror_bias"] > 0 for s in stats)
    last = ckpt.checkpoint_dirs(run)[0]
    saved = torch.load(last / ckpt.STATE_FILE, weights_only=True)["mirror_bias"]
    cfg = tiny_cgan(class_dir, mirror_balance=1.0, steps=4, n_critic=1)
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path / "other", torch.device("cpu"))
    loop.load(last)
    assert loop.mirror_bias is not None and torch.equal(loop.mirror_bias, saved) and saved.abs().sum() > 0


def test_rpgan_loss_trains_with_lazy_penalties(class_dir, tmp_path):
    train(tiny_cgan(class_dir, loss="rpgan", reg_every=2, n_critic=1, steps=4), tmp_path / "run")
    stats = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [s["gp"] > 0 for s in stats] == [True, False, True, False]  # penalties on every 2nd critic step
    assert all(math.isfinite(s["d_loss"]) and math.isfinite(s["g_loss"]) for s in stats)


@pytest.mark.parametrize("reuse", [False, True])
def test_reusing_the_batch_draws_one_generated_batch_per_step(class_dir, tmp_path, reuse):
    from gan_core.train import Trainer
    cfg = tiny_cgan(class_dir, loss="rpgan", n_critic=1, reuse_batch=reuse)
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    calls = []
    loop.G.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    g0, d0 = [p.detach().clone() for p in loop.G.parameters()], [p.detach().clone() for p in loop.D.parameters()]
    recs = [loop.train_step() for _ in range(3)]
    # reused: one forward per step, kept for the generator's update; else one without a graph and one with
    assert calls == ([True] * 3 if reuse else [False, True] * 3)
    assert all(math.isfinite(r["g_loss"]) and math.isfinite(r["d_loss"]) for r in recs)
    assert not all(torch.equal(a, b) for a, b in zip(g0, loop.G.parameters()))  # both networks learn
    assert not all(torch.equal(a, b) for a, b in zip(d0, loop.D.parameters()))


def test_learning_rates_fall_to_zero_over_the_end_of_the_budget(class_dir, tmp_path):
    from gan_core.train import Trainer
    cfg = tiny_cgan(class_dir, minutes=1.0, lr_decay=0.5, lr_g=2e-4, lr_d=4e-4)
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    lrs = []
    for wall in (0.0, 29.0, 45.0, 60.0):
        loop.wall = wall
        loop.set_learning_rates()
        lrs.append((loop.opt_g.param_groups[0]["lr"], loop.opt_d.param_groups[0]["lr"]))
    assert lrs[0] == lrs[1] == (2e-4, 4e-4)  # constant over the first half
    assert lrs[2] == pytest.approx((1e-4, 2e-4)) and lrs[3] == (0.0, 0.0)


def test_boosted_learning_rates_start_high_and_return_to_the_base_then_decay(class_dir, tmp_path):
    from gan_core.train import Trainer
    cfg = tiny_cgan(class_dir, minutes=1.0, lr_decay=0.5, lr_g=2e-4, lr_d=4e-4, batch=8, n_critic=1,
                    lr_boost=3.0, lr_boost_kimg=0.08)  # 10 steps of 8 images at 3x, 10 falling to 1x
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    lrs = {}
    for step, wall in ((0, 0.0), (10, 0.0), (15, 0.0), (20, 0.0), (500, 0.0), (500, 45.0), (5, 45.0)):
        loop.step, loop.wall = step, wall
        loop.set_learning_rates()
        lrs[step, wall] = (loop.opt_g.param_groups[0]["lr"], loop.opt_d.param_groups[0]["lr"])
    assert lrs[0, 0.0] == pytest.approx((6e-4, 12e-4)) and lrs[10, 0.0] == pytest.approx((6e-4, 12e-4))
    assert lrs[15, 0.0] == pytest.approx((4e-4, 8e-4))  # halfway back
    assert lrs[20, 0.0] == pytest.approx((2e-4, 4e-4)) and lrs[500, 0.0] == pytest.approx((2e-4, 4e-4))
    assert lrs[500, 45.0] == pytest.approx((1e-4, 2e-4))  # the end's decay on top of the base
    assert lrs[5, 45.0] == pytest.approx((3e-4, 6e-4))  # and on top of the boost in a short budget


def test_short_budgets_start_boosted_and_settle_later_longer_ones_keep_the_settings(class_dir, tmp_path):
    from gan_core.config import LONG_BUDGET, SHORT_BOOST, SHORT_BUDGET, SHORT_DECAY, TrainConfig
    from gan_core.train import Trainer

    def fit(**kw):
        t = TrainConfig(lr_decay=0.5, lr_boost=0.0, **kw)
        return t.boost(), t.decay()
    assert fit(minutes=1.0) == fit(minutes=SHORT_BUDGET) == (SHORT_BOOST, SHORT_DECAY)
    middle = fit(minutes=(SHORT_BUDGET + LONG_BUDGET) / 2)
    assert middle == pytest.approx(((1 + SHORT_BOOST) / 2, (0.5 + SHORT_DECAY) / 2))
    assert fit(minutes=LONG_BUDGET) == fit(minutes=10.0) == fit(minutes=0.0) == (1.0, 0.5)  # or steps only
    assert TrainConfig(lr_decay=0.5, lr_boost=2.0, minutes=1.0).boost() == 2.0  # a given boost holds
    assert TrainConfig(lr_decay=0.5, lr_boost=2.0, minutes=1.0).decay() == 0.5
    assert TrainConfig(lr_decay=0.0, lr_boost=0.0, minutes=1.0).decay() == 0  # constant rates stay so

    cfg = tiny_cgan(class_dir, minutes=1.0, lr_decay=0.5, lr_boost=0.0, lr_g=2e-4, lr_d=4e-4, batch=8,
                    n_critic=1, lr_boost_kimg=0.08)
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path, torch.device("cpu"))
    lrs = {}
    for step, wall in ((0, 0.0), (25, 40.0), (25, 52.5)):
        loop.step, loop.wall = step, wall
        loop.set_learning_rates()
        lrs[step, wall] = (loop.opt_g.param_groups[0]["lr"], loop.opt_d.param_groups[0]["lr"])
    assert lrs[0, 0.0] == pytest.approx((6e-4, 12e-4))  # 3x at the start of a 1-minute budget
    assert lrs[25, 40.0] == pytest.approx((2e-4, 4e-4))  # back to the base, not yet falling at 2/3
    assert lrs[25, 52.5] == pytest.approx((1e-4, 2e-4))  # halfway down the last quarter


def test_the_short_schedule_follows_the_images_a_budget_will_see_at_this_machines_pace(class_dir, tmp_path):
    from gan_core.config import LONG_KIMG, SHORT_BOOST, SHORT_DECAY, SHORT_KIMG, TrainConfig
    t = TrainConfig(lr_decay=0.5, lr_boost=0.0, minutes=2.0)  # by its minutes alone, no short schedule
    assert (t.boost(), t.decay()) == (1.0, 0.5) == (t.boost(LONG_KIMG), t.decay(LONG_KIMG))
    assert (t.boost(SHORT_KIMG), t.decay(SHORT_KIMG)) == (SHORT_BOOST, SHORT_DECAY) == (t.boost(1.0), t.decay(1.0))
    assert t.boost((SHORT_KIMG + LONG_KIMG) / 2) == pytest.approx((1 + SHORT_BOOST) / 2)
    short = TrainConfig(lr_decay=0.5, lr_boost=0.0, minutes=1.0)  # the minutes' share holds where it is larger
    assert (short.boost(10 * LONG_KIMG), short.decay(10 * LONG_KIMG)) == (SHORT_BOOST, SHORT_DECAY)
    assert TrainConfig(lr_decay=0.5, lr_boost=0.0, minutes=2.0, short_by_pace=False).boost(1.0) == 1.0
    assert TrainConfig(lr_decay=0.5, lr_boost=2.0, minutes=2.0).boost(1.0) == 2.0  # a given boost holds
    assert TrainConfig(lr_decay=0.5, lr_boost=0.0, minutes=0.0).boost(1.0) == 1.0  # steps only: no budget

    from gan_core.train import PACE_SKIP, PACE_STEPS, Trainer

    def lrs(seconds_per_step: float, **kw) -> list[float]:
        """The generator's learning rate over the first steps of a 2-minute budget whose steps take
        seconds_per_step of the run's clock (batches of 8)."""
        cfg = tiny_cgan(class_dir, minutes=2.0, lr_decay=0.5, lr_boost=0.0, lr_g=2e-4, batch=8, n_critic=1, **kw)
        cfg.validate(require_names=False)
        loop = Trainer(cfg, tmp_path / f"run{seconds_per_step}{kw}", torch.device("cpu"))
        out = []
        for step in range(PACE_SKIP + PACE_STEPS + 3):
            loop.step, loop.wall = step, step * seconds_per_step
            loop.set_learning_rates()
            out.append(loop.opt_g.param_groups[0]["lr"])
        return out
    read = PACE_SKIP + PACE_STEPS  # the first step that knows the pace
    slow = lrs(5.0)  # 1.6 images a second: the budget will see about 0.2 thousand images
    assert slow[:read] == pytest.approx([2e-4] * read)  # by the minutes until the pace is known
    assert slow[read:] == pytest.approx([SHORT_BOOST * 2e-4] * 3)  # then the short schedule's boost
    assert lrs(0.001) == pytest.approx([2e-4] * (read + 3))  # a fast machine: hundreds of thousands, none
    assert lrs(5.0, short_by_pace=False) == pytest.approx([2e-4] * (read + 3))  # switched off: by the minutes
    assert lrs(0.0) == pytest.approx([2e-4] * (read + 3))  # a clock that never moved tells no pace


def test_a_short_budget_starts_a_new_model_with_coarse_noise_maps_and_longer_ones_without(class_dir, tmp_path):
    from gan_core.config import LONG_BUDGET, NO_STEP_LIMIT, SHORT_BUDGET, SHORT_NOISE, TrainConfig
    assert TrainConfig(minutes=SHORT_BUDGET).noise_start() == TrainConfig(minutes=0.5).noise_start() == SHORT_NOISE
    assert TrainConfig(minutes=(SHORT_BUDGET + LONG_BUDGET) / 2).noise_start() == pytest.approx(SHORT_NOISE / 2)
    assert TrainConfig(minutes=LONG_BUDGET).noise_start() == TrainConfig(minutes=10).noise_start() == 0.0
    assert TrainConfig(minutes=0.0).noise_start() == 0.0  # steps only
    assert TrainConfig(minutes=1.0, lr_boost=3.0).noise_start() == SHORT_NOISE  # a given boost changes nothing here

    from gan_core.train import Trainer
    for minutes, given, want in ((0.01, None, SHORT_NOISE), (10.0, None, 0.0), (0.0, None, 0.0), (0.01, 0.0, 0.0),
                                 (10.0, 0.3, 0.3)):
        cfg = tiny_cgan(class_dir, minutes=minutes)
        cfg.model.noise_maps, cfg.model.noise_start = True, given
        cfg.validate(require_names=False)
        loop = Trainer(cfg, tmp_path / f"t{minutes}_{given}", torch.device("cpu"))
        stages = len(loop.G.noise_gain)  # at 32 px: 8, 16 and 32 px; the coarse ones all but the last two
        for k, g in enumerate(loop.G.noise_gain):
            assert torch.equal(g.detach(), torch.full_like(g, want if k < stages - 2 else 0.0))
        assert loop.cfg.model.noise_start == want and cfg.model.noise_start == given  # the caller's is kept
    # a new run saves the value it started with; resuming (with more time) keeps it
    cfg = tiny_cgan(class_dir, steps=NO_STEP_LIMIT, minutes=0.01, ckpt_every=10**6)
    cfg.model.noise_maps, cfg.model.noise_start = True, None
    first = train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["noise_start"] == SHORT_NOISE
    resume(tmp_path / "run", steps=first.step + 2, minutes=3.0)  # now a budget of 3 minutes
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["noise_start"] == SHORT_NOISE


def test_a_short_budget_trains_a_half_width_critic_drawn_as_a_run_given_that_width(class_dir, tmp_path):
    from gan_core.config import CRITIC_WIDTH, NO_STEP_LIMIT, SHORT_CRITIC, SHORT_KIMG, TrainConfig
    assert TrainConfig(minutes=1.0).critic_width(SHORT_KIMG) == SHORT_CRITIC
    assert TrainConfig(minutes=1.0).critic_width(SHORT_KIMG + 0.1) == CRITIC_WIDTH
    assert TrainConfig(minutes=0.0).critic_width(0.1) == TrainConfig(minutes=1.0).critic_width(None) == CRITIC_WIDTH

    from gan_core.train import Trainer

    def loop(name: str, minutes: float, width: int | None) -> Trainer:
        cfg = tiny_cgan(class_dir, minutes=minutes)
        cfg.model.d_channels = width
        cfg.validate(require_names=False)
        return Trainer(cfg, tmp_path / name, torch.device("cpu"))

    def widths(D) -> list[int]:  # (not through .weight: in training mode that steps spectral normalisation)
        return [m.out_channels for m in D.modules() if isinstance(m, torch.nn.Conv2d)]

    # a 0.01-minute budget: a few hundred images of this tiny model at any pace, a short budget
    short, given = loop("short", 0.01, None), loop("given", 0.01, SHORT_CRITIC)
    assert short.cfg.model.d_channels == SHORT_CRITIC and widths(short.D)[0] == SHORT_CRITIC
    assert widths(short.D) == widths(given.D) and "critic is 8 channels wide" in short.summary
    # the probe's steps ran on copies: the run's models are drawn as a run given the width draws them,
    # and its training goes on alike (the same random streams and optimizer states)
    for a, b in ((short.G, given.G), (short.D, given.D), (short.G_ema, given.G_ema)):
        sa, sb = a.state_dict(), b.state_dict()
        assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []
    for _ in range(3):
        short.train_step(), given.train_step()
    for a, b in ((short.G, given.G), (short.D, given.D), (short.G_ema, given.G_ema)):
        sa, sb = a.state_dict(), b.state_dict()
        assert [k for k in sa if not torch.allclose(sa[k].float(), sb[k].float(), rtol=1e-5, atol=1e-7)] == []
    # a budget that sees far more than SHORT_KIMG thousand images, and a run by steps: the full width
    for name, minutes in (("long", 1e5), ("steps", 0.0)):
        full = loop(name, minutes, None)
        assert full.cfg.model.d_channels == CRITIC_WIDTH and widths(full.D)[0] == CRITIC_WIDTH
        assert "critic is" not in full.summary
    assert loop("fixed", 0.01, 4).cfg.model.d_channels == 4  # a width given is kept
    # a new run saves the width it chose; resuming with a longer budget keeps it (the weights fit it)
    cfg = tiny_cgan(class_dir, steps=NO_STEP_LIMIT, minutes=0.01, ckpt_every=10**6)
    cfg.model.d_channels = None
    first = train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["d_channels"] == SHORT_CRITIC
    resume(tmp_path / "run", steps=first.step + 2, minutes=3.0)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["d_channels"] == SHORT_CRITIC


def test_learning_rate_boost_outside_its_range_is_refused(class_dir):
    from gan_core.config import ConfigError
    for bad in (0.5, float("nan"), 11.0):
        with pytest.raises(ConfigError, match="lr-boost must"):
            tiny_cgan(class_dir, lr_boost=bad).validate(require_names=False)
    with pytest.raises(ConfigError, match="lr-boost-kimg"):
        tiny_cgan(class_dir, lr_boost_kimg=-1.0).validate(require_names=False)



@pytest.mark.parametrize("balance", [False, True])
def test_dealt_classes_put_every_class_in_every_batch_at_its_share(tmp_path, balance):
    from gan_core.train import Trainer
    classes = {"a": (200, 40, 40), "b": (40, 200, 40), "c": (40, 40, 200), "d": (200, 200, 40), "e": (40, 200, 200)}
    data = make_class_folder(tmp_path / "data", classes=classes)
    for i in range(6, 12):  # class "e" holds twice as many images as each of the others
        (tmp_path / "data" / "e" / f"img{i}.png").write_bytes((tmp_path / "data" / "e" / "img0.png").read_bytes())
    cfg = tiny_cgan(data, batch=32, class_balance=balance)  # 8 critic groups of 4, one class each
    cfg.validate(require_names=False)
    loop = Trainer(cfg, tmp_path / "run", torch.device("cpu"))
    groups = []
    for _ in range(12):
        labels = loop.labels[loop._class_batch(32)].view(4, 8)  # row k: the k-th image of each group
        assert (labels == labels[0]).all()  # a group holds one class either way
        groups.append(torch.bincount(labels[0], minlength=5))
    groups = torch.stack(groups)  # per batch: groups of each class
    share = torch.tensor([1, 1, 1, 1, 2]) / 6 * 8  # 1.33 groups a batch, 2.67 for "e"
    if balance:
        assert (groups > 0).all()  # every class in every batch
        assert ((groups - share).abs() < 1).all()  # at its share, give or take one group
        assert ((groups.sum(0) - 12 * share).abs() <= 1).all()  # and exactly so over the batches
        saved = loop.save()  # what each class is owed travels with the checkpoint
        other = Trainer(cfg, tmp_path / "run", torch.device("cpu"))
        other.load(saved)
        assert torch.equal(other.class_credit, loop.class_credit)
        assert torch.equal(other._class_batch(32), loop._class_batch(32))  # a resumed run deals on as before
    else:  # drawn at random, some batch lacks a class
        assert (groups == 0).any()


def test_grid_penalty_and_grouped_augmentation_train_and_are_logged(class_dir, tmp_path):
    train(tiny_cgan(class_dir, loss="rpgan", n_critic=1, steps=3, grid_penalty=1.0, aug_groups=True,
                    augment=["translation", "color", "cutout"]), tmp_path / "run")
    stats = [json.loads(l) for l in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 3 and all(math.isfinite(s["grid_excess"]) and s["grid_excess"] >= 0 for s in stats)

# ---------------------------------------------------------- bad data, crashes and faults
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


@pytest.mark.slow
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


def _breaking_step(monkeypatch, when, what):
    """Make train_step poison the model (`what`) on the calls listed in `when`."""
    from gan_core import train as train_mod
    real, calls = train_mod.Trainer.train_step, {"n": 0}

    def step(self):
        calls["n"] += 1
        rec = real(self)
        if when(calls["n"]):
            what(self, rec)
        return rec
    monkeypatch.setattr(train_mod.Trainer, "train_step", step)


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
    # step 0 and step 2 are saved (4 safetensors files each); the save of step 4 fails on its second file
    monkeypatch.setattr(safetensors.torch, "save_file", _DiskFull(safetensors.torch.save_file, 10, err))
    code = cli(["train", "cgan", class_dir, "--out", str(run), "--res", "32", "--g-channels", "4",
                "--d-channels", "4", "--batch", "4", "--steps", "6", "--ckpt-every", "2"])
    out = capsys.readouterr().err
    assert code == 2 and os.strerror(err) in out and "step_00000002) is intact" in out
    assert "Traceback" not in out
    assert [d.name for d in ckpt.checkpoint_dirs(run)] == ["step_00000002", "step_00000000"]
    assert not list((run / "checkpoints").glob(".tmp_*"))
    monkeypatch.undo()
    assert resume(run, steps=4).step == 4  # once there is room again, the run goes on


TINY_CLI = ["--batch", "4", "--res", "32", "--g-channels", "4", "--d-channels", "4"]


@pytest.mark.slow  # a subprocess that imports torch and trains: the faked failures above are quick
def test_a_real_write_failure_in_a_library_is_the_disk_message(class_dir, tmp_path):
    """Not a faked OSError: the process may write no file over 20 kB, so safetensors itself fails
    (as it does on a full disk) while writing the first checkpoint."""
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "gan_core", "train", "cgan", class_dir, "--out", str(run),
                           "--steps", "4", *TINY_CLI], preexec_fn=limit, capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2, proc.stderr
    assert "error: Could not write the checkpoint for step 0" in proc.stderr and "File too large" in proc.stderr
    assert "Traceback" not in proc.stderr and not ckpt.checkpoint_dirs(run)
    assert not list((run / "checkpoints").glob(".tmp_*")) if (run / "checkpoints").exists() else True
    assert cli(["train", "cgan", class_dir, "--out", str(run), "--steps", "2", *TINY_CLI]) == 0  # room again


def test_a_second_training_of_a_folder_being_trained_is_refused_naming_who_holds_it(class_dir, tmp_path, capsys):
    from gan_core.jobs import Jobs
    from gan_core.runs import RunDir

    run, jobs = tmp_path / "run", Jobs()
    jobs.train(tiny_cgan(class_dir, steps=100_000, ckpt_every=2, sample_every=100_000), RunDir(run))
    try:
        t0 = time.time()
        while not ckpt.checkpoint_dirs(run) and time.time() - t0 < 120:
            time.sleep(0.05)
        assert cli(["train", "cgan", class_dir, "--out", str(run), *TINY_CLI]) == 2
        err = capsys.readouterr().err
        assert "is being trained right now (process" in err and "Traceback" not in err
        assert cli(["resume", str(run), "--steps", "100000"]) == 2
        assert "is being trained right now" in capsys.readouterr().err
    finally:
        jobs.stop()
        assert jobs.wait(120) and jobs.state == "stopped", jobs.message
    at = int(ckpt.checkpoint_dirs(run)[0].name[5:])
    assert at == jobs.step and resume(run, steps=at + 1).step == at + 1  # the folder is free again


@pytest.mark.slow  # a process killed mid-run
def test_sigterm_saves_a_checkpoint_like_ctrl_c(class_dir, tmp_path):
    import signal

    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gan_core", "train", "cgan", class_dir, "--out", str(run),
                             "--steps", "100000", "--ckpt-every", "100000", "--sample-every", "100000", *TINY_CLI],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    t0 = time.time()
    while not (run / "stats.jsonl").exists() and time.time() - t0 < 120:  # a few steps in
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    step = int(out.split("stopped at step ")[1].split(";")[0])
    assert step >= 10 and int(ckpt.checkpoint_dirs(run)[0].name[5:]) == step


@pytest.mark.parametrize("bf16", [True, False])
def test_speed_note_follows_the_cpus_bf16_support(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert use_bf16("auto", torch.device("cpu")) is bf16
    note = speed_note()
    steps = STEPS_10MIN_BF16 if bf16 else STEPS_10MIN_FP32
    assert f"about {steps} steps" in note
    assert ("fp32" in note) is not bf16 and ("45 minutes" in note) is not bf16
