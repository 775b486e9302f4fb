"""Named settings -> a validated RunConfig: the one place that knows the defaults, the recipes, the
ranges of every setting and the checks that need the data. The command line and the studio both
come through here, so a setting means the same and is refused the same way at either door.

Values may arrive as numbers or as text typed into a form; `None` (or an empty field) means the
recipe's default. A refused value raises ConfigError naming the setting.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import (AUGMENTS, DEFAULT_RECIPE, NO_STEP_LIMIT, RESOLUTIONS, CGANConfig, RunConfig, SGANConfig,
                     TrainConfig, recipe_model)
from .datacheck import DataCheck, check_data
from .errors import ConfigError
from .memory import check_fits
from .sampling import View
from .texture import MAX_SIDE, MIN_SIDE


MIN_QUALITY_EVERY = 25  # steps between quality checks at least (each costs a few steps' time)


@dataclass(frozen=True)
class Field:
    label: str  # as the studio shows it and as messages name it
    whole: bool = True
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is refused
    hi_open: bool = False


FIELDS = {
    "steps": Field("Steps", lo=1, hi=10_000_000),
    "minutes": Field("Train for (minutes)", whole=False, lo=0, hi=100_000),
    "add_minutes": Field("Add time (minutes)", whole=False, lo=0, hi=100_000),
    "total_steps": Field("New total steps", lo=0, hi=10_000_000),
    "batch": Field("Batch", lo=1, hi=4096),
    "resolution": Field("Resolution", lo=min(RESOLUTIONS), hi=max(RESOLUTIONS)),
    "g_channels": Field("Generator width", lo=1, hi=512),
    "d_channels": Field("Critic width", lo=0, hi=512),  # conditional models: 0 leaves it to the time budget
    "g_extra": Field("Stages with two convolutions", lo=0, hi=5),
    "lr": Field("Learning rate", whole=False, lo=0, hi=1, lo_open=True, hi_open=True),
    "lr_d": Field("Critic learning rate", whole=False, lo=0, hi=1, lo_open=True, hi_open=True),
    "seed": Field("Seed", lo=0, hi=2**63 - 1),
    "sample_every": Field("Samples every (steps)", lo=1, hi=10_000_000),
    "ckpt_every": Field("Checkpoint every (steps)", lo=1, hi=10_000_000),
    "patch": Field("Patch", lo=32, hi=512),
    "max_side": Field("Max side", lo=32, hi=16384),
    "depth": Field("Depth", lo=1, hi=7),
    "n_critic": Field("Critic steps", lo=1, hi=100),
    "gp_lambda": Field("Gradient penalty weight", whole=False, lo=0, hi=1e6),
    "r1_gamma": Field("R1 + R2 weight", whole=False, lo=0, hi=1e6),
    "lr_boost": Field("Early learning-rate boost", whole=False, lo=1, hi=10),
    "diversity": Field("Diversity", whole=False, lo=0, hi=100),
    "mirror_balance": Field("Mirror balance", whole=False, lo=0, hi=100),
    "ema": Field("EMA decay", whole=False, lo=0, hi=1, hi_open=True),
    "width": Field("Width", lo=MIN_SIDE, hi=MAX_SIDE),
    "height": Field("Height", lo=MIN_SIDE, hi=MAX_SIDE),
    "images": Field("Images", lo=1, hi=64),
    "frames": Field("Frames", lo=4, hi=240),
    "truncation": Field("Truncation", whole=False, lo=0, hi=1, lo_open=True),
    "position": Field("Position", whole=False, lo=0, hi=1),
    "feather": Field("Feather (px)", whole=False, lo=0, hi=512),
    "variations": Field("Variations", lo=1, hi=64),
}


def value(v: Any, name: str, label: str | None = None) -> int | float:
    """A setting's value from a number or typed text, checked against its range in FIELDS."""
    f = FIELDS[name]
    label = label or f.label
    kind = "a whole number" if f.whole else "a number"
    if isinstance(v, bool):
        raise ConfigError(f"{label} must be {kind}, got {v}.")
    try:
        text = str(v).strip() if isinstance(v, (str, int)) else None
        if text is not None and text.lstrip("+-").isdigit() and len(text) < 40:  # exact, however large
            x = int(text)
        else:
            x = float(str(v).strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} must be {kind}" + (f", got {v!r}." if v not in (None, "") else "; it is empty.")) \
            from None
    if isinstance(x, float) and not math.isfinite(x):
        raise ConfigError(f"{label} must be a finite number, got {v}.")
    if f.whole and x != int(x):
        raise ConfigError(f"{label} must be a whole number, got {v}.")
    x = int(x) if f.whole else x
    low_bad = f.lo is not None and (x <= f.lo if f.lo_open else x < f.lo)
    high_bad = f.hi is not None and (x >= f.hi if f.hi_open else x > f.hi)
    if low_bad or high_bad:
        lo = _num(f.lo) + (" (not included)" if f.lo_open else "")
        hi = _num(f.hi) + (" (not included)" if f.hi_open else "")
        raise ConfigError(f"{label} must be between {lo} and {hi}, got {_num(x)}.")
    return x


