import json
import os
import signal
import stat

import numpy as np
import pytest
from PIL import Image

from gan_core.__main__ import main
from gan_core.__main__ import main as cli
from tests.conftest import make_texture


TINY = ["--steps", "3", "--batch", "4", "--sample-every", "3", "--ckpt-every", "3"]


def test_help_explains_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "cgan", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--augment" in out and "one subfolder per class" in out


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "cgan", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cgan_train_sample_resume_end_to_end(class_dir, tmp_path, capsys):
    run = tmp_path / "runs" / "run"
    assert main(["train", "cgan", class_dir, "--out", str(run), "--res", "32", "--g-channels", "4",
                 "--d-channels", "4", *TINY]) == 0
    assert (run / "checkpoints" / "step_00000003").is_dir()
    assert main(["resume", str(run), "--steps", "4"]) == 0
    assert main(["resume", "run", "--workspace", str(tmp_path), "--steps", "5"]) == 0  # by its name
    assert json.loads((run / "stats.jsonl").read_text().splitlines()[-1])["step"] == 5
    capsys.readouterr()
    assert main(["resume", "demo-classes", "--workspace", str(tmp_path)]) == 2  # a shipped model is not a run
    err = capsys.readouterr().err
    assert "no model or run named 'demo-classes'" in err and "these names: run." in err
    out = tmp_path / "g.png"
    assert main(["sample", str(run), "--class", "red=0.3", "--class", "blue=0.7", "--n", "4", "--out", str(out)]) == 0
    im = Image.open(out)
    assert im.text["classes"] == '{"red": 0.3, "blue": 0.7}' and im.size[0] > 4 * 32
    assert main(["sample", str(run), "--class", "purple", "--out", str(out)]) == 2
    assert "unknown class 'purple'" in capsys.readouterr().err
    assert main(["texture", str(run), "--out", str(out)]) == 2  # wrong model kind


