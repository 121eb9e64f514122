"""The image canvas: a zoomable, pannable view of an image with named, tiled overlay layers.

Scene coordinates are image pixel coordinates: pixel ``(x, y)`` covers ``[x, x+1) x [y, y+1)``. Layers
hold references to the document's arrays (never copies); after an in-place edit the owner calls
:meth:`CanvasView.update_layer_region` and only that rectangle is re-rendered.

Navigation
----------
wheel                      zoom at the cursor (trackpads zoom smoothly)
Ctrl + wheel               ``brush_resize_requested(steps)``; the canvas does not zoom
middle drag, Space + drag  pan
F                          fit the image to the window
Ctrl+0                     1:1 (one image pixel per screen pixel)
+ / =, -                   zoom in / out around the view centre
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QTransform, QWheelEvent
from PySide6.QtWidgets import QFrame, QGraphicsEllipseItem, QGraphicsScene, QGraphicsView, QWidget

from segstudio.ui.canvas_layers import CompositeStats, LayerCompositor, RenderStats, TileCache, TiledLayerItem

IMAGE_LAYER = "image"
MAX_ZOOM = 64.0
WHEEL_STEP = 1.25  # zoom factor per wheel notch (120 eighths of a degree)
BACKGROUND = QColor(40, 40, 40)


class CanvasTool(Protocol):
    """What :meth:`CanvasView.set_tool` accepts. Coordinates are image pixels as floats.

    ``move`` is called on every mouse move, with ``Qt.NoButton`` when hovering. A tool may also define
    ``deactivate()``, called when another tool replaces it.
    """

    def press(self, x: float, y: float, buttons: Qt.MouseButtons, modifiers: Qt.KeyboardModifiers) -> None: ...
    def move(self, x: float, y: float, buttons: Qt.MouseButtons, modifiers: Qt.KeyboardModifiers) -> None: ...
    def release(self, x: float, y: float, buttons: Qt.MouseButtons, modifiers: Qt.KeyboardModifiers) -> None: ...


@dataclass(frozen=True)
class LayerInfo:
    """A snapshot of one layer's settings; ``array`` and ``lut`` are the layer's own references."""

    name: str
    array: np.ndarray
    lut: np.ndarray | None
    opacity: float
    visible: bool
    z: float
    kind: str


class CanvasView(QGraphicsView):
    """Zoomable image view with named tiled layers; see the module docstring for the key bindings."""

    cursor_moved = Signal(int, int)
    zoom_changed = Signal(float)
    view_changed = Signal()
    brush_resize_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None, cache_bytes: int | None = None):
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._cache = TileCache() if cache_bytes is None else TileCache(cache_bytes)
        self._layers: dict[str, TiledLayerItem] = {}
        self._compositor = LayerCompositor(self._cache)
        self._scene.addItem(self._compositor)
        self._shape: tuple[int, int] = (0, 0)
        self._fitted = True  # keep fitting on resize until the user zooms or pans
        self._tool: CanvasTool | None = None
        self._pan_anchor: QPointF | None = None
        self._space_held = False
        self._last_cursor = (-1, -1)
        self._wheel_brush_acc = 0
        self._brush_radius: float | None = None
        # Scrolling is whole screen pixels; the exact scene point meant to be at the viewport centre is
        # kept so that repeated zooms at the cursor do not accumulate rounding drift.
        self._center: QPointF | None = None
        self._scrolling = False
        self._brush_items = self._make_brush_items()

        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(QBrush(BACKGROUND))
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing, True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setMouseTracking(True)
        self.horizontalScrollBar().valueChanged.connect(self._on_scrolled)
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)

    # -- image and layers --------------------------------------------------------------------------
    def set_image(self, array: np.ndarray | None) -> None:
        """Show a display image (HxW gray, HxWx3 RGB or HxWx4 RGBA uint8) and fit it to the window.

        The image is the layer named ``"image"``, kept below every overlay. Overlays whose shape no
        longer matches are removed.
        """
        if array is None:
            self.set_layer(IMAGE_LAYER, None)
        else:
            bottom = min((item.zValue() for item in self._layers.values()), default=0.0)
            current = self._layers.get(IMAGE_LAYER)
            z = current.zValue() if current is not None else bottom - 1
            self._shape = tuple(array.shape[:2])
            for name in [n for n, i in self._layers.items() if i.array.shape[:2] != self._shape]:
                self.set_layer(name, None)  # overlays of the previous image cannot be shown on this one
            self.set_layer(IMAGE_LAYER, array, z=z)
        self.fit_to_window()

    @property
    def image_shape(self) -> tuple[int, int]:
        """(height, width) of the image, or of the first layer when there is no image; (0, 0) if empty."""
        return self._shape

    def set_layer(self, name: str, array: np.ndarray | None, lut: np.ndarray | None = None,
                  opacity: float | None = None, visible: bool | None = None, z: float | None = None) -> None:
        """Add, replace (``array``) or remove (``None``) a layer.

        ``array`` is kept by reference. A 2-D integer array with a ``(N, 4)`` uint8 ``lut`` is a label
        layer; without a LUT, a uint8 gray / RGB / RGBA image. A new layer defaults to opacity 1, visible,
        above every layer; replacing a layer's array keeps the opacity, visibility and z not given.
        Raises ValueError when the shape differs from the image's.
        """
        if array is None:
            item = self._layers.pop(name, None)
            if item is not None:
                self._cache.drop_owner(id(item))
                self._compositor.remove_layer(item)
                self._scene.removeItem(item)
            if not self._layers:
                self._shape = (0, 0)
            return
        if self._shape != (0, 0) and tuple(array.shape[:2]) != self._shape and name != IMAGE_LAYER:
            raise ValueError(f"layer {name!r} has shape {array.shape[:2]}, the image is {self._shape}")
        item = self._layers.get(name)
        if item is None:
            item = TiledLayerItem(name, array, lut, self._cache, self._compositor)
            top = max((i.zValue() for i in self._layers.values()), default=-1.0)
            item.setZValue(top + 1 if z is None else z)
            self._layers[name] = item
            self._scene.addItem(item)
        else:
            item.set_data(array, lut)
            if z is not None:
                item.setZValue(z)
        if opacity is not None:
            item.set_layer_opacity(opacity)
        if visible is not None:
            item.setVisible(bool(visible))
        if self._shape == (0, 0):
            self._shape = tuple(array.shape[:2])
            self._update_scene_rect()

    def set_layer_lut(self, name: str, lut: np.ndarray) -> None:
        """Recolour a label layer (visible tiles re-render lazily)."""
        self._item(name).set_lut(lut)

    def set_layer_visible(self, name: str, visible: bool) -> None:
        self._item(name).setVisible(bool(visible))

    def set_layer_opacity(self, name: str, opacity: float) -> None:
        self._item(name).set_layer_opacity(opacity)

    def set_layer_order(self, names_bottom_to_top: list[str]) -> None:
        """Stack the named layers in this order; layers not named keep their place below them."""
        for name in names_bottom_to_top:
            self._item(name)
        others = sorted((i for n, i in self._layers.items() if n not in names_bottom_to_top),
                        key=lambda i: i.zValue())
        for z, item in enumerate(others + [self._layers[n] for n in names_bottom_to_top]):
            item.setZValue(float(z))

    def update_layer_region(self, name: str, x: int, y: int, w: int, h: int) -> None:
        """The layer's array was edited in place inside ``(x, y, w, h)``; redraw only that. O(w*h)."""
        self._item(name).invalidate_region(int(x), int(y), int(w), int(h))

    def layer_names(self) -> list[str]:
        """Layer names, bottom to top."""
        return [n for n, _ in sorted(self._layers.items(), key=lambda kv: kv[1].zValue())]

    def layer(self, name: str) -> LayerInfo:
        item = self._item(name)
        return LayerInfo(name, item.array, item.lut, item.layer_opacity(), item.isVisible(), item.zValue(), item.kind)

    def render_stats(self, name: str) -> RenderStats:
        """Tiles / pixels rendered so far by a layer (for tests and benchmarks)."""
        return self._item(name).stats

    def cached_tiles(self, name: str) -> list[tuple[int, int, int]]:
        """``(level, tx, ty)`` of a layer's cached tiles."""
        return self._item(name).cached_tiles()

    def composite_stats(self) -> CompositeStats:
        """Composite tiles / pixels drawn so far (see ``canvas_layers.LayerCompositor``)."""
        return self._compositor.stats

    def cached_composites(self) -> list[tuple[int, int, int]]:
        """``(level, tx, ty)`` of the cached composite tiles (all of the current zoom)."""
        return self._compositor.cached_tiles()

    @property
    def tile_cache(self) -> TileCache:
        return self._cache

    def _item(self, name: str) -> TiledLayerItem:
        try:
            return self._layers[name]
        except KeyError:
            raise KeyError(f"no canvas layer named {name!r}; layers: {self.layer_names()}") from None

    # -- zoom and scrolling ------------------------------------------------------------------------
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return self.transform().m11()

    def fit_zoom(self) -> float:
        """The zoom at which the whole image fits the viewport."""
        h, w = self._shape
        if not h or not w:
            return 1.0
        vp = self.viewport()
        return max(1e-4, min(vp.width() / w, vp.height() / h))

    def fit_to_window(self) -> None:
        """Zoom so the whole image is visible and centre it."""
        self._apply_zoom(self.fit_zoom())
        h, w = self._shape
        self._center_on(QPointF(w / 2, h / 2))
        self._fitted = True

    def zoom_actual(self) -> None:
        """1:1 around the view centre."""
        self.zoom_by(1.0 / self.zoom())

    def zoom_by(self, factor: float, anchor_scene_pos: QPointF | None = None) -> None:
        """Multiply the zoom by ``factor`` keeping ``anchor_scene_pos`` (default: the view centre) fixed
        on screen."""
        old, center = self.zoom(), self._intended_center()
        anchor = center if anchor_scene_pos is None else QPointF(anchor_scene_pos)
        self._apply_zoom(old * factor)
        self._center_on(anchor + (center - anchor) * (old / self.zoom()))
        self._fitted = False

    def center_on_rect(self, x: float, y: float, w: float, h: float, margin: float = 0.2) -> None:
        """Centre the image rectangle and zoom so it fills ``1 - 2*margin`` (60 %) of the view."""
        vp = self.viewport()
        fill = max(0.05, 1.0 - 2.0 * margin)
        self._apply_zoom(fill * min(vp.width() / max(w, 1.0), vp.height() / max(h, 1.0)))
        self._center_on(QPointF(x + w / 2, y + h / 2))
        self._fitted = False

    def image_pos_at(self, view_point) -> tuple[float, float]:
        """Image coordinates (floats) under a viewport point."""
        p = self.viewportTransform().inverted()[0].map(QPointF(view_point))
        return p.x(), p.y()

    def visible_image_rect(self) -> tuple[float, float, float, float]:
        """The image-coordinate rectangle ``(x, y, w, h)`` the viewport shows (may exceed the image)."""
        vp = self.viewport()
        rect = self.viewportTransform().inverted()[0].mapRect(QRectF(0, 0, vp.width(), vp.height()))
        return rect.x(), rect.y(), rect.width(), rect.height()

    def render_viewport(self) -> QImage:
        """What the viewport shows now, as an ARGB32 QImage (renders synchronously)."""
        return self.viewport().grab().toImage().convertToFormat(QImage.Format.Format_ARGB32)

    def _zoom_limits(self) -> tuple[float, float]:
        return min(1.0, self.fit_zoom()) / 4.0, MAX_ZOOM

    def _apply_zoom(self, zoom: float) -> None:
        low, high = self._zoom_limits()
        zoom = min(high, max(low, zoom))
        changed = not math.isclose(zoom, self.zoom(), rel_tol=1e-9)
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self._update_scene_rect()
        self._update_brush_pen()
        if changed:
            self.zoom_changed.emit(zoom)
            self.view_changed.emit()

    def _update_scene_rect(self) -> None:
        # Half a viewport of slack on every side lets any image point reach the view centre.
        h, w = self._shape
        vp, zoom = self.viewport(), self.zoom()
        mx, my = vp.width() / (2 * zoom) + 1, vp.height() / (2 * zoom) + 1
        self.setSceneRect(QRectF(-mx, -my, w + 2 * mx, h + 2 * my))

    def _viewport_center(self) -> QPointF:
        vp = self.viewport()
        return QPointF(vp.width() / 2, vp.height() / 2)

    def _intended_center(self) -> QPointF:
        if self._center is not None:
            return QPointF(self._center)
        x, y = self.image_pos_at(self._viewport_center())
        return QPointF(x, y)

    def _intended_scene_at(self, view_point: QPointF) -> QPointF:
        """Scene point under ``view_point`` in the exact (unrounded) view."""
        return self._intended_center() + (QPointF(view_point) - self._viewport_center()) / self.zoom()

    def _center_on(self, scene_point: QPointF) -> None:
        """Put ``scene_point`` at the viewport centre, to the nearest screen pixel."""
        delta = self.viewportTransform().map(scene_point) - self._viewport_center()
        self._scroll_by(delta.x(), delta.y())
        self._center = QPointF(scene_point)

    def _scroll_by(self, dx: float, dy: float) -> None:
        hbar, vbar = self.horizontalScrollBar(), self.verticalScrollBar()
        self._scrolling = True
        try:
            hbar.setValue(hbar.value() + round(dx))
            vbar.setValue(vbar.value() + round(dy))
        finally:
            self._scrolling = False

    def _on_scrolled(self) -> None:
        if not self._scrolling:
            self._center = None  # scrolled from outside: the actual view is the reference again
        self.view_changed.emit()

    # -- tools and brush cursor --------------------------------------------------------------------
    def set_tool(self, tool: CanvasTool | None) -> None:
        """Route left/right-button mouse input (outside panning) to ``tool``; ``None`` = navigate only."""
        if self._tool is not None and self._tool is not tool and hasattr(self._tool, "deactivate"):
            self._tool.deactivate()
        self._tool = tool

    def tool(self) -> CanvasTool | None:
        return self._tool

    def set_brush_cursor(self, radius: float | None) -> None:
        """Show a circle of ``radius`` image pixels around the mouse (true size at any zoom); None hides."""
        self._brush_radius = radius
        for item in self._brush_items:
            item.setVisible(radius is not None and self._last_cursor != (-1, -1))
        if radius is not None:
            self._place_brush(*self._brush_center())

    def _make_brush_items(self) -> list[QGraphicsEllipseItem]:
        items = []
        for color, width in ((QColor(0, 0, 0, 200), 3.0), (QColor(255, 255, 255, 230), 1.0)):
            item = QGraphicsEllipseItem()
            pen = QPen(color, width)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(1e9)
            item.setVisible(False)
            self._scene.addItem(item)
            items.append(item)
        return items

    def _update_brush_pen(self) -> None:
        for item in self._brush_items:
            item.update()

    def _brush_center(self) -> tuple[float, float]:
        rect = self._brush_items[0].rect()
        return rect.center().x(), rect.center().y()

    def _place_brush(self, x: float, y: float) -> None:
        if self._brush_radius is None:
            return
        r = self._brush_radius
        for item in self._brush_items:
            item.setRect(QRectF(x - r, y - r, 2 * r, 2 * r))

    # -- Qt event overrides ------------------------------------------------------------------------
    def resizeEvent(self, event) -> None:  # noqa: N802
        center = self._intended_center()
        super().resizeEvent(event)
        if self._fitted:
            self.fit_to_window()
        else:
            self._apply_zoom(self.zoom())
            self._center_on(center)
        self.view_changed.emit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        dy = event.angleDelta().y()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self._wheel_brush_acc += dy
            steps = int(self._wheel_brush_acc / 120)
            if steps:
                self._wheel_brush_acc -= steps * 120
                self.brush_resize_requested.emit(steps)
        elif dy:
            self.zoom_by(WHEEL_STEP ** (dy / 120.0), self._intended_scene_at(event.position()))
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_held):
            self._pan_anchor = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._tool is not None:
            self._tool.press(*self.image_pos_at(event.position()), event.buttons(), event.modifiers())
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        x, y = self.image_pos_at(event.position())
        self._report_cursor(x, y)
        if self._pan_anchor is not None:
            delta = self._pan_anchor - event.position()
            self._pan_anchor = event.position()
            self._scroll_by(delta.x(), delta.y())
            self._center = None
            self._fitted = False
        elif self._tool is not None:
            self._tool.move(x, y, event.buttons(), event.modifiers())
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._pan_anchor is not None:
            if not event.buttons() & (Qt.MouseButton.MiddleButton | Qt.MouseButton.LeftButton):
                self._pan_anchor = None
                self._restore_cursor()
        elif self._tool is not None:
            self._tool.release(*self.image_pos_at(event.position()), event.buttons(), event.modifiers())
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.mousePressEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._last_cursor = (-1, -1)
        for item in self._brush_items:
            item.setVisible(False)
        self.cursor_moved.emit(-1, -1)
        super().leaveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif key == Qt.Key.Key_F and not ctrl:
            self.fit_to_window()
        elif key == Qt.Key.Key_0 and ctrl:
            self.zoom_actual()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(WHEEL_STEP)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.zoom_by(1.0 / WHEEL_STEP)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            if self._pan_anchor is None:
                self._restore_cursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        self._compositor.begin_frame(painter.deviceTransform())  # the first thing a frame paints
        painter.fillRect(rect, BACKGROUND)

    def _restore_cursor(self) -> None:
        if self._space_held:
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.viewport().unsetCursor()

    def _report_cursor(self, x: float, y: float) -> None:
        h, w = self._shape
        inside = 0 <= x < w and 0 <= y < h
        pixel = (math.floor(x), math.floor(y)) if inside else (-1, -1)
        if self._brush_radius is not None:
            self._place_brush(x, y)
            for item in self._brush_items:
                item.setVisible(inside)
        if pixel != self._last_cursor:
            self._last_cursor = pixel
            self.cursor_moved.emit(*pixel)
