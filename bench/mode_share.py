"""How much of a class's distance to its held-out images is the share of its sources.

Each class of the photo set (bench/photo_set.py) is cut from two photos, and a generator may draw
one of them far more often than the other (the astronaut on two of eight space seeds, the star
field on the rest). The per-class SWD of bench/time_to_quality.py then measures that share as much
as how the pictures look. This script takes a kept averaged generator (time_to_quality.py --keep)
and, per class:

  1. tells which photo each sample comes from: the majority of its 5 nearest training crops (the
     same split as time_to_quality.py, --seed), in a small description of each image (its 8 x 8
     average colours and the spread of each channel at full and half size). How often this picks
     the right photo for the held-out crops, whose photo is known, is printed beside it ("source
     accuracy"); a share is only worth reading where that is high;
  2. gives the share of each photo among --n samples against the held-out crops;
  3. gives the SWD of the class's samples to its held-out crops over its real-vs-real floor, as
     time_to_quality.py does (as many samples as held-out crops, the mean of --draws draws), and
     the same with the samples drawn at the held-out crops' share of photos from the --n samples
     ("at the real share"). Where the second is much lower, the class's distance is mostly the
     share of its photos (a mode drawn too seldom), not how each photo's pictures look.

    python bench/mode_share.py MODEL [MODEL ...]            # model folders (config.json + G_ema)
    python bench/mode_share.py MODEL --seed 0 --n 400 --draws 6

Needs scikit-image and scikit-learn (the photo set's photos); about 20 s per model on 2 cores.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from _common import command_line, machine, md_table, run_in_temp_dir

import torch

from gan_core.checkpoint import load_generator
from gan_core.data import load_class_dataset, to_float
from gan_core.metrics import image_swd
from gan_core.sampling import generate
from gan_core.submodes import describe
from photo_set import CLASSES, build, photo_of
from time_to_quality import split_folder

NEIGHBOURS = 5


def photos_of(ds) -> torch.Tensor:
    """The photo each crop of a loaded photo-set folder was cut from (its index in the class's
    photos), in the data set's order (class by class); photo_set.py names crops NNN.png."""
    return torch.tensor([photo_of(c, int(Path(f).stem)) for c in ds.class_names for f in ds.report.classes[c]])


def assign(query: torch.Tensor, ref_desc: torch.Tensor, ref_source: torch.Tensor, n_sources: int) -> torch.Tensor:
    """The majority source of each query image's NEIGHBOURS nearest references, given by their
    descriptions (describe; ties: the nearest's)."""
    d = torch.cdist(describe(query), ref_desc)
    near = d.topk(min(NEIGHBOURS, len(ref_desc)), largest=False).indices
    votes = torch.nn.functional.one_hot(ref_source[near], n_sources).sum(1).float()
    votes[torch.arange(len(query)), ref_source[near[:, 0]]] += 0.5
    return votes.argmax(1)


