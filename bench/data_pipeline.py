"""Data pipeline: folder scan, first-run preprocessing and cached reload of a large class folder.

Makes --n varied images (default 10,000) in a temporary folder: --classes class folders, sides
between --min-side and --max-side pixels (random aspect), about 70% JPEG and 30% PNG, a few
greyscale and transparent ones; smooth random colour fields with shapes, so they decode like
photos rather than like noise. Then times, with gan_core.data:
  scan         scan_class_folder (lists the files; no decoding), median of --repeats
  first run    load_class_dataset(folder, --res, cache_dir=...): decode, resize, crop, write the
               uint8 safetensors cache (once)
  cached       load_class_dataset again (scan, fingerprint, cache read), median of --repeats
and, for comparison, one epoch of the reference's data path (torchvision ImageFolder + resize,
center crop, ToTensor, normalize through a DataLoader, batch 64, no workers), which the reference
pays every epoch. Files are read from the page cache (just written); a cold disk adds to the
first run and the reference epoch only.

    python bench/data_pipeline.py                    # 10,000 images, about 3-5 minutes
    python bench/data_pipeline.py --n 500            # quick check
    python bench/data_pipeline.py --keep /tmp/imgs   # keep (and reuse) the generated folder
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import OtherLoad, command_line, load_average, machine, md_table, median

import numpy as np
from PIL import Image, ImageDraw


def make_images(root: Path, n: int, classes: int, lo: int, hi: int, seed: int = 0) -> float:
    """Write n images into root/class_k/; returns the seconds it took."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for k in range(classes):
        (root / f"class_{k}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(lo, hi + 1, 2))
        g = int(rng.integers(3, 10))
        base = Image.fromarray(rng.integers(0, 256, (g, g, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
        d = ImageDraw.Draw(base)
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
            x1, y1 = x0 + int(rng.integers(10, w // 2 + 11)), y0 + int(rng.integers(10, h // 2 + 11))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)((x0, y0, x1, y1), fill=fill)
        folder = root / f"class_{i % classes}"
        r = rng.random()
        if r < 0.05:
            base.convert("L").save(folder / f"{i:05d}.png")
        elif r < 0.10:
            rgba = base.convert("RGBA")
            rgba.putalpha(Image.linear_gradient("L").resize((w, h)))
            rgba.save(folder / f"{i:05d}.png")
        elif r < 0.30:
            base.save(folder / f"{i:05d}.png")
        else:
            base.save(folder / f"{i:05d}.jpg", quality=int(rng.integers(80, 96)))
    return time.perf_counter() - t0


def reference_epoch(folder: Path, res: int) -> tuple[float, int]:
    import torch
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize(res), transforms.CenterCrop(res), transforms.ToTensor(),
                             transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=0)
    t0 = time.perf_counter()
    n = sum(x.shape[0] for x, _ in loader)
    return time.perf_counter() - t0, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="images to generate (default %(default)s)")
    p.add_argument("--classes", type=int, default=4, help="class folders (default %(default)s)")
    p.add_argument("--min-side", type=int, default=200)
    p.add_argument("--max-side", type=int, default=600)
    p.add_argument("--res", type=int, default=64, help="model resolution to preprocess for (default %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="timed scans and cached reloads (default %(default)s)")
    p.add_argument("--no-reference", dest="reference", action="store_false",
                   help="skip the reference's per-epoch decoding")
    p.add_argument("--keep", metavar="DIR", help="generate the images into DIR and keep them (reused if DIR holds them)")
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        return run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp: Path) -> int:
    from gan_core.data import load_class_dataset, scan_class_folder

    print(f"machine: {machine()}")
    print(f"command: {command_line()}")
    folder = Path(a.keep).expanduser() if a.keep else tmp / "images"
    reuse = folder.is_dir() and sum(1 for _ in folder.rglob("*.*")) == a.n
    gen_s = None
    if not reuse:
        if folder.exists() and any(folder.iterdir()):
            print(f"error: {folder} exists and does not hold {a.n} images", file=sys.stderr)
            return 2
        print(f"making {a.n} images in {folder} ...", flush=True)
        gen_s = make_images(folder, a.n, a.classes, a.min_side, a.max_side)
    size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    load0 = load_average()
    ol = OtherLoad().start()

    scans = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        report = scan_class_folder(folder)
        scans.append(time.perf_counter() - t0)
    found = sum(report.counts().values())

    cache = tmp / "cache"
    t0 = time.perf_counter()
    ds = load_class_dataset(folder, a.res, cache_dir=cache)
    first_s = time.perf_counter() - t0
    cache_mb = (cache / "data_cache.safetensors").stat().st_size / 2**20
    print(f"first run: {first_s:.1f} s for {len(ds)} images", flush=True)

    reloads = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        again = load_class_dataset(folder, a.res, cache_dir=cache)
        reloads.append(time.perf_counter() - t0)
    assert len(again) == len(ds)

    ref_s, ref_n = reference_epoch(folder, a.res) if a.reference else (None, 0)
    ol.stop()
    load1 = load_average()

    rows = [["folder scan (`scan_class_folder`)", f"{median(scans):.3f}", f"{found / median(scans):,.0f}", ""],
            ["first run (`load_class_dataset`, decode + resize + crop + write cache)", f"{first_s:.1f}",
             f"{len(ds) / first_s:,.0f}", "once per folder"],
            ["cached reload (`load_class_dataset`, scan + fingerprint + read cache)", f"{median(reloads):.3f}",
             f"{len(ds) / median(reloads):,.0f}", f"{first_s / median(reloads):.0f}x faster than the first run"]]
    if ref_s is not None:
        rows.append(["reference: one epoch of ImageFolder + DataLoader decoding", f"{ref_s:.1f}", f"{ref_n / ref_s:,.0f}",
                     f"every epoch; {ref_s / median(reloads):.0f}x the cached reload"])
    print("\n## Data pipeline (`bench/data_pipeline.py`)\n")
    print(f"Machine: {machine()}. Load average {load0:.2f} at the start, {load1:.2f} at the end; other processes "
          f"used {100 * ol.share:.0f}% of the CPU while it measured.\n")
    print(f"Command: `{command_line()}`\n")
    made = f"made in {gen_s:.0f} s" if gen_s is not None else "reused"
    print(f"{found} images ({size_mb:.0f} MB on disk, {made}) in {a.classes} class folders, sides {a.min_side}-"
          f"{a.max_side} px, ~70% JPEG / 30% PNG (some greyscale, some transparent); preprocessed to {a.res}x{a.res}; "
          f"cache file {cache_mb:.0f} MB; medians of {a.repeats} for scan and reload; files in the page cache.\n")
    print(md_table(["step", "seconds", "images/s", "note"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
