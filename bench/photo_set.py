"""A second real dataset for the quality benchmarks: 4 classes, each cut from two different photos.

The demo classes (assets/demo/classes) each come from one photo; this set has several sources per
class, so a class holds two looks that the generator must both learn. Every photo is a file inside
the installed scikit-image or scikit-learn package (nothing is downloaded; sources and licences in
assets/LICENSES.md, "Benchmark photo set"). Crops are square, at a random position and side (64 to
192 px), resized to 64x64 with Lanczos and flipped at random, like the demo classes.

    pip install scikit-image scikit-learn
    python bench/photo_set.py OUT_DIR [SIZE]   # writes OUT_DIR/<class>/NNN.png (150 per class, 64 px)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

CROPS_PER_CLASS = 150
SIZE = 64  # crops are cut with a side of SIZE to 3 x SIZE pixels, then resized to SIZE
SEED = 20261128

# class -> [(skimage.data function, region (left, top, right, bottom) or None)], drawn in turn
# (NASA photos: the deep field and the astronaut's portrait; micrographs; outdoor scenes; a cafe table
# and a cat at home.)
CLASSES = {
    "space": [("hubble_deep_field", None), ("astronaut", None)],
    "tissue": [("immunohistochemistry", None), ("retina", (330, 330, 1080, 1080))],
    "outdoor": [("rocket", None), ("china.jpg", None)],
    "home": [("coffee", None), ("chelsea", None)],
}


def load(name: str) -> Image.Image:
    if name.endswith(".jpg"):  # scikit-learn's sample images
        from sklearn.datasets import load_sample_image
        a = load_sample_image(name)
    else:
        from skimage import data
        a = getattr(data, name)()
    return Image.fromarray(np.asarray(a)).convert("RGB")


def crop(im: Image.Image, region, rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    left, top, right, bottom = region or (0, 0, *im.size)
    side = int(rng.integers(size, min(3 * size, right - left, bottom - top) + 1))
    x, y = int(rng.integers(left, right - side + 1)), int(rng.integers(top, bottom - side + 1))
    out = im.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.LANCZOS)
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out


def photo_of(cls: str, crop_index: int) -> int:
    """Which of the class's photos (its index in CLASSES[cls]) crop number `crop_index` is cut from:
    a class's crops are cut from its photos in turn."""
    return crop_index % len(CLASSES[cls])


def build(out: Path, per_class: int = CROPS_PER_CLASS, size: int = SIZE) -> Path:
    """Write the class folders under `out` (created; must not hold them already) and return it."""
    out = Path(out)
    photos = {}
    for index, (cls, parts) in enumerate(CLASSES.items()):
        rng = np.random.default_rng([SEED, index])
        folder = out / cls
        folder.mkdir(parents=True)
        for i in range(per_class):
            name, region = parts[photo_of(cls, i)]
            if name not in photos:
                photos[name] = load(name)
            crop(photos[name], region, rng, size).save(folder / f"{i:03d}.png")
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    print(f"wrote {build(Path(sys.argv[1]), size=int(sys.argv[2]) if len(sys.argv) == 3 else SIZE)}")
