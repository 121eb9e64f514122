"""The metrics dock: headline numbers, per-class table and bars, and the confusion-matrix heatmap.

The panel only displays: the numbers all come from ``core.evaluation.metrics.ConfusionMatrix`` objects the
window hands it (the current image's, kept in sync by its document, and the dataset's, summed by the
session). Clicking a heatmap cell emits ``cell_clicked(gt, pred)``; the window highlights those
pixels on the canvas.
"""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from segstudio.ui.confusion_view import COUNTS, ROW_PERCENT, ConfusionView, IoUBars
from segstudio.ui.tables import filling

__all__ = ["MetricsPanel", "format_value"]

HEADLINES = (("Pixel accuracy", "pixel_accuracy"), ("Mean IoU", "mean_iou"),
             ("FW-IoU", "fw_iou"), ("Mean F1", "mean_f1"))
COLUMNS = ("Class", "IoU", "Precision", "Recall", "F1", "GT pixels")
HEADERS = {"Precision": "Prec.", "Recall": "Rec.", "GT pixels": "GT px"}   # short titles: every column fits the dock
SCOPE_WORDS = {"image": "this image", "dataset": "every image with a prediction"}
TIPS = {   # what each number means, on its title and its values
    "pixel_accuracy": "Share of labelled pixels whose predicted class is the ground-truth class",
    "mean_iou": "Intersection over union, averaged over the classes present in ground truth or prediction",
    "fw_iou": "IoU averaged with each class weighted by its ground-truth pixel count",
    "mean_f1": "F1 (Dice) averaged over the classes present",
    "IoU": "Intersection over union: |GT ∩ prediction| / |GT ∪ prediction|",
    "Precision": "Of the pixels predicted as this class, the share that are this class in the ground truth",
    "Recall": "Of this class's ground-truth pixels, the share predicted as it",
    "F1": "Harmonic mean of precision and recall (= Dice)",
    "GT pixels": "Pixels of this class in the ground truth",
    "Class": "Class name and colour",
}


def format_value(value) -> str:
    """Three decimals, or an en dash where the metric is undefined (None / NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.3f}"


class MetricsPanel(QWidget):
    """Shows a current-image and a dataset confusion matrix as numbers, bars and a heatmap."""

    cell_clicked = Signal(int, int)   # gt class, predicted class
    highlight_dropped = Signal()      # the confusion tab was left: its cell highlight goes too

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
        for title_label in grid.itemAtPosition(0, 1).widget(), self._dataset_title:
            title_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        grid.setColumnStretch(0, 1)
        for row, (title, key) in enumerate(HEADLINES, start=1):
            name = QLabel(title)
            name.setToolTip(TIPS[key])
            grid.addWidget(name, row, 0)
            for col, scope in enumerate(("image", "dataset"), start=1):
                label = QLabel("–")
                label.setObjectName(f"{scope}_{key}")
                label.setToolTip(f"{TIPS[key]} ({SCOPE_WORDS[scope]})")
                label.setMinimumWidth(label.fontMetrics().horizontalAdvance("0.000 (00 img)"))
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                grid.addWidget(label, row, col)
                self._values[(scope, key)] = label

        self.change_label = QLabel("")
        self.change_label.setObjectName("class_change")
        self.change_label.setToolTip("How the last edit moved its class's IoU and F1 on this image")

        self.scope = QComboBox()
        self.scope.addItems(["Image", "Dataset"])
        self.scope.currentIndexChanged.connect(self._refresh_details)
        scope_row = QHBoxLayout()
        scope_row.addWidget(QLabel("Per class for"))
        scope_row.addWidget(self.scope, 1)
        self.confusion_mode = QComboBox()
        self.confusion_mode.addItem("Row %", ROW_PERCENT)
        self.confusion_mode.addItem("Counts", COUNTS)
        self.confusion_mode.setToolTip("Confusion matrix cells: % of the ground-truth row, or pixel counts")
        self.confusion_mode.currentIndexChanged.connect(
            lambda _i: self.confusion_plot.set_mode(self.confusion_mode.currentData()))
        scope_row.addWidget(self.confusion_mode)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([HEADERS.get(c, c) for c in COLUMNS])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(False)
        self.table.setWordWrap(False)     # one line per class: long names are elided, the tooltip has them
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)   # whole names, never "…"
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(36)
        for col, title in enumerate(COLUMNS):
            if col:
                header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
            self.table.horizontalHeaderItem(col).setToolTip(TIPS[title])
            self.table.horizontalHeaderItem(col).setTextAlignment(
                (Qt.AlignmentFlag.AlignLeft if col == 0 else Qt.AlignmentFlag.AlignRight) | Qt.AlignmentFlag.AlignVCenter)

        self.bars_plot = IoUBars()
        self.bars = self.bars_plot.bars
        self.confusion_plot = ConfusionView(self.cell_clicked.emit)
        self.confusion_image = self.confusion_plot.image

        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Classes")
        self.tabs.addTab(self.bars_plot, "IoU bars")
        self.tabs.addTab(self.confusion_plot, "Confusion")
        self.tabs.setTabToolTip(0, "IoU, precision, recall and F1 per class")
        self.tabs.setTabToolTip(1, "IoU per class as bars")
        self.tabs.setTabToolTip(2, "Which class each ground-truth class was predicted as; click a cell to "
                                   "highlight its pixels")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self._on_tab_changed(self.tabs.currentIndex())

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

    def clear_class_change(self) -> None:
        """Drop the "IoU a → b" line (it belonged to the image that is no longer shown)."""
        self.change_label.setText("")

    def _on_tab_changed(self, index: int) -> None:
        self.confusion_mode.setEnabled(self.tabs.widget(index) is self.confusion_plot)
        if self.tabs.widget(index) is not self.confusion_plot:
            self.highlight_dropped.emit()

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
            self.bars_plot.reset()
            self.confusion_plot.reset()
            return
        n = cm.matrix.shape[0]
        columns = (cm.iou(), cm.precision(), cm.recall(), cm.f1())
        pixels = cm.gt_pixels()
        colors = self._class_table.colors if self._class_table is not None else None
        with filling(self.table):
            self._fill_table(n, columns, pixels, colors)
        names = [self._class_name(i) for i in range(n)]
        self.bars_plot.show_iou(cm.iou(), names, colors)
        self.confusion_plot.show_matrix(cm.matrix, names)

    def _fill_table(self, n: int, columns, pixels, colors) -> None:
        self.table.setRowCount(n)
        for row in range(n):
            name_item = QTableWidgetItem(self._class_name(row))
            name_item.setToolTip(self._class_name(row))
            if colors is not None and row < len(colors):
                name_item.setData(Qt.ItemDataRole.DecorationRole, QColor(*[int(c) for c in colors[row][:3]]))
            self.table.setItem(row, 0, name_item)
            for col, values in enumerate(columns, start=1):
                self.table.setItem(row, col, _number_item(format_value(float(values[row])), values[row]))
            self.table.setItem(row, 5, _number_item(str(int(pixels[row])), int(pixels[row])))


def _number_item(text: str, value) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    item.setData(Qt.ItemDataRole.UserRole, value)
    return item
