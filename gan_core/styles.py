"""Styles of a spatial model as points of its texture manifold: a brush's code (random global code
and source weights), random styles between the sources, and paths from one style to another that
change the look evenly.

A fused model's look does not follow its source weights linearly (on the shipped demo, 0.3 of
brick already looks like brick), so a straight line of weights would jump from one texture to the
other. `even_path` measures the look along the line (a few small renders: tone, contrast and
edge statistics at three scales) and returns the weights at equal steps of that measured look;
morphs, random styles and feathered edges are placed on that path.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError
from .nets.sgan import SpatialNoise

PATH_STEPS = 17  # points measured along a path
_PROBE_CELLS = 4  # probe renders are 4 x 4 noise cells (128 px on the demo)


def _code(G, seed: int) -> torch.Tensor:
    return torch.randn(G.cfg.nz_global, generator=torch.Generator().manual_seed(int(seed)))


def source_weights(G, source: int | None, seed: int) -> torch.Tensor:
    """A brush's source weights: one source, or (None) a random style between two sources,
    chosen by `seed`, placed evenly on the path between them (never at either end)."""
    n = G.cfg.n_sources
    if source is not None:
        if not 0 <= int(source) < n:
            raise ConfigError(f"source must be between 0 and {n - 1}; this model has {n} source image(s).")
        return F.one_hot(torch.tensor(int(source)), n).float()
    if n == 1:
        return torch.ones(1)
    g = torch.Generator().manual_seed(int(seed) + 104729)
    a, b = torch.randperm(n, generator=g)[:2].tolist()
    pos = 0.2 + 0.6 * float(torch.rand(1, generator=g))
    wa, wb = F.one_hot(torch.tensor(a), n).float(), F.one_hot(torch.tensor(b), n).float()
    return along(G, wa, wb, torch.tensor([pos]))[0]


def brush_code(G, brush: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(global code, source weights) of a brush {"source": int | None, "style_seed": int | None}; a
    brush without a style seed takes the texture's seed."""
    s = brush.get("style_seed")
    s = int(seed) + 7919 if s is None else int(s)
    return _code(G, s), source_weights(G, brush.get("source"), s)


