"""Texture generation with a spatial generator: any size up to 8192 px, seamless if asked,
styles painted per region, in bounded memory.

The canvas noise is built once (a few MB even at 8192 px), then the generator runs over tiles of
it with a margin of noise cells around each tile. An output pixel depends only on noise cells
less than `G.margin_cells` away (2 for the transposed-convolution generator, 3 for the default
nearest-resize one with 5x5 kernels, 5 with bilinear resizing; see SpatialGenerator.margin_cells),
so cropping that margin gives exactly the pixels of one pass over the whole canvas (the generator is in eval mode, so
BatchNorm is a fixed per-channel affine map). Tiles are written into one preallocated uint8 image.
A model trained on windows away from its canvas border (SGANConfig.margin) never learned to draw
that border, so a canvas that is not tileable is drawn that many cells past its edges and cropped
(beyond_border); a tileable canvas has no border.
"""
from __future__ import annotations

import json
import math
import threading
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .data import to_uint8
from .errors import ConfigError, StudioError
from . import styles
from .nets.sgan import SpatialNoise

MAX_SIDE = 8192
MIN_SIDE = 16
MAX_STYLE_MAP = 1024  # the style map is read at most this many pixels on a side
TILE = 32  # noise cells per tile side (1024 px at depth 5; against 16, a third less margin recomputed)
FEATHER_SIGMAS = 1.2816  # a feather of R px: the mask goes from 10 % to 90 % over R px either side of the edge


