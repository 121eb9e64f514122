"""The A-vs-B disagreement map against a plain numpy formula written here."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.errors import MaskSizeMismatch
from segstudio.core.evaluation.disagreement import (Disagreement, disagreement_codes, disagreement_counts,
                                                    disagreement_regions, update_codes)

IGNORE = 255


def _reference(gt, a, b, ignore=IGNORE):
    """Independent per-pixel rule, branch by branch."""
    out = np.empty(gt.shape, dtype=np.uint8)
    for idx in np.ndindex(gt.shape):
        g, pa, pb = int(gt[idx]), int(a[idx]), int(b[idx])
        if g == ignore:
            out[idx] = 5
        elif pa == g and pb == g:
            out[idx] = 0
        elif pa != g and pb == g:
            out[idx] = 1
        elif pa == g and pb != g:
            out[idx] = 2
        elif pa == pb:
            out[idx] = 3
        else:
            out[idx] = 4
    return out


def _random(seed, shape=(40, 50), c=4):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, c, shape).astype(np.uint8)
    gt[rng.random(shape) < 0.1] = IGNORE
    a = np.where(rng.random(shape) < 0.7, gt, rng.integers(0, c, shape)).astype(np.uint8)
    b = np.where(rng.random(shape) < 0.7, gt, rng.integers(0, c, shape)).astype(np.uint8)
    a[gt == IGNORE] = rng.integers(0, c, int((gt == IGNORE).sum()))
    return gt, a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_codes_and_counts_match_numpy_formula(seed):
    gt, a, b = _random(seed)
    codes = disagreement_codes(gt, a, b, IGNORE)
    np.testing.assert_array_equal(codes, _reference(gt, a, b))
    counts = disagreement_counts(codes)
    scored = gt != IGNORE
    assert counts["both_right"] == int(((a == gt) & (b == gt) & scored).sum())
    assert counts["b_fixes"] == int(((a != gt) & (b == gt) & scored).sum())
    assert counts["b_breaks"] == int(((a == gt) & (b != gt) & scored).sum())
    assert counts["both_wrong_same"] == int(((a != gt) & (b != gt) & (a == b) & scored).sum())
    assert counts["both_wrong_different"] == int(((a != gt) & (b != gt) & (a != b) & scored).sum())
    assert counts["ignored"] == int((~scored).sum())
    # b_fixes - b_breaks is B's gain in correct pixels.
    assert counts["b_fixes"] - counts["b_breaks"] == int(((b == gt) & scored).sum() - ((a == gt) & scored).sum())


def test_num_classes_ignores_out_of_range_labels():
    gt = np.array([[0, 7]], dtype=np.uint8)
    a = np.array([[0, 7]], dtype=np.uint8)
    codes = disagreement_codes(gt, a, a, IGNORE, num_classes=3)
    assert codes.tolist() == [[Disagreement.BOTH_RIGHT, Disagreement.IGNORED]]


def test_shape_mismatch_is_typed():
    with pytest.raises(MaskSizeMismatch):
        disagreement_codes(np.zeros((3, 3), np.uint8), np.zeros((3, 4), np.uint8), np.zeros((3, 3), np.uint8))


def test_update_codes_recomputes_only_the_bbox():
    gt, a, b = _random(3)
    codes = disagreement_codes(gt, a, b, IGNORE)
    new_gt = gt.copy()
    new_gt[5:12, 8:20] = 2
    bbox = (8, 5, 12, 7)
    before = codes.copy()
    update_codes(codes, new_gt, a, b, IGNORE, bbox)
    np.testing.assert_array_equal(codes, _reference(new_gt, a, b))
    outside = np.ones(gt.shape, bool)
    outside[5:12, 8:20] = False
    np.testing.assert_array_equal(codes[outside], before[outside])
    # A bbox that misses the change leaves the stale codes: the update really is local.
    stale = disagreement_codes(gt, a, b, IGNORE)
    update_codes(stale, new_gt, a, b, IGNORE, (30, 30, 5, 5))
    np.testing.assert_array_equal(stale, before)


def test_regions_largest_first_with_bbox_area_centroid():
    codes = np.zeros((30, 40), np.uint8)
    codes[2:6, 3:8] = Disagreement.B_BREAKS          # 20 px
    codes[10:20, 10:30] = Disagreement.B_FIXES       # 200 px
    codes[25, 35] = Disagreement.B_BREAKS            # 1 px
    codes[22:24, 0:3] = Disagreement.BOTH_WRONG_SAME  # not asked for
    regions = disagreement_regions(codes)
    assert [(r.kind, r.bbox, r.area) for r in regions] == [
        (Disagreement.B_FIXES, (10, 10, 20, 10), 200),
        (Disagreement.B_BREAKS, (3, 2, 5, 4), 20),
        (Disagreement.B_BREAKS, (35, 25, 1, 1), 1)]
    assert regions[0].centroid == pytest.approx((19.5, 14.5))
    assert [r.area for r in disagreement_regions(codes, min_area=2)] == [200, 20]
    same = disagreement_regions(codes, kinds=(Disagreement.BOTH_WRONG_SAME,))
    assert [(r.bbox, r.area) for r in same] == [((0, 22, 3, 2), 6)]
