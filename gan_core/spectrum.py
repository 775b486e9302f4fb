"""The spectral equaliser: a per-class filter, fitted to the training images, that takes away the
regular patterns a conditional generator leaves in its pictures (fine ones mostly, some coarse).

A generator built from x2 resizes, 3x3 convolutions and ReLUs draws faint repeating patterns at
the periods its stages leave behind: a dotted 2 px checkerboard, lines a few pixels apart. They
are small in amplitude but sit at frequencies where photos have almost no power, so they stand
out against the photos' spectrum (metrics.grid_artifacts: single frequencies 5-13x a photo's
after a 10-minute run) long after the pictures' layout and colours are right, and every change to
the network that removed them cost distance to the photos elsewhere.

This filter works on the finished pictures instead. For each class, the mean power spectrum of
generated images (per colour channel, each image's mean removed) is compared with that of the
class's training images (mirrored left-right when training mirrors the images), both normalised by
their total power, as the grid measure does. Where the generated power exceeds the photos' by more
than TOLERANCE, the filter scales that frequency down to TOLERANCE times the photos' level;
everywhere else it leaves the picture as it is (gain 1), so it never adds power and never sharpens.
It leaves the coarsest frequencies alone (up to COARSE_FROM cycles per pixel: the picture's layout
and colour) and acts fully from COARSE_FULL, so that a coarse pattern the generator repeats (a
crosshatch on both diagonals 11 px apart, single frequencies 3-5x the photos') is taken away as a
fine one is; in a run's first images (up to YOUNG_KIMG thousand, fading in until GROWN_KIMG) it
reaches only the fine frequencies (coarse_reach). The photos' spectrum is smoothed over 3 x 3 neighbouring frequencies at fine
frequencies (from FINE_FULL, fading in from FINE_FROM), where a class's spectrum is broad and a
hundred photos give a noisy estimate of it; at coarser frequencies it is taken as it is, since
there the photos' own regular structure (a wall's mortar lines, a roof's tiles) sits at narrow
peaks that smoothing would lower, and the filter would then fade the mortar the generator drew.
Measured over four 10-minute runs (demo classes and photo set, bench/RESULTS.md, "the spectral
equaliser"): the largest single grid frequency per class fell from 1.9-14.3 to 1.3-3.9, the grid
mean of every class to 1.3 or below, and the distance to held-back photos moved by at most 0.02x
the real-vs-real floor. Refitted this way (coarse frequencies, the photos' spectrum unsmoothed
there), the kept models of eleven 10-minute runs had 1 class in 50 with a single frequency above 3
against 9 (the flowers' crosshatch 5.0 and 4.6 -> 1.8), distances within 0.07x (bench/RESULTS.md, "the
equaliser at coarse frequencies").

The trainer fits the gains with every checkpoint (from FINAL_TIMES as many images for the model a
run ends with and for RUN/best) and writes them beside the weights
(`spectrum.safetensors`: "gain", shape (classes, 3, R, R)); `checkpoint.load_generator` attaches
them to the generator as `spectral_gain`, and `sampling.generate` applies them, blended by the
same class weights as the class embeddings. A model folder without the file draws unfiltered.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SPECTRUM_FILE = "spectrum.safetensors"
TOLERANCE = 1.5  # generated / real power ratio (normalised) left alone
COARSE_FROM, COARSE_FULL = 1 / 64, 1 / 32  # cycles per pixel (largest of x and y): where the filter starts, where it is full
FINE_FROM, FINE_FULL = 1 / 8, 1 / 4  # where the photos' spectrum starts to be smoothed, where it is fully smoothed
FIT_PER_CLASS = 96  # generated images per class for a fit (about 0.06 s per class on 2 cores in bf16), up to FIT_TOTAL in all
FIT_TOTAL, FIT_MIN = 960, 32  # with many classes fewer per class, so that a fit stays about 1% of a run
FINAL_TIMES = 3  # a fit for a model that is kept (a run's end, RUN/best, `equalise`) draws this many times as many
REAL_LIMIT = 256  # training images per class whose spectrum the fit compares with
MIN_GAIN = 0.05  # a gain is never below this: a damaged fit cannot blank a frequency out entirely
YOUNG_KIMG, GROWN_KIMG = 10.0, 30.0  # thousands of images a run has seen: the coarse reach fades in between


def channel_power(images: torch.Tensor) -> torch.Tensor:
    """Mean power spectrum per channel (C, H, W) of images (B, C, H, W), each image's channel mean removed."""
    x = images.float()
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return torch.fft.fft2(x).abs().pow(2).mean(0)


