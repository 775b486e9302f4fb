import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gan_core.__main__ import main

TINY = ["--steps", "3", "--batch", "4", "--sample-every", "3", "--ckpt-every", "3"]


def test_help_explains_commands():
    out = subprocess.run([sys.executable, "-m", "gan_core", "train", "cgan", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert "--augment" in out.stdout and "one subfolder per class" in out.stdout


@pytest.mark.parametrize("args,msg", [
    (["train", "cgan", "DATA", "--out", "x", "--steps", "0"], "must be at least 1"),
    (["train", "cgan", "DATA", "--out", "x", "--res", "48"], "invalid choice"),
    (["train", "cgan", "DATA", "--out", "x", "--augment", "zoom"], "unknown augmentation"),
    (["texture"], "required"),
])
def test_bad_arguments_give_a_message_not_a_traceback(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "cgan", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cgan_train_sample_resume_end_to_end(class_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "cgan", class_dir, "--out", str(run), "--res", "32", "--g-channels", "4",
                 "--d-channels", "4", *TINY]) == 0
    assert (run / "checkpoints" / "step_00000003").is_dir()
    assert main(["resume", str(run), "--steps", "5"]) == 0
    assert json.loads((run / "stats.jsonl").read_text().splitlines()[-1])["step"] == 5
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
    assert main(["texture", str(run), "--width", "9000", "--out", str(out)]) == 2
    assert "between 1 and 8192" in capsys.readouterr().err


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
    assert sorted(p.name for p in model.iterdir()) == ["G_ema.safetensors", "config.json"]
    with safe_open(str(model / "G_ema.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).is_floating_point()} == {torch.float16}
    assert json.loads((model / "config.json").read_text())["data"] == ["data"]  # relative, no absolute path
    G1, cfg = ckpt.load_generator(run)
    G2, _ = ckpt.load_generator(model)
    z, y = torch.randn(4, cfg.model.nz), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        assert (G1(z, y) - G2(z, y)).abs().max() < 0.02
    out = tmp_path / "s.png"
    assert main(["sample", str(model), "--n", "2", "--out", str(out)]) == 0
    assert main(["export", str(run), "--out", str(model)]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err


def test_recipe_sets_the_optimiser_and_single_options_override_it(class_dir, tmp_path):
    from gan_core.__main__ import _train_config, build_parser
    a = build_parser().parse_args(["train", "cgan", class_dir, "--out", "x", "--recipe", "fast", "--lr", "3e-4"])
    t = _train_config(a)
    assert (t.loss, t.n_critic, t.beta1, t.beta2, t.diversity) == ("hinge", 1, 0.0, 0.99, 0.2)
    assert t.lr_g == t.lr_d == 3e-4
    ref = _train_config(build_parser().parse_args(["train", "sgan", "t.png", "--out", "x", "--n-critic", "3",
                                                   "--recipe", "reference"]))
    assert (ref.loss, ref.lr_g, ref.beta1, ref.gp_lambda, ref.n_critic, ref.batch) == ("wgan-gp", 1e-4, 0.1, 5.0, 3, 8)


def test_default_recipe_is_the_studio_recipe_with_its_networks_and_reference_keeps_its_own(class_dir):
    from gan_core.__main__ import _run_config, build_parser
    new = _run_config(build_parser().parse_args(["train", "cgan", class_dir, "--out", "x"]))
    assert (new.model.arch, new.train.loss, new.train.ada_target > 0, new.train.ema_kimg) == ("upconv", "rpgan", True, 10)
    assert new.train.diversity == 0 and new.train.lr_decay == 0.5
    assert set(new.train.augment) == {"translation", "color", "cutout"} and new.train.steps == 2000
    ref = _run_config(build_parser().parse_args(["train", "cgan", class_dir, "--out", "x", "--recipe", "reference"]))
    assert (ref.model.arch, ref.train.loss, ref.train.augment) == ("dcgan", "wgan-gp", [])
    tex = _run_config(build_parser().parse_args(["train", "sgan", "t.png", "--out", "x", "--minutes", "10"]))
    assert tex.model.upsample == "nearest" and tex.train.minutes == 10 and tex.train.steps >= 10**7
    assert tex.train.augment == [] and tex.train.diversity == 0.2  # random patches are new views already
    assert tex.train.loss == "hinge"
    both = _run_config(build_parser().parse_args(["train", "sgan", "t.png", "--out", "x", "--minutes", "1",
                                                  "--steps", "50"]))
    assert both.train.steps == 50  # whichever comes first


def test_train_for_minutes_stops_with_a_checkpoint_and_reports_the_gauge(class_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--res", "32", "--g-channels", "4", "--d-channels", "4", "--batch", "4"]
    assert main(["train", "cgan", class_dir, "--out", str(run), "--minutes", "0.02", *args]) == 0
    out = capsys.readouterr().out
    step = int(out.split("finished at step ")[1].split(";")[0])
    assert step > 0 and "distance to your images" in out and "grid pattern" in out
    assert main(["resume", str(run), "--minutes", "0.01"]) == 0
    assert int(capsys.readouterr().out.split("finished at step ")[1].split(";")[0]) > step
