import pytest
import torch

from gan_core.config import CGANConfig, RunConfig, SGANConfig
from gan_core.errors import ConfigError
from gan_core.losses import d_loss, gradient_penalty
from gan_core.nets import build_discriminator, build_generator
from gan_core.nets.cgan import COLOUR_GATE_LR, SecondConv
from gan_core.nets.sgan import ResizeConv, UpConv


@pytest.mark.parametrize("arch", ["upconv", "dcgan"])
@pytest.mark.parametrize("res", [32, 64, 128])
@pytest.mark.parametrize("n_classes,conditioning", [(1, "projection"), (3, "projection"), (5, "concat")])
def test_cgan_shapes(res, n_classes, conditioning, arch):
    cfg = RunConfig("cgan", CGANConfig(resolution=res, nz=8, embed_dim=4, g_channels=4, d_channels=4, arch=arch,
                                       conditioning=conditioning, class_names=[f"c{i}" for i in range(n_classes)]))
    G, D = build_generator(cfg), build_discriminator(cfg)
    y = torch.arange(6) % n_classes
    x = G(torch.randn(6, 8), y)
    assert x.shape == (6, 3, res, res)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (6,)


@pytest.mark.parametrize("arch", ["upconv", "dcgan"])
def test_cgan_critic_has_no_batchnorm_and_all_weights_spectral_normed(arch):
    cfg = RunConfig("cgan", CGANConfig(class_names=["a", "b"], g_channels=4, d_channels=4, arch=arch))
    D = build_discriminator(cfg)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in D.modules())
    weighted = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert weighted and all(hasattr(m, "parametrizations") for m in weighted)


@pytest.mark.parametrize("arch", ["upconv", "dcgan"])
def test_class_embedding_blend_is_weighted_mean(arch):
    cfg = RunConfig("cgan", CGANConfig(class_names=["urban", "forest"], g_channels=4, d_channels=4, arch=arch))
    G = build_generator(cfg)
    e = G.class_embedding(torch.tensor([[3.0, 7.0]]))
    assert torch.allclose(e[0], 0.3 * G.embed.weight[0] + 0.7 * G.embed.weight[1], atol=1e-6)


@pytest.mark.parametrize("upsample", ["bilinear", "nearest", "transposed"])
@pytest.mark.parametrize("depth,h,w", [(5, 1, 1), (5, 3, 7), (3, 4, 5), (4, 2, 9)])
def test_sgan_output_size_is_noise_times_two_to_depth(depth, h, w, upsample):
    cfg = RunConfig("sgan", SGANConfig(depth=depth, g_channels=4, d_channels=4, source_names=["a", "b"],
                                       upsample=upsample))
    G, D = build_generator(cfg), build_discriminator(cfg)
    x = G(G.make_noise(2, h, w))
    assert x.shape == (2, 3, h * 2**depth, w * 2**depth)
    assert D(x, torch.tensor([0, 1])).shape == (2, h, w)  # one score per position


def test_sgan_upsamples_by_resize_and_5x5_convolution_by_default_and_reference_uses_transposed():
    G = build_generator(RunConfig("sgan", SGANConfig()))
    ups = [m for m in G.modules() if isinstance(m, ResizeConv)]
    assert len(ups) == 5 and all(u.weight.shape[-2:] == (5, 5) for u in ups)
    assert not any(isinstance(m, (UpConv, torch.nn.ConvTranspose2d)) for m in G.modules())
    ref = build_generator(RunConfig("sgan", SGANConfig(upsample="transposed")))
    assert len([m for m in ref.modules() if isinstance(m, UpConv)]) == 5


def test_default_generator_has_no_transposed_convolution_and_reference_has_them():
    G = build_generator(RunConfig("cgan", CGANConfig(class_names=["a"], g_channels=4)))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    ref = build_generator(RunConfig("cgan", CGANConfig(class_names=["a"], g_channels=4, arch="dcgan")))
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in ref.modules()) == 4  # 4 -> 64 px


def test_legacy_config_without_a_family_rebuilds_the_reference_networks():
    cfg = RunConfig("cgan", CGANConfig(class_names=["a"], g_channels=4), data=[])
    d = cfg.to_dict()
    del d["model"]["arch"]
    assert RunConfig.from_dict(d).model.arch == "dcgan"
    s = RunConfig("sgan", SGANConfig()).to_dict()
    del s["model"]["upsample"]
    assert RunConfig.from_dict(s).model.upsample == "transposed"


