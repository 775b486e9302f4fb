"""Reading image folders: scanning, decoding any common image safely, a uint8 cache, patches.

Conditional data: DATA_DIR/<class>/<image>. Each image is decoded once (EXIF orientation applied,
any mode converted to RGB), resized on its shorter side, center-cropped to the model resolution,
and kept as uint8 in a safetensors cache that is reused while the folder is unchanged.
Texture data: one or more images; training draws random patches from them.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import DatasetError
from .io import atomic_write
from .parallel import WHOLE, BatchShare

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_PIXELS = 64_000_000  # refuse larger images before decoding their pixels
MEMORY_SKIP = "too large to decode in the memory available"  # a reason that may not hold next time
MIN_SIDE = 8  # refuse smaller images (1x1 tracking pixels, spacers): upscaled they teach nothing
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's decompression-bomb guard stays on, at our limit
# Pillow warns between 1x and 2x its limit and refuses above; load_rgb refuses all of them with
# its own message, so the warning would only repeat it.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass
class ScanReport:
    """What a folder scan found: usable files per class and skipped files with reasons."""

    root: str
    classes: dict[str, list[str]] = field(default_factory=dict)  # class -> image paths
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    def counts(self) -> dict[str, int]:
        return {c: len(v) for c, v in self.classes.items()}

    def summary(self) -> str:
        lines = [f"{len(self.classes)} classes, {sum(self.counts().values())} images in {self.root}"]
        lines += [f"  {c}: {n} images" for c, n in self.counts().items()]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file(s):")
            lines += [f"    {p}: {why}" for p, why in self.skipped]
        return "\n".join(lines)


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def check_path_text(path: str | os.PathLike) -> None:
    """Refuse, with a message, a path no file system can hold (a NUL character, or overlong)."""
    text = os.fspath(path)
    if "\0" in text:
        raise DatasetError("The path holds a NUL character; type the folder's path again.")
    if len(text) > 4096 or any(len(part.encode()) > 255 for part in Path(text).parts):
        raise DatasetError(f"The path {text[:80]}... is longer than a path can be; choose a folder with a "
                           "shorter path.")


def _check_folder(path: str | os.PathLike) -> Path:
    check_path_text(path)
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"The folder {p} does not exist. Check the path and try again.")
    if not p.is_dir():
        raise DatasetError(f"{p} is a file, not a folder. Choose the folder that holds the images.")
    return p


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode one image file to an upright 8-bit RGB image, or raise DatasetError saying why.

    The size is checked from the header before any pixel is decoded: images above MAX_PIXELS
    (decompression bombs) and below MIN_SIDE (icons, spacer pixels) are refused. A PNG must also
    pass its chunk checksums (Pillow does not check them while decoding).
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DatasetError(f"image is {w}x{h} pixels, above the limit of {MAX_PIXELS:,}")
            if min(w, h) < MIN_SIDE:
                raise DatasetError(f"image is only {w}x{h} pixels; at least {MIN_SIDE} px on each side "
                                   "are needed")
            png = im.format == "PNG"
            if png:
                im.verify()  # reads the chunks and their CRCs, decodes nothing
        with Image.open(path) as im:
            if png and im.size != (w, h):
                raise DatasetError("image changed while it was read")
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return to_rgb(im)
    except DatasetError:
        raise
    except Image.DecompressionBombError:
        raise DatasetError(f"image declares more than {MAX_PIXELS:,} pixels") from None
    except MemoryError:
        raise DatasetError(f"image is {MEMORY_SKIP}") from None
    except Exception as e:  # Pillow raises many types for damaged files (OSError, SyntaxError, struct.error...)
        raise DatasetError(f"cannot be read as an image ({type(e).__name__}: {e})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: 16-bit and float scaled, alpha composited on BACKGROUND."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if im.mode == "F" and arr.max() <= 1.0:
            hi = 1.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return im


def resize_crop(im: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size`, then take the central size x size square.

    The square is cut from the source while resizing, so a very long thin image never becomes a
    huge intermediate picture.
    """
    w, h = im.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    left, top = (nw - size) // 2, (nh - size) // 2
    box = (left / nw * w, top / nh * h, (left + size) / nw * w, (top + size) / nh * h)
    return im.resize((size, size), Image.Resampling.LANCZOS if s < 1 else Image.Resampling.BICUBIC, box=box)


def _inside(path: str | os.PathLike, real_root: str) -> bool:
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _identity(st: os.stat_result) -> tuple[int, int]:
    """What makes a folder the same folder, however it is reached (links included)."""
    return st.st_dev, st.st_ino


