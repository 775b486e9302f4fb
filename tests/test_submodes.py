"""Look groups within a class (TrainConfig.submodes): how images are grouped, how a group's latents
are drawn, and that a run with groups trains and resumes."""
import numpy as np
import pytest
import torch
from PIL import Image

from gan_core import checkpoint as ckpt
from gan_core import submodes
from gan_core.config import CGANConfig, TrainConfig
from gan_core.errors import ConfigError
from gan_core.nets.cgan import CondDiscriminator
from gan_core.train import Trainer, resume, train

from tests.conftest import tiny_cgan, tiny_sgan


def two_look_folder(root, dark: int = 8, light: int = 4, other: int = 6) -> str:
    """Class "mixed": `dark` near-black and `light` near-white noisy images; class "plain": mid grey."""
    rng = np.random.default_rng(1)
    for name, looks in (("mixed", [20] * dark + [235] * light), ("plain", [128] * other)):
        (root / name).mkdir(parents=True)
        for i, v in enumerate(looks):
            arr = np.clip(v + rng.normal(0, 10, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"img{i}.png")
    return str(root)


def test_split_classes_groups_looks_largest_first_and_sets_their_shares():
    g = torch.Generator().manual_seed(0)
    dark = (torch.rand(9, 3, 16, 16, generator=g) * 40).to(torch.uint8)
    light = (215 + torch.rand(3, 3, 16, 16, generator=g) * 40).to(torch.uint8)
    images = torch.cat([light, dark, light[:1], dark[:1]])  # the last two: held back
    labels = torch.zeros(len(images), dtype=torch.long)
    train_idx = torch.arange(12)
    group, bounds = submodes.split_classes(images, labels, train_idx, 1, 2, seed=0)
    assert group[:3].tolist() == [1] * 3 and group[3:12].tolist() == [0] * 9  # the larger look is group 0
    assert group[12:].tolist() == [1, 0]  # held-back images go to the nearest group
    assert torch.allclose(bounds[0], torch.tensor([0.0, 0.75, 1.0]))
    again, _ = submodes.split_classes(images, labels, train_idx, 1, 2, seed=0)
    assert torch.equal(group, again)  # the same images always give the same groups


def test_a_class_with_fewer_images_than_groups_leaves_the_rest_empty():
    images = (torch.rand(3, 3, 8, 8) * 255).to(torch.uint8)
    group, bounds = submodes.split_classes(images, torch.tensor([0, 1, 1]), torch.arange(3), 2, 3, seed=0)
    assert group[0] == 0 and bounds[0].tolist() == [0.0, 1.0, 1.0, 1.0]  # one image: one group, all of it
    assert sorted(group[1:].tolist()) == [0, 1] and torch.allclose(bounds[1], torch.tensor([0.0, 0.5, 1.0, 1.0]))


def test_placed_latents_fall_in_their_slice_and_stay_normal_overall():
    bounds = torch.tensor([[0.0, 0.7, 1.0]])
    z = torch.randn(20000, 5, generator=torch.Generator().manual_seed(1))
    s = (torch.rand(20000, generator=torch.Generator().manual_seed(2)) >= 0.7).long()  # groups at their shares
    placed = submodes.place(z, bounds[0, s], bounds[0, s + 1])
    assert torch.equal(placed[:, 1:], z[:, 1:])  # only the first value moves
    assert torch.equal(submodes.group_of_latent(placed, bounds, torch.zeros(20000, dtype=torch.long)), s)
    threshold = torch.special.ndtri(torch.tensor(0.7))
    assert (placed[s == 0, 0] < threshold).all() and (placed[s == 1, 0] >= threshold).all()
    # drawn at the groups' shares, the first value is N(0, 1) again: so is noise drawn as usual
    assert abs(placed[:, 0].mean()) < 0.03 and abs(placed[:, 0].std() - 1) < 0.03
    assert abs((placed[:, 0] < threshold).float().mean() - 0.7) < 0.02


def test_the_critics_group_term_is_held_like_its_class_term():
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    cfg = CGANConfig(resolution=32, embed_dim=4, d_channels=4, class_names=["a", "b"])
    D = CondDiscriminator(cfg, submodes=3)
    for _ in range(20):  # training mode: each call refines the spectral norm's estimate
        D(x, torch.arange(4) % 6)
    for table in (D.embed.weight, D.sub_embed.weight):  # both projections spectrally normalised
        assert torch.linalg.matrix_norm(table.detach().float(), 2) == pytest.approx(1.0, abs=0.05)
    D.eval()
    groups = [D(x, torch.full((4,), 1 * 3 + s)) for s in range(3)]  # class b, each group
    assert not torch.allclose(groups[0], groups[1]) and not torch.allclose(groups[0], groups[2])
    # a critic without spectral normalisation starts as a critic of classes: its group term is zero
    plain = CondDiscriminator(CGANConfig(resolution=32, embed_dim=4, d_channels=4, class_names=["a", "b"],
                                         d_spectral_norm=False), submodes=3).eval()
    same = [plain(x, torch.full((4,), 1 * 3 + s)) for s in range(3)]
    assert torch.allclose(same[0], same[1]) and torch.allclose(same[0], same[2])
    assert not torch.allclose(same[0], plain(x, torch.full((4,), 0)))  # class a scores otherwise
    with torch.no_grad():
        plain.sub_embed.weight[4] += 1.0  # class b, group 1: learnable
    assert not torch.allclose(plain(x, torch.full((4,), 4)), same[0])
    assert torch.allclose(plain(x, torch.full((4,), 3)), same[0])  # and the class's other groups keep their score


def test_a_critic_not_told_the_groups_scores_by_class_alone():
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    cfg = CGANConfig(resolution=32, embed_dim=4, d_channels=4, class_names=["a", "b"])
    D = CondDiscriminator(cfg, submodes=3, see_groups=False).eval()
    assert not hasattr(D, "sub_embed")
    groups = [D(x, torch.full((4,), 1 * 3 + s)) for s in range(3)]  # class b, each group: one score
    assert torch.equal(groups[0], groups[1]) and torch.equal(groups[0], groups[2])
    assert not torch.allclose(groups[0], D(x, torch.full((4,), 0)))  # class a scores otherwise
    with pytest.raises(ConfigError, match="group_critic"):
        TrainConfig(submodes=2, group_critic="no").validate("cgan")


def test_a_run_with_look_groups_ties_latents_to_groups_trains_and_resumes(tmp_path):
    data = two_look_folder(tmp_path / "data")
    cfg = tiny_cgan(data, batch=8, submodes=2, loss="rpgan", n_critic=1, reuse_batch=True, steps=4)
    loop = Trainer(cfg, tmp_path / "probe", torch.device("cpu"))
    mixed = loop.cfg.model.class_names.index("mixed")
    members = torch.nonzero(loop.labels == mixed).flatten()
    looks = loop.images[members].float().mean((1, 2, 3)) > 128  # light images
    groups = loop.cond[members] % 2
    assert (groups == looks.long()).all() or (groups == (~looks).long()).all()  # one group per look
    assert (loop.cond // 2 == loop.labels).all()
    for _ in range(3):  # a batch: every critic group holds one condition, the latents lie in its slice
        real, y = loop.real_batch(8)
        assert (y.view(2, 4) == y.view(2, 4)[0]).all()
        _, z = loop.fake_batch(y)
        c = torch.div(y, 2, rounding_mode="floor")
        assert torch.equal(submodes.group_of_latent(z, loop.group_bounds, c), y % 2)
    train(cfg, tmp_path / "run")
    res = resume(tmp_path / "run", steps=6)  # the critic's group terms come back with the checkpoint
    assert res.step == 6
    newest = ckpt.checkpoint_dirs(tmp_path / "run")[0]
    back = Trainer(ckpt.read_config(newest), tmp_path / "run", torch.device("cpu"))
    back.load(newest)
    assert back.D.sub_embed.weight.abs().sum() > 0  # learnt, and loaded
    assert torch.equal(back.cond, loop.cond)  # the same groups after a resume


@pytest.mark.parametrize("bad", [0, 9, 1.5])
def test_bad_group_counts_are_refused(bad):
    with pytest.raises(ConfigError, match="submodes"):
        TrainConfig(submodes=bad).validate("cgan")


def test_texture_runs_refuse_look_groups(texture_files):
    with pytest.raises(ConfigError, match="submodes"):
        tiny_sgan(texture_files, submodes=2).train.validate("sgan")
