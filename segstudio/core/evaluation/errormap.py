"""Error maps: where a prediction disagrees with the ground truth, and how.

Every pixel gets a uint8 *error code*; ``ERROR_COLORS`` turns codes into an RGBA overlay through the
same 256-entry lookup-table path as class masks. The functions work on any sub-rectangle so the
editor recomputes only the dirty bounding box of a stroke.

Colours follow the Okabe-Ito palette, chosen to stay distinct under the common colour-vision
deficiencies: false positives are vermillion (warm), false negatives are blue (cool) — the pair that
matters most differs in both hue and lightness — misclassified pixels are reddish purple, ignored
pixels a neutral grey, correct pixels a faint bluish green, and background is transparent.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from segstudio.core.errors import MaskSizeMismatch
from segstudio.core.evaluation.instances import greedy_matches, instance_overlaps

__all__ = [
    "CORRECT", "FALSE_POSITIVE", "FALSE_NEGATIVE", "IGNORED", "MISCLASSIFIED", "BACKGROUND",
    "ERROR_COLORS", "ERROR_NAMES", "WRONG_CODES",
    "error_codes", "pair_tint", "ErrorRegion", "error_regions", "error_components",
    "InstanceMark", "instance_error_marks",
]

CORRECT, FALSE_POSITIVE, FALSE_NEGATIVE, IGNORED, MISCLASSIFIED, BACKGROUND = 0, 1, 2, 3, 4, 5
WRONG_CODES = (FALSE_POSITIVE, FALSE_NEGATIVE, MISCLASSIFIED)
ERROR_NAMES = {CORRECT: "correct", FALSE_POSITIVE: "false positive", FALSE_NEGATIVE: "false negative",
               IGNORED: "ignored", MISCLASSIFIED: "misclassified", BACKGROUND: "background"}

ERROR_COLORS = np.zeros((256, 4), dtype=np.uint8)
ERROR_COLORS[CORRECT] = (0, 158, 115, 60)        # Okabe-Ito bluish green, faint: context, not signal
ERROR_COLORS[FALSE_POSITIVE] = (213, 94, 0, 220)  # vermillion
ERROR_COLORS[FALSE_NEGATIVE] = (0, 114, 178, 220)  # blue
ERROR_COLORS[IGNORED] = (128, 128, 128, 140)      # neutral grey
ERROR_COLORS[MISCLASSIFIED] = (204, 121, 167, 220)  # reddish purple
ERROR_COLORS[BACKGROUND] = (0, 0, 0, 0)
ERROR_COLORS.setflags(write=False)


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise MaskSizeMismatch(None, f"ground truth shape {gt.shape} != prediction shape {pred.shape}")
    return gt, pred


def _codes_generic(gt: np.ndarray, pred: np.ndarray, ignore_index: int, class_id: int | None,
                   background: int | None) -> np.ndarray:
    if class_id is not None:
        in_gt = gt == class_id
        in_pred = pred == class_id
        codes = np.full(gt.shape, BACKGROUND, dtype=np.uint8)
        codes[in_gt & in_pred] = CORRECT
        codes[in_pred & ~in_gt] = FALSE_POSITIVE
        codes[in_gt & ~in_pred] = FALSE_NEGATIVE
    else:
        same = gt == pred
        codes = np.where(same, CORRECT, MISCLASSIFIED).astype(np.uint8)
        if background is not None:
            gt_bg = gt == background
            pred_bg = pred == background
            codes[same & gt_bg] = BACKGROUND
            codes[gt_bg & ~pred_bg] = FALSE_POSITIVE
            codes[pred_bg & ~gt_bg] = FALSE_NEGATIVE
    # The same pixels the confusion matrix skips: a code must never claim an error it does not count.
    codes[(gt == ignore_index) | (pred == ignore_index)] = IGNORED
    return codes


@lru_cache(maxsize=64)
def _code_table(ignore_index: int, class_id: int | None, background: int | None) -> np.ndarray:
    # Every (gt, pred) byte pair precomputed once: one gather per pixel beats five comparisons.
    g, p = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    table = _codes_generic(g, p, ignore_index, class_id, background).reshape(-1)
    table.setflags(write=False)
    return table


def error_codes(gt: np.ndarray, pred: np.ndarray, ignore_index: int = 255, class_id: int | None = None,
                background: int | None = 0) -> np.ndarray:
    """Per-pixel error code of a prediction against the ground truth.

    Parameters
    ----------
    gt, pred : numpy.ndarray
        Same-shape integer class-id arrays (a whole mask or any sub-rectangle of one).
    ignore_index : int
        Pixels whose gt *or* prediction equals it are ``IGNORED`` (as the confusion matrix skips them).
    class_id : int, optional
        One-class mode: TP -> ``CORRECT``, prediction k where gt is not k -> ``FALSE_POSITIVE``,
        gt k not predicted -> ``FALSE_NEGATIVE``, everything else -> ``BACKGROUND``.
    background : int or None
        All-classes mode: the background class (0). Both background -> ``BACKGROUND``; gt background
        and prediction foreground -> ``FALSE_POSITIVE``; the reverse -> ``FALSE_NEGATIVE``; two
        different foreground classes -> ``MISCLASSIFIED``; agreement -> ``CORRECT``. ``None``: there
        is no background class, any disagreement is ``MISCLASSIFIED``.

    Returns
    -------
    numpy.ndarray
        uint8 codes, same shape as the inputs; colour them with ``ERROR_COLORS``.
    """
    gt, pred = _check_pair(gt, pred)
    if gt.dtype == np.uint8 and pred.dtype == np.uint8:
        idx = gt.astype(np.uint16) << 8
        idx |= pred
        table = _code_table(int(ignore_index), None if class_id is None else int(class_id),
                            None if background is None else int(background))
        return table[idx]
    return _codes_generic(gt, pred, ignore_index, class_id, background)


def pair_tint(gt: np.ndarray, pred: np.ndarray, class_table: Any, *, ignore_index: int | None = None,
              background: int | None = 0, stripe: int = 4, origin: tuple[int, int] = (0, 0),
              alpha: int = 220) -> np.ndarray:
    """RGBA overlay painting each misclassified pixel with its (gt, prediction) class pair.

    Misclassified regions are hatched with 45-degree stripes alternating the ground-truth class
    colour and the predicted class colour, so "road predicted as sidewalk" reads directly off the
    canvas in both classes' own colours; any other pixel is transparent.

    Parameters
    ----------
    gt, pred : numpy.ndarray
        Same-shape 2-D class-id arrays (whole mask or sub-rectangle).
    class_table : ClassTable
        Anything with ``colors`` ((C, 4) uint8 RGBA) and ``ignore_index``.
    ignore_index : int, optional
        Defaults to ``class_table.ignore_index``.
    background : int or None
        As in :func:`error_codes`; only ``MISCLASSIFIED`` pixels are tinted.
    stripe : int
        Stripe width in image pixels; 0 paints a flat 50/50 blend of the two colours instead.
    origin : (x, y)
        Image position of ``gt[0, 0]``, so stripes of sub-rectangles line up with the whole image.
    alpha : int
        Opacity of the tint.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 4)`` uint8 RGBA.
    """
    gt, pred = _check_pair(gt, pred)
    if gt.ndim != 2:
        raise ValueError(f"pair_tint needs 2-D masks, got shape {gt.shape}")
    if ignore_index is None:
        ignore_index = int(getattr(class_table, "ignore_index", 255))
    colors = np.asarray(class_table.colors, dtype=np.uint8)
    c = colors.shape[0]
    out = np.zeros(gt.shape + (4,), dtype=np.uint8)
    wrong = error_codes(gt, pred, ignore_index, None, background) == MISCLASSIFIED
    wrong &= (gt >= 0) & (gt < c) & (pred >= 0) & (pred < c)  # ids without a colour get no tint
    ys, xs = np.nonzero(wrong)
    if ys.size == 0:
        return out
    g_rgb = colors[gt[ys, xs].astype(np.intp), :3]
    p_rgb = colors[pred[ys, xs].astype(np.intp), :3]
    if stripe > 0:
        band = ((xs + origin[0] + ys + origin[1]) // stripe) % 2 == 1
        rgb = np.where(band[:, None], p_rgb, g_rgb)
    else:
        rgb = ((g_rgb.astype(np.uint16) + p_rgb) // 2).astype(np.uint8)
    out[ys, xs, :3] = rgb
    out[ys, xs, 3] = alpha
    return out


@dataclass
class ErrorRegion:
    """One connected blob of wrong pixels.

    Attributes
    ----------
    label : int
        Component label in the label image of :func:`error_components`.
    size : int
        Pixel count.
    gt_class, pred_class : int
        Most frequent ground-truth / predicted class in the blob (ties -> lowest id).
    bbox : (x, y, w, h)
        Bounding box, relative to the arrays passed in.
    code : int
        Most frequent error code in the blob (``FALSE_POSITIVE``, ``FALSE_NEGATIVE`` or
        ``MISCLASSIFIED``).
    """

    label: int
    size: int
    gt_class: int
    pred_class: int
    bbox: tuple[int, int, int, int]
    code: int = MISCLASSIFIED


_MAJORITY_CHUNK = 1 << 22
_WRONG = np.zeros(256, bool)   # error code -> counts as a wrong pixel (a lookup, not np.isin's sort)
_WRONG[list(WRONG_CODES)] = True


def _majority(labels: np.ndarray, values: np.ndarray, n_labels: int) -> np.ndarray:
    """Most frequent value per label (ties -> smallest value); labels in 1..n_labels-1."""
    span = int(values.max()) + 1 if values.size else 1
    if n_labels * span <= (1 << 22):
        # in chunks: the int64 keys of every wrong pixel at once cost 8 bytes each (~100 MB at 4096²)
        hist = np.zeros(n_labels * span, np.int64)
        for start in range(0, labels.size, _MAJORITY_CHUNK):
            part = slice(start, start + _MAJORITY_CHUNK)
            hist += np.bincount(labels[part].astype(np.int64) * span + values[part], minlength=n_labels * span)
        return hist.reshape(n_labels, span).argmax(axis=1)
    # Many blobs and wide ids: count distinct (label, value) pairs instead of a dense table.
    key = labels.astype(np.int64) * span + values.astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    lab, val = uniq // span, uniq % span
    order = np.lexsort((val, -counts, lab))
    first = np.ones(order.size, bool)
    first[1:] = lab[order][1:] != lab[order][:-1]
    out = np.zeros(n_labels, dtype=np.int64)
    out[lab[order][first]] = val[order][first]
    return out


def error_components(gt: np.ndarray, pred: np.ndarray, ignore_index: int = 255,
                     class_id: int | None = None, min_size: int = 1, connectivity: int = 8,
                     background: int | None = 0, codes: np.ndarray | None = None
                     ) -> tuple[np.ndarray, list[ErrorRegion]]:
    """Label image of the wrong pixels and their regions; see :func:`error_regions`.

    Returns
    -------
    labels : numpy.ndarray
        int32, 0 where the pixel is not wrong; regions below ``min_size`` keep their label here.
    regions : list of ErrorRegion
        Sorted by size, largest first (ties by label).
    """
    gt, pred = _check_pair(gt, pred)
    if gt.ndim != 2:
        raise ValueError(f"error regions need 2-D masks, got shape {gt.shape}")
    if codes is None:
        codes = error_codes(gt, pred, ignore_index, class_id, background)
    wrong = _WRONG[codes]
    if not wrong.any():
        return np.zeros(gt.shape, np.int32), []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(wrong.view(np.uint8), connectivity=connectivity,
                                                           ltype=cv2.CV_32S)
    lab = labels[wrong]
    gt_major = _majority(lab, gt[wrong], n)
    pred_major = _majority(lab, pred[wrong], n)
    code_major = _majority(lab, codes[wrong], n)
    regions = []
    # Filter before building objects: noisy predictions produce tens of thousands of specks.
    for k in np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_size):
        if k == 0:
            continue
        x, y, w, h, size = (int(v) for v in stats[k])
        regions.append(ErrorRegion(int(k), size, int(gt_major[k]), int(pred_major[k]), (x, y, w, h),
                                   int(code_major[k])))
    regions.sort(key=lambda r: (-r.size, r.label))
    return labels, regions


def error_regions(gt: np.ndarray, pred: np.ndarray, ignore_index: int = 255, class_id: int | None = None,
                  min_size: int = 1, connectivity: int = 8, background: int | None = 0,
                  codes: np.ndarray | None = None) -> list[ErrorRegion]:
    """Connected regions of wrong pixels, largest first.

    Parameters
    ----------
    gt, pred : numpy.ndarray
        Same-shape 2-D class-id arrays.
    ignore_index : int
        Ignored pixels are never wrong.
    class_id : int, optional
        One-class mode: only that class's false-positive and false-negative pixels.
    min_size : int
        Drop regions with fewer pixels.
    connectivity : {4, 8}
        Pixel neighbourhood.
    background : int or None
        As in :func:`error_codes`.
    codes : numpy.ndarray, optional
        The error codes of ``gt`` against ``pred`` with these settings, when already known (a
        comparison's): saves recomputing them.

    Returns
    -------
    list of ErrorRegion
    """
    return error_components(gt, pred, ignore_index, class_id, min_size, connectivity, background, codes)[1]


# ---------------------------------------------------------------------- instances
@dataclass
class InstanceMark:
    """An instance the UI should flag.

    Attributes
    ----------
    kind : str
        ``"missed"`` (gt with no match), ``"spurious"`` (prediction with no match), ``"split"`` (gt
        cut into >= 2 predictions) or ``"merged"`` (one prediction covering >= 2 gts).
    layer : str
        ``"gt"`` or ``"pred"``: which mask ``instance_id`` belongs to (split -> gt, merged -> pred).
    instance_id : int
        The flagged instance.
    related : tuple of int
        Split: the prediction pieces; merged: the covered gt instances; otherwise empty.
    bbox : (x, y, w, h)
        Bounding box of the flagged instance.
    """

    kind: str
    layer: str
    instance_id: int
    related: tuple[int, ...]
    bbox: tuple[int, int, int, int]


def _bboxes(ids: np.ndarray, wanted: list[int]) -> dict[int, tuple[int, int, int, int]]:
    """Bounding boxes of a few instance ids in one pass over their pixels only."""
    if not wanted:
        return {}
    flat = ids.reshape(-1)
    want = np.asarray(sorted(set(wanted)), dtype=np.int64)
    hit = np.isin(flat, want)
    pos = np.flatnonzero(hit)
    vals = flat[pos]
    order = np.argsort(vals, kind="stable")
    pos, vals = pos[order], vals[order]
    starts = np.flatnonzero(np.r_[True, vals[1:] != vals[:-1]])
    ys, xs = np.divmod(pos, ids.shape[1])
    out = {}
    for s, key, x0, x1, y0, y1 in zip(starts, vals[starts], np.minimum.reduceat(xs, starts),
                                      np.maximum.reduceat(xs, starts), np.minimum.reduceat(ys, starts),
                                      np.maximum.reduceat(ys, starts)):
        out[int(key)] = (int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1))
    return out


def instance_error_marks(gt_inst: Any, pred_inst: Any, iou_threshold: float = 0.5, *,
                         match_class: bool = True, min_fraction: float = 0.1,
                         inside_fraction: float = 0.5) -> list[InstanceMark]:
    """Flag missed, spurious, split and merged instances.

    A prediction is a *piece* of a gt instance when at least ``inside_fraction`` of the prediction
    lies inside it and it covers at least ``min_fraction`` of the gt; a gt with >= 2 pieces is
    ``split``. Symmetrically a gt instance is *covered* by a prediction when at least
    ``inside_fraction`` of the gt lies inside it and it makes up at least ``min_fraction`` of the
    prediction; a prediction covering >= 2 gts is ``merged``. Unmatched instances (see
    :func:`segstudio.core.evaluation.instances.match_instances`) not already explained by a split or merge are
    ``missed`` (gt) or ``spurious`` (prediction).

    Parameters
    ----------
    gt_inst, pred_inst : InstanceMask
        Anything with ``ids`` (HxW int, 0 = none) and ``classes``.
    iou_threshold : float
        Matching threshold.
    match_class : bool
        Only same-class instances match (split/merge ignore classes: a merge across classes is still
        a merge).

    Returns
    -------
    list of InstanceMark
        gt marks first, then prediction marks, each by ascending id.
    """
    ov = instance_overlaps(gt_inst.ids, pred_inst.ids)
    same = None
    if match_class:
        gcls = getattr(gt_inst, "classes", None) or {}
        pcls = getattr(pred_inst, "classes", None) or {}
        g = np.array([gcls.get(int(i), -1) for i in ov.gt_ids], dtype=np.int64)
        p = np.array([pcls.get(int(i), -1) for i in ov.pred_ids], dtype=np.int64)
        same = g[:, None] == p[None, :]
    matches = greedy_matches(ov, iou_threshold, same)
    matched_g = {m[0] for m in matches}
    matched_p = {m[1] for m in matches}

    inter = ov.intersection.astype(np.float64)
    garea = np.maximum(ov.gt_area, 1)[:, None].astype(np.float64)
    parea = np.maximum(ov.pred_area, 1)[None, :].astype(np.float64)
    piece = (inter >= inside_fraction * parea) & (inter >= min_fraction * garea) & (inter > 0)
    covered = (inter >= inside_fraction * garea) & (inter >= min_fraction * parea) & (inter > 0)

    gt_marks: list[tuple[str, int, tuple[int, ...]]] = []
    pred_marks: list[tuple[str, int, tuple[int, ...]]] = []
    explained_g: set[int] = set()
    explained_p: set[int] = set()
    for gi in np.flatnonzero(piece.sum(axis=1) >= 2):
        parts = tuple(int(ov.pred_ids[j]) for j in np.flatnonzero(piece[gi]))
        gt_marks.append(("split", int(ov.gt_ids[gi]), parts))
        explained_g.add(int(ov.gt_ids[gi]))
        explained_p.update(parts)
    for pj in np.flatnonzero(covered.sum(axis=0) >= 2):
        parts = tuple(int(ov.gt_ids[i]) for i in np.flatnonzero(covered[:, pj]))
        pred_marks.append(("merged", int(ov.pred_ids[pj]), parts))
        explained_p.add(int(ov.pred_ids[pj]))
        explained_g.update(parts)
    for gid in ov.gt_ids:
        gid = int(gid)
        if gid not in matched_g and gid not in explained_g:
            gt_marks.append(("missed", gid, ()))
    for pid in ov.pred_ids:
        pid = int(pid)
        if pid not in matched_p and pid not in explained_p:
            pred_marks.append(("spurious", pid, ()))

    gt_boxes = _bboxes(np.asarray(gt_inst.ids), [m[1] for m in gt_marks])
    pred_boxes = _bboxes(np.asarray(pred_inst.ids), [m[1] for m in pred_marks])
    marks = [InstanceMark(k, "gt", i, rel, gt_boxes[i]) for k, i, rel in sorted(gt_marks, key=lambda m: m[1])]
    marks += [InstanceMark(k, "pred", i, rel, pred_boxes[i])
              for k, i, rel in sorted(pred_marks, key=lambda m: m[1])]
    return marks
