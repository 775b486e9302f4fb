"""Spatial GAN for textures (SGAN), with the periodic latent of PSGAN.

The generator is fully convolutional: `depth` upsampling layers (5x5 kernels by default), BatchNorm +
ReLU, tanh out. Each layer is a x2 resize (`upsample="nearest"`, the default, or `"bilinear"`)
followed by a convolution, or a stride-2 transposed convolution (`"transposed"`, the reference SGAN).
The transposed form overlaps its kernels unevenly and leaves a checkerboard (measured on the brick
photo: spectral peaks 450-2500x the photo's at the 2 px period); the resize forms have no such
pattern. Bilinear resizing made smooth, worm-like mortar lines in short runs, nearest-neighbour
resizing a brick grid (bench/texture_quality.py). Its input is a spatial noise tensor of
  [local noise (independent per position) | global style | periodic channels]
where the global style is a random code (and, for models fused from several source images, a
learned code per source) and the periodic channels are sin(k . x + phase) with wave vectors k
computed from the global style by a small MLP (1x1 convolutions, so the style may vary in space).
Output size = noise size x 2**depth, for any noise size.

Tileable mode: every upsampling layer pads its input circularly and the periodic wave
numbers are rounded to whole periods across the canvas, so the output is exactly periodic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..config import SGANConfig
from ..parallel import WHOLE, BatchShare


class UpConv(nn.Module):
    """Stride-2 transposed convolution that doubles H and W, with zero or circular padding."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool):
        super().__init__()
        self.k, self.pad = k, k // 2
        self.weight = nn.Parameter(torch.empty(cin, cout, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        nn.init.normal_(self.weight, 0.0, 0.02)
        self.circular = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.circular:
            return F.conv_transpose2d(x, self.weight, self.bias, 2, self.pad, output_padding=1)
        # A wrap of one input cell covers every output contribution of a kernel <= 5 wide.
        h, w = x.shape[-2:]
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="circular"), self.weight, self.bias, 2)
        o = self.pad + 2
        return y[..., o:o + 2 * h, o:o + 2 * w]


