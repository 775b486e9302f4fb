"""Sample quality of the shipped demo models: sliced Wasserstein distance (SWD) to the real data.

    python bench/demo_quality.py                 # both demo models, printed as a Markdown table
    python bench/demo_quality.py --cgan RUN_OR_MODEL --sgan RUN_OR_MODEL --n 75
    python bench/demo_quality.py --draws 6        # conditional figures averaged over 6 draws
    python bench/demo_quality.py --sgan '' --raw  # the conditional model only, without its equaliser

Conditional model: per class, `n` generated images against `n` real crops of that class (half
B of a fixed split); "overall" pools all classes. Texture model: per source, 64x64 patches of a
1024x1024 tileable texture against random 64x64 patches of the source photo. Each figure comes
with its floor (real against real: the other half of the crops, or other random patches of the
photo) and its ceiling (the same architecture untrained). The metric is gan_core.metrics.image_swd
(x1000, 7x7 neighbourhoods over a 3-level pyramid, no learned network): lower is better.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gan_core import checkpoint  # noqa: E402
from gan_core.data import load_class_dataset, load_textures, sample_patches, to_float  # noqa: E402
from gan_core.sampling import class_weights, generate, noise  # noqa: E402
from gan_core.metrics import grid_artifacts, image_swd, seam_ratio  # noqa: E402
from gan_core.nets import build_generator  # noqa: E402
from gan_core.texture import generate_texture  # noqa: E402


def _untrained(cfg):
    torch.manual_seed(0)
    return build_generator(cfg).eval()


def cgan_rows(model: str, data: Path, n: int, cache: Path, draws: int = 1,
              equalise: bool = True) -> list[tuple[str, float, float, float]]:
    """Per class and overall: SWD of the samples, the floor and the ceiling, and the grid measure.
    With `draws` > 1 each is the mean over that many draws (other seeds, another split of the real
    crops into halves, other SWD projections); the first draw is the single-draw figure."""
    G, cfg = checkpoint.load_generator(model, equalise=equalise)
    G0 = _untrained(cfg)
    ds = load_class_dataset(data, cfg.model.resolution, cache_dir=cache)
    if ds.class_names != cfg.model.class_names:
        raise SystemExit(f"{data} has classes {ds.class_names}, the model {cfg.model.class_names}")
    per_draw = [_cgan_draw(G, G0, cfg, ds, n, d) for d in range(draws)]
    rows = []
    for same in zip(*per_draw):  # one row (class or overall) across the draws
        mean = [sum(r[i] for r in same) / draws for i in (1, 2, 3)]
        grid = {k: sum(r[4][k] for r in same) / draws for k in ("mean", "max")}
        rows.append((same[0][0], *mean, grid))
    return rows


def _cgan_draw(G, G0, cfg, ds, n: int, d: int) -> list[tuple[str, float, float, float, dict]]:
    """One draw of cgan_rows: seeds, halves of the real crops and SWD projections of draw `d`."""
    rows, pooled = [], {"fake": [], "untrained": [], "a": [], "b": []}
    z = noise(list(range(10_000 + d * n, 10_000 + (d + 1) * n)), cfg.model.nz)
    seed = 1000 * d

    def row(name, fake, untrained, a, b):  # SWD of the model, of real half a, of the untrained model; grid
        return (name, image_swd(fake, b, seed=seed), image_swd(a, b, seed=seed), image_swd(untrained, b, seed=seed),
                grid_artifacts(fake, b))
    for c, name in enumerate(cfg.model.class_names):
        real = to_float(ds.images[ds.labels == c])
        perm = torch.randperm(len(real), generator=torch.Generator().manual_seed(c + seed))
        a, b = real[perm[:n]], real[perm[n:2 * n]]
        if len(b) < n:
            raise SystemExit(f"class {name} has {len(real)} images; --n must be at most half of that")
        w = class_weights(cfg.model.class_names, name)
        fake, fake0 = generate(G, z, w), generate(G0, z, w)
        rows.append(row(name, fake, fake0, a, b))
        for k, v in (("fake", fake), ("untrained", fake0), ("a", a), ("b", b)):
            pooled[k].append(v)
    p = {k: torch.cat(v) for k, v in pooled.items()}
    rows.append(row("overall", p["fake"], p["untrained"], p["a"], p["b"]))
    return rows


def _patches(img) -> torch.Tensor:
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 127.5 - 1
    return x.unfold(2, 64, 64).unfold(3, 64, 64).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, 64, 64)


def sgan_rows(model: str, root: Path) -> list[tuple[str, float, float, float]]:
    G, cfg = checkpoint.load_generator(model)
    G0 = _untrained(cfg)
    files = [str(root / d) for d in cfg.data]
    textures, names, _ = load_textures(files, 64, 512)
    rows = []
    for i, name in enumerate(names):
        src = i if cfg.model.n_sources > 1 else None
        tex = generate_texture(G, 1024, 1024, seed=1, tileable=True, source=src, style_seed=1)
        fake = _patches(tex)
        fake0 = _patches(generate_texture(G0, 1024, 1024, seed=1, tileable=True, source=src, style_seed=1))
        real_a, _ = sample_patches([textures[i]], len(fake), 64, torch.Generator().manual_seed(1), False)
        real_b, _ = sample_patches([textures[i]], len(fake), 64, torch.Generator().manual_seed(2), False)
        rows.append((name, image_swd(fake, real_b), image_swd(real_a, real_b), image_swd(fake0, real_b),
                     {**grid_artifacts(fake, real_b), "seam": seam_ratio(tex, cfg.model.scale)}))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cgan", default=str(ROOT / "checkpoints" / "demo-classes"), help="conditional model ('' to skip)")
    p.add_argument("--sgan", default=str(ROOT / "checkpoints" / "demo-textures"), help="texture model ('' to skip)")
    p.add_argument("--raw", action="store_true", help="the conditional model's pictures without its spectral equaliser")
    p.add_argument("--data", default=str(ROOT / "assets" / "demo" / "classes"))
    p.add_argument("--n", type=int, default=75, help="images per class on each side (default %(default)s)")
    p.add_argument("--cache", default="/tmp/gan-studio-bench-cache", help="folder for the preprocessed crops")
    p.add_argument("--draws", type=int, default=1, help="conditional figures averaged over this many draws of "
                   "seeds, real halves and projections (default %(default)s: the table in bench/RESULTS.md)")
    a = p.parse_args()
    torch.set_grad_enabled(False)
    print("| model | class / source | SWD generated vs real | floor: real vs real | ceiling: untrained vs real "
          "| grid mean (max) | seam ratio |")
    print("|---|---|---|---|---|---|---|")
    models = ([(Path(a.cgan).name, lambda: cgan_rows(a.cgan, Path(a.data), a.n, Path(a.cache), a.draws, not a.raw))]
              if a.cgan else []) + ([(Path(a.sgan).name, lambda: sgan_rows(a.sgan, ROOT))] if a.sgan else [])
    for label, measure in models:
        rows = measure()
        for name, swd, floor, ceil, g in rows:
            seam = f"{g['seam']:.3f}" if "seam" in g else ""
            print(f"| {label} | {name} | {swd:.0f} | {floor:.0f} | {ceil:.0f} | {g['mean']:.2f} ({g['max']:.1f}) | {seam} |")


if __name__ == "__main__":
    main()
