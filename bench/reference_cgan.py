"""The reference conditional GAN the benchmarks compare against, as its published setup describes it.

REFERENCE (the named baseline config):
  generator  noise 100 + class embedding 50 -> linear to 16x16x512 -> [nearest upsample x2,
             3x3 conv, BatchNorm, ReLU] for 512->256 and 256->128 -> 3x3 conv to RGB -> tanh (64x64)
  critic     image (3) + class embedding broadcast as 50 planes = 53 channels -> 4x4 stride-2
             convolutions 53->64->128->256, each with spectral norm AND BatchNorm (the reference's
             choice, kept although batch statistics break the per-sample gradient penalty) and
             LeakyReLU(0.2) -> a final 4x4 convolution (stride 1, 8x8 -> 5x5 scores, averaged)
  training   WGAN-GP, lambda 5, 5 critic steps per generator step, batch 64, Adam lr 1e-4,
             betas (0.1, 0.9); images decoded from their files every epoch by a torch DataLoader
             (torchvision ImageFolder: resize, center crop, ToTensor, normalize to [-1, 1])

Two details the description leaves open are settled here in the baseline's favour: the critic is
frozen during the generator step (no wasted critic weight gradients) and the generator's output is
detached for the critic step. Nothing else is tuned.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass(frozen=True)
class ReferenceConfig:
    resolution: int = 64
    nz: int = 100
    embed_dim: int = 50
    g_base: int = 512  # channels of the 16x16 map the linear layer makes
    g_stages: tuple[int, ...] = (256, 128)
    d_stages: tuple[int, ...] = (64, 128, 256)
    gp_lambda: float = 5.0
    n_critic: int = 5
    batch: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.1, 0.9)
    workers: int = 0  # DataLoader worker processes (the DataLoader's own default)


REFERENCE = ReferenceConfig()


class RefGenerator(nn.Module):
    def __init__(self, n_classes: int, c: ReferenceConfig = REFERENCE):
        super().__init__()
        self.c = c
        self.start = c.resolution // 2 ** len(c.g_stages)
        self.embed = nn.Embedding(n_classes, c.embed_dim)
        self.fc = nn.Linear(c.nz + c.embed_dim, c.g_base * self.start ** 2)
        layers: list[nn.Module] = []
        cin = c.g_base
        for cout in c.g_stages:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1),
                       nn.BatchNorm2d(cout), nn.ReLU(True)]
            cin = cout
        layers += [nn.Conv2d(cin, 3, 3, 1, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], 1)).view(z.shape[0], self.c.g_base, self.start, self.start)
        return self.body(h)


class RefCritic(nn.Module):
    def __init__(self, n_classes: int, c: ReferenceConfig = REFERENCE):
        super().__init__()
        self.embed = nn.Embedding(n_classes, c.embed_dim)
        layers: list[nn.Module] = []
        cin = 3 + c.embed_dim
        for cout in c.d_stages:
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, 1, 0))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        planes = self.embed(y)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.body(torch.cat([x, planes], 1)).mean(dim=(1, 2, 3))


def image_loader(folder: str, c: ReferenceConfig = REFERENCE, seed: int = 0):
    """The reference's data path: every epoch decodes the image files again."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize(c.resolution), transforms.CenterCrop(c.resolution),
                             transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = datasets.ImageFolder(folder, transform=tf)
    g = torch.Generator().manual_seed(seed)
    return ds, torch.utils.data.DataLoader(ds, batch_size=c.batch, shuffle=True, drop_last=True,
                                           num_workers=c.workers, generator=g,
                                           persistent_workers=c.workers > 0)


class ReferenceTrainer:
    """The reference training loop, one critic step per `step()` call; every n_critic-th call
    also makes one generator step (as the reference's epoch loop does over its DataLoader)."""

    def __init__(self, folder: str, c: ReferenceConfig = REFERENCE, seed: int = 0):
        torch.manual_seed(seed)
        self.c = c
        self.dataset, self.loader = image_loader(folder, c, seed)
        self.class_names = list(self.dataset.classes)
        n = len(self.class_names)
        self.G, self.D = RefGenerator(n, c), RefCritic(n, c)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=c.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr, betas=c.betas)
        self._it = iter(self.loader)
        self.critic_steps = 0
        self.images = 0  # real images consumed by the critic

    def _batch(self):
        try:
            return next(self._it)
        except StopIteration:  # a new epoch: the files are decoded again
            self._it = iter(self.loader)
            return next(self._it)

    def critic_step(self) -> float:
        c = self.c
        self.G.train()
        self.D.train()
        real, y = self._batch()
        b = real.shape[0]
        self.D.requires_grad_(True)
        fake = self.G(torch.randn(b, c.nz), y).detach()
        loss = self.D(fake, y).mean() - self.D(real, y).mean()
        alpha = torch.rand(b, 1, 1, 1)
        x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.D(x, y).sum(), x, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss = loss + c.gp_lambda * gp
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.critic_steps += 1
        self.images += b
        return loss.item()

    def generator_step(self) -> float:
        c = self.c
        self.D.requires_grad_(False)
        y = torch.randint(len(self.class_names), (c.batch,))
        loss = -self.D(self.G(torch.randn(c.batch, c.nz), y), y).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return loss.item()

    def step(self) -> int:
        """One critic step, plus the generator step after every n_critic-th; returns images used."""
        before = self.images
        self.critic_step()
        if self.critic_steps % self.c.n_critic == 0:
            self.generator_step()
        return self.images - before

    def cycle(self) -> int:
        """n_critic critic steps and one generator step; returns the real images consumed."""
        return sum(self.step() for _ in range(self.c.n_critic))

    @torch.no_grad()
    def sample(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from the generator in eval mode (BatchNorm running statistics)."""
        self.G.eval()
        out = self.G(z, y)
        self.G.train()
        return out

