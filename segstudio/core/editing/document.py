"""The image document: the one source of truth for the image being viewed and edited.

An :class:`ImageDocument` holds the image, the class table, the ground truth, the prediction (with its
confidence, entropy and instances), the confusion matrix of ground truth against prediction and the
per-pixel error map. Widgets paint from it and write to it through its edit API; they never keep the
only copy of a mask.

Every edit costs O(edited area), never O(image): a dab writes its pixels into the ground truth at
once (so the canvas can show it live), moves only those pixels in the confusion matrix
(:meth:`ConfusionMatrix.apply_edit`) and recomputes the error map inside the dab's bounding box only.
A stroke is grouped into one :class:`~segstudio.core.editing.history.EditAtom` on commit, for undo/redo and the
project store's crash journal.

Listeners subscribe with :meth:`ImageDocument.subscribe` and receive :class:`DocumentEvent`:

``'gt'``       ground-truth pixels changed inside ``bbox`` (and the error map with them)
``'pred'``     a new prediction: redraw prediction, error map and metrics (``bbox`` is None)
``'all'``      everything changed (new ground truth, draft from prediction)
``'errors'``   only the error map changed (its mode was switched)
``'history'``  undo/redo availability or the modified flag changed; no pixel changed
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple, Protocol, Sequence

import numpy as np

from segstudio.core.evaluation import errormap

from segstudio.core.editing import tools
from segstudio.core.io.classes import ClassTable
from segstudio.core.errors import MaskSizeMismatch
from segstudio.core.editing.history import (
    EditAtom,
    EditHistory,
    HistoryBudget,
    default_budget,
    labels_fingerprint,
)
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.editing.strokes import PaintRules, Stroke

__all__ = ["ImageDocument", "DocumentEvent", "MetricsDelta", "Journal", "StrokeError"]

Bbox = tuple[int, int, int, int]


class MetricsDelta(NamedTuple):
    """How one class's scores moved through an edit (``None`` where a score is undefined)."""

    class_id: int
    iou_before: float | None
    iou_after: float | None
    f1_before: float | None
    f1_after: float | None


@dataclass(frozen=True)
class DocumentEvent:
    """A change notification; see the module docstring for the kinds."""

    kind: str
    bbox: Bbox | None = None
    metrics_delta: MetricsDelta | None = None


class Journal(Protocol):
    """What the document needs from a crash journal (``segstudio.core.editing.store.ProjectStore``)."""

    def journal_commit(self, image_name: str, atom: EditAtom) -> int: ...
    def journal_undo(self, image_name: str) -> int: ...
    def journal_redo(self, image_name: str) -> int: ...


class StrokeError(RuntimeError):
    """A stroke call out of order (painting without ``begin_stroke``, a second ``begin_stroke``)."""


