"""Will a run fit in this machine's memory? An estimate made before anything is allocated.

The networks are built on PyTorch's "meta" device (shapes only, no memory), one image is passed
through the generator and the critic there to count the activations, and the total is the weights
with their gradients, Adam's two moments and the averaged copy, plus the activations of a batch
kept for the backward passes. It is an estimate: good to a factor of about two, which is enough to
refuse a setting that would make the machine swap or kill the process.
"""
from __future__ import annotations

import os

import torch

from .config import RunConfig
from .errors import ConfigError

ACTIVATION_FACTOR = 3  # real and fake passes through the critic, kept for backward, and the penalty's
BYTES_PER_WEIGHT = 4 * 5  # float32: weight, gradient, Adam's two moments, the averaged copy
SAFETY = 0.8  # use at most this share of the memory available


def available_bytes() -> int | None:
    """Memory the system can give this process now (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def per_image_and_fixed(cfg: RunConfig) -> tuple[int, int]:
    """(bytes per image of the batch, bytes independent of the batch) for training `cfg`."""
    import copy

    from .nets import build_discriminator, build_generator

    if cfg.variant == "cgan" and not cfg.model.class_names:  # before the data has named the classes
        cfg = copy.deepcopy(cfg)
        cfg.model.class_names = ["class"]
    with torch.device("meta"):
        G, D = build_generator(cfg), build_discriminator(cfg)
    weights = sum(p.numel() for m in (G, D) for p in m.parameters())
    count = [0]

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            count[0] += out.numel()
    hooks = [m.register_forward_hook(hook) for m in list(G.modules()) + list(D.modules()) if not list(m.children())]
    try:
        with torch.device("meta"), torch.no_grad():
            if cfg.variant == "cgan":
                y = torch.zeros(1, dtype=torch.long)
                D(G(torch.zeros(1, cfg.model.nz), y), y)
            else:
                cells = cfg.train.patch // cfg.model.scale
                D(G(G.make_noise(1, cells, cells, None)))
    finally:
        for h in hooks:
            h.remove()
    return 4 * ACTIVATION_FACTOR * count[0], BYTES_PER_WEIGHT * weights


def check_fits(cfg: RunConfig, available: int | None = None) -> None:
    """Refuse, naming a batch that fits, a run whose estimate exceeds the memory available on a
    machine that trains on its CPU (a GPU's memory is its own matter)."""
    if torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return
    available = available_bytes() if available is None else available
    if not available:
        return
    per_image, fixed = per_image_and_fixed(cfg)
    need = fixed + per_image * cfg.train.batch
    budget = SAFETY * available
    if need > budget:
        fits = int((budget - fixed) // per_image) if budget > fixed else 0
        hint = f"use a batch of at most {fits}" if fits >= 1 else "use narrower networks or a smaller size"
        raise ConfigError(f"This run needs about {need / 2**30:.1f} GiB of memory and this machine has "
                          f"{available / 2**30:.1f} GiB free: {hint}.")
