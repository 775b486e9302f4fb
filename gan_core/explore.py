"""What Explore draws, shared by the tab, the command line and notebooks: the images of a list of
specimens moved along discovered directions, upscaled for display; class x seed grids with their
labels; exports at 1x-8x with the settings written in.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from . import directions as D
from .breeding import Lineage, Specimen, children, crossbreed, weights
from .data import to_uint8
from .errors import ConfigError
from .media import settings_text, upscale
from .sampling import class_weights, generate, noise, save_png

MAX_OFFSET = 5.0  # direction sliders go from -MAX_OFFSET to +MAX_OFFSET


def model_directions(model, cache: str | os.PathLike | None, k: int = D.MAX_DIRECTIONS) -> torch.Tensor:
    """The model's top directions (computed once per weights file, kept in `cache`)."""
    return D.directions(model.G, model.folder, cache, k)


def offsets_from(values) -> dict[int, float]:
    """Direction offsets {index: amount} from slider values in order (zeros left out), checked."""
    out = {}
    for i, v in enumerate(values or []):
        if v is None:
            continue
        v = float(v)
        if not -MAX_OFFSET <= v <= MAX_OFFSET:
            raise ConfigError(f"Direction {i + 1} must be between -{MAX_OFFSET:g} and {MAX_OFFSET:g}, got {v:g}.")
        if v:
            out[i] = v
    return out


def latents(specimens: list[Specimen], dirs: torch.Tensor | None, offsets: dict[int, float]) -> torch.Tensor:
    z = torch.stack([s.latent() for s in specimens])
    return D.offset(z, dirs, offsets) if offsets and dirs is not None else z


def pictures(G, names: list[str], specimens: list[Specimen], dirs: torch.Tensor | None = None,
             offsets: dict[int, float] | None = None) -> list[np.ndarray]:
    """One (R, R, 3) uint8 picture per specimen, moved along the directions by the offsets."""
    if not specimens:
        raise ConfigError("There are no images yet; choose a model first.")
    imgs = generate(G, latents(specimens, dirs, offsets or {}), weights(names, specimens))
    return list(to_uint8(imgs).permute(0, 2, 3, 1).contiguous().numpy())


def display_size(resolution: int, target: int = 192) -> int:
    """The whole upscale factor that shows a picture at about `target` px (1-8)."""
    return int(min(8, max(1, round(target / resolution))))


