"""Writing what Explore makes: pictures upscaled 1x-8x, videos (MP4 through the ffmpeg that the
imageio-ffmpeg wheel ships; GIF and WebP through Pillow), and reading an exported PNG's settings
back. Every file is written atomically: a cancelled or failed export leaves nothing behind.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .errors import ConfigError, StudioError
from .io import atomic_write
from .sampling import save_animation

VIDEO_SUFFIXES = (".mp4", ".gif", ".webp")
SETTINGS_KEY = "gan_studio"  # the PNG text chunk holding the settings as JSON


class Cancelled(StudioError):
    """An export stopped on request; nothing was written."""


def upscale(img: np.ndarray, factor: int = 1, method: str = "nearest") -> np.ndarray:
    """An (H, W, 3) uint8 picture enlarged by a whole factor 1-8 (nearest keeps the pixels sharp,
    lanczos smooths them)."""
    if not isinstance(factor, (int, np.integer)) or not 1 <= factor <= 8:
        raise ConfigError(f"Scale must be a whole number from 1 to 8, got {factor}.")
    if factor == 1:
        return img
    if method == "nearest":
        return np.repeat(np.repeat(img, factor, 0), factor, 1)
    if method != "lanczos":
        raise ConfigError(f"Upscaling is nearest or lanczos, not {method!r}.")
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w * factor, h * factor), Image.LANCZOS))


def _even(img: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: a white row / column is added where needed."""
    h, w = img.shape[:2]
    return np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255) if h % 2 or w % 2 else img


def save_video(frames: list[np.ndarray], path: str | os.PathLike, fps: float = 24,
               metadata: dict | None = None, on_progress: Callable[[float], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> Path:
    """Frames as .mp4 (H.264, yuv420p, plays in browsers), .gif or .webp (looping), by suffix."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in VIDEO_SUFFIXES:
        raise ConfigError(f"Videos are written as .mp4, .gif or .webp, not {kind or 'a file without suffix'}.")
    if not frames:
        raise ConfigError("There are no frames to write.")
    if not path.parent.is_dir():
        raise ConfigError(f"The folder {path.parent} does not exist; create it or write elsewhere.")
    if not 1 <= fps <= 60:
        raise ConfigError(f"Frames per second must be between 1 and 60, got {fps}.")
    if kind != ".mp4":
        _check_stop(should_stop)
        save_animation(frames, path, ms=round(1000 / fps))  # atomic
        if on_progress:
            on_progress(1.0)
        return path
    import imageio_ffmpeg

    first = _even(frames[0])
    h, w = first.shape[:2]
    params = ["-movflags", "+faststart", "-f", "mp4"]
    for k, v in (metadata or {}).items():
        params += ["-metadata", f"{k}={v}"]

    def write(tmp: str) -> None:
        gen = imageio_ffmpeg.write_frames(tmp, (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                          quality=8, macro_block_size=1, output_params=params,
                                          ffmpeg_log_level="error")
        gen.send(None)
        try:
            for i, f in enumerate(frames):
                _check_stop(should_stop)
                f = _even(f)
                if f.shape[:2] != (h, w):
                    raise ConfigError("All frames of a video must have the same size.")
                gen.send(np.ascontiguousarray(f))
                if on_progress:
                    on_progress((i + 1) / len(frames))
        finally:
            gen.close()

    atomic_write(path, write)
    return path


def _check_stop(should_stop) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("Export cancelled; nothing was written.")


def read_frames(path: str | os.PathLike) -> list[np.ndarray]:
    """All frames of an MP4 (decoded by the shipped ffmpeg) as (H, W, 3) uint8 arrays."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = gen.__next__()
    w, h = meta["size"]
    return [np.frombuffer(b, np.uint8).reshape(h, w, 3).copy() for b in gen]


def settings_text(settings: dict) -> dict[str, str]:
    """PNG text chunks for an export's settings: the whole as JSON, plus the main fields as plain
    text for other programs."""
    out = {"software": "GAN Studio", SETTINGS_KEY: json.dumps(settings)}
    for k in ("model", "truncation"):
        if k in settings:
            out[k] = str(settings[k])
    return out


def read_settings(path: str | os.PathLike) -> dict:
    """The settings written into an exported PNG (model, images, blend, truncation, directions).
    Older exports (seeds A and B, position) come back as {"view": {...}}."""
    try:
        with Image.open(path) as im:
            text = dict(getattr(im, "text", {}) or {})
    except OSError:
        raise ConfigError(f"{Path(str(path)).name} is not a readable image; drop a PNG exported by the studio.") \
            from None
    if SETTINGS_KEY in text:
        try:
            return json.loads(text[SETTINGS_KEY])
        except ValueError:
            raise ConfigError("The settings in this PNG are damaged.") from None
    if "seed_a" in text and "classes" in text:
        try:
            return {"model": text.get("model"), "view": {
                "blend": json.loads(text["classes"]), "seed_a": int(text["seed_a"]), "seed_b": int(text["seed_b"]),
                "position": float(text["position"]), "method": text.get("interpolation", "slerp"),
                "truncation": float(text["truncation"]), "n": int(text["n"])}}
        except (KeyError, ValueError):
            raise ConfigError("The settings in this PNG are damaged.") from None
    raise ConfigError("This PNG holds no GAN Studio settings; drop a PNG exported by the studio.")
