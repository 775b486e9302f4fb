"""Test helpers: damaged and hand-made image files, hostile pickles, model folders made on the spot,
and a launched studio on a free port."""
from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_core import checkpoint as ckpt
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
    from gan_core.jobs import Jobs
    from ui import build_app, launch_app

    jobs = Jobs()
    demo = build_app(env["ws"], models_dir=env["models"], jobs=jobs, **kw)
    port = studio.free_port()
    launch_app(demo, port=port, prevent_thread_lock=True, quiet=True)
    return demo, jobs, f"http://127.0.0.1:{port}/"


def shutdown(demo, jobs) -> None:
    jobs.stop()
    jobs.wait(60)
    demo.close()


def read_image(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------------- image files, good and bad
def png_bytes(w: int, h: int, rows: bytes = b"", ctype: int = 2, depth: int = 8) -> bytes:
    """A PNG built by hand: any declared size, any (possibly too short) pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def good_png(size=(40, 40), seed=0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def good_jpeg(size=(40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def bad_crc_png() -> bytes:
    """Pixels intact, but the IDAT checksum is wrong (a flipped bit on disk)."""
    data = bytearray(good_png())
    i = data.index(b"IDAT")
    n = struct.unpack(">I", data[i - 4:i])[0]
    data[i + 4 + n] ^= 0xFF
    return bytes(data)


def tiny(w, h) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


BAD_FILES = {  # name -> (bytes, words the reason must contain)
    "zero-byte.png": (b"", "cannot be read"),
    "truncated.png": (good_png()[:300], "cannot be read"),
    "truncated.jpg": (good_jpeg()[:200], "cannot be read"),
    "random-bytes.png": (np.random.default_rng(1).bytes(2000), "cannot be read"),
    "text.jpg": (b"this is a shopping list, not a photo\n" * 20, "cannot be read"),
    "bad-crc.png": (bad_crc_png(), "checksum"),
    "one-pixel.png": (tiny(1, 1), "only 1x1 pixels"),
    "three-by-seven.png": (tiny(3, 7), "only 3x7 pixels"),
    "bomb.png": (png_bytes(30000, 30000), "pixels"),
}


# ---------------------------------------------------------------------- hostile and damaged model files
class Payload:
    """What a hostile pickle does when it is loaded: create the sentinel file."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def pickles(sentinel) -> dict[str, bytes]:
    """A payload in every pickle protocol, and as torch.save writes it (zip and legacy)."""
    out = {f"protocol{p}": pickle.dumps({"weight": Payload(sentinel)}, protocol=p) for p in range(6)}
    for name, zip_format in (("torch.save", True), ("torch.save-legacy", False)):
        path = Path(str(sentinel) + ".tmp")
        torch.save({"weight": Payload(sentinel)}, path, _use_new_zipfile_serialization=zip_format)
        out[name] = path.read_bytes()
        path.unlink()
    return out


def rewrite_weights(folder: Path, change) -> None:
    from safetensors.torch import save_file
    t = dict(ckpt.read_safetensors(folder / "G_ema.safetensors"))
    change(t)
    save_file({k: v.contiguous() for k, v in t.items()}, str(folder / "G_ema.safetensors"))


def cut_weights(folder, n):
    p = folder / "G_ema.safetensors"
    p.write_bytes(p.read_bytes()[:n] if n >= 0 else p.read_bytes()[:p.stat().st_size + n])


def patch_config(folder, **over):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"].update(over)
    (folder / "config.json").write_text(json.dumps(cfg))
