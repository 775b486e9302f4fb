"""Texture speed: seconds and peak memory for large tileable textures from a spatial model.

Each size runs in a fresh Python process (so peak memory is that one texture's): the child loads
the model, records its resident memory, calls gan_core.texture.generate_texture(G, S, S,
tileable=True) and reports the seconds and its peak resident memory (VmHWM from
/proc/self/status: torch, the model and the uint8 image included). PNG encoding of the result is
not included.

Work per pixel: the generator's multiply-adds are counted from the model config (every
transposed convolution: input cells x in x out x k^2) and checked with torch's operator FLOP
formulas on a small one-pass canvas; the tiled renderer also recomputes each tile's margin, so
the work it actually executes is reported too, and divided by the time gives GFLOP/s, compared
with this machine's measured peak (a large fp32 torch.mm; bf16 too, slow without AVX512-BF16/AMX).

--model is a run or model folder (default checkpoints/demo-textures). If the default is missing,
an untrained generator of the default architecture fused from two sources is timed (speed and
memory do not depend on the weights) and the script says so.

--levers runs --lever-size in fresh processes with one change each: tile size (noise cells per
tile), one thread, contiguous weights (the layout before channels-last), fp32 where the studio draws
in bf16, torch.no_grad instead of inference_mode, torch.compile (compile
time reported), bf16 weights (at 1024 px: it is slow on CPUs without bf16 units).

    python bench/texture_speed.py                        # 1024, 4096, 8192
    python bench/texture_speed.py --sizes 1024 --levers --lever-size 2048
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, OtherLoad, command_line, load_average, machine, md_table, median

DEFAULT_MODEL = REPO / "checkpoints" / "demo-textures"
TARGET_S, TARGET_GIB = 30.0, 3.0


def vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def child(a) -> int:
    """One texture in this process; prints one JSON line."""
    import torch

    from gan_core import texture
    from gan_core.checkpoint import load_generator

    if a.threads:
        torch.set_num_threads(a.threads)
    G, cfg = load_generator(a.model)
    info: dict = {"threads": torch.get_num_threads()}
    lever = a.lever or ""
    if lever == "contiguous":  # models load with channels-last weights on the CPU: the layout before
        G.to(memory_format=torch.contiguous_format)
    precision = "fp32" if lever in ("fp32", "bf16") else "auto"  # "auto": as the studio and the CLI draw
    from gan_core.train import use_bf16
    info["bf16_autocast"] = use_bf16(precision, next(G.parameters()).device)
    if lever == "bf16":
        G.to(torch.bfloat16)
    if lever == "compile":
        G.net = torch.compile(G.net)
        n = a.tile or texture.TILE  # a one-tile canvas has the tile shape of every larger tileable canvas
        t0 = time.perf_counter()
        texture.render(G, texture.canvas_noise(G, n, n, 0, True), n * cfg.model.scale, n * cfg.model.scale, True,
                       tile=n)
        info["compile_s"] = time.perf_counter() - t0
    if lever == "no_grad":  # the renderer without its inference_mode decorator, under no_grad
        plain = texture.render.__wrapped__

        def render(*args, **kw):
            with torch.no_grad():
                return plain(*args, **kw)
    else:
        render = texture.render
    info["rss_before_mib"] = vm_kib("VmRSS") / 1024
    t0 = time.perf_counter()
    if a.tile or render is not texture.render:
        h, w, H, W = texture.canvas_cells(G, a.size, a.size, True)
        noise = texture.canvas_noise(G, h, w, 0, True)
        img = render(G, noise, H, W, True, tile=a.tile or texture.TILE, precision=precision)
    else:
        img = texture.generate_texture(G, a.size, a.size, seed=0, tileable=True, precision=precision)
    info["seconds"] = time.perf_counter() - t0
    info["shape"] = list(img.shape)
    info["vmhwm_mib"] = vm_kib("VmHWM") / 1024
    print(json.dumps(info), flush=True)
    return 0


def run_child(model: Path, size: int, **kw) -> dict:
    """Run one texture in a fresh process and return its JSON report."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--model", str(model), "--size", str(size)]
    for k in ("tile", "lever", "threads"):
        if kw.get(k):
            cmd += [f"--{k}", str(kw[k])]
    with OtherLoad() as ol:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"child failed ({' '.join(cmd)}):\n{proc.stderr}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info["others"] = ol.share
    return info


def untrained_model(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    from gan_core.checkpoint import write_json
    from gan_core.config import RunConfig, SGANConfig, TrainConfig
    from gan_core.nets import build_generator

    cfg = RunConfig("sgan", SGANConfig(source_names=["gravel", "brick"]), TrainConfig.for_variant("sgan"))
    torch.manual_seed(0)
    G = build_generator(cfg)
    folder.mkdir(parents=True)
    write_json(folder / "config.json", cfg.to_dict())
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(folder / "G_ema.safetensors"))
    return folder


