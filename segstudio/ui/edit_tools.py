"""Canvas tools that edit the ground truth: brush, eraser, accept-prediction brush, flood fill, polygon /
lasso fill and class picker.

A tool receives ``press / move / release(x, y, buttons, modifiers)`` from ``CanvasView`` in image
coordinates and turns them into calls on the current :class:`~segstudio.core.editing.document.ImageDocument`
(``begin_stroke`` / ``paint_to`` / ``commit_stroke``, ``fill``, ``fill_polygon``). The document does the
pixel work, the metrics and the notifications; tools hold no mask state.

Shared conventions
------------------
* Left button edits; Alt + left click picks the ground-truth class under the cursor in every tool.
* The eraser paints **background (class 0)**, which is what "remove this label" means for most
  datasets; Shift + eraser paints the **ignore index** ("unlabelled", left out of the metrics).
  Shift + fill fills with the ignore index too.
* ``context.only_over`` ("paint only over class X") limits a stroke, fill or polygon to pixels that are
  currently of that class; ``context.preserve_labels`` ("preserve other labels") protects every class
  except background and the selected class, so only unlabelled, background and selected-class pixels
  change.
* Polygon: click to add vertices, double-click (a second click on the last vertex), a click on the first
  vertex or Enter closes and fills; dragging with the button held draws a lasso that fills on release;
  a right click drops the polygon.
"""
from __future__ import annotations

import math
from typing import Protocol

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from segstudio.core.editing.document import ImageDocument

__all__ = ["EditContext", "EditTool", "BrushTool", "EraserTool", "AcceptPredictionBrush", "FloodFillTool",
           "PolygonTool", "ClassPickerTool", "protected_classes"]

LEFT = Qt.MouseButton.LeftButton
RIGHT = Qt.MouseButton.RightButton
ALT = Qt.KeyboardModifier.AltModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier
CLOSE_PX = 4.0     # screen pixels: a click this close to a vertex closes the polygon
LASSO_PX = 4.0     # screen pixels of drag before a press becomes a lasso


class EditContext(Protocol):
    """What tools read from the editor (``EditController`` implements it)."""

    @property
    def document(self) -> ImageDocument | None: ...   # the document being edited
    canvas: object                          # the CanvasView (zoom, scene for previews)
    selected_class: int
    brush_radius: float
    only_over: int | None
    preserve_labels: bool

    def pick_class(self, class_id: int) -> None: ...
    def report(self, message: str) -> None: ...


def protected_classes(document: ImageDocument, selected: int, preserve: bool) -> set[int] | None:
    """Class ids an edit must leave alone under "preserve other labels" (None when off)."""
    if not preserve:
        return None
    return set(range(document.num_classes)) - {0, int(selected)}


class EditTool:
    """Base: routes left-button input to ``on_press`` / ``on_drag`` / ``on_release``; Alt+click picks."""

    name = ""
    shows_brush = False

    def __init__(self, context: EditContext):
        self.context = context
        self._document = None    # the document the running gesture edits (fixed for the gesture)

    # -- CanvasTool protocol ---------------------------------------------------------------------
    def press(self, x: float, y: float, buttons, modifiers) -> None:
        if buttons & RIGHT and not buttons & LEFT:
            self.cancel()
            return
        if not buttons & LEFT:
            return
        document = self.context.document
        if document is None:
            return
        if modifiers & ALT:
            pick_class_at(self.context, document, x, y)
            return
        self._document = document
        try:
            self.on_press(document, x, y, modifiers)
        except ValueError as exc:      # no prediction to copy, class not in the table ...
            self._document = None
            self.context.report(str(exc))

    def move(self, x: float, y: float, buttons, modifiers) -> None:
        if self._document is not None and buttons & LEFT:
            self.on_drag(self._document, x, y, modifiers)
        else:
            self.on_hover(x, y)

    def release(self, x: float, y: float, buttons, modifiers) -> None:
        if self._document is not None and not buttons & LEFT:
            document, self._document = self._document, None
            self.on_release(document, x, y, modifiers)

    def deactivate(self) -> None:
        """Another tool takes over: finish what this one was doing."""
        self.finish()
        self.cancel()

    # -- hooks -----------------------------------------------------------------------------------
    def on_press(self, document: ImageDocument, x: float, y: float, modifiers) -> None: ...
    def on_drag(self, document: ImageDocument, x: float, y: float, modifiers) -> None: ...
    def on_release(self, document: ImageDocument, x: float, y: float, modifiers) -> None: ...
    def on_hover(self, x: float, y: float) -> None: ...

    def finish(self) -> None:
        """Complete a gesture in progress (Enter)."""

    def cancel(self) -> None:
        """Drop a gesture in progress without editing."""

    # -- helpers ---------------------------------------------------------------------------------
    def _protect(self, document: ImageDocument):
        return protected_classes(document, self.context.selected_class, self.context.preserve_labels)


def pick_class_at(context: EditContext, document: ImageDocument, x: float, y: float) -> None:
    class_id = document.class_at(x, y, "gt")
    if class_id is None or class_id == document.ignore_index or not 0 <= class_id < document.num_classes:
        context.report("No labelled class under the cursor")
        return
    context.pick_class(class_id)


