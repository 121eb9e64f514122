"""Every prediction source seen in a session, image by image: what model A vs model B needs.

The document of the image on screen holds one :class:`~segstudio.core.evaluation.comparison.Comparison`
per source; the images that are not open are summarised here by their prediction and their confusion
matrix against the labels as the session loads them (saved corrections first). From these the compare
views read

* a source's dataset confusion (:meth:`SourceResults.dataset_confusion`),
* the per-class table of A, B and their difference (:func:`class_deltas`),
* the images both sources predicted, paired, for the bootstrap (:meth:`SourceResults.paired`),
* the review order "where B got worse first" (:meth:`SourceResults.delta_rows`),
* each source against the original and the corrected labels (:func:`label_fix_impact`).

Qt-free and torch-free; every method is O(images x C²) at most, never O(pixels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from segstudio.core.evaluation.comparison import SourceKey, SourceKind
from segstudio.core.evaluation.metrics import ConfusionMatrix

__all__ = ["ORIGINAL_LABELS", "DeltaRow", "ClassDelta", "SourceResults", "class_deltas", "matrix_mean_iou",
           "parse_source_key", "source_label", "LabelFixItem", "LabelFixImpact", "label_fix_inputs", "label_fix_impact"]

# The labels as the dataset shipped them, compared with the labels as corrected (the live ones).
ORIGINAL_LABELS = SourceKey(SourceKind.LABELS, "original")


def parse_source_key(text: str) -> SourceKey:
    """``"model:demo"`` -> ``SourceKey(MODEL, "demo")``; the inverse of ``str(SourceKey)``."""
    kind, _, name = str(text).partition(":")
    try:
        return SourceKey(SourceKind(kind), name)
    except ValueError:
        raise ValueError(f"unknown source kind {kind!r} in {text!r}; expected one of "
                         f"{', '.join(k.value for k in SourceKind)}") from None


def source_label(key: SourceKey) -> str:
    """Short display name: a folder or model file by its last path part (``folder:pred_b``)."""
    name = key.name.rstrip("/\\")
    short = name.replace("\\", "/").rsplit("/", 1)[-1] if name else ""
    return f"{key.kind.value}:{short}" if short else key.kind.value


def _as_cm(matrix: np.ndarray, ignore_index: int = 255) -> ConfusionMatrix:
    cm = ConfusionMatrix(matrix.shape[0], ignore_index)
    cm.matrix = np.asarray(matrix, dtype=np.int64).copy()
    return cm


def matrix_mean_iou(matrix: np.ndarray | None) -> float | None:
    """Mean IoU over the classes present in a ``(C, C)`` confusion matrix; None when undefined."""
    if matrix is None:
        return None
    value = _as_cm(matrix).mean_iou()
    return None if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True)
class DeltaRow:
    """One image predicted by both sources: mean IoU of A, of B, and ``b - a`` (None where undefined)."""

    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class ClassDelta:
    """One class's IoU under A and B over the same images, and ``b - a``."""

    class_id: int
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(float(value)) else float(value)


def class_deltas(cm_a: ConfusionMatrix, cm_b: ConfusionMatrix) -> tuple[list[ClassDelta], ClassDelta]:
    """Per-class IoU of A and B and their difference, and the same for mean IoU (class id -1)."""
    iou_a, iou_b = cm_a.iou(), cm_b.iou()
    rows = [ClassDelta(k, _nan_to_none(iou_a[k]), _nan_to_none(iou_b[k])) for k in range(len(iou_a))]
    mean_a = cm_a.mean_iou() if cm_a.total else None
    mean_b = cm_b.mean_iou() if cm_b.total else None
    return rows, ClassDelta(-1, _nan_to_none(mean_a) if mean_a is not None else None,
                            _nan_to_none(mean_b) if mean_b is not None else None)


