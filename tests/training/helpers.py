"""A tiny synthetic folder dataset for the training tests: coloured discs and squares on noise."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = {"name": "tiny", "ignore_index": 255, "classes": [
    {"id": 0, "name": "background", "color": [0, 0, 0, 255]},
    {"id": 1, "name": "disc", "color": [255, 0, 0, 255]},
    {"id": 2, "name": "square", "color": [0, 255, 0, 255]}]}
TINY_UNET = '{"base": 8, "depth": 2}'


def make_sample(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
    labels = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(2):
        cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 8)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        labels[disc] = 1
        image[disc] = (200, 40, 40)
    y0, x0, side = rng.integers(2, size - 14), rng.integers(2, size - 14), rng.integers(6, 12)
    labels[y0:y0 + side, x0:x0 + side] = 2
    image[y0:y0 + side, x0:x0 + side] = (40, 200, 40)
    return image, labels


def make_dataset(root: Path, count: int = 6, size: int = 48) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps(CLASSES))
    for i in range(count):
        image, labels = make_sample(100 + i, size)
        Image.fromarray(image).save(root / "images" / f"img_{i:02d}.png")
        Image.fromarray(labels, mode="L").save(root / "masks" / f"img_{i:02d}.png")
    return root


def miou_numpy(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore: int = 255) -> float:
    """Mean IoU over classes present in gt or pred, written out independently of the code under test."""
    keep = gt != ignore
    ious = []
    for c in range(num_classes):
        g, p = (gt == c) & keep, (pred == c) & keep
        union = np.logical_or(g, p).sum()
        if union:
            ious.append(np.logical_and(g, p).sum() / union)
    return float(np.mean(ious))
