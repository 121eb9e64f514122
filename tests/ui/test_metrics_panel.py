"""Metrics panel: numbers equal a plain numpy reference; heatmap cells report clicks."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from segstudio.core.io.classes import ClassTable
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.ui.metrics_panel import MetricsPanel

from tests.ui.reference import reference_metrics


@pytest.fixture
def panel(qtbot):
    widget = MetricsPanel()
    qtbot.addWidget(widget)
    widget.resize(420, 600)
    widget.show()
    widget.set_class_table(ClassTable.generic(3))
    return widget


def _cm(gt, pred, n=3):
    cm = ConfusionMatrix(n)
    cm.update(gt, pred)
    return cm


def test_headlines_and_table_match_numpy(panel):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (40, 50), dtype=np.uint8)
    pred = np.where(rng.random((40, 50)) < 0.7, gt, rng.integers(0, 3, (40, 50))).astype(np.uint8)
    gt[:2] = 255
    panel.show_metrics(_cm(gt, pred), _cm(gt, pred), 1)
    ref = reference_metrics(gt, pred, 3)
    for key in ("pixel_accuracy", "mean_iou", "fw_iou", "mean_f1"):
        assert panel.headline("image", key) == f"{ref[key]:.3f}"
        assert panel.headline("dataset", key) == f"{ref[key]:.3f}"
    for row in range(3):
        assert panel.table.item(row, 1).text() == f"{ref['iou'][row]:.3f}"
        assert panel.table.item(row, 5).text() == str(ref["gt_pixels"][row])


def test_undefined_metrics_show_a_dash(panel):
    panel.show_metrics(None, None)
    assert panel.headline("image", "mean_iou") == "–"


def test_class_change_text(panel):
    gt = np.array([[1, 1, 1, 0]], np.uint8)
    before = _cm(gt, np.array([[1, 0, 0, 0]], np.uint8))
    after = _cm(gt, np.array([[1, 1, 0, 0]], np.uint8))
    panel.show_class_change(1, before, after)
    assert panel.change_label.text() == "class 1: IoU 0.333 → 0.667   F1 0.500 → 0.800"


def test_clicking_a_confusion_cell_emits_gt_and_pred(qtbot, panel):
    gt = np.array([[0, 1, 2, 2]], np.uint8)
    panel.show_metrics(_cm(gt, np.array([[0, 2, 2, 1]], np.uint8)))
    panel.tabs.setCurrentWidget(panel.confusion_plot)
    item, view = panel.confusion_image, panel.confusion_plot

    def cell_centre(pred, gt):
        return view.mapFromScene(item.mapToScene(QPointF(pred + 0.5, gt + 0.5)))

    # The view box lays its range out on the next events; wait until the 3x3 grid fills the view.
    def grid_fits():
        inside = view.viewport().rect().contains
        return inside(cell_centre(0, 0)) and inside(cell_centre(2, 2)) and \
            cell_centre(2, 0).x() - cell_centre(0, 0).x() > view.width() / 3

    qtbot.waitUntil(grid_fits)
    pos = cell_centre(2, 1)
    with qtbot.waitSignal(panel.cell_clicked, timeout=2000) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert blocker.args == [1, 2]
