"""The metrics dock: headline numbers, per-class table and bars, and the confusion-matrix heatmap.

The panel only displays: the numbers all come from ``core.evaluation.metrics.ConfusionMatrix`` objects the
window hands it (the current image's, kept in sync by its document, and the dataset's, summed by the
session). Clicking a heatmap cell emits ``cell_clicked(gt, pred)``; the window highlights those
pixels on the canvas.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

__all__ = ["MetricsPanel", "format_value"]

HEADLINES = (("Pixel accuracy", "pixel_accuracy"), ("Mean IoU", "mean_iou"),
             ("FW-IoU", "fw_iou"), ("Mean F1", "mean_f1"))
COLUMNS = ("Class", "IoU", "Precision", "Recall", "F1", "GT pixels")


def format_value(value) -> str:
    """Three decimals, or an en dash where the metric is undefined (None / NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.3f}"


class _ConfusionImage(pg.ImageItem):
    """Heatmap whose cells report clicks as (row = gt, column = pred)."""

    def __init__(self, on_click):
        super().__init__()
        self._on_click = on_click

    def mouseClickEvent(self, event):  # noqa: N802 - pyqtgraph override
        if event.button() != Qt.MouseButton.LeftButton or self.image is None:
            return
        pos = event.pos()
        pred, gt = int(math.floor(pos.x())), int(math.floor(pos.y()))
        cols, rows = self.image.shape[:2]  # the image is stored transposed (x = pred, y = gt)
        if 0 <= gt < rows and 0 <= pred < cols:
            event.accept()
            self._on_click(gt, pred)


