"""Error codes, colours, pair tints, error regions and instance marks on small hand-made arrays."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.io.classes import ClassInfo, ClassTable
from segstudio.core.evaluation.errormap import (
    BACKGROUND, CORRECT, ERROR_COLORS, FALSE_NEGATIVE, FALSE_POSITIVE, IGNORED, MISCLASSIFIED,
    ErrorRegion, error_codes, error_components, error_regions, instance_error_marks, pair_tint,
)
from segstudio.core.io.masks import InstanceMask
from segstudio.core.evaluation.metrics import ConfusionMatrix

BG, FP, FN, IG, MIS, OK = BACKGROUND, FALSE_POSITIVE, FALSE_NEGATIVE, IGNORED, MISCLASSIFIED, CORRECT

GT = np.array([[0, 0, 1, 2, 255],
               [1, 2, 0, 3, 1]], np.uint8)
PRED = np.array([[0, 1, 1, 1, 2],
                 [0, 2, 0, 255, 5]], np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint16])
def test_all_classes_codes(dtype):
    codes = error_codes(GT.astype(dtype), PRED.astype(dtype))
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, [[BG, FP, OK, MIS, IG],
                                          [FN, OK, BG, IG, MIS]])


def test_no_background_class_makes_every_disagreement_a_misclassification():
    np.testing.assert_array_equal(error_codes(GT, PRED, background=None), [[OK, MIS, OK, MIS, IG],
                                                                          [MIS, OK, OK, IG, MIS]])


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_one_class_codes(dtype):
    np.testing.assert_array_equal(error_codes(GT.astype(dtype), PRED.astype(dtype), class_id=1),
                                  [[BG, FP, OK, FP, IG],
                                   [FN, BG, BG, IG, FN]])


def test_codes_of_a_sub_rectangle_equal_that_part_of_the_whole():
    rng = np.random.default_rng(0)
    gt = rng.choice([0, 1, 2, 3, 255], (60, 70)).astype(np.uint8)
    pred = rng.choice([0, 1, 2, 3], (60, 70)).astype(np.uint8)
    box = (slice(13, 41), slice(5, 66))
    for class_id in (None, 2):
        whole = error_codes(gt, pred, class_id=class_id)
        np.testing.assert_array_equal(error_codes(gt[box], pred[box], class_id=class_id), whole[box])


def test_codes_agree_with_the_confusion_matrix():
    rng = np.random.default_rng(1)
    gt = rng.choice([0, 1, 2, 255], (50, 40)).astype(np.uint8)
    pred = rng.choice([0, 1, 2, 255], (50, 40)).astype(np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(gt, pred)
    codes = error_codes(gt, pred)
    m = cm.matrix
    assert np.count_nonzero(codes != IG) == cm.total
    assert np.count_nonzero((codes == OK) | (codes == BG)) == np.trace(m)
    assert np.count_nonzero(codes == FP) == m[0, 1:].sum()
    assert np.count_nonzero(codes == FN) == m[1:, 0].sum()
    assert np.count_nonzero(codes == MIS) == m[1, 2] + m[2, 1]


def test_error_colors():
    assert ERROR_COLORS.shape == (256, 4) and ERROR_COLORS.dtype == np.uint8
    assert ERROR_COLORS[BG, 3] == 0 and not ERROR_COLORS[6:].any()
    assert ERROR_COLORS[OK, 3] < ERROR_COLORS[FP, 3]  # correct is a faint hint, errors stand out
    rgbs = {tuple(ERROR_COLORS[c, :3]) for c in (OK, FP, FN, IG, MIS)}
    assert len(rgbs) == 5
    with pytest.raises(ValueError):
        ERROR_COLORS[0, 0] = 1


@pytest.fixture
def table():
    return ClassTable([ClassInfo(0, "bg", (0, 0, 0, 255)), ClassInfo(1, "road", (200, 0, 0, 255)),
                       ClassInfo(2, "walk", (0, 100, 40, 255))])


def test_pair_tint_blend_and_stripes(table):
    gt = np.array([[1, 1, 1, 0], [1, 1, 2, 255]], np.uint8)
    pred = np.array([[2, 2, 1, 1], [2, 2, 1, 2]], np.uint8)
    blend = pair_tint(gt, pred, table, stripe=0)
    assert blend.shape == (2, 4, 4)
    mis = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)  # FP at (0,3) and ignored at (1,3) untinted
    assert (blend[~mis] == 0).all()
    np.testing.assert_array_equal(blend[0, 0], [100, 50, 20, 220])
    striped = pair_tint(gt, pred, table, stripe=1, alpha=255)
    # (x + y) odd -> predicted colour, even -> ground-truth colour
    np.testing.assert_array_equal(striped[0, 0], [200, 0, 0, 255])   # gt road
    np.testing.assert_array_equal(striped[0, 1], [0, 100, 40, 255])  # pred walk
    np.testing.assert_array_equal(striped[1, 2], [200, 0, 0, 255])   # x+y odd: predicted road on gt walk
    np.testing.assert_array_equal(striped[1, 1], [200, 0, 0, 255])   # x+y even: gt road


def test_pair_tint_sub_rectangle_stripes_line_up(table):
    rng = np.random.default_rng(2)
    gt = rng.integers(1, 3, (30, 40)).astype(np.uint8)
    pred = rng.integers(1, 3, (30, 40)).astype(np.uint8)
    whole = pair_tint(gt, pred, table, stripe=3)
    part = pair_tint(gt[7:20, 11:33], pred[7:20, 11:33], table, stripe=3, origin=(11, 7))
    np.testing.assert_array_equal(part, whole[7:20, 11:33])


def region_scene():
    gt = np.zeros((8, 10), np.uint8)
    pred = np.zeros((8, 10), np.uint8)
    gt[1:3, 1:4] = 1            # missed road: FN, 6 px, bbox (1,1,3,2)
    gt[2, 1] = 2                # one of them is walk: majority still road
    pred[5:8, 5:8] = 2          # predicted walk on background: FP, 9 px ...
    gt[7, 7] = 255              # ... minus an ignored pixel -> 8 px
    pred[4, 4] = 2              # touches the FP blob only diagonally
    gt[0, 9], pred[0, 9] = 1, 2  # a single misclassified pixel
    return gt, pred


def test_error_regions_eight_connected():
    regions = error_regions(*region_scene())
    assert [(r.size, r.gt_class, r.pred_class, r.bbox, r.code) for r in regions] == [
        (9, 0, 2, (4, 4, 4, 4), FP),
        (6, 1, 0, (1, 1, 3, 2), FN),
        (1, 1, 2, (9, 0, 1, 1), MIS),
    ]


def test_error_regions_four_connected_and_min_size():
    gt, pred = region_scene()
    regions = error_regions(gt, pred, connectivity=4)
    assert [r.size for r in regions] == [8, 6, 1, 1]
    assert [r.bbox for r in regions[2:]] == [(9, 0, 1, 1), (4, 4, 1, 1)]  # equal sizes: raster order
    assert [r.size for r in error_regions(gt, pred, connectivity=4, min_size=2)] == [8, 6]


def test_error_regions_one_class_mode():
    gt, pred = region_scene()
    road = error_regions(gt, pred, class_id=1)
    assert [(r.size, r.code, r.bbox) for r in road] == [(5, FN, (1, 1, 3, 2)), (1, FN, (9, 0, 1, 1))]
    walk = error_regions(gt, pred, class_id=2)
    # gt walk at (1,2) predicted background is an FN of walk; the rest are FP of walk.
    assert [(r.size, r.code) for r in walk] == [(9, FP), (1, FP), (1, FN)]


def test_error_components_labels_match_regions():
    gt, pred = region_scene()
    labels, regions = error_components(gt, pred)
    assert labels.dtype == np.int32 and labels.shape == gt.shape
    for r in regions:
        assert isinstance(r, ErrorRegion)
        assert np.count_nonzero(labels == r.label) == r.size
    assert (labels[error_codes(gt, pred) == IG] == 0).all()
    empty_labels, empty = error_components(gt, gt)
    assert empty == [] and not empty_labels.any()


def test_error_regions_majority_with_many_regions_and_wide_ids():
    # Many tiny blobs with uint16 ids take the sparse majority path.
    gt = np.zeros((300, 300), np.uint16)
    pred = np.zeros((300, 300), np.uint16)
    gt[::2, ::2] = 1000
    pred[::2, ::2] = 999
    gt[0, 0:2], pred[0, 0:2] = (7, 7), (5, 5)  # joins grid pixels (0,0) and (0,2): 7,7,1000
    regions = error_regions(gt, pred, connectivity=4)
    assert len(regions) == 150 * 150 - 1
    assert (regions[0].size, regions[0].gt_class, regions[0].pred_class) == (3, 7, 5)
    assert all((r.gt_class, r.pred_class, r.code) == (1000, 999, MIS) for r in regions[1:])


def instances(shape, items):
    ids = np.zeros(shape, np.int32)
    for iid, y0, y1, x0, x1 in items:
        ids[y0:y1, x0:x1] = iid
    return InstanceMask(ids, {iid: 1 for iid, *_ in items})


def test_instance_error_marks():
    gt = instances((30, 40), [
        (1, 0, 10, 0, 10),    # split into 11 and 12
        (2, 12, 16, 0, 4),    # merged with 3 by 13
        (3, 12, 16, 6, 10),
        (4, 20, 25, 0, 5),    # missed
        (5, 20, 30, 30, 40),  # matched by 15
    ])
    pred = instances((30, 40), [
        (11, 0, 10, 0, 5), (12, 0, 10, 5, 10),
        (13, 12, 16, 0, 10),
        (14, 0, 3, 30, 33),   # spurious
        (15, 20, 30, 31, 40),
    ])
    marks = instance_error_marks(gt, pred)
    got = [(m.kind, m.layer, m.instance_id, m.related, m.bbox) for m in marks]
    assert got == [
        ("split", "gt", 1, (11, 12), (0, 0, 10, 10)),
        ("missed", "gt", 4, (), (0, 20, 5, 5)),
        ("merged", "pred", 13, (2, 3), (0, 12, 10, 4)),
        ("spurious", "pred", 14, (), (30, 0, 3, 3)),
    ]


def test_instance_error_marks_nothing_to_flag():
    gt = instances((5, 5), [(1, 0, 3, 0, 3)])
    assert instance_error_marks(gt, gt) == []