def check_size(width: int, height: int) -> None:
    for name, v in (("Width", width), ("Height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or not MIN_SIDE <= v <= MAX_SIDE:
            raise ConfigError(f"{name} must be a whole number between {MIN_SIDE} and {MAX_SIDE} pixels, got {v}.")


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


def _brush_codes(G, brushes: list[dict], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per brush: its global style code (nz_global) and source weights (n_sources); see styles.py."""
    codes = [styles.brush_code(G, b, seed) for b in brushes]
    return torch.stack([z for z, _ in codes]), torch.stack([w for _, w in codes])


def brush_weights(style_map: np.ndarray, n_brushes: int, h: int, w: int, tileable: bool,
                  blend_cells: float = 1.5) -> torch.Tensor:
    """Soft per-brush weights (n_brushes, h, w) from a painted label map of any resolution.

    Each brush's mask is area-averaged onto the noise grid and blurred by a Gaussian of
    `blend_cells` noise cells (wrapping around for tileable textures), so regions meet with a
    smooth transition; the weights sum to 1 at every cell.
    """
    labels = torch.as_tensor(np.asarray(style_map), dtype=torch.long)
    if labels.dim() != 2:
        raise ConfigError("the style map must be a 2-D array of brush numbers.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_brushes):
        raise ConfigError(f"the style map uses brush numbers outside 0..{n_brushes - 1}.")
    onehot = F.one_hot(labels, n_brushes).permute(2, 0, 1)[None].float()
    m = F.interpolate(onehot, size=(h, w), mode="area")
    if blend_cells > 0:
        r = max(1, int(math.ceil(2.5 * blend_cells)))
        x = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (x / blend_cells) ** 2)
        k = (k / k.sum()).view(1, 1, 1, -1).repeat(n_brushes, 1, 1, 1)
        m = F.conv2d(_pad(m, r, 3, tileable), k, groups=n_brushes)
        m = F.conv2d(_pad(m, r, 2, tileable), k.transpose(2, 3), groups=n_brushes)
    m = m[0].clamp_min(0)
    return m / m.sum(0, keepdim=True).clamp_min(1e-8)


def _pad(m: torch.Tensor, r: int, dim: int, wrap: bool) -> torch.Tensor:
    """m padded by r cells on both sides of `dim`: wrapping around (as often as a small canvas
    needs) or repeating the edge."""
    n = m.shape[dim]
    idx = torch.arange(-r, n + r)
    idx = idx % n if wrap else idx.clamp(0, n - 1)
    return m.index_select(dim, idx)


def canvas_noise(G, h: int, w: int, seed: int = 0, tileable: bool = False, source: int | None = None,
                 style_seed: int | None = None, style_map: np.ndarray | None = None,
                 brushes: list[dict] | None = None, feather: float | None = None,
                 morph: tuple[dict, dict] | None = None, morph_direction: str = "horizontal") -> SpatialNoise:
    """The whole canvas's noise: local noise from `seed`, styles from the brushes (or one style).

    feather: the soft edge of painted regions in pixels (a brush fades from 90 % to 10 % between
    feather px inside and feather px outside its edge: a Gaussian blur; 0: a hard
    cut at the noise grid; None: 1.5 noise cells). Where two brushes meet, their sources mix
    along the model's even path (styles.py), so the look changes evenly across the edge.
    morph: two brushes; the canvas goes from the first to the second (left to right, or top to
    bottom; tileable canvases go there and back), instead of following a style map.
    """
    c = G.cfg
    gen = torch.Generator().manual_seed(int(seed))
    local = torch.randn(1, c.nz_local, h, w, generator=gen)
    phase = torch.rand(1, c.nz_periodic, generator=gen) * (2 * math.pi)
    period = (h, w) if tileable else None
    if morph is not None:
        style, src = styles.morph_codes(G, morph[0], morph[1], seed, h, w, morph_direction, tileable)
        return SpatialNoise(local, style[None], src[None], phase, period=period)
    if brushes is None:
        brushes = [{"source": source, "style_seed": style_seed}]
    if not brushes:
        raise ConfigError("at least one brush (style) is needed.")
    codes, sources = _brush_codes(G, brushes, seed)
    if style_map is None:
        wts = torch.zeros(len(brushes), h, w)
        wts[0] = 1.0
    else:
        cells = 1.5 if feather is None else max(0.0, float(feather)) / (FEATHER_SIGMAS * c.scale)
        wts = brush_weights(style_map, len(brushes), h, w, tileable, blend_cells=cells)
    style = torch.einsum("bhw,bc->chw", wts, codes)[None]
    if len(brushes) == 2 and style_map is not None:  # one edge: mix evenly in look
        src = styles.along(G, sources[0], sources[1], wts[1]).permute(2, 0, 1)[None]
    else:
        src = torch.einsum("bhw,bc->chw", wts, sources)[None]
    return SpatialNoise(local, style.contiguous(), src.contiguous(), phase, period=period)


@torch.inference_mode()
def render(G, noise: SpatialNoise, out_h: int, out_w: int, tileable: bool, tile: int = TILE,
           on_progress: Callable[[float], None] | None = None, bits: int = 8, origin: int = 0,
           precision: str = "fp32") -> np.ndarray:
    """Run G over the canvas noise tile by tile; returns (out_h, out_w, 3) uint8 (bits=16: uint16),
    the pixels from noise cell (origin, origin) on (the ones before it are drawn as context only).
    precision "auto": in bf16 autocast where the CPU runs bf16 fast (AVX512-BF16 or AMX; as training
    decides), 3-6x faster there, the pixels within 2 of 255 levels of fp32's. 16-bit output is
    always drawn in fp32: bf16 carries only 8 bits of mantissa."""
    from .train import use_bf16  # here: train imports this module
    s = G.cfg.scale
    h, w = noise.local.shape[-2:]
    dev = next(G.parameters()).device
    dtype = next(G.parameters()).dtype
    bf16 = bits != 16 and use_bf16(precision, dev)
    out = np.empty((out_h, out_w, 3), np.uint16 if bits == 16 else np.uint8)
    was = G.tileable
    G.eval().set_tileable(False)  # margins carry the context; see the module docstring
    tiles = [(y, x) for y in range(origin, h - origin, tile) for x in range(origin, w - origin, tile)]
    margin = G.margin_cells
    try:
        for i, (y0, x0) in enumerate(tiles):
            y1, x1 = min(y0 + tile, h - origin), min(x0 + tile, w - origin)
            if tileable:  # margins wrap around the canvas
                ya, yb, xa, xb = y0 - margin, y1 + margin, x0 - margin, x1 + margin
            else:  # margins stop at the canvas edge, where the whole pass has its zero padding
                ya, yb, xa, xb = max(0, y0 - margin), min(h, y1 + margin), max(0, x0 - margin), min(w, x1 + margin)
            part = noise.take(torch.arange(ya, yb), torch.arange(xa, xb)).to(dev, dtype)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                img = G(part)[0]  # bf16 under autocast: the crop below is converted to float, not the margins
            oy, ox = (y0 - ya) * s, (x0 - xa) * s
            py0, px0 = (y0 - origin) * s, (x0 - origin) * s
            py1, px1 = min((y1 - origin) * s, out_h), min((x1 - origin) * s, out_w)
            if py1 > py0 and px1 > px0:
                crop = img[:, oy:oy + py1 - py0, ox:ox + px1 - px0]
                px = to_uint8(crop) if bits != 16 else \
                    ((crop.float().clamp(-1, 1) + 1) * 32767.5).round_().to(torch.int32)
                out[py0:py1, px0:px1] = px.permute(1, 2, 0).cpu().numpy()
            if on_progress:
                on_progress((i + 1) / len(tiles))
    finally:
        G.set_tileable(was)
    return out


def generate_texture(G, width: int, height: int, seed: int = 0, tileable: bool = False,
                     source: int | None = None, style_seed: int | None = None,
                     style_map: np.ndarray | None = None, brushes: list[dict] | None = None,
                     on_progress: Callable[[float], None] | None = None, feather: float | None = None,
                     morph: tuple[dict, dict] | None = None, morph_direction: str = "horizontal",
                     bits: int = 8, precision: str = "fp32") -> np.ndarray:
    """An (H, W, 3) uint8 texture.

    seed: the local noise (and the default style). tileable: exactly periodic; the size is
    rounded up to a multiple of 2**depth. source / style_seed: one style for the whole canvas
    (a source image of a fused model; a random style from a seed: see styles.py). style_map +
    brushes: a painted 2-D array of brush numbers (any resolution) and, per brush,
    {"source": int | None, "style_seed": int | None}; the texture follows the map with smooth
    transitions (feather: their width in px). morph: two brushes to go between across the canvas.
    precision: "fp32", or "auto" (bf16 where the CPU runs it fast; see render).
    """
    h, w, H, W = canvas_cells(G, width, height, tileable)
    noise = canvas_noise(G, h, w, seed, tileable, source, style_seed, style_map, brushes, feather, morph,
                         morph_direction)
    ring = 0 if tileable else G.cfg.margin
    if ring:  # a model trained away from the border never learned to draw it: draw past it, then crop
        noise = beyond_border(noise, ring, seed)
    return render(G, noise, H, W, tileable, on_progress=on_progress, bits=bits, origin=ring, precision=precision)


def beyond_border(noise: SpatialNoise, ring: int, seed: int) -> SpatialNoise:
    """The canvas noise with `ring` more cells on every side: fresh local noise there (the canvas's
    own cells unchanged), the styles and sources of the nearest edge cell, and the periodic
    channels continued (the offset moves by the ring)."""
    b, c, h, w = noise.local.shape
    local = torch.randn(b, c, h + 2 * ring, w + 2 * ring, generator=torch.Generator().manual_seed(int(seed) + 7919))
    local[..., ring:ring + h, ring:ring + w] = noise.local
    pad = (ring,) * 4
    return SpatialNoise(local, F.pad(noise.style, pad, mode="replicate"), F.pad(noise.sources, pad, mode="replicate"),
                        noise.phase, (noise.offset[0] - ring, noise.offset[1] - ring), noise.period)


@torch.inference_mode()
def wrap_error(G, h: int, w: int, seed: int = 0, tileable: bool = True) -> float:
    """How far the generator is from exact periodicity on an h x w noise canvas.

    Rolls the noise by half the canvas and compares the output with the rolled output of the
    unrolled noise, both in one pass: a periodic generator gives the same pixels (error ~ 0,
    float rounding); with zero padding the seam region differs. Returned as max |difference| /
    value range (2).
    """
    noise = G.make_noise(1, h, w, torch.Generator().manual_seed(seed), tileable=tileable)
    dy, dx = h // 2, w // 2
    rolled = SpatialNoise(*(t.roll((dy, dx), (-2, -1)) for t in (noise.local, noise.style, noise.sources)),
                          noise.phase, (noise.offset[0] - dy, noise.offset[1] - dx), noise.period)
    was = G.tileable
    G.eval().set_tileable(tileable)
    try:
        a = G(noise).float().roll((dy * G.cfg.scale, dx * G.cfg.scale), (-2, -1))
        b = G(rolled).float()
    finally:
        G.set_tileable(was)
    return float((a - b).abs().max()) / 2.0


# ---------------------------------------------------------------------------------------------
# Painting: a style map from a painted canvas, a texture with its settings, previews
# ---------------------------------------------------------------------------------------------
def style_map_from_canvas(canvas: np.ndarray | None, palette: list[str]) -> np.ndarray | None:
    """Brush numbers (H, W) from a painted RGB(A) canvas: the nearest palette colour ('#rrggbb')
    per painted pixel. Transparent or white (unpainted) pixels count as brush 0. None when
    nothing is painted."""
    if canvas is None:
        return None
    a = np.asarray(canvas)
    if a.ndim < 2 or min(a.shape[:2]) < 1:
        return None
    step = max(1, math.ceil(max(a.shape[:2]) / MAX_STYLE_MAP))  # a huge upload is read at most 1024 px wide
    a = a[::step, ::step]
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    rgb = a[..., :3].astype(np.int32)
    painted = np.ones(a.shape[:2], bool) if a.shape[-1] < 4 else a[..., 3] >= 128
    painted &= ~(rgb.min(-1) >= 235)  # the white paper
    if not painted.any():
        return None
    colours = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in palette], np.int32)
    labels = ((rgb[..., None, :] - colours[None, None]) ** 2).sum(-1).argmin(-1)
    labels[~painted] = 0
    return labels.astype(np.int64)


def paint(G, width: int, height: int, seed: int = 0, tileable: bool = True, style_map: np.ndarray | None = None,
          brushes: list[dict] | None = None, on_progress: Callable[[float], None] | None = None,
          feather: float | None = None, morph: tuple[int, int] | None = None,
          morph_direction: str = "horizontal", bits: int = 8,
          precision: str = "fp32") -> tuple[np.ndarray, dict[str, str]]:
    """A texture and its settings as text (for the file's metadata). Without a painted map the
    first brush styles the whole canvas; with one, the brushes up to the highest one painted.
    morph: two brush numbers (0-based); the canvas goes from the first brush to the second."""
    brushes = list(brushes or [{"source": None, "style_seed": None}])
    pair = None
    if morph is not None:
        a, b = (int(i) for i in morph)
        if not (0 <= a < len(brushes) and 0 <= b < len(brushes)):
            raise ConfigError(f"A morph goes between two brushes numbered 1 to {len(brushes)}; got {a + 1} and {b + 1}.")
        pair = (brushes[a], brushes[b])
        brushes, style_map = [brushes[a], brushes[b]], None
    else:
        brushes = brushes[:int(style_map.max()) + 1] if style_map is not None else brushes[:1]
    img = generate_texture(G, width, height, seed=seed, tileable=tileable, style_map=style_map,
                           brushes=brushes, on_progress=on_progress, feather=feather, morph=pair,
                           morph_direction=morph_direction, bits=bits, precision=precision)
    meta = {"software": "GAN Studio", "seed": str(seed), "tileable": str(bool(tileable)),
            "requested_size": f"{width}x{height}", "size": f"{img.shape[1]}x{img.shape[0]}",
            "brushes": json.dumps(brushes), "painted": str(style_map is not None),
            "feather_px": "default" if feather is None else f"{float(feather):g}",
            "morph": "none" if pair is None else f"{morph[0] + 1}->{morph[1] + 1} {morph_direction}"}
    if style_map is not None:  # the painted map itself, as a small PNG of brush numbers
        import base64
        import io

        from PIL import Image
        buf = io.BytesIO()
        Image.fromarray(np.asarray(style_map, np.uint8)).save(buf, format="PNG", optimize=True)
        meta["style_map_png_base64"] = base64.b64encode(buf.getvalue()).decode()
    return img, meta


def shrink(img: np.ndarray, side: int) -> np.ndarray:
    """The image scaled down so its longer side is at most `side` (unchanged if it fits)."""
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) <= side:
        return img
    s = side / max(h, w)
    im = Image.fromarray(img).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    return np.asarray(im)


def style_map_from_mask(mask: np.ndarray | None) -> np.ndarray | None:
    """Brush numbers from a black-and-white picture: light (>= 50 % grey) = brush 2, dark = brush 1;
    read at most MAX_STYLE_MAP px on a side. None without a picture."""
    if mask is None:
        return None
    a = np.asarray(mask)
    if a.ndim < 2 or min(a.shape[:2]) < 1:
        raise ConfigError("The mask must be a picture (black and white: white = brush 2, black = brush 1).")
    step = max(1, math.ceil(max(a.shape[:2]) / MAX_STYLE_MAP))
    a = a[::step, ::step].astype(np.float32)
    if a.ndim == 3:
        alpha = a[..., 3] / 255.0 if a.shape[-1] == 4 else 1.0
        a = a[..., :3].mean(-1) * alpha  # transparent counts as black
    return (a >= 128).astype(np.int64)


def views(img: np.ndarray, overview: int = 1024, crop: int = 768) -> tuple[np.ndarray, np.ndarray]:
    """Two views of a texture: the whole of it at most `overview` px, and its centre at 1:1 (at most
    `crop` px on a side), where the detail of a large texture can be judged."""
    h, w = img.shape[:2]
    ch, cw = min(h, crop), min(w, crop)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return shrink(img, overview), img[y0:y0 + ch, x0:x0 + cw]


class Cancelled(StudioError):
    """The user cancelled a texture while it was being made."""


class KeptTexture:
    """The newest texture (one, to bound memory) with its settings and the key of the request that
    made it, so that an export writes the very pixels that were shown when the settings on screen
    are still those; and a cancel flag for the texture being made."""

    def __init__(self):
        self._lock = threading.Lock()
        self._item: tuple[str, np.ndarray, dict, str | None] | None = None
        self._cancel = threading.Event()
        self.owner: str | None = None  # who is making a texture now (a session)

    def keep(self, img: np.ndarray, meta: dict[str, str], key: str | None = None) -> str:
        token = f"{time.time_ns()}"
        with self._lock:
            self._item = (token, img, meta, key)
        return token

    def take(self, token: str | None, key: str | None = None) -> tuple[np.ndarray, dict[str, str]] | None:
        """The texture kept under `token` (and made from the request `key`, if given), or None if
        another one was made since or the settings differ."""
        with self._lock:
            item = self._item
        if not item or not token or item[0] != token or (key is not None and item[3] != key):
            return None
        return item[1], item[2]

    def start(self, owner: str | None = None) -> None:
        self._cancel.clear()
        self.owner = owner

    def cancel(self, owner: str | None = None) -> bool:
        """Ask the texture being made (by `owner`, if given) to stop; False if it is not theirs."""
        if owner is not None and self.owner not in (None, owner):
            return False
        self._cancel.set()
        return True

    def watch(self, on_progress: Callable[[float], None] | None) -> Callable[[float], None]:
        """A progress callback that stops the work (raises Cancelled) once cancel() is called."""
        def step(f: float) -> None:
            if self._cancel.is_set():
                raise Cancelled("Cancelled; the texture on screen is the one made before.")
            if on_progress:
                on_progress(f)
        return step
