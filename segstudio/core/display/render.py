"""Colouring and downsampling helpers for the canvas: lookup tables, outlines, pyramids, view modes.

Everything here is numpy/OpenCV only, so the colours the canvas shows can be unit-tested without Qt.
A *LUT* is an ``(N, 4)`` uint8 RGBA table applied as ``lut[labels]``; with ``N <= 256`` and a uint8
mask it becomes an Indexed8 image with a colour table on the Qt side (pyqtgraph's fast path).

The canvas renders large images tile by tile at pyramid *levels*: level ``L`` shows every
``f = 2**L``-th pixel. :func:`downsample_region` computes any rectangle of a level directly from the
full-resolution array, so a zoomed-out tile never needs the levels below it and a partial redraw of an
edited rectangle is O(rectangle).
"""
from __future__ import annotations

import math
from enum import Enum
from typing import TYPE_CHECKING, Iterable

import cv2
import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from segstudio.core.io.classes import ClassTable
    from segstudio.core.io.masks import InstanceMask

__all__ = [
    "GOLDEN_RATIO_CONJUGATE",
    "VIEW_MODES",
    "ViewMode",
    "class_lut",
    "instance_lut",
    "fold_instance_ids",
    "heat_lut",
    "quantize",
    "outline_mask",
    "level_shape",
    "max_level",
    "level_for_zoom",
    "downsample_region",
    "downsample",
    "build_pyramid",
    "view_arrays",
]

GOLDEN_RATIO_CONJUGATE = 0.618033988749895
class ViewMode(Enum):
    """How a label layer is drawn (see :func:`view_arrays`)."""

    SEMANTIC = "semantic"
    INSTANCE = "instance"
    OUTLINES = "outlines"


VIEW_MODES = tuple(ViewMode)


def class_lut(class_table: "ClassTable", hidden: Iterable[int] = (), ignore_color=(0, 0, 0, 0),
              size: int = 256) -> np.ndarray:
    """RGBA lookup table for a semantic mask, with some classes hidden.

    Parameters
    ----------
    class_table : ClassTable
        Source of the class colours.
    hidden : iterable of int
        Class ids drawn fully transparent.
    ignore_color : sequence of 4 ints
        Colour of the table's ignore index.
    size : int
        Number of entries (256 for uint8 masks).

    Returns
    -------
    numpy.ndarray
        ``(size, 4)`` uint8; ids ``>= C`` other than the ignore index are transparent.
    """
    lut = class_table.lut(size=size, ignore_color=ignore_color)
    for class_id in hidden:
        if 0 <= class_id < size:
            lut[class_id] = 0
    return lut


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (all in 0-1) -> RGB uint8, shape ``(n, 3)``."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,), dtype=np.float64)
    for k, (r, g, b) in enumerate(choices):
        sel = i == k
        rgb[sel, 0], rgb[sel, 1], rgb[sel, 2] = r[sel], g[sel], b[sel]
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def instance_lut(n: int = 256, alpha: int = 255) -> np.ndarray:
    """Distinct colours for instance ids: a golden-ratio walk around the hue circle.

    Consecutive ids land far apart in hue; saturation and value cycle slowly so that ids whose hues
    come close again still differ.

    Parameters
    ----------
    n : int
        Number of entries (256 for uint8 id maps, 65536 for :func:`fold_instance_ids` output).
    alpha : int
        Opacity of every instance colour.

    Returns
    -------
    numpy.ndarray
        ``(n, 4)`` uint8; entry 0 (no instance) is transparent.
    """
    ids = np.arange(n, dtype=np.float64)
    hue = (ids * GOLDEN_RATIO_CONJUGATE) % 1.0
    sat = 0.65 + 0.35 * ((ids * 0.37) % 1.0)
    val = 0.75 + 0.25 * ((ids * 0.23) % 1.0)
    lut = np.empty((n, 4), dtype=np.uint8)
    lut[:, :3] = _hsv_to_rgb(hue, sat, val)
    lut[:, 3] = alpha
    lut[0] = 0
    return lut


def fold_instance_ids(ids: np.ndarray) -> np.ndarray:
    """Map instance ids onto a dtype a LUT can index: uint8 when max id <= 255, else uint16.

    Ids above 65535 wrap to ``(id - 1) % 65535 + 1`` so they keep a non-zero colour; 0 stays 0.
    """
    ids = np.asarray(ids)
    top = int(ids.max()) if ids.size else 0
    if top <= 255:
        return ids.astype(np.uint8, copy=False)
    if top <= 65535:
        return ids.astype(np.uint16, copy=False)
    folded = (ids.astype(np.int64) - 1) % 65535 + 1
    folded[ids == 0] = 0
    return folded.astype(np.uint16)


