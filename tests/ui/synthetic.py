"""A tiny folder dataset whose images encode the fake runner's prediction.

``GatedRunner`` predicts ``(R + G + B) % 3``, so an image with R = class id predicts exactly that id.
Image ``a`` (48x64): ground truth class 1 where x < 32, else 0; prediction class 1 where x < 40 (8
false-positive columns), class 2 in the block x 4..11, y 36..43 (misclassified as gt is 1 there).
Image ``b``: ground truth class 2 in the top 10 rows; predicted everywhere as 0.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segstudio.core.io.classes import ClassInfo, ClassTable

H, W = 48, 64
TABLE = ClassTable([ClassInfo(0, "background", (0, 0, 0, 0)), ClassInfo(1, "cell", (255, 0, 0, 255)),
                    ClassInfo(2, "debris", (0, 255, 0, 255))], name="synthetic")


def truth_and_prediction() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    gt_a = np.zeros((H, W), np.uint8)
    gt_a[:, :32] = 1
    pred_a = np.zeros((H, W), np.uint8)
    pred_a[:, :40] = 1
    pred_a[36:44, 4:12] = 2
    gt_b = np.zeros((H, W), np.uint8)
    gt_b[:10] = 2
    return {"a": (gt_a, pred_a), "b": (gt_b, np.zeros((H, W), np.uint8))}


def make_dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, (gt, pred) in truth_and_prediction().items():
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0] = pred
        rgb[..., 1] = 30  # a multiple of 3: keeps R's id, makes the image a visible dark green
        cv2.imwrite(str(root / "images" / f"{name}.png"), rgb[..., ::-1])
        cv2.imwrite(str(root / "masks" / f"{name}.png"), gt)
    TABLE.save(root / "classes.json")
    return root
