"""Paired bootstrap: point estimates equal a numpy formula, the seed reproduces the interval, and the
interval covers a known true Δ."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.evaluation.bootstrap import paired_bootstrap


def _confusion(gt, pred, c):
    return np.bincount(gt.ravel() * c + pred.ravel(), minlength=c * c).reshape(c, c).astype(np.int64)


def _miou(cm):
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.array([tp[k] / union[k] if union[k] else np.nan for k in range(len(tp))])
    return np.nanmean(iou), iou


def _dataset(n, c, flip_a, flip_b, seed, size=24):
    rng = np.random.default_rng(seed)
    ca, cb = [], []
    for _ in range(n):
        gt = rng.integers(0, c, (size, size))
        a = np.where(rng.random(gt.shape) < flip_a, rng.integers(0, c, gt.shape), gt)
        b = np.where(rng.random(gt.shape) < flip_b, rng.integers(0, c, gt.shape), gt)
        ca.append(_confusion(gt, a, c))
        cb.append(_confusion(gt, b, c))
    return np.stack(ca), np.stack(cb)


def test_point_estimates_equal_numpy_formula():
    ca, cb = _dataset(12, 3, 0.4, 0.2, seed=1)
    res = paired_bootstrap(ca, cb, resamples=50, seed=3)
    ma, ia = _miou(ca.sum(0))
    mb, ib = _miou(cb.sum(0))
    assert res.a_mean_iou == pytest.approx(ma, abs=1e-12)
    assert res.mean_iou_delta == pytest.approx(mb - ma, abs=1e-12)
    assert res.per_class_delta == pytest.approx(list(ib - ia), abs=1e-12)


def test_resamples_equal_a_python_loop_over_the_same_draws():
    ca, cb = _dataset(7, 3, 0.5, 0.3, seed=2)
    res = paired_bootstrap(ca, cb, resamples=20, seed=11)
    picks = np.random.default_rng(11).integers(0, 7, size=(20, 7))
    expected = [_miou(cb[p].sum(0))[0] - _miou(ca[p].sum(0))[0] for p in picks]
    np.testing.assert_allclose(res.mean_iou_deltas, expected, atol=1e-12)


def test_seed_reproduces_and_changes_the_interval():
    ca, cb = _dataset(20, 3, 0.4, 0.3, seed=4)
    first = paired_bootstrap(ca, cb, resamples=200, seed=5)
    again = paired_bootstrap(ca, cb, resamples=200, seed=5)
    other = paired_bootstrap(ca, cb, resamples=200, seed=6)
    assert first.mean_iou_delta_ci95 == again.mean_iou_delta_ci95
    assert first.per_class_ci95 == again.per_class_ci95
    assert first.mean_iou_delta_ci95 != other.mean_iou_delta_ci95


def test_interval_contains_the_known_true_delta():
    # Each pixel is flipped to a uniformly random class with probability f, so the expected IoU of every
    # class is known in closed form: correct = 1 - f + f/c, and by symmetry every off-diagonal cell has
    # the same expected count, so IoU = correct / (1 + (1 - correct)).
    c, fa, fb = 4, 0.5, 0.3

    def true_iou(f):
        ok = 1 - f + f / c
        return ok / (2 - ok)

    true_delta = true_iou(fb) - true_iou(fa)
    ca, cb = _dataset(60, c, fa, fb, seed=7, size=16)
    res = paired_bootstrap(ca, cb, resamples=1000, seed=0)
    lo, hi = res.mean_iou_delta_ci95
    assert lo < true_delta < hi
    assert lo > 0  # B really is better: the interval excludes 0
    for k in range(c):
        klo, khi = res.per_class_ci95[k]
        assert klo < true_delta < khi


def test_identical_sources_give_zero_and_equal_noise_straddles_zero():
    ca, cb = _dataset(30, 3, 0.4, 0.4, seed=8)
    same = paired_bootstrap(ca, ca, resamples=300, seed=1)
    assert same.mean_iou_delta == 0.0
    assert same.mean_iou_delta_ci95 == (0.0, 0.0)
    noise = paired_bootstrap(ca, cb, resamples=1000, seed=1)
    lo, hi = noise.mean_iou_delta_ci95
    assert lo < 0 < hi


def test_absent_class_is_undefined_and_left_out():
    c = 3
    gt = np.zeros((4, 4), int)
    gt[:2] = 1  # class 2 absent from labels and predictions
    cm = _confusion(gt, gt, c)
    res = paired_bootstrap(np.stack([cm, cm]), np.stack([cm, cm]), resamples=10)
    assert res.per_class_delta[2] is None and res.per_class_ci95[2] is None
    assert res.a_mean_iou == 1.0
    assert res.mean_iou_delta == 0.0


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        paired_bootstrap(np.zeros((2, 3, 3), np.int64), np.zeros((2, 4, 4), np.int64))
    with pytest.raises(ValueError):
        paired_bootstrap(np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64))


def test_fixed_class_set_leaves_out_resamples_missing_a_class():
    # Class 2 appears in one image of three: with ignore_absent=False a resample without that image has
    # an undefined mean (left out of the interval); with the default the mean skips the class instead.
    c = 3
    cms = []
    for k in range(3):
        gt = np.zeros((6, 6), int)
        gt[:3] = 1
        if k == 0:
            gt[0, 0] = 2
        pred = gt.copy()
        pred[5, k] = 1
        cms.append(_confusion(gt, pred, c))
    a = np.stack(cms)
    b = a.copy()
    b[:, 0, 1] = 0
    b[:, 0, 0] = a[:, 0, 0] + a[:, 0, 1]   # B gets the stray pixels right
    fixed = paired_bootstrap(a, b, resamples=200, seed=2, ignore_absent=False)
    free = paired_bootstrap(a, b, resamples=200, seed=2)
    picks = np.random.default_rng(2).integers(0, 3, size=(200, 3))
    missing = ~(picks == 0).any(axis=1)
    assert missing.any()
    assert np.isnan(fixed.mean_iou_deltas[missing]).all()
    assert np.isfinite(fixed.mean_iou_deltas[~missing]).all()
    assert np.isfinite(free.mean_iou_deltas).all()
    assert fixed.mean_iou_delta == pytest.approx(free.mean_iou_delta)


def test_marginals_give_the_same_result_as_the_matrices():
    from segstudio.core.evaluation.bootstrap import confusion_marginals, paired_bootstrap_marginals

    ca, cb = _dataset(9, 4, 0.4, 0.3, seed=12)
    full = paired_bootstrap(ca, cb, resamples=100, seed=4)
    small = paired_bootstrap_marginals(confusion_marginals(ca), confusion_marginals(cb), resamples=100, seed=4)
    assert confusion_marginals(ca).shape == (9, 12)
    np.testing.assert_array_equal(full.mean_iou_deltas, small.mean_iou_deltas)
    assert full.per_class_ci95 == small.per_class_ci95
