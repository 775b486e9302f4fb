"""Shared set-up for the studio tests: tiny models and a launched app on a free port."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_core.config import CGANConfig, RunConfig, TrainConfig
from gan_core.nets import build_generator
from gan_core.train import train
from tests.conftest import make_class_folder, make_texture, tiny_sgan


def make_model_folder(folder: Path, class_names=("blue", "green", "red")) -> Path:
    """A ready model folder (config.json + G_ema.safetensors), like a shipped demo model.

    The weights are random and large, so every class visibly changes the picture (a model
    trained for a few steps hardly depends on its class yet).
    """
    from safetensors.torch import save_file

    cfg = RunConfig("cgan", CGANConfig(resolution=32, nz=8, embed_dim=4, g_channels=4, d_channels=4,
                                       class_names=list(class_names)), TrainConfig())
    torch.manual_seed(0)
    G = build_generator(cfg)
    with torch.no_grad():
        for p in G.parameters():
            p.normal_(0.0, 0.5)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(cfg.to_json())
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(folder / "G_ema.safetensors"))
    return folder


def make_class_zip(path: Path, tmp: Path) -> Path:
    src = Path(make_class_folder(tmp / "zipsrc", n_per_class=3))
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(src.rglob("*.png")):
            z.write(f, f"pictures/{f.relative_to(src)}")
    return path


def studio_env(root: Path) -> dict:
    """Data, a demo model folder and a tiny trained texture run inside a fresh workspace."""
    data = make_class_folder(root / "data")
    (root / "data" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    (root / "data" / "empty").mkdir()
    tex = make_texture(root / "stripes.png")
    ws = root / "ws"
    models = root / "models"
    make_model_folder(models / "demo-colours")
    train(tiny_sgan([tex], steps=2), ws / "runs" / "stripes")
    return {"root": root, "data": data, "texture": tex, "ws": ws, "models": models,
            "demo_model": str(models / "demo-colours"), "texture_run": str(ws / "runs" / "stripes")}


def launch(env: dict, **kw):
    import studio

    jobs = studio.JobManager()
    demo = studio.build_app(env["ws"], models_dir=env["models"], jobs=jobs, **kw)
    port = studio.free_port()
    studio.launch_app(demo, port=port, prevent_thread_lock=True, quiet=True)
    return demo, jobs, f"http://127.0.0.1:{port}/"


def shutdown(demo, jobs) -> None:
    jobs.stop()
    jobs.wait(60)
    demo.close()


def read_image(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