@torch.inference_mode()
def _look(G, weights: torch.Tensor, code: torch.Tensor) -> np.ndarray:
    """Look statistics of small renders at these source weights (rows of `weights`).

    Every probe is one canvas of the probe size plus one noise cell on each side (the margin the
    model trained with: what it draws there is not judged), all in one batch, and only the middle
    is measured. Tileable probes would need the generator's whole reach as a wrapped margin, 2.8
    times the pixels: a path's 34 probes took 4.3 s on 2 CPU cores (AVX2) that way, 1.8 s this way."""
    c, n, m = G.cfg, _PROBE_CELLS, 1
    seeds = (11, 12)
    side = n + 2 * m
    local, phase = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        local.append(torch.randn(1, c.nz_local, side, side, generator=gen))
        phase.append(torch.rand(1, c.nz_periodic, generator=gen) * 2 * math.pi)
    k, b = len(seeds), len(weights)
    dev, dtype = next(G.parameters()).device, next(G.parameters()).dtype
    noise = SpatialNoise(torch.cat(local).repeat(b, 1, 1, 1),  # row i: weights i // k, seed i % k
                         code[None, :, None, None].expand(b * k, -1, side, side).contiguous(),
                         weights.repeat_interleave(k, 0)[:, :, None, None].expand(-1, -1, side, side).contiguous(),
                         torch.cat(phase).repeat(b, 1)).to(dev, dtype)
    was = G.tileable
    G.eval().set_tileable(False)
    try:
        lo, hi = m * c.scale, (m + n) * c.scale
        imgs = ((G(noise)[:, :, lo:hi, lo:hi].float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
    finally:
        G.set_tileable(was)
    feats = []
    for img in imgs:
        lum = img.mean(-1)
        f = [img.mean((0, 1)), [lum.std()]]
        for s in (1, 2, 4):
            g = lum[: lum.shape[0] // s * s, : lum.shape[1] // s * s]
            g = g.reshape(g.shape[0] // s, s, g.shape[1] // s, s).mean((1, 3))
            f.append([np.abs(np.diff(g, axis=0)).mean(), np.abs(np.diff(g, axis=1)).mean()])
        feats.append(np.concatenate([np.ravel(x) for x in f]))
    return np.array(feats).reshape(b, k, -1).mean(1)


_PATHS: dict[tuple, np.ndarray] = {}


def _fingerprint(G) -> str:
    """The generator's weights as a short digest: a path measured on one load of a model serves
    every later load of the same weights (the CLI and the studio load a model more than once), and
    new weights never find an old path (an id() could be reused by a new object)."""
    h = hashlib.blake2b(digest_size=16)
    for t in G.state_dict().values():
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def even_path(G, wa: torch.Tensor, wb: torch.Tensor) -> np.ndarray:
    """Where the look has gone a fraction p of the way from wa to wb: the weight fractions t at
    p = 0, 1/(PATH_STEPS-1), ..., 1 (increasing; straight when the look changes evenly). The path
    from wb to wa is the same one run backwards, so it is measured once for both directions."""
    fp = _fingerprint(G)
    key, back = (fp, tuple(wa.tolist()), tuple(wb.tolist())), (fp, tuple(wb.tolist()), tuple(wa.tolist()))
    if key not in _PATHS and back in _PATHS:
        _PATHS[key] = 1.0 - _PATHS[back][::-1]
    if key not in _PATHS:
        t = np.linspace(0, 1, PATH_STEPS)
        if torch.equal(wa, wb):
            _PATHS[key] = t
        else:
            w = torch.stack([wa + float(x) * (wb - wa) for x in t])
            f = _look(G, w, torch.zeros(G.cfg.nz_global))
            f = (f - f.mean(0)) / (f.std(0) + 1e-6)  # every statistic counts alike
            step = np.linalg.norm(np.diff(f, axis=0), axis=1) + 1e-3  # never a flat step
            p = np.concatenate([[0.0], np.cumsum(step)])
            p /= p[-1]  # exactly 1 at the end (step.sum() can differ from the running sum in the last bit)
            _PATHS[key] = np.interp(np.linspace(0, 1, PATH_STEPS), p, t)
        if len(_PATHS) > 64:
            _PATHS.pop(next(iter(_PATHS)))
    return _PATHS[key]


def along(G, wa: torch.Tensor, wb: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Source weights at look fractions p (any shape) of the way from wa to wb: (*p.shape, n)."""
    if torch.equal(wa, wb):
        return wa.expand(*p.shape, -1).clone()
    grid = torch.linspace(0, 1, PATH_STEPS)
    t = torch.as_tensor(even_path(G, wa, wb), dtype=torch.float32)
    pf = p.clamp(0, 1).reshape(-1)
    i = torch.clamp((pf * (PATH_STEPS - 1)).floor().long(), 0, PATH_STEPS - 2)
    frac = (pf - grid[i]) * (PATH_STEPS - 1)
    tt = (t[i] + frac * (t[i + 1] - t[i])).reshape(p.shape)
    return wa + tt[..., None] * (wb - wa)


def morph_profile(h: int, w: int, direction: str, tileable: bool) -> torch.Tensor:
    """The morph's position (h, w) in [0, 1] per noise cell: 0 at the start side, 1 at the end.
    Tileable textures go there and back (a cosine), so the wrap-around stays seamless."""
    if direction not in ("horizontal", "vertical"):
        raise ConfigError(f"The morph runs horizontal or vertical, not {direction!r}.")
    n = w if direction == "horizontal" else h
    x = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    prof = (1 - torch.cos(2 * math.pi * x)) / 2 if tileable else x
    return prof[None, :].expand(h, w) if direction == "horizontal" else prof[:, None].expand(h, w)


def morph_codes(G, a: dict, b: dict, seed: int, h: int, w: int, direction: str = "horizontal",
                tileable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell global codes (nz_global, h, w) and source weights (n_sources, h, w) of a morph
    from brush a to brush b across the canvas, evenly in look."""
    za, wa = brush_code(G, a, seed)
    zb, wb = brush_code(G, b, seed)
    p = morph_profile(h, w, direction, tileable)
    src = along(G, wa, wb, p).permute(2, 0, 1)
    style = za[:, None, None] + p[None] * (zb - za)[:, None, None]
    return style.contiguous(), src.contiguous()
