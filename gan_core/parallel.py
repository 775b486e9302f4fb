"""Data-parallel training across processes started by torchrun.

`torchrun --nproc_per_node=N -m gan_core train ...` starts N copies of the command line;
`process_group` (used by the CLI) joins them from the environment torchrun sets (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): NCCL with one GPU per process, gloo on CPUs.
Without torchrun, or with a single process, there is no process group, everything here returns
its input unchanged, and training is the plain single-process loop.

How the work is split, so that N processes compute the step one process with the whole batch
would (up to the order of floating-point sums):
- every process draws the random values of the whole global batch (images, noise, flips,
  augmentations, penalty interpolates) from the run's one seeded stream and keeps its own rows,
  rank, rank + N, rank + 2N, ... (`BatchShare`); so every process holds the same random state,
  and the critic's minibatch-std groups (images i, i + b/g, ...) stay whole in one process;
- the generator's BatchNorm normalises with the statistics of the global batch
  (`GlobalBatchNorm2d`), so its running statistics are identical everywhere too;
- DistributedDataParallel averages the gradients, which turns the per-process means of the
  losses into the mean over the global batch.
Every process therefore holds the same weights, optimizer state and random state, and a
checkpoint does not depend on how many processes wrote it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import ConfigError, StudioError


@dataclass(frozen=True)
class BatchShare:
    """The rows of each global batch that one process computes: rank, rank + world, ...

    Random values are drawn for the whole global batch and this process's rows kept, so the
    random stream advances alike in every process. With one process it is the whole batch and
    the draws are exactly `torch.rand(b, ..., generator=gen)` and so on.
    """

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        """The process that logs and writes files."""
        return self.rank == 0

    def split(self, batch: int) -> int:
        """Rows per process of a global batch of `batch`; refuses one that does not split evenly."""
        if batch % self.world:
            lower = batch - batch % self.world
            hint = f"{lower} or {lower + self.world}" if lower else f"{self.world}"
            raise ConfigError(f"batch ({batch}) must split evenly across the {self.world} training "
                              f"processes: use a batch that is a multiple of {self.world} (such as {hint}), "
                              f"or a number of processes that divides {batch}.")
        return batch // self.world

    def rows(self, t: torch.Tensor) -> torch.Tensor:
        """This process's rows of a tensor that holds the whole global batch."""
        return t if self.world == 1 else t[self.rank::self.world]

    def rand(self, gen: torch.Generator | None, n: int, *shape: int) -> torch.Tensor:
        """Uniform values for this process's n rows."""
        return self.rows(torch.rand(n * self.world, *shape, generator=gen))

    def randn(self, gen: torch.Generator | None, n: int, *shape: int) -> torch.Tensor:
        """Normal values for this process's n rows."""
        return self.rows(torch.randn(n * self.world, *shape, generator=gen))

    def randint(self, gen: torch.Generator | None, low: int, high: int, n: int, *shape: int) -> torch.Tensor:
        """Integers in [low, high) for this process's n rows."""
        return self.rows(torch.randint(low, high, (n * self.world, *shape), generator=gen))


WHOLE = BatchShare()


def current_share() -> BatchShare:
    if dist.is_available() and dist.is_initialized():
        return BatchShare(dist.get_rank(), dist.get_world_size())
    return WHOLE


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise StudioError(f"the environment variable {name} must be a whole number, got {value!r}.") from None


def _device_for(device: str | None, local_rank: int) -> torch.device:
    """One device per process: the GPU of its local rank, or the CPU."""
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device != "cuda":
        raise StudioError(f"with several training processes --device must be auto, cpu or cuda (each "
                          f"process then uses the GPU of its local rank), not {device!r}.")
    if not torch.cuda.is_available():
        raise StudioError("--device cuda was given but this machine has no usable CUDA GPU.")
    if local_rank >= torch.cuda.device_count():
        raise StudioError(f"process with local rank {local_rank} needs GPU {local_rank}, but this machine "
                          f"has {torch.cuda.device_count()}: start at most that many processes per node.")
    return torch.device("cuda", local_rank)