def mirrored(power: torch.Tensor) -> torch.Tensor:
    """The power spectrum of the same images flipped left-right, averaged with the original: the
    spectrum of a training set whose images are mirrored at random."""
    flipped = torch.roll(power.flip(-1), 1, dims=-1)  # frequency k -> -k along x
    return (power + flipped) / 2


def smooth(power: torch.Tensor) -> torch.Tensor:
    """Average over each frequency's 3 x 3 neighbourhood (the spectrum wraps around)."""
    return F.avg_pool2d(F.pad(power[None], (1, 1, 1, 1), mode="circular"), 3, 1)[0]


def ramp(h: int, w: int, lo: float, hi: float) -> torch.Tensor:
    """(H, W): 0 at frequencies up to `lo` cycles per pixel (the largest of x and y), 1 from `hi`,
    linear between."""
    fy = torch.fft.fftfreq(h).abs()[:, None]
    fx = torch.fft.fftfreq(w).abs()[None, :]
    return ((torch.maximum(fx, fy) - lo) / (hi - lo)).clamp(0, 1)


def fit_gains(fake_power: torch.Tensor, real_power: torch.Tensor, coarse: float = 1.0) -> torch.Tensor:
    """Gains (C, H, W) in [MIN_GAIN, 1] for one class from its generated and real power spectra
    (C, H, W each: channel_power of the generated images, real_power of the photos). `coarse` (0-1):
    how far the filter reaches below FINE_FROM (1: from COARSE_FROM; 0: fine frequencies only)."""
    overall = fake_power.sum() / real_power.sum().clamp_min(1e-12)
    ratio = fake_power / (real_power * overall).clamp_min(1e-12)
    full = (ratio / TOLERANCE).clamp_min(1).rsqrt()  # scales the power down to TOLERANCE x the real level
    h, w = fake_power.shape[-2:]
    fine = ramp(h, w, FINE_FROM, FINE_FULL)
    reach = fine + coarse * (ramp(h, w, COARSE_FROM, COARSE_FULL) - fine)
    return (1 - reach * (1 - full)).clamp(MIN_GAIN, 1)


def coarse_reach(kimg: float) -> float:
    """The `coarse` of fit_gains for a run that has seen `kimg` thousand images: 0 up to YOUNG_KIMG,
    1 from GROWN_KIMG, linear between. A young model draws nearly one picture per class, whose
    spectrum has coarse peaks that many photos' have not (its layout, the only structure it has
    yet); filtered there, the demo classes' 1-minute pictures ended 0.3-0.7x the real-vs-real
    distance further (bench/RESULTS.md). A grown model's coarse crosshatch is what the coarse reach
    is for."""
    return min(1.0, max(0.0, (kimg - YOUNG_KIMG) / (GROWN_KIMG - YOUNG_KIMG)))


def real_power(images: torch.Tensor, mirror: bool) -> torch.Tensor:
    """The power spectrum (C, H, W) of up to REAL_LIMIT real images (B, C, H, W) of one class that a
    fit compares with: mirrored where training mirrors, smoothed at fine frequencies only."""
    x = images[:REAL_LIMIT]
    p = sum(channel_power(chunk) * len(chunk) for chunk in x.split(64)) / len(x)
    p = mirrored(p) if mirror else p
    fine = ramp(*p.shape[-2:], FINE_FROM, FINE_FULL)
    return p + fine * (smooth(p) - p)


