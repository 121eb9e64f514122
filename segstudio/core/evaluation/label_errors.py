"""Confident learning at region level: which labelled regions does the model confidently call wrong?

Definitions (see ``docs/label-errors.md`` for the notation of Northcutt et al. and where this differs
from ``cleanlab.segmentation``):

* per-class threshold ``t_k`` = mean predicted probability of class ``k`` over the pixels labelled
  ``k`` in the whole dataset (float64 sums, :class:`ThresholdAccumulator`); a class never labelled has no
  threshold (NaN) and is never suggested; thresholds are clipped below at ``2e-6`` as cleanlab does;
* a scored pixel labelled ``y`` is *suspect* when some class ``k != y`` has ``p_k >= t_k``; the
  suggestion is the most probable such ``k``;
* suspect pixels with the same suggestion form regions (8-connected components of at least
  ``min_area`` pixels); a region's ``given`` class is the most common label in it, its ``score`` the mean
  over its pixels of ``p_suggested - p_given`` (in ``[-1, 1]``; high = the model is sure the label is
  wrong), and regions are ranked by score, best first;
* an image's label quality is the softmin of its pixels' self-confidence ``p_y`` (cleanlab's
  ``segmentation.rank`` "softmin", temperature 0.1): 1 = every label confidently agreed with, near 0 =
  some labels the model confidently contradicts.

Probabilities are ``(C, H, W)`` float16/float32 summing to 1 over ``C`` (a softmax). The sum lets a pixel
whose ``p_y > 1 - min_k t_k`` be passed over without looking at its other classes: no other class can
reach its threshold. That bound is what makes scoring a 512² image with 21 classes cost a few
milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from segstudio.core.errors import MaskSizeMismatch

__all__ = ["LabelErrorRegion", "ImageLabelErrors", "ThresholdAccumulator", "class_thresholds",
           "suspect_pixels", "suspect_regions", "image_quality", "score_image", "THRESHOLD_FLOOR"]

THRESHOLD_FLOOR = 2e-6          # cleanlab's CONFIDENT_THRESHOLDS_LOWER_BOUND
DEFAULT_TEMPERATURE = 0.1       # cleanlab's softmin temperature
# Slack on "probabilities sum to 1" in the fast path; inputs further off are refused by the readers.
_SUM_SLACK = 0.02


@dataclass
class LabelErrorRegion:
    """One suspected label error: a connected region the model would relabel ``given -> suggested``.

    Attributes
    ----------
    image : str
        Image name.
    bbox : tuple of int
        ``(x, y, w, h)``.
    area : int
        Pixels in the region.
    given, suggested : int
        Class ids: the region's most common label, and the class the model suggests for all its pixels.
    score : float
        Mean over the region of ``p_suggested - p_given``; higher = more likely a real label error.
    mask : ndarray or None
        ``(h, w)`` bool mask of the region inside ``bbox`` (what "accept" relabels).
    """

    image: str
    bbox: tuple[int, int, int, int]
    area: int
    given: int
    suggested: int
    score: float
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self, class_names: list[str] | None = None) -> dict:
        """The report's region entry; class names instead of ids when ``class_names`` is given."""
        def name(k: int):
            return class_names[k] if class_names is not None and 0 <= k < len(class_names) else k
        return {"image": self.image, "bbox": [int(v) for v in self.bbox], "area": int(self.area),
                "given": name(self.given), "suggested": name(self.suggested), "score": float(self.score)}


@dataclass
class ImageLabelErrors:
    """Label-error findings of one image: its quality score, suspect pixel count and regions (best first)."""

    name: str
    quality: float | None
    suspect_pixels: int
    regions: list[LabelErrorRegion]