_FONT_CACHE: dict[int, ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.ImageFont:
    if size not in _FONT_CACHE:
        _FONT_CACHE[size] = ImageFont.load_default(size=size)
    return _FONT_CACHE[size]


def labelled_grid(cells: list[list[np.ndarray]], rows: list[str], cols: list[str], scale: int = 1,
                  pad: int = 4) -> np.ndarray:
    """Pictures in rows and columns on white, row labels on the left and column labels on top."""
    if not cells or not cells[0]:
        raise ConfigError("The grid is empty.")
    cells = [[upscale(c, scale) for c in row] for row in cells]
    h, w = cells[0][0].shape[:2]
    size = max(11, min(20, h // 5))
    font = _font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = max(probe.textlength(r, font=font) for r in rows) + 2 * pad if any(rows) else 0
    top = size + 2 * pad if any(cols) else 0
    W = int(left + len(cells[0]) * (w + pad) + pad)
    H = int(top + len(cells) * (h + pad) + pad)
    canvas = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(canvas)
    for j, c in enumerate(cols):
        x = left + pad + j * (w + pad) + (w - probe.textlength(c, font=font)) / 2
        draw.text((x, pad), c, fill=(40, 40, 40), font=font)
    for i, row in enumerate(cells):
        y = top + pad + i * (h + pad)
        if rows[i]:
            draw.text((pad, y + (h - size) / 2), rows[i], fill=(40, 40, 40), font=font)
        for j, cell in enumerate(row):
            canvas.paste(Image.fromarray(cell), (int(left + pad + j * (w + pad)), y))
    return np.asarray(canvas)


def class_seed_grid(G, names: list[str], seeds: list[int], truncation: float = 1.0, scale: int = 1,
                    dirs: torch.Tensor | None = None, offsets: dict[int, float] | None = None) -> np.ndarray:
    """One row per class (labelled with its name), one column per seed (labelled "seed N"), the
    same latent down each column."""
    z = noise(seeds, G.cfg.nz, truncation)
    if offsets and dirs is not None:
        z = D.offset(z, dirs, offsets)
    rows = []
    for c in names:
        imgs = generate(G, z, class_weights(names, c))
        rows.append([to_uint8(im).permute(1, 2, 0).numpy().copy() for im in imgs])
    return labelled_grid(rows, names, [f"seed {s}" for s in seeds], scale)


def specimen_grid(pics: list[np.ndarray], specimens: list[Specimen], scale: int = 1, per_row: int = 8) -> np.ndarray:
    """The current images in rows of up to `per_row`, each captioned with its label."""
    rows, labels = [], []
    for i in range(0, len(pics), per_row):
        row = pics[i:i + per_row]
        row += [np.full_like(pics[0], 255)] * (min(per_row, len(pics)) - len(row))
        rows.append(row)
        labels.append("")
    cols = [s.label for s in specimens[:per_row]] if len(pics) <= per_row else []
    return labelled_grid(rows, labels, cols, scale)


def export_settings(model_name: str, specimens: list[Specimen], truncation: float,
                    offsets: dict[int, float], extra: dict | None = None) -> dict:
    """The settings of an export (what "open an export" brings back)."""
    return {"model": model_name, "truncation": truncation, "specimens": [s.to_dict() for s in specimens],
            "directions": {str(k): v for k, v in offsets.items()}, **(extra or {})}


def write_png(path: str | os.PathLike, img: np.ndarray, settings: dict, scale: int = 1,
              method: str = "nearest") -> Path:
    """An export: the picture upscaled 1x-8x, the settings in its text chunks (atomic)."""
    save_png(path, upscale(img, scale, method), settings_text({"scale": scale, **settings}))
    return Path(path)


class Session:
    """One person's exploring: the lineage of generations shown, the images picked (the last one
    is the parent; the one before it the second parent of a crossbreed) and the walk's keyframes.
    Plain data: the studio keeps one per browser tab, a notebook its own."""

    def __init__(self):
        self.lineage = Lineage()
        self.picks: list[int] = []
        self.keys: list[dict] = []
        self.keep_next = False  # the next show_seeds keeps the generation shown (an export was opened)
        self.model: str | None = None  # the model the session belongs to (set by the studio)
        self.thumbs: dict[int, np.ndarray] = {}  # generation -> its first picture, as last shown

    @property
    def specimens(self) -> list[Specimen]:
        return self.lineage.current

    def show_seeds(self, specimens: list[Specimen], what: str, opened: bool = False) -> None:
        """The images of the seed controls: they replace a seeds generation on top (moving a slider
        is not a new generation) and follow a bred one as a new generation. `opened`: drawn because
        a model opened, which keeps the pictures of an export that was opened just before."""
        if self.keep_next:
            self.keep_next = False
            if opened:
                return
        top = self.lineage.steps[self.lineage.at] if self.lineage.at >= 0 else None
        if top is not None and top["what"].startswith("seeds") and not self.lineage.can_redo():
            top.update(what=what, specimens=[s.to_dict() for s in specimens])
        else:
            self.lineage.push(what, specimens)
            self.picks = []

    def pick(self, index: int) -> Specimen:
        sp = self.specimens
        if not 0 <= int(index) < len(sp):
            raise ConfigError(f"There is no image {int(index) + 1}; pick one of the {len(sp)} shown.")
        self.picks = (self.picks + [int(index)])[-2:]
        return sp[int(index)]

    def parent(self, dirs: torch.Tensor | None = None, offsets: dict[int, float] | None = None) -> Specimen:
        """The picked image as it is shown (direction offsets included)."""
        if not self.picks:
            raise ConfigError("Click an image first: it becomes the parent.")
        return self._shown(self.picks[-1], dirs, offsets)

    def _shown(self, i: int, dirs, offsets) -> Specimen:
        s = self.specimens[i]
        if offsets and dirs is not None:
            s = Specimen(D.offset(s.latent()[None], dirs, offsets)[0].tolist(), s.blend, s.label, s.seed)
        return s

    def breed(self, names: list[str], n: int, strength: float, class_strength: float, seed: int,
              dirs: torch.Tensor | None = None, offsets: dict[int, float] | None = None) -> list[Specimen]:
        p = self.parent(dirs, offsets)
        p = Specimen(p.z, p.blend, self.specimens[self.picks[-1]].label, p.seed)
        kids = children(p, names, n, strength, class_strength, seed)
        self.lineage.push(f"children of {self.specimens[self.picks[-1]].label}", [p] + kids)
        self.picks = [0]
        return self.specimens

    def cross(self, names: list[str], n: int, seed: int, dirs: torch.Tensor | None = None,
              offsets: dict[int, float] | None = None) -> list[Specimen]:
        if len(self.picks) < 2 or self.picks[0] == self.picks[1]:
            raise ConfigError("Click two different images: the one before last is A, the last is B.")
        a, b = (self._shown(i, dirs, offsets) for i in self.picks)
        a, b = Specimen(a.z, a.blend, "A", a.seed), Specimen(b.z, b.blend, "B", b.seed)
        la, lb = (self.specimens[i].label for i in self.picks)
        self.lineage.push(f"cross of {la} and {lb}", [a] + crossbreed(a, b, names, n, seed) + [b])
        self.picks = []
        return self.specimens

    def restore(self, specimens: list[Specimen], what: str) -> None:
        self.lineage.push(what, specimens)
        self.picks = [0] if len(specimens) == 1 else []

    def undo(self) -> None:
        self.lineage.undo()
        self.picks = []

    def redo(self) -> None:
        self.lineage.redo()
        self.picks = []

    def goto(self, i: int) -> None:
        self.lineage.goto(i)
        self.picks = []

    def strip(self, first_picture: np.ndarray) -> list[tuple[np.ndarray, str]]:
        """The lineage as (picture, caption) per generation: the current one's first picture is
        `first_picture`; the others as they were last shown."""
        if self.lineage.at >= 0:
            self.thumbs[self.lineage.at] = first_picture
        return [(self.thumbs[i], f"{i + 1}. {st['what']}") for i, st in enumerate(self.lineage.steps)
                if i in self.thumbs]
