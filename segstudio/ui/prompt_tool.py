"""The Prompt tool on the canvas (click to segment) and the preview it draws.

Left click: a positive click (object); Shift + left click or a right click: a negative one (not
object); a left drag: a box. Every click refines the current proposal. Enter accepts it with the
selected class, Esc drops it (both through :class:`~segstudio.ui.prompt_controller.PromptController`,
which holds the prompt and the proposal; the tool holds only the gesture in progress).

:class:`ProposalOverlay` draws the proposal's outline (dashed, cosmetic), the clicks (green plus, red
minus) and the box on the canvas scene, above every layer.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsPixmapItem, QGraphicsRectItem

from segstudio.core.prompting.types import Prompt
from segstudio.ui.edit_tools import ALT, LEFT, RIGHT, SHIFT, EditTool, pick_class_at

__all__ = ["PromptTool", "ProposalOverlay", "outline_path", "MAX_PATH_POINTS"]

DRAG_PX = 4.0          # screen pixels of drag before a press becomes a box
MAX_PATH_POINTS = 4000  # a ragged mask (thousands of specks) is drawn as its edge pixels instead of a path
MAX_EDGE_PIXELS = 4 * MAX_PATH_POINTS   # beyond this the contours are not traced at all
_SQUARE = np.ones((3, 3), np.uint8)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _contours(mask: np.ndarray, box, crop: np.ndarray | None = None) -> list[np.ndarray]:
    """The outlines of ``mask`` in ``box`` (``crop``: that part of it as 0/1 uint8, when at hand)."""
    x0, y0, x1, y1 = box
    crop = mask[y0:y1, x0:x1].astype(np.uint8) if crop is None else crop
    contours, _ = cv2.findContours(np.pad(crop, 1), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return list(contours)


def outline_path(mask: np.ndarray, contours: list | None = None) -> QPainterPath:
    """The outlines of ``mask`` (outer and holes) as a path in scene coordinates through the centres of
    its edge pixels, traced in its bounding box only."""
    path = QPainterPath()
    box = _bbox(mask)
    if box is None:
        return path
    x0, y0 = box[0], box[1]
    for contour in (contours if contours is not None else _contours(mask, box)):
        points = contour.reshape(-1, 2)
        # through the centres of the edge pixels: contour point (cx, cy) of the padded crop is pixel
        # (x0 + cx - 1, y0 + cy - 1), whose centre is half a pixel further
        path.moveTo(QPointF(x0 + points[0][0] - 0.5, y0 + points[0][1] - 0.5))
        for cx, cy in points[1:]:
            path.lineTo(QPointF(x0 + cx - 0.5, y0 + cy - 0.5))
        path.closeSubpath()
    return path


class ProposalOverlay:
    """The outline, clicks and box of the current proposal on a canvas scene."""

    def __init__(self, canvas):
        self.canvas = canvas
        self._items: list = []

    def _add(self, item, z: float = 1e9):
        item.setZValue(z)
        self.canvas.scene().addItem(item)
        self._items.append(item)
        return item

    def clear(self) -> None:
        for item in self._items:
            scene = item.scene()
            if scene is not None:
                scene.removeItem(item)
        self._items = []

    def _edge_pixels(self, edge: np.ndarray, box) -> None:
        """A ragged mask's edge pixels (0/1 ``edge`` of its bounding box) as one image item."""
        image = QImage(edge.data, edge.shape[1], edge.shape[0], edge.strides[0], QImage.Format.Format_Indexed8)
        image.setColorTable([0x00000000, 0xFFFFFF00])
        item = QGraphicsPixmapItem(QPixmap.fromImage(image))
        item.setOffset(box[0], box[1])
        self._add(item)

    def show(self, prompt: Prompt, mask: np.ndarray | None, waiting: bool = False) -> None:
        """Draw ``prompt`` and the outline of ``mask`` (None: no proposal yet; ``waiting``: dotted box)."""
        self.clear()
        box = _bbox(mask) if mask is not None else None
        if box is not None:
            x0, y0, x1, y1 = box
            crop = mask[y0:y1, x0:x1].view(np.uint8) if mask.dtype == bool else mask[y0:y1, x0:x1].astype(np.uint8)
            crop = np.ascontiguousarray(crop)
            edge = crop & ~cv2.erode(crop, _SQUARE, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            # tracing thousands of specks costs more than the decoder: count the edge pixels first
            contours = _contours(mask, box, crop) if cv2.countNonZero(edge) <= MAX_EDGE_PIXELS else None
            if contours is None or sum(len(c) for c in contours) > MAX_PATH_POINTS:
                self._edge_pixels(edge, box)
                contours = None
            path = outline_path(mask, contours) if contours is not None else None
            for color, width in ((QColor(0, 0, 0, 200), 3.0), (QColor(255, 255, 0, 255), 1.5)):
                if path is None:
                    break
                pen = QPen(color, width)
                pen.setCosmetic(True)
                if width < 2:
                    pen.setStyle(Qt.PenStyle.DashLine)
                item = QGraphicsPathItem(path)
                item.setPen(pen)
                self._add(item)
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            pen = QPen(QColor(255, 255, 255, 220), 1.0)
            pen.setCosmetic(True)
            pen.setStyle(Qt.PenStyle.DotLine if waiting else Qt.PenStyle.DashLine)
            rect = QGraphicsRectItem(QRectF(min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)))
            rect.setPen(pen)
            self._add(rect)
        zoom = max(self.canvas.zoom(), 1e-6)
        arm = 5.0 / zoom                     # 5 screen pixels at any zoom
        for (x, y), label in zip(prompt.points, prompt.labels):
            path = QPainterPath()
            cx, cy = float(x) + 0.5, float(y) + 0.5
            path.moveTo(cx - arm, cy)
            path.lineTo(cx + arm, cy)
            if label:
                path.moveTo(cx, cy - arm)
                path.lineTo(cx, cy + arm)
            for color, width in ((QColor(0, 0, 0, 220), 4.0),
                                 (QColor(40, 220, 60) if label else QColor(240, 50, 50), 2.0)):
                pen = QPen(color, width)
                pen.setCosmetic(True)
                item = QGraphicsPathItem(path)
                item.setPen(pen)
                self._add(item, 1e9 + 1)

    @property
    def items(self) -> list:
        return list(self._items)


