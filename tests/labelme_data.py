"""Fixtures in labelme's export layouts, written the way labelme's own scripts write them.

``labelme2coco``: ``annotations.json`` (categories ``__ignore__`` -1, ``_background_`` 0, then the
classes; polygon segmentations; ``file_name`` ``JPEGImages/<stem>.jpg``) beside ``JPEGImages/``.
``labelme2voc``: ``JPEGImages/``, ``SegmentationClass/<stem>.png`` palette PNGs where ``__ignore__``
(-1) is stored as 255, and ``class_names.txt`` listing ``__ignore__``, ``_background_``, the classes.
The VOC masks are rasterised here from the same polygons with pycocotools, as labelme rasterises
them from its shapes, so the two exports describe identical pixels.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog", "bird")
HEIGHT, WIDTH = 24, 32

# stem -> [(class name or "__ignore__", polygon)]
SHAPES = {
    "img_001": [("cat", [2, 2, 14, 2, 14, 12, 2, 12]), ("dog", [18, 4, 30, 4, 30, 20, 18, 20])],
    "img_002": [("bird", [4, 6, 20, 6, 20, 18, 4, 18]), ("__ignore__", [24, 0, 31, 0, 31, 8, 24, 8])],
    "img_003": [("dog", [0, 10, 12, 10, 12, 23, 0, 23]), ("cat", [14, 1, 28, 1, 28, 9, 14, 9])],
}


def _rasterise(polygon) -> np.ndarray:
    from pycocotools import mask as mask_utils

    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], HEIGHT, WIDTH))
    return mask_utils.decode(rle).astype(bool)


def class_masks() -> dict[str, np.ndarray]:
    """stem -> HxW ids as labelme2voc stores them: 0 background, 1.. classes, 255 ``__ignore__``."""
    out = {}
    for stem, shapes in SHAPES.items():
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        for name, polygon in shapes:
            mask[_rasterise(polygon)] = 255 if name == "__ignore__" else CLASSES.index(name) + 1
        out[stem] = mask
    return out


def write_images(folder: Path) -> None:
    (folder / "JPEGImages").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem in SHAPES:
        pixels = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "JPEGImages" / f"{stem}.jpg")


def write_labelme_coco(folder: Path) -> Path:
    """labelme2coco's output in ``folder``; returns the folder."""
    write_images(folder)
    categories = [{"supercategory": None, "id": -1, "name": "__ignore__"},
                  {"supercategory": None, "id": 0, "name": "_background_"}]
    categories += [{"supercategory": None, "id": i, "name": n} for i, n in enumerate(CLASSES, start=1)]
    images, annotations = [], []
    for image_id, (stem, shapes) in enumerate(SHAPES.items()):
        images.append({"license": 0, "url": None, "file_name": f"JPEGImages/{stem}.jpg",
                       "height": HEIGHT, "width": WIDTH, "date_captured": None, "id": image_id})
        for name, polygon in shapes:
            xs, ys = polygon[0::2], polygon[1::2]
            annotations.append({
                "id": len(annotations), "image_id": image_id,
                "category_id": -1 if name == "__ignore__" else CLASSES.index(name) + 1,
                "segmentation": [list(map(float, polygon))], "area": float(_rasterise(polygon).sum()),
                "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "iscrowd": 0})
    data = {"info": {"description": None}, "licenses": [{"url": None, "id": 0, "name": None}],
            "images": images, "type": "instances", "annotations": annotations,
            "categories": categories}
    (folder / "annotations.json").write_text(json.dumps(data))
    return folder


def write_labelme_voc(folder: Path) -> Path:
    """labelme2voc's output in ``folder``; returns the folder."""
    from segstudio.core.io.classes import voc_colormap

    write_images(folder)
    (folder / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    palette = voc_colormap(256).tobytes()
    for stem, mask in class_masks().items():
        im = Image.fromarray(mask, "P")
        im.putpalette(palette)
        im.save(folder / "SegmentationClass" / f"{stem}.png")
    (folder / "class_names.txt").write_text("\n".join(("__ignore__", "_background_") + CLASSES) + "\n")
    return folder