class ImageDocument:
    """One image with its labels, prediction, metrics, error map and edit history.

    Parameters
    ----------
    name : str
        Image name (the dataset sample's name); keys the edit history and the journal.
    image : np.ndarray
        ``(H, W)`` or ``(H, W, C)`` pixels, shown as is.
    class_table : ClassTable
        Classes the masks refer to; its ignore index marks unlabelled pixels.
    gt, pred : np.ndarray, optional
        ``(H, W)`` class ids. The document takes ownership of ``gt`` and edits it in place (a read-only
        array is copied once).
    confidence, entropy : np.ndarray, optional
        ``(H, W)`` float per-pixel maps of the prediction.
    gt_instances, pred_instances : InstanceMask, optional
        Instance masks, carried along for the instance views.
    history : EditHistory, optional
        Undo stacks to use; by default the image's history in ``budget``. The stacks survive switching
        images when the previous document was :meth:`close`-d and ``gt`` holds the same pixels it was
        closed on; otherwise they are cleared.
    budget : HistoryBudget, optional
        Shared memory budget; the process-wide :func:`default_budget` (256 MB) when omitted.
    journal : Journal, optional
        Crash journal that records every committed stroke, undo and redo.
    error_class : int, optional
        Show the error map for this one class instead of all classes.

    Raises
    ------
    MaskSizeMismatch
        If a mask's shape differs from the image's height and width.
    """

    def __init__(self, name: str, image: np.ndarray, class_table: ClassTable,
                 gt: np.ndarray | None = None, pred: np.ndarray | None = None, *,
                 confidence: np.ndarray | None = None, entropy: np.ndarray | None = None,
                 gt_instances: Any = None, pred_instances: Any = None,
                 history: EditHistory | None = None, budget: HistoryBudget | None = None,
                 journal: Journal | None = None, error_class: int | None = None):
        self.name = name
        self.image = image
        self.class_table = class_table
        self.shape = tuple(int(v) for v in image.shape[:2])
        self.ignore_index = int(class_table.ignore_index)
        self.num_classes = int(class_table.num_classes)
        self.gt = self._own(self._checked(gt, "ground truth"))
        self.pred = self._checked(pred, "prediction")
        self.confidence = self._checked(confidence, "confidence")
        self.entropy = self._checked(entropy, "entropy")
        self.gt_instances = gt_instances
        self.pred_instances = pred_instances
        self.journal = journal
        self.history = history if history is not None else (budget or default_budget()).history_for(name)
        if self.history.can_undo or self.history.can_redo:
            # Atoms only make sense on the pixels they were made on: keep them when the previous
            # document of this image was closed on exactly these labels, else (edits discarded, labels
            # reloaded from another file, never closed) undoing them would corrupt the mask.
            fp = self.history.fingerprint
            if fp is None or self.gt is None or labels_fingerprint(self.gt) != fp:
                self.history.clear()
        self.history.fingerprint = None
        self.confusion = ConfusionMatrix(self.num_classes, self.ignore_index)
        self.error_codes: np.ndarray | None = None
        self._error_class = error_class
        self.metrics_class: int | None = None
        self.modified = False
        self._listeners: list[Callable[[DocumentEvent], None]] = []
        self._stroke: Stroke | None = None
        self._recompute_all()

    # ------------------------------------------------------------------ setup and whole-image changes
    def _checked(self, arr: np.ndarray | None, what: str) -> np.ndarray | None:
        if arr is None:
            return None
        if tuple(arr.shape[:2]) != self.shape or arr.ndim != 2:
            raise MaskSizeMismatch(self.name, f"{what} shape {arr.shape} != image size {self.shape}")
        return arr

    @staticmethod
    def _own(gt: np.ndarray | None) -> np.ndarray | None:
        if gt is None:
            return None
        if not np.issubdtype(gt.dtype, np.integer):
            raise TypeError(f"ground truth must hold integer class ids, got dtype {gt.dtype}")
        if not gt.flags.writeable or not gt.flags.c_contiguous:
            gt = np.ascontiguousarray(gt).copy()
        return gt

    def _recompute_all(self) -> None:
        """Full recompute of the confusion matrix and the error map (loading and mode switches only)."""
        self.confusion.reset()
        if self.gt is not None and self.pred is not None:
            self.confusion.update(self.gt, self.pred)
            self.error_codes = self._codes(self.gt, self.pred)
        else:
            self.error_codes = None

    def _codes(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        return errormap.error_codes(gt, pred, ignore_index=self.ignore_index, class_id=self._error_class)

    def set_prediction(self, pred: np.ndarray | None, confidence: np.ndarray | None = None,
                       entropy: np.ndarray | None = None, instances: Any = None) -> None:
        """Show a new prediction (or none); metrics and error map are recomputed. Emits ``'pred'``."""
        pred = self._checked(pred, "prediction")
        confidence = self._checked(confidence, "confidence")
        entropy = self._checked(entropy, "entropy")
        self.pred, self.confidence, self.entropy = pred, confidence, entropy
        self.pred_instances = instances
        self._recompute_all()
        self._emit(DocumentEvent("pred"))

    def set_ground_truth(self, gt: np.ndarray | None, instances: Any = None) -> None:
        """Replace the ground truth (reload from disk); the undo history is cleared. Emits ``'all'``."""
        self.abort_stroke()
        self.gt = self._own(self._checked(gt, "ground truth"))
        self.gt_instances = instances
        self.history.clear()
        self.modified = False
        self._recompute_all()
        self._emit(DocumentEvent("all"))

    def start_from_prediction(self) -> EditAtom | None:
        """Draft the ground truth from the prediction, as one undoable edit.

        An image without ground truth starts from all-ignore labels (which is what "unlabelled" means
        to the metrics), so undo returns it to that state.

        Returns
        -------
        EditAtom or None
            The draft edit, ``None`` when the ground truth already equals the prediction.
        """
        if self.pred is None:
            raise ValueError(f"{self.name}: no prediction to start from")
        self._commit_pending()
        if self.gt is None:
            self.gt = self._blank_gt()
            self._recompute_all()
        h, w = self.shape
        atom = self._edit_region((0, 0, w, h), np.ones((h, w), dtype=bool), None, "prediction",
                                 None, None, event_kind="all")
        return atom

    def _blank_gt(self) -> np.ndarray:
        dtype = np.uint8 if max(self.num_classes - 1, self.ignore_index) <= 255 else np.uint16
        return np.full(self.shape, self.ignore_index, dtype=dtype)

    def _ensure_gt(self) -> None:
        if self.gt is None:
            self.gt = self._blank_gt()
            self._recompute_all()
            self._emit(DocumentEvent("all"))

    @property
    def error_class(self) -> int | None:
        """Class shown by the one-class error map, or ``None`` for the all-classes map."""
        return self._error_class

    @error_class.setter
    def error_class(self, class_id: int | None) -> None:
        if class_id == self._error_class:
            return
        self._error_class = class_id
        if self.gt is not None and self.pred is not None:
            self.error_codes = self._codes(self.gt, self.pred)
        self._emit(DocumentEvent("errors"))

    def close(self) -> None:
        """Let go of the image: the in-progress stroke is committed and the history remembers which
        pixels it applies to, so a document reopened on the same labels keeps its undo stack."""
        self._commit_pending()
        if self.gt is not None:
            self.history.fingerprint = labels_fingerprint(self.gt)
        self._listeners.clear()

    # ------------------------------------------------------------------ notifications and queries
    def subscribe(self, callback: Callable[[DocumentEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after every change; returns a function that unsubscribes."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _emit(self, event: DocumentEvent) -> None:
        for callback in list(self._listeners):
            callback(event)

    def class_at(self, x: float, y: float, layer: str = "gt") -> int | None:
        """Class id under image coordinates ``(x, y)`` in ``'gt'`` or ``'pred'``; None outside/absent."""
        arr = self.gt if layer == "gt" else self.pred
        ix, iy = int(np.floor(x)), int(np.floor(y))
        if arr is None or not (0 <= iy < self.shape[0] and 0 <= ix < self.shape[1]):
            return None
        return int(arr[iy, ix])

    @property
    def can_undo(self) -> bool:
        return self.history.can_undo or bool(self._stroke and self._stroke.pieces)

    @property
    def can_redo(self) -> bool:
        return self.history.can_redo

    @property
    def in_stroke(self) -> bool:
        return self._stroke is not None

    def class_scores(self, class_id: int) -> tuple[float | None, float | None]:
        """``(iou, f1)`` of one class from the live confusion matrix, O(C); None where undefined."""
        m = self.confusion.matrix
        tp = int(m[class_id, class_id])
        gt_n = int(m[class_id, :].sum())
        pred_n = int(m[:, class_id].sum())
        union = gt_n + pred_n - tp
        iou = tp / union if union else None
        f1 = 2 * tp / (gt_n + pred_n) if gt_n + pred_n else None
        return iou, f1

    def _scores(self, candidate: int | None) -> tuple[int, float | None, float | None] | None:
        k = self.metrics_class if self.metrics_class is not None else candidate
        if k is None or not 0 <= k < self.num_classes or self.pred is None:
            return None
        return (k, *self.class_scores(k))

    def _delta(self, before: tuple[int, float | None, float | None] | None) -> MetricsDelta | None:
        if before is None:
            return None
        k, iou0, f10 = before
        iou1, f11 = self.class_scores(k)
        return MetricsDelta(k, iou0, iou1, f10, f11)

    def mark_saved(self) -> None:
        """The ground truth was written to disk: clear the modified flag. Emits ``'history'``."""
        self.modified = False
        self._emit(DocumentEvent("history"))

    # ------------------------------------------------------------------ incremental bookkeeping
    def _after_change(self, box: Bbox, changed: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Move the changed pixels in the confusion matrix and recode them in the error map.

        A pixel's error code depends on its own (gt, pred) pair only, so only changed pixels are
        recoded: a long diagonal stroke does not recompute its whole bounding box.
        """
        if self.pred is None:
            return
        x, y, w, h = box
        rows, cols = slice(y, y + h), slice(x, x + w)
        p = self.pred[rows, cols][changed]
        self.confusion.apply_edit(old, new, p, p)
        self.error_codes[rows, cols][changed] = self._codes(new, p)

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
                     event_kind: str = "gt") -> EditAtom | None:
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
        self._after_change(box, sel, old, new)
        atom = EditAtom(box, sel, old, new)
        self._record(atom)
        self._emit(DocumentEvent(event_kind, None if event_kind == "all" else box, self._delta(before)))
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
        self._after_change(box, sel, old, new)
        stroke.add(box, sel, old)
        self.modified = True
        self._emit(DocumentEvent("gt", box, self._delta(stroke.scores_before)))

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
        self._emit(DocumentEvent("history"))
        return atom

    def abort_stroke(self) -> None:
        """Cancel the stroke in progress and restore its pixels (no-op without one)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None:
            return
        atom = stroke.merge(self.gt)
        if atom is not None:
            self._apply_values(atom, atom.old_values, atom.new_values)
            self._emit(DocumentEvent("gt", atom.bbox, self._delta(stroke.scores_before)))
        self._emit(DocumentEvent("history"))

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

    # ------------------------------------------------------------------ history
    def _apply_values(self, atom: EditAtom, values: np.ndarray, previous: np.ndarray) -> None:
        x, y, w, h = atom.bbox
        self.gt[y:y + h, x:x + w][atom.changed] = values
        self._after_change(atom.bbox, atom.changed, previous, values)

    def _atom_class(self, atom: EditAtom, values: np.ndarray) -> int | None:
        if values.size and values[0] == values[-1] and (values == values[0]).all():
            return int(values[0])
        return None

    def apply(self, atom: EditAtom) -> None:
        """Apply an atom made elsewhere (its new values) as a new undoable edit. Emits ``'gt'``."""
        self._commit_pending()
        self._ensure_gt()
        before = self._scores(self._atom_class(atom, atom.new_values))
        self._apply_values(atom, atom.new_values, atom.old_values)
        self._record(atom)
        self._emit(DocumentEvent("gt", atom.bbox, self._delta(before)))

    def undo(self) -> EditAtom | None:
        """Undo the newest edit (committing a stroke in progress first); ``None`` if nothing to undo."""
        self._commit_pending()
        atom = self.history.undo()
        if atom is None:
            return None
        before = self._scores(self._atom_class(atom, atom.new_values))
        self._apply_values(atom, atom.old_values, atom.new_values)
        self.modified = True
        if self.journal is not None:
            self.journal.journal_undo(self.name)
        self._emit(DocumentEvent("gt", atom.bbox, self._delta(before)))
        return atom

    def redo(self) -> EditAtom | None:
        """Redo the last undone edit; ``None`` if nothing to redo."""
        self._commit_pending()
        atom = self.history.redo()
        if atom is None:
            return None
        before = self._scores(self._atom_class(atom, atom.new_values))
        self._apply_values(atom, atom.new_values, atom.old_values)
        self.modified = True
        if self.journal is not None:
            self.journal.journal_redo(self.name)
        self._emit(DocumentEvent("gt", atom.bbox, self._delta(before)))
        return atom
