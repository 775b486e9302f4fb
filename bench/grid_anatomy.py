"""Where a conditional model's grid measure comes from: the border or the inside, the axes or not.

    python bench/grid_anatomy.py                          # the shipped demo-classes model
    python bench/grid_anatomy.py --cgan RUN_OR_MODEL --data CLASS_FOLDER --n 150

Per class, `n` samples of the averaged generator (as drawn, without the spectral equaliser, whose
work is to take these patterns away) against the real images of that class, and as a
reference one half of the real images against the other (what the measure gives between two sets of
real photos). Columns:
- grid mean (largest single frequency, at): gan_core.metrics.grid_artifacts on the whole image, then
  on its centre with 8 px cut from every side (a pattern that starts at the zero-padded border of
  the generator's convolutions drops out there);
- fine power along the axes / in other directions: the power above a quarter cycle per pixel (periods
  under 4 px) whose frequency lies on the x or y axis, and the rest, each relative to the real images'
  and normalised by the overall power ratio (1 = as in the real images). Horizontal and vertical
  lines and blocks put their power on the axes; speckle spreads it over every direction.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _common import REPO, command_line, machine  # also puts the repository on the import path

from gan_core import checkpoint  # noqa: E402
from gan_core.data import load_class_dataset, to_float  # noqa: E402
from gan_core.metrics import grid_artifacts, power_spectrum  # noqa: E402
from gan_core.sampling import class_weights, generate, noise  # noqa: E402

CUT = 8  # px cut from each side for the centre figures
FINE = 0.25  # cycles per pixel: "fine" is above this along x or y (max norm)


def fine_power(fake: torch.Tensor, real: torch.Tensor) -> tuple[float, float]:
    """(along the axes, other directions): the fake/real power ratio above FINE, normalised overall."""
    pf, pr = power_spectrum(fake), power_spectrum(real)
    overall = float(pf.sum() / pr.sum().clamp_min(1e-12))
    h, w = pf.shape
    fy = torch.fft.fftfreq(h).abs()[:, None].expand(h, w)
    fx = torch.fft.fftfreq(w).abs()[None, :].expand(h, w)
    fine = torch.maximum(fx, fy) > FINE
    axis = (fx == 0) | (fy == 0)
    return tuple(float(pf[fine & m].sum() / pr[fine & m].sum().clamp_min(1e-12)) / overall for m in (axis, ~axis))


def describe(fake: torch.Tensor, real: torch.Tensor) -> list[str]:
    c = (..., slice(CUT, -CUT), slice(CUT, -CUT))
    whole, centre = grid_artifacts(fake, real), grid_artifacts(fake[c], real[c])
    (a, o), (ac, oc) = fine_power(fake, real), fine_power(fake[c], real[c])
    return [f"{whole['mean']:.2f} ({whole['max']:.1f}, {whole['at']})", f"{centre['mean']:.2f} ({centre['max']:.1f}, {centre['at']})",
            f"{a:.2f} / {o:.2f}", f"{ac:.2f} / {oc:.2f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cgan", default=str(REPO / "checkpoints" / "demo-classes"))
    p.add_argument("--data", default=str(REPO / "assets" / "demo" / "classes"))
    p.add_argument("--n", type=int, default=150, help="samples per class (default %(default)s)")
    p.add_argument("--cache", default="/tmp/gan-studio-bench-cache", help="folder for the preprocessed crops")
    a = p.parse_args()
    torch.set_grad_enabled(False)
    G, cfg = checkpoint.load_generator(a.cgan, equalise=False)  # the generator's own pictures
    ds = load_class_dataset(Path(a.data), cfg.model.resolution, cache_dir=Path(a.cache))
    if ds.class_names != cfg.model.class_names:
        raise SystemExit(f"{a.data} has classes {ds.class_names}, the model {cfg.model.class_names}")
    print(f"Machine: {machine()}\nCommand: `{command_line()}`\n")
    print("| class | images | grid, whole image | grid, centre | fine power, axes / other, whole | the same, centre |")
    print("|---|---|---|---|---|---|")
    z = noise(list(range(5000, 5000 + a.n)), cfg.model.nz)
    for c, name in enumerate(cfg.model.class_names):
        real = to_float(ds.images[ds.labels == c])
        perm = torch.randperm(len(real), generator=torch.Generator().manual_seed(c))
        half = len(real) // 2
        fake = generate(G, z, class_weights(cfg.model.class_names, name)).float()
        print(f"| {name} | generated | " + " | ".join(describe(fake, real)) + " |")
        print(f"| {name} | real vs real | " + " | ".join(describe(real[perm[:half]], real[perm[half:2 * half]])) + " |")


if __name__ == "__main__":
    main()