@pytest.mark.parametrize("layer", [UpConv, ResizeConv, lambda *a, **k: ResizeConv(*a, **k, mode="bilinear")])
@pytest.mark.parametrize("k", [3, 5])
def test_circular_upsampling_equals_interior_of_tiled_input(k, layer):
    torch.manual_seed(0)
    u = layer(3, 4, k, bias=True)
    x = torch.randn(1, 3, 5, 6)
    u.circular = True
    wrapped = u(x)
    u.circular = False
    big = u(x.repeat(1, 1, 3, 3))  # the middle copy sees its true periodic neighbours
    assert torch.allclose(wrapped, big[..., 10:20, 12:24], atol=1e-6)


def test_zero_centred_penalty_is_the_squared_gradient_norm():
    from gan_core.losses import zero_centred_penalty
    w = torch.randn(1, 3, 4, 4)
    critic = lambda x: (x * w).sum((1, 2, 3))  # gradient w.r.t. each image is w
    pen = zero_centred_penalty(critic, torch.randn(5, 3, 4, 4))
    assert torch.allclose(pen, w.pow(2).sum(), rtol=1e-5)


def test_relativistic_losses_compare_each_fake_with_its_paired_real():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.0, 1.0])
    expected = torch.nn.functional.softplus(fake - real).mean()
    assert torch.allclose(d_loss(real, fake, "rpgan"), expected)
    from gan_core.losses import g_loss
    assert torch.allclose(g_loss(fake, "rpgan", real), torch.nn.functional.softplus(real - fake).mean())


def test_gradient_penalty_is_finite_and_zero_gradient_safe():
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    w = torch.zeros(1, requires_grad=True)
    critic = lambda x: (x * w).sum((1, 2, 3))  # gradient w.r.t. x is w = 0: a plain norm's grad is NaN here
    gp = gradient_penalty(critic, real, fake)
    assert torch.isfinite(gp) and abs(gp.item() - 1.0) < 1e-5  # (0 - 1)^2
    gp.backward()
    assert torch.isfinite(w.grad).all()


def test_gradient_penalty_uses_each_images_own_label():
    """The bound critic sees the interpolates with the labels of their pair, in order."""
    seen = []
    real, fake = torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4)
    y = torch.tensor([2, 0, 1])

    def critic(x, labels=y):
        seen.append(labels)
        return x.sum((1, 2, 3)) * (labels.float() + 1)

    gp = gradient_penalty(critic, real, fake)
    assert torch.equal(seen[0], y)
    # d/dx of sum(x)*(y+1) has norm (y+1)*sqrt(48): the penalty follows the per-image labels
    norms = (y.float() + 1) * 48**0.5
    assert torch.allclose(gp, ((norms - 1) ** 2).mean(), rtol=1e-4)


def test_the_critics_full_resolution_layer_can_be_wider_than_its_stages():
    cfg = RunConfig("cgan", CGANConfig(resolution=32, g_channels=4, d_channels=3, d_full_res=8, class_names=["a", "b"]))
    cfg.validate()
    D = build_discriminator(cfg)
    convs = [m for m in D.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 6, 12, 24]  # 8 at full resolution, then 3 x 2, 4, 8
    assert convs[1].in_channels == 8
    assert D(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])).shape == (4,)
    with pytest.raises(ConfigError, match="d_full_res"):
        RunConfig("cgan", CGANConfig(resolution=32, d_full_res=-1, class_names=["a", "b"])).validate()


