"""Settings -> RunConfig: one set of defaults, ranges and messages for the command line and the studio,
and one data check for Check data, Start and `python -m gan_core check`."""
from __future__ import annotations

import pytest

from gan_core import options
from gan_core.__main__ import main as cli
from gan_core.config import NO_STEP_LIMIT, TrainConfig
from gan_core.errors import ConfigError, DatasetError, StudioError
from gan_core.workspace import Workspace
from tests.conftest import make_texture
from tests.helpers import BAD_FILES, good_png

BASE = dict(resolution="32", steps=10, batch=4, augment=[], g_channels=4, d_channels=4, lr=1e-4, seed=0,
            sample_every=5, ckpt_every=5)


@pytest.mark.parametrize("over,msg", [
    ({"steps": 0}, "Steps must be between 1 and"), ({"steps": -3}, "Steps must be between 1"),
    ({"steps": 2.5}, "Steps must be a whole number, got 2.5"), ({"steps": "2.5"}, "Steps must be a whole number"),
    ({"batch": "many"}, "Batch must be a whole number, got 'many'"), ({"batch": 100}, r"Batch \(100\) is larger"),
    ({"resolution": "48"}, "Resolution must be one of 32, 64, 128"), ({"lr": float("nan")}, "Learning rate must be a finite"),
    ({"lr": 0}, "Learning rate must be between 0 \\(not included\\)"), ({"g_channels": 1000}, "Generator width must be"),
    ({"minutes": -5}, "Train for \\(minutes\\) must be between 0"), ({"seed": 1.5}, "Seed must be a whole number"),
])
def test_bad_settings_are_refused_naming_the_field(class_dir, tmp_path, over, msg):
    with pytest.raises(StudioError, match=msg):
        options.run_config("cgan", [class_dir], recipe="reference", **{**BASE, **over})


def test_empty_fields_take_the_recipes_defaults_and_whole_numbers_may_be_typed(class_dir):
    cfg = options.run_config("cgan", [class_dir], steps="", batch=" 4 ", seed="7", lr=None)
    t = TrainConfig.recipe("studio", "cgan")
    assert cfg.train.steps == t.steps and cfg.train.batch == 4 and cfg.train.seed == 7 and cfg.train.lr_g == t.lr_g
    assert cfg.model.resolution == 64 and cfg.data == [str(__import__("pathlib").Path(class_dir).resolve())]


def test_critic_width_0_leaves_a_conditional_critic_to_the_budget_and_the_forms_show_it(class_dir, tmp_path):
    from gan_core.config import CRITIC_WIDTH
    assert options.defaults("cgan")["d_channels"] == 0  # the studio recipe: by the budget
    assert options.defaults("cgan", "reference")["d_channels"] == CRITIC_WIDTH
    assert options.defaults("sgan")["d_channels"] == 32
    assert options.run_config("cgan", [class_dir], **{**BASE, "d_channels": "0"}).model.d_channels is None
    assert options.run_config("cgan", [class_dir], **{**BASE, "d_channels": None}).model.d_channels is None
    assert options.run_config("cgan", [class_dir], recipe="reference", **{**BASE, "d_channels": None}
                              ).model.d_channels == CRITIC_WIDTH
    assert options.run_config("cgan", [class_dir], **BASE).model.d_channels == 4  # a width given is kept
    tex = make_texture(tmp_path / "t.png", size=96)
    with pytest.raises(ConfigError, match="Critic width must be between 1 and 512 for a texture model, got 0"):
        options.run_config("sgan", [tex], patch=64, d_channels=0)
    with pytest.raises(ConfigError, match="Critic width must be between 0 and 512, got -1"):
        options.run_config("cgan", [class_dir], **{**BASE, "d_channels": -1})


def test_texture_settings_are_checked_against_the_textures(tmp_path):
    tex = make_texture(tmp_path / "t.png", size=96)
    for over, msg in (({"patch": 0}, "Patch must be between 32"), ({"patch": 1024}, "Patch must be between 32"),
                      ({"depth": 9}, "Depth must be between 1 and 7")):
        with pytest.raises(ConfigError, match=msg):
            options.run_config("sgan", [tex], **over)
    with pytest.raises(DatasetError, match="No usable texture image.*at least 128 px"):
        options.run_config("sgan", [tex], patch=128)  # 96 px: smaller than the patch
    assert options.run_config("sgan", [tex], patch=64, depth=3).train.patch == 64
    with pytest.raises(DatasetError, match="does not exist"):
        options.run_config("cgan", [str(tmp_path / "nowhere")])