def model_macs_per_cell(cfg) -> float:
    """Multiply-adds of the generator per noise cell of the canvas (its upsampling layers)."""
    from gan_core.nets import build_generator
    from gan_core.nets.sgan import ResizeConv, UpConv

    G = build_generator(cfg)
    total, area = 0.0, 1
    for m in G.modules():
        if isinstance(m, UpConv):  # transposed: (cin, cout, k, k), applied at the input's resolution
            cin, cout, k, _ = m.weight.shape
            total += area * cin * cout * k * k
            area *= 4
        elif isinstance(m, ResizeConv):  # resize first, so the convolution runs at the output's
            cout, cin, k, _ = m.weight.shape
            area *= 4
            total += area * cin * cout * k * k
    return total


def tiled_cells(h: int, w: int, tile: int, margin: int) -> int:
    """Noise cells the tileable renderer runs the generator on (tiles plus their margins)."""
    cells = 0
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            cells += (min(y0 + tile, h) - y0 + 2 * margin) * (min(x0 + tile, w) - x0 + 2 * margin)
    return cells


def peak_matmul(dtype, n: int, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(best) / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="run or model folder of a texture model (default: %(default)s)")
    p.add_argument("--sizes", default="1024,4096,8192", help="square sizes in pixels (default %(default)s)")
    p.add_argument("--repeats", type=int, default=1, help="fresh processes per size; the median is reported (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads in the children (default: torch's own)")
    p.add_argument("--matmul-size", type=int, default=2048, help="matrix side for the peak GFLOP/s measurement (default %(default)s)")
    p.add_argument("--levers", action="store_true", help="also run the levers at --lever-size")
    p.add_argument("--lever-size", type=int, default=4096, help="size for the levers (default %(default)s)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    p.add_argument("--lever", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a)
    tmp = Path(tempfile.mkdtemp(prefix="bench_texture_"))
    try:
        return run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp: Path) -> int:
    import torch

    from gan_core import texture
    from gan_core.checkpoint import load_generator, read_config, resolve_model_dir
    from _common import count_flops

    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"machine: {machine()}")
    print(f"command: {command_line()}")
    model = Path(a.model).expanduser().resolve()
    note = ""
    if not model.exists():
        if model != DEFAULT_MODEL.resolve():
            print(f"error: {model} does not exist; give a run or model folder with --model", file=sys.stderr)
            return 2
        model = untrained_model(tmp / "untrained-default")
        note = (f"{DEFAULT_MODEL.relative_to(REPO)} is missing: timed an untrained generator of the default "
                "architecture (two sources) instead; speed and memory do not depend on the weights.")
        print("note: " + note)
    cfg = read_config(resolve_model_dir(model))
    if cfg.variant != "sgan":
        print(f"error: {model} is not a texture model", file=sys.stderr)
        return 2
    load0 = load_average()

    print("peak matmul ...", flush=True)
    with OtherLoad() as ol_mm:
        peak32 = peak_matmul(torch.float32, a.matmul_size)
        peak16 = peak_matmul(torch.bfloat16, a.matmul_size, repeats=2)
    print(f"  fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s", flush=True)

    s = cfg.model.scale
    macs_cell = model_macs_per_cell(cfg)
    flops_px = 2 * macs_cell / s ** 2
    G, _ = load_generator(model)  # zero padding, as the tiled renderer runs it
    noise = texture.canvas_noise(G, 8, 8, 0, False)
    counted, _ = count_flops(lambda: G(noise))
    counted_px = counted / (8 * s) ** 2

    sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    rows, res, bf16 = [], {}, False
    for size in sizes:
        runs = [run_child(model, size, threads=a.threads) for _ in range(a.repeats)]
        sec = median([r["seconds"] for r in runs])
        hwm = max(r["vmhwm_mib"] for r in runs)
        before = median([r["rss_before_mib"] for r in runs])
        h = w = -(-size // s)
        executed = 2 * macs_cell * tiled_cells(h, w, texture.TILE, G.margin_cells)
        gflops = executed / sec / 1e9
        res[size] = (sec, hwm)
        bf16 = runs[0]["bf16_autocast"]
        rows.append([f"{size}x{size}", f"{sec:.2f}", f"{hwm / 1024:.2f}", f"{before:.0f}",
                     f"{size * size / sec / 1e6:.2f}", f"{executed / (size * size) / 1e3:.1f}",
                     f"{gflops:.1f}", f"{100 * gflops / (peak16 if bf16 else peak32):.0f}%",
                     f"{100 * max(r['others'] for r in runs):.0f}%"])
        print(f"  {size}: {sec:.2f} s, peak {hwm:.0f} MiB", flush=True)
    load1 = load_average()

    print("\n## Texture speed (`bench/texture_speed.py`)\n")
    print(f"Machine: {machine()}. Load average {load0:.2f} at the start, {load1:.2f} at the end.\n")
    print(f"Command: `{command_line()}`\n")
    if note:
        print(f"Model: {note}\n")
    else:
        print(f"Model: `{model}`\n")
    print(f"Tileable, seed 0, tile {texture.TILE} noise cells ({texture.TILE * s} px) with a margin of "
          f"{G.margin_cells} cells; drawn as the studio draws (precision auto: "
          f"{'bf16 autocast' if bf16 else 'fp32'} on this CPU); each size in a fresh process, median of "
          f"{a.repeats} run(s); peak memory is the process's peak resident set (model, torch and the uint8 "
          "image included).\n")
    print(md_table(["size", "seconds", "peak GiB", "RSS before MiB", "Mpx/s", "executed kFLOP/px", "GFLOP/s",
                    "of peak (its precision)", "CPU used by others"], rows))
    print(f"\nModel work: {flops_px / 1e3:.1f} kFLOP per output pixel counted from the config "
          f"({counted_px / 1e3:.1f} kFLOP/px by torch's operator formulas on a one-pass {8 * s} px canvas); the tiled "
          f"renderer executes {(texture.TILE + 2 * G.margin_cells) ** 2 / texture.TILE ** 2:.2f}x that "
          f"(margins recomputed). Measured peak: fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s "
          f"(torch.mm {a.matmul_size}x{a.matmul_size}, best of 5 (bf16: 2); other processes used "
          f"{100 * ol_mm.share:.0f}% of the CPU meanwhile).")
    if 8192 in res:
        sec, hwm = res[8192]
        ok = sec < TARGET_S and hwm / 1024 < TARGET_GIB
        print(f"\nTarget (8192x8192 under {TARGET_S:.0f} s, peak under {TARGET_GIB:.0f} GiB): "
              f"**{'met' if ok else 'missed'}** ({sec:.1f} s, {hwm / 1024:.2f} GiB).")

    if a.levers:
        base = run_child(model, a.lever_size, threads=a.threads)
        lrows = [[f"as shipped (tile {texture.TILE})", f"{a.lever_size}", f"{base['seconds']:.2f}",
                  f"{base['vmhwm_mib'] / 1024:.2f}", "1.00x", f"{100 * base['others']:.0f}%", ""]]
        n = torch.get_num_threads()
        trials = [(f"tile {t}", dict(tile=t)) for t in (8, 32, 64) if t != texture.TILE]
        trials += [("1 thread", dict(threads=1)) if n > 1 else None,
                   ("contiguous weights", dict(lever="contiguous")),
                   ("fp32 (no bf16 autocast)", dict(lever="fp32")),
                   ("no_grad instead of inference_mode", dict(lever="no_grad")),
                   ("torch.compile of the layers", dict(lever="compile"))]
        for label, kw in [t for t in trials if t]:
            kw.setdefault("threads", a.threads)
            r = run_child(model, a.lever_size, **kw)
            extra = f"compile (one tile) {r['compile_s']:.1f} s" if "compile_s" in r else ""
            lrows.append([label, f"{a.lever_size}", f"{r['seconds']:.2f}", f"{r['vmhwm_mib'] / 1024:.2f}",
                          f"{base['seconds'] / r['seconds']:.2f}x", f"{100 * r['others']:.0f}%", extra])
            print(f"  lever {label}: {r['seconds']:.2f} s", flush=True)
        b1 = run_child(model, 1024, threads=a.threads)
        r = run_child(model, 1024, lever="bf16", threads=a.threads)
        lrows.append(["as shipped", "1024", f"{b1['seconds']:.2f}", f"{b1['vmhwm_mib'] / 1024:.2f}", "1.00x",
                      f"{100 * b1['others']:.0f}%", ""])
        lrows.append(["bf16 weights and noise", "1024", f"{r['seconds']:.2f}", f"{r['vmhwm_mib'] / 1024:.2f}",
                      f"{b1['seconds'] / r['seconds']:.2f}x", f"{100 * r['others']:.0f}%", ""])
        print("\nLevers (each in a fresh process; speed-up against 'as shipped' at the same size):\n")
        print(md_table(["variant", "size", "seconds", "peak GiB", "speed-up", "CPU used by others", "note"], lrows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