def test_critic_steps_reduce_loss_on_separable_data():
    torch.manual_seed(0)
    cfg = RunConfig("cgan", CGANConfig(resolution=32, g_channels=4, d_channels=8, class_names=["a", "b"]))
    D = build_discriminator(cfg)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.1, 0.9))
    y = torch.tensor([0, 1] * 4)
    real = torch.where(y[:, None, None, None] == 0, 0.8, -0.8).expand(8, 3, 32, 32) + 0.05 * torch.randn(8, 3, 32, 32)
    fake = 0.05 * torch.randn(8, 3, 32, 32)
    losses = []
    for _ in range(15):
        loss = d_loss(D(real, y), D(fake, y), "wgan-gp") + 5 * gradient_penalty(lambda x: D(x, y), real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_legacy_runs_keep_training_on_all_their_images():
    d = RunConfig("cgan", CGANConfig(class_names=["a"], g_channels=4)).to_dict()
    assert RunConfig.from_dict(d).train.quality_every == 250
    del d["train"]["quality_every"]
    assert RunConfig.from_dict(d).train.quality_every == 0  # no images held back on resume


def test_the_notched_output_convolution_passes_nothing_at_the_2_pixel_period_and_keeps_the_rest():
    import torch.nn.functional as F

    from gan_core.losses import pixel_grid_power
    from gan_core.nets.cgan import notch_2px
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(3, 8, 3, 3, generator=g), torch.randn(2, 8, 32, 32, generator=g)

    def conv(k):  # circular padding: the image is periodic, so the 2 px frequencies are exact
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), k)
    assert (pixel_grid_power(conv(notch_2px(w))) < 1e-6 * pixel_grid_power(conv(w))).all()
    blur = (torch.tensor([1.0, 2.0, 1.0])[:, None] * torch.tensor([1.0, 2.0, 1.0])[None, :] / 16).expand(3, 8, 3, 3)
    assert torch.allclose(notch_2px(blur), blur, atol=1e-6)  # no 2 px response to remove: unchanged

    cfg = RunConfig("cgan", CGANConfig(class_names=["a", "b"], g_channels=4, rgb_notch=True))
    G = build_generator(cfg).eval()
    with torch.no_grad():
        G.to_rgb.weight.add_(0.3 * torch.tensor([[1.0, -1, 1], [-1, 1, -1], [1, -1, 1]]))  # a checkerboard kernel
        notched = G(torch.randn(4, cfg.model.nz, generator=g), torch.tensor([0, 1, 0, 1]))
        G.cfg.rgb_notch = False
        plain = G(torch.randn(4, cfg.model.nz, generator=g), torch.tensor([0, 1, 0, 1]))
    assert pixel_grid_power(notched)[2] < 0.01 * pixel_grid_power(plain)[2]  # the diagonal one


def test_conditional_batchnorm_carries_the_class_to_every_stage_and_blends():
    from gan_core.nets.cgan import CondBatchNorm

    cfg = RunConfig("cgan", CGANConfig(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, cond_bn=True))
    G = build_generator(cfg).eval()
    cbns = [m for m in G.modules() if isinstance(m, CondBatchNorm)]
    assert len(cbns) == 4  # one per upsampling stage, 4x4 -> 64x64
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        G.fc.weight[:, 8:] = 0  # the class no longer enters at the start ...
        before = G(z, torch.tensor([0, 0, 0]))
        assert torch.equal(before, G(z, torch.tensor([1, 1, 1])))  # ... and a new model's gains are plain
        for m in cbns:
            m.gain.weight.normal_(0, 0.5)
            m.bias.weight.normal_(0, 0.5)
        a, b = G(z, torch.tensor([0, 0, 0])), G(z, torch.tensor([1, 1, 1]))
        assert (a - b).abs().mean() > 0.01  # the class now acts through the stages alone
        half = G(z, embedding=G.class_embedding(torch.tensor([[1.0, 1.0]]).expand(3, 2)))
        assert (half - a).abs().mean() > 0.001 and (half - b).abs().mean() > 0.001
    D = build_discriminator(cfg)
    assert D(a, torch.tensor([0, 1, 0])).shape == (3,)


def test_latent_batchnorm_carries_the_seed_to_every_stage_with_or_without_the_class():
    from gan_core.nets.cgan import CondBatchNorm

    z1, z2 = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(0))
    y0, y1 = torch.tensor([0, 0, 0]), torch.tensor([1, 1, 1])
    for cond_bn in (False, True):
        cfg = RunConfig("cgan", CGANConfig(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4,
                                           latent_bn=True, cond_bn=cond_bn))
        G = build_generator(cfg).eval()
        cbns = [m for m in G.modules() if isinstance(m, CondBatchNorm)]
        assert len(cbns) == 4 and all(m.gain.in_features == 8 + 4 * cond_bn for m in cbns)
        with torch.no_grad():
            G.fc.weight.zero_()  # neither z nor the class enters at the start ...
            assert torch.equal(G(z1, y0), G(z2, y1))  # ... and a new model's gains are plain
            for m in cbns:
                m.gain.weight.normal_(0, 0.5)
                m.bias.weight.normal_(0, 0.5)
            a = G(z1, y0)
            assert (a - G(z2, y0)).abs().mean() > 0.01  # the seed now acts through the stages alone
            assert torch.equal(a, G(z1, y0))  # the same seed, the same image
            assert ((a - G(z1, y1)).abs().mean() > 0.01) == cond_bn  # the class too, with cond_bn


