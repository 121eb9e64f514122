"""Paired bootstrap over images: is model B's IoU really better than model A's, or is it noise?

Both sources are scored on the same images, so the images are resampled *together* (paired): each of
``R`` resamples draws ``N`` image indices with replacement, sums the chosen images' confusion matrices
for A and for B, and computes the IoUs of both from the sums, exactly as the dataset figures are computed
(summed matrices, never averaged per-image scores). The 2.5th and 97.5th percentiles of the ``R``
differences give the 95 % interval of Δ = B − A.

Cost: the resamples never loop in Python. The draws become an ``(R, N)`` matrix of how often each image
was picked (one ``bincount``), and the per-resample sums of the per-image true positives, label counts
and prediction counts are one matrix product each, ``O(R·N·C)``; the ``C×C`` matrices themselves are
never summed per resample.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PairedBootstrap", "paired_bootstrap", "paired_bootstrap_marginals", "confusion_marginals",
           "iou_from_counts", "mean_iou_from_counts"]

# Draws per block of resamples (R_block * N): keeps the index matrix to a few tens of MB.
_BLOCK_DRAWS = 1 << 22


@dataclass
class PairedBootstrap:
    """Result of :func:`paired_bootstrap`. Undefined values are ``None`` (scalars) or NaN (arrays).

    Attributes
    ----------
    resamples, seed : int
    images : int
        Images in the comparison (``N``).
    a_mean_iou, b_mean_iou, mean_iou_delta : float or None
        Point estimates on all images; Δ = B − A.
    mean_iou_delta_ci95 : tuple of float, or None
        2.5th and 97.5th percentiles of Δ mean IoU over the resamples where it is defined.
    per_class_delta : list of (float or None)
        Δ IoU per class on all images; ``None`` where either side's IoU is undefined.
    per_class_ci95 : list of (tuple of float, or None)
        Per-class 95 % interval; ``None`` where the point estimate is undefined.
    mean_iou_deltas : ndarray
        ``(R,)`` Δ mean IoU of each resample (NaN where undefined), for a histogram.
    """

    resamples: int
    seed: int
    images: int
    a_mean_iou: float | None
    b_mean_iou: float | None
    mean_iou_delta: float | None
    mean_iou_delta_ci95: tuple[float, float] | None
    per_class_delta: list[float | None]
    per_class_ci95: list[tuple[float, float] | None]
    mean_iou_deltas: np.ndarray = field(repr=False)


def iou_from_counts(tp: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU per class (last axis) from true positives, label counts and prediction counts; NaN where the
    union is empty (the class is absent from the labels and the prediction)."""
    tp = np.asarray(tp, dtype=np.float64)
    union = np.asarray(gt, dtype=np.float64) + np.asarray(pred, dtype=np.float64) - tp
    out = np.full(np.broadcast(tp, union).shape, np.nan)
    np.divide(tp, union, out=out, where=union > 0)
    return out


def mean_iou_from_counts(iou: np.ndarray, ignore_absent: bool = True,
                         present: np.ndarray | None = None) -> np.ndarray:
    """Mean over the last axis of an IoU array.

    ``ignore_absent=True`` (the rule of :meth:`ConfusionMatrix.mean_iou`): the mean over the classes whose
    IoU is defined, NaN when none is. ``ignore_absent=False``: the mean over the fixed class set
    ``present`` (bool, last axis), NaN wherever one of those classes is undefined.
    """
    if ignore_absent:
        defined = ~np.isnan(iou)
        n = defined.sum(axis=-1)
        total = np.where(defined, iou, 0.0).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / np.maximum(n, 1), np.nan)
    if present is None or not present.any():
        return np.full(iou.shape[:-1], np.nan)
    return iou[..., present].mean(axis=-1)


def confusion_marginals(confusions: np.ndarray) -> np.ndarray:
    """``(N, 3C)`` int64 per image from ``(N, C, C)`` confusions: true positives, label counts, prediction
    counts; all the bootstrap needs, ``C`` times smaller than the matrices (keep these for large ``C``)."""
    confusions = np.asarray(confusions)
    tp = np.diagonal(confusions, axis1=1, axis2=2)
    return np.concatenate([tp, confusions.sum(axis=2), confusions.sum(axis=1)], axis=1).astype(np.int64)


