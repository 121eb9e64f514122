"""Segmentation metrics: a confusion matrix that updates in O(edit) (instance matching: ``instances``).

The confusion matrix is the single source of every semantic figure. Dataset figures come from the
*summed* matrix of all images (``+=``), never from an average of per-image scores, so a small image
weighs as much as its pixels and no more.

Ignore rule: a pixel is skipped when its ground truth is the ignore index, and also when its
prediction is the ignore index or any id outside ``0..C-1`` (a prediction the class table cannot
name cannot be scored, and silently clipping it would invent a class). Ground truth outside
``0..C-1`` is skipped as well; mask readers reject such files before they get here.
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from segstudio.core.errors import MaskSizeMismatch

__all__ = ["ConfusionMatrix", "confusion_matrix"]

# cv2.calcHist counts in int32 but hands the histogram back as float32, which is exact only up to
# 2**24; chunks of at most this many pixels keep every bin exact.
_CV_CHUNK = 1 << 23
# Below this many pixels the fixed cost of an OpenCV call beats its speed; brush edits land here.
_CV_MIN_PIXELS = 1 << 16
# The generic path works in chunks that fit the cache; one pass over the whole image as int64 would
# allocate 8 bytes per pixel several times over.
_NP_CHUNK = 1 << 18
# Above this many (gt, pred) pairs a dense bincount would allocate more than it counts.
_MAX_DENSE_PAIRS = 1 << 22


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise MaskSizeMismatch(None, f"ground truth shape {gt.shape} != prediction shape {pred.shape}")
    for name, arr in (("ground truth", gt), ("prediction", pred)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise TypeError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    if gt.dtype == np.bool_:
        gt = gt.view(np.uint8)
    if pred.dtype == np.bool_:
        pred = pred.view(np.uint8)
    return gt, pred


class ConfusionMatrix:
    """Pixel confusion matrix, rows = ground truth, columns = prediction.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``; valid ids are ``0..C-1``.
    ignore_index : int, optional
        Ground-truth (or prediction) value that is not scored, 255 by default.

    Attributes
    ----------
    matrix : numpy.ndarray
        ``(C, C)`` int64 counts; ``matrix[g, p]`` is the number of pixels labelled ``g`` and
        predicted ``p``.

    Notes
    -----
    Skipped pixels: ground truth equal to ``ignore_index``, prediction equal to ``ignore_index``,
    and any id (either side) outside ``0..C-1``. Derived per-class values are float arrays with NaN
    where undefined (a zero denominator); scalar values are ``None`` where undefined.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self._lut8: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ counting
    def _luts_uint8(self) -> tuple[np.ndarray, np.ndarray]:
        """LUTs sending a uint8 id to its row offset / column in a (C+1)x(C+1) grid.

        Skipped ids go to the extra bin ``C``, so the combined index never needs a validity mask.
        Used for small arrays only (brush edits), while ``(C+1)**2`` stays a small bincount. The
        tables are intp so ``take`` and ``bincount`` never convert.
        """
        if self._lut8 is None:
            c = self.num_classes
            k = c + 1
            col = np.full(256, c, dtype=np.intp)
            n = min(c, 256)
            col[:n] = np.arange(n)
            if 0 <= self.ignore_index < 256:
                col[self.ignore_index] = c
            self._lut8 = (col * k, col)
        return self._lut8

    def _counts(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """(C, C) int64 counts of the scored (gt, pred) pairs in two same-shape arrays."""
        gt, pred = _check_pair(gt, pred)
        c = self.num_classes
        if gt.size == 0:
            return np.zeros((c, c), dtype=np.int64)
        if gt.dtype == np.uint8 and pred.dtype == np.uint8:
            if gt.size >= _CV_MIN_PIXELS:
                if (c + 1) ** 2 <= 256:
                    return self._counts_cv_small(gt, pred)
                return self._counts_cv(gt, pred)
            if (c + 1) ** 2 <= 65536:  # C <= 255: a bincount of at most 64K bins
                return self._counts_lut(gt, pred)
        return self._counts_generic(gt, pred)

    def _counts_lut(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        # Small arrays (brush edits): one combined index and a bincount of (C+1)**2 bins is a few
        # microseconds, far below np.add.at; ``take`` is ~2x faster than fancy indexing here.
        row, col = self._luts_uint8()
        k = self.num_classes + 1
        idx = row.take(gt.ravel())
        idx += col.take(pred.ravel())
        return np.bincount(idx, minlength=k * k).reshape(k, k)[:-1, :-1].astype(np.int64)

    def _counts_cv(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        # A 256x256 joint histogram of the raw bytes: OpenCV's 8-bit histogram is a table lookup per
        # pixel with no index arithmetic, several times faster than any numpy formulation. Ids >= C
        # simply fall outside the [:C, :C] corner we keep.
        if gt.ndim != 2:
            gt = gt.reshape(-1)
            pred = pred.reshape(-1)
        hist = np.zeros((256, 256), dtype=np.int64)
        rows = gt.shape[0]
        step = max(1, _CV_CHUNK // max(1, gt.size // rows))
        for start in range(0, rows, step):
            g = gt[start:start + step]
            p = pred[start:start + step]
            if g.ndim == 1 or not (g.strides[-1] == 1 and p.strides[-1] == 1):
                g = np.ascontiguousarray(g)
                p = np.ascontiguousarray(p)
            h = cv2.calcHist([g, p], [0, 1], None, [256, 256], [0, 256, 0, 256])
            hist += h.astype(np.int64)
        if 0 <= self.ignore_index < 256:
            hist[self.ignore_index, :] = 0
            hist[:, self.ignore_index] = 0
        c = self.num_classes
        out = np.zeros((c, c), dtype=np.int64)
        n = min(c, 256)
        out[:n, :n] = hist[:n, :n]
        return out

    def _counts_cv_small(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        # C <= 15: the (C+1)x(C+1) grid of _luts_uint8 fits in one byte, so two OpenCV table
        # lookups and a 1-D histogram of (C+1)**2 bins count the pairs, about twice as fast as
        # the 256x256 joint histogram (whose bins are mostly empty here).
        k = self.num_classes + 1
        row, col = self._luts_uint8()
        row8, col8 = row.astype(np.uint8), col.astype(np.uint8)
        g_all = gt if gt.ndim == 2 else gt.reshape(-1)
        p_all = pred if pred.ndim == 2 else pred.reshape(-1)
        hist = np.zeros(k * k, dtype=np.int64)
        rows = g_all.shape[0]
        step = max(1, _CV_CHUNK // max(1, g_all.size // rows))
        for start in range(0, rows, step):
            g = g_all[start:start + step]
            p = p_all[start:start + step]
            if g.ndim == 1 or not (g.flags.c_contiguous and p.flags.c_contiguous):
                g = np.ascontiguousarray(g)
                p = np.ascontiguousarray(p)
            idx = cv2.add(cv2.LUT(g, row8), cv2.LUT(p, col8))
            h = cv2.calcHist([idx], [0], None, [k * k], [0, k * k])
            hist += h.ravel().astype(np.int64)
        return hist.reshape(k, k)[:-1, :-1].copy()

    def _counts_generic(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        # Any integer dtype (uint16 masks for C > 255, int32/int64 arrays from callers).
        c = self.num_classes
        g_all = gt.reshape(-1)
        p_all = pred.reshape(-1)
        dense = c * c <= _MAX_DENSE_PAIRS
        total = np.zeros(c * c if dense else 0, dtype=np.int64)
        out = np.zeros((c, c), dtype=np.int64)
        for start in range(0, g_all.size, _NP_CHUNK):
            g = g_all[start:start + _NP_CHUNK].astype(np.int64)
            p = p_all[start:start + _NP_CHUNK].astype(np.int64)
            ok = (g >= 0) & (g < c) & (p >= 0) & (p < c)
            if 0 <= self.ignore_index < c:
                ok &= (g != self.ignore_index) & (p != self.ignore_index)
            idx = g[ok] * c + p[ok]
            if dense:
                total += np.bincount(idx, minlength=c * c)
            else:
                uniq, cnt = np.unique(idx, return_counts=True)
                np.add.at(out.reshape(-1), uniq, cnt)
        if dense:
            out = total.reshape(c, c)
        return out

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add every scored pixel of a ground-truth / prediction pair.

        Parameters
        ----------
        gt, pred : numpy.ndarray
            Same-shape integer arrays of class ids (any shape, any sub-rectangle). uint8 inputs take
            the fast OpenCV path.

        Raises
        ------
        MaskSizeMismatch
            If the shapes differ.
        TypeError
            If either array does not hold integers.
        """
        self.matrix += self._counts(gt, pred)

    def apply_edit(self, old_gt: np.ndarray, new_gt: np.ndarray,
                   old_pred: np.ndarray, new_pred: np.ndarray) -> None:
        """Move the edited pixels from their old (gt, pred) pair to their new one.

        Parameters
        ----------
        old_gt, new_gt, old_pred, new_pred : numpy.ndarray
            Values at ONLY the edited pixels (1-D, or any shape as long as all four match), before
            and after the edit. Cost is O(number of edited pixels), independent of the image size.
        """
        old_gt, old_pred = _check_pair(old_gt, old_pred)
        new_gt, new_pred = _check_pair(new_gt, new_pred)
        if old_gt.shape != new_gt.shape:
            raise MaskSizeMismatch(None, f"old values shape {old_gt.shape} != new values shape {new_gt.shape}")
        k = self.num_classes + 1
        if (old_gt.size < _CV_MIN_PIXELS and k * k <= 65536 and old_gt.dtype == np.uint8
                and new_gt.dtype == np.uint8 and old_pred.dtype == np.uint8 and new_pred.dtype == np.uint8):
            # The brush path, called once per dab: one bincount difference, one in-place add.
            row, col = self._luts_uint8()
            new_idx = row.take(new_gt.ravel())
            new_idx += col.take(new_pred.ravel())
            old_idx = row.take(old_gt.ravel())
            old_idx += col.take(old_pred.ravel())
            delta = np.bincount(new_idx, minlength=k * k) - np.bincount(old_idx, minlength=k * k)
            self.matrix += delta.reshape(k, k)[:-1, :-1]
            return
        self.matrix += self._counts(new_gt, new_pred)
        self.matrix -= self._counts(old_gt, old_pred)

    def __iadd__(self, other: ConfusionMatrix | np.ndarray) -> ConfusionMatrix:
        counts = other.matrix if isinstance(other, ConfusionMatrix) else np.asarray(other)
        if counts.shape != self.matrix.shape:
            raise ValueError(f"cannot add a {counts.shape} matrix to a {self.matrix.shape} one")
        if isinstance(other, ConfusionMatrix) and other.ignore_index != self.ignore_index:
            raise ValueError("cannot add matrices built with different ignore indices")
        self.matrix += counts.astype(np.int64, copy=False)
        return self

    def __add__(self, other: ConfusionMatrix | np.ndarray) -> ConfusionMatrix:
        out = self.copy()
        out += other
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfusionMatrix):
            return NotImplemented
        return self.ignore_index == other.ignore_index and np.array_equal(self.matrix, other.matrix)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"pixels={self.total})")

    def copy(self) -> ConfusionMatrix:
        """An independent copy."""
        out = ConfusionMatrix(self.num_classes, self.ignore_index)
        out.matrix = self.matrix.copy()
        return out

    def reset(self) -> None:
        """Zero all counts."""
        self.matrix[...] = 0

    # ------------------------------------------------------------------ derived values
    @property
    def total(self) -> int:
        """Number of scored pixels."""
        return int(self.matrix.sum())

    def gt_pixels(self) -> np.ndarray:
        """(C,) int64 scored pixels per ground-truth class (row sums)."""
        return self.matrix.sum(axis=1)

    def pred_pixels(self) -> np.ndarray:
        """(C,) int64 scored pixels per predicted class (column sums)."""
        return self.matrix.sum(axis=0)

    def present(self) -> np.ndarray:
        """(C,) bool: class occurs in the ground truth or the prediction."""
        return (self.gt_pixels() > 0) | (self.pred_pixels() > 0)

    @staticmethod
    def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        num = np.asarray(num, dtype=np.float64)
        den = np.asarray(den, dtype=np.float64)
        out = np.full(num.shape, np.nan)
        np.divide(num, den, out=out, where=den > 0)
        return out

    def pixel_accuracy(self) -> float | None:
        """Correct pixels / scored pixels, ``None`` when nothing was scored."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else None

    def iou(self) -> np.ndarray:
        """(C,) intersection over union, NaN where the union is empty."""
        tp = np.diag(self.matrix)
        return self._ratio(tp, self.gt_pixels() + self.pred_pixels() - tp)

    def mean_iou(self) -> float | None:
        """Mean IoU over the present classes, ``None`` when no class is present."""
        return self._mean_present(self.iou())

    def fw_iou(self) -> float | None:
        """Frequency-weighted IoU: sum over classes of (gt share of pixels) x IoU."""
        gt = self.gt_pixels()
        total = gt.sum()
        if not total:
            return None
        iou = self.iou()
        has = gt > 0  # a class with gt pixels always has a non-empty union
        # Weight by pixel counts and divide once: each product is <= its count, so the result is <= 1
        # exactly (summing the shares gt/total can round up to 1.0000000000000002).
        return float((gt[has] * iou[has]).sum() / total)

    def precision(self) -> np.ndarray:
        """(C,) TP / predicted pixels, NaN where the class was never predicted."""
        return self._ratio(np.diag(self.matrix), self.pred_pixels())

    def recall(self) -> np.ndarray:
        """(C,) TP / ground-truth pixels, NaN where the class is absent from the ground truth."""
        return self._ratio(np.diag(self.matrix), self.gt_pixels())

    def f1(self) -> np.ndarray:
        """(C,) F1 = Dice = 2TP / (2TP + FP + FN), NaN where the class is absent on both sides."""
        return self._ratio(2 * np.diag(self.matrix), self.gt_pixels() + self.pred_pixels())

    def mean_f1(self) -> float | None:
        """Mean F1 over the present classes, ``None`` when no class is present."""
        return self._mean_present(self.f1())

    def _mean_present(self, values: np.ndarray) -> float | None:
        present = self.present()
        return float(values[present].mean()) if present.any() else None

    def summary(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """The evaluate report's ``"summary"``: JSON-ready, ``None`` (null) where undefined.

        Parameters
        ----------
        names : sequence of str, optional
            One name per class; ``"class <i>"`` when omitted.

        Returns
        -------
        dict
            ``{"pixel_accuracy", "mean_iou", "fw_iou", "mean_f1",
            "per_class": {name: {"iou", "precision", "recall", "f1", "gt_pixels", "pred_pixels"}}}``
        """
        c = self.num_classes
        if names is None:
            names = [f"class {i}" for i in range(c)]
        names = list(names)
        if len(names) != c:
            raise ValueError(f"{len(names)} class names for {c} classes")
        iou, prec, rec, f1 = self.iou(), self.precision(), self.recall(), self.f1()
        gt, pr = self.gt_pixels(), self.pred_pixels()
        per_class = {}
        for i, name in enumerate(names):
            per_class[str(name)] = {
                "iou": _none_if_nan(iou[i]),
                "precision": _none_if_nan(prec[i]),
                "recall": _none_if_nan(rec[i]),
                "f1": _none_if_nan(f1[i]),
                "gt_pixels": int(gt[i]),
                "pred_pixels": int(pr[i]),
            }
        return {
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_iou": self.mean_iou(),
            "fw_iou": self.fw_iou(),
            "mean_f1": self.mean_f1(),
            "per_class": per_class,
        }


def _none_if_nan(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int = 255) -> np.ndarray:
    """(C, C) int64 confusion matrix of one pair, rows = ground truth. See :class:`ConfusionMatrix`."""
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(gt, pred)
    return cm.matrix
