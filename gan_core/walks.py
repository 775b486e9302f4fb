"""Keyframe walks: any number of keyframes (a seed or a latent, a class blend, direction offsets),
visited in order and back to the first (a loop), each segment with its own easing. Frames are
drawn in batches with progress and a way to stop; `export_walk` writes MP4, GIF or WebP.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import directions as dirs_mod
from .errors import ConfigError
from .media import Cancelled, save_video, upscale
from .data import to_uint8
from .sampling import class_weights, generate, noise, slerp

EASINGS = {
    "linear": lambda t: t,
    "smooth": lambda t: 0.5 - 0.5 * math.cos(math.pi * t),  # slow at both keyframes
    "ease-in": lambda t: t * t,
    "ease-out": lambda t: 1 - (1 - t) ** 2,
}
MAX_KEYFRAMES = 64
MAX_FRAMES = 2400


class StopFlags:
    """One stop flag per caller (e.g. a browser session): Cancel sets the flag of its own caller's
    running export, and another caller's export goes on."""

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def flag(self, who: str) -> threading.Event:
        with self._lock:
            return self._flags.setdefault(who, threading.Event())

    def start(self, who: str) -> Callable[[], bool]:
        """A fresh start for `who` (an earlier Cancel no longer counts); returns its should_stop."""
        f = self.flag(who)
        f.clear()
        return f.is_set

    def stop(self, who: str) -> None:
        self.flag(who).set()


@dataclass
class Keyframe:
    """A point of the walk: a seed (or an explicit latent z), a class blend (None: the walk's),
    direction offsets {index: amount}, and the easing of the segment that leaves it."""

    seed: int | None = None
    z: list[float] | None = None
    blend: dict[str, float] | None = None
    offsets: dict[int, float] = field(default_factory=dict)
    ease: str = "smooth"

    def to_dict(self) -> dict:
        return {"seed": self.seed, "z": self.z, "blend": self.blend,
                "offsets": {str(k): v for k, v in self.offsets.items()}, "ease": self.ease}

    @classmethod
    def from_dict(cls, d: dict) -> "Keyframe":
        return cls(d.get("seed"), d.get("z"), d.get("blend"), {int(k): float(v) for k, v in
                                                                (d.get("offsets") or {}).items()},
                   d.get("ease", "smooth"))


def parse_keys(text: str) -> list[Keyframe]:
    """Keyframes from '0,7,3,9' (seeds) or with a class per key: '0:brick,7:grass=0.5+gravel=0.5'."""
    keys = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        seed_text, _, cls = part.partition(":")
        try:
            seed = int(seed_text)
        except ValueError:
            raise ConfigError(f"A keyframe is a seed (a whole number), optionally with :CLASS; got {part!r}.") from None
        if seed < 0:
            raise ConfigError(f"Seeds are 0 or more, got {seed}.")
        blend = None
        if cls:
            blend = {}
            for item in cls.split("+"):
                name, _, w = item.partition("=")
                try:
                    blend[name.strip()] = float(w) if w else 1.0
                except ValueError:
                    raise ConfigError(f"Bad class weight in {part!r}; write NAME or NAME=WEIGHT.") from None
        keys.append(Keyframe(seed=seed, blend=blend))
    return keys


