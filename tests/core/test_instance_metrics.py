"""Instance matching on hand-built masks with known TP/FP/FN/PQ."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.io.masks import InstanceMask
from segstudio.core.evaluation.instances import InstanceMetrics, instance_overlaps, match_instances


def boxes(shape, items):
    """items: (id, class, y0, y1, x0, x1) -> InstanceMask."""
    ids = np.zeros(shape, np.int32)
    classes = {}
    for iid, cls, y0, y1, x0, x1 in items:
        ids[y0:y1, x0:x1] = iid
        classes[iid] = cls
    return InstanceMask(ids, classes)


@pytest.fixture
def scene():
    gt = boxes((20, 30), [
        (1, 1, 0, 4, 0, 4),      # A, 16 px
        (2, 1, 10, 13, 0, 3),    # B, 9 px
        (3, 1, 15, 20, 20, 25),  # D, class 1
    ])
    pred = boxes((20, 30), [
        (7, 1, 0, 4, 0, 3),      # A': 12 px inside A -> IoU 12/16
        (8, 1, 10, 13, 2, 5),    # B': shares one column (3 px) with B -> IoU 3/15
        (9, 1, 5, 7, 20, 22),    # C: spurious
        (4, 2, 15, 20, 20, 25),  # D': D's pixels, other class
    ])
    return gt, pred


def test_known_counts_with_class_matching(scene):
    m = match_instances(*scene, iou_threshold=0.5)
    assert (m.tp, m.fp, m.fn) == (1, 3, 2)
    assert m.matches == [(1, 7, pytest.approx(0.75))]
    assert m.precision == pytest.approx(1 / 4)
    assert m.recall == pytest.approx(1 / 3)
    assert m.f1 == pytest.approx(2 / 7)
    assert m.sq == pytest.approx(0.75)
    assert m.rq == pytest.approx(1 / 3.5)
    assert m.pq == pytest.approx(0.75 / 3.5)
    assert m.pq == pytest.approx(m.sq * m.rq)


def test_known_counts_without_class_matching(scene):
    m = match_instances(*scene, iou_threshold=0.5, match_class=False)
    assert (m.tp, m.fp, m.fn) == (2, 2, 1)
    assert sorted(m.matches) == [(1, 7, pytest.approx(0.75)), (3, 4, pytest.approx(1.0))]
    assert m.sq == pytest.approx(0.875)
    assert m.rq == pytest.approx(2 / 3.5)
    assert m.pq == pytest.approx(1.75 / 3.5)


def test_threshold_is_inclusive():
    gt = boxes((4, 8), [(1, 0, 0, 4, 0, 2)])   # 8 px
    pred = boxes((4, 8), [(1, 0, 0, 4, 0, 1)])  # 4 px inside -> IoU exactly 0.5
    assert match_instances(gt, pred, 0.5).tp == 1
    m = match_instances(gt, pred, 0.6)
    assert (m.tp, m.fp, m.fn, m.pq, m.sq) == (0, 1, 1, 0.0, None)


def test_matching_is_one_to_one_and_prefers_higher_iou():
    gt = boxes((1, 10), [(5, 0, 0, 1, 0, 10)])
    pred = boxes((1, 10), [(1, 0, 0, 1, 0, 6), (2, 0, 0, 1, 6, 10)])  # IoU 0.6 and 0.4
    m = match_instances(gt, pred, iou_threshold=0.3)
    assert m.matches == [(5, 1, pytest.approx(0.6))]
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)


def test_empty_and_one_sided_masks():
    empty = InstanceMask(np.zeros((5, 5), np.int32), {})
    m = match_instances(empty, empty)
    assert (m.tp, m.fp, m.fn) == (0, 0, 0)
    assert m.precision is None and m.recall is None and m.pq is None and m.sq is None and m.rq is None
    only_pred = boxes((5, 5), [(1, 0, 0, 2, 0, 2)])
    m = match_instances(empty, only_pred)
    assert (m.tp, m.fp, m.fn) == (0, 1, 0)
    assert m.precision == 0.0 and m.recall is None and m.pq == 0.0 and m.rq == 0.0 and m.sq is None


def test_sparse_large_ids_equal_dense_ids(scene):
    gt, pred = scene
    remap = {1: 26001, 2: 26002, 3: 1 << 30}
    sparse_ids = np.zeros_like(gt.ids)
    for old, new in remap.items():
        sparse_ids[gt.ids == old] = new
    sparse = InstanceMask(sparse_ids, {remap[k]: v for k, v in gt.classes.items()})
    a, b = match_instances(gt, pred), match_instances(sparse, pred)
    assert (a.tp, a.fp, a.fn, a.pq) == (b.tp, b.fp, b.fn, b.pq)
    assert b.matches == [(26001, 7, pytest.approx(0.75))]


def test_overlaps_equal_per_instance_loops():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 6, (40, 50)).astype(np.int32)
    p = rng.integers(0, 5, (40, 50)).astype(np.int32) * 3  # ids 0, 3, 6, 9, 12
    ov = instance_overlaps(g, p)
    assert ov.gt_ids.tolist() == [1, 2, 3, 4, 5] and ov.pred_ids.tolist() == [3, 6, 9, 12]
    for i, gid in enumerate(ov.gt_ids):
        for j, pid in enumerate(ov.pred_ids):
            inter = np.count_nonzero((g == gid) & (p == pid))
            union = np.count_nonzero((g == gid) | (p == pid))
            assert ov.intersection[i, j] == inter
            assert ov.iou()[i, j] == pytest.approx(inter / union)


def test_dataset_sum_equals_side_by_side_image(scene):
    gt, pred = scene
    gt2 = boxes((20, 30), [(1, 1, 0, 10, 0, 10)])
    pred2 = boxes((20, 30), [(1, 1, 0, 10, 0, 9), (2, 1, 15, 18, 15, 18)])
    total = match_instances(gt, pred) + match_instances(gt2, pred2)
    # The same two images side by side, second image's ids offset to stay distinct.
    wide_gt = InstanceMask(np.hstack([gt.ids, np.where(gt2.ids > 0, gt2.ids + 100, 0)]),
                           {**gt.classes, **{k + 100: v for k, v in gt2.classes.items()}})
    wide_pred = InstanceMask(np.hstack([pred.ids, np.where(pred2.ids > 0, pred2.ids + 100, 0)]),
                             {**pred.classes, **{k + 100: v for k, v in pred2.classes.items()}})
    whole = match_instances(wide_gt, wide_pred)
    assert (total.tp, total.fp, total.fn) == (whole.tp, whole.fp, whole.fn) == (2, 4, 2)
    assert total.pq == pytest.approx(whole.pq)
    assert total.sq == pytest.approx(whole.sq)
    with pytest.raises(ValueError):
        total + InstanceMetrics.from_counts(0, 0, 0, 0.0, 0.75)