def _list_images(folder: str, real_root: str, seen: set[tuple[int, int]], skipped: list[tuple[str, str]]) -> list[str]:
    """Image files under `folder`, depth first in name order (the order of os.walk).

    Hidden entries are ignored. Links are followed only while they stay inside the data folder
    (`real_root`) and lead to a folder not scanned yet, so a link loop or a link to elsewhere on
    the disk is reported in `skipped` instead of being read. Entries are told apart by their
    directory-entry type, so folders full of other files are listed without a stat per file.
    """
    files: list[str] = []
    stack = [folder]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            skipped.append((d, f"folder cannot be listed ({e.strerror})"))
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                link, is_dir = e.is_symlink(), e.is_dir()
            except OSError:
                link, is_dir = True, False
            if link and not _inside(e.path, real_root):
                if is_dir or is_image_name(e.name):
                    skipped.append((e.path, "is a link to a place outside the data folder; not followed"))
                continue
            if is_dir:
                try:
                    real = _identity(e.stat())  # one stat, whatever the depth (realpath walks the whole path)
                except OSError:
                    continue
                if real in seen:
                    skipped.append((e.path, "leads to a folder that is already part of the scan (a link "
                                            "loop or a duplicate); not followed"))
                    continue
                seen.add(real)
                subdirs.append(e.path)
            elif is_image_name(e.name):
                try:
                    regular = e.is_file()
                except OSError:
                    regular = False
                if regular:
                    files.append(e.path)
                else:
                    skipped.append((e.path, "is not a regular file (a broken link?)"))
        stack.extend(reversed(subdirs))
    return files


def scan_class_folder(path: str | os.PathLike) -> ScanReport:
    """List usable image files per class subfolder; hidden entries and non-images are ignored.

    Images are not decoded here (see `load_class_dataset`), so this is cheap enough for a UI.
    Images in nested folders belong to the class folder above them. Links that leave the data
    folder, or lead back into a folder already scanned, are not followed (they are listed as
    skipped with the reason).
    """
    root = _check_folder(path)
    report = ScanReport(root=str(root))
    real_root = os.path.realpath(root)
    classes = _subfolders(root, real_root, report.skipped)
    if not classes:
        loose = [f for f in root.iterdir() if not f.name.startswith(".") and f.is_file() and is_image_name(f.name)]
        hint = f" It holds {len(loose)} loose image(s)." if loose else ""
        raise DatasetError(f"{root} has no class subfolders.{hint} Put the images in one subfolder "
                           "per class, e.g. urban/ and forest/.")
    seen, unique = {_identity(os.stat(root))}, []
    for d in classes:  # every class folder is known before any is walked into
        real = _identity(os.stat(d))
        if real in seen:
            report.skipped.append((str(d), "is a link to the data folder itself or to another class folder; "
                                           "not followed"))
            continue
        seen.add(real)
        unique.append(d)
    for d in unique:
        files = _list_images(str(d), real_root, seen, report.skipped)
        if files:
            report.classes[d.name] = files
        else:
            report.skipped.append((str(d), "class folder has no image files"))
    if not report.classes:
        raise DatasetError(f"No images found in the class folders of {root}. Supported types: "
                           f"{', '.join(IMAGE_EXTENSIONS)}.")
    return report


def _subfolders(root: Path, real_root: str, skipped: list[tuple[str, str]]) -> list[Path]:
    out = []
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or not d.is_dir():
            continue
        if d.is_symlink() and not _inside(d, real_root):
            skipped.append((str(d), "is a link to a place outside the data folder; not followed"))
            continue
        out.append(d)
    return out


def _fingerprint(report: ScanReport, resolution: int) -> str:
    h = hashlib.sha256(f"v1 {resolution}".encode())
    for cls, files in report.classes.items():
        for f in files:
            try:
                st = os.stat(f)
            except OSError:  # gone since the scan: decoding will report it
                h.update(f"{cls}\0{f}\0missing\n".encode())
                continue
            h.update(f"{cls}\0{os.path.relpath(f, report.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class ClassDataset:
    images: torch.Tensor  # uint8 (N, 3, R, R)
    labels: torch.Tensor  # int64 (N,)
    class_names: list[str]
    report: ScanReport

    def __len__(self) -> int:
        return len(self.labels)


def load_class_dataset(path: str | os.PathLike, resolution: int, cache_dir: str | os.PathLike | None = None,
                       on_progress=None) -> ClassDataset:
    """Scan, decode and preprocess a class folder, reusing `cache_dir/data_cache.safetensors`."""
    from safetensors.torch import load_file, save_file

    report = scan_class_folder(path)
    fp = _fingerprint(report, resolution)
    cache = Path(cache_dir) / "data_cache.safetensors" if cache_dir else None
    meta_path = cache.with_suffix(".json") if cache else None
    if cache and cache.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("fingerprint") == fp:
                t = load_file(str(cache))
                report.skipped = [tuple(s) for s in meta["skipped"]]
                report.classes = {c: f for c, f in meta["classes"].items()}
                return ClassDataset(t["images"], t["labels"], list(report.classes), report)
        except Exception:  # a damaged cache is rebuilt, never trusted
            pass
    images, labels = [], []
    names = list(report.classes)
    total = sum(len(v) for v in report.classes.values())
    done = 0
    kept: dict[str, list[str]] = {}
    for cls in names:
        for f in report.classes[cls]:
            done += 1
            try:
                im = resize_crop(load_rgb(f), resolution)
            except DatasetError as e:
                report.skipped.append((f, str(e)))
                continue
            images.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
            kept.setdefault(cls, []).append(f)
            labels.append(len(kept) - 1)  # classes are filled one after another
            if on_progress and done % 50 == 0:
                on_progress(done, total)
    for cls in names:
        if cls not in kept:
            report.skipped.append((os.path.join(report.root, cls), "no readable image in this class"))
    report.classes = kept
    if not images:
        reasons = "; ".join(f"{Path(p).name}: {why}" for p, why in report.skipped[:5])
        more = f"; and {len(report.skipped) - 5} more" if len(report.skipped) > 5 else ""
        raise DatasetError(f"None of the {total} image files in {report.root} could be read ({reasons}{more}). "
                           "Add readable images (jpg, png, webp, bmp, tif).")
    ds = ClassDataset(torch.stack(images).contiguous(), torch.tensor(labels, dtype=torch.int64),
                      list(kept), report)
    # The cache only saves decoding time: it is not written when a file was skipped for want of
    # memory (a later run may have it), and a cache that cannot be written (a full disk) is no error.
    if cache and not any(MEMORY_SKIP in why for _, why in report.skipped):
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cache, lambda p: save_file({"images": ds.images, "labels": ds.labels}, p))
            meta = {"fingerprint": fp, "classes": kept, "skipped": report.skipped}
            atomic_write(meta_path, json.dumps(meta).encode())
        except Exception:
            for f in (cache, meta_path):
                try:
                    f.unlink(missing_ok=True)
                except OSError:
                    pass
    return ds


