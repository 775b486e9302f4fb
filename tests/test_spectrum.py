from pathlib import Path

import pytest
import torch

from gan_core import checkpoint as ckpt
from gan_core import spectrum
from gan_core.errors import CheckpointError
from gan_core.metrics import grid_artifacts
from gan_core.sampling import class_weights, generate
from gan_core.train import train

from tests.conftest import tiny_cgan


def _photos(n, seed):
    """Smooth random colour images (n, 3, 32, 32) with a little fine grain, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False)
    return (0.8 * x + 0.03 * torch.randn(n, 3, 32, 32, generator=g)).clamp(-1, 1)


def _with_grid(x):
    """What a generator's last stages leave: a faint 2 px checkerboard and lines 4 px apart."""
    out = x.clone()
    out[..., ::2, ::2] += 0.04
    out[..., :, ::4] -= 0.03
    return out.clamp(-1, 1)


def test_the_equaliser_takes_a_fine_grid_away_and_leaves_everything_else_as_it_was():
    real, held = _photos(128, 0), _photos(128, 1)
    fit_fake, fake = _with_grid(_photos(128, 2)), _with_grid(_photos(128, 3))
    gains = spectrum.fit_gains(spectrum.channel_power(fit_fake), spectrum.real_power(real, mirror=False))
    assert gains.shape == (3, 32, 32) and gains.min() >= spectrum.MIN_GAIN and gains.max() <= 1
    out = spectrum.equalise(fake, gains[None])
    before, after = grid_artifacts(fake, held), grid_artifacts(out, held)
    assert before["max"] > 20 and after["max"] < 3 and after["mean"] < 1.5
    # every frequency coarser than the grid's 4 px period (layout, colour, shapes) is untouched
    f = torch.fft.fftfreq(32).abs()
    coarse = torch.maximum(f[:, None], f[None, :]) < 1 / 4
    diff = torch.fft.fft2(out - fake).abs()
    assert diff[..., coarse].max() < 1e-3 * torch.fft.fft2(fake).abs()[..., coarse].max()
    # images without a grid stay as they are: the gains are 1 where the power is like the photos'
    clean = spectrum.fit_gains(spectrum.channel_power(_photos(128, 4)), spectrum.real_power(real, mirror=False))
    assert (spectrum.equalise(held, clean[None]) - held).abs().max() < 0.02


def _mortar(x):
    """Dark horizontal lines 8 px apart: the regular structure of a brick wall's photos."""
    out = x.clone()
    out[..., ::8, :] -= 0.4
    return out.clamp(-1, 1)


def _crosshatch(x):
    """Faint stripes along both diagonals (1/16 cycle per pixel along x and y): a coarse pattern a
    generator repeats."""
    i = torch.arange(32.0)
    yy, xx = i[:, None], i[None, :]
    hatch = torch.cos(2 * torch.pi * (xx + yy) / 16) + torch.cos(2 * torch.pi * (xx - yy) / 16)
    return (x + 0.1 * hatch).clamp(-1, 1)


def test_the_equaliser_takes_a_coarse_crosshatch_away_and_keeps_the_lines_the_photos_have():
    real, held = _mortar(_photos(128, 0)), _mortar(_photos(128, 1))
    fit_fake, fake = _crosshatch(_mortar(_photos(128, 2))), _crosshatch(_mortar(_photos(128, 3)))
    gains = spectrum.fit_gains(spectrum.channel_power(fit_fake), spectrum.real_power(real, mirror=False))
    out = spectrum.equalise(fake, gains[None])
    before, after = grid_artifacts(fake, held), grid_artifacts(out, held)
    assert before["at"] == "diagonal 1/16" and before["max"] > 4
    assert after["ratios"]["diagonal 1/16"] < 2 and after["max"] < 3
    # the mortar lines (1/8 cycle per pixel down the picture) keep their strength
    p_before, p_after = spectrum.channel_power(fake), spectrum.channel_power(out)
    assert (p_after[:, 4, 0] / p_before[:, 4, 0]).min() > 0.95 and after["ratios"]["y 1/8"] > 0.8


def test_a_young_runs_fit_leaves_coarse_frequencies_alone_and_still_takes_the_fine_grid():
    real, held = _mortar(_photos(128, 0)), _mortar(_photos(128, 1))
    fit_fake, fake = (_with_grid(_crosshatch(_mortar(_photos(128, s)))) for s in (2, 3))
    fp, rp = spectrum.channel_power(fit_fake), spectrum.real_power(real, mirror=False)
    young = spectrum.equalise(fake, spectrum.fit_gains(fp, rp, coarse=0.0)[None])
    grown = spectrum.equalise(fake, spectrum.fit_gains(fp, rp)[None])
    g_fake, g_young, g_grown = (grid_artifacts(x, held)["ratios"] for x in (fake, young, grown))
    assert g_young["diagonal 1/16"] > 0.9 * g_fake["diagonal 1/16"] > 3  # the coarse pattern kept
    assert g_grown["diagonal 1/16"] < 2
    assert g_young["diagonal 1/2"] < 3 < 20 < g_fake["diagonal 1/2"]  # the fine checkerboard taken
    assert [spectrum.coarse_reach(k) for k in (0, spectrum.YOUNG_KIMG, 20, spectrum.GROWN_KIMG, 500)] == \
        [0.0, 0.0, pytest.approx(0.5), 1.0, 1.0]


