"""Tiled, lazily rendered canvas layers.

A :class:`TiledLayerItem` holds a *reference* to a numpy array (the document owns it) and paints it in
``TILE``-sized tiles at the pyramid level that matches the current zoom. A tile is converted to a
premultiplied ARGB QImage only when it is first painted and is then kept in a shared, byte-bounded
:class:`TileCache`; nothing ever converts a whole large image at once. Label maps go through the
uint8 + colour-table fast path (an Indexed8 QImage, converted once per tile by Qt).

A layer's opacity is baked into its tiles (into the colour table for label layers) instead of being
applied by QPainter at draw time: Qt's raster engine blends a *scaled* image with a constant opacity
on a slow generic path (about 4x the cost of an opaque-alpha scaled blit), and every frame at a
non-1:1 zoom is scaled. Changing the opacity therefore re-renders the visible tiles, once.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, Qt
from PySide6.QtGui import QImage, QPainter, QTransform
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from segstudio.core.display.render import downsample_region, level_for_zoom, level_shape, max_level

TILE = 512
DEFAULT_CACHE_BYTES = 384 * 1024 * 1024
COMPOSITE_MAX_SCALE = 1.5  # composites only where a tile on screen is at most 1.5x a level tile

KIND_INDEXED = "indexed"  # uint8 ids + <= 256-entry LUT -> Indexed8 with a colour table
KIND_LUT = "lut"  # wider integer ids (uint16 / int32) + LUT gathered per tile
KIND_GRAY = "gray"
KIND_RGB = "rgb"
KIND_RGBA = "rgba"


def array_kind(array: np.ndarray, lut: np.ndarray | None) -> str:
    """How an array is drawn; raises ValueError for arrays the canvas cannot show."""
    if array.ndim not in (2, 3):
        raise ValueError(f"layer arrays must be HxW or HxWxC, got shape {array.shape}")
    if lut is not None:
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"a LUT layer needs an HxW integer array, got {array.dtype} {array.shape}")
        if lut.ndim != 2 or lut.shape[1] != 4 or lut.dtype != np.uint8:
            raise ValueError(f"a LUT must be (N, 4) uint8 RGBA, got {lut.dtype} {lut.shape}")
        return KIND_INDEXED if array.dtype == np.uint8 and len(lut) <= 256 else KIND_LUT
    if array.dtype != np.uint8:
        raise ValueError(f"display images must be uint8 (see core.io.images.to_display_rgb), got {array.dtype}")
    if array.ndim == 2:
        return KIND_GRAY
    if array.shape[2] == 3:
        return KIND_RGB
    if array.shape[2] == 4:
        return KIND_RGBA
    raise ValueError(f"images must have 1, 3 or 4 channels, got {array.shape[2]}")


def color_table(lut: np.ndarray) -> list[int]:
    """A Qt colour table (0xAARRGGBB ints, not premultiplied) from an RGBA LUT of <= 256 entries."""
    lut = lut.astype(np.uint32)
    argb = (lut[:, 3] << 24) | (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]
    return [int(v) for v in argb]


@dataclass
class RenderStats:
    """Work a layer has done since it was created; for tests and benchmarks."""

    tiles_rendered: int = 0  # full tiles converted to QImage
    regions_rendered: int = 0  # partial re-renders after an in-place edit
    pixels_rendered: int = 0  # level pixels converted, tiles and regions together


class TileCache:
    """A least-recently-used map ``key -> QImage`` bounded by total bytes, shared by all layers."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[tuple, QImage] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple) -> QImage | None:
        image = self._tiles.get(key)
        if image is not None:
            self._tiles.move_to_end(key)
        return image

    def put(self, key: tuple, image: QImage) -> None:
        self.discard(key)
        self._tiles[key] = image
        self._bytes += image.sizeInBytes()
        while self._bytes > self.max_bytes and len(self._tiles) > 1:
            _, old = self._tiles.popitem(last=False)
            self._bytes -= old.sizeInBytes()

    def discard(self, key: tuple) -> None:
        old = self._tiles.pop(key, None)
        if old is not None:
            self._bytes -= old.sizeInBytes()

    def keys_of(self, owner: int) -> list[tuple]:
        """Keys whose first element is ``owner`` (a layer's id)."""
        return [key for key in self._tiles if key[0] == owner]

    def drop_owner(self, owner: int) -> None:
        for key in self.keys_of(owner):
            self.discard(key)

    def clear(self) -> None:
        self._tiles.clear()
        self._bytes = 0

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._tiles)


