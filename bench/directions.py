"""Discovered directions of a conditional model: do the top directions change the pictures, and
differently from each other?

For each of the top K directions (closed-form factorisation of the generator's first layer) and
for K random unit directions, over N seeds and every class: the mean absolute pixel change
(0-255) per unit step (a step of --step, divided by it), and the correlation between the
directions' pixel-change patterns (near 0: they change different things). A direction counts as
"visible" when its change per unit step is above --visible (default 2 grey levels, i.e. a slider
step of 3 moves pixels by 6 levels on average). Writes a figure with one row per direction.

    python bench/directions.py
    python bench/directions.py --model runs/demo --k 5 --seeds 16 --out bench/sheets/directions.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import REPO, command_line, machine, md_table

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / "checkpoints" / "demo-classes"), help="run or model folder")
    p.add_argument("--k", type=int, default=5, help="directions (default %(default)s)")
    p.add_argument("--seeds", type=int, default=16, help="seeds per class (default %(default)s)")
    p.add_argument("--step", type=float, default=3.0, help="offset measured (default %(default)s)")
    p.add_argument("--visible", type=float, default=2.0, help="visible above this change per unit step")
    p.add_argument("--out", default=str(REPO / "bench" / "sheets" / "directions_demo.png"), help="figure")
    a = p.parse_args(argv)

    from gan_core import directions as D
    from gan_core.checkpoint import load_generator
    from gan_core.explore import labelled_grid, pictures
    from gan_core.breeding import Specimen
    from gan_core.sampling import class_weights, noise, save_png

    torch.set_num_threads(max(1, torch.get_num_threads()))
    G, cfg = load_generator(a.model)
    names = cfg.model.class_names
    dirs, strength = D.factorise(G, a.k)
    gen = torch.Generator().manual_seed(0)
    rand = torch.randn(a.k, cfg.model.nz, generator=gen)
    rand = rand / rand.norm(dim=1, keepdim=True)
    z = noise(list(range(a.seeds)), cfg.model.nz)
    per, per_rand, corrs = [], [], []
    for c in names:
        w = class_weights(names, c)
        e = D.effects(G, w, dirs, z, a.step)
        per.append(e["per_unit_step"])
        corrs.append(np.array(e["correlation"]))
        per_rand.append(D.effects(G, w, rand, z, a.step)["per_unit_step"])
    per, per_rand, corr = np.mean(per, 0), np.mean(per_rand, 0), np.mean(corrs, 0)
    visible = [i for i in range(a.k) if per[i] > a.visible]
    off = np.abs(corr[np.triu_indices(a.k, 1)])

    print("\n## Discovered directions (`bench/directions.py`)\n")
    print(f"Machine: {machine()}.\n\nCommand: `{command_line()}`\n")
    print(f"Model: `{Path(a.model).name}` ({cfg.model.resolution} px, {len(names)} classes, nz {cfg.model.nz}); "
          f"{a.seeds} seeds x {len(names)} classes, step {a.step:g}; fp32.\n")
    rows = [[f"direction {i + 1}", f"{strength[i]:.2f}", f"{per[i]:.2f}",
             f"{max(abs(corr[i][j]) for j in range(a.k) if j != i):.2f}", f"{per_rand[i]:.2f}"] for i in range(a.k)]
    print(md_table(["direction", "first-layer gain", "pixel change per unit step (0-255)",
                    "largest abs. correlation with another top direction", "a random unit direction: change per unit step"], rows))
    print(f"\nMean over the top {a.k}: {per.mean():.2f} per unit step; over {a.k} random unit directions: "
          f"{per_rand.mean():.2f} ({per.mean() / per_rand.mean():.1f}x).")
    print(f"Visible (above {a.visible:g} per unit step): {len(visible)} of {a.k} "
          f"({', '.join(str(i + 1) for i in visible)}); abs. correlation between top directions: "
          f"median {np.median(off):.2f}, largest {off.max():.2f}.")
    verdict = len(visible) >= 3 and all(max(abs(corr[i][j]) for j in visible if j != i) < 0.8 for i in visible)
    print(f"\nTarget (at least 3 of the top {a.k} visible and different, |r| < 0.8): **{'met' if verdict else 'missed'}**.")

    ts = [-a.step, -a.step / 2, 0.0, a.step / 2, a.step]
    rows_img = []
    for d in dirs:
        rows_img.append(pictures(G, names, [Specimen((z[s] + t * d).tolist(), {names[s % len(names)]: 1.0})
                                            for s in (1,) for t in ts]))
    img = labelled_grid(rows_img, [f"direction {i + 1}" for i in range(a.k)], [f"{t:+g}" for t in ts], scale=2)
    save_png(a.out, img)
    print(f"\nFigure: `{Path(a.out).relative_to(REPO) if Path(a.out).resolve().is_relative_to(REPO) else a.out}` "
          f"(seed 1, class {names[1 % len(names)]}, offsets {', '.join(f'{t:+g}' for t in ts)}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