def test_mirrored_training_compares_with_the_spectrum_of_both_flips():
    x = _with_grid(_photos(8, 5))
    x[..., :, ::4] -= 0.1  # lines: a spectrum that is not left-right symmetric on its own
    p = spectrum.channel_power(x)
    both = (p + spectrum.channel_power(x.flip(-1))) / 2
    assert torch.allclose(spectrum.mirrored(p), both, rtol=1e-4, atol=1e-4)


def test_a_fit_draws_fewer_images_per_class_when_there_are_many_classes():
    assert spectrum.fit_count(5) == spectrum.FIT_PER_CLASS
    many = spectrum.fit_count(20)
    assert spectrum.FIT_MIN < many < spectrum.FIT_PER_CLASS and 20 * many <= spectrum.FIT_TOTAL
    assert spectrum.fit_count(1000) == spectrum.FIT_MIN


def test_a_blend_of_classes_is_filtered_by_the_same_blend_of_their_gains():
    gains = torch.rand(3, 3, 8, 8) * 0.5 + 0.5
    w = torch.tensor([[0.3, 0.0, 0.7], [0.0, 1.0, 0.0]])
    b = spectrum.blend(gains, w)
    assert torch.allclose(b[0], 0.3 * gains[0] + 0.7 * gains[2]) and torch.allclose(b[1], gains[1])


def test_a_trained_model_carries_its_equaliser_and_sampling_applies_it(class_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_cgan(class_dir), run)
    G, cfg = ckpt.load_generator(run)
    raw_G, _ = ckpt.load_generator(run, equalise=False)
    assert G.spectral_gain.shape == (3, 3, 32, 32) and raw_G.spectral_gain is None
    assert G.spectral_gain.min() < 1  # an untrained generator is far from the photos' spectrum
    z = torch.randn(6, cfg.model.nz)
    w = class_weights(cfg.model.class_names, {"blue": 0.3, "red": 0.7})
    shown, raw = generate(G, z, w), generate(raw_G, z, w)
    assert torch.allclose(shown, spectrum.equalise(raw, spectrum.blend(G.spectral_gain, w)), atol=1e-5)
    assert (shown - raw).abs().max() > 1e-3
    # a notebook draws the same, and without the equaliser when asked
    from gan_core import notebook
    from gan_core.sampling import noise
    nb = notebook.model(str(run))
    z3, blue = noise([0, 1, 2], cfg.model.nz), class_weights(cfg.model.class_names, "blue")
    assert torch.allclose(nb.images("blue", 3), generate(G, z3, blue), atol=1e-6)
    assert torch.allclose(nb.images("blue", 3, equalise=False), generate(raw_G, z3, blue), atol=1e-6)
    # the gains are those of the checkpoint's own step: the best model and exports carry theirs
    d = ckpt.checkpoint_dirs(run)[0]
    assert torch.equal(ckpt.read_spectrum(d, cfg), G.spectral_gain)
    # the command line's sample uses it too, and --raw leaves it out (the PNG says which)
    import numpy as np
    from PIL import Image

    from gan_core.__main__ import main
    shots = {}
    for flag in ([], ["--raw"]):
        out = tmp_path / f"s{len(flag)}.png"
        assert main(["sample", str(run), "--n", "4", "--out", str(out), *flag]) == 0
        shots[bool(flag)] = Image.open(out)
    assert shots[False].info["equaliser"] == "on" and shots[True].info["equaliser"] == "off"
    assert np.abs(np.asarray(shots[False], dtype=int) - np.asarray(shots[True], dtype=int)).max() > 0


def test_a_damaged_equaliser_file_is_refused_with_what_to_do(class_dir, tmp_path):
    from safetensors.torch import save_file

    from gan_core.__main__ import main
    run = tmp_path / "run"
    train(tiny_cgan(class_dir), run)
    d = ckpt.checkpoint_dirs(run)[0]
    save_file({"gain": torch.full((2, 3, 32, 32), 0.5)}, str(d / spectrum.SPECTRUM_FILE))  # two classes, not three
    with pytest.raises(CheckpointError, match="Delete that file"):
        ckpt.load_generator(run)
    (d / spectrum.SPECTRUM_FILE).write_bytes(b"\x80\x04not safetensors")
    assert main(["sample", str(run), "--n", "2", "--out", str(tmp_path / "s.png")]) == 2
    (d / spectrum.SPECTRUM_FILE).unlink()  # without it the model draws unfiltered
    assert ckpt.load_generator(run)[0].spectral_gain is None


