"""Checkpoints and model files: pickles are never run, damaged or mismatched files are refused naming
the problem, and what a crash leaves behind is never taken for a checkpoint."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_core import checkpoint as ckpt
from gan_core.__main__ import main as cli
from gan_core.errors import CheckpointError
from gan_core.train import resume, train
from tests.conftest import tiny_cgan
from tests.helpers import Payload, cut_weights, make_model_folder, patch_config, pickles, rewrite_weights


HYPO = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


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


MALFORMED = {  # name -> (how to damage a good model folder, words of the message)
    "truncated": (lambda f: cut_weights(f, -100), "G_ema.safetensors is damaged or truncated"),
    "cut in the header": (lambda f: cut_weights(f, 40), "not a valid safetensors file"),
    "header length beyond the file": (
        lambda f: (f / "G_ema.safetensors").write_bytes(struct.pack("<Q", 10**6) + b'{"a": 1}'),
        "header length says 1000000 bytes in a file of 16"),
    "header not json": (lambda f: (f / "G_ema.safetensors").write_bytes(struct.pack("<Q", 8) + b"{garbage"),
                        "G_ema.safetensors is damaged or truncated"),
    "empty": (lambda f: (f / "G_ema.safetensors").write_bytes(b""), "truncated \\(only 0 bytes\\)"),
    "wrong shapes": (lambda f: rewrite_weights(f, lambda t: t.update({k: torch.zeros(3, 3) for k in list(t)[:1]})),
                     "has shape \\(3, 3\\), config.json needs"),
    "missing key": (lambda f: rewrite_weights(f, lambda t: t.pop(sorted(t)[0])), "does not match config.json: missing"),
    "extra key": (lambda f: rewrite_weights(f, lambda t: t.update({"evil.weight": torch.zeros(1)})),
                  "unexpected \\['evil.weight'\\]"),
    "nan weights": (lambda f: rewrite_weights(f, lambda t: t[next(k for k in t if t[k].is_floating_point())].fill_(float("nan"))),
                    "holds NaN or infinite values"),
    "inf weights": (lambda f: rewrite_weights(f, lambda t: t[next(k for k in t if t[k].is_floating_point())].fill_(float("inf"))),
                    "holds NaN or infinite values"),
    "config with other widths": (lambda f: patch_config(f, g_channels=8), "config.json needs"),
    "config with more classes": (lambda f: patch_config(f, class_names=["a", "b", "c", "d"]),
                                 "config.json needs"),
    "config not json": (lambda f: (f / "config.json").write_text("{'model':"), "config.json is not valid JSON"),
    "config of a texture model": (lambda f: (f / "config.json").write_text(json.dumps(
        {"variant": "sgan", "model": {}})), "does not match config.json"),
    "config missing": (lambda f: (f / "config.json").unlink(), "no checkpoints/step_\\* folder or config.json"),
    "config out of range": (lambda f: patch_config(f, resolution=48), "resolution must be one of"),
}


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


def test_a_conditional_model_loads_in_the_faster_channels_last_layout_and_draws_the_same(tmp_path):
    from gan_core.nets import build_generator
    folder = make_model_folder(tmp_path / "m")
    G, cfg = ckpt.load_generator(folder, equalise=False)
    convs = [m.weight for m in G.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)
    plain = build_generator(cfg)  # the same weights in the default layout
    plain.load_state_dict({k: v.contiguous() for k, v in G.state_dict().items()})
    plain.eval()
    z, y = torch.randn(6, cfg.model.nz, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        assert (G(z, y) - plain(z, y)).abs().max() < 1e-3  # both fp32: only the kernels' summation order differs


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


@pytest.mark.parametrize("text,words", [
    ('{"variant": "cgan", "model": {"nz": NaN}}', "not a number a setting can have"),
    ('{"variant": "cgan", "model": {"nz": Infinity}}', "not a number a setting can have"),
    ('{"variant": "cgan", "model": {"nz": 1e400}}', "finite number of sensible size"),
    ('{"variant": "cgan", "model": {"nz": ' + "9" * 5000 + "}}", "does not accept"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"variant": "cgan", "model": {}, "data": 5}', "data in config.json must be a list"),
    ('{"variant": "sgan", "model": {"nz_local": -4}}', "noise channel counts"),
    ('{"variant": "sgan", "model": {"max_channels": 10000000}}', "max_channels must be between"),
    ('{"variant": "cgan", "model": {"g_channels": 100000, "class_names": ["a"]}}', "g_channels must be between"),
    ('{"variant": "sgan", "model": {}, "train": {"batch": 4096, "patch": 512, "max_side": 512}}',
     "at most 32 at that patch size"),
    ('{"variant": "cgan", "model": {"class_names": ["a"]}, "train": {"gp_lambda": 1e300}}', "sensible size"),
])
def test_config_files_that_would_crash_or_exhaust_memory_are_refused_naming_the_problem(tmp_path, capsys, text,
                                                                                        words):
    folder = make_model_folder(tmp_path / "m")
    (folder / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=words):
        ckpt.read_config(folder)
    assert cli(["sample", str(folder), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def _first_float(tensors) -> str:
    return next(k for k in sorted(tensors) if tensors[k].is_floating_point())


@pytest.mark.parametrize("damage,words", [
    (lambda t: t.update({k: t[k].double().fill_(1e300) for k in [_first_float(t)]}), "NaN or infinite values"),
    (lambda t: t.update({k: v.fill_(-1.0) for k, v in t.items() if k.endswith("running_var")}), "negative variances"),
    (lambda t: t.update({k: t[k].fill_(1e20) for k in [_first_float(t)]}), "far beyond"),
])
def test_weights_that_pass_the_format_but_would_draw_black_or_nan_images_are_refused(tmp_path, capsys, damage,
                                                                                      words):
    folder = make_model_folder(tmp_path / "m")
    rewrite_weights(folder, damage)
    with pytest.raises(CheckpointError, match=words):
        ckpt.load_generator(folder)
    assert cli(["sample", str(folder), "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists() and "Traceback" not in capsys.readouterr().err


def test_resume_falls_back_when_the_newest_state_does_not_fit_the_model(class_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_cgan(class_dir, steps=4), run)
    newest = ckpt.checkpoint_dirs(run)[0]
    st = torch.load(newest / ckpt.STATE_FILE, weights_only=True)
    st["opt_g"]["param_groups"].append(dict(st["opt_g"]["param_groups"][0]))  # the right types, wrong groups
    torch.save(st, newest / ckpt.STATE_FILE)
    res = resume(run, steps=6)
    assert res.step == 6  # from step 2, the newest checkpoint that loads whole
    assert [d.name for d in ckpt.checkpoint_dirs(run)] == ["step_00000006", "step_00000004"]


def test_one_bad_run_folder_hides_no_other_model(tmp_path):
    from gan_core.runs import list_models
    runs, models = tmp_path / "runs", tmp_path / "models"
    make_model_folder(models / "demo")
    bad = make_model_folder(models / "bad")
    runs.mkdir()
    (bad / "config.json").write_text((bad / "config.json").read_text().replace('"nz": 8', '"nz": NaN'))
    assert [label for label, _ in list_models("cgan", models, runs)] == ["demo  (demo)"]
