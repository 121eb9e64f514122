"""Confident learning at region level: which labelled regions does the model confidently call wrong?

Definitions (see ``docs/label-errors.md`` for the notation of Northcutt et al. and where this differs
from ``cleanlab.segmentation``):

* per-class threshold ``t_k`` = mean predicted probability of class ``k`` over the pixels labelled
  ``k`` in the whole dataset (float64 sums, :class:`ThresholdAccumulator`); a class never labelled has no
  threshold (NaN) and is never suggested; thresholds are clipped below at ``2e-6`` as cleanlab does;
* a scored pixel labelled ``y`` is *suspect* when the model's most probable class ``k`` is not ``y``
  and ``p_k >= t_k`` (``rule="argmax"``, the default, cleanlab's per-pixel rule); the suggestion is
  ``k``. ``rule="any"`` flags a pixel when *some* ``k != y`` has ``p_k >= t_k`` (the most probable such
  ``k`` suggested): a superset, see ``docs/label-errors.md`` for why it is not the default;
* suspect pixels with the same suggestion seed regions, grown over the connected pixels where the model
  prefers the suggestion to the label, kept with at least ``min_area`` seeds and ``min_width`` pixels
  across; a region's ``given`` class is the most common label in it, its ``score`` the mean over its
  pixels of ``p_suggested - p_given`` (high = the model is sure the label is wrong), and regions are
  ranked by score, best first;
* an image's label quality is the softmin of its pixels' self-confidence ``p_y`` (cleanlab's
  ``segmentation.rank`` "softmin", temperature 0.1): 1 = every label confidently agreed with, near 0 =
  some labels the model confidently contradicts.

Probabilities are ``(C, H, W)`` float16/float32 summing to 1 over ``C`` (a softmax). The sum lets a pixel
whose ``p_y > 1/2`` (or ``> 1 - min_k t_k``) be passed over without looking at its other classes: no
other class can be more probable, or reach its threshold. That bound is what makes scoring a 512² image
with 21 classes cost a few milliseconds.
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
DEFAULT_MIN_WIDTH = 3           # score_image drops regions thinner than this (boundary slivers)
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
        self.add_sums(*self.image_sums(probs, labels, ignore_index))

    def image_sums(self, probs: np.ndarray, labels: np.ndarray,
                   ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
        """One image's ``(C,)`` float64 probability sums and ``(C,)`` int64 label counts, not added yet.

        Adding them with :meth:`add_sums` image by image in the same order gives the same float64
        sums, bit for bit, wherever each image's part was computed (a distributed engine's workers).
        """
        probs, labels = np.asarray(probs), np.asarray(labels)
        _check(probs, labels)
        if probs.shape[0] != self.num_classes:
            raise ValueError(f"probabilities have {probs.shape[0]} classes, expected {self.num_classes}")
        valid = _valid_labels(labels, self.num_classes, ignore_index)
        py = _self_confidence(probs, labels, valid)
        given = labels[valid].astype(np.intp)
        return (np.bincount(given, weights=py[valid].astype(np.float64), minlength=self.num_classes),
                np.bincount(given, minlength=self.num_classes).astype(np.int64))

    def add_sums(self, prob_sums: np.ndarray, label_counts: np.ndarray) -> None:
        """Add one image's part (see :meth:`image_sums`)."""
        self.prob_sums += prob_sums
        self.label_counts += label_counts

    def thresholds(self) -> np.ndarray:
        """(C,) float64 ``t_k`` (see :func:`class_thresholds`)."""
        return class_thresholds(self.prob_sums, self.label_counts)


RULES = ("argmax", "any")