def test_noise_start_gives_the_coarse_stages_maps_a_starting_gain_and_the_seed_a_say_in_the_layout():
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    z1, z2, y = torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g), torch.tensor([0, 1])
    images = {}
    for start in (0.0, 0.2, None):  # None: a training run sets it from its budget; built alone, zero
        cfg = RunConfig("cgan", CGANConfig(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, noise_maps=True,
                                           noise_start=start))
        G = build_generator(cfg).eval()
        assert [float(gain.detach().max()) for gain in G.noise_gain] == pytest.approx([start or 0.0] * 2 + [0.0, 0.0])
        with torch.no_grad():
            G.fc.weight[:, :8] = 0  # z enters through the maps alone
            images[start] = (G(z1, y), G(z2, y))
    assert torch.equal(*images[0.0]) and torch.equal(*images[None])  # no starting gain: the seed has no say yet
    a, b = images[0.2]
    # with it, two seeds differ, and at the layout's scale: a map at 8 or 16 px moves blocks of
    # pixels, so much of the difference is left in 8 x 8 pixel averages (pixel-sized noise would
    # keep about 1/8 of it there)
    d = a - b
    assert d.abs().mean() > 0 and F.avg_pool2d(d, 8).abs().mean() > 0.25 * d.abs().mean()
    for bad in (float("nan"), -0.1, "0.2"):
        with pytest.raises(ConfigError, match="noise_start"):
            CGANConfig(class_names=["a", "b"], noise_start=bad).validate()
    CGANConfig(class_names=["a", "b"], noise_start=None).validate()  # by the budget


def test_noise_lr_draws_the_same_images_and_lets_adam_move_the_gains_that_many_times_faster():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(4, 8, generator=g), torch.tensor([0, 1, 0, 1])
    images, moved = {}, {}
    for lr in (1.0, 10.0):
        torch.manual_seed(1)  # the same weights for both
        cfg = RunConfig("cgan", CGANConfig(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, noise_maps=True,
                                           noise_start=0.2, noise_lr=lr))
        G = build_generator(cfg).train()
        gains = [p.detach() * lr for p in G.noise_gain]  # what each map is scaled by
        assert [float(x.max()) for x in gains] == pytest.approx([0.2, 0.2, 0.0, 0.0])
        opt = torch.optim.Adam(G.noise_gain.parameters(), lr=1e-3)
        out = G(z, y)
        images[lr] = out.detach()
        out.square().mean().backward()
        opt.step()  # Adam's first step moves each parameter by about its learning rate
        moved[lr] = torch.cat([(p.detach() * lr - x).abs() for p, x in zip(G.noise_gain, gains)])
    assert torch.allclose(images[1.0], images[10.0], atol=1e-5)
    step = moved[1.0] > 0  # the channels whose gain had a gradient
    assert step.any() and torch.allclose(moved[10.0][step], 10 * moved[1.0][step], rtol=1e-2)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ConfigError, match="noise_lr"):
            CGANConfig(class_names=["a", "b"], noise_lr=bad).validate()


def test_noise_maps_give_each_seed_its_own_detail_and_stay_a_function_of_the_seed():
    cfg = RunConfig("cgan", CGANConfig(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, noise_maps=True))
    G = build_generator(cfg).eval()
    assert len(G.noise_gain) == 4  # one gain per channel for each upsampling stage, 4x4 -> 64x64
    g = torch.Generator().manual_seed(0)
    z1, z2, y = torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g), torch.tensor([0, 1])
    with torch.no_grad():
        G.fc.weight[:, :8] = 0  # z no longer enters at the start ...
        assert torch.equal(G(z1, y), G(z2, y))  # ... and a new model's noise gains are zero
        for gain in G.noise_gain:
            gain.fill_(1.0)
        a, b = G(z1, y), G(z2, y)
        assert (a - b).abs().mean() > 0.01  # the seed now acts through the maps alone
        assert torch.equal(a, G(z1, y))  # the same seed, the same image
        again = build_generator(cfg).eval()  # the projections are rebuilt, not stored
        again.load_state_dict(G.state_dict())
        assert torch.equal(again(z1, y), a)


