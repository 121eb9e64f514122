"""The edit operations of an image document: strokes and region tools.

:class:`LabelEdits` is mixed into :class:`~segstudio.core.editing.document.ImageDocument`; it writes
pixels and hands each change to the document's ``_after_change`` (which carries it into the class
counts and every comparison, O(edit)) and emits the atom in a ``LABELS`` event. Kept apart so the
document module holds the state and this one the operations on it.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from segstudio.core.editing import tools
from segstudio.core.editing.events import Bbox, DocumentEvent, EventKind, StrokeError
from segstudio.core.editing.history import EditAtom
from segstudio.core.editing.strokes import PaintRules, Stroke
from segstudio.core.errors import MaskSizeMismatch

__all__ = ["LabelEdits"]


class LabelEdits:
    """Brush strokes, fills, polygons and region actions on the document's ground truth."""

    def _check_value(self, value: int) -> int:
        value = int(value)
        if not (0 <= value < self.num_classes or value == self.ignore_index):
            raise ValueError(f"class id {value} is not in the class table (0..{self.num_classes - 1}) "
                             f"nor the ignore index {self.ignore_index}")
        return value

    def _target(self, box: Bbox, value: int | None, source: str | None) -> np.ndarray | int:
        if source == "prediction":
            if self.pred is None:
                raise ValueError(f"{self.name}: no prediction to copy from")
            x, y, w, h = box
            return self.pred[y:y + h, x:x + w]
        return value

    def _write(self, box: Bbox, sel: np.ndarray, target: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """Write ``target`` at ``sel`` inside ``box``; returns ``(old, new)`` 1-D values."""
        x, y, w, h = box
        region = self.gt[y:y + h, x:x + w]
        old = region[sel]
        if isinstance(target, np.ndarray):
            new = target[sel].astype(self.gt.dtype, copy=False)
        else:
            new = np.full(old.size, target, dtype=self.gt.dtype)
        region[sel] = new
        return old, new

    def _edit_region(self, box: Bbox, mask: np.ndarray, value: int | None, source: str | None,
                     protect: Iterable[int] | None, only_over: int | None,
                     event_kind: EventKind = EventKind.LABELS) -> EditAtom | None:
        """One-shot edit of ``mask`` inside ``box``, recorded as one atom."""
        self._commit_pending()
        self._ensure_gt()
        before = self._scores(value)
        x, y, w, h = box
        region = self.gt[y:y + h, x:x + w]
        target = self._target(box, value, source)
        sel = PaintRules(self.gt.dtype, protect, only_over).select(region, mask, target)
        if not sel.any():
            return None
        old, new = self._write(box, sel, target)
        atom = self._after_change(box, sel, old, new)
        self._record(atom)
        self._emit(DocumentEvent(event_kind, None if event_kind is EventKind.RELOADED else box,
                                 self._delta(before), atom))
        return atom

    def _record(self, atom: EditAtom) -> None:
        self.history.push(atom)
        self.modified = True
        if self.journal is not None:
            self.journal.journal_commit(self.name, atom)

    # ------------------------------------------------------------------ strokes
    def begin_stroke(self, value: int | None = None, *, protect: Iterable[int] | None = None,
                     only_over: int | None = None, source: str | None = None) -> None:
        """Start a brush stroke.

        Parameters
        ----------
        value : int, optional
            Class id to paint (or the ignore index, to erase into "unlabelled"). Required unless
            ``source`` is given.
        protect : iterable of int, optional
            Class ids the stroke must not overwrite.
        only_over : int, optional
            Paint only over pixels currently of this class.
        source : {'prediction'}, optional
            Copy the prediction's labels under the brush instead of painting ``value``.

        Raises
        ------
        StrokeError
            If a stroke is already in progress.
        """
        if self._stroke is not None:
            raise StrokeError(f"{self.name}: a stroke is already in progress")
        if source not in (None, "prediction"):
            raise ValueError(f"unknown stroke source {source!r}")
        if source is None:
            if value is None:
                raise ValueError("a stroke needs a class value or source='prediction'")
            value = self._check_value(value)
        elif self.pred is None:
            raise ValueError(f"{self.name}: no prediction to copy from")
        self._ensure_gt()
        if source is not None:
            value = None
        self._stroke = Stroke(value, source, PaintRules(self.gt.dtype, protect, only_over),
                              self._scores(value))

    def _active(self) -> Stroke:
        if self._stroke is None:
            raise StrokeError(f"{self.name}: paint called without begin_stroke")
        return self._stroke

    def _paint_piece(self, stroke: Stroke, box: Bbox, mask: np.ndarray) -> None:
        x, y, w, h = box
        region = self.gt[y:y + h, x:x + w]
        target = self._target(box, stroke.value, stroke.source)
        sel = stroke.rules.select(region, mask, target)
        if not sel.any():
            return
        old, new = self._write(box, sel, target)
        piece = self._after_change(box, sel, old, new)
        stroke.add(box, sel, old)
        self.modified = True
        self._emit(DocumentEvent(EventKind.LABELS, box, self._delta(stroke.scores_before), piece))

    def paint_dab(self, cx: float, cy: float, radius: float) -> None:
        """Paint one round dab of the current stroke at image coordinates ``(cx, cy)``."""
        stroke = self._active()
        hit = tools.dab_mask(cx, cy, radius, self.shape)
        stroke.last = (cx, cy)
        if hit is not None:
            self._paint_piece(stroke, *hit)

    def paint_line(self, x0: float, y0: float, x1: float, y1: float, radius: float) -> None:
        """Paint every pixel within ``radius`` of the segment, so fast drags leave no gaps."""
        stroke = self._active()
        for box, mask in tools.capsule_pieces(x0, y0, x1, y1, radius, self.shape):
            self._paint_piece(stroke, box, mask)
        stroke.last = (x1, y1)

    def paint_to(self, x: float, y: float, radius: float) -> None:
        """Continue the stroke from its last point to ``(x, y)`` (a dab if it has none yet)."""
        stroke = self._active()
        if stroke.last is None:
            self.paint_dab(x, y, radius)
        else:
            self.paint_line(stroke.last[0], stroke.last[1], x, y, radius)

    def commit_stroke(self) -> EditAtom | None:
        """Finish the stroke as one undoable atom (``None`` if it changed nothing). Emits ``'history'``."""
        stroke = self._active()
        self._stroke = None
        atom = stroke.merge(self.gt)
        if atom is not None:
            self._record(atom)
        self._emit(DocumentEvent(EventKind.HISTORY))
        return atom

    def abort_stroke(self) -> None:
        """Cancel the stroke in progress and restore its pixels (no-op without one)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return
        atom = stroke.merge(self.gt)
        if atom is not None:
            change = self._apply_values(atom, atom.old_values, atom.new_values)
            self._emit(DocumentEvent(EventKind.LABELS, atom.bbox, self._delta(stroke.scores_before), change))
        self._emit(DocumentEvent(EventKind.HISTORY))

    def _commit_pending(self) -> None:
        if self._stroke is not None:
            self.commit_stroke()

    # ------------------------------------------------------------------ region tools
    def fill(self, x: float, y: float, value: int, *, protect: Iterable[int] | None = None) -> EditAtom | None:
        """Flood-fill the 4-connected region of equal labels at ``(x, y)`` with ``value``."""
        value = self._check_value(value)
        self._commit_pending()
        self._ensure_gt()
        hit = tools.flood_region(self.gt, x, y)
        if hit is None:
            return None
        return self._edit_region(hit[0], hit[1], value, None, protect, None)

    def fill_polygon(self, points: Sequence[Sequence[float]], value: int, *,
                     protect: Iterable[int] | None = None, only_over: int | None = None) -> EditAtom | None:
        """Fill a closed polygon (image coordinates) with ``value``, working in its bounding box only."""
        value = self._check_value(value)
        hit = tools.polygon_mask(points, self.shape)
        if hit is None:
            return None
        return self._edit_region(hit[0], hit[1], value, None, protect, only_over)

    def paint_region(self, mask: np.ndarray, bbox: Bbox, value: int, *, protect: Iterable[int] | None = None,
                     only_over: int | None = None) -> EditAtom | None:
        """Paint the pixels of ``mask`` (bool, ``(h, w)`` of ``bbox`` ``(x, y, w, h)``) with ``value`` as
        one undoable atom, under the same rules as a brush stroke (a prompt proposal accepted)."""
        value = self._check_value(value)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (bbox[3], bbox[2]):
            raise MaskSizeMismatch(self.name, f"region mask shape {mask.shape} != bbox {bbox}")
        return self._edit_region(tuple(int(v) for v in bbox), mask, value, None, protect, only_over)

    def apply_region(self, mask: np.ndarray, bbox: Bbox | None = None, *, source: str = "prediction",
                     erase_value: int = 0) -> EditAtom | None:
        """Apply an action to an error region: accept the prediction there, or erase it.

        Parameters
        ----------
        mask : np.ndarray
            Bool region mask: ``(h, w)`` of ``bbox`` when ``bbox`` is given, else full image size.
        bbox : tuple of int, optional
            ``(x, y, w, h)`` of ``mask`` in the image.
        source : {'prediction', 'erase'}
            Copy the prediction into the ground truth, or set the region to ``erase_value``.
        erase_value : int
            Class written by ``'erase'``: background (0) by default, or the ignore index.
        """
        mask = np.asarray(mask, dtype=bool)
        if bbox is None:
            if mask.shape != self.shape:
                raise MaskSizeMismatch(self.name, f"region mask shape {mask.shape} != image {self.shape}")
            rows = np.flatnonzero(mask.any(axis=1))
            if rows.size == 0:
                return None
            cols = np.flatnonzero(mask.any(axis=0))
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            bbox, mask = (x0, y0, x1 - x0, y1 - y0), mask[y0:y1, x0:x1]
        elif mask.shape != (bbox[3], bbox[2]):
            raise MaskSizeMismatch(self.name, f"region mask shape {mask.shape} != bbox {bbox}")
        if source == "prediction":
            return self._edit_region(tuple(bbox), mask, None, "prediction", None, None)
        if source == "erase":
            return self._edit_region(tuple(bbox), mask, self._check_value(erase_value), None, None, None)
        raise ValueError(f"unknown region action {source!r}")