def _key_state(k: Keyframe, nz: int, names: list[str], blend: dict[str, float], truncation: float,
               dirs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if k.z is not None:
        z = torch.tensor(k.z, dtype=torch.float32)
        if z.shape != (nz,):
            raise ConfigError(f"A keyframe's latent has {z.shape[0]} numbers; this model needs {nz}.")
    elif k.seed is not None:
        z = noise([k.seed], nz, truncation)[0]
    else:
        raise ConfigError("Each keyframe needs a seed or a latent.")
    if k.offsets:
        if dirs is None:
            raise ConfigError("Keyframes with direction offsets need the model's directions.")
        z = dirs_mod.offset(z[None], dirs, k.offsets)[0]
    if k.ease not in EASINGS:
        raise ConfigError(f"Easing is one of {', '.join(EASINGS)}, not {k.ease!r}.")
    return z, class_weights(names, k.blend or blend)[0]


def plan(keys: list[Keyframe], nz: int, names: list[str], blend: dict[str, float], frames_per_key: int,
         truncation: float = 1.0, dirs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (F, nz) and class weights (F, n_classes) of the whole loop: frames_per_key frames
    per segment, key 0 -> 1 -> ... -> last -> key 0, and the closing frame (equal to the first)."""
    if not 2 <= len(keys) <= MAX_KEYFRAMES:
        raise ConfigError(f"A walk needs 2 to {MAX_KEYFRAMES} keyframes, got {len(keys)}.")
    if not 2 <= frames_per_key <= 240:
        raise ConfigError(f"Frames per keyframe must be between 2 and 240, got {frames_per_key}.")
    if len(keys) * frames_per_key + 1 > MAX_FRAMES:
        raise ConfigError(f"That is {len(keys) * frames_per_key + 1} frames; the limit is {MAX_FRAMES}.")
    states = [_key_state(k, nz, names, blend, truncation, dirs) for k in keys]
    zs, ws = [], []
    for i, k in enumerate(keys):
        (za, wa), (zb, wb) = states[i], states[(i + 1) % len(keys)]
        for f in range(frames_per_key):
            t = EASINGS[k.ease](f / frames_per_key)
            zs.append(slerp(za[None], zb[None], t)[0] if not torch.equal(za, zb) else za)
            ws.append(wa + (wb - wa) * t)
    zs.append(states[0][0])
    ws.append(states[0][1])
    return torch.stack(zs), torch.stack(ws)


def render(G, zs: torch.Tensor, ws: torch.Tensor, scale: int = 1, method: str = "nearest", batch: int = 16,
           on_progress: Callable[[float], None] | None = None,
           should_stop: Callable[[], bool] | None = None) -> list[np.ndarray]:
    """The frames as (H, W, 3) uint8 pictures, upscaled; progress after each batch; raises
    Cancelled when should_stop() turns true."""
    out = []
    for i in range(0, zs.shape[0], batch):
        if should_stop is not None and should_stop():
            raise Cancelled("Export cancelled; nothing was written.")
        imgs = generate(G, zs[i:i + batch], ws[i:i + batch])
        for im in imgs:
            out.append(upscale(to_uint8(im).permute(1, 2, 0).numpy().copy(), scale, method))
        if on_progress:
            on_progress(len(out) / zs.shape[0])
    return out


def export_walk(G, names: list[str], keys: list[Keyframe], out: str | os.PathLike, *, blend: dict[str, float],
                frames_per_key: int = 24, fps: float = 24, truncation: float = 1.0, scale: int = 4,
                method: str = "nearest", dirs: torch.Tensor | None = None, metadata: dict | None = None,
                on_progress: Callable[[str, float], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> tuple[Path, int]:
    """Render and write a looped walk; the format comes from the file name (.mp4, .gif, .webp).
    An MP4 ends on the first frame (it closes the loop when played again); GIF and WebP loop by
    themselves, so the closing frame is left out. Returns the path and the frame count.
    on_progress(stage, fraction) with stage "frames" or "writing"."""
    suffix = Path(str(out)).suffix.lower()
    if suffix not in (".mp4", ".gif", ".webp"):
        raise ConfigError(f"Write a walk as .mp4, .gif or .webp, not {suffix or 'a file without suffix'}.")
    zs, ws = plan(keys, G.cfg.nz, names, blend, frames_per_key, truncation, dirs)
    frames = render(G, zs, ws, scale, method, on_progress=(lambda f: on_progress("frames", f)) if on_progress
                    else None, should_stop=should_stop)
    if suffix != ".mp4":
        frames = frames[:-1]
    save_video(frames, out, fps, metadata, (lambda f: on_progress("writing", f)) if on_progress else None,
               should_stop)
    return Path(out), len(frames)
