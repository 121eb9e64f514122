"""Charts of the metrics dock that explain themselves: the confusion matrix and the IoU bars.

:class:`ConfusionView` draws ground truth down the rows and prediction across the columns, both axes
named by class, each cell's value written in it (counts, or % of the row = of that ground-truth
class), a colour bar for the scale and a tooltip per cell. A click reports ``(gt, pred)``.
:class:`IoUBars` draws one bar per class in the class's colour, its name under it and its IoU above.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from segstudio.ui.theme import plot_colours

__all__ = ["ConfusionView", "IoUBars", "ROW_PERCENT", "COUNTS", "short_name", "cell_text"]

ROW_PERCENT, COUNTS = "row %", "counts"
MAX_WRITTEN = 16        # classes up to which each cell's value is written in it
NAME_CHARS = 12         # axis labels longer than this are shortened (the tooltip has the full name)


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def cell_text(matrix: np.ndarray, gt: int, pred: int, mode: str) -> str:
    """What a cell shows: its count, or its share of the ground-truth row as a percentage."""
    count = int(matrix[gt, pred])
    if mode == COUNTS:
        return _compact(count)
    row = int(matrix[gt].sum())
    return f"{100.0 * count / row:.0f}" if row else "–"


def _compact(count: int) -> str:
    if count < 10_000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.0f}k"
    return f"{count / 1e6:.1f}M"


class _CellImage(pg.ImageItem):
    """Heatmap whose cells report clicks and hovers as (row = gt, column = pred)."""

    def __init__(self, on_click, on_hover):
        super().__init__()
        self._on_click, self._on_hover = on_click, on_hover
        self.setAcceptHoverEvents(True)

    def _cell(self, pos) -> tuple[int, int] | None:
        if self.image is None:
            return None
        pred, gt = int(math.floor(pos.x())), int(math.floor(pos.y()))
        cols, rows = self.image.shape[:2]  # stored transposed (x = pred, y = gt)
        return (gt, pred) if 0 <= gt < rows and 0 <= pred < cols else None

    def mouseClickEvent(self, event):  # noqa: N802 - pyqtgraph override
        if event.button() != Qt.MouseButton.LeftButton:
            return
        cell = self._cell(event.pos())
        if cell is not None:
            event.accept()
            self._on_click(*cell)

    def hoverEvent(self, event):  # noqa: N802 - pyqtgraph override
        self._on_hover(None if event.isExit() else self._cell(event.pos()))


class ConfusionView(pg.PlotWidget):
    """The confusion matrix with class names, cell values, a colour bar and hover text."""

    def __init__(self, on_click):
        background, foreground = plot_colours()
        super().__init__(background=background)
        self._names: list[str] = []
        self._matrix: np.ndarray | None = None
        self.mode = ROW_PERCENT
        self._texts: list[pg.TextItem] = []
        self._foreground = foreground
        plot = self.getPlotItem()
        plot.setLabel("left", "ground truth")
        plot.setLabel("bottom", "prediction")
        plot.getViewBox().invertY(True)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.getViewBox().setMenuEnabled(False)
        self.image = _CellImage(on_click, self._show_tip)
        self.colormap = pg.colormap.get("viridis")
        self.image.setColorMap(self.colormap)
        plot.addItem(self.image)
        plot.getViewBox().sigResized.connect(lambda *_: self._label_columns())
        self.colour_bar = pg.ColorBarItem(values=(0, 100), colorMap=self.colormap, interactive=False,
                                          width=12)
        self.colour_bar.setImageItem(self.image, insert_in=plot)
        self.setToolTip("Rows: ground-truth class; columns: predicted class. Click a cell to highlight "
                        "its pixels on the image (Esc clears).")

    def set_mode(self, mode: str) -> None:
        """``ROW_PERCENT`` (each row sums to 100: recall on the diagonal) or ``COUNTS`` (pixels)."""
        self.mode = mode
        if self._matrix is not None:
            self.show_matrix(self._matrix, self._names)

    def reset(self) -> None:
        self._matrix = None
        self.image.clear()
        for text in self._texts:
            self.getPlotItem().removeItem(text)
        self._texts = []

    def show_matrix(self, matrix: np.ndarray, names: list[str]) -> None:
        self.reset()
        self._matrix, self._names = np.asarray(matrix), list(names)
        n = self._matrix.shape[0]
        rows = self._matrix.sum(axis=1, keepdims=True).astype(np.float64)
        if self.mode == COUNTS:
            # log scale, so the background's count does not flatten every other cell to one colour
            values = np.log10(1.0 + self._matrix.astype(np.float64))
            top = max(float(values.max()), 1.0)
            self.image.setImage(values.T, levels=(0.0, top))
            self.colour_bar.setLevels((0.0, top))
            self.colour_bar.axis.setLabel("log10 px")
        else:
            percent = np.divide(100.0 * self._matrix, rows, out=np.zeros(self._matrix.shape), where=rows > 0)
            self.image.setImage(percent.T, levels=(0.0, 100.0))
            self.colour_bar.setLevels((0.0, 100.0))
            self.colour_bar.axis.setLabel("% of row")
        plot = self.getPlotItem()
        plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)
        names = [self._names[i] if i < len(self._names) else str(i) for i in range(n)]
        plot.getAxis("left").setTicks([[(i + 0.5, short_name(names[i])) for i in range(n)]])
        self._label_columns()
        if n <= MAX_WRITTEN:
            self._write_values(n)

    def _label_columns(self) -> None:
        """Name the columns as far as a column's width allows (the full names are on the rows and in
        the tooltips), so neighbouring names never run into each other."""
        if self._matrix is None:
            return
        n = self._matrix.shape[0]
        column_px = self.getPlotItem().getViewBox().width() / max(n, 1)
        chars = max(2, int(column_px / max(1, self.fontMetrics().averageCharWidth())) - 1)
        names = [self._names[i] if i < len(self._names) else str(i) for i in range(n)]
        self.getPlotItem().getAxis("bottom").setTicks([[(i + 0.5, short_name(names[i], chars)) for i in range(n)]])

    def _write_values(self, n: int) -> None:
        levels = self.image.getLevels()
        top = float(levels[1]) if levels is not None else 1.0
        data = self.image.image
        for gt in range(n):
            for pred in range(n):
                light_cell = top > 0 and data[pred, gt] / top > 0.6    # viridis turns yellow: dark text
                text = pg.TextItem(cell_text(self._matrix, gt, pred, self.mode), anchor=(0.5, 0.5),
                                   color=(20, 20, 20) if light_cell else (240, 240, 240))
                text.setPos(pred + 0.5, gt + 0.5)
                self.getPlotItem().addItem(text)
                self._texts.append(text)

    def tooltip_for(self, gt: int, pred: int) -> str:
        matrix, names = self._matrix, self._names
        count, row = int(matrix[gt, pred]), int(matrix[gt].sum())
        share = f"{100.0 * count / row:.1f} %" if row else "–"
        what = "correct" if gt == pred else "confused"
        return (f"<b>{names[gt]}</b> predicted as <b>{names[pred]}</b> ({what})<br>{count:,} pixels, "
                f"{share} of the {row:,} {names[gt]} pixels<br>Click to highlight them")

    def _show_tip(self, cell) -> None:
        if cell is None or self._matrix is None:
            self.viewport().setToolTip("")
            return
        self.viewport().setToolTip(self.tooltip_for(*cell))


class IoUBars(pg.PlotWidget):
    """One bar per class: its colour, its name under it, its IoU written above."""

    def __init__(self):
        background, foreground = plot_colours()
        super().__init__(background=background)
        self._foreground = foreground
        self._texts: list[pg.TextItem] = []
        plot = self.getPlotItem()
        plot.setYRange(0, 1.12)
        plot.setLabel("left", "IoU")
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.getViewBox().setMenuEnabled(False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        plot.addItem(self.bars)
        self.setToolTip("Intersection over union per class: 1 is a perfect match; a missing bar is a class "
                        "neither in the ground truth nor in the prediction")

    def show_iou(self, iou: np.ndarray, names: list[str], colours) -> None:
        plot = self.getPlotItem()
        for text in self._texts:
            plot.removeItem(text)
        self._texts = []
        n = len(iou)
        heights = np.nan_to_num(np.asarray(iou, np.float64), nan=0.0)
        brushes = ([pg.mkBrush(*[int(c) for c in colours[i][:3]]) for i in range(n)]
                   if colours is not None and len(colours) >= n else None)
        self.bars.setOpts(x=np.arange(n), height=heights, width=0.8, brushes=brushes)
        plot.setXRange(-0.5, n - 0.5, padding=0.02)
        plot.getAxis("bottom").setTicks([[(i, short_name(names[i] if i < len(names) else str(i)))
                                          for i in range(n)]])
        if n > MAX_WRITTEN:
            return
        for i, value in enumerate(iou):
            label = "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
            text = pg.TextItem(label, anchor=(0.5, 1.0), color=self._foreground)
            text.setPos(i, heights[i] + 0.01)
            plot.addItem(text)
            self._texts.append(text)

    def reset(self) -> None:
        self.show_iou(np.zeros(0), [], None)