class ResizeConv(nn.Module):
    """x2 resize (nearest or bilinear), then a k x k convolution padded with zeros or circularly.
    Circular bilinear resizing wraps one input cell around before resizing, so the result is the
    resize of the periodic map (plain resizing would repeat the edge instead)."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool, mode: str = "nearest"):
        super().__init__()
        self.k, self.pad, self.mode = k, k // 2, mode
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.circular = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        elif self.circular:
            x = F.interpolate(F.pad(x, (1, 1, 1, 1), mode="circular"), scale_factor=2, mode="bilinear")[..., 2:-2, 2:-2]
        else:
            x = F.interpolate(x, scale_factor=2, mode="bilinear")
        mode = "circular" if self.circular else "constant"
        return F.conv2d(F.pad(x, (self.pad,) * 4, mode=mode), self.weight, self.bias)


def upsampler(kind: str, cin: int, cout: int, k: int, bias: bool) -> nn.Module:
    return UpConv(cin, cout, k, bias) if kind == "transposed" else ResizeConv(cin, cout, k, bias, kind)


@dataclass
class SpatialNoise:
    """The random inputs of the spatial generator for one canvas.

    local: (B, nz_local, h, w); style: (B, nz_global, h, w) random global code (broadcast or
    painted); sources: (B, n_sources, h, w) soft weights of the source textures (sum 1 per
    position); phase: (B, nz_periodic); offset: (y, x) of this canvas in noise cells, so tiles
    of a larger canvas get the right periodic phase; period: (h, w) of the whole canvas when
    tileable, else None.
    """

    local: torch.Tensor
    style: torch.Tensor
    sources: torch.Tensor
    phase: torch.Tensor
    offset: tuple[int, int] = (0, 0)
    period: tuple[int, int] | None = None

    def take(self, ys: torch.Tensor, xs: torch.Tensor) -> "SpatialNoise":
        """The sub-canvas at noise rows ys and columns xs (consecutive; taken modulo the canvas,
        so a tile of a tileable canvas may reach across its edge). ys[0], xs[0] give the offset."""
        h, w = self.local.shape[-2:]
        iy, ix = (ys % h)[:, None], (xs % w)[None, :]
        return SpatialNoise(self.local[..., iy, ix], self.style[..., iy, ix], self.sources[..., iy, ix],
                            self.phase, (self.offset[0] + int(ys[0]), self.offset[1] + int(xs[0])), self.period)

    def to(self, device, dtype: torch.dtype | None = None) -> "SpatialNoise":
        return SpatialNoise(self.local.to(device, dtype), self.style.to(device, dtype),
                            self.sources.to(device, dtype), self.phase.to(device, dtype), self.offset, self.period)


class SpatialGenerator(nn.Module):
    def __init__(self, cfg: SGANConfig):
        super().__init__()
        self.cfg = cfg
        self.use_sources = cfg.n_sources > 1
        style_dim = cfg.nz_global + (cfg.source_dim if self.use_sources else 0)
        if self.use_sources:
            self.source_embed = nn.Conv2d(cfg.n_sources, cfg.source_dim, 1, bias=False)
            nn.init.normal_(self.source_embed.weight, 0.0, 1.0)
        if cfg.nz_periodic:
            self.wave = nn.Sequential(nn.Conv2d(style_dim, 64, 1), nn.ReLU(True),
                                      nn.Conv2d(64, 2 * cfg.nz_periodic, 1))
        in_ch = cfg.nz_local + style_dim + cfg.nz_periodic
        hidden = [min(cfg.g_channels * 2 ** (cfg.depth - 2 - i), cfg.max_channels) for i in range(cfg.depth - 1)]
        chans = [in_ch] + hidden + [3]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            last = i == cfg.depth - 1
            layers.append(upsampler(cfg.upsample, cin, cout, cfg.kernel, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.net = nn.Sequential(*layers)

    def set_tileable(self, on: bool) -> "SpatialGenerator":
        for m in self.modules():
            if isinstance(m, (UpConv, ResizeConv)):
                m.circular = on
        return self

    @property
    def tileable(self) -> bool:
        return next(m for m in self.modules() if isinstance(m, (UpConv, ResizeConv))).circular

    @property
    def margin_cells(self) -> int:
        """Noise cells on each side that an output pixel can depend on (rounded up).

        Transposed 5x5 or 3x3: each stride-2 layer reaches at most one input cell to either side,
        under 2 cells over all layers. Resize + k x k: the layer at 2**L pixels per cell reaches
        k//2 pixels there plus one for the resize's rounding, (k//2 + 1) / 2**L cells, and bilinear
        resizing one more pixel of the coarser map, 1 / 2**(L-1) cells; summed over L = 1..depth
        that is below k//2 + 1 cells (nearest) and k//2 + 3 (bilinear)."""
        if self.cfg.upsample == "transposed":
            return 2
        return self.cfg.kernel // 2 + (1 if self.cfg.upsample == "nearest" else 3)

    def style_map(self, noise: SpatialNoise) -> torch.Tensor:
        parts = [noise.style]
        if self.use_sources:
            parts.append(self.source_embed(noise.sources.to(noise.style.dtype)))
        return torch.cat(parts, 1)

    def periodic(self, style: torch.Tensor, noise: SpatialNoise) -> torch.Tensor:
        b, _, h, w = style.shape
        k = math.pi * torch.tanh(self.wave(style)).view(b, 2, -1, h, w)  # radians per noise cell
        if noise.period is not None:  # whole periods across the canvas: exact wrap-around
            ph, pw = noise.period
            k = torch.stack([torch.round(k[:, 0] * ph / (2 * math.pi)) * (2 * math.pi / ph),
                             torch.round(k[:, 1] * pw / (2 * math.pi)) * (2 * math.pi / pw)], 1)
        ys = torch.arange(h, device=style.device, dtype=style.dtype) + noise.offset[0]
        xs = torch.arange(w, device=style.device, dtype=style.dtype) + noise.offset[1]
        arg = k[:, 0] * ys[:, None] + k[:, 1] * xs[None, :] + noise.phase[:, :, None, None]
        return torch.sin(arg)

    def forward(self, noise: SpatialNoise) -> torch.Tensor:
        style = self.style_map(noise)
        parts = [noise.local, style]
        if self.cfg.nz_periodic:
            parts.append(self.periodic(style, noise))
        return self.net(torch.cat(parts, 1))

    def make_noise(self, batch: int, h: int, w: int, gen: torch.Generator | None = None,
                   sources: torch.Tensor | None = None, style: torch.Tensor | None = None,
                   tileable: bool = False, share: BatchShare = WHOLE) -> SpatialNoise:
        """Noise for a canvas of h x w noise cells (output (h, w) * 2**depth pixels).

        sources: None (random source per sample), (B,) indices, or (B, n_sources, h, w) weights.
        style: None (one random code per sample, broadcast), (B, nz_global) or a (B, nz_global, h, w) map.
        share: in data-parallel training, this process's rows of a global batch (parallel.py).
        """
        c = self.cfg
        local = share.randn(gen, batch, c.nz_local, h, w)
        if style is None:
            style = share.randn(gen, batch, c.nz_global)
        if style.dim() == 2:
            style = style[:, :, None, None].expand(-1, -1, h, w)
        if sources is None:
            sources = share.randint(gen, 0, c.n_sources, batch)
        if sources.dim() == 1:
            sources = F.one_hot(sources, c.n_sources).float()[:, :, None, None].expand(-1, -1, h, w)
        phase = share.rand(gen, batch, c.nz_periodic) * (2 * math.pi)
        return SpatialNoise(local, style.contiguous(), sources.contiguous(), phase,
                            period=(h, w) if tileable else None)


class SpatialDiscriminator(nn.Module):
    """Fully convolutional critic: stride-2 convolutions, one score per spatial position."""

    def __init__(self, cfg: SGANConfig):
        super().__init__()
        self.cfg = cfg
        ch = [min(cfg.d_channels * 2**i, cfg.max_channels) for i in range(cfg.depth)]
        layers: list[nn.Module] = []
        for cin, cout in zip([3] + ch[:-1], ch):
            layers += [spectral_norm(nn.Conv2d(cin, cout, cfg.kernel, 2, cfg.kernel // 2)), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.out = spectral_norm(nn.Conv2d(ch[-1], 1, 1))
        self.embed = spectral_norm(nn.Embedding(cfg.n_sources, ch[-1])) if cfg.n_sources > 1 else None

    def forward(self, x: torch.Tensor, src: torch.Tensor | None = None) -> torch.Tensor:
        """Returns a score map (B, h, w) for images (B, 3, H, W) and their source indices (B,)."""
        h = self.features(x)
        score = self.out(h).squeeze(1)
        if self.embed is not None and src is not None:
            score = score + torch.einsum("bchw,bc->bhw", h, self.embed(src).to(h.dtype))
        return score