def list_texture_files(paths: list[str | os.PathLike], skipped: list[tuple[str, str]] | None = None) -> list[str]:
    """Expand folders into their image files (links that leave the folder are not followed, and
    are added to `skipped`); keep files as given."""
    out: list[str] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            real_root = os.path.realpath(p)
            for f in sorted(p.iterdir()):
                if not (is_image_name(f.name) and f.is_file()):
                    continue
                if f.is_symlink() and not _inside(f, real_root):
                    if skipped is not None:
                        skipped.append((str(f), "is a link to a place outside the folder; not followed"))
                    continue
                out.append(str(f))
        elif p.is_file():
            out.append(str(p))
        else:
            raise DatasetError(f"{p} does not exist. Give texture image files or a folder of them.")
    if not out:
        raise DatasetError("No texture images given. Supported types: " + ", ".join(IMAGE_EXTENSIONS))
    return out


def texture_size(im: Image.Image, max_side: int | None) -> tuple[int, int]:
    """The size (w, h) a texture is trained at: shrunk so its shorter side is at most max_side."""
    w, h = im.size
    if max_side and min(w, h) > max_side:
        s = max_side / min(w, h)
        return round(w * s), round(h * s)
    return w, h


def load_textures(paths: list[str | os.PathLike], patch: int, max_side: int) -> tuple[list[torch.Tensor], list[str], list[tuple[str, str]]]:
    """Decode texture images as uint8 (3, H, W), shrunk so the shorter side is at most max_side.

    Returns (images, names, skipped). Images smaller than the patch are skipped with a reason.
    """
    images, names, skipped = [], [], []
    files = list_texture_files(paths, skipped)
    for f in files:
        try:
            im = load_rgb(f)
        except DatasetError as e:
            skipped.append((f, str(e)))
            continue
        w, h = texture_size(im, max_side)
        if (w, h) != im.size:
            im = im.resize((w, h), Image.Resampling.LANCZOS)
        if min(w, h) < patch:
            skipped.append((f, f"is {w}x{h}, smaller than the {patch}px training patch"))
            continue
        images.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous())
        names.append(Path(f).stem)
    if not images:
        reasons = "; ".join(f"{Path(p).name}: {why}" for p, why in skipped)
        raise DatasetError(f"No usable texture image ({reasons}).")
    return images, names, skipped


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] with a fixed scale (never per-image min-max)."""
    return ((x.float().clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)


def sample_patches(textures: list[torch.Tensor], batch: int, patch: int, gen: torch.Generator,
                   mirror: bool = True, share: BatchShare = WHOLE) -> tuple[torch.Tensor, torch.Tensor]:
    """Random patches (float [-1, 1]) and the index of the texture each came from.

    Under data-parallel training `batch` is this process's share: positions are drawn for the
    whole global batch and only this process's rows are cut out (see parallel.BatchShare).
    """
    src = torch.randint(len(textures), (batch * share.world,), generator=gen)
    out = torch.empty(batch, 3, patch, patch, dtype=torch.uint8)
    for i, s in enumerate(src.tolist()):
        t = textures[s]
        y = int(torch.randint(t.shape[1] - patch + 1, (1,), generator=gen))
        x = int(torch.randint(t.shape[2] - patch + 1, (1,), generator=gen))
        if i % share.world == share.rank:
            out[i // share.world] = t[:, y:y + patch, x:x + patch]
    if mirror:
        flips = share.rand(gen, batch, 2) < 0.5
        out = torch.where(flips[:, 0, None, None, None], out.flip(3), out)
        out = torch.where(flips[:, 1, None, None, None], out.flip(2), out)
    return to_float(out), share.rows(src)
