"""Golden snapshots of the canvas: what the user sees, compared with stored PNGs within a tolerance.

The scene is a 120x120 crop of the bundled demo's first image (cells_00, x 144..263, y 64..183: all
four classes) fitted into a 480x480 canvas, so each image pixel is a 4x4 block (an integer zoom:
no resampling between image pixels, and PNGs small enough to keep in git). The prediction is the
ground truth moved 3 px right and 2 px down, with the nuclei of the crop's left half predicted as
dividing nuclei, so the error map has false positives, false negatives and misclassified pixels
without running a model.

Regenerate after an intended rendering change, then look at every PNG before committing::

    SEGSTUDIO_UPDATE_SNAPSHOTS=1 pytest tests/ui/test_snapshots.py
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QImage

from segstudio.core.editing.document import ImageDocument
from segstudio.core.editing.history import HistoryBudget
from segstudio.core.io.datasets import open_dataset
from segstudio.resources import resource_path
from segstudio.ui.canvas import CanvasView
from segstudio.ui.document_view import DocumentPresenter

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("SEGSTUDIO_UPDATE_SNAPSHOTS") == "1"
VIEW = 480
CROP_X, CROP_Y, CROP = 144, 64, 120
NUCLEUS, DIVIDING = 1, 2
# Tolerance: each channel within 8 on at least 99.5 % of the pixels, and a mean difference of at
# most 1 grey level, so a different Qt raster or smoothing rule passes but a wrong colour, a missing
# layer or a shifted overlay does not.
CHANNEL_TOLERANCE, PIXEL_SHARE, MEAN_TOLERANCE = 8, 0.995, 1.0

# name -> (with prediction, visible layers)
SCENES = {
    "canvas_image_gt": (False, {"image", "gt"}),
    "canvas_gt_pred": (True, {"image", "gt", "pred"}),
    "canvas_error_map": (True, {"image", "errors"}),
    "canvas_misclassified_hatch": (True, {"image", "misclassified"}),
}


def demo_crop() -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """Image, ground truth and the altered prediction of the crop, and the demo's class table."""
    dataset = open_dataset(resource_path("demo"))
    sample = dataset[0]
    rows, cols = slice(CROP_Y, CROP_Y + CROP), slice(CROP_X, CROP_X + CROP)
    image, gt = sample.load_image()[rows, cols].copy(), sample.load_mask()[rows, cols].copy()
    pred = np.zeros_like(gt)
    pred[2:, 3:] = gt[:-2, :-3]
    left = pred[:, :CROP // 2]
    left[left == NUCLEUS] = DIVIDING
    return image, gt, pred, dataset.class_table


def viewport_rgb(canvas: CanvasView) -> np.ndarray:
    image = canvas.render_viewport().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def compare(actual: np.ndarray, expected: np.ndarray) -> tuple[bool, str, np.ndarray]:
    """Whether ``actual`` matches within the tolerance, a summary, and a diff image."""
    if actual.shape != expected.shape:
        return False, f"size {actual.shape} != snapshot {expected.shape}", np.zeros_like(expected)
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    close = (diff <= CHANNEL_TOLERANCE).all(axis=2)
    share, mean = float(close.mean()), float(diff.mean())
    ok = share >= PIXEL_SHARE and mean <= MEAN_TOLERANCE
    summary = (f"{share:.2%} of pixels within {CHANNEL_TOLERANCE} per channel (need {PIXEL_SHARE:.1%}), "
               f"mean abs diff {mean:.3f} (need <= {MEAN_TOLERANCE})")
    picture = np.clip(diff * 4, 0, 255).astype(np.uint8)       # differences brightened
    picture[~close] = (255, 0, 0)                              # out of tolerance: red
    return ok, summary, picture


@pytest.fixture(scope="module")
def scene_data():
    return demo_crop()


def test_the_scene_has_what_the_snapshots_claim(scene_data):
    _, gt, pred, table = scene_data
    assert set(np.unique(gt)) == {0, 1, 2, 3} and table.num_classes == 4
    assert ((gt > 0) & (pred == 0)).sum() > 500          # false negatives
    assert ((gt == 0) & (pred > 0)).sum() > 500          # false positives
    assert ((gt == NUCLEUS) & (pred == DIVIDING)).sum() > 2000   # two foreground classes: hatched


@pytest.mark.parametrize("name", list(SCENES))
def test_canvas_matches_snapshot(qtbot, tmp_path, scene_data, name):
    image, gt, pred, table = scene_data
    with_pred, visible = SCENES[name]
    canvas = CanvasView()
    qtbot.addWidget(canvas)
    canvas.resize(VIEW, VIEW)
    with qtbot.waitExposed(canvas):
        canvas.show()
    presenter = DocumentPresenter(canvas)
    document = ImageDocument("cells_00", image, table, gt, pred if with_pred else None, budget=HistoryBudget())
    presenter.show(document)
    assert document.error_class is None                  # the error map of all classes
    for layer in canvas.layer_names():
        canvas.set_layer_visible(layer, layer in visible)
    assert visible <= set(canvas.layer_names())
    assert canvas.zoom() == 4.0                          # fitted: 120 image px -> 480 screen px

    actual = viewport_rgb(canvas)
    path = SNAPSHOTS / f"{name}.png"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        Image.fromarray(actual).save(path, optimize=True)
        pytest.skip(f"wrote {path}; look at it before committing")
    assert path.exists(), f"{path} missing; create it with SEGSTUDIO_UPDATE_SNAPSHOTS=1"
    expected = np.asarray(Image.open(path).convert("RGB"))
    ok, summary, diff = compare(actual, expected)
    if not ok:
        actual_path, diff_path = tmp_path / f"{name}.actual.png", tmp_path / f"{name}.diff.png"
        Image.fromarray(actual).save(actual_path)
        Image.fromarray(diff).save(diff_path)
        print(f"actual: {actual_path}\ndiff:   {diff_path}\nexpected: {path}")
        pytest.fail(f"{name}: {summary}\nactual: {actual_path}\ndiff: {diff_path}", pytrace=False)
