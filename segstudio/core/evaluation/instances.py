"""Instance matching: pairwise overlaps of two instance masks, greedy one-to-one matches at an IoU
threshold, and TP / FP / FN / PQ (the semantic figures are ``metrics.ConfusionMatrix``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from segstudio.core.errors import MaskSizeMismatch
from segstudio.core.evaluation.metrics import _MAX_DENSE_PAIRS

if TYPE_CHECKING:  # masks.py imports nothing from here; the import is for type hints only
    from segstudio.core.io.masks import InstanceMask

__all__ = ["InstanceMetrics", "match_instances", "instance_overlaps", "InstanceOverlaps", "greedy_matches"]

@dataclass
class InstanceOverlaps:
    """Pairwise overlap of the instances of two instance masks.

    Attributes
    ----------
    gt_ids, pred_ids : numpy.ndarray
        Instance ids present in each mask (0 excluded), ascending.
    gt_area, pred_area : numpy.ndarray
        Pixel count of each of those instances.
    intersection : numpy.ndarray
        ``(len(gt_ids), len(pred_ids))`` int64 pixels shared by each pair.
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    gt_area: np.ndarray
    pred_area: np.ndarray
    intersection: np.ndarray

    def iou(self) -> np.ndarray:
        """``(G, P)`` float IoU of each pair."""
        union = self.gt_area[:, None] + self.pred_area[None, :] - self.intersection
        return np.divide(self.intersection, union, out=np.zeros(union.shape), where=union > 0)


