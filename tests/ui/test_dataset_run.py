"""Whole-dataset results (a model run or a predictions folder): the runner's dataset stream, per-image
statistics scored against the labels as saved, and unreadable images skipped with a message."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from tests.ui.editing_helpers import drag, editing_window, key
from tests.ui.fakes import GatedRunner
from tests.ui.reference import reference_metrics
from tests.ui.synthetic import make_dataset, truth_and_prediction


@pytest.fixture
def runner():
    return GatedRunner()


def correct_and_leave_image_a(qtbot, window) -> np.ndarray:
    """Paint class 1 over a's false-positive columns (x 32..39), save, go to b; the saved labels."""
    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, Qt.Key.Key_1)
    window.editor.set_brush_radius(3)
    window.canvas.center_on_rect(28, 0, 16, 30)
    drag(qtbot, window.canvas, [(35, 5), (35, 25)])
    assert window.editor.save()
    key(qtbot, window, Qt.Key.Key_PageDown)
    assert window.document.name == "b"     # a was saved, so its document is closed
    return np.array(Image.open(window.session.root / "corrected" / "masks" / "a.png"))


def predictions_folder(tmp_path):
    folder = tmp_path / "predictions"
    folder.mkdir()
    for name, (_gt, pred) in truth_and_prediction().items():
        cv2.imwrite(str(folder / f"{name}.png"), pred)
    return folder


@pytest.mark.parametrize("source", ["model", "folder"])
def test_statistics_of_an_image_left_use_its_saved_correction(qtbot, tmp_path, runner, source):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: runner)
    saved = correct_and_leave_image_a(qtbot, window)
    original, pred = truth_and_prediction()["a"]
    assert (saved != original).sum() > 20
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        if source == "model":
            window.run_on_dataset()
        else:
            window.open_predictions(str(predictions_folder(tmp_path)))
    qtbot.waitUntil(lambda: len(window.session.stats) == 2)
    expected = reference_metrics(saved, pred, 3)
    np.testing.assert_array_equal(window.session.stats["a"].confusion, expected["matrix"])
    assert not np.array_equal(expected["matrix"], reference_metrics(original, pred, 3)["matrix"])
    row = window.browser.model._names.index("a")
    window.browser.refresh()
    assert window.browser.model.index(row, 2).data() == f"{expected['mean_iou']:.3f}"
    if source == "model":
        assert runner.dataset_indices == [0, 1]   # the runner's own dataset stream did the run


def test_an_unreadable_image_is_skipped_and_named(qtbot, tmp_path, runner):
    root = make_dataset(tmp_path / "data")
    window = editing_window(qtbot, root, lambda request: runner)
    (root / "images" / "b.png").write_bytes(b"not a png")
    failures, results = [], []
    window.controller.failed.connect(lambda job, message: failures.append(message))
    window.controller.finished.connect(lambda job, name, prediction: results.append(name))
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_dataset()
    assert results == ["a"]
    assert len(failures) == 1 and failures[0].startswith("1 of 2 images predicted; 1 could not be read")
    assert str(root / "images" / "b.png") in failures[0]
    np.testing.assert_array_equal(window.session.predictions["a"].mask, truth_and_prediction()["a"][1])
