"""The image document: the one source of truth for the image being viewed and edited.

An :class:`ImageDocument` holds the image, the class table, the ground truth, its edit history and
journal, and any number of :class:`~segstudio.core.evaluation.comparison.Comparison` objects keyed by
prediction source (a model run, a predictions folder, a saved label version). One of them is
*active*: ``pred``, ``confusion`` and ``error_codes`` read it. Widgets paint from the document and
write to it through its edit API; they never keep the only copy of a mask.

Every edit costs O(edited area), never O(image): a dab writes its pixels into the ground truth at
once (so the canvas can show it live), and the same edit atom (bbox, changed mask, old and new
values) updates the class pixel counts and every comparison, then travels in the change event so
each listener can update from it in O(edit). A stroke is grouped into one
:class:`~segstudio.core.editing.history.EditAtom` on commit, for undo/redo and the crash journal.

Listeners subscribe with :meth:`ImageDocument.subscribe` and receive :class:`DocumentEvent`; its
``kind`` is an :class:`EventKind`:

``LABELS``      ground-truth pixels changed: ``event.atom`` holds exactly which, ``event.bbox`` where
``PREDICTION``  the comparison of ``event.source`` was added, replaced or removed
``RELOADED``    everything changed (new ground truth; a draft from the prediction also carries its atom)
``ERRORS``      only the error map changed (its mode was switched)
``HISTORY``     undo/redo availability or the modified flag changed; no pixel changed
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from segstudio.core.editing.edits import LabelEdits
from segstudio.core.editing.events import (
    Bbox,
    DocumentEvent,
    EventKind,
    Journal,
    MetricsDelta,
    StrokeError,
)
from segstudio.core.editing.history import (
    EditAtom,
    EditHistory,
    HistoryBudget,
    default_budget,
    labels_fingerprint,
)
from segstudio.core.editing.selection import Selection
from segstudio.core.editing.strokes import Stroke
from segstudio.core.errors import MaskSizeMismatch
from segstudio.core.evaluation.comparison import Comparison, SourceKey, SourceKind
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.io.classes import ClassTable

__all__ = ["ImageDocument", "DocumentEvent", "EventKind", "MetricsDelta", "Journal", "StrokeError",
           "DEFAULT_SOURCE", "class_counts"]

# The source a prediction is filed under when the caller names none (the model dock's run).
DEFAULT_SOURCE = SourceKey(SourceKind.MODEL)


def class_counts(labels: np.ndarray, size: int) -> np.ndarray:
    """``(size,)`` int64 pixel count of every label value below ``size``, for a mask or the 1-D values
    of an edit (OpenCV's histogram for uint8: 3-4x faster than ``np.bincount``, no int64 copy)."""
    if labels.dtype == np.uint8:
        import cv2

        flat = np.ascontiguousarray(labels).reshape(-1, 1)
        hist = cv2.calcHist([flat], [0], None, [256], [0, 256]).ravel().astype(np.int64)
        return np.pad(hist, (0, max(0, size - 256)))[:size]
    values = labels.ravel()
    return np.bincount(values[values < size], minlength=size)[:size].astype(np.int64)


class ImageDocument(LabelEdits):
    """One image with its labels, its comparisons against predictions, and its edit history.

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
        array is copied once). ``pred`` becomes the comparison of :data:`DEFAULT_SOURCE`.
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
    selection : Selection, optional
        The user's selected class (``core.editing.selection``), read when an edit reports how a class's
        scores moved (``MetricsDelta``); without one, or out of range, the painted class is reported.

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
                 journal: Journal | None = None, error_class: int | None = None,
                 selection: Selection | None = None):
        self.name = name
        self.image = image
        self.class_table = class_table
        self.shape = tuple(int(v) for v in image.shape[:2])
        self.ignore_index = int(class_table.ignore_index)
        self.num_classes = int(class_table.num_classes)
        self.gt = self._own(self._checked(gt, "ground truth"))
        self.gt_instances = gt_instances
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
        self.comparisons: dict[SourceKey, Comparison] = {}
        self.active_source: SourceKey | None = None
        self.labels_version = 0     # bumped by every change of the labels; see attach_comparison
        self._empty_confusion = ConfusionMatrix(self.num_classes, self.ignore_index)
        self._counts_size = max(self.num_classes, self.ignore_index + 1)
        self._counts: np.ndarray | None = None
        self._error_class = error_class
        self.selection = selection
        self.modified = False
        self._listeners: list[Callable[[DocumentEvent], None]] = []
        self._stroke: Stroke | None = None
        self._recount()
        if pred is not None:
            self.comparisons[DEFAULT_SOURCE] = self._build(DEFAULT_SOURCE, pred, confidence, entropy,
                                                           pred_instances)
            self.active_source = DEFAULT_SOURCE

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

    def _recount(self) -> None:
        self._counts = None if self.gt is None else class_counts(self.gt, self._counts_size)

    def _labels_replaced(self) -> None:
        """The whole ground truth changed: O(image) recount and rebuild of every comparison."""
        self.labels_version += 1
        self._recount()
        for comparison in self.comparisons.values():
            comparison.rebuild(self.gt)

    # ------------------------------------------------------------------ comparisons
    def _build(self, key: SourceKey, pred: np.ndarray, confidence=None, entropy=None,
               instances: Any = None, gt: np.ndarray | None = None) -> Comparison:
        return Comparison(key, self.gt if gt is None else gt, self._checked(pred, "prediction"),
                          num_classes=self.num_classes, ignore_index=self.ignore_index,
                          confidence=self._checked(confidence, "confidence"),
                          entropy=self._checked(entropy, "entropy"), instances=instances,
                          error_class=self._error_class)

    def comparison_builder(self, pred: np.ndarray, confidence: np.ndarray | None = None,
                           entropy: np.ndarray | None = None, instances: Any = None, *,
                           source: SourceKey = DEFAULT_SOURCE) -> tuple[Callable[[], Comparison], int]:
        """A function that builds the comparison of a new prediction, and the labels version it reads.

        The function is O(image) and safe to run on a worker thread: it reads the labels and writes
        nothing shared. Hand its result and the version to :meth:`attach_comparison`. Shapes are
        checked here, on the caller's thread.
        """
        for arr, what in ((pred, "prediction"), (confidence, "confidence"), (entropy, "entropy")):
            self._checked(arr, what)
        gt, version = self.gt, self.labels_version
        return (lambda: self._build(source, pred, confidence, entropy, instances, gt)), version

    def attach_comparison(self, comparison: Comparison, version: int, *, activate: bool = True) -> None:
        """Show a comparison built by :meth:`comparison_builder`; it becomes the active one unless
        ``activate`` is False (a second source kept alongside, e.g. model B of a comparison).
        Emits ``PREDICTION`` when the comparison is the active one, else ``SOURCE``.

        If the labels changed after ``version`` (the user painted meanwhile, or they were reloaded),
        the comparison is rebuilt here against the labels as they are now.
        """
        if version != self.labels_version or comparison.num_classes != self.num_classes:
            comparison.rebuild(self.gt)
        self.comparisons[comparison.key] = comparison
        if activate or self.active_source is None:
            self.active_source = comparison.key
        # Only the active source is drawn and scored: another one (model B kept alongside) changes
        # nothing the views show, so it is announced as SOURCE and costs them nothing.
        kind = EventKind.PREDICTION if self.active_source == comparison.key else EventKind.SOURCE
        self._emit(DocumentEvent(kind, source=comparison.key))

    def set_prediction(self, pred: np.ndarray | None, confidence: np.ndarray | None = None,
                       entropy: np.ndarray | None = None, instances: Any = None, *,
                       source: SourceKey | None = None) -> None:
        """Compare the labels with a new prediction of ``source`` (or remove it with None), at once.

        ``source`` defaults to the active source, else :data:`DEFAULT_SOURCE`. O(image) on the
        calling thread; the GUI uses :meth:`comparison_builder` instead. Emits ``PREDICTION``.
        """
        key = source or self.active_source or DEFAULT_SOURCE
        if pred is None:
            self.comparisons.pop(key, None)
            if self.active_source == key:
                self.active_source = next(iter(self.comparisons), None)
            self._emit(DocumentEvent(EventKind.PREDICTION, source=key))
            return
        build, version = self.comparison_builder(pred, confidence, entropy, instances, source=key)
        self.attach_comparison(build(), version)

    def set_active_source(self, key: SourceKey) -> None:
        """Make the comparison of ``key`` the one ``pred``, ``confusion`` and the error map show."""
        if key not in self.comparisons:
            raise KeyError(f"{self.name}: no comparison with {key}")
        if key != self.active_source:
            self.active_source = key
            self._emit(DocumentEvent(EventKind.PREDICTION, source=key))

    @property
    def comparison(self) -> Comparison | None:
        """The active comparison, None without a prediction."""
        return self.comparisons.get(self.active_source) if self.active_source is not None else None

    @property
    def pred(self) -> np.ndarray | None:
        return self.comparison.pred if self.comparison is not None else None

    @property
    def confidence(self) -> np.ndarray | None:
        return self.comparison.confidence if self.comparison is not None else None

    @property
    def entropy(self) -> np.ndarray | None:
        return self.comparison.entropy if self.comparison is not None else None

    @property
    def pred_instances(self) -> Any:
        return self.comparison.instances if self.comparison is not None else None

    @property
    def confusion(self) -> ConfusionMatrix:
        """Active comparison's confusion matrix (an empty one without ground truth or prediction)."""
        comparison = self.comparison
        return comparison.confusion if comparison is not None and self.gt is not None else self._empty_confusion

    @property
    def error_codes(self) -> np.ndarray | None:
        comparison = self.comparison
        return comparison.error_codes if comparison is not None and self.gt is not None else None

    @property
    def gt_counts(self) -> np.ndarray | None:
        """``(C,)`` pixel count of each class in the ground truth, kept up to date in O(edit)."""
        return None if self._counts is None else self._counts[:self.num_classes]

    def classes_present(self) -> frozenset[int]:
        """Class ids present in the ground truth (ignore excluded), O(C)."""
        counts = self.gt_counts
        return frozenset() if counts is None else frozenset(int(i) for i in np.flatnonzero(counts))

    # ------------------------------------------------------------------ whole-image label changes
    def set_ground_truth(self, gt: np.ndarray | None, instances: Any = None) -> None:
        """Replace the ground truth (reload from disk); the undo history is cleared. Emits ``RELOADED``."""
        self.abort_stroke()
        self.gt = self._own(self._checked(gt, "ground truth"))
        self.gt_instances = instances
        self.history.clear()
        self.modified = False
        self._labels_replaced()
        self._emit(DocumentEvent(EventKind.RELOADED))

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
            self._labels_replaced()
        h, w = self.shape
        return self._edit_region((0, 0, w, h), np.ones((h, w), dtype=bool), None, "prediction",
                                 None, None, event_kind=EventKind.RELOADED)

    def _blank_gt(self) -> np.ndarray:
        dtype = np.uint8 if max(self.num_classes - 1, self.ignore_index) <= 255 else np.uint16
        return np.full(self.shape, self.ignore_index, dtype=dtype)

    def _ensure_gt(self) -> None:
        if self.gt is None:
            self.gt = self._blank_gt()
            self._labels_replaced()
            self._emit(DocumentEvent(EventKind.RELOADED))

    @property
    def error_class(self) -> int | None:
        """Class shown by the one-class error map, or ``None`` for the all-classes map."""
        return self._error_class

    @error_class.setter
    def error_class(self, class_id: int | None) -> None:
        if class_id == self._error_class:
            return
        self._error_class = class_id
        for comparison in self.comparisons.values():
            comparison.set_error_class(class_id, self.gt)
        self._emit(DocumentEvent(EventKind.ERRORS))

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
        """``(iou, f1)`` of one class against the active prediction, O(C); None where undefined."""
        comparison = self.comparison
        if comparison is None or self.gt is None:
            return None, None
        return comparison.class_scores(class_id)

    def _scores(self, candidate: int | None) -> tuple[int, float | None, float | None] | None:
        k = self.selection.class_id if self.selection is not None else None
        k = k if k is not None and 0 <= k < self.num_classes else candidate
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
        self._emit(DocumentEvent(EventKind.HISTORY))

    # ------------------------------------------------------------------ incremental bookkeeping
    def _after_change(self, box: Bbox, changed: np.ndarray, old: np.ndarray, new: np.ndarray) -> EditAtom:
        """Carry one change into the class counts and every comparison, O(edit); returns its atom.

        Only the changed pixels are touched: a long diagonal stroke does not recompute its bounding box.
        """
        self.labels_version += 1
        self._counts -= class_counts(old, self._counts_size)
        self._counts += class_counts(new, self._counts_size)
        for comparison in self.comparisons.values():
            comparison.apply_change(box, changed, old, new)
        return EditAtom(box, changed, old, new)

    # ------------------------------------------------------------------ history
    def _apply_values(self, atom: EditAtom, values: np.ndarray, previous: np.ndarray) -> EditAtom:
        """Write ``values`` at the atom's pixels (which hold ``previous``); returns the change made."""
        x, y, w, h = atom.bbox
        self.gt[y:y + h, x:x + w][atom.changed] = values
        return self._after_change(atom.bbox, atom.changed, previous, values)

    def _atom_class(self, values: np.ndarray) -> int | None:
        if values.size and values[0] == values[-1] and (values == values[0]).all():
            return int(values[0])
        return None

    def _load_atom(self, atom: EditAtom, undoing: bool) -> None:
        """Apply ``atom`` backwards (undo) or forwards (redo, apply): the one path for all three."""
        values, previous = (atom.old_values, atom.new_values) if undoing else (atom.new_values, atom.old_values)
        before = self._scores(self._atom_class(atom.new_values))
        change = self._apply_values(atom, values, previous)
        self.modified = True
        self._emit(DocumentEvent(EventKind.LABELS, atom.bbox, self._delta(before), change))

    def apply(self, atom: EditAtom) -> None:
        """Apply an atom made elsewhere (its new values) as a new undoable edit. Emits ``LABELS``."""
        self._commit_pending()
        self._ensure_gt()
        self.history.push(atom)
        if self.journal is not None:
            self.journal.journal_commit(self.name, atom)
        self._load_atom(atom, undoing=False)

    def undo(self) -> EditAtom | None:
        """Undo the newest edit (committing a stroke in progress first); ``None`` if nothing to undo."""
        self._commit_pending()
        atom = self.history.undo()
        if atom is not None:
            if self.journal is not None:
                self.journal.journal_undo(self.name)
            self._load_atom(atom, undoing=True)
        return atom

    def redo(self) -> EditAtom | None:
        """Redo the last undone edit; ``None`` if nothing to redo."""
        self._commit_pending()
        atom = self.history.redo()
        if atom is not None:
            if self.journal is not None:
                self.journal.journal_redo(self.name)
            self._load_atom(atom, undoing=False)
        return atom