class BrushTool(EditTool):
    """Round brush painting the selected class; a drag covers every pixel within the radius of the path."""

    name = "brush"
    shows_brush = True

    def stroke_kwargs(self, document: ImageDocument, modifiers) -> dict:
        return {"value": self.context.selected_class}

    def on_press(self, document: ImageDocument, x, y, modifiers) -> None:
        if document.in_stroke:
            document.commit_stroke()
        document.begin_stroke(protect=self._protect(document), only_over=self.context.only_over,
                              **self.stroke_kwargs(document, modifiers))
        document.paint_dab(x, y, self.context.brush_radius)

    def on_drag(self, document: ImageDocument, x, y, modifiers) -> None:
        if document.in_stroke:
            document.paint_to(x, y, self.context.brush_radius)

    def on_release(self, document: ImageDocument, x, y, modifiers) -> None:
        if document.in_stroke:
            document.paint_to(x, y, self.context.brush_radius)
            document.commit_stroke()

    def finish(self) -> None:
        document, self._document = self._document, None
        if document is not None and document.in_stroke:
            document.commit_stroke()


class EraserTool(BrushTool):
    """Paints background (class 0); with Shift held at the press, the ignore index."""

    name = "eraser"

    def stroke_kwargs(self, document: ImageDocument, modifiers) -> dict:
        return {"value": document.ignore_index if modifiers & SHIFT else 0}


class AcceptPredictionBrush(BrushTool):
    """Copies the predicted labels into the ground truth under the brush."""

    name = "prediction"

    def stroke_kwargs(self, document: ImageDocument, modifiers) -> dict:
        if document.pred is None:
            raise ValueError("No prediction on this image to accept")
        return {"source": "prediction"}


class FloodFillTool(EditTool):
    """Fills the 4-connected region of equal labels under the click (Shift: with the ignore index)."""

    name = "fill"

    def on_press(self, document: ImageDocument, x, y, modifiers) -> None:
        self._document = None
        only = self.context.only_over
        if only is not None and document.class_at(x, y, "gt") not in (only, None):
            self.context.report("The region under the cursor is not the 'paint only over' class")
            return
        value = document.ignore_index if modifiers & SHIFT else self.context.selected_class
        document.fill(x, y, value, protect=self._protect(document))


class ClassPickerTool(EditTool):
    """A click selects the ground-truth class under the cursor."""

    name = "picker"

    def on_press(self, document: ImageDocument, x, y, modifiers) -> None:
        self._document = None
        pick_class_at(self.context, document, x, y)


class PolygonTool(EditTool):
    """Click vertices (or drag a lasso) and fill the closed polygon with the selected class."""

    name = "polygon"

    def __init__(self, context: EditContext):
        super().__init__(context)
        self.points: list[tuple[float, float]] = []
        self._target = None         # the document the polygon will fill
        self._press_at: tuple[float, float] | None = None
        self._lasso = False
        self._hover: tuple[float, float] | None = None
        self._preview: QGraphicsPathItem | None = None

    # -- gestures --------------------------------------------------------------------------------
    def on_press(self, document: ImageDocument, x, y, modifiers) -> None:
        if self._target is not None and self._target is not document:
            self.cancel()
        self._target = document
        self._lasso = False
        self._press_at = (x, y)
        if len(self.points) >= 3 and (self._near(self.points[-1], (x, y)) or self._near(self.points[0], (x, y))):
            self.finish()     # double-click (second click on the last vertex) or back on the first
            self._document = None
            return
        if not self.points or not self._near(self.points[-1], (x, y)):
            self.points.append((x, y))
        self._update_preview()

    def on_drag(self, document: ImageDocument, x, y, modifiers) -> None:
        if self._press_at is None:
            return
        if not self._lasso and self._screen_distance(self._press_at, (x, y)) > LASSO_PX:
            self._lasso = True
        if self._lasso and self._screen_distance(self.points[-1], (x, y)) >= 1.0:
            self.points.append((x, y))
            self._update_preview()

    def on_release(self, document: ImageDocument, x, y, modifiers) -> None:
        self._press_at = None
        if self._lasso:
            self._lasso = False
            if len(self.points) >= 3:
                self.finish()

    def on_hover(self, x, y) -> None:
        self._hover = (x, y)
        if self.points:
            self._update_preview()

    def finish(self) -> None:
        """Close the polygon and fill it (needs three vertices)."""
        document, points = self._target, list(self.points)
        self._clear()
        if document is None or len(points) < 3:
            return
        try:
            document.fill_polygon(points, self.context.selected_class, protect=self._protect(document),
                                  only_over=self.context.only_over)
        except ValueError as exc:
            self.context.report(str(exc))

    def cancel(self) -> None:
        self._clear()

    def deactivate(self) -> None:
        self.cancel()     # switching tools drops an unfinished polygon rather than filling it

    def _clear(self) -> None:
        self.points = []
        self._target = None
        self._press_at = None
        self._lasso = False
        self._document = None
        if self._preview is not None:
            scene = self._preview.scene()
            if scene is not None:
                scene.removeItem(self._preview)
            self._preview = None

    # -- geometry and preview --------------------------------------------------------------------
    def _screen_distance(self, a, b) -> float:
        return math.hypot(a[0] - b[0], a[1] - b[1]) * self.context.canvas.zoom()

    def _near(self, a, b) -> bool:
        return self._screen_distance(a, b) <= CLOSE_PX

    def _update_preview(self) -> None:
        if not self.points:
            return
        if self._preview is None:
            self._preview = QGraphicsPathItem()
            pen = QPen(QColor(255, 255, 255, 230), 1.5)
            pen.setCosmetic(True)
            pen.setStyle(Qt.PenStyle.DashLine)
            self._preview.setPen(pen)
            self._preview.setZValue(1e9)
            self.context.canvas.scene().addItem(self._preview)
        path = QPainterPath(QPointF(*self.points[0]))
        for p in self.points[1:]:
            path.lineTo(QPointF(*p))
        if self._hover is not None and not self._lasso:
            path.lineTo(QPointF(*self._hover))
        self._preview.setPath(path)