def suspect_pixels(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray,
                   ignore_index: int = 255, rule: str = "argmax") -> tuple[np.ndarray, np.ndarray]:
    """Pixels the model confidently calls mislabelled.

    Parameters
    ----------
    rule : {"argmax", "any"}
        ``"argmax"`` (default): a pixel labelled ``y`` is suspect when the model's most probable class
        ``k`` is not ``y`` and ``p_k >= t_k`` (cleanlab's per-pixel count of the confident joint's
        off-diagonal); the suggestion is ``k``. ``"any"``: suspect when *some* ``k != y`` has
        ``p_k >= t_k``, the suggestion being the most probable such ``k``; a superset that also flags
        pixels the model still gives to ``y``, and floods when a class's threshold is near 0 (see
        ``docs/label-errors.md``).

    Returns
    -------
    suspect : ndarray
        HxW bool.
    suggested : ndarray
        HxW int32: the suggested class; -1 where the pixel is not suspect.
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    _check(probs, labels)
    c, h, w = probs.shape
    t = _checked_thresholds(thresholds, c)
    valid = _valid_labels(labels, c, ignore_index)
    return _suspect(probs, labels, t, valid, _self_confidence(probs, labels, valid), rule)


def _checked_thresholds(thresholds: np.ndarray, c: int) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (c,):
        raise ValueError(f"{t.shape[0] if t.ndim else 0} thresholds for {c} classes")
    return t


def _suspect(probs: np.ndarray, labels: np.ndarray, t: np.ndarray, valid: np.ndarray,
             py: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}, expected one of {RULES}")
    c, h, w = probs.shape
    suspect = np.zeros((h, w), dtype=bool)
    suggested = np.full((h, w), -1, dtype=np.int32)
    if np.isnan(t).all():
        return suspect, suggested
    # p_k <= 1 - p_y for k != y, so a pixel with p_y above 1 - min t cannot be suspect; under "argmax"
    # neither can one with p_y above 1/2 (y is then the most probable class).
    bound = 1.0 - float(np.nanmin(t))
    if rule == "argmax":
        bound = min(bound, 0.5)
    rows, cols = np.nonzero(valid & (py < bound + _SUM_SLACK))
    if rows.size == 0:
        return suspect, suggested
    cand = probs[:, rows, cols].astype(np.float32)           # (C, n)
    given = labels[rows, cols].astype(np.intp)
    reach = np.where(np.isnan(t), np.inf, t)
    if rule == "argmax":
        best = np.argmax(cand, axis=0)
        hit = (best != given) & (cand[best, np.arange(best.size)] >= reach[best])
    else:
        over = cand >= reach[:, None]
        over[given, np.arange(given.size)] = False
        hit = over.any(axis=0)
        best = np.argmax(np.where(over, cand, -1.0), axis=0)
    suspect[rows[hit], cols[hit]] = True
    suggested[rows[hit], cols[hit]] = best[hit]
    return suspect, suggested


def suspect_regions(suspect: np.ndarray, suggested: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                    min_area: int = 1, image_name: str = "", *, grow: bool = True, min_width: int = 1,
                    ignore_index: int = 255, self_confidence: np.ndarray | None = None) -> list[LabelErrorRegion]:
    """Regions of suspect pixels with the same suggestion, at least ``min_area`` pixels, best (highest
    score) first, ties larger first.

    With ``grow`` (the default) the suspect pixels are seeds, and a region is the 8-connected area
    around them where the model prefers the suggestion ``k`` to the given label (``p_k > p_given``),
    like hysteresis thresholding: a mislabelled blob comes out whole, not as the speckle of its pixels
    that cleared ``t_k``, so "accept" relabels all of it. ``min_area`` counts the region's seeds, so
    growing reports no region that the seeds alone would not. Without ``grow``, regions are the
    8-connected components of the suspect pixels themselves.

    ``min_width > 1`` drops regions with no part at least that many pixels across (the widest disc that
    fits inside, from a distance transform): the one- or two-pixel slivers along object outlines that
    imprecise boundaries leave are not what a label-error queue is for. ``1`` keeps every region.

    ``self_confidence`` (HxW ``p_given``) may be passed when already computed.
    """
    probs, labels = np.asarray(probs), np.asarray(labels)
    c = probs.shape[0]
    regions: list[LabelErrorRegion] = []
    seed_rows, seed_cols = np.nonzero(suspect)
    if seed_rows.size == 0:
        return regions
    seed_kind = suggested[seed_rows, seed_cols]
    if grow:
        # Growth needs p_k > p_given, so p_given < 1/2: only those pixels are looked at (sparse).
        valid = _valid_labels(labels, c, ignore_index)
        py = self_confidence if self_confidence is not None else _self_confidence(probs, labels, valid)
        grow_rows, grow_cols = np.nonzero(valid & (py < 0.5 + _SUM_SLACK))
        grow_given = labels[grow_rows, grow_cols].astype(np.intp)
        grow_py = py[grow_rows, grow_cols]
    for k in np.unique(seed_kind):
        k = int(k)
        rows, cols = seed_rows[seed_kind == k], seed_cols[seed_kind == k]
        n_seeds = rows.size
        if n_seeds < min_area:
            continue  # min_area counts seeds: no region of this suggestion can qualify
        if grow:
            more = (probs[k, grow_rows, grow_cols] > grow_py) & (grow_given != k)
            rows, cols = np.concatenate([rows, grow_rows[more]]), np.concatenate([cols, grow_cols[more]])
        # Components inside the bounding box of this suggestion's pixels only.
        y0, x0 = int(rows.min()), int(cols.min())
        crop = np.zeros((int(rows.max()) - y0 + 1, int(cols.max()) - x0 + 1), np.uint8)
        crop[rows - y0, cols - x0] = 1
        n, cc, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8)
        # min_area counts the seeds: growing never turns a speck of suspect pixels into a region
        seed_counts = np.bincount(cc[rows[:n_seeds] - y0, cols[:n_seeds] - x0], minlength=n)
        keep = np.nonzero(seed_counts[1:] >= max(int(min_area), 1))[0] + 1
        if keep.size == 0:
            continue
        rr, cc_cols = np.nonzero(cc)
        comp = cc[rr, cc_cols]
        rr, cc_cols = rr + y0, cc_cols + x0
        valid_given = np.clip(labels[rr, cc_cols].astype(np.intp), 0, c - 1)
        margin = probs[k, rr, cc_cols].astype(np.float64) - probs[valid_given, rr, cc_cols].astype(np.float64)
        margin_sum = np.bincount(comp, weights=margin, minlength=n)
        given_counts = np.bincount(comp * c + valid_given, minlength=n * c).reshape(n, c)
        for label in keep:
            x, y, w, h, area = (int(v) for v in stats[label])
            mask = cc[y:y + h, x:x + w] == label
            if min_width > 1 and _width(mask) < min_width:
                continue
            regions.append(LabelErrorRegion(
                image=image_name, bbox=(x + x0, y + y0, w, h), area=area,
                given=int(np.argmax(given_counts[label])), suggested=k,
                score=float(margin_sum[label] / area), mask=mask))
    regions.sort(key=lambda r: (-r.score, -r.area))
    return regions


def _width(mask: np.ndarray) -> int:
    """Diameter in pixels of the widest disc inside ``mask`` (1 for a one-pixel line)."""
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    deepest = float(cv2.distanceTransform(padded, cv2.DIST_L2, 3).max())
    return int(round(2 * deepest - 1))


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
                min_area: int = 1, image_name: str = "", grow: bool = True,
                min_width: int = DEFAULT_MIN_WIDTH, rule: str = "argmax") -> ImageLabelErrors:
    """Suspect pixels, regions (best first) and label quality of one image."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    _check(probs, labels)
    t = _checked_thresholds(thresholds, probs.shape[0])
    valid = _valid_labels(labels, probs.shape[0], ignore_index)
    py = _self_confidence(probs, labels, valid)
    suspect, suggested = _suspect(probs, labels, t, valid, py, rule)
    return ImageLabelErrors(
        name=image_name, quality=_quality(py, valid, DEFAULT_TEMPERATURE),
        suspect_pixels=int(suspect.sum()),
        regions=suspect_regions(suspect, suggested, labels, probs, min_area, image_name, grow=grow,
                                min_width=min_width, ignore_index=ignore_index, self_confidence=py))