def test_sgan_train_and_tileable_texture(texture_files, tmp_path, capsys):
    run = tmp_path / "tex"
    assert main(["train", "sgan", texture_files[0], "--out", str(run), "--patch", "32", "--depth", "3",
                 "--g-channels", "4", "--d-channels", "4", *TINY]) == 0
    out = tmp_path / "t.png"
    assert main(["texture", str(run), "--width", "60", "--height", "40", "--tileable", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rounded up to 64x40" in text and "seam ratio" in text
    assert np.asarray(Image.open(out)).shape == (40, 64, 3)
    with pytest.raises(SystemExit):
        main(["texture", str(run), "--width", "9000", "--out", str(out)])
    assert "--width: must be between 16 and 8192, got 9000" in capsys.readouterr().err


def test_seam_note_tells_how_to_tile_only_when_an_untiled_seam_shows():
    from gan_core.texture_command import seam_note
    assert "add --tileable" in seam_note(3.8, False, 32) and "seam ratio 3.800" in seam_note(3.8, False, 32)
    assert "--tileable" not in seam_note(3.8, True, 32)  # tiled: the figure itself is the warning
    assert "--tileable" not in seam_note(1.0, False, 32)  # no seam shows


def test_export_writes_a_small_float16_model_that_samples_like_the_run(class_dir, tmp_path, capsys, monkeypatch):
    import torch
    from safetensors import safe_open

    from gan_core import checkpoint as ckpt
    run = tmp_path / "run"
    assert main(["train", "cgan", class_dir, "--out", str(run), "--res", "32", "--g-channels", "4",
                 "--d-channels", "4", *TINY]) == 0
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "models" / "mine"
    assert main(["export", str(run), "--out", str(model)]) == 0
    assert sorted(p.name for p in model.iterdir()) == ["G_ema.safetensors", "config.json", "spectrum.safetensors"]
    for name in ("G_ema.safetensors", "spectrum.safetensors"):
        with safe_open(str(model / name), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()} == {torch.float16}
    assert json.loads((model / "config.json").read_text())["data"] == ["data"]  # relative, no absolute path
    if os.name == "posix":  # readable as any new file is (safetensors writes owner-only files): a shared folder works
        umask = os.umask(0)
        os.umask(umask)
        assert {stat.S_IMODE(p.stat().st_mode) for p in model.iterdir()} == {0o666 & ~umask}
    G1, cfg = ckpt.load_generator(run)
    G2, _ = ckpt.load_generator(model)
    z, y = torch.randn(4, cfg.model.nz), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        assert (G1(z, y) - G2(z, y)).abs().max() < 0.02
    assert (G1.spectral_gain - G2.spectral_gain).abs().max() < 1e-3  # the equaliser travels with the model
    out = tmp_path / "s.png"
    assert main(["sample", str(model), "--n", "2", "--out", str(out)]) == 0
    assert main(["export", str(run), "--out", str(model)]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err


def _config(*args):
    from gan_core.__main__ import _run_config, build_parser
    return _run_config(build_parser().parse_args(["train", *args, "--out", "x"]))


def test_recipe_sets_the_optimiser_and_single_options_override_it(class_dir, tmp_path):
    tex = make_texture(tmp_path / "t.png", size=128)
    t = _config("cgan", class_dir, "--recipe", "fast", "--lr", "3e-4", "--batch", "4").train
    assert (t.loss, t.n_critic, t.beta1, t.beta2, t.diversity) == ("hinge", 1, 0.0, 0.99, 0.2)
    assert t.lr_g == t.lr_d == 3e-4
    ref = _config("sgan", tex, "--n-critic", "3", "--recipe", "reference").train
    assert (ref.loss, ref.lr_g, ref.beta1, ref.gp_lambda, ref.n_critic, ref.batch) == ("wgan-gp", 1e-4, 0.1, 5.0, 3, 8)
    studio = _config("cgan", class_dir, "--batch", "4")
    assert (studio.train.r1_gamma, studio.model.noise_maps, studio.model.sle, studio.model.half_chroma,
            studio.model.colour_gate) == (1.0, True, True, True, True)
    bare = _config("cgan", class_dir, "--batch", "4", "--r1-gamma", "0.1", "--no-noise-maps", "--no-sle",
                   "--no-half-chroma")  # the colour gate goes with the half-resolution colour
    assert (bare.train.r1_gamma, bare.model.noise_maps, bare.model.sle, bare.model.half_chroma,
            bare.model.colour_gate) == (0.1, False, False, False, False)
    assert not _config("cgan", class_dir, "--batch", "4", "--no-colour-gate").model.colour_gate
    assert studio.train.mirror_balance == 0.3  # the studio recipe's, for conditional models
    assert _config("cgan", class_dir, "--batch", "4", "--mirror-balance", "0").train.mirror_balance == 0
    assert _config("cgan", class_dir, "--recipe", "reference", "--batch", "4").train.mirror_balance == 0
    assert _config("sgan", tex, "--mirror-balance", "1").train.mirror_balance == 0  # textures have no classes
    assert _config("cgan", class_dir, "--recipe", "reference", "--batch", "4", "--sle").model.sle
    assert studio.model.g_extra == 3 and _config("cgan", class_dir, "--batch", "4", "--g-extra", "0").model.g_extra == 0
    assert _config("cgan", class_dir, "--recipe", "reference", "--batch", "4").model.g_extra == 0
    assert _config("cgan", class_dir, "--batch", "4", "--lr-boost", "2.5").train.lr_boost == 2.5
    assert _config("cgan", class_dir, "--recipe", "reference", "--batch", "4").train.lr_boost == 1.0
    short = _config("cgan", class_dir, "--batch", "4", "--minutes", "1")
    assert short.train.lr_boost == 0 and short.train.boost() == 3  # the studio recipe: by the budget
    off = _config("cgan", class_dir, "--batch", "4", "--minutes", "1", "--lr-boost", "1").train
    assert (off.boost(), off.decay()) == (1.0, 0.5)  # given, it holds whatever the budget
    assert _config("sgan", tex, "--minutes", "1").train.boost() == 1  # textures: not measured, no boost
    with pytest.raises(SystemExit):
        _config("cgan", class_dir, "--lr-boost", "0.5")  # argparse: "must be between 1 and 10"


def test_default_recipe_is_the_studio_recipe_with_its_networks_and_reference_keeps_its_own(class_dir, tmp_path):
    tex_file = make_texture(tmp_path / "t.png", size=128)
    new = _config("cgan", class_dir, "--batch", "4")
    assert (new.model.arch, new.train.loss, new.train.ada_target > 0, new.train.ema_kimg) == ("upconv", "rpgan", True, 10)
    assert new.train.diversity == 0 and new.train.lr_decay == 0.5
    assert set(new.train.augment) == {"translation", "color", "cutout"} and new.train.steps == 2000
    ref = _config("cgan", class_dir, "--batch", "4", "--recipe", "reference")
    assert (ref.model.arch, ref.train.loss, ref.train.augment) == ("dcgan", "wgan-gp", [])
    tex = _config("sgan", tex_file, "--minutes", "10")
    assert tex.model.upsample == "nearest" and tex.train.minutes == 10 and tex.train.steps >= 10**7
    assert tex.train.augment == [] and tex.train.diversity == 0.2  # random patches are new views already
    assert tex.train.loss == "hinge"
    both = _config("sgan", tex_file, "--minutes", "1", "--steps", "50")
    assert both.train.steps == 50  # whichever comes first


def test_train_for_minutes_stops_with_a_checkpoint_and_reports_the_gauge(class_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--res", "32", "--g-channels", "4", "--d-channels", "4", "--batch", "4"]
    # 3 s: room for a few steps (with their checkpoints) on a slow, busy CPU
    assert main(["train", "cgan", class_dir, "--out", str(run), "--minutes", "0.05", *args]) == 0
    out = capsys.readouterr().out
    step = int(out.split("finished at step ")[1].split(";")[0])
    assert step > 0 and "distance to your images" in out and "grid pattern" in out
    assert main(["resume", str(run), "--minutes", "0.05"]) == 0
    assert int(capsys.readouterr().out.split("finished at step ")[1].split(";")[0]) > step


@pytest.mark.parametrize("args,msg", [
    (["train", "cgan", "D", "--out", "R", "--steps", "0"], "--steps: must be between 1 and 10000000, got 0"),
    (["train", "cgan", "D", "--out", "R", "--steps", "-5"], "--steps: must be between 1"),
    (["train", "cgan", "D", "--out", "R", "--steps", "2.5"], "--steps: must be a whole number, got 2.5"),
    (["train", "cgan", "D", "--out", "R", "--batch", "0"], "--batch: must be between 1"),
    (["train", "cgan", "D", "--out", "R", "--g-extra", "6"], "--g-extra: must be between 0 and 5, got 6"),
    (["train", "sgan", "T", "--out", "R", "--patch", "0"], "--patch: must be between 32 and 512"),
    (["texture", "R", "--width", "0", "--out", "x.png"], "--width: must be between 16 and 8192"),
    (["resume", "R", "--steps", "-1"], "--steps: must be between 1"),
    (["train", "cgan", "D", "--out", "R", "--res", "48"], "invalid choice"),
    (["train", "cgan", "D", "--out", "R", "--augment", "zoom"], "Unknown augmentation 'zoom'"),
    (["texture"], "required"),
])
def test_cli_refuses_bad_numbers_with_a_message(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        cli(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and "Traceback" not in err


def test_cli_refuses_bad_settings_that_need_the_data(class_dir, tmp_path, capsys):
    tex = make_texture(tmp_path / "t.png")
    assert cli(["train", "cgan", class_dir, "--out", str(tmp_path / "r"), "--batch", "100"]) == 2
    assert "Batch (100) is larger than the dataset (18 images)" in capsys.readouterr().err
    assert cli(["train", "sgan", tex, "--out", str(tmp_path / "s"), "--patch", "128"]) == 2
    assert "smaller than the 128px training patch" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli(["train", "cgan", class_dir, "--out", str(tmp_path / "afile"), "--batch", "4"]) == 2
    err = capsys.readouterr().err
    assert "afile" in err and "Traceback" not in err


@pytest.mark.parametrize("args,msg", [
    (["sample", "--class", "brick=nan", "--out", "x.png"], "class weights must be finite"),
    (["sample", "--n", "100000", "--out", "x.png"], "--n: must be between 1 and 64"),
    (["train", "cgan", "D", "--out", "R", "--seed", str(2**63)], "--seed: must be between 0 and"),
    (["train", "cgan", "D", "--out", "R", "--gp-lambda", "nan"], "--gp-lambda: must be a finite number"),
    (["train", "cgan", "D", "--out", "R", "--diversity", "inf"], "--diversity: must be a finite number"),
    (["train", "cgan", "D", "--out", "R", "--mirror-balance", "-1"], "--mirror-balance: must be between 0 and"),
])
def test_numbers_that_would_crash_or_poison_a_run_are_refused(args, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli(args)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and msg in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_a_texture_batch_beyond_memory_is_refused_before_training(tmp_path, capsys):
    tex = make_texture(tmp_path / "t.png", size=512)
    assert cli(["train", "sgan", tex, "--out", str(tmp_path / "r"), "--batch", "4096", "--patch", "512"]) == 2
    err = capsys.readouterr().err
    assert "use a batch of at most 32" in err and "Traceback" not in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("budget_s,used_s", [(1.2, 2.0), (0.3, 0.0), (0.3, 5.0)])
def test_the_time_bar_draws_when_the_first_report_comes_late_or_the_budget_is_tiny(budget_s, used_s, capsys):
    from gan_core.__main__ import _Bar
    from gan_core.config import NO_STEP_LIMIT
    from gan_core.train import Progress

    bar = _Bar(quiet=True)
    try:
        bar(Progress("log", 3, NO_STEP_LIMIT, record={"d_loss": 1.0, "g_loss": 0.5, "img_per_s": 10.0},
                     budget_s=budget_s, used_s=used_s))
        assert 1 <= bar.bar.total and 0 <= bar.bar.n <= bar.bar.total
    finally:
        bar.close()
    assert "step=3" in capsys.readouterr().err


def test_training_from_main_gives_ctrl_c_back_to_the_calling_program(class_dir, tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    assert main(["train", "cgan", class_dir, "--out", str(tmp_path / "r"), "--steps", "2", "--res", "32",
                 "--g-channels", "4", "--d-channels", "4", "--batch", "4"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before


def test_texture_maps_morph_mask_and_variations_from_the_command_line(tmp_path, capsys):
    from gan_core.maps import decode_normals
    out = tmp_path / "wall.png"
    assert main(["texture", "--width", "128", "--height", "64", "--tileable", "--seed", "3", "--maps", "height,normal",
                 "--map-strength", "2", "--map-invert", "--morph", "0:1", "--out", str(out)]) == 0
    with Image.open(tmp_path / "wall_color.png") as c, Image.open(tmp_path / "wall_height.png") as h, \
            Image.open(tmp_path / "wall_normal.png") as n:
        assert c.size == h.size == n.size == (128, 64) and h.mode.startswith("I;16")
        assert c.text["morph"] == "1->2 horizontal" and c.text["seed"] == "3" and n.text["map_strength"] == "2.0"
        assert n.text["map_invert"] == "True"
        assert np.abs(np.linalg.norm(decode_normals(np.asarray(n)), axis=-1) - 1).max() <= 0.02
    mask = np.zeros((32, 64), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert main(["texture", "--width", "128", "--height", "64", "--mask", str(tmp_path / "mask.png"), "--brush", "0",
                 "--brush", "random:5", "--feather", "24", "--format", "jpeg", "--out", str(tmp_path / "m.png")]) == 0
    with Image.open(tmp_path / "m.jpg") as m:
        assert m.format == "JPEG" and '"feather_px": "24"' in m.info["comment"].decode()
    assert main(["texture", "--width", "64", "--height", "64", "--variations", "2", "--seed", "4",
                 "--out", str(tmp_path / "batch")]) == 0
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["batch_seed4.png", "batch_seed5.png",
                                                                      "batch_sheet.png"]
    capsys.readouterr()
    assert main(["texture", "--maps", "bump", "--out", str(out)]) == 2
    assert "Unknown map 'bump'" in capsys.readouterr().err
    assert main(["texture", "--morph", "0:x", "--out", str(out)]) == 2
    assert "random:SEED" in capsys.readouterr().err


def test_every_model_command_finds_a_model_by_name_the_same_way(tmp_path, capsys, monkeypatch):
    from tests.helpers import make_model_folder
    monkeypatch.chdir(tmp_path)
    make_model_folder(tmp_path / "workspace" / "runs" / "mine", class_names=("sea", "sky"))
    assert main(["sample", "mine", "--n", "2", "--out", "s.png"]) == 0  # a run of ./workspace by its name
    assert main(["export", "mine", "--out", "copy"]) == 0 and (tmp_path / "copy" / "config.json").is_file()
    assert main(["texture", "demo-textures", "--width", "32", "--height", "32", "--source", "0", "--out", "t.png"]) == 0
    make_model_folder(tmp_path / "demo-classes", class_names=("here",))  # a folder named like a shipped model
    assert main(["sample", "demo-classes", "--class", "brick", "--n", "1", "--out", "d.png"]) == 0  # the shipped one
    assert main(["sample", "./demo-classes", "--class", "here", "--n", "1", "--out", "h.png"]) == 0  # the folder
    capsys.readouterr()
    assert main(["sample", "nothing", "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert "There is no model or run named 'nothing'" in err and "demo-classes" in err and "mine" in err
    assert "Traceback" not in err