def _dense_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(present ids, per-pixel dense index with 0 = none, area per present id)."""
    flat = np.asarray(ids).reshape(-1)
    if flat.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, np.zeros(0, np.int64), empty
    top = int(flat.max())
    if int(flat.min()) >= 0 and top < (1 << 22):
        # The common case (VOC, Cityscapes ids < 34000, semantic_to_instances): one bincount gives
        # presence and areas, and a LUT maps ids to dense indices without sorting the image.
        counts = np.bincount(flat, minlength=top + 1)
        counts[0] = 0
        present = np.flatnonzero(counts)
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[present] = np.arange(1, present.size + 1)
        return present, lut[flat], counts[present]
    uniq, inverse = np.unique(flat, return_inverse=True)
    keep = uniq > 0
    lut = np.zeros(uniq.size, dtype=np.int64)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    dense = lut[inverse.reshape(-1)]
    areas = np.bincount(dense, minlength=int(keep.sum()) + 1)[1:]
    return uniq[keep], dense, areas


def instance_overlaps(gt_ids: np.ndarray, pred_ids: np.ndarray) -> InstanceOverlaps:
    """Intersections of every gt instance with every predicted instance in one joint histogram.

    Parameters
    ----------
    gt_ids, pred_ids : numpy.ndarray
        Same-shape integer id images, 0 = no instance.
    """
    gt_ids = np.asarray(gt_ids)
    pred_ids = np.asarray(pred_ids)
    if gt_ids.shape != pred_ids.shape:
        raise MaskSizeMismatch(None, f"gt instances shape {gt_ids.shape} != predicted shape {pred_ids.shape}")
    g_present, g_dense, g_area = _dense_ids(gt_ids)
    p_present, p_dense, p_area = _dense_ids(pred_ids)
    ng, npred = g_present.size, p_present.size
    inter = np.zeros((ng, npred), dtype=np.int64)
    if ng and npred:
        both = (g_dense > 0) & (p_dense > 0)
        pair = (g_dense[both] - 1) * npred + (p_dense[both] - 1)
        if ng * npred <= _MAX_DENSE_PAIRS:
            inter = np.bincount(pair, minlength=ng * npred).reshape(ng, npred)
        else:
            uniq, cnt = np.unique(pair, return_counts=True)
            inter.reshape(-1)[uniq] = cnt
    return InstanceOverlaps(g_present, p_present, g_area.astype(np.int64), p_area.astype(np.int64), inter)


@dataclass
class InstanceMetrics:
    """Instance detection/segmentation figures of one image or a whole dataset.

    ``precision``, ``recall``, ``f1``, ``pq``, ``sq`` and ``rq`` are ``None`` where undefined (no
    instance on either side, or no match for ``sq``). ``matches`` holds ``(gt_id, pred_id, iou)``.
    ``iou_sum`` (sum of matched IoUs) lets figures be summed over images with ``+``: dataset PQ is
    computed from the summed counts, never averaged. ``iou_sum`` is a float, so ``+`` in another
    order may differ in the last bit; the evaluate report sums the matched IoUs exactly instead (as a
    ``Fraction``, see ``report.score_sample``), which is what merged and distributed runs rely on.
    """

    iou_threshold: float
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    pq: float | None
    sq: float | None
    rq: float | None
    matches: list[tuple[int, int, float]] = field(default_factory=list)
    iou_sum: float = 0.0

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int, iou_sum: float, iou_threshold: float,
                    matches: list[tuple[int, int, float]] | None = None) -> InstanceMetrics:
        """Derive every ratio from the raw counts."""
        def div(a: float, b: float) -> float | None:
            return float(a / b) if b else None
        rq_den = tp + fp / 2 + fn / 2
        return cls(iou_threshold=iou_threshold, tp=int(tp), fp=int(fp), fn=int(fn),
                   precision=div(tp, tp + fp), recall=div(tp, tp + fn), f1=div(2 * tp, 2 * tp + fp + fn),
                   pq=div(iou_sum, rq_den), sq=div(iou_sum, tp), rq=div(tp, rq_den),
                   matches=list(matches or []), iou_sum=float(iou_sum))

    def __add__(self, other: InstanceMetrics) -> InstanceMetrics:
        if other.iou_threshold != self.iou_threshold:
            raise ValueError("cannot add instance metrics computed at different IoU thresholds")
        # Matches refer to per-image instance ids, meaningless once images are pooled.
        return InstanceMetrics.from_counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                                           self.iou_sum + other.iou_sum, self.iou_threshold)


def _classes_of(inst: Any, ids: np.ndarray) -> np.ndarray:
    # Ids that the mask's class dict does not name get -1, which only ever matches -1.
    classes = getattr(inst, "classes", None) or {}
    return np.array([classes.get(int(i), -1) for i in ids], dtype=np.int64)


def greedy_matches(ov: InstanceOverlaps, iou_threshold: float,
                   same_class: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """One-to-one matches at IoU >= threshold, highest IoU first.

    Parameters
    ----------
    ov : InstanceOverlaps
        Pairwise overlaps from :func:`instance_overlaps`.
    iou_threshold : float
        Minimum IoU of a match.
    same_class : numpy.ndarray, optional
        ``(G, P)`` bool, pairs allowed to match; all pairs when omitted.

    Returns
    -------
    list of (gt_id, pred_id, iou)
        Greedy is exact above 0.5, where each instance has at most one candidate partner.
    """
    iou = ov.iou()
    ok = (iou >= iou_threshold) & (ov.intersection > 0)
    if same_class is not None:
        ok &= same_class
    gi, pi = np.nonzero(ok)
    order = np.lexsort((pi, gi, -iou[gi, pi]))
    used_g: set[int] = set()
    used_p: set[int] = set()
    matches = []
    for k in order:
        g, p = int(gi[k]), int(pi[k])
        if g in used_g or p in used_p:
            continue
        used_g.add(g)
        used_p.add(p)
        matches.append((int(ov.gt_ids[g]), int(ov.pred_ids[p]), float(iou[g, p])))
    return matches


def match_instances(gt: InstanceMask, pred: InstanceMask, iou_threshold: float = 0.5,
                    match_class: bool = True) -> InstanceMetrics:
    """Match predicted instances to ground-truth instances and score them.

    Parameters
    ----------
    gt, pred : InstanceMask
        Anything with ``ids`` (HxW int, 0 = none) and ``classes`` (instance id -> class id).
    iou_threshold : float
        A pair matches when its IoU is >= this value (0.5 by default).
    match_class : bool
        Only instances of the same class may match.

    Returns
    -------
    InstanceMetrics
        TP = matched pairs, FP = unmatched predictions, FN = unmatched ground truth;
        SQ = mean IoU of the matches, RQ = TP / (TP + FP/2 + FN/2), PQ = SQ x RQ.
    """
    ov = instance_overlaps(gt.ids, pred.ids)
    same = None
    if match_class:
        same = _classes_of(gt, ov.gt_ids)[:, None] == _classes_of(pred, ov.pred_ids)[None, :]
    matches = greedy_matches(ov, iou_threshold, same)
    tp = len(matches)
    return InstanceMetrics.from_counts(tp, ov.pred_ids.size - tp, ov.gt_ids.size - tp,
                                       sum(m[2] for m in matches), iou_threshold, matches)
