"""Confident learning at region level, checked against cleanlab 2.9 (test-only reference) and numpy."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.evaluation.label_errors import (ThresholdAccumulator, class_thresholds, image_quality,
                                                    score_image, suspect_pixels, suspect_regions)

cleanlab_filter = pytest.importorskip("cleanlab.segmentation.filter")
cleanlab_rank = pytest.importorskip("cleanlab.segmentation.rank")
cleanlab_count = pytest.importorskip("cleanlab.count")

IGNORE = 255


def _planted(n=6, c=4, h=16, w=20, seed=0, error_rate=0.08):
    """Probabilities where every pixel is either confidently right (p_y in [0.7, 0.95], the rest below any
    threshold) or confidently mislabelled (one other class >= 0.85, so p_y <= 0.15): the case where
    segstudio's rule and cleanlab's top-k ranking pick the same pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, (n, h, w))
    wrong = rng.random((n, h, w)) < error_rate
    probs = np.zeros((n, c, h, w), np.float64)
    other = (labels + rng.integers(1, c, (n, h, w))) % c
    top = np.where(wrong, other, labels)
    top_p = np.where(wrong, rng.uniform(0.85, 0.95, (n, h, w)), rng.uniform(0.7, 0.95, (n, h, w)))
    rest = rng.dirichlet(np.ones(c - 1), size=(n, h, w)) * (1 - top_p)[..., None]  # (n, h, w, c-1)
    for k in range(c):
        is_top = top == k
        # the remaining classes take the rest in a fixed order, skipping the top class
        slot = np.where(k < top, k, k - 1)
        probs[:, k] = np.where(is_top, top_p, np.take_along_axis(rest, np.clip(slot, 0, c - 2)[..., None], -1)[..., 0])
    return labels, probs.astype(np.float32), wrong


def _thresholds(labels, probs):
    acc = ThresholdAccumulator(probs.shape[1])
    for lab, p in zip(labels, probs):
        acc.add(p, lab, IGNORE)
    return acc.thresholds()


def test_thresholds_equal_cleanlab_confident_thresholds():
    labels, probs, _ = _planted()
    flat_labels = labels.ravel()
    flat_probs = np.moveaxis(probs, 1, -1).reshape(-1, probs.shape[1])
    expected = cleanlab_count.get_confident_thresholds(flat_labels, flat_probs.astype(np.float64))
    np.testing.assert_allclose(_thresholds(labels, probs), expected, rtol=1e-6)
    # and the numpy definition: mean p_k over pixels labelled k
    for k in range(probs.shape[1]):
        assert _thresholds(labels, probs)[k] == pytest.approx(flat_probs[flat_labels == k, k].mean(), rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_suspect_pixels_equal_cleanlab_find_label_issues(seed):
    labels, probs, wrong = _planted(seed=seed)
    t = _thresholds(labels, probs)
    ours = np.stack([suspect_pixels(p, lab, t, IGNORE)[0] for lab, p in zip(labels, probs)])
    assert (np.stack([suspect_pixels(p, lab, t, IGNORE, rule="any")[0] for lab, p in zip(labels, probs)]) == ours).all()
    theirs = cleanlab_filter.find_label_issues(labels, probs, downsample=1, n_jobs=1, verbose=False,
                                               batch_size=10_000)
    assert ours.sum() > 0
    np.testing.assert_array_equal(ours, theirs)
    # the planted set: the mislabelled pixels whose top class cleared its threshold
    top = probs.argmax(axis=1)
    planted = wrong & (np.take_along_axis(probs, top[:, None], 1)[:, 0] >= t[top])
    np.testing.assert_array_equal(ours, planted)


def _random_case(seed=3, c=5, h=30, w=30):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, 0.5), size=(h, w)).transpose(2, 0, 1).astype(np.float32)
    labels = rng.integers(0, c, (h, w))
    labels[:3] = IGNORE
    return probs, labels, _thresholds(labels[None], probs[None])


def test_argmax_rule_matches_a_numpy_formula_on_random_probabilities():
    probs, labels, t = _random_case()
    suspect, suggested = suspect_pixels(probs, labels, t, IGNORE)
    top = probs.argmax(axis=0)
    p_top = np.take_along_axis(probs, top[None], 0)[0]
    expected = (labels != IGNORE) & (top != labels) & (p_top >= t[top])
    assert expected.sum() > 20
    np.testing.assert_array_equal(suspect, expected)
    np.testing.assert_array_equal(suggested, np.where(expected, top, -1))