@contextmanager
def process_group(device: str | None = None) -> Iterator[str | None]:
    """Join the process group torchrun describes in the environment, for the duration of the
    block, and give the device this process trains on (the `device` given when there is none)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1 or dist.is_initialized():
        yield device
        return
    dev = _device_for(device, _env_int("LOCAL_RANK", 0))
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.set_device(dev)
    try:
        dist.init_process_group("nccl" if cuda else "gloo", device_id=dev if cuda else None)
        dist.barrier()  # all have joined: one that stops at once (bad input) cannot break another's joining
    except (RuntimeError, ValueError) as e:
        raise StudioError(f"could not join the other training processes: {e}") from None
    try:
        yield str(dev)
    finally:
        dist.destroy_process_group()


# ---- networks -------------------------------------------------------------------------------
class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over all processes, with its gradient: every process holds the sum,
    so the gradient of each addend is the sum of the gradients the processes send back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training mode under a process group, normalises with the mean and
    variance of the whole global batch, as one process holding all of it would, and updates its
    running statistics from those same numbers (so they are identical in every process).

    torch's SyncBatchNorm does the same on GPUs only; this one works with gloo on CPUs too. It
    assumes every process holds equally many rows, which BatchShare.split ensures. In eval mode,
    or without a process group, it is plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        world = dist.get_world_size()
        xf = x.float()
        mean = _SumOverProcesses.apply(xf.mean((0, 2, 3))) / world
        centred = xf - mean[:, None, None]
        var = _SumOverProcesses.apply(centred.pow(2).mean((0, 2, 3))) / world  # biased, as BN normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                n = xf.numel() // xf.shape[1] * world
                self.running_mean.lerp_(mean, m)
                self.running_var.lerp_(var * (n / max(n - 1, 1)), m)
        y = centred * torch.rsqrt(var + self.eps)[:, None, None]
        if self.affine:
            y = y * self.weight[:, None, None] + self.bias[:, None, None]
        return y.to(x.dtype)


def _global_batchnorm(module: nn.Module) -> None:
    """Swap every BatchNorm2d inside `module` for a GlobalBatchNorm2d that holds the very same
    parameters and buffers (the optimizer keeps them, and the state dict keeps its keys)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            bn = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats)
            for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                setattr(bn, key, getattr(child, key))
            bn.train(child.training)
            setattr(module, name, bn)
        else:
            _global_batchnorm(child)


def _ddp(module: nn.Module, device: torch.device, sync_buffers: bool) -> nn.Module:
    """DDP wraps `module` (the same parameter tensors), after broadcasting rank 0's parameters
    and buffers; `sync_buffers` also broadcasts the buffers before each forward."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=sync_buffers)


def wrap_generator(G: nn.Module, device: torch.device) -> nn.Module:
    """G itself in one process; else G with global-batch BatchNorm under DistributedDataParallel.
    Its buffers (the BatchNorm running statistics) are identical in every process by
    construction, so DDP need not broadcast them."""
    if not dist.is_initialized():
        return G
    _global_batchnorm(G)
    return _ddp(G, device, sync_buffers=False)


def wrap_critic(D: nn.Module, device: torch.device) -> nn.Module:
    """D itself in one process; else D under DistributedDataParallel. The critic's buffers are
    spectral normalisation's power-iteration vectors, which every process updates alike from the
    same weights; DDP also broadcasts them from rank 0 before each forward, so they cannot drift
    apart even where two devices round differently."""
    if not dist.is_initialized():
        return D
    return _ddp(D, device, sync_buffers=True)


# ---- agreement between processes -------------------------------------------------------------
def any_process(flag: bool, device: torch.device) -> bool:
    """True in every process if it is true in any (e.g. one of them was asked to stop)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_processes(record: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over the processes, the same in all of them. A value that is NaN or
    infinite in any process stays non-finite, so all processes take the same branch on it."""
    if not dist.is_initialized():
        return record
    t = torch.tensor(list(record.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(record, (t / dist.get_world_size()).tolist()))
