"""The legend beside the layers: what the error-map colours and the instance marks mean.

The swatches are drawn from the same tables the canvas draws with (``errormap.ERROR_COLORS`` and
``document_view.MARK_COLORS``), so a colour changed there changes here too.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from segstudio.core.evaluation import errormap
from segstudio.ui.document_view import MARK_COLORS

__all__ = ["LegendWidget", "ERROR_ENTRIES", "MARK_ENTRIES"]

SWATCH = QSize(22, 14)

# (key, label, tooltip)
ERROR_ENTRIES = (
    ("correct", "Correct", "Prediction and ground truth agree (drawn faint: context, not signal)"),
    ("false_positive", "False positive", "Predicted as a class where the ground truth has background "
                                         "(one-class map: predicted as the selected class, wrongly)"),
    ("false_negative", "False negative", "Ground truth has a class the prediction missed (predicted "
                                         "background; one-class map: the selected class was missed)"),
    ("misclassified", "Misclassified", "Both say foreground but disagree on the class. The stripes "
                                       "alternate the ground-truth and the predicted class colours"),
    ("ignored", "Ignored", "Ground truth is the ignore index: left out of every metric"),
)
MARK_ENTRIES = (
    ("missed", "Missed", "A ground-truth instance no predicted instance overlaps (IoU < 0.5)"),
    ("spurious", "Spurious", "A predicted instance with no ground-truth instance behind it"),
    ("split", "Split", "One ground-truth instance covered by several predicted ones"),
    ("merged", "Merged", "One predicted instance covering several ground-truth ones"),
)
_CODES = {"correct": errormap.CORRECT, "false_positive": errormap.FALSE_POSITIVE,
          "false_negative": errormap.FALSE_NEGATIVE, "misclassified": errormap.MISCLASSIFIED,
          "ignored": errormap.IGNORED}


def _error_swatch(key: str) -> QPixmap:
    pixmap = QPixmap(SWATCH)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    rect = QRectF(0.5, 0.5, SWATCH.width() - 1, SWATCH.height() - 1)
    r, g, b, a = (int(v) for v in errormap.ERROR_COLORS[_CODES[key]])
    painter.fillRect(rect, QColor(r, g, b, max(a, 90)))
    if key == "misclassified":   # the canvas hatches wrong-class pixels with the (gt, pred) colours
        painter.setClipRect(rect)
        for offset, colour in ((0, QColor(255, 255, 255, 210)), (4, QColor(40, 40, 40, 210))):
            painter.setPen(QPen(colour, 2.5))
            for x in range(-SWATCH.height() + offset, SWATCH.width() + SWATCH.height(), 8):
                painter.drawLine(x, SWATCH.height(), x + SWATCH.height(), 0)
    painter.setPen(QPen(QColor(0, 0, 0, 110), 1))
    painter.setBrush(QBrush())
    painter.drawRect(rect)
    painter.end()
    return pixmap


def _mark_swatch(kind: str) -> QPixmap:
    pixmap = QPixmap(SWATCH)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setPen(QPen(QColor(*MARK_COLORS[kind]), 2))
    painter.drawRect(QRectF(2, 2, SWATCH.width() - 4, SWATCH.height() - 4))
    painter.end()
    return pixmap


class LegendWidget(QWidget):
    """Two compact columns of swatches: the error map, and the instance marks (instance view)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("legend")
        self.rows: dict[str, QLabel] = {}     # key -> its text label (tests, tooltips)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 4)
        layout.setSpacing(2)
        layout.addWidget(self._section("Error map", ERROR_ENTRIES, _error_swatch,
                                       "What the error-map layer's colours mean"))
        self.marks_section = self._section("Instance marks (Instance view, I)", MARK_ENTRIES, _mark_swatch,
                                           "Frames drawn around instances in the instance view")
        layout.addWidget(self.marks_section)

    def _section(self, title: str, entries, swatch, tip: str) -> QWidget:
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        heading = QLabel(f"<b>{title}</b>")
        heading.setToolTip(tip)
        grid.addWidget(heading, 0, 0, 1, 4)
        for i, (key, label, tooltip) in enumerate(entries):
            row, col = 1 + i // 2, (i % 2) * 2
            icon = QLabel()
            icon.setPixmap(swatch(key))
            text = QLabel(label)
            for widget in (icon, text):
                widget.setToolTip(tooltip)
            grid.addWidget(icon, row, col)
            grid.addWidget(text, row, col + 1)
            self.rows[key] = text
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        return box

    def set_instance_view(self, on: bool) -> None:
        """The marks are drawn in the instance view only: dim their section otherwise."""
        self.marks_section.setEnabled(bool(on))
