"""ConfusionMatrix against independent references: a plain numpy formula, torchmetrics, hand values."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

from segstudio.core.errors import MaskSizeMismatch
from segstudio.core.evaluation.metrics import ConfusionMatrix, confusion_matrix

IGNORE = 255


def reference_matrix(gt, pred, c, ignore=IGNORE):
    """Plain per-class loops: the definition, with no shared code."""
    gt = np.asarray(gt).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    valid = (gt != ignore) & (pred != ignore) & (gt >= 0) & (gt < c) & (pred >= 0) & (pred < c)
    out = np.zeros((c, c), dtype=np.int64)
    for g in range(c):
        for p in range(c):
            out[g, p] = np.count_nonzero(valid & (gt == g) & (pred == p))
    return out


def reference_scores(gt, pred, c, ignore=IGNORE):
    gt = np.asarray(gt).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    valid = (gt != ignore) & (pred != ignore) & (gt < c) & (pred < c)
    iou, f1 = [], []
    for k in range(c):
        tp = np.count_nonzero(valid & (gt == k) & (pred == k))
        fp = np.count_nonzero(valid & (gt != k) & (pred == k))
        fn = np.count_nonzero(valid & (gt == k) & (pred != k))
        iou.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan)
    return np.array(iou), np.array(f1)


def random_pair(rng, shape, c, absent=(), ignore_frac=0.1, pred_ignore=False):
    classes = [k for k in range(c) if k not in absent]
    gt = rng.choice(classes, size=shape).astype(np.uint8)
    pred = rng.choice(classes, size=shape).astype(np.uint8)
    # Correlate them a little so IoUs are not all ~1/C.
    agree = rng.random(shape) < 0.5
    pred[agree] = gt[agree]
    gt[rng.random(shape) < ignore_frac] = IGNORE
    if pred_ignore:
        pred[rng.random(shape) < 0.05] = IGNORE
        pred[rng.random(shape) < 0.02] = c + 3  # out of range
    return gt, pred


# ---------------------------------------------------------------------- counting
id_values = st.sampled_from([0, 1, 2, 3, 4, 7, IGNORE])


@settings(max_examples=60, deadline=None)
@given(gt=arrays(np.uint8, st.tuples(st.integers(0, 20), st.integers(0, 20)), elements=id_values),
       data=st.data())
def test_total_is_count_of_scored_pixels(gt, data):
    pred = data.draw(arrays(np.uint8, gt.shape, elements=id_values))
    c = 5
    cm = ConfusionMatrix(c)
    cm.update(gt, pred)
    scored = (gt < c) & (pred < c)
    assert cm.total == np.count_nonzero(scored)
    np.testing.assert_array_equal(cm.matrix, reference_matrix(gt, pred, c))
    assert cm.matrix.dtype == np.int64


@pytest.mark.parametrize("shape", [(7, 9), (300, 301), (1200, 900)])
def test_update_matches_reference_on_fast_and_small_paths(shape):
    rng = np.random.default_rng(1)
    gt, pred = random_pair(rng, shape, 6, pred_ignore=True)
    expected = reference_matrix(gt, pred, 6)
    np.testing.assert_array_equal(confusion_matrix(gt, pred, 6), expected)
    # Other dtypes and non-contiguous views take other paths and must agree.
    np.testing.assert_array_equal(confusion_matrix(gt.astype(np.int32), pred.astype(np.uint16), 6), expected)
    sub = (slice(1, None, 2), slice(2, -1))
    np.testing.assert_array_equal(confusion_matrix(gt[sub], pred[sub], 6),
                                  reference_matrix(gt[sub], pred[sub], 6))
    np.testing.assert_array_equal(confusion_matrix(gt.T, pred.T, 6), expected)


def test_counts_stay_exact_beyond_float32_range():
    # One bin above 2**24 would be rounded by a float32 histogram.
    gt = np.zeros((5000, 3400), np.uint8)
    pred = gt.copy()
    pred[0, :3] = 1
    cm = ConfusionMatrix(2)
    cm.update(gt, pred)
    assert cm.matrix[0, 0] == 5000 * 3400 - 3
    assert cm.matrix[0, 1] == 3


def test_prediction_ignore_and_out_of_range_are_skipped():
    gt = np.array([[0, 1, 2, 255]], np.uint8)
    pred = np.array([[255, 9, 2, 0]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(gt, pred)
    assert cm.total == 1 and cm.matrix[2, 2] == 1


def test_ignore_index_inside_class_range_and_negative_ids():
    gt = np.array([0, 1, 2, 1, -1, 2])
    pred = np.array([0, 1, 0, 0, 0, -5])
    cm = ConfusionMatrix(3, ignore_index=1)
    cm.update(gt, pred)
    expected = np.zeros((3, 3), np.int64)
    expected[0, 0] = 1
    expected[2, 0] = 1
    np.testing.assert_array_equal(cm.matrix, expected)


def test_more_than_255_classes_with_uint16():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 300, (70, 50)).astype(np.uint16)
    pred = rng.integers(0, 300, (70, 50)).astype(np.uint16)
    gt[:3] = 255  # ignore index, though 255 is also a valid id here it is still skipped
    gt[5, :4] = 400
    cm = ConfusionMatrix(300)
    cm.update(gt, pred)
    np.testing.assert_array_equal(cm.matrix, reference_matrix(gt, pred, 300))


def test_bad_inputs_raise_typed_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(MaskSizeMismatch):
        cm.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(TypeError):
        cm.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        ConfusionMatrix(0)


# ---------------------------------------------------------------------- incremental edits
edit = st.tuples(st.sampled_from(["gt", "pred"]), st.integers(0, 23), st.integers(0, 17),
                 st.integers(1, 12), st.integers(1, 12), st.sampled_from([0, 1, 2, 3, 4, IGNORE, 9]),
                 st.booleans())


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), edits=st.lists(edit, max_size=12))
def test_any_edit_sequence_equals_full_recompute(seed, edits):
    rng = np.random.default_rng(seed)
    c = 5
    gt, pred = random_pair(rng, (18, 24), c, pred_ignore=True)
    cm = ConfusionMatrix(c)
    cm.update(gt, pred)
    for layer, x, y, w, h, value, as_brush in edits:
        region = (slice(y, y + h), slice(x, x + w))
        changed = np.ones(gt[region].shape, bool)
        if as_brush:  # an irregular stroke footprint, as the brush produces
            changed = rng.random(changed.shape) < 0.6
        old_gt, old_pred = gt[region][changed].copy(), pred[region][changed].copy()
        target = gt if layer == "gt" else pred
        target[region][changed] = value
        cm.apply_edit(old_gt, gt[region][changed], old_pred, pred[region][changed])
    np.testing.assert_array_equal(cm.matrix, reference_matrix(gt, pred, c))


def test_apply_edit_accepts_nd_and_int_arrays():
    gt = np.array([[0, 1], [1, 1]], np.uint8)
    pred = np.array([[0, 1], [0, 1]], np.uint8)
    cm = ConfusionMatrix(2)
    cm.update(gt, pred)
    new_gt = gt.copy()
    new_gt[1, 0] = 0
    cm.apply_edit(gt[1:, :1].astype(np.int64), new_gt[1:, :1].astype(np.int64), pred[1:, :1], pred[1:, :1])
    np.testing.assert_array_equal(cm.matrix, [[2, 0], [0, 2]])
    with pytest.raises(MaskSizeMismatch):
        cm.apply_edit(gt.ravel(), gt.ravel()[:2], pred.ravel(), pred.ravel()[:2])


# ---------------------------------------------------------------------- derived values
@settings(max_examples=40, deadline=None)
@given(matrix=arrays(np.int64, (4, 4), elements=st.integers(0, 50)))
def test_ratios_are_in_unit_interval_or_nan_when_undefined(matrix):
    cm = ConfusionMatrix(4)
    cm += matrix
    gt, pr, tp = matrix.sum(1), matrix.sum(0), np.diag(matrix)
    for name, values, defined in [("iou", cm.iou(), gt + pr - tp > 0), ("f1", cm.f1(), gt + pr > 0),
                                  ("precision", cm.precision(), pr > 0), ("recall", cm.recall(), gt > 0)]:
        assert np.all(np.isnan(values) == ~defined), name
        assert np.all((values[defined] >= 0) & (values[defined] <= 1)), name
    for scalar in (cm.pixel_accuracy(), cm.mean_iou(), cm.fw_iou(), cm.mean_f1()):
        if matrix.sum() == 0:
            assert scalar is None
        else:
            assert 0 <= scalar <= 1
    json.dumps(cm.summary(list("abcd")), allow_nan=False)


def test_fw_iou_of_a_perfect_prediction_is_exactly_one():
    # The shares 6/30 + 23/30 + 1/30 sum to 1.0000000000000002 in floats; the bound must hold exactly.
    cm = ConfusionMatrix(4)
    cm += np.diag([6, 23, 1, 0]).astype(np.int64)
    assert cm.fw_iou() == 1.0


def test_empty_matrix_gives_none_not_zero():
    cm = ConfusionMatrix(3)
    s = cm.summary(["a", "b", "c"])
    assert s["pixel_accuracy"] is None and s["mean_iou"] is None
    assert s["fw_iou"] is None and s["mean_f1"] is None
    assert s["per_class"]["a"] == {"iou": None, "precision": None, "recall": None, "f1": None,
                                   "gt_pixels": 0, "pred_pixels": 0}
    assert np.isnan(cm.iou()).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iou_and_f1_match_torchmetrics_and_numpy(seed):
    rng = np.random.default_rng(seed)
    c = 7
    # Class 5 is absent everywhere; class 6 only in the prediction.
    gt, pred = random_pair(rng, (2, 61, 83), c, absent=(5, 6))
    pred[0, :4, :4] = 6
    cm = ConfusionMatrix(c)
    cm.update(gt, pred)

    ref_iou, ref_f1 = reference_scores(gt, pred, c)
    np.testing.assert_allclose(cm.iou(), ref_iou, equal_nan=True)
    np.testing.assert_allclose(cm.f1(), ref_f1, equal_nan=True)

    t_gt = torch.from_numpy(gt.astype(np.int64))
    t_pred = torch.from_numpy(pred.astype(np.int64))
    jac = MulticlassJaccardIndex(num_classes=c, average=None, ignore_index=IGNORE)(t_pred, t_gt).numpy()
    f1 = MulticlassF1Score(num_classes=c, average=None, ignore_index=IGNORE,
                           multidim_average="global")(t_pred, t_gt).numpy()
    # torchmetrics reports 0 for a class absent on both sides; we report NaN (undefined).
    present = cm.present()
    assert present.tolist() == [True] * 5 + [False, True]
    np.testing.assert_allclose(cm.iou()[present], jac[present], rtol=1e-6)
    np.testing.assert_allclose(cm.f1()[present], f1[present], rtol=1e-6)
    assert np.isnan(cm.iou()[5]) and np.isnan(cm.f1()[5])
    assert cm.iou()[6] == 0.0 and np.isnan(cm.recall()[6])
    assert cm.mean_iou() == pytest.approx(np.mean(ref_iou[present]))
    assert cm.mean_f1() == pytest.approx(np.mean(ref_f1[present]))
    s = cm.summary([f"k{i}" for i in range(c)])
    assert s["per_class"]["k5"]["iou"] is None
    assert s["per_class"]["k0"]["iou"] == pytest.approx(ref_iou[0])
    assert s["per_class"]["k0"]["gt_pixels"] == np.count_nonzero((gt == 0) & (pred < c))


def test_dataset_accumulation_equals_concatenated_images():
    rng = np.random.default_rng(5)
    c = 4
    pairs = [random_pair(rng, shape, c, pred_ignore=True) for shape in [(10, 30), (400, 300), (1, 7)]]
    total = ConfusionMatrix(c)
    for gt, pred in pairs:
        one = ConfusionMatrix(c)
        one.update(gt, pred)
        total += one
    all_gt = np.concatenate([g.ravel() for g, _ in pairs])
    all_pred = np.concatenate([p.ravel() for _, p in pairs])
    whole = ConfusionMatrix(c)
    whole.update(all_gt, all_pred)
    assert total == whole
    assert total.summary() == whole.summary()
    # Averaging per-image IoU would be a different (wrong) number; the sum is what we report.
    ref_iou, _ = reference_scores(all_gt, all_pred, c)
    np.testing.assert_allclose(total.iou(), ref_iou)
    assert total + ConfusionMatrix(c) == total


def test_hand_computed_matrix_values():
    # rows gt, cols pred
    m = np.array([[50, 10, 0],
                  [5, 30, 5],
                  [0, 0, 0]])
    cm = ConfusionMatrix(3)
    cm += m
    total = 100
    assert cm.pixel_accuracy() == pytest.approx(80 / total)
    iou0 = 50 / (60 + 55 - 50)
    iou1 = 30 / (40 + 40 - 30)
    iou2 = 0 / (0 + 5 - 0)
    np.testing.assert_allclose(cm.iou(), [iou0, iou1, iou2])
    assert cm.mean_iou() == pytest.approx((iou0 + iou1 + iou2) / 3)
    # FWIoU = sum_k (gt_k / N) * IoU_k, classes without ground truth weigh nothing.
    assert cm.fw_iou() == pytest.approx(0.6 * iou0 + 0.4 * iou1)
    np.testing.assert_allclose(cm.precision(), [50 / 55, 30 / 40, 0.0])
    np.testing.assert_allclose(cm.recall(), [50 / 60, 30 / 40, np.nan])
    np.testing.assert_allclose(cm.f1(), [100 / 115, 60 / 80, 0.0])
    assert cm.mean_f1() == pytest.approx((100 / 115 + 60 / 80) / 3)


def test_copy_reset_and_add_checks():
    cm = ConfusionMatrix(2)
    cm += np.array([[1, 2], [3, 4]])
    other = cm.copy()
    cm.reset()
    assert cm.total == 0 and other.total == 10
    with pytest.raises(ValueError):
        cm += ConfusionMatrix(3)
    with pytest.raises(ValueError):
        cm += ConfusionMatrix(2, ignore_index=0)
    with pytest.raises(ValueError):
        cm.summary(["only one"])