def test_noise_maps_can_stop_before_the_full_resolution_stage():
    kw = dict(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, noise_maps=True)
    every = build_generator(RunConfig("cgan", CGANConfig(**kw))).eval()
    coarse = build_generator(RunConfig("cgan", CGANConfig(noise_last=False, **kw))).eval()
    assert len(coarse.noise_gain) == 3  # 8, 16 and 32 px; none at 64 px
    z, y = torch.randn(3, 8), torch.tensor([0, 1, 0])
    with torch.no_grad():
        for gain in coarse.noise_gain:
            gain.fill_(1.0)
        missing = every.load_state_dict(coarse.state_dict(), strict=False).missing_keys
        assert missing == ["noise_gain.3"]  # the full-resolution stage's gain, zero in a new model
        assert torch.equal(every(z, y), coarse(z, y))
        every.noise_gain[3].fill_(1.0)  # with its map switched on the images change
        assert (every(z, y) - coarse(z, y)).abs().mean() > 1e-3


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
def test_reflect_padding_gives_the_generator_no_border_to_draw_from(padding):
    """A flat start stays flat with reflected borders; zero padding draws a frame into every stage."""
    cfg = RunConfig("cgan", CGANConfig(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, g_padding=padding))
    G = build_generator(cfg).eval()
    with torch.no_grad():
        G.fc.weight.zero_()  # the 4x4 start: one value per channel, the same at every position
        G.fc.bias.copy_(torch.randn(G.fc.bias.numel() // 16).repeat_interleave(16))
        x = G(torch.randn(3, 8), torch.tensor([0, 1, 0]))
    off_flat = (x - x.mean(dim=(2, 3), keepdim=True)).abs().max().item()
    if padding == "reflect":
        assert off_flat < 1e-6
    else:  # a new model's small weights keep the frame faint, but far above rounding
        assert off_flat > 5e-5


def test_skip_layer_excitation_gates_a_finer_stage_by_a_coarser_one():
    """Open gates give the plain generator's image; a shut gate cuts everything the seed drew before it."""
    kw = dict(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, noise_maps=False)
    G = build_generator(RunConfig("cgan", CGANConfig(sle=True, **kw))).eval()
    plain = build_generator(RunConfig("cgan", CGANConfig(**kw))).eval()
    assert len(G.sle) == 2  # 64 px: 8 px -> 32 px and 16 px -> 64 px
    with torch.no_grad():  # weights of a trained size, so that what the seed draws reaches the image
        for m in G.up:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0.0, 0.3)
    plain.load_state_dict({k: v for k, v in G.state_dict().items() if not k.startswith("sle.")})
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        for gate in G.sle:
            gate[3].weight.zero_()
            gate[3].bias.fill_(30.0)  # sigmoid(30) = 1: every channel passes
        assert torch.allclose(G(z, y), plain(z, y), atol=1e-6)
        G.sle[0][3].bias.fill_(-30.0)  # the 32 px stage's output is multiplied by 0
        x = G(z, y)
        assert (x - x[:1]).abs().max() < 1e-6  # every seed and class now gives the same image
        assert (plain(z, y) - plain(z[:1], y[:1])).abs().max() > 1e-2


def windowed_2px_power(v: torch.Tensor) -> torch.Tensor:
    """pixel_grid_power of square images with their mean taken out, under a Hann window: the window
    keeps the image's edges, where any picture that is not periodic changes abruptly, from counting
    as a 2 px pattern."""
    from gan_core.losses import pixel_grid_power
    win = torch.hann_window(v.shape[-1], periodic=False, dtype=v.dtype)
    return pixel_grid_power((v - v.mean((2, 3), keepdim=True)) * (win[:, None] * win[None, :]))


def test_half_resolution_colour_draws_greys_exactly_and_no_colour_at_the_2_pixel_period():
    """Brightness comes from the last stage, colour from the stage before, resized x2 bilinearly:
    a zero colour map gives exact greys, and the colour of any image has no 2 px pattern (the
    purple-green dots of the full-resolution head), while its brightness may."""
    kw = dict(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4)
    torch.manual_seed(0)  # the same weights in any test order
    G = build_generator(RunConfig("cgan", CGANConfig(half_chroma=True, **kw))).eval()
    assert G.to_rgb.out_channels == 1 and G.to_chroma.in_channels == 8  # the 32 px stage feeds the colour
    z, y = torch.randn(8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1] * 4)
    with torch.no_grad():
        for m in [*G.up, G.to_rgb, G.to_chroma]:  # weights of a trained size: fine detail reaches the image
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0.0, 0.08, generator=torch.Generator().manual_seed(1))
        x = G(z, y).double()
        assert x.abs().max() < 0.999  # the tanh is not saturated, so it can be undone
        logits = torch.atanh(x)
        brightness = logits.mean(1, keepdim=True)
        colour = logits - brightness
        assert colour.abs().mean() > 0.05 * brightness.abs().mean()  # there is colour to speak of
        # bilinear x2 leaves nothing at the 2 px period
        assert (windowed_2px_power(colour) < 1e-2 * windowed_2px_power(brightness)).all()  # full resolution: about 2x
        G.to_chroma.weight.zero_()
        G.to_chroma.bias.zero_()
        grey = G(z, y)
        assert (grey - grey.mean(1, keepdim=True)).abs().max() < 1e-6