def heat_lut(name: str = "viridis", alpha: int = 255) -> np.ndarray:
    """A perceptual colour map as a ``(256, 4)`` RGBA LUT for uint8-quantised scalar maps.

    Parameters
    ----------
    name : {'viridis', 'magma', 'gray'}
    alpha : int
        Opacity of every entry.
    """
    ramp = np.arange(256, dtype=np.uint8).reshape(-1, 1)
    if name == "gray":
        rgb = np.repeat(ramp, 3, axis=1)
    else:
        maps = {"viridis": cv2.COLORMAP_VIRIDIS, "magma": cv2.COLORMAP_MAGMA}
        if name not in maps:
            raise ValueError(f"unknown heat map {name!r}; expected one of {sorted(maps) + ['gray']}")
        rgb = cv2.applyColorMap(ramp, maps[name]).reshape(256, 3)[:, ::-1]
    lut = np.empty((256, 4), dtype=np.uint8)
    lut[:, :3] = rgb
    lut[:, 3] = alpha
    return lut


def quantize(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Scale a float map linearly so ``vmin -> 0`` and ``vmax -> 255``; NaN -> 0. Returns uint8."""
    values = np.asarray(values, dtype=np.float32)
    span = float(vmax - vmin) or 1.0
    scaled = (values - vmin) * (255.0 / span)
    np.nan_to_num(scaled, copy=False, nan=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def outline_mask(labels: np.ndarray, rect: tuple[int, int, int, int] | None = None,
                 exclude: int | None = None) -> np.ndarray:
    """Pixels that differ from at least one of their 4 neighbours.

    Parameters
    ----------
    labels : numpy.ndarray
        HxW integer map (class ids or instance ids).
    rect : (x, y, w, h), optional
        Compute only this sub-rectangle (read with a 1-pixel margin, so the result equals the same
        window of the full-image answer). Cost O(w * h).
    exclude : int, optional
        Pixels of this value are never outline (e.g. 0 = no instance, for inner outlines only).

    Returns
    -------
    numpy.ndarray
        bool, shape ``(h, w)`` of ``rect`` or of ``labels``. Image borders are not outlines.
    """
    height, width = labels.shape[:2]
    x, y, w, h = rect if rect is not None else (0, 0, width, height)
    x0, y0 = max(0, x - 1), max(0, y - 1)
    x1, y1 = min(width, x + w + 1), min(height, y + h + 1)
    win = labels[y0:y1, x0:x1]
    edge = np.zeros(win.shape, dtype=bool)
    horizontal = win[:, 1:] != win[:, :-1]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    vertical = win[1:, :] != win[:-1, :]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    if exclude is not None:
        edge &= win != exclude
    return edge[y - y0:y - y0 + h, x - x0:x - x0 + w]


def level_shape(shape: tuple[int, ...], level: int) -> tuple[int, int]:
    """(height, width) of pyramid level ``level`` of an array of ``shape``."""
    f = 1 << level
    return -(-shape[0] // f), -(-shape[1] // f)


def max_level(shape: tuple[int, ...], tile: int = 256) -> int:
    """The coarsest useful level: the one where the whole image fits in one ``tile``-sized square."""
    longest = max(shape[0], shape[1], 1)
    return max(0, math.ceil(math.log2(longest / tile))) if longest > tile else 0


def level_for_zoom(zoom: float, top: int) -> int:
    """Pyramid level to draw at ``zoom`` (screen px per image px): the coarsest still >= 1:1."""
    if zoom >= 1.0 or zoom <= 0:
        return 0
    return int(min(top, math.floor(math.log2(1.0 / zoom) + 0.5)))


def downsample_region(array: np.ndarray, level: int, x0: int, y0: int, x1: int, y1: int,
                      labels: bool = False) -> np.ndarray:
    """Rectangle ``[x0, x1) x [y0, y1)`` of pyramid level ``level``, computed from full resolution.

    Labels take the top-left pixel of each ``f x f`` block (nearest; no invented ids). Images take the
    mean of the 2 x 2 samples at offsets ``0`` and ``f/2`` inside each block (INTER_AREA on a strided
    sample): exact area averaging at level 1, and O(output) at any level, which keeps a zoomed-out tile
    of a 20000 px image as cheap as a zoomed-in one. Every level pixel depends only on its own block, so
    any sub-rectangle equals the same window of the whole level.

    Returns
    -------
    numpy.ndarray
        C-contiguous, shape ``(y1 - y0, x1 - x0[, channels])``, dtype of ``array``.
    """
    if level == 0:
        return np.ascontiguousarray(array[y0:y1, x0:x1])
    f = 1 << level
    height, width = array.shape[:2]
    sx1, sy1 = min(width, x1 * f), min(height, y1 * f)
    if labels:
        return np.ascontiguousarray(array[y0 * f:sy1:f, x0 * f:sx1:f])
    step = f >> 1
    sample = np.ascontiguousarray(array[y0 * f:sy1:step, x0 * f:sx1:step])
    out_w, out_h = x1 - x0, y1 - y0
    pad_y, pad_x = 2 * out_h - sample.shape[0], 2 * out_w - sample.shape[1]
    if pad_x or pad_y:  # odd sample count at the right / bottom image edge: repeat the last sample
        sample = cv2.copyMakeBorder(sample, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
    out = cv2.resize(sample, (out_w, out_h), interpolation=cv2.INTER_AREA)
    if out.ndim < array.ndim:  # cv2 drops a trailing channel axis of size 1
        out = out.reshape(out_h, out_w, -1)
    return out


def downsample(array: np.ndarray, factor: int, labels: bool = False) -> np.ndarray:
    """The whole array at a power-of-two ``factor`` (see :func:`downsample_region`)."""
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"factor must be a power of two, got {factor}")
    level = factor.bit_length() - 1
    h, w = level_shape(array.shape, level)
    return downsample_region(array, level, 0, 0, w, h, labels=labels)


def build_pyramid(array: np.ndarray, labels: bool = False, min_size: int = 256) -> list[np.ndarray]:
    """``[array, level 1, level 2, ...]`` down to the level whose longest side is <= ``min_size``.

    Each level halves the previous one (exact 2 x 2 means for images, nearest for labels); for
    thumbnails and exports. The canvas instead computes tiles lazily with :func:`downsample_region`.
    """
    levels = [array]
    while max(levels[-1].shape[:2]) > min_size:
        levels.append(downsample(levels[-1], 2, labels=labels))
    return levels


def _transparent_code(class_table: "ClassTable") -> int | None:
    """A uint8 value the class LUT draws transparent (an id past the classes, not the ignore index)."""
    for value in range(class_table.num_classes, 256):
        if value != class_table.ignore_index:
            return value
    return None


def view_arrays(mode: ViewMode | str, semantic: np.ndarray | None, class_table: "ClassTable",
                instances: "InstanceMask | None" = None, hidden: Iterable[int] = (),
                ignore_color=(0, 0, 0, 0)) -> tuple[np.ndarray | None, np.ndarray | None]:
    """What to hand the canvas for one label layer in a view mode.

    Parameters
    ----------
    mode : ViewMode, or its value ('semantic', 'instance', 'outlines')
        ``semantic``: fill every pixel with its class colour. ``instance``: one distinct colour per
        instance (from ``instances``, else connected components of ``semantic`` per class).
        ``outlines``: only the borders of regions (of instances when given, else of classes), in the
        class colour, so the image stays visible.
    semantic : numpy.ndarray or None
        HxW class ids; ``None`` gives ``(None, None)`` (nothing to show).
    class_table : ClassTable
    instances : InstanceMask, optional
    hidden : iterable of int
        Class ids not drawn (in every mode).

    Returns
    -------
    (array, lut)
        ``array`` is the mask itself in semantic mode (no copy), a new array otherwise.
    """
    try:
        mode = ViewMode(mode)
    except ValueError:
        raise ValueError(f"unknown view mode {mode!r}; expected one of {[m.value for m in ViewMode]}") from None
    if semantic is None and instances is None:
        return None, None
    hidden = set(hidden)
    lut = class_lut(class_table, hidden, ignore_color=ignore_color,
                    size=256 if semantic is None or semantic.dtype == np.uint8 else 65536)
    if mode is ViewMode.SEMANTIC:
        return semantic, lut
    derived = instances is None   # from the semantic mask: outlines need no component labelling
    if derived and mode is ViewMode.INSTANCE:
        from segstudio.core.io.masks import semantic_to_instances
        instances = semantic_to_instances(semantic, ignore_index=class_table.ignore_index)
    if semantic is None:
        from segstudio.core.io.masks import instances_to_semantic
        semantic = instances_to_semantic(instances)
    if mode is ViewMode.INSTANCE:
        ids = fold_instance_ids(instances.ids)
        colours = instance_lut(256 if ids.dtype == np.uint8 else 65536)
        if hidden:
            ids = np.where(np.isin(semantic, list(hidden)), 0, ids).astype(ids.dtype)
        return ids, colours
    fill = outline_fill(class_table, semantic.dtype)
    lut[fill] = 0
    if derived:
        return semantic_outlines(semantic, class_table), lut
    edge = outline_mask(instances.ids, exclude=0) if instances.ids.any() else outline_mask(semantic)
    return np.where(edge, semantic, fill).astype(semantic.dtype), lut


def outline_fill(class_table: "ClassTable", dtype) -> int:
    """The value outline arrays hold off the outlines: one the class LUT draws transparent."""
    fill = _transparent_code(class_table) if np.dtype(dtype) == np.uint8 else None
    return fill if fill is not None else (256 if np.dtype(dtype) == np.uint8 else 65536) - 1


def semantic_outlines(semantic: np.ndarray, class_table: "ClassTable",
                      rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Class borders of a semantic mask, as the outlines view draws them; O(rect).

    A pixel shows its class where a 4-neighbour has another class — exactly the borders of the
    connected components per class, without labelling them — and background and ignored pixels
    never show. Only ``rect`` (x, y, w, h) is computed when given, so an edit redraws just its
    neighbourhood.
    """
    height, width = semantic.shape
    x, y, w, h = rect if rect is not None else (0, 0, width, height)
    window = semantic[y:y + h, x:x + w]
    edge = outline_mask(semantic, (x, y, w, h))
    edge &= (window != 0) & (window != class_table.ignore_index)
    return np.where(edge, window, outline_fill(class_table, semantic.dtype)).astype(semantic.dtype)
