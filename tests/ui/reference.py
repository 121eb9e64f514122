"""Independent metric formulas in plain numpy, to check what the UI shows."""
from __future__ import annotations

import numpy as np


def reference_metrics(gt, pred, n, ignore=255) -> dict:
    gt = np.asarray(gt).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    keep = (gt != ignore) & (pred != ignore) & (gt < n) & (pred < n)
    gt, pred = gt[keep], pred[keep]
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (gt, pred), 1)
    tp = np.diag(m).astype(float)
    gt_px, pred_px = m.sum(1), m.sum(0)
    union = gt_px + pred_px - tp
    present = (gt_px + pred_px) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        f1 = np.where(present, 2 * tp / (gt_px + pred_px), np.nan)
    freq = gt_px / gt_px.sum()
    return {
        "matrix": m,
        "pixel_accuracy": tp.sum() / m.sum(),
        "iou": iou,
        "mean_iou": np.nanmean(iou[present]),
        "fw_iou": float(np.sum(freq[gt_px > 0] * iou[gt_px > 0])),
        "mean_f1": np.nanmean(f1[present]),
        "gt_pixels": gt_px,
    }