def _check(confusions, name: str) -> np.ndarray:
    arr = np.asarray(confusions)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"{name} must be N confusion matrices of shape (C, C), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer pixel counts, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _ci(values: np.ndarray) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def _none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def paired_bootstrap(confusions_a, confusions_b, resamples: int = 1000, seed: int = 0,
                     ignore_absent: bool = True) -> PairedBootstrap:
    """95 % intervals for Δ mean IoU and Δ per-class IoU (B − A) by a paired bootstrap over images.

    Parameters
    ----------
    confusions_a, confusions_b : array_like
        ``(N, C, C)`` int64 per-image confusion matrices (rows = labels) of sources A and B, same image
        order.
    resamples : int
        Number of bootstrap resamples ``R`` (1,000 by default).
    seed : int
        Seed of ``numpy.random.default_rng``: the same seed gives the same interval.
    ignore_absent : bool
        True: in each resample a class absent from both the labels and a source's prediction has an
        undefined IoU and is left out of that source's mean (the rule of ``evaluate``). False: the mean is
        over the classes present on all images, and a resample in which one of them is undefined has an
        undefined Δ and is left out of the percentiles.

    Returns
    -------
    PairedBootstrap
    """
    a = _check(confusions_a, "confusions_a")
    b = _check(confusions_b, "confusions_b")
    if a.shape != b.shape:
        raise ValueError(f"confusions_a {a.shape} and confusions_b {b.shape} must have the same shape")
    return paired_bootstrap_marginals(confusion_marginals(a), confusion_marginals(b), resamples=resamples,
                                      seed=seed, ignore_absent=ignore_absent)


def paired_bootstrap_marginals(marginals_a, marginals_b, resamples: int = 1000, seed: int = 0,
                               ignore_absent: bool = True) -> PairedBootstrap:
    """:func:`paired_bootstrap` from per-image :func:`confusion_marginals` ``(N, 3C)`` instead of the
    ``(N, C, C)`` matrices: the same result, ``C`` times less memory to keep per image."""
    ma = np.asarray(marginals_a)
    mb = np.asarray(marginals_b)
    if ma.ndim != 2 or ma.shape[1] % 3 or ma.shape != mb.shape:
        raise ValueError(f"marginals must both be (N, 3C), got {ma.shape} and {mb.shape}")
    if int(resamples) < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    resamples = int(resamples)
    n, c = ma.shape[0], ma.shape[1] // 3
    ma, mb = ma.astype(np.float64), mb.astype(np.float64)

    def scores(sums_a: np.ndarray, sums_b: np.ndarray, present_a=None, present_b=None):
        iou_a = iou_from_counts(sums_a[..., :c], sums_a[..., c:2 * c], sums_a[..., 2 * c:])
        iou_b = iou_from_counts(sums_b[..., :c], sums_b[..., c:2 * c], sums_b[..., 2 * c:])
        return (iou_a, iou_b, mean_iou_from_counts(iou_a, ignore_absent, present_a),
                mean_iou_from_counts(iou_b, ignore_absent, present_b))

    iou_a, iou_b, miou_a, miou_b = scores(ma.sum(axis=0), mb.sum(axis=0))
    present_a, present_b = ~np.isnan(iou_a), ~np.isnan(iou_b)
    if not ignore_absent:
        miou_a = mean_iou_from_counts(iou_a, False, present_a)
        miou_b = mean_iou_from_counts(iou_b, False, present_b)
    per_class = iou_b - iou_a

    deltas = np.full(resamples, np.nan)
    class_deltas = np.full((resamples, c), np.nan)
    if n:
        rng = np.random.default_rng(seed)
        block = max(1, _BLOCK_DRAWS // n)
        for start in range(0, resamples, block):
            r = min(block, resamples - start)
            picks = rng.integers(0, n, size=(r, n))
            offsets = (picks + (np.arange(r) * n)[:, None]).ravel()
            weights = np.bincount(offsets, minlength=r * n).reshape(r, n).astype(np.float64)
            ra, rb, rma, rmb = scores(weights @ ma, weights @ mb, present_a, present_b)
            deltas[start:start + r] = rmb - rma
            class_deltas[start:start + r] = rb - ra

    per_class_ci = [(_ci(class_deltas[:, k]) if np.isfinite(per_class[k]) else None) for k in range(c)]
    return PairedBootstrap(
        resamples=resamples, seed=int(seed), images=n,
        a_mean_iou=_none(miou_a), b_mean_iou=_none(miou_b),
        mean_iou_delta=_none(miou_b - miou_a),
        mean_iou_delta_ci95=_ci(deltas) if np.isfinite(miou_b - miou_a) else None,
        per_class_delta=[_none(v) for v in per_class],
        per_class_ci95=per_class_ci,
        mean_iou_deltas=deltas,
    )
