"""Material maps from a colour texture: height, tangent-space normal, roughness and ambient
occlusion, and a small lit view of the relief.

- height: the luminance, stretched between its 1st and 99th percentile, blurred (a Gaussian of
  `blur` px), turned upside down with `invert` (dark = high) and scaled by `contrast` around the
  middle; kept as 16-bit.
- normal: Scharr derivatives of the height (OpenGL convention: red = +x to the right, green = +y
  up, blue = out of the surface), `strength` x 8 px = the relief of the full height range.
- roughness (an approximation): darker, lower places are rougher: 0.4 + 0.6 x (1 - height).
- ao (an approximation, cavity occlusion): places lower than their surroundings (a Gaussian of
  `ao_radius` px) are darker.

Every map is computed in strips of STRIP rows with a margin of neighbouring rows, never as float
copies of the whole image: at 8192 px the maps take 448 MiB (7 bytes per pixel) and the strips
about 80 MiB more (bench/texture_maps.py). When the texture tiles, the margins and the blurs wrap around, so the maps tile
exactly as the texture does.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

MAP_NAMES = ("height", "normal", "roughness", "ao")
STRIP = 128  # rows per strip
RELIEF_PX = 8.0  # relief (px) of the full height range at strength 1
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclass
class MapSettings:
    blur: float = 1.0  # px, Gaussian sigma of the height
    contrast: float = 1.0  # height contrast around the middle
    strength: float = 1.0  # normal map relief
    ao_radius: float = 8.0  # px
    tileable: bool = True
    invert: bool = False  # dark = high (for bright joints that lie deep, like mortar)

    def check(self) -> "MapSettings":
        for name, lo, hi in (("blur", 0, 32), ("contrast", 0.1, 10), ("strength", 0.01, 20), ("ao_radius", 1, 64)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise ConfigError(f"Map {name.replace('_', ' ')} must be between {lo:g} and {hi:g}, got {v}.")
        return self

    def meta(self) -> dict[str, str]:
        return {f"map_{k}": str(v) for k, v in asdict(self).items()}


def parse_maps(names: str | list[str] | None) -> list[str]:
    """Map names from a list or comma-separated text ('' or None: none; 'all': every map)."""
    if names is None:
        return []
    items = [n.strip().lower() for n in (names.split(",") if isinstance(names, str) else names)]
    items = [n for n in items if n and n != "none"]
    if items == ["all"]:
        return list(MAP_NAMES)
    bad = [n for n in items if n not in MAP_NAMES]
    if bad:
        raise ConfigError(f"Unknown map {bad[0]!r}; choose from {', '.join(MAP_NAMES)} (or all).")
    return [n for n in MAP_NAMES if n in items]


def _strips(h: int, halo: int, wrap: bool) -> Iterator[tuple[int, int, np.ndarray]]:
    """(y0, y1, row indices y0 - halo .. y1 + halo, wrapped around or held at the edges)."""
    rows = STRIP
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        idx = np.arange(y0 - halo, y1 + halo)
        yield y0, y1, (idx % h if wrap else idx.clip(0, h - 1))


def _kernel(sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(block: torch.Tensor, sigma: float, wrap: bool) -> torch.Tensor:
    """Gaussian blur of a (rows, W) float block; rows lose nothing (the caller adds the margin),
    columns wrap around or repeat the edge."""
    if sigma <= 0:
        return block
    k = _kernel(sigma)
    r = k.numel() // 2
    x = block[None, None]
    w = x.shape[-1]
    cols = torch.arange(-r, w + r)
    x = x.index_select(-1, cols % w if wrap else cols.clamp(0, w - 1))
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x[0, 0]


def _halo(sigma: float) -> int:
    return int(math.ceil(3 * sigma)) + 1 if sigma > 0 else 0


def _range(img: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentile of the luminance, from at most about a million pixels."""
    step = max(1, int(math.ceil(math.sqrt(img.shape[0] * img.shape[1] / 1e6))))
    lum = img[::step, ::step, :3].astype(np.float32) @ _LUMA
    lo, hi = np.percentile(lum, [1, 99])
    return float(lo), float(max(hi, lo + 1.0))


@torch.inference_mode()
def height_map(img: np.ndarray, s: MapSettings, on_progress: Callable[[float], None] | None = None) -> np.ndarray:
    """(H, W) uint16 height from an (H, W, 3) uint8 texture."""
    s.check()
    h, w = img.shape[:2]
    lo, hi = _range(img)
    out = np.empty((h, w), np.uint16)
    halo = _halo(s.blur)
    for y0, y1, idx in _strips(h, halo, s.tileable):
        lum = torch.from_numpy(img[idx, :, :3].astype(np.float32) @ _LUMA)
        x = (_blur(lum, s.blur, s.tileable)[halo:halo + y1 - y0] - lo) / (hi - lo)
        x = 1 - x if s.invert else x
        x = (0.5 + s.contrast * (x - 0.5)).clamp(0, 1)
        out[y0:y1] = (x * 65535 + 0.5).to(torch.int32).numpy().astype(np.uint16)
        if on_progress:
            on_progress(y1 / h)
    return out


