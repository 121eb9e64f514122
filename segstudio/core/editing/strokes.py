"""Stroke bookkeeping for the document: which pixels an edit may change, and merging dabs into one atom.

Kept apart from :mod:`segstudio.core.editing.document` so that the rules (protect classes, paint only over a
class) and the merge can be read and tested on their own; the document orchestrates them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from segstudio.core.editing import tools
from segstudio.core.editing.history import EditAtom

__all__ = ["PaintRules", "Stroke"]

Bbox = tuple[int, int, int, int]


class PaintRules:
    """Which pixels under a tool an edit may change.

    Parameters
    ----------
    dtype : numpy dtype
        Label dtype; uint8/uint16 labels get a lookup table for ``protect``.
    protect : iterable of int, optional
        Class ids never overwritten.
    only_over : int, optional
        Paint only over pixels currently of this class.
    """

    def __init__(self, dtype: np.dtype, protect: Iterable[int] | None = None, only_over: int | None = None):
        self.only_over = None if only_over is None else int(only_over)
        self._protect: np.ndarray | None = None
        if protect:
            ids = np.unique(np.asarray(list(protect), dtype=np.int64))
            if np.dtype(dtype) in (np.uint8, np.uint16):
                lut = np.zeros(int(np.iinfo(dtype).max) + 1, dtype=bool)
                lut[ids[(ids >= 0) & (ids < lut.size)]] = True
                self._protect = lut
            else:
                self._protect = ids

    def select(self, region: np.ndarray, mask: np.ndarray, target: np.ndarray | int) -> np.ndarray:
        """Pixels of ``mask`` whose label really changes to ``target`` under these rules.

        Parameters
        ----------
        region : np.ndarray
            Current labels under the tool's bounding box.
        mask : np.ndarray
            The tool's footprint (bool, same shape).
        target : int or np.ndarray
            New label: one value, or per pixel (the prediction, for the accept brush).
        """
        sel = mask & (region != target)
        if self._protect is not None:
            hit = self._protect[region] if self._protect.dtype == bool else np.isin(region, self._protect)
            sel &= ~hit
        if self.only_over is not None:
            sel &= region == self.only_over
        return sel


@dataclass
class Stroke:
    """A stroke in progress: its settings and the pieces (dabs, line segments) painted so far."""

    value: int | None
    source: str | None
    rules: PaintRules
    scores_before: tuple[int, float | None, float | None] | None
    pieces: list[tuple[Bbox, np.ndarray, np.ndarray]] = field(default_factory=list)
    last: tuple[float, float] | None = None

    def add(self, box: Bbox, changed: np.ndarray, old: np.ndarray) -> None:
        """Record one painted piece: its box, changed pixels and their values before."""
        self.pieces.append((box, changed, old))

    def merge(self, labels: np.ndarray) -> EditAtom | None:
        """The pieces as one atom over their union box; ``None`` if nothing changed.

        ``labels`` is the layer as painted (the new values are read from it). Each pixel normally
        changes once per stroke; should one change twice, its first old value is the one undo restores.
        """
        if not self.pieces:
            return None
        box = tools.bbox_union([p[0] for p in self.pieces])
        x, y, w, h = box
        changed = np.zeros((h, w), dtype=bool)
        old_full = np.zeros((h, w), dtype=labels.dtype)
        for (px, py, pw, ph), sel, old in self.pieces:
            sub = (slice(py - y, py - y + ph), slice(px - x, px - x + pw))
            fresh = sel & ~changed[sub]
            old_full[sub][fresh] = old[fresh[sel]]
            changed[sub] |= sel
        return EditAtom(box, changed, old_full[changed], labels[y:y + h, x:x + w][changed])
