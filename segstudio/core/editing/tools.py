"""Pure raster helpers behind the editing tools: brush dabs, stroke segments, flood fill, polygons.

Every helper works on a bounding box and returns ``(bbox, mask)`` where ``bbox`` is ``(x, y, w, h)``
clipped to the image and ``mask`` is an ``(h, w)`` bool array, so a caller touches only the pixels
under the tool. ``None`` means the shape lies entirely outside the image.

Brush geometry
--------------
A dab centred on image coordinates ``(cx, cy)`` is anchored on pixel ``(floor(cx), floor(cy))`` and
covers every pixel whose integer offset ``(dx, dy)`` from it satisfies ``dx**2 + dy**2 <= r**2``.
A stroke segment between two dabs covers every pixel within distance ``r`` of the segment joining the
two anchor pixels (a capsule), so a fast drag leaves no gaps between mouse events. The capsule test
uses integer arithmetic, so pixels exactly on the rim are decided the same way every time.
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Iterator, Sequence

import cv2
import numpy as np

__all__ = [
    "Bbox",
    "disk_offsets",
    "disk_mask",
    "dab_mask",
    "capsule_mask",
    "capsule_pieces",
    "flood_region",
    "polygon_mask",
    "bbox_union",
]

Bbox = tuple[int, int, int, int]

# A long segment is split into pieces this many radii long, so each piece's bounding box stays
# O(r^2) instead of the O(length^2) box of a long diagonal drag.
_PIECE_RADII = 4


@lru_cache(maxsize=128)
def disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets ``(dy, dx)`` of the pixels of a disk of the given radius.

    Parameters
    ----------
    radius : float
        Brush radius in pixels, ``>= 0``; 0 is a single pixel.

    Returns
    -------
    dy, dx : np.ndarray
        1-D int64 arrays (read-only, cached per radius) with ``dx**2 + dy**2 <= radius**2``.
    """
    mask = disk_mask(radius)
    ext = mask.shape[0] // 2
    dy, dx = np.nonzero(mask)
    dy = (dy - ext).astype(np.int64)
    dx = (dx - ext).astype(np.int64)
    dy.flags.writeable = False
    dx.flags.writeable = False
    return dy, dx


@lru_cache(maxsize=128)
def disk_mask(radius: float) -> np.ndarray:
    """The ``(2e+1, 2e+1)`` bool footprint of a disk, ``e = floor(radius)``, centre in the middle.

    The array is cached and read-only; copy it before writing.
    """
    if radius < 0 or not math.isfinite(radius):
        raise ValueError(f"brush radius must be a finite number >= 0, got {radius}")
    ext = int(math.floor(radius))
    d = np.arange(-ext, ext + 1, dtype=np.int64)
    mask = (d[:, None] ** 2 + d[None, :] ** 2) <= radius * radius
    mask.flags.writeable = False
    return mask


def _clip(x0: int, y0: int, x1: int, y1: int, shape: Sequence[int]) -> Bbox | None:
    """Clip the half-open box ``[x0, x1) x [y0, y1)`` to an image of ``shape`` (h, w, ...)."""
    h, w = int(shape[0]), int(shape[1])
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    return cx0, cy0, cx1 - cx0, cy1 - cy0


def dab_mask(cx: float, cy: float, radius: float, shape: Sequence[int]
             ) -> tuple[Bbox, np.ndarray] | None:
    """Pixels covered by one round brush dab.

    Parameters
    ----------
    cx, cy : float
        Image coordinates of the dab centre (pixel ``(floor(cx), floor(cy))`` is the anchor).
    radius : float
        Brush radius in pixels.
    shape : sequence of int
        Image shape ``(h, w, ...)``.

    Returns
    -------
    (bbox, mask) or None
        ``mask`` is a view into the cached disk footprint (read-only) when the dab lies fully inside the
        image, a clipped view otherwise; ``None`` when it misses the image entirely.
    """
    foot = disk_mask(radius)
    ext = foot.shape[0] // 2
    ax, ay = int(math.floor(cx)), int(math.floor(cy))
    box = _clip(ax - ext, ay - ext, ax + ext + 1, ay + ext + 1, shape)
    if box is None:
        return None
    x, y, w, h = box
    fx, fy = x - (ax - ext), y - (ay - ext)
    return box, foot[fy:fy + h, fx:fx + w]


def _capsule_in_box(ax: int, ay: int, bx: int, by: int, radius: float, box: Bbox) -> np.ndarray:
    """Bool mask of pixels of ``box`` within ``radius`` of segment a-b (integer anchor pixels)."""
    x, y, w, h = box
    px = np.arange(x, x + w, dtype=np.int64)[None, :] - ax
    py = np.arange(y, y + h, dtype=np.int64)[:, None] - ay
    ux, uy = bx - ax, by - ay
    r2 = radius * radius
    length2 = ux * ux + uy * uy
    near_a = px * px + py * py <= r2
    if length2 == 0:
        return near_a
    qx, qy = px - ux, py - uy
    near_b = qx * qx + qy * qy <= r2
    dot = px * ux + py * uy
    cross = px * uy - py * ux
    # Perpendicular distance^2 = cross^2 / length2, compared without division so the rim is exact.
    # The float product r2 * length2 can round up onto an integer cross^2 (r = sqrt(16.2), length2 = 5
    # gives 81.0), so compare with the floor of the exact product instead.
    limit = math.floor(Fraction(r2) * length2)
    beside = (dot >= 0) & (dot <= length2) & (cross * cross <= limit)
    return near_a | near_b | beside


