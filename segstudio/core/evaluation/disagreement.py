"""Where two prediction sources disagree about the labels: the A-vs-B disagreement map.

Every pixel gets one :class:`Disagreement` code from the ground truth and the two predictions:

==========================  ==================================================================
``BOTH_RIGHT``              A and B both predict the label
``B_FIXES``                 A is wrong, B is right (green in the GUI)
``B_BREAKS``                A is right, B is wrong (red in the GUI)
``BOTH_WRONG_SAME``         both wrong, and they predict the same class
``BOTH_WRONG_DIFFERENT``    both wrong, with different classes
``IGNORED``                 the label is the ignore index (or, with ``num_classes``, not a class)
==========================  ==================================================================

A prediction equal to the ignore index or outside the class table is *wrong* here (it is not the
label); the confusion matrices skip such pixels instead, so the per-pixel counts and the metrics agree
whenever predictions hold valid class ids only, which is what models and checked prediction folders give.

Each code depends on one pixel's (gt, a, b) only, so after a label edit :func:`update_codes` recodes the
edit's bounding box and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable

import cv2
import numpy as np

from segstudio.core.errors import MaskSizeMismatch

__all__ = ["Disagreement", "DisagreementRegion", "COUNT_KEYS", "disagreement_codes", "disagreement_counts",
           "disagreement_regions", "update_codes"]


class Disagreement(IntEnum):
    """Per-pixel code of the A-vs-B disagreement map (uint8 values)."""

    BOTH_RIGHT = 0
    B_FIXES = 1               # A wrong, B right
    B_BREAKS = 2              # A right, B wrong
    BOTH_WRONG_SAME = 3
    BOTH_WRONG_DIFFERENT = 4
    IGNORED = 5


# Report keys, in code order.
COUNT_KEYS = ("both_right", "b_fixes", "b_breaks", "both_wrong_same", "both_wrong_different", "ignored")

# Code from (a_ok + 2*b_ok + 4*same); the impossible combinations (a right and b right but not the
# same, or one right and both the same) never occur and are filled with the nearest meaning.
_LUT = np.array([Disagreement.BOTH_WRONG_DIFFERENT, Disagreement.B_BREAKS, Disagreement.B_FIXES,
                 Disagreement.BOTH_RIGHT, Disagreement.BOTH_WRONG_SAME, Disagreement.B_BREAKS,
                 Disagreement.B_FIXES, Disagreement.BOTH_RIGHT], dtype=np.uint8)


@dataclass(frozen=True)
class DisagreementRegion:
    """One connected region of a single disagreement kind.

    Attributes
    ----------
    kind : Disagreement
    bbox : tuple of int
        ``(x, y, w, h)`` in image pixels.
    area : int
        Pixels in the region.
    centroid : tuple of float
        ``(x, y)`` centre of mass, for "zoom to region".
    """

    kind: Disagreement
    bbox: tuple[int, int, int, int]
    area: int
    centroid: tuple[float, float]


def _check(gt: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> None:
    if not (gt.shape == pred_a.shape == pred_b.shape) or gt.ndim != 2:
        raise MaskSizeMismatch(None, f"labels {gt.shape}, prediction A {pred_a.shape} and prediction B "
                                     f"{pred_b.shape} must be the same HxW")


def _codes(gt: np.ndarray, a: np.ndarray, b: np.ndarray, ignore_index: int,
           num_classes: int | None) -> np.ndarray:
    a_ok = a == gt
    b_ok = b == gt
    index = a_ok.view(np.uint8) + 2 * b_ok.view(np.uint8) + 4 * (a == b).view(np.uint8)
    codes = _LUT[index]
    ignored = gt == ignore_index
    if num_classes is not None:
        ignored |= (gt < 0) | (gt >= num_classes)
    codes[ignored] = Disagreement.IGNORED
    return codes


def disagreement_codes(gt: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, ignore_index: int = 255,
                       num_classes: int | None = None) -> np.ndarray:
    """HxW uint8 :class:`Disagreement` codes of predictions A and B against the labels ``gt``.

    Parameters
    ----------
    gt, pred_a, pred_b : ndarray
        HxW integer class ids, same shape.
    ignore_index : int
        Label value that is not scored (code ``IGNORED``).
    num_classes : int, optional
        When given, labels outside ``0..num_classes-1`` are ``IGNORED`` too.
    """
    gt, pred_a, pred_b = np.asarray(gt), np.asarray(pred_a), np.asarray(pred_b)
    _check(gt, pred_a, pred_b)
    return _codes(gt, pred_a, pred_b, ignore_index, num_classes)


def update_codes(codes: np.ndarray, gt: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
                 ignore_index: int, bbox: tuple[int, int, int, int], num_classes: int | None = None) -> None:
    """Recode ``codes`` in place inside ``bbox`` ``(x, y, w, h)`` only: O(edit) after a stroke.

    ``gt``, ``pred_a`` and ``pred_b`` are the full images (the current labels); only their
    ``bbox`` window is read.
    """
    x, y, w, h = (int(v) for v in bbox)
    if w <= 0 or h <= 0:
        return
    rows, cols = slice(max(y, 0), y + h), slice(max(x, 0), x + w)
    codes[rows, cols] = _codes(np.asarray(gt)[rows, cols], np.asarray(pred_a)[rows, cols],
                               np.asarray(pred_b)[rows, cols], ignore_index, num_classes)


def disagreement_counts(codes: np.ndarray) -> dict[str, int]:
    """Pixels of each kind: keys ``both_right, b_fixes, b_breaks, both_wrong_same, both_wrong_different,
    ignored`` (see :data:`COUNT_KEYS`)."""
    counts = np.bincount(np.asarray(codes, dtype=np.uint8).ravel(), minlength=len(COUNT_KEYS))
    return {key: int(counts[i]) for i, key in enumerate(COUNT_KEYS)}


def disagreement_regions(codes: np.ndarray,
                         kinds: Iterable[Disagreement] = (Disagreement.B_BREAKS, Disagreement.B_FIXES),
                         min_area: int = 1) -> list[DisagreementRegion]:
    """Connected regions (8-connected) of the given kinds, at least ``min_area`` pixels, largest first.

    Ties in area keep the order of ``kinds`` then the raster order of the regions, so the list is
    deterministic.
    """
    codes = np.asarray(codes)
    regions: list[DisagreementRegion] = []
    for kind in kinds:
        kind = Disagreement(kind)
        mask = (codes == kind).view(np.uint8)
        if not mask.any():
            continue
        n, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for label in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[label])
            if area >= min_area:
                regions.append(DisagreementRegion(kind, (x, y, w, h), area,
                                                  (float(centroids[label, 0]), float(centroids[label, 1]))))
    regions.sort(key=lambda r: -r.area)  # stable: ties keep kind and raster order
    return regions
