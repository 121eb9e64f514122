"""Facts about the bundled demo (``resources/demo``) shared by the self-test, the app and the tests.

``DEMO_MEAN_IOU_RANGE`` is the one place the demo model's documented quality lives: the self-test
(``segstudio --self-test``) fails outside it, and the demo-asset tests hold the trained model to it.
"""
from __future__ import annotations

__all__ = ["DEMO_DIR", "DEMO_MODEL", "DEMO_MODEL_FILES", "DEMO_MEAN_IOU_RANGE", "SELF_TEST_IMAGE",
           "iou_in_range"]

DEMO_DIR = "demo"                 # resource_path(DEMO_DIR): the dataset folder
DEMO_MODEL = "demo"               # registry name of the bundled model
DEMO_MODEL_FILES = ("model/demo_unet.pth", "model/demo_unet.json")   # relative to DEMO_DIR
DEMO_MEAN_IOU_RANGE = (0.70, 0.92)  # mean IoU of the demo model on a demo field, inclusive
SELF_TEST_IMAGE = "cells_00"      # the field the self-test predicts (its IoU is near the dataset's)


def iou_in_range(mean_iou: float | None, bounds: tuple[float, float] = DEMO_MEAN_IOU_RANGE) -> bool:
    """Whether a mean IoU lies in the documented range (None, i.e. nothing scored, never does)."""
    return mean_iou is not None and bounds[0] <= mean_iou <= bounds[1]