class TiledLayerItem(QGraphicsItem):
    """One canvas layer: an array drawn in cached tiles; scene units are image pixels."""

    def __init__(self, name: str, array: np.ndarray, lut: np.ndarray | None, cache: TileCache,
                 compositor: LayerCompositor | None = None):
        super().__init__()
        self.name = name
        self._compositor = None
        self._stacking = (True, 0.0)  # (visible, z) the compositor last saw
        self.stats = RenderStats()
        self._cache = cache
        self._owner = id(self)
        self._opacity = 1.0
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.set_data(array, lut)
        self._compositor = compositor
        if compositor is not None:
            compositor.add_layer(self)

    # -- data --------------------------------------------------------------------------------------
    def set_data(self, array: np.ndarray, lut: np.ndarray | None) -> None:
        """Point the layer at a new array (and LUT); drops every cached tile."""
        kind = array_kind(array, lut)
        self.prepareGeometryChange()
        self.array, self.kind = array, kind
        self._top_level = max_level(array.shape, TILE // 2)
        self._set_lut(lut)
        self._cache.drop_owner(self._owner)
        self._changed()

    def set_lut(self, lut: np.ndarray) -> None:
        """Recolour: cached tiles are dropped; only the ones painted next are re-rendered."""
        array_kind(self.array, lut)
        self._set_lut(lut)
        self._cache.drop_owner(self._owner)
        self._changed()

    def _set_lut(self, lut: np.ndarray | None) -> None:
        self.lut = None if lut is None else np.ascontiguousarray(lut, dtype=np.uint8)
        self._color_table = self._gather_lut = None
        if self.lut is None:
            return
        faded = self.lut.copy()
        if self._opacity < 1.0:
            faded[:, 3] = np.rint(faded[:, 3] * self._opacity).astype(np.uint8)
        if self.kind == KIND_INDEXED:
            self._color_table = color_table(faded)
        else:
            # one extra transparent entry: ids past the table draw nothing instead of wrapping
            self._gather_lut = np.vstack([faded, np.zeros((1, 4), np.uint8)])

    def layer_opacity(self) -> float:
        return self._opacity

    def set_layer_opacity(self, opacity: float) -> None:
        """Set the opacity baked into the tiles (see the module docstring); re-renders lazily."""
        opacity = min(1.0, max(0.0, float(opacity)))
        if opacity == self._opacity:
            return
        self._opacity = opacity
        if self.lut is not None:
            self._set_lut(self.lut)
        self._cache.drop_owner(self._owner)
        self._changed()

    def _changed(self) -> None:
        """Every tile of this layer was dropped: so are the composites that include it."""
        if self._compositor is not None:
            self._compositor.invalidate()
        self.update()

    def invalidate_region(self, x: int, y: int, w: int, h: int) -> None:
        """The array changed in place inside ``(x, y, w, h)``: patch the cached tiles it touches.

        Only the rectangle's pixels are re-rendered (per cached level), so the cost is O(w * h).
        """
        height, width = self.array.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        for key in self._cache.keys_of(self._owner):
            _, level, tx, ty = key
            f = 1 << level
            lh, lw = level_shape(self.array.shape, level)
            # level pixels whose block holds a changed sample (labels sample the block's corner)
            lx0, ly0 = max(x0 // f, tx * TILE), max(y0 // f, ty * TILE)
            lx1 = min(-(-x1 // f), lw, (tx + 1) * TILE)
            ly1 = min(-(-y1 // f), lh, (ty + 1) * TILE)
            if lx1 <= lx0 or ly1 <= ly0:
                continue
            tile = self._cache.get(key)
            patch = self._render(level, lx0, ly0, lx1, ly1)
            self.stats.regions_rendered += 1
            painter = QPainter(tile)
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
            painter.drawImage(QPoint(lx0 - tx * TILE, ly0 - ty * TILE), patch)
            painter.end()
        if self._compositor is not None:
            self._compositor.invalidate_region(x0, y0, x1, y1)
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    # -- rendering ---------------------------------------------------------------------------------
    def _render(self, level: int, x0: int, y0: int, x1: int, y1: int) -> QImage:
        """Level pixels ``[x0, x1) x [y0, y1)`` as a premultiplied ARGB (or RGB32) QImage."""
        labels = self.kind in (KIND_INDEXED, KIND_LUT)
        data = downsample_region(self.array, level, x0, y0, x1, y1, labels=labels)
        h, w = data.shape[:2]
        self.stats.pixels_rendered += w * h
        fmt = QImage.Format
        if self.kind == KIND_INDEXED:
            image = QImage(data, w, h, data.strides[0], fmt.Format_Indexed8)
            image.setColorTable(self._color_table)
            return image.convertToFormat(fmt.Format_ARGB32_Premultiplied)
        if self.kind == KIND_LUT:
            rgba = self._gather_lut[self._lut_indices(data)]
            image = QImage(rgba, w, h, rgba.strides[0], fmt.Format_RGBA8888)
            return image.convertToFormat(fmt.Format_ARGB32_Premultiplied)
        if self.kind == KIND_GRAY:
            image = QImage(data, w, h, data.strides[0], fmt.Format_Grayscale8).convertToFormat(fmt.Format_RGB32)
        elif self.kind == KIND_RGB:
            image = QImage(data, w, h, data.strides[0], fmt.Format_RGB888).convertToFormat(fmt.Format_RGB32)
        else:
            image = QImage(data, w, h, data.strides[0], fmt.Format_RGBA8888)
            image = image.convertToFormat(fmt.Format_ARGB32_Premultiplied)
        if self._opacity >= 1.0:
            return image
        faded = QImage(w, h, fmt.Format_ARGB32_Premultiplied)
        faded.fill(0)
        painter = QPainter(faded)
        painter.setOpacity(self._opacity)
        painter.drawImage(0, 0, image)
        painter.end()
        return faded

    def _lut_indices(self, data: np.ndarray) -> np.ndarray:
        """Ids as LUT rows: out-of-table (and negative) ids -> the extra transparent row."""
        n = len(self.lut)
        info = np.iinfo(data.dtype)
        if info.min >= 0 and info.max < n:
            return data
        data = data.astype(np.int64)
        data[(data < 0) | (data > n)] = n
        return data

    def tile(self, level: int, tx: int, ty: int) -> QImage:
        """The cached tile ``(tx, ty)`` of ``level``, rendering it on a miss."""
        key = (self._owner, level, tx, ty)
        image = self._cache.get(key)
        if image is None:
            lh, lw = level_shape(self.array.shape, level)
            x0, y0 = tx * TILE, ty * TILE
            image = self._render(level, x0, y0, min(lw, x0 + TILE), min(lh, y0 + TILE))
            self.stats.tiles_rendered += 1
            self._cache.put(key, image)
        return image

    def cached_tiles(self) -> list[tuple[int, int, int]]:
        """``(level, tx, ty)`` of the tiles currently cached for this layer."""
        return [key[1:] for key in self._cache.keys_of(self._owner)]

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        height, width = self.array.shape[:2]
        return QRectF(0, 0, width, height)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self._compositor is not None and self._compositor.draws_for(painter):
            return  # the compositor has drawn this layer into its composite tiles
        transform = painter.deviceTransform()  # includes the screen's device pixel ratio
        self.draw_level(painter, math.hypot(transform.m11(), transform.m12()), option.exposedRect)

    def level_for(self, zoom: float) -> int:
        """The pyramid level this layer draws at ``zoom`` (device px per image px)."""
        return level_for_zoom(zoom, self._top_level)

    def draw_level(self, painter: QPainter, zoom: float, exposed: QRectF) -> None:
        """Draw the tiles under ``exposed`` (scene rect) at the level for ``zoom``, with ``painter``'s
        transform."""
        level = self.level_for(zoom)
        f = 1 << level
        height, width = self.array.shape[:2]
        lh, lw = level_shape(self.array.shape, level)
        exposed = exposed.intersected(self.boundingRect())
        if exposed.isEmpty():
            return
        lx0, ly0 = max(0, math.floor(exposed.left() / f)), max(0, math.floor(exposed.top() / f))
        lx1, ly1 = min(lw, math.ceil(exposed.right() / f)), min(lh, math.ceil(exposed.bottom() / f))
        # Labels stay crisp at any zoom (nearest is the right resampling for class ids); images are
        # smoothed only when shown below 1:1.
        smooth = self.kind in (KIND_GRAY, KIND_RGB, KIND_RGBA) and zoom * f < 0.999
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        for ty in range(ly0 // TILE, (ly1 - 1) // TILE + 1):
            for tx in range(lx0 // TILE, (lx1 - 1) // TILE + 1):
                image = self.tile(level, tx, ty)
                sx0, sy0 = max(lx0, tx * TILE), max(ly0, ty * TILE)
                sx1 = min(lx1, tx * TILE + image.width())
                sy1 = min(ly1, ty * TILE + image.height())
                target = QRectF(sx0 * f, sy0 * f, min(width, sx1 * f) - sx0 * f,
                                min(height, sy1 * f) - sy0 * f)
                source = QRect(sx0 - tx * TILE, sy0 - ty * TILE, sx1 - sx0, sy1 - sy0)
                painter.drawImage(target, image, source)

    def itemChange(self, change, value):  # noqa: N802 - Qt override
        if self._compositor is not None and change in (
                QGraphicsItem.GraphicsItemChange.ItemVisibleHasChanged,
                QGraphicsItem.GraphicsItemChange.ItemZValueHasChanged):
            # Qt also reports these when the scene first shows the item; only a real change counts
            stacking = (self.isVisible(), self.zValue())
            if stacking != self._stacking:
                self._stacking = stacking
                self._compositor.invalidate()
        return super().itemChange(change, value)


@dataclass
class CompositeStats:
    """Work a :class:`LayerCompositor` has done; for tests and benchmarks."""

    tiles_composited: int = 0  # whole composite tiles drawn
    regions_composited: int = 0  # partial re-draws after an in-place edit
    pixels_composited: int = 0  # composite (device) pixels drawn, tiles and regions together


class LayerCompositor(QGraphicsItem):
    """Draws every visible layer, flattened, from tiles cached at the device scale of the current zoom.

    Away from 1:1 every layer tile is a *scaled* blit (a smooth one for images), once per layer and
    frame, and those blits are what made a zoomed redraw slow. Here the visible layers of a tile are
    drawn once, in z order and with the view's scale, into one premultiplied ARGB image the size the
    tile has on screen; a frame then costs one unscaled blit per tile. The view scrolls by whole
    device pixels, so the scene grid has the same sub-pixel phase on screen at any scroll and a
    composite drawn for one zoom stays exact while panning.

    Composites are used on steady frames (see :meth:`begin_frame`) at any zoom but 1:1 where the
    on-screen scale of the chosen pyramid level is below ``COMPOSITE_MAX_SCALE`` (a composite is never
    much larger than a level tile), i.e. at every zoom up to 1.5; otherwise the layers draw
    themselves. Composites are dropped when the zoom or any layer's data, colours, opacity, visibility
    or order changes, and patched in place, O(rect), after an in-place edit.
    """

    def __init__(self, cache: TileCache):
        super().__init__()
        self.stats = CompositeStats()
        self._cache = cache
        self._owner = id(self)
        self._layers: list[TiledLayerItem] = []
        self._zoom: float | None = None  # the zoom the cached composites were drawn at
        self._last_frame_zoom: float | None = None
        self._changed_since_frame = True
        self._steady = False  # this frame has the zoom and layer settings of the previous one
        # Scene rects edited since the last frame. A stroke's dab edits several layers over the same
        # rect (labels, error map, hatch); patching the composites once per frame, not once per layer,
        # keeps a dab's canvas cost to one recomposite of its rect.
        self._pending: list[tuple[int, int, int, int]] = []
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def add_layer(self, layer: TiledLayerItem) -> None:
        self._layers.append(layer)
        self.invalidate()

    def remove_layer(self, layer: TiledLayerItem) -> None:
        if layer in self._layers:
            self._layers.remove(layer)
        self.invalidate()

    def invalidate(self) -> None:
        """Drop every composite; the visible ones are redrawn on the first steady frame."""
        self.prepareGeometryChange()  # a layer's array (and so the bounding rect) may have changed
        self._cache.drop_owner(self._owner)
        self._pending.clear()
        self._changed_since_frame = True
        self.update()

    def begin_frame(self, transform: QTransform) -> None:
        """Called by the view before it paints a frame with this device transform.

        Composites are (re)built only on a *steady* frame, one with the zoom and layer settings of the
        frame before it: while the zoom or an opacity slider moves, every frame would otherwise rebuild
        whole composite tiles, which costs more than drawing the visible part of each layer directly.
        """
        zoom = transform.m11()
        self._steady = zoom == self._last_frame_zoom and not self._changed_since_frame
        self._last_frame_zoom, self._changed_since_frame = zoom, False

    def cached_tiles(self) -> list[tuple[int, int, int]]:
        """``(level, tx, ty)`` of the composites currently cached (all drawn at the same zoom)."""
        return [key[1:] for key in self._cache.keys_of(self._owner)]

    def plan(self, transform: QTransform) -> tuple[float, int] | None:
        """``(zoom, level)`` when a painter with this device transform draws from composites, else None."""
        if not self._steady or not self._layers or transform.type().value > QTransform.TransformationType.TxScale.value:
            return None
        zoom = transform.m11()
        if zoom <= 0 or abs(transform.m22() - zoom) > 1e-9 * zoom:
            return None
        if abs(transform.dx() - round(transform.dx())) > 1e-6 or abs(transform.dy() - round(transform.dy())) > 1e-6:
            return None
        shape = self._layers[0].array.shape[:2]
        if any(layer.array.shape[:2] != shape for layer in self._layers):
            return None
        level = self._layers[0].level_for(zoom)
        # at 1:1 the layers' own unscaled blits are as fast; a coarser level shown at exactly its size
        # still goes through Qt's scaled path (the painter holds a scale), so it is composited
        if abs(zoom - 1.0) < 1e-9 or zoom * (1 << level) >= COMPOSITE_MAX_SCALE:
            return None
        return zoom, level

    def draws_for(self, painter: QPainter) -> bool:
        """Whether this painter's frame is drawn from composites (the layers then draw nothing)."""
        return self.plan(painter.deviceTransform()) is not None

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        rect = QRectF()
        for layer in self._layers:
            rect = rect.united(layer.boundingRect())
        return rect

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        transform = painter.deviceTransform()
        plan = self.plan(transform)
        if plan is None:
            if self._zoom is not None:  # composites of another zoom only hold memory
                self._cache.drop_owner(self._owner)
                self._zoom = None
            return
        zoom, level = plan
        if zoom != self._zoom:
            self._cache.drop_owner(self._owner)
            self._pending.clear()
            self._zoom = zoom
        self._patch_pending()
        exposed = option.exposedRect.intersected(self.boundingRect())
        if exposed.isEmpty():
            return
        height, width = self._layers[0].array.shape[:2]
        span = TILE << level  # scene pixels per tile
        cx0, cy0 = math.floor(exposed.left() * zoom), math.floor(exposed.top() * zoom)
        cx1, cy1 = math.ceil(exposed.right() * zoom), math.ceil(exposed.bottom() * zoom)
        last_tx, last_ty = (width - 1) // span, (height - 1) // span
        tx0 = min(last_tx, max(0, math.floor((cx0 + 0.5) / zoom / span)))
        tx1 = min(last_tx, max(0, math.floor((cx1 - 0.5) / zoom / span)))
        ty0 = min(last_ty, max(0, math.floor((cy0 + 0.5) / zoom / span)))
        ty1 = min(last_ty, max(0, math.floor((cy1 - 0.5) / zoom / span)))
        painter.save()
        # draw in device pixels: the view's scroll, without its scale (nor the screen's pixel ratio)
        device_scale = painter.worldTransform().inverted()[0] * transform
        scroll = QTransform.fromTranslate(round(transform.dx()), round(transform.dy()))
        painter.setWorldTransform(scroll * device_scale.inverted()[0])
        for ty in range(ty0, ty1 + 1):
            r0, r1 = _device_edges(ty, span, height, zoom)
            for tx in range(tx0, tx1 + 1):
                c0, c1 = _device_edges(tx, span, width, zoom)
                sx0, sy0, sx1, sy1 = max(c0, cx0), max(r0, cy0), min(c1, cx1), min(r1, cy1)
                if sx1 <= sx0 or sy1 <= sy0:
                    continue
                image = self._tile(level, tx, ty, zoom)
                painter.drawImage(QPoint(sx0, sy0), image, QRect(sx0 - c0, sy0 - r0, sx1 - sx0, sy1 - sy0))
        painter.restore()

    def invalidate_region(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Scene pixels ``[x0, x1) x [y0, y1)`` of a layer changed: their composite pixels are redrawn
        before the next frame is drawn (once, however many layers changed there)."""
        if self._zoom is None or not self._layers:
            return
        rect = (x0, y0, x1, y1)
        if not any(p[0] <= x0 and p[1] <= y0 and p[2] >= x1 and p[3] >= y1 for p in self._pending):
            self._pending.append(rect)

    def _patch_pending(self) -> None:
        pending, self._pending = self._pending, []
        for rect in pending:
            self._patch(*rect)

    def _patch(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Redraw the composite pixels that scene pixels ``[x0, x1) x [y0, y1)`` reach.

        A changed level pixel can reach one level pixel further through image smoothing, so the
        redrawn rectangle is the changed level pixels grown by one level pixel (and one device pixel).
        """
        zoom = self._zoom
        height, width = self._layers[0].array.shape[:2]
        for key in self._cache.keys_of(self._owner):
            _, level, tx, ty = key
            f, span = 1 << level, TILE << level
            c0, c1 = _device_edges(tx, span, width, zoom)
            r0, r1 = _device_edges(ty, span, height, zoom)
            dx0 = max(c0, math.floor((x0 // f - 1) * f * zoom) - 1)
            dy0 = max(r0, math.floor((y0 // f - 1) * f * zoom) - 1)
            dx1 = min(c1, math.ceil((-(-x1 // f) + 1) * f * zoom) + 1)
            dy1 = min(r1, math.ceil((-(-y1 // f) + 1) * f * zoom) + 1)
            if dx1 <= dx0 or dy1 <= dy0:
                continue
            self._composite(self._cache.get(key), level, tx, ty, QRect(dx0 - c0, dy0 - r0, dx1 - dx0, dy1 - dy0),
                            zoom)
            self.stats.regions_composited += 1

    def _tile(self, level: int, tx: int, ty: int, zoom: float) -> QImage:
        key = (self._owner, level, tx, ty)
        image = self._cache.get(key)
        if image is None:
            height, width = self._layers[0].array.shape[:2]
            span = TILE << level
            c0, c1 = _device_edges(tx, span, width, zoom)
            r0, r1 = _device_edges(ty, span, height, zoom)
            image = QImage(c1 - c0, r1 - r0, QImage.Format.Format_ARGB32_Premultiplied)
            self._composite(image, level, tx, ty, image.rect(), zoom)
            self.stats.tiles_composited += 1
            self._cache.put(key, image)
        return image

    def _composite(self, image: QImage, level: int, tx: int, ty: int, rect: QRect, zoom: float) -> None:
        """(Re)draw ``rect`` (composite pixels) of the composite of tile ``(tx, ty)`` of ``level``."""
        height, width = self._layers[0].array.shape[:2]
        c0 = _device_edges(tx, TILE << level, width, zoom)[0]
        r0 = _device_edges(ty, TILE << level, height, zoom)[0]
        painter = QPainter(image)
        painter.setClipRect(rect)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.fillRect(rect, Qt.GlobalColor.transparent)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
        painter.setTransform(QTransform(zoom, 0, 0, zoom, -c0, -r0))  # scene -> composite pixels
        # Only this tile's own level tiles are drawn, exactly as on screen (Qt rounds a scaled target
        # rect to pixel edges the way _device_edges does). A partial redraw draws two level pixels
        # more than it keeps, so that smoothing at the clip edge samples the same neighbours.
        span = TILE << level
        tile_rect = QRectF(tx * span, ty * span, span, span)
        margin = 2 << level
        exposed = QRectF((c0 + rect.left()) / zoom - margin, (r0 + rect.top()) / zoom - margin,
                         rect.width() / zoom + 2 * margin, rect.height() / zoom + 2 * margin).intersected(tile_rect)
        for layer in sorted((layer for layer in self._layers if layer.isVisible()), key=lambda item: item.zValue()):
            layer.draw_level(painter, zoom, exposed)
        painter.end()
        self.stats.pixels_composited += rect.width() * rect.height()


def _device_edges(index: int, span: int, size: int, zoom: float) -> tuple[int, int]:
    """Device pixels ``[d0, d1)`` (unscrolled) of tile ``index``: its scene edges rounded as Qt rounds a
    scaled image's target rect (half up), so that the pixels a tile covers on screen are exactly these."""
    x0, x1 = index * span, min(size, (index + 1) * span)
    return math.floor(x0 * zoom + 0.5), math.floor(x1 * zoom + 0.5)
