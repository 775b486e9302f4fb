"""Directions discovered in a conditional generator without any other network: closed-form
factorisation of its first layer (the idea of SeFa, Shen & Zhou 2021).

The generator's first layer maps [z, class embedding] linearly to the 4x4 features, which batch
normalisation then scales per channel. Moving z by d changes those features by A d, where A is the
z-part of the layer's weight with each output row scaled as batch normalisation scales it. The
unit directions d that change the features most are the top eigenvectors of A^T A; they are
orthogonal, so each moves the picture in its own way. They depend only on the weights: computed
once per weights file (milliseconds) and kept in a cache folder under the file's content hash.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError
from .io import atomic_write

MAX_DIRECTIONS = 10


def first_layer(G) -> torch.Tensor:
    """A (features, nz): how the first layer's outputs (after batch normalisation's scale) move
    with z."""
    W = G.fc.weight.detach().float()[:, :G.cfg.nz]  # (ch0*16, nz)
    bn = getattr(G, "bn0", None)
    if bn is not None and bn.running_var is not None:
        scale = (bn.weight.detach().float() if bn.affine else torch.ones_like(bn.running_var)) \
            / torch.sqrt(bn.running_var.float() + bn.eps)
        W = W * scale.repeat_interleave(W.shape[0] // scale.shape[0])[:, None]
    return W.cpu()


def factorise(G, k: int = MAX_DIRECTIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """The top k directions (k, nz), unit length, strongest first, and their strengths (the
    square roots of A^T A's eigenvalues: feature change per unit step)."""
    A = first_layer(G).double()
    vals, vecs = torch.linalg.eigh(A.T @ A)  # ascending
    order = torch.argsort(vals, descending=True)[:k]
    dirs = vecs[:, order].T.contiguous()
    # a sign convention, so the same weights always give the same slider direction
    signs = torch.sign(dirs[torch.arange(dirs.shape[0]), dirs.abs().argmax(1)])
    dirs = dirs * signs[:, None]
    return dirs.float(), vals[order].clamp_min(0).sqrt().float()


_HASHES: dict[tuple, str] = {}


def weights_hash(folder: str | os.PathLike) -> str:
    """The content hash of a model's generator weights (what a cache entry is keyed by); read
    once per file version (path, size, modification time)."""
    folder = Path(folder)
    for name in ("G_ema.safetensors", "G.safetensors"):
        f = folder / name
        if f.is_file():
            st = f.stat()
            key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
            if key in _HASHES:
                return _HASHES[key]
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            _HASHES[key] = h.hexdigest()[:24]
            return _HASHES[key]
    raise ConfigError(f"{folder} holds no generator weights (G_ema.safetensors).")


_MEMORY: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}


def directions(G, folder: str | os.PathLike, cache: str | os.PathLike | None = None,
               k: int = MAX_DIRECTIONS) -> torch.Tensor:
    """The top k directions of the model whose weights lie in `folder` (a checkpoint or model
    folder), read from `cache` (a folder) when computed before, else computed and stored there."""
    key = weights_hash(folder)
    if (key, k) in _MEMORY:
        return _MEMORY[(key, k)][0]
    path = Path(cache) / f"directions-{key}.json" if cache else None
    if path is not None and path.is_file():
        try:
            rec = json.loads(path.read_text())
            dirs = torch.tensor(rec["directions"], dtype=torch.float32)
            if dirs.shape == (k, G.cfg.nz):
                _MEMORY[(key, k)] = (dirs, torch.tensor(rec["strength"]))
                return dirs
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is computed again and replaced
    dirs, strength = factorise(G, k)
    _MEMORY[(key, k)] = (dirs, strength)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"method": "closed-form factorisation of the first layer", "weights_sha256": key,
               "strength": strength.tolist(), "directions": dirs.tolist()}
        atomic_write(path, json.dumps(rec).encode())
    return dirs


def offset(z: torch.Tensor, dirs: torch.Tensor, amounts: dict[int, float] | list[float] | None) -> torch.Tensor:
    """Latents moved along directions: amounts per direction index (0-based), in units of the
    latent's own standard deviation (about 1 for untruncated noise)."""
    if not amounts:
        return z
    items = amounts.items() if isinstance(amounts, dict) else enumerate(amounts)
    out = z.clone()
    for i, a in items:
        i = int(i)
        if not 0 <= i < dirs.shape[0]:
            raise ConfigError(f"Direction {i + 1} does not exist; this model has directions 1 to {dirs.shape[0]}.")
        if a:
            out = out + float(a) * dirs[i].to(z.dtype)
    return out


def effects(G, weights: torch.Tensor, dirs: torch.Tensor, z: torch.Tensor, step: float = 3.0) -> dict:
    """How much and how differently each direction changes the images of latents z: the mean
    absolute pixel change (0-255) per unit step, and the correlation matrix of the directions'
    pixel-change patterns (over all images and pixels)."""
    from .sampling import generate

    base = generate(G, z, weights)
    diffs = []
    for d in dirs:
        moved = generate(G, z + step * d[None, :], weights)
        diffs.append(((moved - base) * 127.5).flatten())
    D = torch.stack(diffs).double()
    change = (D.abs().mean(1) / step).tolist()
    corr = np.corrcoef(D.numpy()) if len(diffs) > 1 else np.ones((1, 1))
    return {"per_unit_step": change, "correlation": corr.tolist()}


def strip(G, weights: torch.Tensor, direction: torch.Tensor, z: torch.Tensor, steps: int = 5,
          span: float = 3.0) -> torch.Tensor:
    """Images of latent z (1, nz) moved from -span to +span along one direction (a preview)."""
    from .sampling import generate

    ts = torch.linspace(-span, span, steps)
    return generate(G, z + ts[:, None] * direction[None, :], weights)