def test_the_colour_gate_lets_a_class_turn_its_colour_off_and_blends_with_the_classes():
    """A new gated generator draws what the same weights draw without the gate (gain 1). Pushed
    down for one class, the gate makes that class exact greys while the other keeps its colour,
    and a 50/50 blend of the two gets the gain halfway in logit; the gradient of a class's colour
    reaches the gate with the sign that turns it down. Without half_chroma the gate is refused."""
    kw = dict(class_names=["grey", "colour"], nz=8, embed_dim=4, g_channels=4, half_chroma=True)
    torch.manual_seed(0)
    G = build_generator(RunConfig("cgan", CGANConfig(colour_gate=True, **kw))).eval()
    plain = build_generator(RunConfig("cgan", CGANConfig(**kw))).eval()
    plain.load_state_dict({k: v for k, v in G.state_dict().items() if not k.startswith("colour_gate")})
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    grey, colour = torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.long)

    def colour_of(x):
        return (x - x.mean(1, keepdim=True)).abs().mean()

    with torch.no_grad():
        assert torch.equal(G(z, colour), plain(z, colour))
        assert colour_of(G(z, colour)) > 1e-3  # a new model draws some colour
    # the gradient of the grey class's colour: gradient descent moves its gain down
    G.zero_grad()
    colour_of(G(z, grey)).backward()
    e = G.embed.weight[0].detach()
    assert float(G.colour_gate.weight.grad[0] @ e + G.colour_gate.bias.grad[0]) > 0
    with torch.no_grad():
        G.colour_gate.weight.zero_()
        G.colour_gate.bias.zero_()
        # a logit of -3 (grey class) and +3 (colour class) along the embeddings' difference
        d = G.embed.weight[1] - G.embed.weight[0]
        G.colour_gate.weight.copy_((d / d.dot(d))[None] * 6 / COLOUR_GATE_LR)
        G.colour_gate.bias.fill_(-float(G.colour_gate.weight[0] @ (G.embed.weight[0] + G.embed.weight[1])) / 2)
        gains = G.colour_gain(G.embed.weight)
        assert gains[0] < 0.1 and gains[1] > 1.9
        G.colour_gate.bias.sub_(50)  # the grey class's gain 0 (within float precision)
        x = G(z, grey)
        assert (x - x.mean(1, keepdim=True)).abs().max() < 1e-5
        G.colour_gate.bias.add_(50)
        full, none = G(z, colour), plain(z, colour)
        assert colour_of(full) > 1.5 * colour_of(none)
        half = G.colour_gain(G.class_embedding(torch.tensor([[0.5, 0.5]])))
        assert abs(float(half) - 1.0) < 1e-4  # logit 0, halfway between -3 and +3
    with pytest.raises(ConfigError, match="colour_gate needs half_chroma.*--no-colour-gate"):
        CGANConfig(colour_gate=True, **{**kw, "half_chroma": False}).validate()


