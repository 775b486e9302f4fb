"""Checking training data before a run: the one verdict that the studio's *Check data*, its *Start*
and the command line (`python -m gan_core check`, `train`) all give.

Every file is decoded as training will decode it (up to MAX_VERIFY files), so unreadable files are
listed and never counted; the settings that depend on the data (the batch against the number of
images, the texture patch against the size of the textures) are checked here too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .data import list_texture_files, load_rgb, resize_crop, scan_class_folder, texture_size
from .config import TrainConfig
from .errors import DatasetError

MAX_VERIFY = 5000  # files decoded by a check; the rest are counted unopened


@dataclass
class DataCheck:
    """What a check found. `problems` are what keeps a run from starting; `notes` are warnings."""

    variant: str
    root: str
    good: dict[str, list[str]] = field(default_factory=dict)  # class (or texture name) -> usable files
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # texture file -> (w, h) as trained
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    unchecked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def n_images(self) -> int:
        return sum(len(v) for v in self.good.values())

    def raise_if_unusable(self) -> None:
        """DatasetError with the problems (and, when nothing is usable, why the files were not)."""
        if not self.problems:
            return
        why = ""
        if not self.good and self.skipped:
            shown = [f"{Path(p).name}: {reason}" for p, reason in self.skipped[:4]]
            more = f"; ... and {len(self.skipped) - 4} more" if len(self.skipped) > 4 else ""
            why = " Skipped: " + "; ".join(shown) + more + "."
        raise DatasetError(" ".join(self.problems) + why)

    def _lines(self, bold: str = "**", code: str = "`") -> list[str]:
        if self.variant == "cgan":
            lines = [f"{bold}{len(self.good)} classes, {self.n_images} images{bold} in {code}{self.root}{code}", ""]
            lines += [f"- {bold}{c}{bold}: {len(files)} images" for c, files in self.good.items()]
        else:
            lines = [f"{bold}{len(self.sizes)} usable texture image(s){bold}", ""]
            lines += [f"- {code}{Path(f).name}{code}: {w}x{h} px" for f, (w, h) in self.sizes.items()]
        if self.unchecked:
            lines.append(f"\n{self.unchecked} files were not opened (only the first {MAX_VERIFY} are checked).")
        for n in self.notes:
            lines.append(f"\n{n}")
        if self.skipped:
            lines += ["", f"{bold}Skipped {len(self.skipped)} file(s):{bold}"]
            lines += [f"- {code}{Path(p).name}{code}: {why}" for p, why in self.skipped[:30]]
            if len(self.skipped) > 30:
                lines.append(f"- ... and {len(self.skipped) - 30} more")
        if self.problems:
            lines += ["", f"{bold}Training cannot start:{bold} " + " ".join(self.problems)]
        return lines

    def markdown(self) -> str:
        return "\n".join(self._lines())

    def text(self) -> str:
        return "\n".join(self._lines(bold="", code=""))

    def thumbnails(self, size: int | None = None, n: int | None = None) -> np.ndarray | None:
        """A contact sheet: per class a caption and up to 8 thumbnails (textures: one row each)."""
        if self.variant == "cgan":
            rows = [(f"{c} ({len(files)})", files) for c, files in self.good.items()]
            return contact_sheet(rows, size or 48, n or 8)
        rows = [(Path(f).name, [f]) for f in list(self.sizes)[:12]]
        return contact_sheet(rows, size or 96, n or 1)


def check_data(variant: str, paths: list[str | os.PathLike], *, batch: int | None = None,
               patch: int | None = None, max_side: int | None = TrainConfig.max_side,
               on_progress: Callable[[float], None] | None = None) -> DataCheck:
    """Decode the training data of a variant and judge it against the settings given."""
    if variant == "cgan":
        return _check_classes(paths[0], batch, on_progress)
    return _check_textures(paths, patch, max_side, on_progress)


def _check_classes(path, batch, on_progress) -> DataCheck:
    rep = scan_class_folder(path)
    out = DataCheck("cgan", rep.root, skipped=list(rep.skipped))
    total, done = sum(rep.counts().values()), 0
    for c, files in rep.classes.items():
        for f in files:
            done += 1
            if done > MAX_VERIFY:
                out.unchecked += 1
                out.good.setdefault(c, []).append(f)
                continue
            try:
                load_rgb(f)
                out.good.setdefault(c, []).append(f)
            except DatasetError as e:
                out.skipped.append((f, str(e)))
            if on_progress and done % 100 == 0:
                on_progress(done / total)
    n = out.n_images
    if not n:
        out.problems.append(f"None of the {total} image files in {rep.root} could be read.")
    elif batch and batch > n:
        out.problems.append(f"Batch ({batch}) is larger than the dataset ({n} images). Use a smaller batch "
                            "or add images.")
    if len(out.good) == 1:
        out.notes.append("One class only: the model will not be able to blend classes.")
    return out


def _check_textures(paths, patch, max_side, on_progress) -> DataCheck:
    skipped: list[tuple[str, str]] = []
    files = list_texture_files(paths, skipped)
    out = DataCheck("sgan", "; ".join(str(p) for p in paths), skipped=skipped)
    for i, f in enumerate(files):
        try:
            w, h = texture_size(load_rgb(f), max_side)
        except DatasetError as e:
            out.skipped.append((f, str(e)))
            continue
        if patch and min(w, h) < patch:
            out.skipped.append((f, f"is {w}x{h}, smaller than the {patch}px training patch"))
            continue
        out.sizes[f] = (w, h)
        out.good[Path(f).stem] = [f]
        if on_progress:
            on_progress((i + 1) / len(files))
    if not out.sizes:
        hint = f" Use images of at least {patch} px, or a smaller patch." if patch else ""
        out.problems.append(f"No usable texture image among {len(files)} file(s).{hint}")
    return out


def contact_sheet(rows: list[tuple[str, list[str]]], size: int = 48, n: int = 8) -> np.ndarray | None:
    """One picture: per row a caption and up to n thumbnails (decoded with gan_core's reader)."""
    from PIL import Image, ImageDraw, ImageFont

    if not rows:
        return None
    label_w, gap = 150, 4
    sheet = Image.new("RGB", (label_w + n * (size + gap), len(rows) * (size + gap) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType
        font = ImageFont.load_default()
    for r, (caption, files) in enumerate(rows):
        y = gap + r * (size + gap)
        text = caption if len(caption) <= 22 else caption[:21] + "..."
        draw.text((4, y + size // 2), text, fill=(40, 40, 40), font=font, anchor="lm")
        x = label_w
        for f in files[:n]:
            try:
                sheet.paste(resize_crop(load_rgb(f), size), (x, y))
            except DatasetError:
                continue
            x += size + gap
    return np.asarray(sheet)
