"""The shipped demo models and data: loadable through the public API, small, and licensed."""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import numpy as np
import torch

from gan_core import checkpoint
from gan_core.sampling import class_weights, generate, noise
from gan_core.texture import generate_texture


REPO = Path(__file__).resolve().parent.parent
CGAN = REPO / "checkpoints" / "demo-classes"
SGAN = REPO / "checkpoints" / "demo-textures"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def test_conditional_demo_gives_varied_images_of_every_class():
    G, cfg = checkpoint.load_generator(CGAN)
    assert cfg.variant == "cgan" and len(cfg.model.class_names) >= 4
    z = noise(list(range(8)), cfg.model.nz)
    for name in cfg.model.class_names:
        x = generate(G, z, class_weights(cfg.model.class_names, name))
        assert x.shape == (8, 3, cfg.model.resolution, cfg.model.resolution)
        assert x.min() >= -1 and x.max() <= 1 and torch.isfinite(x).all()
        pairs = (x[:, None] - x[None]).abs().mean((2, 3, 4))[~torch.eye(8, dtype=torch.bool)]
        assert pairs.mean() > 0.05, f"seeds give the same {name} image"  # mean over the 56 ordered pairs
        assert pairs.min() > 0.01, f"two seeds give an identical {name} image"


def test_texture_demo_fuses_two_sources_and_tiles():
    G, cfg = checkpoint.load_generator(SGAN)
    assert cfg.variant == "sgan" and cfg.model.n_sources >= 2
    a = generate_texture(G, 256, 192, seed=1, tileable=True, source=0)
    b = generate_texture(G, 256, 192, seed=2, tileable=True, source=0)
    c = generate_texture(G, 256, 192, seed=1, tileable=True, source=1)
    assert a.shape == (192, 256, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b).mean() > 2 and np.abs(a.astype(int) - c).mean() > 2


def test_shipped_models_are_float16_safetensors_under_40_mib():
    from safetensors import safe_open
    total = 0
    for d, extra in ((CGAN, ["spectrum.safetensors"]), (SGAN, [])):  # the conditional one with its equaliser
        assert sorted(p.name for p in d.iterdir()) == ["G_ema.safetensors", "config.json", *extra]
        for name in ["G_ema.safetensors", *extra]:
            with safe_open(str(d / name), "pt") as f:
                assert all(f.get_slice(k).get_dtype() in ("F16", "I64") for k in f.keys())
        total += sum(p.stat().st_size for p in d.iterdir())
    assert total < 40 * 2**20
    G, cfg = checkpoint.load_generator(CGAN)
    assert G.spectral_gain.shape == (cfg.model.n_classes, 3, 64, 64) and G.spectral_gain.min() < 0.9


def test_every_shipped_image_and_model_is_in_the_licence_file():
    text = (REPO / "assets" / "LICENSES.md").read_text()
    patterns = re.findall(r"`([^`\s]+)`", text)
    shipped = [p for p in (REPO / "assets").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    shipped += [p for p in (REPO / "checkpoints").rglob("*") if p.is_file()]
    assert len(shipped) > 700
    def listed(p: Path) -> bool:
        rel = str(p.relative_to(REPO))  # patterns are written from the repository or from assets/
        names = [rel, rel.removeprefix("assets/")]
        return any(fnmatch.fnmatch(n, pat) for n in names for pat in patterns)

    unlisted = [str(p.relative_to(REPO)) for p in shipped if not listed(p)]
    assert not unlisted, f"not listed in assets/LICENSES.md: {unlisted[:5]}"