@pytest.mark.parametrize("half_chroma", [False, True])
def test_skip_images_bring_the_coarse_stages_to_the_picture_smoothly(half_chroma):
    """With the last stage's output convolutions at zero, a skip generator still draws each seed's
    own picture (from the 8-32 px stages' images), with nothing at the 2 px period; without skip
    images the same generator draws nothing. With half_chroma, zero colour planes still give greys."""
    kw = dict(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, half_chroma=half_chroma)
    torch.manual_seed(0)
    G = build_generator(RunConfig("cgan", CGANConfig(skip_rgb=32, **kw))).eval()
    plain = build_generator(RunConfig("cgan", CGANConfig(**kw))).eval()
    assert [m.in_channels for m in G.skip] == [32, 16, 8]  # the 8, 16 and 32 px stages at 64 px
    G16 = build_generator(RunConfig("cgan", CGANConfig(skip_rgb=16, **kw))).eval()
    assert [m.in_channels for m in G16.skip] == [32, 16]  # the 8 and 16 px stages
    z, y = torch.randn(6, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1] * 3)
    heads = [G.to_rgb, plain.to_rgb] + ([G.to_chroma, plain.to_chroma] if half_chroma else [])
    with torch.no_grad():
        for m in [*G.up, *G.skip]:  # weights of a trained size
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
        plain.load_state_dict({k: v for k, v in G.state_dict().items() if not k.startswith("skip.")})
        for m in heads:
            m.weight.zero_()
            m.bias.zero_()
        assert plain(z, y).abs().max() == 0  # tanh(0): the finest stage drew it all
        assert G16(z, y).shape == (6, 3, 64, 64)
        x = G(z, y).double()
        assert (x[1:] - x[:1]).abs().amax((1, 2, 3)).min() > 1e-2  # each seed its own picture
        total = (x - x.mean((2, 3), keepdim=True)).square().mean()
        assert (windowed_2px_power(x) < 1e-3 * total).all()
        if half_chroma:
            for m in G.skip:
                m.weight[1:].zero_()
                m.bias[1:].zero_()
            grey = G(z, y)
            assert (grey - grey.mean(1, keepdim=True)).abs().max() < 1e-6
    for bad in (4, 12, 64, 128):  # not a stage below the 64 px output
        with pytest.raises(ConfigError, match="skip_rgb"):
            CGANConfig(class_names=["a", "b"], skip_rgb=bad).validate()
    CGANConfig(class_names=["a", "b"], resolution=128, skip_rgb=64).validate()


def test_a_notched_generator_trains_after_its_first_picture_was_drawn_in_inference_mode():
    """The notch's fixed basis is computed once; a sample drawn first (in inference mode, as the
    studio's previews are) must not leave behind a tensor that training cannot use."""
    from gan_core.nets.cgan import _pattern_basis
    _pattern_basis.cache_clear()
    kw = dict(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, rgb_notch=True)
    G = build_generator(RunConfig("cgan", CGANConfig(**kw)))
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 0, 1])
    with torch.inference_mode():
        G.eval()(z, y)
    G.train()(z, y).square().mean().backward()
    assert G.to_rgb.weight.grad is not None and G.to_rgb.weight.grad.abs().sum() > 0