def test_the_gauge_reads_the_pictures_as_shown_and_keeps_the_raw_grid_beside(class_dir, tmp_path):
    import json
    run = tmp_path / "run"
    train(tiny_cgan(class_dir, quality_every=2, steps=4), run)
    recs = [json.loads(line) for line in (run / "quality.jsonl").read_text().splitlines()]
    assert "grid_raw" not in recs[0]  # step 0: measured before the first fit
    later = [r for r in recs if r["step"] > 0]
    assert later and all({"grid", "grid_raw", "grid_max", "grid_max_raw"} <= set(r) for r in later)


def test_a_model_saved_without_an_equaliser_gets_one_from_its_class_folder(class_dir, tmp_path, capsys):
    from gan_core.__main__ import main
    run = tmp_path / "run"
    train(tiny_cgan(class_dir), run)
    model = tmp_path / "model"
    assert main(["export", str(run), "--out", str(model)]) == 0
    (model / spectrum.SPECTRUM_FILE).unlink()
    assert ckpt.load_generator(model)[0].spectral_gain is None
    assert main(["equalise", str(model), "--data", class_dir]) == 0
    G, cfg = ckpt.load_generator(model)
    assert G.spectral_gain.shape == (3, 3, 32, 32) and G.spectral_gain.min() < 1
    # another class folder is refused, saying which classes the model needs
    other = tmp_path / "other"
    for name in ("cats", "dogs"):
        (other / name).mkdir(parents=True)
        for f in sorted((Path(class_dir) / "red").iterdir())[:3]:
            (other / name / f.name).write_bytes(f.read_bytes())
    capsys.readouterr()
    assert main(["equalise", str(model), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert "cats, dogs" in err and "blue, green, red" in err and "Traceback" not in err
    assert G.spectral_gain.shape == ckpt.load_generator(model)[0].spectral_gain.shape  # the fitted one is kept


def _recording_fits(monkeypatch):
    """Replace spectrum.fit_classes with one that records each fit: (images drawn per class, gains)."""
    fits, real_fit = [], spectrum.fit_classes

    def recording(draw, real_powers, coarse=1.0):
        counts = []

        def counted(c):
            x = draw(c)
            counts.append(len(x))
            return x
        gains = real_fit(counted, real_powers, coarse)
        fits.append((counts, gains.clone()))
        return gains
    monkeypatch.setattr(spectrum, "fit_classes", recording)
    return fits


def test_the_model_a_run_ends_with_and_its_best_get_the_larger_fit(tmp_path, monkeypatch):
    from tests.conftest import make_class_folder
    data = make_class_folder(tmp_path / "data", n_per_class=34)  # large enough to hold images back: RUN/best
    fits = _recording_fits(monkeypatch)
    run = tmp_path / "run"
    # gauge readings at steps 4 and 6 (step 4 writes RUN/best: a final fit there, which its checkpoint shares)
    train(tiny_cgan(data, steps=6, ckpt_every=2, quality_every=4, keep_checkpoints=3), run)
    small, big = spectrum.fit_count(3), spectrum.fit_count(3, final=True)
    assert big == spectrum.FINAL_TIMES * small
    cfg = ckpt.read_config(run)
    by_step = {int(d.name[5:]): ckpt.read_spectrum(d, cfg) for d in ckpt.checkpoint_dirs(run)}
    gains_of = lambda n: [g for counts, g in fits if counts == [n] * 3]  # noqa: E731
    assert any(torch.equal(by_step[2], g) for g in gains_of(small))  # along the way: the quick fit
    assert any(torch.equal(by_step[4], g) for g in gains_of(big))  # fitted as RUN/best was written at step 4
    assert torch.equal(by_step[6], fits[-1][1]) and fits[-1][0] == [big] * 3  # the end: the larger one
    best = ckpt.read_spectrum(run / "best", cfg)
    assert any(torch.equal(best, g) for g in gains_of(big))
    assert all(counts in ([small] * 3, [big] * 3) for counts, _ in fits)


def test_a_run_stopped_at_a_checkpoint_gets_the_larger_fit_beside_its_weights(class_dir, tmp_path, monkeypatch):
    fits = _recording_fits(monkeypatch)
    run = tmp_path / "run"
    calls = {"n": 0}

    def stop():  # asked before each step: stops after step 2, which wrote a checkpoint
        calls["n"] += 1
        return calls["n"] > 2
    result = train(tiny_cgan(class_dir, steps=6, ckpt_every=2), run, should_stop=stop)
    assert result.stopped and result.step == 2
    last = ckpt.checkpoint_dirs(run)[0]
    assert int(last.name[5:]) == 2 and fits[-1][0] == [spectrum.fit_count(3, final=True)] * 3
    assert torch.equal(ckpt.read_spectrum(last, ckpt.read_config(run)), fits[-1][1])
    assert fits[-2][0] == [spectrum.fit_count(3)] * 3  # the checkpoint itself was written with the quick fit
    G, _ = ckpt.load_generator(run)
    assert torch.equal(G.spectral_gain, fits[-1][1])
