"""Per-source results of a session: dataset sums, paired images, Δ rows B-worse-first, the per-class
table and the label-fix impact, each checked against a numpy formula written here."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.evaluation.comparison import SourceKey, SourceKind
from segstudio.core.evaluation.sources import (ORIGINAL_LABELS, LabelFixItem, SourceResults, class_deltas,
                                               label_fix_impact, parse_source_key, source_label)

A = SourceKey(SourceKind.MODEL, "parent")
B = SourceKey(SourceKind.FOLDER, "/data/runs/child")
C = 3


def confusion(gt, pred):
    m = np.zeros((C, C), np.int64)
    keep = gt != 255
    np.add.at(m, (gt[keep].astype(int), pred[keep].astype(int)), 1)
    return m


def mean_iou(gt, pred):
    ious = []
    for k in range(C):
        g, p = (gt == k), (pred == k) & (gt != 255)
        if (g | p).any():
            ious.append((g & p).sum() / (g | p).sum())
    return float(np.mean(ious))


def run(context_or_none, gen):
    """Drive a generator task to its return value."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


@pytest.fixture
def images():
    rng = np.random.default_rng(3)
    out = {}
    for name in ("i0", "i1", "i2", "i3"):
        gt = rng.integers(0, C, (12, 16)).astype(np.uint8)
        gt[0, :3] = 255
        a = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, C, gt.shape)).astype(np.uint8)
        b = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, C, gt.shape)).astype(np.uint8)
        out[name] = (gt, a, b)
    return out


def test_dataset_sums_pairs_and_delta_rows(images):
    results = SourceResults(C)
    for name, (gt, a, b) in images.items():
        results.record(A, name, confusion=confusion(gt, a))
        if name != "i3":                        # B never predicted i3: it is not paired
            results.record(B, name, confusion=confusion(gt, b))
    names, mats_a, mats_b = results.paired(A, B)
    assert names == ["i0", "i1", "i2"]
    expected_sum = sum(confusion(images[n][0], images[n][1]) for n in names)
    np.testing.assert_array_equal(results.dataset_confusion(A, names).matrix, expected_sum)
    rows = results.delta_rows(A, B)
    deltas = {n: mean_iou(images[n][0], images[n][2]) - mean_iou(images[n][0], images[n][1]) for n in names}
    assert [r.name for r in rows] == sorted(names, key=deltas.get)
    for r in rows:
        assert r.delta == pytest.approx(deltas[r.name])

    per_class, mean = class_deltas(results.dataset_confusion(A, names), results.dataset_confusion(B, names))
    gt = np.concatenate([images[n][0].ravel() for n in names])
    pa = np.concatenate([images[n][1].ravel() for n in names])
    pb = np.concatenate([images[n][2].ravel() for n in names])
    for k, row in enumerate(per_class):
        keep = gt != 255
        iou = lambda p: ((gt == k) & (p == k)).sum() / (((gt == k) | (p == k)) & keep).sum()  # noqa: E731
        assert row.delta == pytest.approx(iou(pb) - iou(pa))
    assert mean.delta == pytest.approx(mean_iou(gt, pb) - mean_iou(gt, pa))


def test_confusions_of_the_wrong_size_are_refused():
    with pytest.raises(ValueError, match="shape"):
        SourceResults(C).record(A, "x", confusion=np.zeros((2, 2)))


def test_source_keys_round_trip_and_short_labels():
    assert parse_source_key(str(B)) == B
    assert parse_source_key("labels:original") == ORIGINAL_LABELS
    assert source_label(B) == "folder:child" and source_label(A) == "model:parent"
    with pytest.raises(ValueError, match="unknown source kind"):
        parse_source_key("weights:x")


def test_label_fix_impact_sums_both_label_versions(images):
    gt, a, _b = images["i0"]
    corrected = gt.copy()
    corrected[4:8, 4:8] = a[4:8, 4:8]          # the correction agrees with the model there
    unchanged_gt, unchanged_pred, _ = images["i1"]
    unchanged = {A: SourceResults(C).dataset_confusion(A)}
    unchanged[A].matrix += confusion(unchanged_gt, unchanged_pred)
    item = LabelFixItem("i0", lambda: gt, lambda: corrected, {A: a})
    result = run(None, label_fix_impact(None, [item], unchanged, C, 255))
    assert result.changed_images == 1
    original_cm, corrected_cm = result.per_source[A]
    np.testing.assert_array_equal(original_cm.matrix, confusion(gt, a) + confusion(unchanged_gt, unchanged_pred))
    np.testing.assert_array_equal(corrected_cm.matrix,
                                  confusion(corrected, a) + confusion(unchanged_gt, unchanged_pred))
    assert corrected_cm.mean_iou() > original_cm.mean_iou()