def at_share(pool: torch.Tensor, pool_source: torch.Tensor, counts: list[int], g: torch.Generator) -> torch.Tensor | None:
    """sum(counts) images of the pool, counts[s] of them from source s (None if too few)."""
    parts = []
    for s, k in enumerate(counts):
        idx = torch.nonzero(pool_source == s).flatten()
        if len(idx) < k:
            return None
        parts.append(pool[idx[torch.randperm(len(idx), generator=g)[:k]]])
    return torch.cat(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="model folders kept by time_to_quality.py --keep (photo set runs)")
    p.add_argument("--seed", type=int, default=0, help="the split's seed (time_to_quality.py --seed; default %(default)s)")
    p.add_argument("--holdout", type=float, default=0.3, help="held-out fraction per class (default %(default)s)")
    p.add_argument("--n", type=int, default=400, help="samples per class for the shares (default %(default)s)")
    p.add_argument("--draws", type=int, default=6, help="draws averaged in the SWD figures (default %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    return run_in_temp_dir(a, "bench_mode_share_", run)


def run(a, tmp: Path) -> int:
    print(f"machine: {machine()}")
    print(f"command: {command_line()}\n")
    models = [Path(m) for m in a.models]
    for m in models:
        if not (m / "config.json").is_file():
            print(f"{m}: not a model folder (no config.json); pass folders that time_to_quality.py --keep wrote.")
            return 2
    G0, cfg0 = load_generator(models[0])
    res = cfg0.model.resolution
    src = build(tmp / "photos", size=res)
    train_dir, held_dir = split_folder(src, tmp / "split", a.holdout, a.seed)
    tr, held = load_class_dataset(train_dir, res), load_class_dataset(held_dir, res)
    names = held.class_names
    tr_src, ho_src = photos_of(tr), photos_of(held)
    photos = {c: [name for name, _ in CLASSES[c]] for c in names}

    # per class: training crops (references), held-out crops, their photos, the floor draws
    per = {}
    for ci, c in enumerate(names):
        n_src = len(photos[c])
        ref, ref_s = to_float(tr.images[tr.labels == ci]), tr_src[tr.labels == ci]
        real, real_s = to_float(held.images[held.labels == ci]), ho_src[held.labels == ci]
        ref_desc = describe(ref)  # once per class: every model's samples are matched against it
        accuracy = float((assign(real, ref_desc, ref_s, n_src) == real_s).float().mean())
        floors = []
        for k in range(a.draws):  # class-matched draws of training crops, as time_to_quality.py's floor
            g = torch.Generator().manual_seed(a.seed + 7919 * k)
            floors.append(image_swd(ref[torch.randperm(len(ref), generator=g)[:len(real)]], real))
        counts = [int((real_s == s).sum()) for s in range(n_src)]
        per[c] = dict(ref_desc=ref_desc, ref_s=ref_s, real=real, counts=counts, accuracy=accuracy,
                      floor=statistics.mean(floors))
    print(f"photo set at {res} px: {len(tr)} training and {len(held)} held-out crops; split seed {a.seed}; "
          f"{a.n} samples a class for the shares; SWD figures the mean of {a.draws} draws of "
          f"{len(held) // len(names)} samples against the held-out crops, over the class's real-vs-real floor.\n")

    rows = []
    for m in models:
        G, cfg = (G0, cfg0) if m == models[0] else load_generator(m)
        if cfg.model.class_names != names or cfg.model.resolution != res:
            print(f"{m}: trained on other classes or another size than the photo set at {res} px; skipped.")
            continue
        for ci, c in enumerate(names):
            q = per[c]
            w = torch.zeros(1, len(names))
            w[0, ci] = 1
            with torch.inference_mode():
                z = torch.randn(a.n, cfg.model.nz, generator=torch.Generator().manual_seed(a.seed + 31 + ci))
                pool = torch.cat([generate(G, zz, w) for zz in z.split(100)])
            n_src = len(photos[c])
            pool_s = assign(pool, q["ref_desc"], q["ref_s"], n_src)
            share = [float((pool_s == s).float().mean()) for s in range(n_src)]
            k = len(q["real"])
            plain, fixed = [], []
            for d in range(a.draws):
                g = torch.Generator().manual_seed(a.seed + 101 * d)
                plain.append(image_swd(pool[torch.randperm(len(pool), generator=g)[:k]], q["real"]) / q["floor"])
                drawn = at_share(pool, pool_s, q["counts"], g)
                if drawn is not None:
                    fixed.append(image_swd(drawn, q["real"]) / q["floor"])
            real_share = [n / k for n in q["counts"]]
            rows.append([m.name if len(models) == 1 else f"{m.parent.name}/{m.name}", c,
                         " / ".join(photos[c]), f"{q['accuracy']:.2f}",
                         " / ".join(f"{s:.0%}" for s in real_share), " / ".join(f"{s:.0%}" for s in share),
                         f"{statistics.mean(plain):.2f}x",
                         f"{statistics.mean(fixed):.2f}x" if fixed else "too few of a photo"])
    print(md_table(["model", "class", "photos", "source accuracy (held-out)", "held-out share", "samples' share",
                    "SWD / floor", "at the real share"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
