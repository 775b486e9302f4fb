"""Texture generation with a spatial generator: any size, optionally seamless (tileable)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .data import to_uint8
from .errors import ConfigError

MAX_SIDE = 8192


def check_size(width: int, height: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, int) or not 1 <= v <= MAX_SIDE:
            raise ConfigError(f"{name} must be between 1 and {MAX_SIDE} pixels, got {v}.")


def canvas_cells(G, width: int, height: int, tileable: bool) -> tuple[int, int, int, int]:
    """Noise cells (h, w) and output pixels (H, W) for a requested size.

    A tileable texture is exactly periodic only at whole multiples of 2**depth pixels, so its
    size is rounded up to the next multiple; an ordinary texture is generated a little larger
    and cropped to the exact size.
    """
    check_size(width, height)
    s = G.cfg.scale
    h, w = max(1, math.ceil(height / s)), max(1, math.ceil(width / s))
    if tileable:
        return h, w, h * s, w * s
    return h, w, height, width


@torch.inference_mode()
def generate_texture(G, width: int, height: int, seed: int = 0, tileable: bool = False,
                     source: int | None = None, style_seed: int | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 texture. `source` picks one source image's style (fused models);
    `style_seed` fixes the random global code separately from the local noise."""
    h, w, H, W = canvas_cells(G, width, height, tileable)
    if source is not None and not 0 <= source < G.cfg.n_sources:
        raise ConfigError(f"source must be between 0 and {G.cfg.n_sources - 1}.")
    gen = torch.Generator().manual_seed(int(seed))
    style = None
    if style_seed is not None:
        style = torch.randn(1, G.cfg.nz_global, generator=torch.Generator().manual_seed(int(style_seed)))
    src = None if source is None else torch.tensor([source])
    noise = G.make_noise(1, h, w, gen, sources=src, style=style, tileable=tileable)
    was = G.tileable
    G.set_tileable(tileable)
    try:
        dev = next(G.parameters()).device
        out = G(noise.to(dev)).float().cpu()
    finally:
        G.set_tileable(was)
    return to_uint8(out[0, :, :H, :W]).permute(1, 2, 0).numpy()


@torch.inference_mode()
def wrap_error(G, h: int, w: int, seed: int = 0, tileable: bool = True) -> float:
    """How far the generator is from exact periodicity on an h x w noise canvas.

    Rolls the noise by half the canvas and compares the output with the rolled output of the
    unrolled noise: a periodic generator gives the same pixels (error ~ 0, float rounding); with
    zero padding the seam region differs. Returned as max |difference| / value range (2).
    """
    noise = G.make_noise(1, h, w, torch.Generator().manual_seed(seed), tileable=tileable)
    dy, dx = h // 2, w // 2
    rolled = type(noise)(*(t.roll((dy, dx), (-2, -1)) for t in (noise.local, noise.style, noise.sources)),
                         noise.phase, (noise.offset[0] - dy, noise.offset[1] - dx), noise.period)
    was = G.tileable
    G.set_tileable(tileable)
    try:
        a = G(noise).float().roll((dy * G.cfg.scale, dx * G.cfg.scale), (-2, -1))
        b = G(rolled).float()
    finally:
        G.set_tileable(was)
    return float((a - b).abs().max()) / 2.0