def _num(x: float) -> str:
    return str(int(x)) if isinstance(x, int) or float(x).is_integer() else f"{x:g}"


def _empty(v: Any) -> bool:
    """A field left empty: nothing given, or only spaces."""
    return v is None or (isinstance(v, str) and not v.strip())


def optional(v: Any, name: str) -> int | float | None:
    """`value`, or None for a missing or empty field."""
    return None if _empty(v) else value(v, name)


def arg(name: str) -> Callable[[str], int | float]:
    """An argparse type for a setting: the same ranges and words as everywhere else (argparse
    puts the option's name in front: "argument --steps: must be between 1 and ...")."""
    def parse(text: str):
        try:
            return value(text, name, label="@")
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("@ ")) from None
    parse.__name__ = name  # argparse names the type in its messages
    return parse


def run_config(variant: str, data: list[str | os.PathLike], *, recipe: str = DEFAULT_RECIPE, check: bool = True,
               form: bool = False, on_progress: Callable[[float], None] | None = None, **settings) -> RunConfig:
    """The RunConfig of a new run: the recipe's defaults for the variant, then every setting given.

    settings (None: the recipe's): steps, minutes (a time budget; without steps the run has no
    step limit), batch, resolution, g_channels, d_channels (conditional models: 0 leaves the critic's
    width to the time budget, config.SHORT_CRITIC), conditioning, lr, lr_d, betas, loss,
    n_critic, gp_lambda, r1_gamma, lr_boost, diversity, ema (a per-step decay instead of the recipe's
    half-life), augment (a list of names), mirror, seed, sample_every, ckpt_every, precision;
    conditional models also noise_maps, sle, half_chroma and colour_gate (on/off), g_extra and
    mirror_balance;
    textures also patch, max_side, depth.
    With `check`, the data is read as training will read it (datacheck.check_data), and data that
    cannot train is refused here, before a run starts.
    With `form` (the values of a form the user filled in), an empty field is refused, naming it,
    instead of meaning the default.
    """
    if variant not in ("cgan", "sgan"):
        raise ConfigError("Choose what to train: conditional images (cgan) or texture (sgan).")
    unknown = sorted(set(settings) - _KNOWN)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(unknown)}")
    if form:
        for k, v in settings.items():
            if k in FIELDS and _empty(v):
                value(v, k)  # raises: "<Field> must be a whole number; it is empty."
    s = {k: v for k, v in settings.items() if not _empty(v)}
    given: dict[str, Any] = {}
    if "loss" in s:
        given["loss"] = s["loss"]
    if "n_critic" in s:
        given["n_critic"] = value(s["n_critic"], "n_critic")
    if "lr" in s:
        given["lr_g"] = given["lr_d"] = value(s["lr"], "lr")
    if "lr_d" in s:
        given["lr_d"] = value(s["lr_d"], "lr_d")
    if "betas" in s:
        given["beta1"], given["beta2"] = (float(b) for b in s["betas"])
    if "diversity" in s:
        given["diversity"] = value(s["diversity"], "diversity")
    if "r1_gamma" in s:
        given["r1_gamma"] = value(s["r1_gamma"], "r1_gamma")
    if "lr_boost" in s:
        given["lr_boost"] = value(s["lr_boost"], "lr_boost")
    if "mirror_balance" in s and variant == "cgan":
        given["mirror_balance"] = value(s["mirror_balance"], "mirror_balance")
    if "augment" in s:
        given["augment"] = augment_list(s["augment"])
    if "ema" in s:  # a per-step decay replaces the recipe's half-life in images
        given.update(ema_beta=value(s["ema"], "ema"), ema_kimg=0.0)
    t = TrainConfig.recipe(recipe, variant, **given)
    minutes = value(s["minutes"], "minutes") if "minutes" in s else 0.0
    steps = value(s["steps"], "steps") if "steps" in s else (NO_STEP_LIMIT if minutes else t.steps)
    t = dataclasses.replace(t, steps=steps, minutes=float(minutes))
    for name in ("batch", "seed", "sample_every", "ckpt_every", "gp_lambda"):
        if name in s:
            setattr(t, name, value(s[name], name))
    if "mirror" in s:
        t.mirror = bool(s["mirror"])
    if "precision" in s:
        t.precision = s["precision"]
    if t.steps < NO_STEP_LIMIT:  # short runs log, and check quality, a few times at least
        t.log_every = max(1, min(t.log_every, t.steps // 50))
        t.quality_every = max(MIN_QUALITY_EVERY, min(t.quality_every, t.steps // 8)) if t.quality_every else 0
    if variant == "cgan":
        res = value(s.get("resolution", CGANConfig.resolution), "resolution")
        if res not in RESOLUTIONS:
            raise ConfigError(f"Resolution must be one of {', '.join(map(str, RESOLUTIONS))} px, got {res}.")
        model = CGANConfig(resolution=res, **{**recipe_model(recipe, "cgan"), **_widths(s, "cgan")})
        if "conditioning" in s:
            model.conditioning = s["conditioning"]
        if "g_extra" in s:
            model.g_extra = value(s["g_extra"], "g_extra")
        for name in MODEL_SWITCHES:
            if name in s:
                setattr(model, name, bool(s[name]))
        if not model.half_chroma and "colour_gate" not in s:  # the gate scales the half-resolution colour
            model.colour_gate = False
        paths = [str(Path(data[0]).expanduser().resolve())]
    else:
        for name in ("patch", "max_side"):
            if name in s:
                setattr(t, name, value(s[name], name))
        depth = value(s.get("depth", SGANConfig.depth), "depth")
        model = SGANConfig(depth=depth, **{**recipe_model(recipe, "sgan"), **_widths(s, "sgan")})
        paths = [str(Path(p).expanduser().resolve()) for p in data]
    cfg = RunConfig(variant, model, t, data=paths)
    cfg.validate(require_names=False)
    check_fits(cfg)  # before a byte of it is allocated
    if check:
        data_check(cfg, on_progress).raise_if_unusable()
    return cfg


def data_check(cfg: RunConfig, on_progress: Callable[[float], None] | None = None) -> DataCheck:
    """The data check for a run's settings (batch; texture patch and max side)."""
    t = cfg.train
    if cfg.variant == "cgan":
        return check_data("cgan", cfg.data, batch=t.batch, on_progress=on_progress)
    return check_data("sgan", cfg.data, patch=t.patch, max_side=t.max_side, on_progress=on_progress)


def augment_list(v: str | list[str] | tuple[str, ...]) -> list[str]:
    """Augmentation names from a list or comma-separated text ('none' or empty: no augmentation)."""
    names = [a.strip() for a in (v.split(",") if isinstance(v, str) else v)]
    names = [a for a in names if a and a != "none"]
    bad = [a for a in names if a not in AUGMENTS]
    if bad:
        raise ConfigError(f"Unknown augmentation {bad[0]!r}; choose from {', '.join(AUGMENTS)}.")
    return names


def _widths(s: dict, variant: str) -> dict[str, int | None]:
    """The networks' widths given; a conditional critic's 0 is "by the time budget" (None)."""
    out: dict[str, int | None] = {k: value(s[k], k) for k in ("g_channels", "d_channels") if k in s}
    if out.get("d_channels") == 0:
        if variant != "cgan":
            raise ConfigError("Critic width must be between 1 and 512 for a texture model, got 0.")
        out["d_channels"] = None
    return out


def resume_limits(steps: Any = None, minutes: Any = None) -> tuple[int | None, float | None]:
    """A resume's new step total (None: the run's own) and added minutes (None: none), from a
    form (0 or empty: not given) or the command line."""
    total = optional(steps, "total_steps")
    add = optional(minutes, "add_minutes")
    return (total or None), (add or None)


def defaults(variant: str, recipe: str = DEFAULT_RECIPE) -> dict[str, Any]:
    """The settings a new run of a variant and recipe starts from, by name (for forms and --help)."""
    t = TrainConfig.recipe(recipe, variant)
    m = (CGANConfig if variant == "cgan" else SGANConfig)(**recipe_model(recipe, variant))
    out = {"steps": t.steps, "batch": t.batch, "lr": t.lr_g, "seed": t.seed, "augment": list(t.augment),
           "sample_every": t.sample_every, "ckpt_every": t.ckpt_every, "g_channels": m.g_channels,
           "d_channels": m.d_channels or 0, "loss": t.loss, "gp_lambda": t.gp_lambda}  # 0: by the time budget
    if variant == "cgan":
        out.update(resolution=m.resolution, conditioning=m.conditioning)
    else:
        out.update(patch=t.patch, max_side=t.max_side, depth=m.depth)
    return out


# Conditional generator parts a run switches on or off (CGANConfig fields; the recipe's value otherwise).
MODEL_SWITCHES = ("noise_maps", "sle", "half_chroma", "colour_gate")
_KNOWN = {*MODEL_SWITCHES, "steps", "minutes", "batch", "resolution", "g_channels", "d_channels", "conditioning",
          "lr", "lr_d", "betas", "loss", "n_critic", "gp_lambda", "diversity", "ema", "augment", "mirror", "seed",
          "sample_every", "ckpt_every", "precision", "patch", "max_side", "depth", "r1_gamma", "mirror_balance",
          "g_extra", "lr_boost"}


def explore_view(class_names: list[str], weights: list, seed_a: Any = 0, seed_b: Any = 1, position: Any = 0.0,
                 method: str = "slerp", truncation: Any = 1.0, n: Any = 4) -> View:
    """An Explore view from a form: per class its slider weight (in order), the seeds, the position
    between them, the path, truncation and the number of images."""
    blend = {c: float(w) for c, w in zip(class_names, weights) if w is not None and float(w) > 0}
    if not blend:
        raise ConfigError("Move at least one class slider above zero.")
    if method not in ("slerp", "lerp"):
        raise ConfigError(f"The path is slerp or lerp, not {method!r}.")
    return View(blend, value(seed_a, "seed", "Seed A"), value(seed_b, "seed", "Seed B"), value(position, "position"),
                method, value(truncation, "truncation"), value(n, "images"))


def brushes(sources: list, seeds: list) -> list[dict]:
    """Texture brushes from a form: per brush its source image (an index; None or below 0: a random
    style) and its style seed (empty: the texture's seed)."""
    out = []
    for i, (src, seed) in enumerate(zip(sources, seeds)):
        try:
            source = None if src is None or int(src) < 0 else int(src)
        except (TypeError, ValueError):
            raise ConfigError(f"Brush {i + 1}: choose a source texture from the list.") from None
        style = None if seed is None or (isinstance(seed, str) and not seed.strip()) else \
            value(seed, "seed", f"Style seed of brush {i + 1}")
        out.append({"source": source, "style_seed": style})
    return out


MORPH_DIRECTIONS = ("horizontal", "vertical")


def texture_request(width: Any, height: Any, seed: Any, tileable: Any, brush_sources: list, brush_seeds: list,
                    style_map=None, feather: Any = None, morph: tuple[Any, Any] | None = None,
                    morph_direction: str = "horizontal") -> dict[str, Any]:
    """The arguments of texture.paint from a form (or the command line), checked: sizes, seed,
    brushes, feather (empty: the default), morph (two brush numbers from 1, or None) and its
    direction. The same request always gives the same dict (see texture_key)."""
    req = {"width": value(width, "width"), "height": value(height, "height"), "seed": value(seed, "seed"),
           "tileable": bool(tileable), "brushes": brushes(brush_sources, brush_seeds),
           "feather": optional(feather, "feather"), "style_map": style_map, "morph": None,
           "morph_direction": morph_direction}
    if morph is not None:
        a, b = (value(m, "images", "Morph brush") for m in morph)
        if not (a <= len(req["brushes"]) and b <= len(req["brushes"])):
            raise ConfigError(f"A morph goes between two brushes numbered 1 to {len(req['brushes'])}.")
        if morph_direction not in MORPH_DIRECTIONS:
            raise ConfigError(f"The morph runs {' or '.join(MORPH_DIRECTIONS)}, not {morph_direction!r}.")
        req["morph"] = (a - 1, b - 1)
    return req


def texture_key(model: Any, req: dict[str, Any], bits: int = 8) -> str:
    """A fingerprint of a texture request: equal exactly when paint would make the same pixels."""
    import hashlib
    import json

    import numpy as np
    sm = req.get("style_map")
    digest = None if sm is None else hashlib.sha1(np.ascontiguousarray(sm, np.int64).tobytes()
                                                  + str(np.shape(sm)).encode()).hexdigest()
    used = {k: v for k, v in req.items() if k != "style_map"}
    return json.dumps([str(model), used, digest, bits], sort_keys=True, default=str)
