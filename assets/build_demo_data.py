"""Rebuild the small demo datasets in assets/demo/ from photographs bundled with Python packages.

Needs:  pip install scikit-image scikit-learn
Run:    python assets/build_demo_data.py

Every source photo is a file inside the installed scikit-image or scikit-learn package, so
nothing is downloaded. The script deletes assets/demo/ and writes:

  assets/demo/classes/<class>/NNN.png   64x64 RGB crops, one folder per class, for a conditional GAN.
                                        Each crop is cut at a random position and scale (side 64 to
                                        192 px), resized with Lanczos and flipped at random.
  assets/demo/textures/<name>.png       whole texture photos (512x512 RGB) for a texture GAN.

Seeds are fixed, so a rerun with the same package versions writes the same bytes. Sources and
licences are listed in assets/LICENSES.md.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data
from sklearn.datasets import load_sample_image

OUT = Path(__file__).resolve().parent / "demo"
SEED = 20240601
CROPS_PER_CLASS = 150
SIZE = 64
MIN_SIDE, MAX_SIDE = 64, 192

# Source photos, all shipped inside the installed wheels (no network access).
SOURCES = {
    "brick": data.brick,  # skimage/data/brick.png, greyscale 512x512
    "gravel": data.gravel,  # skimage/data/gravel.png, greyscale 512x512
    "grass": data.grass,  # skimage/data/grass.png, greyscale 512x512
    "flower": lambda: load_sample_image("flower.jpg"),  # sklearn/datasets/images, 640x427
    "china": lambda: load_sample_image("china.jpg"),  # sklearn/datasets/images, 640x427
}

# class -> list of (source, region as (left, top, right, bottom) or None for the whole photo).
# Regions keep the crops on the subject (the flower head, the pagoda) rather than the backdrop.
CLASSES = {
    "brick": [("brick", None)],
    "gravel": [("gravel", None)],
    "grass": [("grass", None)],
    "flowers": [("flower", (165, 80, 450, 370))],
    "building": [("china", (60, 40, 360, 400))],
}

TEXTURES = ["brick", "gravel", "grass"]


def load_rgb(name: str) -> Image.Image:
    """Load a bundled source photo as an RGB Pillow image (greyscale is copied to 3 channels)."""
    return Image.fromarray(np.asarray(SOURCES[name]())).convert("RGB")


def random_crop(im: Image.Image, region, rng: np.random.Generator) -> Image.Image:
    """Cut a random square from `region` of `im`, resize it to SIZE and flip it half the time."""
    left, top, right, bottom = region or (0, 0, *im.size)
    side = int(rng.integers(MIN_SIDE, min(MAX_SIDE, right - left, bottom - top) + 1))
    x = int(rng.integers(left, right - side + 1))
    y = int(rng.integers(top, bottom - side + 1))
    crop = im.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop


def build_class(index: int, name: str, parts, photos: dict[str, Image.Image]) -> int:
    """Write CROPS_PER_CLASS crops for one class, drawn evenly from its source regions."""
    rng = np.random.default_rng([SEED, index])
    folder = OUT / "classes" / name
    folder.mkdir(parents=True)
    for i in range(CROPS_PER_CLASS):
        source, region = parts[i % len(parts)]
        random_crop(photos[source], region, rng).save(folder / f"{i:03d}.png", optimize=True)
    return CROPS_PER_CLASS


def build_textures(photos: dict[str, Image.Image]) -> None:
    """Save the texture photos whole (they are 512x512) as RGB PNGs."""
    folder = OUT / "textures"
    folder.mkdir(parents=True)
    for name in TEXTURES:
        photos[name].save(folder / f"{name}.png", optimize=True)
        print(f"texture {name}.png: {photos[name].size[0]}x{photos[name].size[1]} from {name}")


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    photos = {name: load_rgb(name) for name in SOURCES}
    for index, (name, parts) in enumerate(CLASSES.items()):
        count = build_class(index, name, parts, photos)
        sources = ", ".join(source for source, _ in parts)
        print(f"class {name}: {count} crops of {SIZE}x{SIZE} from {sources}")
    build_textures(photos)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
