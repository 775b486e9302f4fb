"""The exploring commands: breed, directions, and animate's keyframe walks (on the shipped demo
model, found by its name)."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from gan_core.__main__ import main
from gan_core.media import read_frames, read_settings


def test_breed_then_breed_again_from_the_written_png(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["breed", "demo-classes", "--parent", "7", "--children", "4", "--strength", "0.3",
                 "--scale", "2", "--out", "kids.png"]) == 0
    s = read_settings(tmp_path / "kids.png")
    assert s["model"] == "demo-classes" and [x["label"] for x in s["specimens"]] == \
        ["seed 7", "child 1", "child 2", "child 3", "child 4"]
    with Image.open(tmp_path / "kids.png") as im:
        assert im.width > 5 * 64 * 2  # five pictures at 2x, captioned
    assert main(["breed", "--from", "kids.png", "--pick", "3", "--children", "2", "--out", "grand.png"]) == 0
    g = read_settings(tmp_path / "grand.png")["specimens"]
    assert g[0]["z"] == s["specimens"][2]["z"] and len(g) == 3
    assert main(["breed", "--parent", "1", "--cross", "2", "--children", "3", "--out", "cross.png"]) == 0
    assert "3 crossbreeds" in capsys.readouterr().out
    assert main(["breed", "--from", "kids.png", "--pick", "9", "--out", "x.png"]) == 2
    assert "holds 5 images; --pick one from 1 to 5" in capsys.readouterr().err
    assert main(["breed", "no-such-model", "--out", "x.png"]) == 2
    assert "There is no model or run named 'no-such-model'" in capsys.readouterr().err


def test_directions_picture_and_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["directions", "--k", "3", "--steps", "5", "--scale", "1", "--out", "d.png"]) == 0
    out = capsys.readouterr().out
    rows = [l.split() for l in out.splitlines() if l.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3"] and all(float(r[1]) > 0.5 for r in rows)
    assert list((tmp_path / "workspace" / "cache").glob("directions-*.json"))  # kept for next time
    img = np.asarray(Image.open(tmp_path / "d.png").convert("RGB"))
    assert img.shape[0] > 3 * 64 and img.shape[1] > 5 * 64


def test_animate_a_four_key_walk_as_mp4_and_gif(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["animate", "--keys", "0,7,3,9", "--frames-per-key", "4", "--scale", "2", "--out", "walk.mp4"]) == 0
    assert "17 frames, 4 keyframes" in capsys.readouterr().out
    frames = read_frames(tmp_path / "walk.mp4")
    assert len(frames) == 17 and frames[0].shape == (128, 128, 3)
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() < 3 < np.abs(frames[0].astype(int) - frames[8]).mean()
    assert main(["animate", "--keys", "0,7:grass", "--frames-per-key", "3", "--direction", "1=2",
                 "--out", "walk.gif"]) == 0
    with Image.open(tmp_path / "walk.gif") as im:
        assert im.n_frames == 6
    assert main(["animate", "--keys", "0,x", "--out", "w.mp4"]) == 2
    assert "A keyframe is a seed" in capsys.readouterr().err
    assert main(["animate", "--keys", "0,1", "--out", "w.avi"]) == 2
    assert main(["animate", "--n", "2", "--frames", "4", "--out", "loop.mp4"]) == 0  # the A -> B loop as MP4 too
    assert len(read_frames(tmp_path / "loop.mp4")) == 4


def test_the_exploring_commands_explain_themselves(capsys):
    for cmd, words in (("breed", "--strength"), ("directions", "factorisation"), ("animate", "--keys")):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0 and words in capsys.readouterr().out