class SourceResults:
    """Predictions and per-image confusion matrices, per source, for one open dataset.

    Parameters
    ----------
    num_classes, ignore_index : int
        From the dataset's class table (the confusion matrices are ``(C, C)``).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._predictions: dict[SourceKey, dict[str, Any]] = {}
        self._confusions: dict[SourceKey, dict[str, np.ndarray]] = {}

    def keys(self) -> list[SourceKey]:
        """Every source that has a prediction or a confusion for some image, in order of arrival."""
        seen = dict.fromkeys(self._predictions)
        seen.update(dict.fromkeys(self._confusions))
        return list(seen)

    def record(self, key: SourceKey, name: str, prediction: Any = None,
               confusion: np.ndarray | None = None) -> None:
        """Remember ``key``'s prediction for image ``name`` and/or its confusion against the labels."""
        if prediction is not None:
            self._predictions.setdefault(key, {})[name] = prediction
        if confusion is not None:
            self.set_confusion(key, name, confusion)

    def set_confusion(self, key: SourceKey, name: str, confusion: np.ndarray | None) -> None:
        """Image ``name``'s confusion for ``key`` (None forgets it: no ground truth any more)."""
        if confusion is None:
            self._confusions.get(key, {}).pop(name, None)
            return
        matrix = np.asarray(confusion, dtype=np.int64)
        if matrix.shape != (self.num_classes, self.num_classes):
            raise ValueError(f"{name}: confusion of {key} has shape {matrix.shape}, "
                             f"expected ({self.num_classes}, {self.num_classes})")
        self._confusions.setdefault(key, {})[name] = matrix.copy()

    def prediction(self, key: SourceKey, name: str) -> Any:
        return self._predictions.get(key, {}).get(name)

    def predictions(self, key: SourceKey) -> dict[str, Any]:
        return dict(self._predictions.get(key, {}))

    def confusion(self, key: SourceKey, name: str) -> np.ndarray | None:
        return self._confusions.get(key, {}).get(name)

    def confusions(self, key: SourceKey) -> dict[str, np.ndarray]:
        return dict(self._confusions.get(key, {}))

    def dataset_confusion(self, key: SourceKey, names: Iterable[str] | None = None) -> ConfusionMatrix:
        """Confusion of ``key`` summed over its images (or over ``names`` of them)."""
        cm = ConfusionMatrix(self.num_classes, self.ignore_index)
        per_image = self._confusions.get(key, {})
        for name in (per_image if names is None else names):
            matrix = per_image.get(name)
            if matrix is not None:
                cm.matrix += matrix
        return cm

    def paired(self, a: SourceKey, b: SourceKey) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
        """Images with a confusion for both sources (dataset order of arrival), and the two lists."""
        ca, cb = self._confusions.get(a, {}), self._confusions.get(b, {})
        names = [n for n in ca if n in cb]
        return names, [ca[n] for n in names], [cb[n] for n in names]

    def delta_rows(self, a: SourceKey, b: SourceKey) -> list[DeltaRow]:
        """Images both sources predicted, B's worst regressions first (delta ascending; undefined last)."""
        names, mats_a, mats_b = self.paired(a, b)
        rows = [DeltaRow(n, matrix_mean_iou(ma), matrix_mean_iou(mb)) for n, ma, mb in zip(names, mats_a, mats_b)]
        return sorted(rows, key=lambda r: (r.delta is None, r.delta if r.delta is not None else 0.0, r.name))

    def forget(self, key: SourceKey) -> None:
        self._predictions.pop(key, None)
        self._confusions.pop(key, None)


@dataclass
class LabelFixItem:
    """One image whose labels were corrected: how to read the original labels, the corrected ones, and
    the masks each source predicted (source -> ``(H, W)`` class ids)."""

    name: str
    original: Callable[[], np.ndarray | None]
    corrected: Callable[[], np.ndarray | None]
    predictions: dict[SourceKey, np.ndarray]


def label_fix_inputs(session, results: SourceResults, keys: Iterable[SourceKey]
                     ) -> tuple[list[LabelFixItem], dict[SourceKey, ConfusionMatrix]]:
    """What :func:`label_fix_impact` needs for ``keys`` of ``results`` over ``session``'s dataset.

    Images with a correction (``session.corrected_names()``) become items that decode both label versions
    (an open document's live labels are copied now, as the corrected version); every other image
    contributes its stored confusion to both sides, since there both versions are the same.
    """
    keys = list(keys)
    changed = session.corrected_names()
    changed_set = set(changed)
    unchanged = {k: results.dataset_confusion(k, [n for n in results.confusions(k) if n not in changed_set])
                 for k in keys}
    items = []
    for name in changed:
        predictions = {k: results.prediction(k, name).mask for k in keys if results.prediction(k, name) is not None}
        if not predictions:
            continue
        index = session.dataset.index_of(name)
        document = session.kept_document(name)
        if document is not None and document.gt is not None:
            live = document.gt.copy()
            corrected = lambda live=live: live   # noqa: E731 - bound now, read on the worker
        else:
            corrected = session.sample_to_load(index).load_mask
        items.append(LabelFixItem(name, session.dataset[index].load_mask, corrected, predictions))
    return items, unchanged


@dataclass
class LabelFixImpact:
    """What :func:`label_fix_impact` returns: per source ``(original_cm, corrected_cm)``, and how many of
    the images read in both versions really differ (a COCO correction file holds every image)."""

    per_source: dict[SourceKey, tuple[ConfusionMatrix, ConfusionMatrix]]
    changed_images: int


def label_fix_impact(context, items: list[LabelFixItem], unchanged: dict[SourceKey, ConfusionMatrix],
                     num_classes: int, ignore_index: int
                     ) -> Iterator[None]:
    """Each source against the original and the corrected labels, summed over the dataset (a task).

    ``items`` are the images with saved corrections (both label versions are decoded, one image at a
    time); ``unchanged`` holds each source's confusion summed over the other images, where both label
    versions are the same. A generator for the task runner: it yields between images (a cancel stops
    it there) and reports progress through ``context``; returns a :class:`LabelFixImpact`.
    """
    keys = set(unchanged)
    for item in items:
        keys.update(item.predictions)
    original = {k: unchanged.get(k, ConfusionMatrix(num_classes, ignore_index)).copy() for k in keys}
    corrected = {k: unchanged.get(k, ConfusionMatrix(num_classes, ignore_index)).copy() for k in keys}
    changed = 0
    for done, item in enumerate(items, start=1):
        gt_original, gt_corrected = item.original(), item.corrected()
        changed += gt_original is None or gt_corrected is None or not np.array_equal(gt_original, gt_corrected)
        for key, pred in item.predictions.items():
            for labels, sums in ((gt_original, original), (gt_corrected, corrected)):
                if labels is not None and labels.shape == pred.shape:
                    sums[key].update(labels, pred)
        if context is not None:
            context.progress(done, len(items))
        yield
    return LabelFixImpact({k: (original[k], corrected[k]) for k in keys}, changed)
