"""The studio's workspace: WORKSPACE/runs/<name>/ (training runs), exports/ (downloads) and
uploads/ (unpacked zips), with the rules for names, data paths and uploads, and the models it can
open (its runs and the shipped models folder).

Every path a user types or uploads passes through here: a run name becomes exactly one folder
inside runs/, an export name one new file inside exports/, a zip is unpacked inside uploads/ only,
and in workshop mode (`data_root`) training data must lie inside the data root or the uploads.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import time
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from . import options
from .config import DEFAULT_RECIPE, RunConfig
from .data import IMAGE_EXTENSIONS, check_path_text, is_image_name
from .datacheck import DataCheck, check_data
from .errors import ConfigError, DatasetError, StudioError
from .io import inside
from .runs import Model, RunDir, list_models, load_model
from .sampling import save_animation, save_png

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_UNZIPPED_BYTES = 1_000_000_000  # total size of the extracted images
MAX_ZIP_MEMBERS = 20_000
MAX_UPLOADS_BYTES = 5_000_000_000  # unpacked uploads in a workspace, all together
UPLOAD_MAX_AGE_DAYS = 7  # unpacked uploads no run trains on are removed after this
MAX_ZIP_DEPTH = 32  # folders within folders in an uploaded zip


def check_run_name(text: str | None) -> str:
    """A run name becomes a folder name: letters, digits, - and _ only, never a path."""
    name = (text or "").strip()
    if not name:
        raise ConfigError("Give the run a name, e.g. flowers-64 (letters, digits, - and _).")
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"The run name {name!r} may contain only letters, digits, - and _ "
                          "(no spaces, dots or slashes; at most 64 characters).")
    return name


def safe_filename(text: str | None, default: str = "export") -> str:
    """A file name stem made from user text: other characters become '_', length is capped."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", (text or "").strip()).strip("_-")[:60]
    return stem or default


def split_paths(text: str | None) -> list[str]:
    """Paths typed into one field: separated by new lines or ';', quotes around each dropped."""
    return [t.strip().strip('"') for t in re.split(r"[\n;]", text or "") if t.strip()]