def blend(gains: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-image gains (B, C, H, W) from class gains (K, C, H, W) and class weights (B, K), rows
    summing to 1 (a blend of classes is filtered by the same blend of their gains)."""
    return torch.einsum("bk,kchw->bchw", weights.float(), gains.float())


def equalise(images: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """Filter images (B, C, H, W) in [-1, 1] by per-image (or shared) gains (B or 1, C, H, W)."""
    x = images.float()
    out = torch.fft.ifft2(torch.fft.fft2(x) * gains.to(x.device)).real
    return out.clamp(-1, 1)


def check(gains: torch.Tensor, n_classes: int, resolution: int) -> str | None:
    """Why a loaded gain tensor cannot serve a model of n_classes at resolution, or None if it can."""
    want = (n_classes, 3, resolution, resolution)
    if tuple(gains.shape) != want:
        return f"its gains have shape {tuple(gains.shape)}, the model needs {want}"
    g = gains.float()
    if not torch.isfinite(g).all() or (g < 0).any() or (g > 1).any():
        return "its gains lie outside 0..1"
    return None


def fit_count(n_classes: int, final: bool = False) -> int:
    """Generated images per class for a fit: FIT_PER_CLASS, fewer (down to FIT_MIN) when there are
    so many classes that FIT_TOTAL would be exceeded; FINAL_TIMES as many for a model that is kept.
    The generated spectrum is the noisy half of a fit: a few seeds with a strong fine pattern can
    carry most of a frequency's power, and a fit of 96 images a class left one class's 2-pixel
    diagonal at 3.7-5.1x the photos' where fits of 288 left 2.7-2.9x (bench/RESULTS.md)."""
    n = max(FIT_MIN, min(FIT_PER_CLASS, FIT_TOTAL // max(1, n_classes)))
    return n * FINAL_TIMES if final else n


def fit_classes(draw, real_powers: list[torch.Tensor], coarse: float = 1.0) -> torch.Tensor:
    """Gains (classes, C, H, W): `draw(c)` returns fit_count(classes) generated images (B, C, H, W)
    of class c, `real_powers[c]` is real_power of that class's training images; `coarse` as in
    fit_gains (coarse_reach of the run's age)."""
    return torch.stack([fit_gains(channel_power(draw(c)), real, coarse) for c, real in enumerate(real_powers)])


def class_powers(images: torch.Tensor, by_class: list[torch.Tensor], mirror: bool,
                 gen: torch.Generator) -> list[torch.Tensor]:
    """real_power per class of uint8 images (N, C, H, W): `by_class[c]` holds the indices of class
    c's images, of which up to REAL_LIMIT are drawn with `gen`."""
    from .data import to_float

    out = []
    for c, idx in enumerate(by_class):
        if not len(idx):
            raise ValueError(f"class {c} has no images to fit the equaliser to")
        pick = idx[torch.randperm(len(idx), generator=gen)[:REAL_LIMIT]]
        out.append(real_power(to_float(images[pick]), mirror))
    return out


@torch.no_grad()
def fit_folder(folder, data) -> torch.Tensor:
    """Fit the equaliser of the conditional model in `folder` (a model or checkpoint folder) to the
    class folder `data` it was trained on, and write it there (spectrum.safetensors, replacing one
    it had). For models saved before the equaliser existed; training fits its own. Returns the gains."""
    from pathlib import Path

    from safetensors import safe_open

    from . import checkpoint
    from .data import load_class_dataset
    from .errors import StudioError

    folder = Path(folder)
    G, cfg = checkpoint.load_generator(folder, equalise=False)
    if cfg.variant != "cgan":
        raise StudioError(f"{folder} is a texture model; the equaliser is for conditional models.")
    ds = load_class_dataset(data, cfg.model.resolution)
    if ds.class_names != cfg.model.class_names:
        raise StudioError(f"{data} has the classes {', '.join(ds.class_names)}; the model was trained on "
                          f"{', '.join(cfg.model.class_names)}. Give the class folder it was trained on.")
    by_class = [torch.nonzero(ds.labels == c).flatten() for c in range(cfg.model.n_classes)]
    real = class_powers(ds.images, by_class, cfg.train.mirror, torch.Generator().manual_seed(cfg.train.seed + 6))
    gen = torch.Generator().manual_seed(cfg.train.seed + 7)

    n = fit_count(cfg.model.n_classes, final=True)

    def draw(c: int) -> torch.Tensor:
        z = torch.randn(n, cfg.model.nz, generator=gen)
        y = torch.full((n,), c, dtype=torch.long)
        return torch.cat([G(zp, yp).float() for zp, yp in zip(z.split(96), y.split(96))])

    gains = fit_classes(draw, real)
    with safe_open(str(folder / "G_ema.safetensors"), "pt") as f:  # the header only: the weights' dtypes
        half = any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())
    dtype = torch.float16 if half else torch.float32  # as compact as the weights beside it
    checkpoint.write_spectrum(folder, gains, dtype)
    return gains


def write(path, gains: torch.Tensor, dtype: torch.dtype = torch.float32) -> None:
    """Write gains to a safetensors file at `path` (as "gain", in `dtype`)."""
    from safetensors.torch import save_file

    save_file({"gain": gains.detach().to("cpu", dtype).contiguous()}, str(path))