def capsule_pieces(x0: float, y0: float, x1: float, y1: float, radius: float, shape: Sequence[int]
                   ) -> Iterator[tuple[Bbox, np.ndarray]]:
    """Cover the stroke segment between two dab centres with capsules, piece by piece.

    The union of the yielded masks is exactly the set of pixels within ``radius`` of the segment
    joining the anchor pixels of ``(x0, y0)`` and ``(x1, y1)``. Long segments are split into pieces
    about ``4 * radius`` long so that the work stays proportional to the painted area.

    Parameters
    ----------
    x0, y0, x1, y1 : float
        Image coordinates of the two ends.
    radius : float
        Brush radius in pixels.
    shape : sequence of int
        Image shape ``(h, w, ...)``.

    Yields
    ------
    (bbox, mask)
        Clipped pieces; pieces that miss the image are skipped. Consecutive pieces overlap at their
        shared end disk.
    """
    if radius < 0 or not math.isfinite(radius):
        raise ValueError(f"brush radius must be a finite number >= 0, got {radius}")
    ax, ay = int(math.floor(x0)), int(math.floor(y0))
    bx, by = int(math.floor(x1)), int(math.floor(y1))
    ext = int(math.floor(radius))
    length = math.hypot(bx - ax, by - ay)
    n = max(1, math.ceil(length / max(_PIECE_RADII * radius, 8.0)))
    prev = (ax, ay)
    for i in range(1, n + 1):
        cur = (bx, by) if i == n else (ax + round((bx - ax) * i / n), ay + round((by - ay) * i / n))
        # Split points are rounded to pixels, so each piece's box is padded by one pixel beyond the
        # radius: the exact test against the whole segment, run inside the union of the boxes, then
        # still finds every pixel of the capsule.
        lo_x, hi_x = min(prev[0], cur[0]), max(prev[0], cur[0])
        lo_y, hi_y = min(prev[1], cur[1]), max(prev[1], cur[1])
        box = _clip(lo_x - ext - 1, lo_y - ext - 1, hi_x + ext + 2, hi_y + ext + 2, shape)
        if box is not None:
            mask = _capsule_in_box(ax, ay, bx, by, radius, box)
            tight = _tighten(box, mask)
            if tight is not None:
                yield tight
        prev = cur


def _tighten(box: Bbox, mask: np.ndarray) -> tuple[Bbox, np.ndarray] | None:
    """Crop ``mask`` (and its box) to its set pixels; ``None`` when it has none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    x, y = box[0], box[1]
    return (x + c0, y + r0, c1 - c0, r1 - r0), mask[r0:r1, c0:c1]


def capsule_mask(x0: float, y0: float, x1: float, y1: float, radius: float, shape: Sequence[int]
                 ) -> tuple[Bbox, np.ndarray] | None:
    """The whole capsule of a segment as one ``(bbox, mask)``; see :func:`capsule_pieces`."""
    pieces = list(capsule_pieces(x0, y0, x1, y1, radius, shape))
    if not pieces:
        return None
    box = bbox_union([b for b, _ in pieces])
    x, y, w, h = box
    out = np.zeros((h, w), dtype=bool)
    for (px, py, pw, ph), m in pieces:
        out[py - y:py - y + ph, px - x:px - x + pw] |= m
    return box, out


def bbox_union(boxes: Sequence[Bbox]) -> Bbox:
    """Smallest ``(x, y, w, h)`` containing all ``boxes`` (at least one)."""
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def flood_region(labels: np.ndarray, x: float, y: float) -> tuple[Bbox, np.ndarray] | None:
    """The 4-connected region of equal labels containing pixel ``(x, y)``.

    Parameters
    ----------
    labels : np.ndarray
        ``(H, W)`` integer label image (uint8 fast path; other integer types are compared exactly).
    x, y : float
        Image coordinates of the seed.

    Returns
    -------
    (bbox, mask) or None
        ``None`` when the seed is outside the image. Cost is proportional to the region plus one
        ``(H+2) x (W+2)`` scratch mask that ``cv2.floodFill`` requires.
    """
    h, w = labels.shape[:2]
    sx, sy = int(math.floor(x)), int(math.floor(y))
    if not (0 <= sx < w and 0 <= sy < h):
        return None
    if labels.dtype == np.uint8:
        src = labels
    else:
        # floodFill takes 8-bit or float32 images; float32 holds every uint16 id exactly.
        src = labels.astype(np.float32)
    src = np.ascontiguousarray(src)
    scratch = np.zeros((h + 2, w + 2), dtype=np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    _, _, _, rect = cv2.floodFill(src, scratch, (sx, sy), 0, 0, 0, flags)
    rx, ry, rw, rh = (int(v) for v in rect)
    mask = scratch[ry + 1:ry + 1 + rh, rx + 1:rx + 1 + rw].astype(bool)
    return (rx, ry, rw, rh), mask


def polygon_mask(points: Sequence[Sequence[float]], shape: Sequence[int]
                 ) -> tuple[Bbox, np.ndarray] | None:
    """Rasterise a closed polygon inside its own bounding box only.

    Parameters
    ----------
    points : sequence of (x, y)
        Vertices in image coordinates (rounded to the nearest pixel); at least three.
    shape : sequence of int
        Image shape ``(h, w, ...)``.

    Returns
    -------
    (bbox, mask) or None
        The filled polygon (``cv2.fillPoly`` rule, edges included) clipped to the image.
    """
    pts = np.rint(np.asarray(points, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
    if len(pts) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(pts)}")
    lo = pts.min(axis=0)
    hi = pts.max(axis=0)
    box = _clip(int(lo[0]), int(lo[1]), int(hi[0]) + 1, int(hi[1]) + 1, shape)
    if box is None:
        return None
    x, y, w, h = box
    canvas = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(canvas, [(pts - (x, y)).astype(np.int32)], 1)
    mask = canvas.view(bool)
    if not mask.any():
        return None
    return box, mask
