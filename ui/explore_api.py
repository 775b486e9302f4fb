"""Explore's API endpoints with named parameters (for scripts and gradio_client): models by the
name shown in the list, class weights by class name, pictures back as PNG data URLs."""
from __future__ import annotations

import gradio as gr

from gan_core import explore
from gan_core.breeding import Specimen
from gan_core.errors import ConfigError, StudioError

from .common import Context, data_uri
from .explore_breed import N_DIRECTIONS


def parse_classes(text: str, names: list[str]) -> dict[str, float]:
    """'brick=0.3, grass=0.7' or 'brick' (empty: the first class)."""
    blend = {}
    for item in [t.strip() for t in (text or "").split(",") if t.strip()]:
        name, _, w = item.partition("=")
        try:
            blend[name.strip()] = float(w) if w.strip() else 1.0
        except ValueError:
            raise ConfigError(f"Bad class weight {item!r}; write NAME=WEIGHT, e.g. {names[0]}=0.5.") from None
    return blend or {names[0]: 1.0}


def _directions(text: str) -> dict[int, float]:
    """'1=2.5, 3=-1' (directions counted from 1)."""
    out = {}
    for item in [t.strip() for t in (text or "").split(",") if t.strip()]:
        k, _, v = item.partition("=")
        try:
            out[int(k) - 1] = float(v)
        except ValueError:
            raise ConfigError(f"Bad direction {item!r}; write INDEX=AMOUNT, e.g. 1=2.5.") from None
    if any(k < 0 or k >= N_DIRECTIONS for k in out):
        raise ConfigError(f"Directions are numbered 1 to {N_DIRECTIONS}.")
    return explore.offsets_from([out.get(i, 0.0) for i in range(N_DIRECTIONS)])


def register(ctx: Context) -> None:
    def pictures(model: str, classes: str = "", seeds: str = "0,1,2,3", truncation: float = 1.0,
                 directions: str = "", scale: int = 1) -> dict:
        """Pictures of a model (its name as listed, e.g. "demo-classes") for seeds "0,1,2,3", a class
        blend "brick=0.3, grass=0.7", truncation and direction offsets "1=2.5, 3=-1"; returns
        {"labels": [...], "images": [PNG data URLs]}."""
        try:
            m = ctx.ws.load_model(model, "cgan")
            blend = parse_classes(classes, m.class_names)
            try:
                seed_list = [int(s) for s in str(seeds).split(",") if s.strip()]
            except ValueError:
                raise ConfigError(f"Seeds are whole numbers separated by commas, got {seeds!r}.") from None
            if not 1 <= len(seed_list) <= 64:
                raise ConfigError("Give 1 to 64 seeds.")
            sps = [Specimen.from_seed(s, m.cfg.model.nz, blend, float(truncation)) for s in seed_list]
            offsets = _directions(directions)
            dirs = explore.model_directions(m, ctx.ws.cache, N_DIRECTIONS) if offsets else None
            pics = explore.pictures(m.G, m.class_names, sps, dirs, offsets)
            from gan_core.media import upscale
            return {"labels": [s.label for s in sps], "images": [data_uri(upscale(p, int(scale))) for p in pics]}
        except StudioError as e:
            raise gr.Error(str(e), print_exception=False) from None

    gr.api(pictures, api_name="pictures", concurrency_id="explore")