def test_cleanlab_flags_no_more_pixels_than_the_argmax_rule_and_ranks_differently():
    # cleanlab counts the pixels our rule flags (M), then flags the M least self-confident pixels and
    # unflags those whose argmax is their label: never more pixels, not always the same ones.
    probs, labels, t = _random_case(seed=5, h=24, w=24)
    labels[:3] = probs[:, :3].argmax(axis=0)  # cleanlab takes no ignored pixels
    t = _thresholds(labels[None], probs[None])
    ours = suspect_pixels(probs, labels, t, IGNORE)[0]
    theirs = cleanlab_filter.find_label_issues(labels[None], probs[None], downsample=1, n_jobs=1, verbose=False)[0]
    assert theirs.sum() <= ours.sum()
    assert (ours != theirs).any()


def test_any_rule_matches_a_numpy_formula_on_random_probabilities():
    probs, labels, t = _random_case()
    c, h, w = probs.shape
    suspect, suggested = suspect_pixels(probs, labels, t, IGNORE, rule="any")
    exp_s = np.zeros((h, w), bool)
    exp_k = np.full((h, w), -1)
    for i in range(h):
        for j in range(w):
            y = labels[i, j]
            if y == IGNORE:
                continue
            ks = [k for k in range(c) if k != y and probs[k, i, j] >= t[k]]
            if ks:
                exp_s[i, j] = True
                exp_k[i, j] = max(ks, key=lambda k: probs[k, i, j])
    np.testing.assert_array_equal(suspect, exp_s)
    np.testing.assert_array_equal(suggested, exp_k)


def test_where_the_any_rule_and_cleanlab_differ():
    # One image, two classes: a pixel labelled 0 where the model still prefers 0 (p0 = 0.6) but class 1
    # reaches its threshold. The "any" rule flags it (some k != y has p_k >= t_k); the default rule and
    # cleanlab never flag a pixel whose argmax equals its label.
    labels = np.zeros((1, 4, 4), int)
    labels[0, :2] = 1
    probs = np.zeros((1, 2, 4, 4), np.float32)
    probs[0, 1, :2] = 0.3   # pixels labelled 1: t_1 = 0.3
    probs[0, 1, 2:] = 0.05
    probs[0, 1, 3, 3] = 0.4  # labelled 0, argmax 0 (0.6), p_1 >= t_1
    probs[0, 0] = 1 - probs[0, 1]
    t = _thresholds(labels, probs)
    ours = suspect_pixels(probs[0], labels[0], t, IGNORE, rule="any")[0]
    theirs = cleanlab_filter.find_label_issues(labels, probs, downsample=1, n_jobs=1, verbose=False)
    assert ours[3, 3] and not theirs[0, 3, 3]
    assert not suspect_pixels(probs[0], labels[0], t, IGNORE)[0][3, 3]


def test_class_never_labelled_is_never_suggested():
    t = class_thresholds(np.array([5.0, 0.0]), np.array([10, 0]))
    assert t[0] == 0.5 and np.isnan(t[1])
    probs = np.stack([np.full((2, 2), 0.01), np.full((2, 2), 0.99)]).astype(np.float32)
    suspect, suggested = suspect_pixels(probs, np.zeros((2, 2), int), t)
    assert not suspect.any() and (suggested == -1).all()


def test_regions_group_by_suggestion_with_score_formula():
    c, h, w = 3, 24, 24
    labels = np.zeros((h, w), int)
    probs = np.zeros((c, h, w), np.float32)
    probs[0] = 0.9
    probs[1] = 0.05
    probs[2] = 0.05
    # error 1: labelled 0, model says 1, 6x5 block
    probs[:, 2:7, 3:9] = np.array([0.1, 0.85, 0.05])[:, None, None]
    # error 2: labelled 0, model says 2 strongly, 3x3 block
    probs[:, 15:18, 15:18] = np.array([0.02, 0.03, 0.95])[:, None, None]
    # a lone weak pixel: suggestion 1, area 1
    probs[:, 20, 2] = np.array([0.2, 0.8, 0.0])
    t = np.array([0.8, 0.5, 0.5])
    suspect, suggested = suspect_pixels(probs, labels, t)
    regions = suspect_regions(suspect, suggested, labels, probs, min_area=2, image_name="img")
    assert [(r.bbox, r.area, r.given, r.suggested) for r in regions] == [
        ((15, 15, 3, 3), 9, 0, 2), ((3, 2, 6, 5), 30, 0, 1)]
    assert regions[0].score == pytest.approx(0.95 - 0.02, abs=1e-6)
    assert regions[1].score == pytest.approx(0.85 - 0.1, abs=1e-6)
    assert regions[1].mask.shape == (5, 6) and regions[1].mask.all()
    assert regions[0].to_json(["a", "b", "c"]) == {"image": "img", "bbox": [15, 15, 3, 3], "area": 9,
                                                   "given": "a", "suggested": "c",
                                                   "score": pytest.approx(0.93, abs=1e-6)}
    result = score_image(probs, labels, t, min_area=1, image_name="img", min_width=1)
    assert result.suspect_pixels == 40 and len(result.regions) == 3
    # the default min_width=3 leaves out the one-pixel region, keeps the 3x3 one
    assert [r.area for r in score_image(probs, labels, t, min_area=1).regions] == [9, 30]


