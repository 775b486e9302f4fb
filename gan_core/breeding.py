"""Breeding images of a conditional model: an image is a `Specimen` (its latent, class blend,
truncation and where it came from); children are mutations of a parent (the latent moved by a
strength, the class blend optionally too); crossbreeding mixes two parents; a `Lineage` keeps the
generations with undo and redo; `Favourites` keeps chosen images in a folder with their settings.
Everything here is plain data, so the studio, the command line and notebooks share it.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError
from .io import atomic_write
from .sampling import class_weights, noise, save_png, slerp

MAX_CHILDREN = 16


@dataclass
class Specimen:
    """One image: latent z (nz floats), class blend {name: weight}, a label (e.g. "seed 7" or
    "child 3 of seed 7") and the seed it started from."""

    z: list[float]
    blend: dict[str, float]
    label: str = ""
    seed: int | None = None

    @classmethod
    def from_seed(cls, seed: int, nz: int, blend: dict[str, float], truncation: float = 1.0) -> "Specimen":
        return cls(noise([seed], nz, truncation)[0].tolist(), dict(blend), f"seed {seed}", int(seed))

    def latent(self) -> torch.Tensor:
        return torch.tensor(self.z, dtype=torch.float32)

    def to_dict(self) -> dict:
        return {"z": [round(v, 6) for v in self.z], "blend": self.blend, "label": self.label, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "Specimen":
        try:
            z = [float(v) for v in d["z"]]
            blend = {str(k): float(v) for k, v in dict(d["blend"]).items()}
        except (KeyError, TypeError, ValueError):
            raise ConfigError("These settings hold no image (a latent 'z' and a class 'blend' are needed).") from None
        if not z or not all(math.isfinite(v) for v in z):
            raise ConfigError("The image's latent must be a list of finite numbers.")
        return cls(z, blend, str(d.get("label", "")), d.get("seed"))


def weights(names: list[str], specimens: list[Specimen]) -> torch.Tensor:
    """(B, n_classes) blend weights, one row per specimen."""
    return torch.cat([class_weights(names, s.blend) for s in specimens])


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _mutate_blend(blend: dict[str, float], names: list[str], amount: float, g: torch.Generator) -> dict[str, float]:
    w = class_weights(names, blend)[0]
    noise_ = -torch.log(torch.rand(len(names), generator=g).clamp_min(1e-9))  # a random point of the simplex
    mixed = (1 - amount) * w + amount * noise_ / noise_.sum()
    return {n: round(float(v), 4) for n, v in zip(names, mixed) if v >= 0.005}


def children(parent: Specimen, names: list[str], n: int = 8, strength: float = 0.5, class_strength: float = 0.0,
             seed: int = 0) -> list[Specimen]:
    """n variations of a parent: z' = sqrt(1 - s^2) z + s e with fresh noise e (so the latent
    keeps its spread; s = strength in [0, 1]: 0 copies the parent, 1 is a new random image), and
    with class_strength > 0 the class blend moved as far towards a random blend. The same seed
    gives the same children."""
    if not 1 <= int(n) <= MAX_CHILDREN:
        raise ConfigError(f"Children must be between 1 and {MAX_CHILDREN}, got {n}.")
    for what, v in (("Strength", strength), ("Class mutation", class_strength)):
        if not (isinstance(v, (int, float)) and 0 <= v <= 1):
            raise ConfigError(f"{what} must be between 0 and 1, got {v}.")
    g = _rng(seed)
    z = parent.latent()
    keep = math.sqrt(max(0.0, 1 - strength ** 2))
    out = []
    for i in range(int(n)):
        e = torch.randn(z.shape[0], generator=g)
        blend = _mutate_blend(parent.blend, names, class_strength, g) if class_strength > 0 else dict(parent.blend)
        out.append(Specimen((keep * z + strength * e).tolist(), blend, f"child {i + 1}", parent.seed))
    return out


def crossbreed(a: Specimen, b: Specimen, names: list[str], n: int = 8, seed: int = 0) -> list[Specimen]:
    """n mixes of two parents: for each, a share t of b (spread over 0.2-0.8), the latents
    slerped and the class blends mixed by t."""
    if not 1 <= int(n) <= MAX_CHILDREN:
        raise ConfigError(f"Children must be between 1 and {MAX_CHILDREN}, got {n}.")
    if len(a.z) != len(b.z):
        raise ConfigError("The two images come from different models; crossbreed images of one model.")
    g = _rng(seed)
    wa, wb = class_weights(names, a.blend)[0], class_weights(names, b.blend)[0]
    za, zb = a.latent()[None], b.latent()[None]
    out = []
    for i in range(int(n)):
        t = 0.2 + 0.6 * (i + float(torch.rand(1, generator=g))) / n
        w = (1 - t) * wa + t * wb
        blend = {c: round(float(v), 4) for c, v in zip(names, w) if v >= 0.005}
        out.append(Specimen(slerp(za, zb, t)[0].tolist(), blend, f"cross {i + 1} ({round(100 * t)}% B)", None))
    return out


@dataclass
class Lineage:
    """The generations shown one after another (each a list of specimens and what made it), with
    undo and redo: a new generation after an undo drops the undone ones, as editors do."""

    steps: list[dict] = field(default_factory=list)  # {"what": str, "specimens": [dict]}
    at: int = -1

    def push(self, what: str, specimens: list[Specimen]) -> None:
        del self.steps[self.at + 1:]
        self.steps.append({"what": what, "specimens": [s.to_dict() for s in specimens]})
        self.at = len(self.steps) - 1

    @property
    def current(self) -> list[Specimen]:
        return [Specimen.from_dict(d) for d in self.steps[self.at]["specimens"]] if self.at >= 0 else []

    def can_undo(self) -> bool:
        return self.at > 0

    def can_redo(self) -> bool:
        return self.at < len(self.steps) - 1

    def undo(self) -> list[Specimen]:
        if not self.can_undo():
            raise ConfigError("Nothing to undo.")
        self.at -= 1
        return self.current

    def redo(self) -> list[Specimen]:
        if not self.can_redo():
            raise ConfigError("Nothing to redo.")
        self.at += 1
        return self.current

    def goto(self, i: int) -> list[Specimen]:
        """Jump to generation i (from 0), as several undos or redos would."""
        if not 0 <= int(i) < len(self.steps):
            raise ConfigError(f"There is no generation {int(i) + 1}; the lineage has {len(self.steps)}.")
        self.at = int(i)
        return self.current

    def labels(self) -> list[str]:
        """One line per generation, the current one marked."""
        return [("> " if i == self.at else "  ") + f"{i + 1}. {s['what']}" for i, s in enumerate(self.steps)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Lineage":
        return cls(list(d["steps"]), int(d["at"])) if d else cls()


# ---------------------------------------------------------------------------------------------
# Favourites: workspace/favourites/<name>.png + <name>.json
# ---------------------------------------------------------------------------------------------
class Favourites:
    """Images kept in a folder: each an upscaled PNG (settings in its text) and a JSON file with
    the model, the specimen and the time; both written atomically, the JSON last (an entry
    counts once its JSON is there)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def add(self, model: str, specimen: Specimen, image: np.ndarray, extra: dict | None = None) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{model}-{specimen.label}")[:60].strip("_") or "favourite"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        k = 0
        while (self.folder / f"{stem}-{stamp}-{k}.json").exists() or (self.folder / f"{stem}-{stamp}-{k}.png").exists():
            k += 1
        base = self.folder / f"{stem}-{stamp}-{k}"
        rec = {"model": model, "specimen": specimen.to_dict(), "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
               **(extra or {})}
        save_png(base.with_suffix(".png"), image, {"software": "GAN Studio", "gan_studio": json.dumps(rec)})
        atomic_write(base.with_suffix(".json"), json.dumps(rec, indent=1).encode())
        return base.with_suffix(".json")

    def entries(self) -> list[tuple[Path, dict]]:
        """(png path, record) of every readable favourite, newest first."""
        out = []
        for j in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) \
                if self.folder.is_dir() else []:
            png = j.with_suffix(".png")
            try:
                rec = json.loads(j.read_text())
                Specimen.from_dict(rec["specimen"])
            except (OSError, ValueError, KeyError, TypeError, ConfigError):
                continue  # a damaged entry is skipped, never deleted
            if png.is_file():
                out.append((png, rec))
        return out

    def remove(self, png: str | os.PathLike) -> None:
        p = Path(png)
        if p.parent.resolve() != self.folder.resolve():
            raise ConfigError("Only favourites of this workspace can be removed.")
        for f in (p.with_suffix(".json"), p.with_suffix(".png")):
            f.unlink(missing_ok=True)
