"""The misclassified-pixel hatch as an indexed layer (uint16 codes + an RGBA lookup table).

``errormap.pair_tint`` paints the same hatch as a full RGBA image; building that for a 2048x2048
mask costs more than the rest of an image switch together. Here each misclassified pixel gets a code
``1 + band * C * C + gt * C + pred`` (``band`` is the 45-degree stripe, 0 or 1) and the colours live in
a ``1 + 2 * C * C`` entry LUT, the canvas's fast path for label layers. The stripe pattern of a shape is
cached, so a full build is a few vectorised passes over the mask and a stroke's update is O(bbox).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from segstudio.core.evaluation.errormap import MISCLASSIFIED

__all__ = ["MAX_PAIR_CLASSES", "pair_codes", "pair_lut"]

STRIPE = 4
MAX_PAIR_CLASSES = 180          # 1 + 2 * 180**2 codes still fit uint16


@lru_cache(maxsize=4)
def _band_offsets(height: int, width: int, num_classes: int, stripe: int) -> np.ndarray:
    """``1 + band * C * C`` for every pixel of an image of this size (read-only, cached)."""
    ys = np.arange(height, dtype=np.int64)[:, None]
    xs = np.arange(width, dtype=np.int64)[None, :]
    band = ((xs + ys) // stripe) % 2
    offsets = (1 + band * num_classes * num_classes).astype(np.uint16)
    offsets.flags.writeable = False
    return offsets


def pair_codes(error_codes: np.ndarray, gt: np.ndarray, pred: np.ndarray, num_classes: int,
               origin: tuple[int, int] = (0, 0), full_shape: tuple[int, int] | None = None,
               stripe: int = STRIPE) -> np.ndarray:
    """Hatch codes for the misclassified pixels of a mask or of a sub-rectangle of it.

    Parameters
    ----------
    error_codes, gt, pred : numpy.ndarray
        Same-shape 2-D arrays: ``errormap.error_codes`` output and the class ids it came from.
    num_classes : int
        ``C``; at most :data:`MAX_PAIR_CLASSES`.
    origin : (x, y)
        Position of ``[0, 0]`` in the whole image, so sub-rectangles line up with the stripes.
    full_shape : (height, width), optional
        The whole image's shape (the cached stripe pattern's); defaults to the arrays' shape.

    Returns
    -------
    numpy.ndarray
        uint16, 0 where the pixel is not misclassified; index into :func:`pair_lut`.
    """
    if num_classes > MAX_PAIR_CLASSES:
        raise ValueError(f"pair codes support at most {MAX_PAIR_CLASSES} classes, got {num_classes}")
    h, w = error_codes.shape
    full_h, full_w = full_shape if full_shape is not None else (h, w)
    x, y = origin
    offsets = _band_offsets(full_h, full_w, num_classes, stripe)[y:y + h, x:x + w]
    pair = gt.astype(np.uint16) * np.uint16(num_classes)
    pair += pred
    pair += offsets
    wrong = error_codes == MISCLASSIFIED
    return np.where(wrong, pair, np.uint16(0))


def pair_lut(class_table, alpha: int = 220) -> np.ndarray:
    """``(1 + 2 * C * C, 4)`` uint8 RGBA: code ``1 + band*C*C + g*C + p`` -> gt colour (band 0) or
    predicted colour (band 1), as ``errormap.pair_tint`` paints them."""
    colors = np.asarray(class_table.colors, dtype=np.uint8)
    c = colors.shape[0]
    g, p = np.divmod(np.arange(c * c), c)
    lut = np.zeros((1 + 2 * c * c, 4), dtype=np.uint8)
    lut[1:1 + c * c, :3] = colors[g, :3]
    lut[1 + c * c:, :3] = colors[p, :3]
    lut[1:, 3] = alpha
    return lut