class PromptTool(EditTool):
    """Clicks and box drags for :class:`~segstudio.ui.prompt_controller.PromptController`."""

    name = "prompt"

    def __init__(self, controller, context):
        super().__init__(context)
        self.controller = controller
        self._press_at: tuple[float, float] | None = None
        self._dragging = False
        self._negative = False

    def press(self, x: float, y: float, buttons, modifiers) -> None:
        document = self.context.document
        if document is None:
            return
        if buttons & RIGHT and not buttons & LEFT:
            self.controller.add_click(x, y, positive=False)
            return
        if not buttons & LEFT:
            return
        if modifiers & ALT:
            pick_class_at(self.context, document, x, y)
            return
        self._press_at, self._dragging = (x, y), False
        self._negative = bool(modifiers & SHIFT)

    def move(self, x: float, y: float, buttons, modifiers) -> None:
        if self._press_at is None or not buttons & LEFT:
            return
        px, py = self._press_at
        if not self._dragging and math.hypot(x - px, y - py) * self.context.canvas.zoom() > DRAG_PX:
            self._dragging = True
        if self._dragging:
            self.controller.preview_box((px, py, x, y))

    def release(self, x: float, y: float, buttons, modifiers) -> None:
        if self._press_at is None or buttons & LEFT:
            return
        (px, py), dragging = self._press_at, self._dragging
        self._press_at, self._dragging = None, False
        if dragging:
            self.controller.set_box((min(px, x), min(py, y), max(px, x), max(py, y)))
        else:
            self.controller.add_click(px, py, positive=not self._negative)

    def finish(self) -> None:
        """Enter: accept the proposal."""
        self.controller.accept()

    def cancel(self) -> None:
        """Esc: drop the proposal and its prompt."""
        self._press_at, self._dragging = None, False
        self.controller.drop()

    def deactivate(self) -> None:
        self.cancel()