def test_grow_takes_the_whole_blob_around_confident_seeds():
    c, h, w = 2, 20, 20
    labels = np.zeros((h, w), int)
    probs = np.zeros((c, h, w), np.float32)
    probs[1] = 0.05
    probs[1, 4:12, 4:12] = 0.7    # the model prefers class 1 over the whole 8x8 block ...
    probs[1, 6:10, 6:10] = 0.95   # ... and is confident in its 4x4 centre
    probs[1, 15:18, 15:18] = 0.7  # preferred but nowhere confident: no seed, no region
    probs[0] = 1 - probs[1]
    t = np.array([0.9, 0.9])
    suspect, suggested = suspect_pixels(probs, labels, t)
    assert suspect.sum() == 16
    grown = suspect_regions(suspect, suggested, labels, probs, min_area=10)
    assert [(r.bbox, r.area) for r in grown] == [((4, 4, 8, 8), 64)]
    expected_score = (16 * (0.95 - 0.05) + 48 * (0.7 - 0.3)) / 64
    assert grown[0].score == pytest.approx(expected_score, abs=1e-5)
    plain = suspect_regions(suspect, suggested, labels, probs, min_area=10, grow=False)
    assert [(r.bbox, r.area) for r in plain] == [((6, 6, 4, 4), 16)]
    # min_area counts seeds: 16 seeds < 20, so growing does not rescue the region
    assert suspect_regions(suspect, suggested, labels, probs, min_area=20) == []


def test_min_width_drops_slivers_along_outlines():
    c, h, w = 2, 30, 30
    labels = np.zeros((h, w), int)
    labels[5:25, 5:25] = 1                 # the object as labelled, one pixel too large
    probs = np.zeros((c, h, w), np.float32)
    probs[1] = 0.02
    probs[1, 6:24, 6:24] = 0.98
    probs[1, 5:25, 5] = probs[1, 5:25, 24] = 0.02   # the model: the labelled ring is background
    probs[1, 5, 5:25] = probs[1, 24, 5:25] = 0.02
    probs[1, 10:16, 10:16] = 0.02                    # and a 6x6 hole the labels missed
    probs[0] = 1 - probs[1]
    t = np.array([0.9, 0.9])
    suspect, suggested = suspect_pixels(probs, labels, t)
    assert suspect.sum() == 76 + 36
    both = suspect_regions(suspect, suggested, labels, probs, min_area=10, min_width=1)
    assert sorted(r.area for r in both) == [36, 76]
    kept = suspect_regions(suspect, suggested, labels, probs, min_area=10, min_width=3)
    assert [(r.bbox, r.area, r.given, r.suggested) for r in kept] == [((10, 10, 6, 6), 36, 1, 0)]


def test_image_quality_equals_cleanlab_softmin():
    labels, probs, _ = _planted(n=3, seed=4)
    expected, _ = cleanlab_rank.get_label_quality_scores(labels, probs, method="softmin", verbose=False)
    ours = [image_quality(p, lab) for lab, p in zip(labels, probs)]
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_image_quality_skips_ignored_pixels():
    probs = np.stack([np.full((2, 2), 0.9), np.full((2, 2), 0.1)]).astype(np.float32)
    labels = np.array([[0, 0], [IGNORE, IGNORE]])
    assert image_quality(probs, labels) == pytest.approx(0.9, abs=1e-6)
    assert image_quality(probs, np.full((2, 2), IGNORE)) is None
