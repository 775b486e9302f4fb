"""Conditional GAN for square images.

Generator: noise z (nz) and a class embedding (embed_dim) -> linear to 4x4 features -> one upsampling
stage per doubling (BatchNorm + ReLU) up to the resolution -> 3x3 conv -> tanh. A stage is a x2
resize (nearest by default) followed by a 3x3 convolution (`arch="upconv"`, the default), or the
reference's stride-2 4x4 transposed convolution (`arch="dcgan"`). A transposed convolution with
stride 2 adds its kernel's taps unevenly to even and odd output pixels, which draws a checkerboard
(measured: spectral peaks up to 2000x the real images' at the 2 px period); resize-then-convolve
has no such pattern (Odena et al. 2016). With `g_extra` N the first N stages (not the last) draw
with a second 3x3 convolution (SecondConv), which the studio recipe uses for the coarse stages.
With `cond_bn` the class also sets each upsampling stage's BatchNorm gain and bias (conditional
BatchNorm, as in SNGAN's and BigGAN's class-conditional generators: a linear map of the class
embedding per stage), so the class shapes every scale rather than the 4x4 start alone.
With `latent_bn` z also sets each upsampling stage's BatchNorm gain and bias (with `cond_bn`, z and
the class together), as BigGAN feeds its latent to every stage: the seed reaches each scale through a
path of its own instead of only through the 4x4 start, where a young generator's stages tend to lose
it (every seed of a class drawing one picture).
With `noise_maps` each upsampling convolution's output gets a per-pixel noise map with a learned
gain per channel (starting at zero), as StyleGAN's noise inputs give local detail (where a joint or
a stone edge falls) a source of its own. The map is a fixed random projection of z, not fresh noise:
an image stays a function of its seed and class, so seeds, truncation and interpolation behave as
without it. `noise_last=False` leaves the last, full-resolution stage without a map. `noise_start`
starts the gains of the coarse stages' maps (all but the last two: at 64 px those at 8 and 16 px,
where the layout is set) at that value instead of zero (None, a value a training run sets from its
time budget, builds as zero). `noise_lr` makes each map's gain that many times its parameter (an
equalised learning rate: Adam moves the gain that many times as far per step; 1: the parameter is
the gain).
With `sle` (skip-layer excitation, as in FastGAN) the features of each stage, pooled to 4x4, set a
gain between 0 and 1 per channel on the output of the stage two doublings finer: the coarse layout
(a wall's tilt, where the sky is) steers which of the fine stage's features are drawn, through a
path that skips the stages between.
With `half_chroma` the image is drawn as brightness at full resolution (the last stage) and colour
at half resolution (the stage before, resized x2 bilinearly), as JPEG stores colour: a photo's
colour changes more slowly than its brightness, and a generator that draws all three channels from
its last, finest features makes pixel-sized colour speckle on grey subjects (purple-green dots on
walls and gravel) and most of its 2 px diagonal checkerboard (in the colour, not the brightness).
Brightness is the direction (1, 1, 1) of RGB and colour the two directions across it, so a zero
colour map draws exact greys; the three are added before the tanh.
With `colour_gate` (and `half_chroma`) the class embedding also sets a gain between 0 and 2 on the
colour planes (1 for a new model). A class of grey photos (walls, gravel) can then switch its colour
off with one number, where otherwise the colour planes must learn to be zero from its features
alone. The gain's logit is a linear map of the embedding times COLOUR_GATE_LR, so that a class can
turn its colour off within a few hundred steps; blended classes blend their logits.
With `skip_rgb` (a size in px) every stage up to that size also draws a small image of its own (a
1x1 convolution to three planes), and these are resized x2 bilinearly and summed stage by stage into
the final picture (StyleGAN2's "skip" generator): the coarse stages, which set the layout, then
reach the image and the critic's gradient directly rather than only through the finer stages.
`g_padding="reflect"` pads the generator's convolutions by mirroring instead of with zeros, so the
image has no border for the generator to draw from (an option; it did not remove the checkerboard).
Critic: spectral normalization on every weight layer, LeakyReLU(0.2), no BatchNorm (the gradient
penalty is defined per sample, which batch statistics would break). Class conditioning by
projection (score + <embed(y), features>), or the reference's concatenation of the embedding as
extra input planes.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..config import CGANConfig
from ..submodes import class_of


COLOUR_GATE_LR = 4.0  # the gate's logit is this times a linear map of the embedding (equalised learning rate)


def _widths(base: int, stages: int, cap: int = 512) -> list[int]:
    """Channel widths from the coarsest (4x4) to the finest stage: base * 2**k, capped."""
    return [min(base * 2 ** (stages - i), cap) for i in range(stages + 1)]


class CondGenerator(nn.Module):
    # the spectral equaliser's gains (classes, 3, R, R) that sampling.generate applies to the
    # pictures, set by checkpoint.load_generator and the trainer; None: pictures as drawn
    spectral_gain: torch.Tensor | None = None

    def __init__(self, cfg: CGANConfig):
        super().__init__()
        self.cfg = cfg
        stages = int(math.log2(cfg.resolution)) - 2
        ch = _widths(cfg.g_channels, stages)
        self.embed = nn.Embedding(cfg.n_classes, cfg.embed_dim)
        self.fc = nn.Linear(cfg.nz + cfg.embed_dim, ch[0] * 16)
        self.bn0 = nn.BatchNorm2d(ch[0])
        layers: list[nn.Module] = []
        # what sets the stages' BatchNorm gains and biases: the class (cond_bn), z (latent_bn), or both
        cbn_dim = (cfg.embed_dim if cfg.cond_bn else 0) + (cfg.nz if cfg.latent_bn else 0)
        for i, (cin, cout) in enumerate(zip(ch[:-1], ch[1:])):
            if cfg.arch == "upconv":  # resize, then a 3x3 convolution: no stride pattern
                layers += [nn.Upsample(scale_factor=2, mode=cfg.upsample), nn.Conv2d(cin, cout, 3, 1, 1, bias=False,
                                                                                   padding_mode=cfg.g_padding)]
            else:
                layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False))
            layers.append(CondBatchNorm(cout, cbn_dim) if cbn_dim else nn.BatchNorm2d(cout))
            if i < min(cfg.g_extra, stages - 1):  # a second convolution at this size (not at the last stage)
                layers.append(SecondConv(cout, cfg.g_padding))
            layers.append(nn.ReLU(True))
        self.up = nn.Sequential(*layers)
        self.noise_gain = nn.ParameterList()
        if cfg.noise_maps:  # fixed projections z -> (size x size) map per stage, from a fixed seed
            g = torch.Generator().manual_seed(0)
            for i, cout in enumerate(ch[1:] if cfg.noise_last else ch[1:-1]):
                size = 8 * 2 ** i
                self.register_buffer(f"noise_proj{i}", torch.randn(cfg.nz, size * size, generator=g)
                                     / math.sqrt(cfg.nz), persistent=False)
                coarse = i < stages - 2  # the stages that set the layout; the last two draw detail
                start = (cfg.noise_start or 0.0) if coarse else 0.0
                self.noise_gain.append(nn.Parameter(torch.full((cout,), start / cfg.noise_lr)))
        # skip-layer excitation (FastGAN): stage k's features, pooled to 4x4, set a gain per channel
        # (0-1) on stage k + 2's output
        self.sle = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(ch[k + 1], ch[k + 3], 4), nn.LeakyReLU(0.1),
                          nn.Conv2d(ch[k + 3], ch[k + 3], 1), nn.Sigmoid())
            for k in range(stages - 2)) if cfg.sle else nn.ModuleList()
        # skip images (StyleGAN2's "skip" generator): each stage up to skip_rgb px draws a 3-plane image
        # of its own size, in the generator's colour space (opponent planes with half_chroma, else RGB),
        # resized x2 bilinearly and added stage by stage to the final picture
        n_skip = int(math.log2(cfg.skip_rgb)) - 2 if cfg.skip_rgb else 0  # the stages of 8 .. skip_rgb px
        self.skip = nn.ModuleList(nn.Conv2d(c, 3, 1) for c in ch[1:1 + n_skip])
        if cfg.half_chroma:  # brightness from the last stage, colour from the one before (half size)
            self.to_rgb = nn.Conv2d(ch[-1], 1, 3, 1, 1, padding_mode=cfg.g_padding)
            self.to_chroma = nn.Conv2d(ch[-2], 2, 3, 1, 1, padding_mode=cfg.g_padding)
            self.register_buffer("opponent", _opponent_basis(), persistent=False)
            if cfg.colour_gate:
                self.colour_gate = nn.Linear(cfg.embed_dim, 1)
        else:
            self.to_rgb = nn.Conv2d(ch[-1], 3, 3, 1, 1, padding_mode=cfg.g_padding)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.normal_(self.embed.weight, 0.0, 1.0)
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        if cfg.colour_gate:  # a gain of exactly 1 to start with
            nn.init.zeros_(self.colour_gate.weight)
            nn.init.zeros_(self.colour_gate.bias)

    def class_embedding(self, weights: torch.Tensor) -> torch.Tensor:
        """Blend class embeddings: weights (B, n_classes), normalised to sum 1 per row."""
        w = weights.float().clamp_min(0)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-8)
        return w @ self.embed.weight

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None,
                embedding: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, nz); either class indices y (B,) or a ready class embedding (B, embed_dim)."""
        e = self.embed(y) if embedding is None else embedding
        h = self.fc(torch.cat([z, e.to(z.dtype)], 1)).view(z.shape[0], -1, 4, 4)
        h = torch.relu(self.bn0(h))
        outs: list[torch.Tensor] = []  # each finished stage's output; its length is the current stage
        skip: torch.Tensor | None = None  # with skip_rgb: the coarse stages' images so far
        parts = ([e.to(z.dtype)] if self.cfg.cond_bn else []) + ([z] if self.cfg.latent_bn else [])
        c = torch.cat(parts, 1) if parts else None
        for m in self.up:  # conditional BatchNorm (cond_bn, latent_bn) also takes the class and/or z
            h = m(h, c) if isinstance(m, CondBatchNorm) else m(h)
            k = len(outs)
            if isinstance(m, nn.ReLU):  # the end of stage k
                if 2 <= k < len(self.sle) + 2:
                    h = h * self.sle[k - 2](outs[k - 2])
                outs.append(h)
                if k < len(self.skip):
                    pic = self.skip[k](h)
                    skip = pic if skip is None else pic + _up2(skip)
            elif k < len(self.noise_gain) and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                size = h.shape[-1]
                noise = (z.float() @ getattr(self, f"noise_proj{k}")).view(-1, 1, size, size)
                gain = self.noise_gain[k] * self.cfg.noise_lr
                h = h + gain.view(1, -1, 1, 1).to(h.dtype) * noise.to(h.dtype)
        if not self.cfg.rgb_notch:
            x = self.to_rgb(h)
        else:
            h = F.pad(h, (1, 1, 1, 1), mode="reflect" if self.cfg.g_padding == "reflect" else "constant")
            x = F.conv2d(h, notch_2px(self.to_rgb.weight), self.to_rgb.bias)
        if skip is not None:  # resized up to the picture's size from the last stage that drew one
            while skip.shape[-1] < x.shape[-1]:
                skip = _up2(skip)
            skip = skip.to(x.dtype)
        if self.cfg.half_chroma:
            chroma = _up2(self.to_chroma(outs[-2]))
            if skip is not None:
                x, chroma = x + skip[:, :1], chroma + skip[:, 1:]
            if self.cfg.colour_gate:
                chroma = chroma * self.colour_gain(e).to(chroma.dtype).view(-1, 1, 1, 1)
            x = self.opponent_to_rgb(x, chroma)
        elif skip is not None:
            x = x + skip
        return torch.tanh(x)

    def colour_gain(self, e: torch.Tensor) -> torch.Tensor:
        """The colour gate's gain (B,) for class embeddings e (B, embed_dim): between 0 and 2."""
        return 2 * torch.sigmoid(COLOUR_GATE_LR * self.colour_gate(e.float()).squeeze(1))

    def opponent_to_rgb(self, luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
        """Brightness (B, 1, H, W) and two colour planes (B, 2, H, W) -> RGB (before the tanh)."""
        return torch.einsum("kc,bkhw->bchw", self.opponent.to(luma.dtype), torch.cat([luma, chroma.to(luma.dtype)], 1))


class SecondConv(nn.Sequential):
    """ReLU, 3x3 convolution and BatchNorm inside a stage (g_extra): the stage draws with two
    convolutions at its size, as most image generators do, where the layout of a coarse stage needs
    more than one 3x3 step. One module, so the forward pass still counts a stage by its last ReLU."""

    def __init__(self, channels: int, padding_mode: str):
        super().__init__(nn.ReLU(True), nn.Conv2d(channels, channels, 3, 1, 1, bias=False, padding_mode=padding_mode),
                         nn.BatchNorm2d(channels))


def _up2(x: torch.Tensor) -> torch.Tensor:
    """x2 bilinear resize: smooth, so it adds nothing at the 2 px period."""
    return F.interpolate(x, scale_factor=2, mode="bilinear")


class CondBatchNorm(nn.Module):
    """BatchNorm without its own affine parameters; gain 1 + A c and bias B c from a condition c
    (B, cond_dim): the class embedding, z, or both side by side. A and B start at zero: a new model
    starts as a plain BatchNorm."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c.to(h.dtype)
        return self.bn(h) * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


def _opponent_basis() -> torch.Tensor:
    """Rows: brightness (1, 1, 1) and the two colour directions across it, (1, -1, 0) and (1, 1, -2),
    each of unit length, so the three planes start at the same scale."""
    b = torch.tensor([[1.0, 1, 1], [1, -1, 0], [1, 1, -2]])
    return b / b.norm(dim=1, keepdim=True)


def notch_2px(w: torch.Tensor) -> torch.Tensor:
    """A k x k kernel with its response at the three 2 px frequencies (x, y, diagonal) removed: the
    projection of each (out, in) kernel onto the kernels whose +1/-1 weighted sums along x, along y
    and in a checkerboard are zero. A x2 nearest resize and a convolution leave no power at the 2 px
    period; the ReLU after them makes it (its kink turns neighbouring frequencies into that one),
    and the output convolution would pass it on as a fine checkerboard."""
    k = w.shape[-1]
    q = _pattern_basis(k).to(w.device, w.dtype)
    flat = w.reshape(-1, k * k)
    return (flat - (flat @ q) @ q.T).reshape(w.shape)


@functools.lru_cache(maxsize=4)
def _pattern_basis(k: int) -> torch.Tensor:
    """An orthonormal basis (k*k, 3) of the +1/-1 patterns along x, along y and the checkerboard
    (they overlap for odd k, hence the QR); the same for every forward pass, so computed once. Made
    outside inference mode even when the first call is a sample: the cached tensor must also serve
    training, which cannot save an inference tensor for its backward pass."""
    with torch.inference_mode(False):
        s = 1 - 2 * (torch.arange(k) % 2).float()  # +1, -1, +1
        basis = torch.stack([s[None, :].expand(k, k), s[:, None].expand(k, k), s[:, None] * s[None, :]]).reshape(3, -1)
        return torch.linalg.qr(basis.T)[0]


def group_size(batch: int, group: int) -> int:
    """Images per minibatch-std group: the largest divisor of the batch up to `group`."""
    return next(k for k in range(max(1, min(group, batch)), 0, -1) if batch % k == 0)


def minibatch_std(h: torch.Tensor, group: int, channels: int = 1) -> torch.Tensor:
    """Per image, the mean standard deviation of the features across its group of `group`
    images (ProGAN). A generator that ignores its noise makes identical images, which this
    plane shows the critic at once; it is the usual remedy for collapse onto one image per class.
    Batches not divisible by the group size use the largest divisor that fits (group_size).
    With `channels` n > 1 the features are split into n equal slices, each with a plane of its own
    (B, n, H, W), as StyleGAN2's mbstd_num_channels: the critic then sees which features vary
    too little across a group, not only that all of them together do."""
    b, c, hh, ww = h.shape
    g = group_size(b, group)
    y = h.float().reshape(g, b // g, channels, c // channels, hh, ww)
    # the variance written out: Tensor.var's backward is about 5x slower on these small strided tensors
    var = (y - y.mean(0)).square().mean(0)
    std = torch.sqrt(var + 1e-8).mean(dim=(2, 3, 4))  # (b // g, channels)
    return std.repeat(g, 1)[:, :, None, None].expand(b, channels, hh, ww).to(h.dtype)


class CondDiscriminator(nn.Module):
    """The critic. With submodes k > 1 (TrainConfig.submodes) its condition y is class * k + group:
    the class's projection plus one of the group's own, spectrally normalised as the class's is (an
    unbounded table let the critic learn each group's few images sooner); without spectral
    normalisation the group term starts at zero. With see_groups False (TrainConfig.group_critic) it
    has no group term and scores each image by its class alone."""

    def __init__(self, cfg: CGANConfig, submodes: int = 1, see_groups: bool = True):
        super().__init__()
        self.cfg = cfg
        ch = cfg.critic_widths()
        self.concat = cfg.conditioning == "concat"
        in_ch = 3 + (cfg.embed_dim if self.concat else 0)
        sn = spectral_norm if cfg.d_spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(in_ch, ch[0], 3, 1, 1)), nn.LeakyReLU(0.2, True)]
        for cin, cout in zip(ch[:-1], ch[1:]):
            layers += [sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.mbstd, self.mbstd_channels = cfg.mbstd_group, cfg.mbstd_channels
        if self.mbstd:  # extra feature planes: how much the images of a small group differ
            self.mix = nn.Sequential(sn(nn.Conv2d(ch[-1] + cfg.mbstd_channels, ch[-1], 3, 1, 1)),
                                     nn.LeakyReLU(0.2, True))
        self.out = sn(nn.Linear(ch[-1], 1))
        self.embed = sn(nn.Embedding(cfg.n_classes, cfg.embed_dim if self.concat else ch[-1]))
        if not cfg.d_spectral_norm:  # the class's projection starts at the scale of the output layer, not N(0, 1)
            bound = 1 / math.sqrt(self.embed.weight.shape[1])
            nn.init.uniform_(self.embed.weight, -bound, bound)
        self.submodes = submodes
        self.see_groups = see_groups and submodes > 1
        if self.see_groups:
            self.sub_embed = sn(nn.Embedding(cfg.n_classes * submodes, self.embed.weight.shape[1]))
            if not cfg.d_spectral_norm:
                nn.init.zeros_(self.sub_embed.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Returns one score per image, shape (B,)."""
        e = self.embed(class_of(y, self.submodes) if self.submodes > 1 else y)
        if self.see_groups:
            e = e + self.sub_embed(y)
        if self.concat:
            planes = e.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, planes], 1)
        h = self.features(x)
        if self.mbstd:
            h = self.mix(torch.cat([h, minibatch_std(h, self.mbstd, self.mbstd_channels)], 1))
        h = h.sum(dim=(2, 3))  # global sum pooling
        score = self.out(h).squeeze(1)
        if not self.concat:
            score = score + (e.to(h.dtype) * h).sum(1)
        return score

