"""The misclassified-pixel hatch as an indexed layer (uint16 codes + an RGBA lookup table).

``errormap.pair_tint`` paints the same hatch as a full RGBA image; building that for a 2048x2048
mask costs more than the rest of an image switch together. Here each misclassified pixel gets a code
``1 + band * C * C + gt * C + pred`` (``band`` is the 45-degree stripe, 0 or 1) and the colours live in
a ``1 + 2 * C * C`` entry LUT, the canvas's fast path for label layers. Codes are computed for the
misclassified pixels only, so a full build costs one pass over the error codes and a stroke's update
is O(bbox).
"""
from __future__ import annotations

import numpy as np

from segstudio.core.evaluation.errormap import MISCLASSIFIED

__all__ = ["MAX_PAIR_CLASSES", "pair_codes", "pair_lut"]

STRIPE = 4
MAX_PAIR_CLASSES = 180          # 1 + 2 * 180**2 codes still fit uint16
_CHUNK_PIXELS = 1 << 20


def pair_codes(error_codes: np.ndarray, gt: np.ndarray, pred: np.ndarray, num_classes: int,
               origin: tuple[int, int] = (0, 0), stripe: int = STRIPE) -> np.ndarray:
    """Hatch codes for the misclassified pixels of a mask or of a sub-rectangle of it.

    Only the misclassified pixels are computed (usually a small share of the image), so no
    image-sized integer temporaries are made: at 4096² the former whole-image stripe pattern cost
    ~400 MB of int64 temporaries and half a second.

    Parameters
    ----------
    error_codes, gt, pred : numpy.ndarray
        Same-shape 2-D arrays (views of a larger image are fine): ``errormap.error_codes`` output
        and the class ids it came from.
    num_classes : int
        ``C``; at most :data:`MAX_PAIR_CLASSES`.
    origin : (x, y)
        Position of ``[0, 0]`` in the whole image, so sub-rectangles line up with the stripes.

    Returns
    -------
    numpy.ndarray
        uint16, 0 where the pixel is not misclassified; index into :func:`pair_lut`.
    """
    if num_classes > MAX_PAIR_CLASSES:
        raise ValueError(f"pair codes support at most {MAX_PAIR_CLASSES} classes, got {num_classes}")
    h, w = error_codes.shape
    out = np.zeros((h, w), dtype=np.uint16)
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    for top in range(0, h, rows):   # in bands, so the int64 temporaries stay a few MB at any size
        band_rows = slice(top, top + rows)
        where = np.flatnonzero(error_codes[band_rows] == MISCLASSIFIED)
        if not where.size:
            continue
        ys, xs = np.divmod(where, w)
        band = ((xs + origin[0] + ys + (top + origin[1])) // stripe) % 2
        codes = 1 + band * (num_classes * num_classes) + gt[band_rows].flat[where].astype(np.int64) * num_classes
        codes += pred[band_rows].flat[where]
        out[band_rows].flat[where] = codes
    return out


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
