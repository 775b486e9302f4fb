"""The CUDA path end to end, in one short run (about 5 minutes on one GPU): prints figures.

On a machine with a CUDA GPU:
  1. trains the conditional model (demo classes) for --minutes with the default (studio) recipe and
     precision (auto: fp32 on a GPU), and reports steps, images/s and the quality gauge;
  2. compares one training step's speed in fp32 and in bf16 autocast on the same model;
  3. resumes that run for a little more time, and draws a sample sheet (finite, in range);
  4. trains the texture model (demo brick photo) for --minutes, then renders an 8192 x 8192 tileable
     texture on the GPU (time, peak GPU memory, seam ratio);
  5. runs `torchrun --nproc_per_node=1 -m gan_core train ...` with NCCL for a few steps.
Every step prints PASS or FAIL; the exit status is the number of failures.

    python bench/gpu_check.py                  # needs a CUDA GPU
    python bench/gpu_check.py --out DIR        # also writes sample sheets and a texture preview
On a machine without CUDA it says so and exits 0 after checking that it can plan the run (--dry).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine

import numpy as np
import torch

from gan_core import checkpoint as ckpt
from gan_core.config import NO_STEP_LIMIT, CGANConfig, RunConfig, SGANConfig, TrainConfig, recipe_model
from gan_core.sampling import class_grid, save_png
from gan_core.metrics import seam_ratio
from gan_core.runs import read_quality
from gan_core.train import Trainer, resume, train

FAILS: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f": {detail}" if detail else ""), flush=True)
    if not ok:
        FAILS.append(name)


def cgan_config(minutes: float, precision: str = "auto") -> RunConfig:
    t = TrainConfig.recipe("studio", "cgan", steps=NO_STEP_LIMIT, minutes=minutes, precision=precision,
                           batch=64, quality_every=200)
    return RunConfig("cgan", CGANConfig(**recipe_model("studio", "cgan")), t,
                     data=[str(REPO / "assets/demo/classes")])


def step_speed(precision: str, device: torch.device, tmp: Path, steps: int = 30) -> float:
    cfg = cgan_config(1, precision)
    cfg.validate(require_names=False)
    (tmp / f"speed_{precision}").mkdir()
    loop = Trainer(cfg, tmp / f"speed_{precision}", device)
    for _ in range(5):
        loop.train_step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        loop.train_step()
    torch.cuda.synchronize()
    return steps * cfg.train.batch / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=1.0, help="training time per model (default %(default)s)")
    p.add_argument("--out", default=None, help="folder for sample sheets and a texture preview")
    p.add_argument("--dry", action="store_true", help="only build the configurations (works without a GPU)")
    a = p.parse_args(argv)
    print(f"machine: {machine()}")
    for cfg in (cgan_config(a.minutes),):
        cfg.validate(require_names=False)
    if a.dry or not torch.cuda.is_available():
        print("no CUDA GPU here: configurations checked, nothing trained" if not a.dry else "dry run: configurations checked")
        return 0
    dev = torch.device("cuda")
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}", flush=True)
    out = Path(a.out) if a.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))

    # 1. conditional model for a time budget
    run = tmp / "cgan"
    t0 = time.perf_counter()
    res = train(cgan_config(a.minutes), run, device="cuda")
    wall = time.perf_counter() - t0
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    q = read_quality(run)
    ips = stats[-1]["img_per_s"] if stats else 0
    check("cgan trains for its time budget", not res.stopped and res.step > 0 and wall < a.minutes * 60 + 60,
          f"{res.step} steps in {wall:.0f} s, {ips:.0f} images/s (batch 64)")
    if q:
        check("cgan quality gauge", q[-1]["swd"] < q[0]["swd"],
              f"SWD {q[0]['swd']:.0f} untrained -> {q[-1]['swd']:.0f}, floor {q[-1].get('swd_floor', float('nan')):.0f}, "
              f"grid {q[-1]['grid']:.2f} (max {q[-1]['grid_max']:.1f})")

    # 2. fp32 against bf16 autocast, same model, same batch
    try:
        f32, b16 = step_speed("fp32", dev, tmp), step_speed("bf16", dev, tmp)
        check("precision speeds", f32 > 0 and b16 > 0, f"fp32 {f32:.0f} images/s, bf16 {b16:.0f} images/s")
    except Exception as e:  # report and go on
        check("precision speeds", False, f"{type(e).__name__}: {e}")

    # 3. resume and sample
    before = res.step
    res2 = resume(run, minutes=0.2, device="cuda")
    check("cgan resumes on the GPU", res2.step > before, f"step {before} -> {res2.step}")
    G, cfg = ckpt.load_generator(run)
    G.to(dev)
    img = class_grid(G, cfg.model.class_names, 8)
    check("cgan sample sheet", img.std() > 5 and np.isfinite(img).all(), f"{img.shape[1]}x{img.shape[0]} px, pixel std {img.std():.1f}")
    if out:
        save_png(out / "gpu_cgan_samples.png", img)

    # 4. texture model, then an 8192 px tileable texture
    trun = tmp / "sgan"
    tt = TrainConfig.recipe("studio", "sgan", steps=NO_STEP_LIMIT, minutes=a.minutes, quality_every=200)
    tcfg = RunConfig("sgan", SGANConfig(**recipe_model("studio", "sgan")), tt,
                     data=[str(REPO / "assets/demo/textures/brick.png")])
    t0 = time.perf_counter()
    tres = train(tcfg, trun, device="cuda")
    check("sgan trains for its time budget", tres.step > 0, f"{tres.step} steps in {time.perf_counter() - t0:.0f} s")
    from gan_core.texture import generate_texture
    G, _ = ckpt.load_generator(trun)
    G.to(dev)
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    tex = generate_texture(G, 8192, 8192, seed=1, tileable=True)
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30
    sr = seam_ratio(tex, G.cfg.scale)
    check("8192 px tileable texture", tex.shape == (8192, 8192, 3) and 0.5 < sr < 1.5,
          f"{secs:.1f} s, peak GPU memory {peak:.2f} GiB, seam ratio {sr:.3f}")
    if out:
        from PIL import Image
        save_png(out / "gpu_texture_1024crop.png", tex[:1024, :1024].copy())
        save_png(out / "gpu_texture_overview.png", np.asarray(Image.fromarray(tex).resize((1024, 1024), Image.Resampling.BOX)))

    # 5. torchrun with NCCL, one process
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "-m", "gan_core", "train", "cgan",
           str(REPO / "assets/demo/classes"), "--out", str(tmp / "ddp"), "--steps", "20", "--batch", "32",
           "--device", "cuda"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    ok = r.returncode == 0 and ckpt.checkpoint_dirs(tmp / "ddp") and ckpt.checkpoint_dirs(tmp / "ddp")[0].name == "step_00000020"
    check("torchrun (NCCL, 1 GPU)", bool(ok), f"exit {r.returncode} in {time.perf_counter() - t0:.0f} s"
          + ("" if ok else f"; {r.stderr.strip()[-600:]}"))
    print(f"\n{len(FAILS)} failed" + (f": {', '.join(FAILS)}" if FAILS else ""))
    return len(FAILS)


if __name__ == "__main__":
    sys.exit(main())
