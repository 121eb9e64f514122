"""Accepting the prediction into the ground truth, three ways, checked pixel by pixel.

Each way (a region, the whole image, a brush stroke) must copy the prediction exactly inside its
footprint and leave every other pixel alone; the confusion matrix must equal one counted here with
``np.bincount``; undo must restore the original array and redo must reapply the edit.
"""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.editing.document import ImageDocument
from segstudio.core.editing.history import HistoryBudget
from segstudio.core.io.classes import ClassTable
from tests.core.test_tools import ref_capsule, ref_disk

C = 5
IGN = 255
SHAPE = (40, 56)


def confusion(gt, pred):
    """``C x C`` counts of (gt, pred) pairs over pixels labelled on both sides."""
    valid = (gt != IGN) & (pred != IGN)
    pairs = gt[valid].astype(np.int64) * C + pred[valid].astype(np.int64)
    return np.bincount(pairs, minlength=C * C).reshape(C, C)


@pytest.fixture
def masks():
    """Blocky ground truth and a prediction that disagrees on about a third of the pixels."""
    rng = np.random.default_rng(11)
    gt = np.kron(rng.integers(0, C, (SHAPE[0] // 8, SHAPE[1] // 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
    gt[rng.random(SHAPE) < 0.04] = IGN
    pred = gt.copy()
    flip = rng.random(SHAPE) < 0.35
    pred[flip] = rng.integers(0, C, int(flip.sum()))
    pred[rng.random(SHAPE) < 0.03] = IGN
    assert set(np.unique(gt)) <= {*range(C), IGN} and set(np.unique(pred)) <= {*range(C), IGN}
    return gt, pred


def make_doc(gt, pred):
    image = np.zeros((*SHAPE, 3), np.uint8)
    return ImageDocument("img", image, ClassTable.generic(C), gt.copy(), pred.copy(), budget=HistoryBudget())


def check_accepted(doc, gt0, pred, region):
    """Prediction inside ``region``, the original labels outside, and the matching confusion."""
    assert doc.gt.dtype == gt0.dtype
    np.testing.assert_array_equal(doc.gt[region], pred[region])
    np.testing.assert_array_equal(doc.gt[~region], gt0[~region])
    np.testing.assert_array_equal(doc.confusion.matrix, confusion(doc.gt, pred))


def check_undo_redo(doc, gt0, pred, region):
    accepted = doc.gt.copy()
    assert doc.undo() is not None
    np.testing.assert_array_equal(doc.gt, gt0)
    assert doc.gt.dtype == gt0.dtype
    np.testing.assert_array_equal(doc.confusion.matrix, confusion(gt0, pred))
    assert doc.redo() is not None
    np.testing.assert_array_equal(doc.gt, accepted)
    check_accepted(doc, gt0, pred, region)
    assert doc.redo() is None


@pytest.mark.parametrize("with_bbox", [True, False])
def test_apply_region_copies_the_prediction_inside_the_region_only(masks, with_bbox):
    gt0, pred = masks
    doc = make_doc(gt0, pred)
    np.testing.assert_array_equal(doc.confusion.matrix, confusion(gt0, pred))
    x, y, w, h = 9, 6, 30, 21
    yy, xx = np.mgrid[0:h, 0:w]
    local = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2 <= 1   # an ellipse in the box
    region = np.zeros(SHAPE, bool)
    region[y:y + h, x:x + w] = local
    disagree = region & (gt0 != pred)
    assert disagree.sum() > 50 and (region & (pred == IGN)).any() and (region & (gt0 == IGN)).any()

    atom = doc.apply_region(local, (x, y, w, h)) if with_bbox else doc.apply_region(region)

    assert atom.count == int(disagree.sum())
    check_accepted(doc, gt0, pred, region)
    check_undo_redo(doc, gt0, pred, region)


def test_start_from_prediction_copies_the_whole_prediction(masks):
    gt0, pred = masks
    doc = make_doc(gt0, pred)
    everywhere = np.ones(SHAPE, bool)

    atom = doc.start_from_prediction()

    assert atom.count == int((gt0 != pred).sum())
    check_accepted(doc, gt0, pred, everywhere)
    labelled = pred != IGN
    np.testing.assert_array_equal(doc.confusion.matrix,
                                  np.diag(np.bincount(pred[labelled], minlength=C)))
    check_undo_redo(doc, gt0, pred, everywhere)
    assert doc.start_from_prediction() is None     # already equal: nothing to record


def test_prediction_brush_copies_the_prediction_under_the_stroke(masks):
    gt0, pred = masks
    doc = make_doc(gt0, pred)
    points, radius = [(6.5, 8.2), (30.0, 31.7), (50.4, 12.9)], 4
    region = ref_disk(SHAPE, *points[0], radius)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        region |= ref_capsule(SHAPE, x0, y0, x1, y1, radius)
    assert (region & (gt0 != pred)).sum() > 50 and not region.all()

    doc.begin_stroke(source="prediction")
    for x, y in points:
        doc.paint_to(x, y, radius)
    check_accepted(doc, gt0, pred, region)      # pixels and metrics are live during the stroke
    atom = doc.commit_stroke()

    assert atom.count == int((region & (gt0 != pred)).sum())
    assert doc.history.undo_depth == 1
    check_accepted(doc, gt0, pred, region)
    check_undo_redo(doc, gt0, pred, region)
