"""Labels against one prediction source: the comparison seam.

A :class:`Comparison` holds everything that depends on the ground truth *and* one prediction: the
confusion matrix, the per-pixel error codes and the histogram of likely label errors by model
confidence. An image document holds any number of them, keyed by :class:`SourceKey` (a model run, a
predictions folder, a saved label version, a prompt proposal), and every edit atom updates each one in
O(edit) through :meth:`Comparison.apply_change`.

Building a comparison is O(image) and touches no shared state, so it can run on a worker thread
against the document's live labels; the document attaches it only if the labels did not change in the
meantime (see ``ImageDocument.attach_comparison``).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from segstudio.core.evaluation import errormap
from segstudio.core.evaluation.metrics import ConfusionMatrix

__all__ = ["SourceKind", "SourceKey", "Comparison", "LABEL_ERROR_BINS", "DEFAULT_CONFIDENCE_THRESHOLD",
           "disagreeing", "label_error_histogram", "label_errors_at"]

DEFAULT_CONFIDENCE_THRESHOLD = 0.9
# Confidence histogram resolution: label-error thresholds are honoured to 1/1000.
LABEL_ERROR_BINS = 1000


class SourceKind(str, Enum):
    """Where a prediction compared with the labels comes from."""

    MODEL = "model"          # a model run in this session
    FOLDER = "folder"        # a predictions folder
    LABELS = "labels"        # another version of the labels (original vs corrected)
    PROPOSAL = "proposal"    # an interactive proposal (prompt tools)


@dataclass(frozen=True)
class SourceKey:
    """Identifies one prediction source of a document: its kind and a name (spec, folder, version)."""

    kind: SourceKind
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}" if self.name else self.kind.value


def disagreeing(gt: np.ndarray, pred: np.ndarray, ignore_index: int) -> np.ndarray:
    """Where labels and prediction differ with neither side ignored (the pixels a label error can be)."""
    return (gt != pred) & (gt != ignore_index) & (pred != ignore_index)


def _confidence_bins(confidence: np.ndarray) -> np.ndarray:
    conf = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    return np.floor(conf * LABEL_ERROR_BINS).astype(np.int64)


def label_error_histogram(gt: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
                          ignore_index: int = 255) -> np.ndarray:
    """``(1001,)`` counts of disagreeing, non-ignored pixels by ``floor(confidence * 1000)``."""
    wrong = disagreeing(gt, pred, ignore_index)
    return np.bincount(_confidence_bins(confidence[wrong]), minlength=LABEL_ERROR_BINS + 1)


def label_errors_at(hist: np.ndarray | None, threshold: float) -> int | None:
    """Pixels of ``hist`` whose confidence is ``>= threshold`` (resolution 0.001); None without one."""
    if hist is None:
        return None
    start = int(np.ceil(round(threshold * LABEL_ERROR_BINS, 6)))
    return int(hist[max(start, 0):].sum())


class Comparison:
    """The ground truth against one prediction source, kept exact through edits in O(edit).

    Parameters
    ----------
    key : SourceKey
        The source this comparison is keyed by in its document.
    gt : np.ndarray or None
        ``(H, W)`` ground truth the comparison is built on (read, not kept); None scores nothing.
    pred : np.ndarray
        ``(H, W)`` predicted class ids.
    num_classes, ignore_index : int
        From the class table.
    confidence, entropy : np.ndarray, optional
        ``(H, W)`` float maps of the prediction.
    instances : InstanceMask, optional
        Predicted instances, for the instance views.
    error_class : int, optional
        Code the error map for this one class instead of all classes.
    """

    def __init__(self, key: SourceKey, gt: np.ndarray | None, pred: np.ndarray, *, num_classes: int,
                 ignore_index: int, confidence: np.ndarray | None = None,
                 entropy: np.ndarray | None = None, instances: Any = None,
                 error_class: int | None = None):
        self.key = key
        self.pred = pred
        self.confidence = confidence
        self.entropy = entropy
        self.instances = instances
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._error_class = error_class
        self.confusion = ConfusionMatrix(self.num_classes, self.ignore_index)
        self.error_codes: np.ndarray | None = None
        self.label_error_hist: np.ndarray | None = None
        # Display arrays derived from this comparison, filled by core.display.layers on the thread
        # that built it so the GUI only attaches them. "misclassified" depends on the labels: it is
        # valid until the first edit or rebuild, and the canvas presenter takes it once.
        self.layers: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self.rebuild(gt)

    # ------------------------------------------------------------------ whole-image work
    def rebuild(self, gt: np.ndarray | None) -> None:
        """Recompute everything from ``gt``: O(image), for building and for a reloaded ground truth.

        Without ground truth there is nothing to score: an empty matrix and no error map.
        """
        self.confusion.reset()
        self.layers.pop("misclassified", None)
        if gt is None:
            self.error_codes = self.label_error_hist = None
            return
        self.confusion.update(gt, self.pred)
        self.error_codes = self._codes(gt, self.pred)
        self.label_error_hist = (None if self.confidence is None else
                                 label_error_histogram(gt, self.pred, self.confidence, self.ignore_index))

    def _codes(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        return errormap.error_codes(gt, pred, ignore_index=self.ignore_index, class_id=self._error_class)

    @property
    def error_class(self) -> int | None:
        return self._error_class

    def set_error_class(self, class_id: int | None, gt: np.ndarray | None) -> None:
        """Switch the error map between all classes and one class (recodes the image)."""
        if class_id == self._error_class:
            return
        self._error_class = class_id
        self.layers.pop("misclassified", None)
        if gt is not None:
            self.error_codes = self._codes(gt, self.pred)

    # ------------------------------------------------------------------ incremental updates
    def apply_change(self, bbox: tuple[int, int, int, int], changed: np.ndarray, old: np.ndarray,
                     new: np.ndarray) -> None:
        """Ground-truth pixels ``changed`` inside ``bbox`` went from ``old`` to ``new``: O(edit).

        A pixel's error code and its label-error bin depend on its own (gt, pred, confidence) only,
        so only the changed pixels are touched.
        """
        self.layers.pop("misclassified", None)
        x, y, w, h = bbox
        rows, cols = slice(y, y + h), slice(x, x + w)
        p = self.pred[rows, cols][changed]
        self.confusion.apply_edit(old, new, p, p)
        self.error_codes[rows, cols][changed] = self._codes(new, p)
        if self.label_error_hist is not None:
            bins = _confidence_bins(self.confidence[rows, cols][changed])
            n = LABEL_ERROR_BINS + 1
            self.label_error_hist -= np.bincount(bins[disagreeing(old, p, self.ignore_index)], minlength=n)
            self.label_error_hist += np.bincount(bins[disagreeing(new, p, self.ignore_index)], minlength=n)

    # ------------------------------------------------------------------ figures, O(C) or O(C²)
    def class_scores(self, class_id: int) -> tuple[float | None, float | None]:
        """``(iou, f1)`` of one class from the live confusion matrix; None where undefined."""
        m = self.confusion.matrix
        tp = int(m[class_id, class_id])
        gt_n = int(m[class_id, :].sum())
        pred_n = int(m[:, class_id].sum())
        union = gt_n + pred_n - tp
        return (tp / union if union else None), (2 * tp / (gt_n + pred_n) if gt_n + pred_n else None)

    @property
    def error_pixels(self) -> int:
        """Scored pixels where the labels and the prediction disagree."""
        return int(self.confusion.total - np.trace(self.confusion.matrix))

    def label_errors_at(self, threshold: float = DEFAULT_CONFIDENCE_THRESHOLD) -> int | None:
        """Likely label errors at ``threshold`` (confident and disagreeing); None without confidence."""
        return label_errors_at(self.label_error_hist, threshold)