_SCHARR = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 32.0


@torch.inference_mode()
def normal_map(height: np.ndarray, s: MapSettings) -> np.ndarray:
    """(H, W, 3) uint8 tangent-space normals (OpenGL, green up) from a uint16 height map."""
    s.check()
    h, w = height.shape
    out = np.empty((h, w, 3), np.uint8)
    k = torch.stack([_SCHARR, _SCHARR.t()])[:, None]  # d/dx (columns), d/drow
    depth = s.strength * RELIEF_PX
    for y0, y1, idx in _strips(h, 1, s.tileable):
        x = torch.from_numpy(height[idx].astype(np.float32) / 65535.0)[None, None]
        x = F.pad(x, (1, 1, 0, 0), mode="circular" if s.tileable else "replicate")
        g = F.conv2d(x, k)[0] * depth  # (2, rows, W): slope in px of relief per px
        n = torch.stack([-g[0], g[1], torch.ones_like(g[0])], -1)  # up is -row: ny = -(-d/drow)
        n = n / n.norm(dim=-1, keepdim=True)
        out[y0:y1] = ((n * 0.5 + 0.5) * 255 + 0.5).clamp(0, 255).to(torch.uint8).numpy()
    return out


def decode_normals(normal: np.ndarray) -> np.ndarray:
    """Unit vectors (H, W, 3) float32 back from an 8-bit normal map."""
    return normal.astype(np.float32) / 255.0 * 2 - 1


@torch.inference_mode()
def roughness_map(height: np.ndarray, s: MapSettings) -> np.ndarray:
    """(H, W) uint8 roughness: 0.4 + 0.6 x (1 - height)."""
    out = np.empty(height.shape, np.uint8)
    for y0, y1, _ in _strips(height.shape[0], 0, s.tileable):
        x = height[y0:y1].astype(np.float32) / 65535.0
        out[y0:y1] = np.rint((0.4 + 0.6 * (1 - x)) * 255).astype(np.uint8)
    return out


@torch.inference_mode()
def ao_map(height: np.ndarray, s: MapSettings) -> np.ndarray:
    """(H, W) uint8 cavity occlusion: 1 - 2 x (how far a place lies below its surroundings)."""
    s.check()
    h, w = height.shape
    out = np.empty((h, w), np.uint8)
    halo = _halo(s.ao_radius)
    for y0, y1, idx in _strips(h, halo, s.tileable):
        x = torch.from_numpy(height[idx].astype(np.float32) / 65535.0)
        around = _blur(x, s.ao_radius, s.tileable)
        ao = (1 - 2 * (around - x).clamp_min(0))[halo:halo + y1 - y0].clamp(0, 1)
        out[y0:y1] = (ao * 255 + 0.5).to(torch.uint8).numpy()
    return out


def make_maps(img: np.ndarray, names: list[str], s: MapSettings,
              on_progress: Callable[[float], None] | None = None) -> dict[str, np.ndarray]:
    """The maps named (any of MAP_NAMES) of a texture; the height is made whenever one needs it."""
    names = parse_maps(names)
    if not names:
        return {}
    height = height_map(img, s, on_progress=(lambda f: on_progress(0.5 * f)) if on_progress else None)
    out = {"height": height} if "height" in names else {}
    makers = {"normal": normal_map, "roughness": roughness_map, "ao": ao_map}
    rest = [n for n in names if n != "height"]
    for i, n in enumerate(rest):
        out[n] = makers[n](height, s)
        if on_progress:
            on_progress(0.5 + 0.5 * (i + 1) / len(rest))
    return out


def lit_view(normal: np.ndarray, azimuth: float = 135.0, elevation: float = 45.0,
             color: np.ndarray | None = None, side: int = 512) -> np.ndarray:
    """The relief lit by a light from `azimuth` degrees (0 = from the right, 90 = from the top) at
    `elevation` degrees above the surface: the normal map (shrunk to at most `side` px) shaded,
    times the colour texture if given (flat ground keeps its colour). (H, W, 3) uint8."""
    from .texture import shrink

    n = decode_normals(shrink(normal, side))
    n /= np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-6)
    a, e = math.radians(azimuth), math.radians(elevation)
    light = np.array([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)], np.float32)
    shade = ((n @ light) / math.sin(max(e, 0.05))).clip(0.1, 1.6)  # 1 on flat ground
    base = np.full(n.shape, 0.6, np.float32) if color is None else \
        shrink(color, side)[..., :3].astype(np.float32) / 255.0
    return (base * shade[..., None] * 255).clip(0, 255).astype(np.uint8)
