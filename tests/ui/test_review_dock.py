"""The review dock on the synthetic dataset: queue order against numpy, statuses, notes, N, export."""
from __future__ import annotations

import csv
import json
import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from segstudio.core.editing.store import ProjectStore
from segstudio.core.evaluation.prediction import Prediction
from segstudio.core.tasks import TaskKind

from tests.threads import threads_calling
from tests.ui.editing_helpers import drag, editing_window, key
from tests.ui.fakes import GatedRunner
from tests.ui.reference import reference_metrics
from tests.ui.synthetic import W, make_dataset, truth_and_prediction


class ConfidenceRunner(GatedRunner):
    """The gated runner's labels with a confidence that grows left to right: x / W."""

    @staticmethod
    def expected(image) -> Prediction:
        base = GatedRunner.expected(image)
        confidence = np.broadcast_to(np.arange(W, dtype=np.float32) / W, base.mask.shape).copy()
        return Prediction(base.mask, confidence, base.entropy)


def confidence_map(shape):
    return np.broadcast_to(np.arange(W, dtype=np.float32) / W, shape)


@pytest.fixture
def window(qtbot, tmp_path):
    runner = ConfidenceRunner()
    win = editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: runner, size=(1200, 800))
    with qtbot.waitSignal(win.controller.job_ended, timeout=5000):
        win.run_on_dataset()
    qtbot.waitUntil(lambda: len(win.session.stats) == 2 and win.document.pred is not None)
    settle(qtbot, win.editor.review)
    return win


def settle(qtbot, dock):
    """Refresh and wait until the worker has ranked every image that is not open."""
    dock.refresh()
    qtbot.waitUntil(lambda: not dock.computing)


def numpy_figures(threshold):
    out = {}
    for name, (gt, pred) in truth_and_prediction().items():
        wrong = (gt != pred) & (gt != 255)
        out[name] = (reference_metrics(gt, pred, 3)["mean_iou"], int(wrong.sum()),
                     int((wrong & (confidence_map(gt.shape) >= threshold)).sum()))
    return out


def expected_order(figures, column, worst_low):
    names = sorted(figures, key=lambda n: (figures[n][column] if worst_low else -figures[n][column], n))
    return names


def test_queue_orders_match_numpy_and_the_threshold_matters(qtbot, window):
    dock = window.editor.review
    for threshold in (0.5, 0.9):
        dock.threshold_spin.setValue(threshold)
        figures = numpy_figures(threshold)
        for index, (key_name, column, low) in enumerate((("mean_iou", 0, True), ("error_pixels", 1, False),
                                                         ("label_errors", 2, False))):
            dock.order_combo.setCurrentIndex(dock.order_combo.findData(key_name))
            assert dock.queue() == expected_order(figures, column, low), (threshold, key_name)
        rows = {row[0]: row for row in dock.rows()}
        for name, (iou, errors, likely) in figures.items():
            assert rows[name][2:] == (f"{iou:.3f}", f"{errors:,}", f"{likely:,}")
    # with confidence >= 0.5 image a (its false positives sit right of centre) has more likely errors
    dock.threshold_spin.setValue(0.5)
    assert dock.queue() == ["a", "b"]
    dock.threshold_spin.setValue(0.9)
    assert dock.queue() == ["b", "a"]


def test_status_buttons_note_and_next_to_review(qtbot, window):
    dock = window.editor.review
    dock.order_combo.setCurrentIndex(dock.order_combo.findData("mean_iou"))    # b (worst) first
    store = window.saving.service.store
    qtbot.mouseClick(dock.status_buttons["accepted"], Qt.MouseButton.LeftButton)
    assert store.status("a") == "accepted"
    assert dict((r[0], r[1]) for r in dock.rows())["a"] == "Accepted"
    qtbot.keyClicks(dock.note_edit, "boundary looks off")
    assert store.note("a") == "boundary looks off"
    window.canvas.setFocus()
    key(qtbot, window, Qt.Key.Key_N)                    # next unreviewed in queue order: b
    assert window.document.name == "b"
    assert dock.note_edit.text() == "" and dock.status_buttons["unreviewed"].isChecked()
    qtbot.mouseClick(dock.status_buttons["needs_attention"], Qt.MouseButton.LeftButton)
    window.canvas.setFocus()
    key(qtbot, window, Qt.Key.Key_N)                    # a is accepted: nothing else to review
    assert window.document.name == "b"
    assert window.go_to(0)
    assert dock.note_edit.text() == "boundary looks off" and dock.status_buttons["accepted"].isChecked()
    key(qtbot, window, Qt.Key.Key_N)
    assert window.document.name == "b"                  # needs attention is still to review