def test_a_critic_without_spectral_normalisation_has_plain_weights_and_a_small_class_projection():
    kw = dict(class_names=["a", "b", "c"], g_channels=4, d_channels=4, resolution=32)
    plain = build_discriminator(RunConfig("cgan", CGANConfig(d_spectral_norm=False, **kw)))
    normed = build_discriminator(RunConfig("cgan", CGANConfig(**kw)))
    weighted = [m for m in plain.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert weighted and not any(hasattr(m, "parametrizations") for m in weighted)
    assert len(weighted) == len([m for m in normed.modules() if hasattr(m, "parametrizations")])
    # unnormalised, the class projection starts at the output layer's scale, not at N(0, 1)
    assert plain.embed.weight.abs().max() <= 1 / plain.embed.weight.shape[1] ** 0.5
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    assert plain(x, y).shape == (4,)
    # and its weights are free: a large step on them changes the scores by as much as it says
    with torch.no_grad():
        before = plain(x, y).clone()
        plain.out.weight.mul_(10)
        plain.out.bias.mul_(10)
        plain.embed.weight.mul_(10)
        assert torch.allclose(plain(x, y), 10 * before, rtol=1e-4, atol=1e-5)


def test_a_second_convolution_widens_what_a_coarse_stage_draws_from_one_start_cell():
    """g_extra: the 8 px stage draws with two 3x3 convolutions, so a change in one cell of the 4x4 start
    reaches further across it; the full-resolution stage never gets one, and noise maps and skip-layer
    excitation still attach to the same stages."""
    torch.manual_seed(0)
    kw = dict(class_names=["a", "b"], nz=8, embed_dim=4, g_channels=4, resolution=32, noise_maps=True, sle=True)
    one = build_generator(RunConfig("cgan", CGANConfig(**kw))).eval()
    two = build_generator(RunConfig("cgan", CGANConfig(g_extra=5, **kw))).eval()
    assert sum(isinstance(m, torch.nn.Conv2d) for m in two.up) == 3  # one per stage at the top level
    assert sum(isinstance(m, SecondConv) for m in two.up) == 2  # 8 and 16 px; not the 32 px stage
    assert len(two.noise_gain) == len(one.noise_gain) and len(two.sle) == len(one.sle)

    def reach(G) -> int:
        """How many positions of the 8 px stage's output change when one start cell changes."""
        seen = []
        end = next(m for m in G.up if isinstance(m, torch.nn.ReLU))  # the end of the 8 px stage
        end.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
        z, y = torch.zeros(1, 8), torch.tensor([0])
        with torch.no_grad():
            G(z, y)
            G.fc.bias.view(-1, 4, 4)[:, 1, 1] += 5.0  # the start cell (1, 1), every channel
            G(z, y)
        return int(((seen[1] - seen[0]).abs().amax(1)[0] > 1e-6).sum())

    # the cell's 2 x 2 block at 8 px (rows and columns 2-3) widened by one 3 x 3 convolution: at most 4 x 4
    assert 4 < reach(one) <= 16
    assert 16 < reach(two) <= 36  # and by a second: up to 6 x 6


def test_spread_planes_per_slice_show_which_features_vary_too_little_across_a_group():
    from gan_core.nets.cgan import minibatch_std
    g = torch.Generator().manual_seed(0)
    h = torch.randn(8, 8, 4, 4, generator=g)
    # rows i, i + 2, i + 4, i + 6 form a group (2 groups of 4); the first half of the features is
    # the same for every member of a group, the second half differs
    h[:, :4] = h[:2, :4].repeat(4, 1, 1, 1)
    two = minibatch_std(h, 4, channels=2)
    assert two.shape == (8, 2, 4, 4)
    assert two[:, 0].max() < 1e-3 and two[:, 1].min() > 0.3  # the plane of the alike slice shows it
    one = minibatch_std(h, 4)
    assert one.shape == (8, 1, 4, 4)
    assert torch.allclose(one[:, 0], two.mean(1), atol=1e-6)  # one plane: the slices' mean, as before
    assert torch.equal(two[0], two[2]) and not torch.equal(two[0], two[1])  # per group, not per image


def test_a_critic_with_several_spread_planes_scores_and_trains_and_bad_counts_are_refused():
    cfg = RunConfig("cgan", CGANConfig(resolution=32, class_names=["a", "b"], g_channels=4, d_channels=4,
                                       mbstd_channels=4))
    cfg.model.validate()
    D = build_discriminator(cfg)
    assert D.mix[0].in_channels == 32 + 4  # the last stage's 32 features and four spread planes
    x, y = torch.randn(8, 3, 32, 32, requires_grad=True), torch.arange(8) % 2
    D(x, y).sum().backward()
    assert x.grad.abs().sum() > 0
    for bad in (3, 0, 17):
        with pytest.raises(ConfigError, match="mbstd_channels"):
            CGANConfig(resolution=32, class_names=["a", "b"], d_channels=4, mbstd_channels=bad).validate()
