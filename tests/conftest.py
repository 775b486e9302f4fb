"""Shared fixtures: tiny datasets made on the fly and tiny model configs (seconds to train)."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core.config import CGANConfig, RunConfig, SGANConfig, TrainConfig

# Two threads per process; under pytest-xdist (`-n 2`) the workers share the cores instead.
torch.set_num_threads(max(1, 2 // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

# Temporary files of the tests, the web servers and clients they start (gradio's client leaves an
# empty folder per download) and their child processes go into one folder, removed at the end. Set
# before any test imports gradio, which reads GRADIO_TEMP_DIR once. A process started inside another
# test session (pytest-xdist's workers inherit its TMPDIR) makes its folder beside that session's
# rather than inside it: nested, the paths grew past what Chromium accepts for its socket.
_PREFIX = "gan-studio-tests-"
_parent = tempfile.gettempdir()
if os.path.basename(_parent).startswith(_PREFIX):
    _parent = os.path.dirname(_parent)
_TMP = tempfile.mkdtemp(prefix=_PREFIX, dir=_parent)
os.environ["TMPDIR"] = tempfile.tempdir = _TMP
os.environ["GRADIO_TEMP_DIR"] = os.path.join(_TMP, "web")
atexit.register(shutil.rmtree, _TMP, True)


COLORS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def make_class_folder(root, n_per_class: int = 6, size: int = 40, classes=COLORS) -> str:
    """Class folders of noisy solid-colour images: trivially separable by class."""
    rng = np.random.default_rng(0)
    for name, rgb in classes.items():
        d = root / name
        d.mkdir(parents=True)
        for i in range(n_per_class):
            arr = np.clip(np.array(rgb) + rng.normal(0, 12, (size, size + 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(d / f"img{i}.png")
    return str(root)


def make_texture(path, size: int = 96) -> str:
    """A stripy colour texture with some noise."""
    yy, xx = np.mgrid[:size, :size]
    base = (np.sin(xx / 3.0) * 0.5 + 0.5)[..., None] * np.array([200, 120, 40]) + 30
    arr = np.clip(base + np.random.default_rng(1).normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return str(path)


def tiny_cgan(data: str, **train) -> RunConfig:
    # no quality gauge unless a test asks for it (quality_every): it measures twice per run
    t = dict(steps=4, batch=4, log_every=1, sample_every=2, ckpt_every=2, seed=3, quality_every=0)
    t.update(train)
    return RunConfig("cgan", CGANConfig(resolution=32, nz=8, embed_dim=4, g_channels=4, d_channels=4),
                     TrainConfig(**t), data=[data])


def tiny_sgan(files: list[str], **train) -> RunConfig:
    t = dict(steps=4, batch=2, log_every=1, sample_every=2, ckpt_every=2, patch=32, max_side=96, seed=3,
             quality_every=0)
    t.update(train)
    return RunConfig("sgan", SGANConfig(depth=3, nz_local=3, nz_global=4, nz_periodic=2, source_dim=2,
                                        g_channels=4, d_channels=4), TrainConfig(**t), data=files)


@pytest.fixture
def class_dir(tmp_path):
    return make_class_folder(tmp_path / "data")


@pytest.fixture
def texture_files(tmp_path):
    a = make_texture(tmp_path / "stripes.png")
    arr = np.random.default_rng(2).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "noise.png")
    return [a, str(tmp_path / "noise.png")]
