"""Network definitions. `build_generator` / `build_discriminator` rebuild a model from its RunConfig."""
from __future__ import annotations

from torch import nn

from ..config import RunConfig


def build_generator(cfg: RunConfig) -> nn.Module:
    if cfg.variant == "cgan":
        from .cgan import CondGenerator
        return CondGenerator(cfg.model)
    from .sgan import SpatialGenerator
    return SpatialGenerator(cfg.model)


def build_discriminator(cfg: RunConfig) -> nn.Module:
    if cfg.variant == "cgan":
        from .cgan import CondDiscriminator
        return CondDiscriminator(cfg.model, cfg.train.submodes, cfg.train.group_critic)
    from .sgan import SpatialDiscriminator
    return SpatialDiscriminator(cfg.model)