class Workspace:
    """One studio's folders, the shipped models folder and the workshop data root."""

    def __init__(self, root: str | os.PathLike, models_dir: str | os.PathLike | None = None,
                 data_root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser().resolve()
        self.runs = self.root / "runs"
        self.exports = self.root / "exports"
        self.uploads = self.root / "uploads"
        self.favourites = self.root / "favourites"  # Explore's kept images (PNG + JSON each)
        self.cache = self.root / "cache"  # things computed from models (their directions)
        for d in (self.runs, self.exports, self.uploads, self.favourites):
            d.mkdir(parents=True, exist_ok=True)
        self.models_dir = Path(models_dir).expanduser().resolve() if models_dir else None
        self.uploads_quota = MAX_UPLOADS_BYTES  # all unpacked uploads together
        self.data_root = Path(data_root).expanduser().resolve() if data_root else None

    def fresh_web_temp(self) -> Path:
        """An empty folder for the web server's own temporary files (uploads in transit, pictures
        sent to the page), inside the workspace and emptied at every start, so nothing of an
        earlier session is left to be served. Only this user may list or read it: the pictures in it
        are reachable over the web only by names the server derives from their bytes with a secret."""
        d = self.root / ".web-tmp"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(mode=0o700)
        d.chmod(0o700)
        return d

    # ---- runs ---------------------------------------------------------------------------
    def run(self, name: str | None) -> RunDir:
        return RunDir(self.runs / check_run_name(name))

    def run_names(self) -> list[str]:
        """Runs with at least one checkpoint, the least recently active first (so the last one is
        the run trained most recently)."""
        runs = [RunDir(p) for p in self.runs.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name)]
        runs = [r for r in runs if r.has_checkpoint()]
        return [r.name for r in sorted(runs, key=lambda r: (r.last_active(), r.name))]

    def find_run(self, name: str | None) -> RunDir | None:
        """The run of that name if the name is valid and its folder exists, else None."""
        if not name or not NAME_RE.fullmatch(str(name)) or not (self.runs / str(name)).is_dir():
            return None
        return RunDir(self.runs / str(name))

    def run_config(self, variant: str, data_text: str | list[str] | None, recipe: str = DEFAULT_RECIPE,
                   on_progress: Callable[[float], None] | None = None, form: bool = False, **settings) -> RunConfig:
        """A new run's settings (options.run_config) on data typed for this workspace, checked."""
        return options.run_config(variant, self.data_paths(variant, data_text), recipe=recipe, form=form,
                                  on_progress=on_progress, **settings)

    def check_data(self, variant: str, data_text: str | list[str] | None, batch=None, patch=None,
                   on_progress: Callable[[float], None] | None = None) -> DataCheck:
        """The data check that Start applies, for data typed for this workspace."""
        batch = options.optional(batch, "batch")
        patch = options.optional(patch, "patch") if variant == "sgan" else None
        return check_data(variant, self.data_paths(variant, data_text), batch=batch, patch=patch,
                          on_progress=on_progress)

    # ---- models -------------------------------------------------------------------------
    def model_roots(self) -> list[Path]:
        """Where models may be loaded from: the runs and the shipped models folder."""
        return [self.runs] + ([self.models_dir] if self.models_dir else [])

    def models(self, variant: str) -> list[tuple[str, str]]:
        """(label, folder) of the shipped models and the runs of a variant; shipped ones first."""
        return list_models(variant, self.models_dir, self.runs)

    def load_model(self, path: str | os.PathLike | None, variant: str) -> Model:
        """A model of this workspace (a run or a shipped model) for a variant, cached. `path` may
        also be the model's name or its label in the model list."""
        return load_model(self.model_path(path, variant), variant, roots=self.model_roots())

    def model_path(self, text: str | os.PathLike | None, variant: str) -> str | None:
        """A model's folder from its folder path, its name ("demo-classes", a run's name) or its
        label in the list ("demo-classes  (demo)"); other text is returned as it is."""
        if not text:
            return None
        t = str(text).strip()
        if os.sep in t and Path(t).is_dir():  # a folder path: load_model checks where it lies
            return t
        listed = self.models(variant)
        for label, folder in listed + self.models("sgan" if variant == "cgan" else "cgan"):
            if t in (label, folder, label.split("  (")[0]):
                return folder
        if os.sep not in t and "/" not in t and not Path(t).exists():
            names = ", ".join(label.split("  (")[0] for label, _ in listed) or "none yet"
            raise StudioError(f"There is no model named {t!r}; the models are: {names}.")
        return t

    # ---- data ---------------------------------------------------------------------------
    def data_paths(self, variant: str, text: str | list[str] | None) -> list[Path]:
        """The training data paths typed for a variant, checked against the workshop rule."""
        raw = split_paths(text) if isinstance(text, str) or text is None else [str(t) for t in text]
        if not raw:
            what = "the folder that holds one subfolder per class" if variant == "cgan" else \
                "a texture image or a folder of texture images"
            raise DatasetError(f"Enter the path of {what}, or upload a zip.")
        if variant == "cgan" and len(raw) > 1:
            raise DatasetError("Conditional training uses one folder (with one subfolder per class).")
        for p in raw:
            check_path_text(p)
        paths = [Path(p).expanduser().resolve() for p in raw]
        if self.data_root is not None:
            for p in paths:
                if not (inside(p, self.data_root) or inside(p, self.uploads)):
                    raise DatasetError(f"In workshop mode training data must be inside {self.data_root} "
                                       "(or be an uploaded zip).")
        return paths

    def import_zip(self, file, remove_upload: bool = False) -> Path:
        """Unpack an uploaded zip (a path, or an upload object with .name / ["path"]) into uploads/,
        within what is left of the uploads' quota. `remove_upload`: the zip is the web server's
        copy of an upload, deleted once unpacked (so it is not left where the server serves files
        from); a zip of the user's own is never deleted."""
        if not file:
            raise DatasetError("Choose a zip file first.")
        path = file if isinstance(file, (str, os.PathLike)) else getattr(file, "name", None) or file["path"]
        self.clean_uploads()
        used = sum(f.stat().st_size for f in self.uploads.rglob("*") if f.is_file() and not f.is_symlink())
        left = self.uploads_quota - used
        if left <= 0:
            raise DatasetError(f"The workspace's uploads hold {used / 1e9:.1f} GB already (the limit is "
                               f"{self.uploads_quota / 1e9:.1f} GB). Delete folders you no longer train on from "
                               f"{self.uploads}, or give a local folder's path instead.")
        try:
            return extract_zip(path, self.uploads, max_bytes=min(MAX_UNZIPPED_BYTES, left))
        finally:
            if remove_upload:
                Path(path).unlink(missing_ok=True)

    def clean_uploads(self, max_age_days: float = UPLOAD_MAX_AGE_DAYS) -> list[str]:
        """Delete unpacked uploads older than `max_age_days` that no run trains on (no run's
        config.json names a path inside them); returns their names. A run's data is never removed."""
        used = set()
        for run in self.runs.iterdir():
            try:
                used.update(RunDir(run).config().data)
            except (StudioError, OSError):
                continue
        gone, cutoff = [], time.time() - max_age_days * 86400
        for folder in self.uploads.iterdir():
            if not folder.is_dir() or folder.is_symlink() or folder.stat().st_mtime > cutoff:
                continue
            if any(inside(d, folder) for d in used):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder.name)
        return gone

    # ---- exports ------------------------------------------------------------------------
    def _free_export_name(self, stem: str | None, taken) -> str:
        """A name from sanitised text and the time, with -2, -3, ... added while `taken(name)`."""
        base = f"{safe_filename(stem)}-{time.strftime('%Y%m%d-%H%M%S')}"
        name, n = base, 2
        while taken(name):
            name, n = f"{base}-{n}", n + 1
        return name

    def export_path(self, stem: str | None, suffix: str) -> Path:
        """A new file in exports/ named from sanitised text and the time; never overwrites."""
        path = self.exports / (self._free_export_name(stem, lambda s: (self.exports / f"{s}{suffix}").exists())
                               + suffix)
        if path.parent != self.exports:
            raise ConfigError(f"Export names may not contain a suffix like {suffix!r}.")
        return path

    def export_set_name(self, stem: str | None) -> str:
        """A name for a new set of files in exports/ (NAME.png, NAME_height.png, a folder NAME, ...)
        that no file or folder there starts with, so a set never overwrites another."""
        d = self.exports
        return self._free_export_name(stem, lambda s: any(d.glob(f"{s}.*")) or any(d.glob(f"{s}_*"))
                                      or (d / s).exists())

    def export_image(self, stem: str | None, img: np.ndarray, metadata: dict[str, str]) -> Path:
        """Write a PNG (with its settings as text) as a new file in exports/."""
        out = self.export_path(stem, ".png")
        save_png(out, img, metadata)
        return out

    def export_animation(self, stem: str | None, frames: list[np.ndarray]) -> tuple[Path, Path]:
        """Write a looping animation as a GIF and a lossless WebP in exports/."""
        gif, webp = self.export_path(f"{stem}-loop", ".gif"), self.export_path(f"{stem}-loop", ".webp")
        save_animation(frames, gif)
        save_animation(frames, webp)
        return gif, webp


