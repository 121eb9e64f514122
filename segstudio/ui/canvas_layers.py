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
from PySide6.QtCore import QPoint, QRect, QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem

from segstudio.core.render import downsample_region, level_for_zoom, level_shape, max_level

TILE = 512
DEFAULT_CACHE_BYTES = 384 * 1024 * 1024

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
        raise ValueError(f"display images must be uint8 (see core.images.to_display_rgb), got {array.dtype}")
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

    def __init__(self, name: str, array: np.ndarray, lut: np.ndarray | None, cache: TileCache):
        super().__init__()
        self.name = name
        self.stats = RenderStats()
        self._cache = cache
        self._owner = id(self)
        self._opacity = 1.0
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.set_data(array, lut)

    # -- data --------------------------------------------------------------------------------------
    def set_data(self, array: np.ndarray, lut: np.ndarray | None) -> None:
        """Point the layer at a new array (and LUT); drops every cached tile."""
        kind = array_kind(array, lut)
        self.prepareGeometryChange()
        self.array, self.kind = array, kind
        self._top_level = max_level(array.shape, TILE // 2)
        self._set_lut(lut)
        self._cache.drop_owner(self._owner)
        self.update()

    def set_lut(self, lut: np.ndarray) -> None:
        """Recolour: cached tiles are dropped; only the ones painted next are re-rendered."""
        array_kind(self.array, lut)
        self._set_lut(lut)
        self._cache.drop_owner(self._owner)
        self.update()

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
        transform = painter.deviceTransform()  # includes the screen's device pixel ratio
        zoom = math.hypot(transform.m11(), transform.m12())
        level = level_for_zoom(zoom, self._top_level)
        f = 1 << level
        height, width = self.array.shape[:2]
        lh, lw = level_shape(self.array.shape, level)
        exposed = option.exposedRect.intersected(self.boundingRect())
        if exposed.isEmpty():
            return
        lx0, ly0 = max(0, math.floor(exposed.left() / f)), max(0, math.floor(exposed.top() / f))
        lx1, ly1 = min(lw, math.ceil(exposed.right() / f)), min(lh, math.ceil(exposed.bottom() / f))
        # Labels stay crisp when zoomed in; images are smoothed only when shown below 1:1.
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