def test_export_csv_and_json_with_before_and_after_metrics(qtbot, window, tmp_path, monkeypatch):
    gt_a, pred_a = truth_and_prediction()["a"]
    gt_b, pred_b = truth_and_prediction()["b"]
    dock = window.editor.review
    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, Qt.Key.Key_1)
    window.editor.set_brush_radius(2)
    drag(qtbot, window.canvas, [(35, 5), (35, 30)])
    edited = window.document.gt.copy()
    assert window.editor.save()
    qtbot.mouseClick(dock.status_buttons["fixed"], Qt.MouseButton.LeftButton)
    target = tmp_path / "review.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    with qtbot.waitSignal(dock.exported):
        qtbot.mouseClick(dock.csv_button, Qt.MouseButton.LeftButton)
    with open(target, newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert rows["a"]["status"] == "fixed" and rows["b"]["status"] == "unreviewed"
    assert float(rows["a"]["before_mean_iou"]) == pytest.approx(reference_metrics(gt_a, pred_a, 3)["mean_iou"])
    assert float(rows["a"]["after_mean_iou"]) == pytest.approx(reference_metrics(edited, pred_a, 3)["mean_iou"])
    assert float(rows["b"]["before_mean_iou"]) == pytest.approx(reference_metrics(gt_b, pred_b, 3)["mean_iou"])
    assert rows["b"]["after_mean_iou"] == rows["b"]["before_mean_iou"]
    assert int(rows["a"]["after_error_pixels"]) == int((edited != pred_a).sum())

    target = tmp_path / "review.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    with qtbot.waitSignal(dock.exported):
        qtbot.mouseClick(dock.json_button, Qt.MouseButton.LeftButton)
    data = json.loads(target.read_text())
    images = {r["name"]: r for r in data["images"]}
    assert images["a"]["after_mean_iou"] == pytest.approx(reference_metrics(edited, pred_a, 3)["mean_iou"])
    assert images["a"]["after_label_errors"] == int(((edited != pred_a) & (confidence_map(edited.shape) >= 0.9)).sum())
    assert data["status_counts"] == {"fixed": 1, "unreviewed": 1}
    with ProjectStore.for_dataset(window.session.root) as store:   # written through, visible to others
        assert store.status("a") == "fixed"


def test_images_not_open_are_ranked_off_the_gui_thread(qtbot, window, monkeypatch):
    from segstudio.core.io.datasets.base import Sample

    threads = threads_calling(monkeypatch, Sample, "load_mask")
    dock = window.editor.review
    dock.invalidate()
    assert dock.queue() == ["a"] + ["b"]                # b is unranked until the worker reports
    assert dock.computing
    qtbot.waitUntil(lambda: not dock.computing)
    assert threads and all(t is not threading.main_thread() for t in threads)
    figures = numpy_figures(dock.threshold)
    assert dict((r[0], r[2]) for r in dock.rows())["b"] == f"{figures['b'][0]:.3f}"


def test_a_result_for_an_image_invalidated_meanwhile_is_dropped(qtbot, window, monkeypatch):
    from segstudio.core.io.datasets.base import Sample

    gate, entered = threading.Event(), threading.Event()
    original = Sample.load_mask

    def held(sample):
        entered.set()
        assert gate.wait(10)
        return np.full_like(original(sample), 1)       # what b's labels looked like before the change

    monkeypatch.setattr(Sample, "load_mask", held)
    dock = window.editor.review
    dock.invalidate("b")
    dock.refresh()
    qtbot.waitUntil(entered.is_set)
    dock.invalidate("b")                                # b changed while the worker was on it
    monkeypatch.setattr(Sample, "load_mask", original)
    gate.set()
    qtbot.waitUntil(lambda: not dock.computing)
    settle(qtbot, dock)
    figures = numpy_figures(dock.threshold)
    assert dict((r[0], r[3]) for r in dock.rows())["b"] == f"{figures['b'][1]:,}"


def test_a_new_source_joins_the_worker(qtbot, window, monkeypatch):
    from segstudio.core.io.datasets.base import Sample

    entered = threading.Event()
    original = Sample.load_mask

    def noting(sample):
        entered.set()
        return original(sample)

    monkeypatch.setattr(Sample, "load_mask", noting)
    dock = window.editor.review
    dock.invalidate()
    dock.refresh()
    qtbot.waitUntil(entered.is_set)
    dock.set_source(None, None)   # joins: the task is done (its end is delivered later, on the GUI thread)
    assert all(task.done for task in window.task_runner.active(TaskKind.REVIEW_STATS))
    assert not dock.computing and dock.rows() == []
