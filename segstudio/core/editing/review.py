"""The review queue: which image to look at next, and the review report.

Images are ranked worst first by one of three keys:

``'mean_iou'``      lowest mean IoU of the prediction against the ground truth first;
``'error_pixels'``  most scored pixels where prediction and ground truth disagree first;
``'label_errors'``  most *likely label errors* first: pixels where the model is confident
                    (confidence >= threshold, default 0.9) yet disagrees with the ground truth,
                    neither side ignored. Such pixels are often mistakes in the labels, not the model.

Statistics are computed once per image (:func:`image_review_stats`); the confidence histogram kept
with them lets the threshold be changed without the arrays. The report (:func:`export_review`) lists
each image's status, note and metrics before and after correction, as CSV or JSON.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from segstudio.core.io._atomic import atomic_write_bytes
from segstudio.core.io.csvcell import csv_cell
from segstudio.core.evaluation.comparison import (
    DEFAULT_CONFIDENCE_THRESHOLD,
    Comparison,
    disagreeing,
    label_error_histogram,
    label_errors_at,
)
from segstudio.core.evaluation.metrics import ConfusionMatrix

__all__ = [
    "ORDER_KEYS",
    "DEFAULT_CONFIDENCE_THRESHOLD",
    "ImageReviewStats",
    "likely_label_errors",
    "image_review_stats",
    "review_stats_of",
    "review_order",
    "next_to_review",
    "metrics_summary",
    "record_metrics",
    "review_rows",
    "export_review",
]

ORDER_KEYS = ("mean_iou", "error_pixels", "label_errors")
_SCALARS = ("mean_iou", "pixel_accuracy", "fw_iou", "mean_f1", "error_pixels", "label_errors")


def likely_label_errors(gt: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
                        threshold: float = DEFAULT_CONFIDENCE_THRESHOLD, ignore_index: int = 255) -> int:
    """Pixels where the model is confident (``>= threshold``) and disagrees with the ground truth.

    Pixels whose ground truth or prediction is the ignore index do not count.
    """
    return int(np.count_nonzero(disagreeing(gt, pred, ignore_index) & (confidence >= threshold)))


@dataclass
class ImageReviewStats:
    """What the queue needs to rank one image.

    Attributes
    ----------
    name : str
    mean_iou : float or None
        ``None`` when no class is present on either side.
    error_pixels : int
        Scored pixels where prediction and ground truth differ.
    confidence_hist : np.ndarray or None
        ``(1001,)`` counts of disagreeing (not ignored) pixels by ``floor(confidence * 1000)``; ``None``
        without a confidence map.
    threshold : float
        Threshold used for :attr:`label_errors`.
    """

    name: str
    mean_iou: float | None
    error_pixels: int
    confidence_hist: np.ndarray | None = field(default=None, repr=False)
    threshold: float = DEFAULT_CONFIDENCE_THRESHOLD

    def label_errors_at(self, threshold: float) -> int | None:
        """Likely label errors at another threshold (resolution 0.001); ``None`` without confidence."""
        return label_errors_at(self.confidence_hist, threshold)

    @property
    def label_errors(self) -> int | None:
        """Likely label errors at :attr:`threshold`."""
        return self.label_errors_at(self.threshold)


def image_review_stats(name: str, gt: np.ndarray, pred: np.ndarray, num_classes: int,
                       ignore_index: int = 255, confidence: np.ndarray | None = None,
                       threshold: float = DEFAULT_CONFIDENCE_THRESHOLD) -> ImageReviewStats:
    """Rank statistics of one image that is not open (run it in a worker: it is O(image)).

    An open image has a live :class:`Comparison`: use :func:`review_stats_of` instead, O(C²).
    """
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(gt, pred)
    hist = None if confidence is None else label_error_histogram(gt, pred, confidence, ignore_index)
    return ImageReviewStats(name, cm.mean_iou(), int(cm.total - np.trace(cm.matrix)), hist, threshold)


def review_stats_of(name: str, comparison: Comparison,
                    threshold: float = DEFAULT_CONFIDENCE_THRESHOLD) -> ImageReviewStats:
    """Rank statistics of an open image from its live comparison, O(C²): no pixel is read."""
    hist = None if comparison.label_error_hist is None else comparison.label_error_hist.copy()
    return ImageReviewStats(name, comparison.confusion.mean_iou(), comparison.error_pixels, hist, threshold)


def review_order(stats: Iterable[ImageReviewStats], by: str = "mean_iou",
                 threshold: float | None = None) -> list[str]:
    """Image names, worst first; images without the value last; ties keep the given order.

    Parameters
    ----------
    stats : iterable of ImageReviewStats
    by : {'mean_iou', 'error_pixels', 'label_errors'}
    threshold : float, optional
        Confidence threshold for ``'label_errors'`` (default: each entry's own).
    """
    if by not in ORDER_KEYS:
        raise ValueError(f"unknown review order {by!r}; expected one of {ORDER_KEYS}")
    stats = list(stats)

    def key(s: ImageReviewStats) -> tuple[int, float]:
        if by == "mean_iou":
            value = s.mean_iou
            return (1, 0.0) if value is None else (0, value)
        if by == "error_pixels":
            return (0, -s.error_pixels)
        value = s.label_errors if threshold is None else s.label_errors_at(threshold)
        return (1, 0.0) if value is None else (0, -value)

    return [s.name for s in sorted(stats, key=key)]


def next_to_review(order: Sequence[str], statuses: Mapping[str, str], current: str | None = None,
                   wanted: Iterable[str] = ("unreviewed",)) -> str | None:
    """The first image after ``current`` in ``order`` whose status is wanted, wrapping around.

    Parameters
    ----------
    order : sequence of str
        The queue, as from :func:`review_order`.
    statuses : mapping
        Image name -> status; a missing name is ``'unreviewed'``.
    current : str, optional
        The image being shown; the search starts after it (from the top when ``None`` or unknown).
    wanted : iterable of str
        Statuses that still need review.
    """
    wanted = set(wanted)
    start = order.index(current) + 1 if current in order else 0
    n = len(order)
    for i in range(n):
        name = order[(start + i) % n]
        if name != current and statuses.get(name, "unreviewed") in wanted:
            return name
    return None


def metrics_summary(confusion: ConfusionMatrix, label_errors: int | None = None) -> dict:
    """JSON-ready figures of one image, as stored in the project store and exported."""
    f1 = confusion.f1()
    present = confusion.present()
    return {
        "mean_iou": confusion.mean_iou(),
        "pixel_accuracy": confusion.pixel_accuracy(),
        "fw_iou": confusion.fw_iou(),
        "mean_f1": float(np.nanmean(f1[present])) if present.any() else None,
        "error_pixels": int(confusion.total - np.trace(confusion.matrix)),
        "label_errors": label_errors,
        "iou": [None if np.isnan(v) else float(v) for v in confusion.iou()],
    }


def record_metrics(store, image_name: str, *, before: dict | None = None, after: dict | None = None) -> dict:
    """Merge ``before`` (original labels) and/or ``after`` (corrected) into the store's metrics."""
    merged = dict(store.metrics(image_name) or {})
    if before is not None:
        merged["before"] = before
    if after is not None:
        merged["after"] = after
    store.set_metrics(image_name, merged)
    return merged


def review_rows(store, names: Iterable[str] | None = None) -> list[dict]:
    """One flat record per image: name, status, note, ``before_*`` / ``after_*`` figures.

    Parameters
    ----------
    store : ProjectStore
    names : iterable of str, optional
        Images to list, in this order (those without review state appear as unreviewed); default:
        every image with review state.
    """
    known = {r["name"]: r for r in store.review_rows()}
    order = list(names) if names is not None else list(known)
    rows = []
    for name in order:
        rec = known.get(name, {"status": "unreviewed", "note": "", "metrics": None})
        metrics = rec["metrics"] or {}
        row = {"name": name, "status": rec["status"], "note": rec["note"]}
        for part in ("before", "after"):
            figures = metrics.get(part) or {}
            for key in _SCALARS:
                row[f"{part}_{key}"] = figures.get(key)
        b, a = row["before_mean_iou"], row["after_mean_iou"]
        row["delta_mean_iou"] = a - b if a is not None and b is not None else None
        row["per_class"] = {part: (metrics.get(part) or {}).get("iou") for part in ("before", "after")}
        rows.append(row)
    return rows


def export_review(path: str | PathLike, store, names: Iterable[str] | None = None) -> list[dict]:
    """Write the review report to ``path``: ``.csv`` (one row per image) or ``.json``, atomically.

    The JSON form adds per-class IoU before/after and a count of images per status.

    Returns
    -------
    list of dict
        The rows written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"{path}: export to .csv or .json")
    rows = review_rows(store, names)
    if suffix == ".json":
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        payload = {"images": rows, "status_counts": counts}
        atomic_write_bytes(path, json.dumps(payload, indent=2).encode("utf-8"))
    else:
        buf = io.StringIO()
        columns = [c for c in rows[0] if c != "per_class"] if rows else ["name", "status", "note"]
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: csv_cell(r.get(k)) for k in columns})
        atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return rows