def extract_zip(zip_path: str | os.PathLike, uploads: Path, max_bytes: int = MAX_UNZIPPED_BYTES,
                max_members: int = MAX_ZIP_MEMBERS) -> Path:
    """Unpack the image files of an uploaded zip into a new folder under `uploads`.

    Members whose path is absolute, climbs out with '..', or is a link are refused; only image
    files are written; the total size is counted while writing (zip headers can lie). Returns
    the folder holding the class folders (a single top-level folder in the zip is stepped into).
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise DatasetError("The upload is not a readable zip file. Zip the folder that holds one "
                           "subfolder per class and upload that.") from None
    with zf:
        members = zf.infolist()
        if len(members) > max_members:
            raise DatasetError(f"The zip holds {len(members)} entries; the limit is {max_members}.")
        stem = safe_filename(Path(str(zip_path)).stem, "upload")
        dest = uploads / stem
        n = 2
        while dest.exists():
            dest = uploads / f"{stem}-{n}"
            n += 1
        tmp = uploads / f".tmp-{dest.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        total, written = 0, 0
        try:
            for m in members:
                name = m.filename.replace("\\", "/")
                parts = [p for p in name.split("/") if p not in ("", ".")]
                if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                    raise DatasetError(f"The zip entry {m.filename!r} points outside the folder; "
                                       "the upload was refused.")
                if stat.S_ISLNK(m.external_attr >> 16):
                    raise DatasetError(f"The zip entry {m.filename!r} is a link; links are not accepted.")
                if m.is_dir() or not parts or not is_image_name(parts[-1]):
                    continue
                if any(p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue
                if len(parts) > MAX_ZIP_DEPTH or any(len(p.encode()) > 255 for p in parts):
                    raise DatasetError(f"The zip entry {m.filename[:80]!r} is nested too deeply or has a name "
                                       "too long for a file; the upload was refused.")
                target = tmp.joinpath(*parts)
                if not inside(target, tmp):
                    raise DatasetError(f"The zip entry {m.filename!r} points outside the folder.")
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m) as src, open(target, "wb") as out:
                        while chunk := src.read(1 << 20):
                            total += len(chunk)
                            if total > max_bytes:
                                raise DatasetError(f"The zip unpacks to more than {_size(max_bytes)} of images "
                                                   "(what is left for uploads); use a local folder path instead.")
                            out.write(chunk)
                except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as e:  # a clash, a bad CRC, ...
                    raise DatasetError(f"The zip entry {m.filename[:80]!r} cannot be unpacked ({e}); the upload "
                                       "was refused.") from None
                written += 1
            if not written:
                raise DatasetError("The zip holds no image files (" + ", ".join(IMAGE_EXTENSIONS) + ").")
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and any(c.is_dir() for c in entries[0].iterdir()):
        return entries[0]
    return dest


def _size(n: int) -> str:
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return f"{n} bytes"