def test_train_for_minutes_sets_a_time_budget_without_a_step_limit(class_dir):
    timed = options.run_config("cgan", [class_dir], **{**BASE, "steps": None, "minutes": 10})
    assert timed.train.minutes == 10 and timed.train.steps == NO_STEP_LIMIT and timed.model.arch == "upconv"
    stepped = options.run_config("cgan", [class_dir], **{**BASE, "minutes": 0})
    assert stepped.train.minutes == 0 and stepped.train.steps == 10
    ref = options.run_config("cgan", [class_dir], recipe="reference", **BASE)
    assert ref.model.arch == "dcgan" and ref.train.loss == "wgan-gp"


def test_unreadable_files_are_never_counted_and_check_and_start_agree(tmp_path, capsys):
    """The verdict the studio's Check data shows is the one Start and the command line give."""
    root = tmp_path / "data"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for name, (data, _) in list(BAD_FILES.items())[:3]:
            (root / c / name).write_bytes(data)
    ws = Workspace(tmp_path / "ws")
    rep = ws.check_data("cgan", str(root), batch=4)
    assert rep.n_images == 0 and not rep.ok and "None of the 6 image files" in rep.markdown()
    assert "0 classes, 0 images" in rep.markdown() and len(rep.skipped) == 6
    with pytest.raises(DatasetError, match="None of the 6 image files"):
        ws.run_config("cgan", str(root), batch=4)
    assert cli(["check", str(root)]) == 2 and "None of the 6 image files" in capsys.readouterr().out
    for i in range(3):
        (root / "a" / f"good{i}.png").write_bytes(good_png(seed=i))
    rep = ws.check_data("cgan", str(root), batch=4)
    assert rep.n_images == 3 and "Batch (4) is larger than the dataset (3 images)" in rep.markdown()
    assert "One class only" in rep.markdown()
    with pytest.raises(DatasetError, match=r"Batch \(4\) is larger than the dataset \(3 images\)"):
        ws.run_config("cgan", str(root), batch=4)
    assert ws.check_data("cgan", str(root), batch=2).ok and ws.run_config("cgan", str(root), batch=2)
    assert cli(["check", str(root), "--batch", "2"]) == 0 and "1 classes, 3 images" in capsys.readouterr().out


def test_small_textures_are_refused_by_check_and_start_alike(tmp_path, capsys):
    folder = tmp_path / "tex"
    folder.mkdir()
    make_texture(folder / "small.png", size=64)
    ws = Workspace(tmp_path / "ws")
    rep = ws.check_data("sgan", str(folder), patch=128)
    assert not rep.ok and "smaller than the 128px training patch" in rep.markdown()
    with pytest.raises(DatasetError, match="No usable texture image"):
        ws.run_config("sgan", str(folder), patch=128)
    assert cli(["check", str(folder), "--texture"]) == 2 and "smaller than the 128px" in capsys.readouterr().out
    assert ws.check_data("sgan", str(folder), patch=64).ok and cli(["check", str(folder), "--texture",
                                                                     "--patch", "64"]) == 0


def test_resume_limits_from_a_form():
    assert options.resume_limits(0, 0) == (None, None) and options.resume_limits("", None) == (None, None)
    assert options.resume_limits(500, 10) == (500, 10.0)
    with pytest.raises(ConfigError, match="New total steps must be a whole number, got 2.5"):
        options.resume_limits(2.5, 0)
    with pytest.raises(ConfigError, match="Add time \\(minutes\\) must be between 0"):
        options.resume_limits(0, -1)


def test_a_run_that_would_not_fit_in_memory_is_refused_with_a_batch_that_does(class_dir, monkeypatch):
    from gan_core import memory

    cfg = options.run_config("cgan", [class_dir], check=False, resolution=64, batch=32)
    per_image, fixed = memory.per_image_and_fixed(cfg)
    assert per_image > 0 and fixed > 0
    bigger = options.run_config("cgan", [class_dir], check=False, resolution=128, batch=32)
    assert memory.per_image_and_fixed(bigger)[0] > 3 * per_image  # 4x the pixels
    room = int((fixed + 10.5 * per_image) / memory.SAFETY)  # room for a batch of 10
    monkeypatch.setattr(memory, "available_bytes", lambda: room)
    monkeypatch.setattr(memory.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="use a batch of at most 10"):
        options.run_config("cgan", [class_dir], resolution=64, batch=32)
    assert options.run_config("cgan", [class_dir], resolution=64, batch=8).train.batch == 8