def _valid_labels(labels: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    return (labels != ignore_index) & (labels >= 0) & (labels < num_classes)


def _check(probs: np.ndarray, labels: np.ndarray) -> None:
    if probs.ndim != 3 or labels.shape != probs.shape[1:]:
        raise MaskSizeMismatch(None, f"probabilities {probs.shape} must be (C, H, W) with the labels' "
                                     f"H x W {labels.shape}")


_ARANGE: dict[int, np.ndarray] = {}


def _pixel_offsets(n: int) -> np.ndarray:
    """``arange(n)`` as intp, kept for the last image size (every image of a dataset usually shares it)."""
    offsets = _ARANGE.get(n)
    if offsets is None:
        _ARANGE.clear()
        offsets = _ARANGE[n] = np.arange(n, dtype=np.intp)
    return offsets


def _self_confidence(probs: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """HxW float32 p_y (0 where the label is not scored): one gather, no pass over C."""
    c, h, w = probs.shape
    flat = labels.astype(np.intp).reshape(-1)
    np.clip(flat, 0, c - 1, out=flat)              # unscored labels read class c-1, zeroed below
    flat *= h * w
    flat += _pixel_offsets(h * w)
    py = np.ascontiguousarray(probs).reshape(-1).take(flat).reshape(h, w).astype(np.float32)
    py[~valid] = 0
    return py


def class_thresholds(prob_sums: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """``t_k = prob_sums[k] / label_counts[k]``: (C,) float64, NaN for a class with no labelled pixel,
    clipped below at :data:`THRESHOLD_FLOOR`."""
    sums = np.asarray(prob_sums, dtype=np.float64)
    counts = np.asarray(label_counts, dtype=np.float64)
    out = np.full(sums.shape, np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    return np.where(np.isnan(out), np.nan, np.maximum(out, THRESHOLD_FLOOR))


class ThresholdAccumulator:
    """Accumulates the per-class thresholds over a dataset, one image at a time, in float64.

    >>> acc = ThresholdAccumulator(num_classes)
    >>> for probs, labels in images: acc.add(probs, labels, ignore_index=255)
    >>> t = acc.thresholds()
    """

    def __init__(self, num_classes: int):
        self.num_classes = int(num_classes)
        self.prob_sums = np.zeros(self.num_classes, dtype=np.float64)
        self.label_counts = np.zeros(self.num_classes, dtype=np.int64)

    def add(self, probs: np.ndarray, labels: np.ndarray, ignore_index: int = 255) -> None:
        """Add one image: ``probs`` (C, H, W), ``labels`` HxW class ids."""
        probs, labels = np.asarray(probs), np.asarray(labels)
        _check(probs, labels)
        if probs.shape[0] != self.num_classes:
            raise ValueError(f"probabilities have {probs.shape[0]} classes, expected {self.num_classes}")
        valid = _valid_labels(labels, self.num_classes, ignore_index)
        py = _self_confidence(probs, labels, valid)
        given = labels[valid].astype(np.intp)
        self.prob_sums += np.bincount(given, weights=py[valid].astype(np.float64), minlength=self.num_classes)
        self.label_counts += np.bincount(given, minlength=self.num_classes)

    def thresholds(self) -> np.ndarray:
        """(C,) float64 ``t_k`` (see :func:`class_thresholds`)."""
        return class_thresholds(self.prob_sums, self.label_counts)


def suspect_pixels(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray,
                   ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Pixels the model confidently calls mislabelled.

    Returns
    -------
    suspect : ndarray
        HxW bool: labelled ``y`` (scored) and some ``k != y`` has ``p_k >= t_k``.
    suggested : ndarray
        HxW int32: the most probable such ``k``; -1 where the pixel is not suspect.
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    _check(probs, labels)
    c, h, w = probs.shape
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (c,):
        raise ValueError(f"{t.shape[0] if t.ndim else 0} thresholds for {c} classes")
    valid = _valid_labels(labels, c, ignore_index)
    return _suspect(probs, labels, t, valid, _self_confidence(probs, labels, valid))


def _suspect(probs: np.ndarray, labels: np.ndarray, t: np.ndarray, valid: np.ndarray,
             py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, h, w = probs.shape
    suspect = np.zeros((h, w), dtype=bool)
    suggested = np.full((h, w), -1, dtype=np.int32)
    if np.isnan(t).all():
        return suspect, suggested
    # p_k <= 1 - p_y for k != y, so a pixel with p_y above 1 - min t cannot be suspect.
    bound = 1.0 - float(np.nanmin(t)) + _SUM_SLACK
    rows, cols = np.nonzero(valid & (py < bound))
    if rows.size == 0:
        return suspect, suggested
    cand = probs[:, rows, cols].astype(np.float64)           # (C, n)
    given = labels[rows, cols].astype(np.intp)
    over = cand >= np.where(np.isnan(t), np.inf, t)[:, None]
    over[given, np.arange(given.size)] = False
    hit = over.any(axis=0)
    best = np.argmax(np.where(over, cand, -1.0), axis=0)
    suspect[rows[hit], cols[hit]] = True
    suggested[rows[hit], cols[hit]] = best[hit]
    return suspect, suggested


def suspect_regions(suspect: np.ndarray, suggested: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                    min_area: int = 1, image_name: str = "") -> list[LabelErrorRegion]:
    """Group suspect pixels with the same suggestion into 8-connected regions of at least ``min_area``
    pixels; best (highest score) first, ties larger first."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    c = probs.shape[0]
    regions: list[LabelErrorRegion] = []
    for k in np.unique(suggested[suspect]):
        k = int(k)
        mask = (suspect & (suggested == k)).view(np.uint8)
        n, cc, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = np.nonzero(stats[1:, cv2.CC_STAT_AREA] >= max(int(min_area), 1))[0] + 1
        if keep.size == 0:
            continue
        rows, cols = np.nonzero(cc)
        comp = cc[rows, cols]
        given = labels[rows, cols].astype(np.intp)
        valid_given = np.clip(given, 0, c - 1)
        margin = probs[k, rows, cols].astype(np.float64) - probs[valid_given, rows, cols].astype(np.float64)
        margin_sum = np.bincount(comp, weights=margin, minlength=n)
        given_counts = np.bincount(comp * c + valid_given, minlength=n * c).reshape(n, c)
        for label in keep:
            x, y, w, h, area = (int(v) for v in stats[label])
            regions.append(LabelErrorRegion(
                image=image_name, bbox=(x, y, w, h), area=area, given=int(np.argmax(given_counts[label])),
                suggested=k, score=float(margin_sum[label] / area),
                mask=cc[y:y + h, x:x + w] == label))
    regions.sort(key=lambda r: (-r.score, -r.area))
    return regions


def image_quality(probs: np.ndarray, labels: np.ndarray, ignore_index: int = 255,
                  temperature: float = DEFAULT_TEMPERATURE) -> float | None:
    """Label quality of one image in ``[0, 1]``: the softmin of the scored pixels' ``p_y``.

    ``sum(s * exp((1 - s) / T)) / sum(exp((1 - s) / T))`` over self-confidences ``s``: near the mean for
    large ``T``, near the worst pixel for small ``T``. ``None`` when no pixel is scored.
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    _check(probs, labels)
    valid = _valid_labels(labels, probs.shape[0], ignore_index)
    return _quality(_self_confidence(probs, labels, valid), valid, temperature)


def _quality(py: np.ndarray, valid: np.ndarray, temperature: float) -> float | None:
    if not valid.any():
        return None
    s = py[valid]
    # exp((1 - s)/T) scaled by its maximum exp((1 - min s)/T) so that nothing overflows; float32 is
    # exact enough for a score (and ten times faster to exponentiate than float64).
    weights = np.exp((s.min() - s) * np.float32(1.0 / temperature))
    # Not np.dot: a BLAS call for one vector product costs more in thread start-up than it computes.
    return float((s * weights).sum(dtype=np.float64) / weights.sum(dtype=np.float64))


def score_image(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, *, ignore_index: int = 255,
                min_area: int = 1, image_name: str = "") -> ImageLabelErrors:
    """Suspect pixels, regions (best first) and label quality of one image."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    _check(probs, labels)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (probs.shape[0],):
        raise ValueError(f"{t.shape[0] if t.ndim else 0} thresholds for {probs.shape[0]} classes")
    valid = _valid_labels(labels, probs.shape[0], ignore_index)
    py = _self_confidence(probs, labels, valid)
    suspect, suggested = _suspect(probs, labels, t, valid, py)
    return ImageLabelErrors(
        name=image_name, quality=_quality(py, valid, DEFAULT_TEMPERATURE),
        suspect_pixels=int(suspect.sum()),
        regions=suspect_regions(suspect, suggested, labels, probs, min_area, image_name))
