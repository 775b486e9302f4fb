"""Differentiable augmentation: the critic's minibatch-std groups share their transforms."""
from __future__ import annotations

import pytest
import torch

from gan_core.augment import augment
from gan_core.nets.cgan import minibatch_std
from gan_core.parallel import BatchShare

POLICY = ["translation", "color", "cutout"]


def test_grouped_augmentation_keeps_a_collapsed_group_identical_and_varies_between_groups():
    one = torch.rand(1, 3, 16, 16) * 2 - 1
    fakes = one.expand(8, -1, -1, -1).clone()  # a generator that makes one image, in 2 groups of 4
    per_image = augment(fakes, POLICY, torch.Generator().manual_seed(0))
    grouped = augment(fakes, POLICY, torch.Generator().manual_seed(0), group=4)
    # drawn per image, the copies differ and the critic's spread plane sees variety that is not there
    assert minibatch_std(per_image, 4).max() > 0.05
    # drawn per group (rows i, i + 2, i + 4, i + 6), the members stay equal: the plane shows the collapse
    assert minibatch_std(grouped, 4).max() < 1e-3
    for i in range(2):
        assert torch.equal(grouped[i], grouped[i + 2]) and torch.equal(grouped[i], grouped[i + 6])
    assert not torch.equal(grouped[0], grouped[1])  # the two groups still get transforms of their own


def test_grouped_augmentation_is_the_same_in_one_process_and_split_over_two():
    x = torch.rand(8, 3, 12, 12) * 2 - 1
    whole = augment(x, POLICY, torch.Generator().manual_seed(5), p=0.6, group=4)
    for rank in range(2):
        share = BatchShare(rank, 2)
        part = augment(share.rows(x), POLICY, torch.Generator().manual_seed(5), share, p=0.6, group=4)
        assert torch.equal(part, share.rows(whole))


def test_a_batch_that_does_not_split_into_groups_is_refused():
    with pytest.raises(ValueError, match="groups of 4"):
        augment(torch.zeros(6, 3, 8, 8), POLICY, torch.Generator(), group=4)