class MetricsPanel(QWidget):
    """Shows a current-image and a dataset confusion matrix as numbers, bars and a heatmap."""

    cell_clicked = Signal(int, int)   # gt class, predicted class

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._class_table = None
        self._image_cm = None
        self._dataset_cm = None
        self._values: dict[tuple[str, str], QLabel] = {}

        grid = QGridLayout()
        grid.addWidget(QLabel(""), 0, 0)
        self._dataset_title = QLabel("<b>Dataset</b>")
        grid.addWidget(QLabel("<b>Image</b>"), 0, 1)
        grid.addWidget(self._dataset_title, 0, 2)
        for row, (title, key) in enumerate(HEADLINES, start=1):
            grid.addWidget(QLabel(title), row, 0)
            for col, scope in enumerate(("image", "dataset"), start=1):
                label = QLabel("–")
                label.setObjectName(f"{scope}_{key}")
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                grid.addWidget(label, row, col)
                self._values[(scope, key)] = label

        self.change_label = QLabel("")
        self.change_label.setObjectName("class_change")

        self.scope = QComboBox()
        self.scope.addItems(["Image", "Dataset"])
        self.scope.currentIndexChanged.connect(self._refresh_details)
        scope_row = QHBoxLayout()
        scope_row.addWidget(QLabel("Per class for"))
        scope_row.addWidget(self.scope, 1)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(False)

        self.bars_plot = pg.PlotWidget()
        self.bars_plot.setBackground("w")
        self.bars_plot.setYRange(0, 1)
        self.bars_plot.setLabel("left", "IoU")
        self.bars_plot.setMouseEnabled(x=False, y=False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.bars_plot.addItem(self.bars)

        self.confusion_plot = pg.PlotWidget()
        self.confusion_plot.setBackground("w")
        self.confusion_plot.setLabel("left", "ground truth")
        self.confusion_plot.setLabel("bottom", "prediction")
        self.confusion_plot.getViewBox().invertY(True)
        self.confusion_plot.setMouseEnabled(x=False, y=False)
        self.confusion_image = _ConfusionImage(self.cell_clicked.emit)
        self.confusion_image.setColorMap(pg.colormap.get("viridis"))
        self.confusion_plot.addItem(self.confusion_image)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Classes")
        self.tabs.addTab(self.bars_plot, "IoU bars")
        self.tabs.addTab(self.confusion_plot, "Confusion")

        self.warning = QLabel("")
        self.warning.setObjectName("class_table_warning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("QLabel { background: #fff3cd; color: #7a4b00; padding: 4px; }")
        self.warning.setVisible(False)

        layout = QVBoxLayout(self)
        layout.addWidget(self.warning)
        layout.addLayout(grid)
        layout.addWidget(self.change_label)
        layout.addLayout(scope_row)
        layout.addWidget(self.tabs, 1)

    # --- inputs -------------------------------------------------------------------------------
    def set_warning(self, text: str) -> None:
        """Show ``text`` above the numbers (e.g. class tables that differ); empty hides it."""
        self.warning.setText(f"⚠ {text[:1].upper()}{text[1:]}" if text else "")
        self.warning.setVisible(bool(text))

    def set_class_table(self, class_table) -> None:
        self._class_table = class_table
        self._refresh_details()

    def show_metrics(self, image_cm=None, dataset_cm=None, dataset_images: int = 0) -> None:
        """Display a current-image and a dataset confusion matrix (either may be None)."""
        self._image_cm, self._dataset_cm = image_cm, dataset_cm
        self._dataset_title.setText(f"<b>Dataset</b> ({dataset_images} img)" if dataset_images
                                    else "<b>Dataset</b>")
        for scope, cm in (("image", image_cm), ("dataset", dataset_cm)):
            for _, key in HEADLINES:
                value = getattr(cm, key)() if cm is not None and cm.total else None
                self._values[(scope, key)].setText(format_value(value))
        self._refresh_details()

    def show_class_change(self, class_id: int, before, after) -> None:
        """Show how one class's IoU and F1 moved between two confusion matrices ("IoU a → b")."""
        name = self._class_name(class_id)
        parts = []
        for title, method in (("IoU", "iou"), ("F1", "f1")):
            old, new = getattr(before, method)()[class_id], getattr(after, method)()[class_id]
            parts.append(f"{title} {format_value(old)} → {format_value(new)}")
        self.change_label.setText(f"{name}: " + "   ".join(parts))

    def show_metrics_delta(self, delta) -> None:
        """Same line from a ``core.editing.document.MetricsDelta`` (what a stroke's event carries)."""
        self.change_label.setText(
            f"{self._class_name(delta.class_id)}: IoU {format_value(delta.iou_before)} → "
            f"{format_value(delta.iou_after)}   F1 {format_value(delta.f1_before)} → {format_value(delta.f1_after)}")

    # --- read-back (tests, tooltips) ------------------------------------------------------------
    def headline(self, scope: str, key: str) -> str:
        return self._values[(scope, key)].text()

    # --- drawing ------------------------------------------------------------------------------
    def _class_name(self, class_id: int) -> str:
        if self._class_table is not None and class_id < len(self._class_table.classes):
            return self._class_table.classes[class_id].name
        return f"class {class_id}"

    def _details_cm(self):
        return self._image_cm if self.scope.currentIndex() == 0 else self._dataset_cm

    def _refresh_details(self) -> None:
        cm = self._details_cm()
        if cm is None:
            self.table.setRowCount(0)
            self.bars.setOpts(x=[], height=[])
            self.confusion_image.clear()
            return
        n = cm.matrix.shape[0]
        columns = (cm.iou(), cm.precision(), cm.recall(), cm.f1())
        pixels = cm.gt_pixels()
        self.table.setRowCount(n)
        colors = self._class_table.colors if self._class_table is not None else None
        for row in range(n):
            name_item = QTableWidgetItem(self._class_name(row))
            if colors is not None and row < len(colors):
                name_item.setData(Qt.ItemDataRole.DecorationRole, QColor(*[int(c) for c in colors[row][:3]]))
            self.table.setItem(row, 0, name_item)
            for col, values in enumerate(columns, start=1):
                self.table.setItem(row, col, _number_item(format_value(float(values[row])), values[row]))
            self.table.setItem(row, 5, _number_item(str(int(pixels[row])), int(pixels[row])))
        iou = np.nan_to_num(cm.iou(), nan=0.0)
        brushes = ([pg.mkBrush(*[int(c) for c in colors[i][:3]]) for i in range(n)]
                   if colors is not None and len(colors) >= n else None)
        self.bars.setOpts(x=np.arange(n), height=iou, width=0.8, brushes=brushes)
        self.bars_plot.setXRange(-0.5, n - 0.5, padding=0.02)
        # Rows normalised to recall so small classes stay readable next to the background.
        rows = cm.matrix.sum(axis=1, keepdims=True).astype(np.float64)
        normalised = np.divide(cm.matrix, rows, out=np.zeros(cm.matrix.shape), where=rows > 0)
        self.confusion_image.setImage(normalised.T, levels=(0.0, 1.0))
        self.confusion_plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)
        ticks = [[(i + 0.5, str(i)) for i in range(n)]]   # cell centres, labelled by class id
        for side in ("bottom", "left"):
            self.confusion_plot.getAxis(side).setTicks(ticks)


def _number_item(text: str, value) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    item.setData(Qt.ItemDataRole.UserRole, value)
    return item
