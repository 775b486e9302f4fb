"""Breeding, discovered directions, keyframe walks and their files (gan_core.breeding,
gan_core.directions, gan_core.walks, gan_core.media)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core import directions as D
from gan_core.breeding import Favourites, Lineage, Specimen, children, crossbreed, weights
from gan_core.checkpoint import load_generator
from gan_core.errors import ConfigError
from gan_core.media import Cancelled, read_frames, read_settings, save_video, settings_text, upscale
from gan_core.sampling import generate, noise, save_png
from gan_core.walks import Keyframe, StopFlags, export_walk, parse_keys, plan
from tests.helpers import make_model_folder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = make_model_folder(tmp_path_factory.mktemp("m") / "colours")
    G, cfg = load_generator(folder)
    return G, cfg.model.class_names, folder


def test_children_stay_near_the_parent_by_strength_and_are_repeatable(model):
    G, names, _ = model
    parent = Specimen.from_seed(5, G.cfg.nz, {names[0]: 1.0})
    near = children(parent, names, 8, strength=0.1, seed=1)
    far = children(parent, names, 8, strength=0.9, seed=1)
    dist = lambda kids: np.mean([np.linalg.norm(np.subtract(k.z, parent.z)) for k in kids])  # noqa: E731
    assert len(near) == 8 and dist(near) < dist(far) / 3
    assert [k.z for k in children(parent, names, 8, strength=0.1, seed=1)] == [k.z for k in near]
    assert all(k.blend == parent.blend for k in near)  # no class mutation unless asked
    mutated = children(parent, names, 8, strength=0.1, class_strength=0.6, seed=2)
    assert any(set(k.blend) != {names[0]} for k in mutated)
    assert all(abs(sum(k.blend.values()) - 1) < 0.02 for k in mutated)
    with pytest.raises(ConfigError, match="between 1 and 16"):
        children(parent, names, 17)
    with pytest.raises(ConfigError, match="Strength must be between 0 and 1"):
        children(parent, names, 4, strength=1.5)


def test_crossbreeds_lie_between_their_parents(model):
    G, names, _ = model
    a = Specimen.from_seed(1, G.cfg.nz, {names[0]: 1.0})
    b = Specimen.from_seed(2, G.cfg.nz, {names[2]: 1.0})
    kids = crossbreed(a, b, names, 6, seed=0)
    shares = [k.blend.get(names[2], 0) for k in kids]
    assert all(0.15 < s < 0.85 for s in shares) and shares == sorted(shares)
    za, zb = np.array(a.z), np.array(b.z)
    for k in kids:
        z = np.array(k.z)
        assert np.linalg.norm(z - za) < np.linalg.norm(zb - za) and np.linalg.norm(z - zb) < np.linalg.norm(zb - za)
    imgs = generate(G, torch.stack([k.latent() for k in kids]), weights(names, kids))
    assert imgs.shape[0] == 6 and (imgs[0] - imgs[-1]).abs().mean() > 0.01


def test_lineage_undo_redo_and_a_new_branch():
    lin = Lineage()
    s = lambda i: [Specimen([float(i)], {"a": 1.0}, f"s{i}")]  # noqa: E731
    with pytest.raises(ConfigError, match="Nothing to undo"):
        lin.undo()
    for i in range(3):
        lin.push(f"gen {i}", s(i))
    assert lin.current[0].z == [2.0] and lin.undo()[0].z == [1.0] and lin.undo()[0].z == [0.0]
    assert lin.redo()[0].z == [1.0] and lin.can_redo()
    lin.push("branch", s(9))  # a new generation after undo drops the undone one
    assert not lin.can_redo() and [st["what"] for st in lin.steps] == ["gen 0", "gen 1", "branch"]
    again = Lineage.from_dict(json.loads(json.dumps(lin.to_dict())))
    assert again.current[0].z == [9.0] and again.labels()[-1].startswith("> ")


def test_favourites_survive_a_new_instance_and_skip_damaged_entries(model, tmp_path):
    G, names, _ = model
    sp = Specimen.from_seed(3, G.cfg.nz, {names[1]: 1.0})
    img = np.full((8, 8, 3), 40, np.uint8)
    j = Favourites(tmp_path / "fav").add("demo", sp, img, {"truncation": 0.7})
    (tmp_path / "fav" / "broken.json").write_text("{not json")
    (tmp_path / "fav" / "broken.png").write_bytes(b"x")
    entries = Favourites(tmp_path / "fav").entries()  # as after a restart
    assert len(entries) == 1 and entries[0][0] == j.with_suffix(".png")
    png, rec = entries[0]
    assert rec["model"] == "demo" and Specimen.from_dict(rec["specimen"]).z == pytest.approx(sp.z, abs=1e-5)
    assert read_settings(png)["specimen"]["label"] == "seed 3"
    assert not list((tmp_path / "fav").glob("*.tmp"))
    Favourites(tmp_path / "fav").remove(png)
    assert Favourites(tmp_path / "fav").entries() == [] and (tmp_path / "fav" / "broken.json").exists()


def test_directions_are_orthogonal_cached_and_change_the_images(model, tmp_path):
    G, names, folder = model
    d = D.directions(G, folder, tmp_path / "cache", k=5)
    assert d.shape == (5, G.cfg.nz) and torch.allclose(d @ d.T, torch.eye(5), atol=1e-4)
    cached = list((tmp_path / "cache").glob("directions-*.json"))
    assert len(cached) == 1 and np.allclose(json.loads(cached[0].read_text())["directions"], d.numpy(), atol=1e-6)
    D._MEMORY.clear()
    assert torch.allclose(D.directions(G, folder, tmp_path / "cache", k=5), d)  # read back from the file
    _, strength = D.factorise(G, 5)
    assert (strength[:-1] >= strength[1:]).all()
    z = noise(list(range(6)), G.cfg.nz)
    w = torch.zeros(1, len(names))
    w[0, 0] = 1
    top = D.effects(G, w, d[:3], z, step=1.0)["per_unit_step"]
    r = torch.randn(3, G.cfg.nz, generator=torch.Generator().manual_seed(0))
    rand = D.effects(G, w, r / r.norm(dim=1, keepdim=True), z, step=1.0)["per_unit_step"]
    assert np.mean(top) > np.mean(rand)  # the strongest directions move the picture more than random ones
    moved = D.offset(z, d, {0: 2.0})
    assert torch.allclose((moved - z) @ d[0], torch.full((6,), 2.0), atol=1e-4)
    with pytest.raises(ConfigError, match="Direction 9 does not exist"):
        D.offset(z, d, {8: 1.0})


def test_a_keyframe_loop_returns_to_its_first_frame_with_eased_segments(model):
    G, names, _ = model
    keys = [Keyframe(seed=0), Keyframe(seed=7, ease="linear"), Keyframe(seed=3, blend={names[2]: 1.0})]
    zs, ws = plan(keys, G.cfg.nz, names, {names[0]: 1.0}, 4)
    assert zs.shape == (13, G.cfg.nz) and torch.equal(zs[0], zs[-1]) and torch.equal(ws[0], ws[-1])
    assert torch.allclose(zs[4], noise([7], G.cfg.nz)[0]) and torch.allclose(zs[8], noise([3], G.cfg.nz)[0])
    assert ws[8].argmax() == 2
    ratio = lambda i: float((zs[i + 1] - zs[i]).norm() / (zs[i + 2] - zs[i + 1]).norm())  # noqa: E731
    assert ratio(0) < 0.5 and ratio(4) > 0.8  # eased: slow leaving key 0; linear from key 1: even steps
    assert [k.seed for k in parse_keys("0, 7,3,9")] == [0, 7, 3, 9]
    assert parse_keys("2:red=0.5+blue")[0].blend == {"red": 0.5, "blue": 1.0}
    for bad, words in (("a,b", "whole number"), ("1", "2 to 64 keyframes")):
        with pytest.raises(ConfigError, match=words):
            plan(parse_keys(bad), G.cfg.nz, names, {names[0]: 1.0}, 4)


def test_a_walk_is_written_as_mp4_gif_and_webp_with_progress_and_cancel(model, tmp_path):
    G, names, _ = model
    keys = parse_keys("0,7,3,9")
    seen = []
    out, n = export_walk(G, names, keys, tmp_path / "walk.mp4", blend={names[0]: 1.0}, frames_per_key=6, fps=12,
                         scale=2, on_progress=lambda stage, f: seen.append((stage, f)))
    assert n == 25 and seen[-1] == ("writing", 1.0) and ("frames", 1.0) in seen
    frames = read_frames(out)
    assert len(frames) == 25 and frames[0].shape == (64, 64, 3)  # 32 px at 2x
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() < 2  # the loop closes (H.264 is lossy)
    assert np.abs(frames[0].astype(int) - frames[12]).mean() > 5
    for suffix in (".gif", ".webp"):
        p, n = export_walk(G, names, keys, tmp_path / f"walk{suffix}", blend={names[0]: 1.0}, frames_per_key=3)
        with Image.open(p) as im:
            assert im.n_frames == n == 12 and im.size == (128, 128)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        export_walk(G, names, keys, tmp_path / "stopped.mp4", blend={names[0]: 1.0}, frames_per_key=20,
                    should_stop=stop)
    assert not list(tmp_path.glob("stopped*")) and not list(tmp_path.glob(".stopped*"))
    with pytest.raises(ConfigError, match=".mp4, .gif or .webp"):
        export_walk(G, names, keys, tmp_path / "walk.avi", blend={names[0]: 1.0})


def test_cancel_stops_only_its_own_sessions_walk_and_a_new_export_starts_afresh(model, tmp_path):
    G, names, _ = model
    keys = parse_keys("0,7")
    flags = StopFlags()
    mine, theirs = flags.start("mine"), flags.start("theirs")
    flags.stop("mine")
    assert mine() and not theirs()
    with pytest.raises(Cancelled):
        export_walk(G, names, keys, tmp_path / "mine.gif", blend={names[0]: 1.0}, frames_per_key=3, should_stop=mine)
    p, n = export_walk(G, names, keys, tmp_path / "theirs.gif", blend={names[0]: 1.0}, frames_per_key=3,
                       should_stop=theirs)
    assert p.exists() and n == 6
    again = flags.start("mine")  # the next export of the cancelled session is not cancelled from the start
    assert not again() and not mine()


def test_upscale_and_settings_read_back(tmp_path):
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = upscale(img, 4)
    assert big.shape == (8, 12, 3) and (big[::4, ::4] == img).all()
    assert upscale(img, 3, "lanczos").shape == (6, 9, 3)
    with pytest.raises(ConfigError, match="from 1 to 8"):
        upscale(img, 9)
    save_png(tmp_path / "a.png", big, settings_text({"model": "demo", "truncation": 0.5, "directions": {"0": 1.5}}))
    assert read_settings(tmp_path / "a.png") == {"model": "demo", "truncation": 0.5, "directions": {"0": 1.5}}
    Image.fromarray(img).save(tmp_path / "plain.png")
    with pytest.raises(ConfigError, match="holds no GAN Studio settings"):
        read_settings(tmp_path / "plain.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="not a readable image"):
        read_settings(tmp_path / "junk.png")
    with pytest.raises(ConfigError, match="Frames per second"):
        save_video([img], tmp_path / "x.mp4", fps=0)
