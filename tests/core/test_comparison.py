"""The comparison seam: any number of label-vs-source comparisons per document, each kept exact by the
edit atom in O(edit), and the atom travelling in the change event. References are plain numpy here."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.editing.document import DEFAULT_SOURCE, EventKind, ImageDocument
from segstudio.core.editing.history import HistoryBudget
from segstudio.core.editing.review import image_review_stats, review_stats_of
from segstudio.core.evaluation import comparison as comparison_module
from segstudio.core.evaluation.comparison import SourceKey, SourceKind
from segstudio.core.io.classes import ClassTable

C, IGN = 5, 255
FOLDER = SourceKey(SourceKind.FOLDER, "/preds")


def masks(seed, shape=(40, 56)):
    rng = np.random.default_rng(seed)
    gt = np.kron(rng.integers(0, C, (shape[0] // 8, shape[1] // 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
    gt[rng.random(shape) < 0.05] = IGN
    pred_a, pred_b = gt.copy(), gt.copy()
    for pred in (pred_a, pred_b):
        flip = rng.random(shape) < 0.3
        pred[flip] = rng.integers(0, C, int(flip.sum()))
    pred_b[rng.random(shape) < 0.02] = IGN
    return gt, pred_a, pred_b, rng.random(shape).astype(np.float32)


def numpy_confusion(gt, pred):
    valid = (gt < C) & (pred < C)
    return np.bincount(gt[valid].astype(np.int64) * C + pred[valid], minlength=C * C).reshape(C, C)


def numpy_label_errors(gt, pred, conf, threshold):
    wrong = (gt != pred) & (gt != IGN) & (pred != IGN)
    return int((wrong & (np.floor(conf.astype(np.float64) * 1000) >= np.ceil(threshold * 1000))).sum())


def make(seed=0):
    gt, a, b, conf = masks(seed)
    doc = ImageDocument("img", np.zeros((*gt.shape, 3), np.uint8), ClassTable.generic(C), gt.copy(), a,
                        confidence=conf, budget=HistoryBudget())
    doc.set_prediction(b, confidence=conf[::-1].copy(), source=FOLDER)
    return doc


def assert_exact(doc):
    for comp in doc.comparisons.values():
        assert np.array_equal(comp.confusion.matrix, numpy_confusion(doc.gt, comp.pred)), comp.key
        wrong = (doc.gt != comp.pred) & (doc.gt != IGN) & (comp.pred != IGN)
        assert comp.error_pixels == int(wrong.sum())
        for threshold in (0.0, 0.5, 0.9):
            if comp.confidence is None:
                assert comp.label_errors_at(threshold) is None
                continue
            assert comp.label_errors_at(threshold) == numpy_label_errors(doc.gt, comp.pred, comp.confidence, threshold)
    assert np.array_equal(doc.gt_counts, np.bincount(doc.gt.ravel(), minlength=256)[:C])
    assert doc.classes_present() == frozenset(int(v) for v in np.unique(doc.gt) if v < C)


def test_two_sources_are_keyed_and_one_is_active():
    doc = make()
    assert set(doc.comparisons) == {DEFAULT_SOURCE, FOLDER}
    assert doc.active_source == FOLDER and doc.pred is doc.comparisons[FOLDER].pred
    doc.set_active_source(DEFAULT_SOURCE)
    assert doc.confusion is doc.comparisons[DEFAULT_SOURCE].confusion
    assert str(FOLDER) == "folder:/preds"
    with pytest.raises(KeyError):
        doc.set_active_source(SourceKey(SourceKind.LABELS, "original"))
    assert_exact(doc)


def test_every_edit_keeps_every_comparison_exact():
    doc = make(1)
    rng = np.random.default_rng(7)
    for step in range(12):
        doc.begin_stroke(int(rng.integers(0, C)))
        for _ in range(3):
            doc.paint_to(float(rng.uniform(0, 56)), float(rng.uniform(0, 40)), float(rng.uniform(1, 6)))
        doc.commit_stroke()
        assert_exact(doc)
        if step % 3 == 0:
            doc.fill(float(rng.uniform(0, 56)), float(rng.uniform(0, 40)), int(rng.integers(0, C)))
            assert_exact(doc)
        if step % 4 == 1:
            doc.undo()
            assert_exact(doc)
            doc.redo()
            assert_exact(doc)
    doc.apply_region(np.ones((10, 10), bool), (3, 4, 10, 10), source="prediction")
    assert_exact(doc)
    doc.start_from_prediction()
    assert_exact(doc)


def test_the_atom_travels_in_the_event():
    """A listener that only sees events can mirror the labels and the class counts exactly."""
    doc = make(2)
    mirror = doc.gt.copy()
    counts = np.bincount(mirror.ravel(), minlength=256)[:C].astype(np.int64)
    kinds = []

    def listener(event):
        kinds.append(event.kind)
        if event.kind is EventKind.LABELS:
            atom = event.atom
            rows, cols = atom.slices()
            assert np.array_equal(mirror[rows, cols][atom.changed], atom.old_values)
            mirror[rows, cols][atom.changed] = atom.new_values
            old, new = atom.old_values, atom.new_values
            counts[:] -= np.bincount(old[old < C], minlength=C)[:C]
            counts[:] += np.bincount(new[new < C], minlength=C)[:C]

    doc.subscribe(listener)
    doc.begin_stroke(3)
    doc.paint_line(2, 2, 50, 30, 4)
    doc.commit_stroke()
    doc.begin_stroke(1)
    doc.paint_dab(10, 10, 5)
    doc.abort_stroke()
    doc.undo()
    doc.redo()
    doc.fill_polygon([(5, 5), (30, 6), (20, 30)], 2)
    assert np.array_equal(mirror, doc.gt) and np.array_equal(counts, doc.gt_counts)
    assert kinds.count(EventKind.HISTORY) >= 2 and EventKind.LABELS in kinds


def test_comparison_built_elsewhere_is_rebuilt_when_labels_moved_on():
    doc = make(3)
    gt, a, b, conf = masks(4)
    build, version = doc.comparison_builder(b, source=SourceKey(SourceKind.MODEL, "b"))
    fresh = build()                      # as on a worker: labels unchanged -> attached as is
    doc.attach_comparison(fresh, version)
    assert_exact(doc)
    build, version = doc.comparison_builder(a, source=SourceKey(SourceKind.MODEL, "late"))
    stale = build()
    doc.begin_stroke(4)
    doc.paint_dab(20, 20, 8)             # the user painted while the comparison was being built
    doc.commit_stroke()
    doc.attach_comparison(stale, version)
    assert doc.active_source == SourceKey(SourceKind.MODEL, "late")
    assert_exact(doc)


def test_removing_a_source_falls_back_to_another():
    doc = make(5)
    doc.set_prediction(None)             # removes the active one (the folder)
    assert doc.active_source == DEFAULT_SOURCE and set(doc.comparisons) == {DEFAULT_SOURCE}
    doc.set_prediction(None)
    assert doc.pred is None and doc.error_codes is None and doc.confusion.total == 0


def test_review_stats_from_the_comparison_equal_the_full_computation():
    doc = make(6)
    doc.begin_stroke(2)
    doc.paint_dab(25, 20, 9)
    doc.commit_stroke()
    live = review_stats_of("img", doc.comparison, 0.8)
    full = image_review_stats("img", doc.gt, doc.pred, C, IGN, doc.confidence, 0.8)
    assert live.mean_iou == pytest.approx(full.mean_iou) and live.error_pixels == full.error_pixels
    assert np.array_equal(live.confidence_hist, full.confidence_hist)
    assert live.label_errors == numpy_label_errors(doc.gt, doc.pred, doc.confidence, 0.8)


def test_a_dab_reads_only_its_pixels(monkeypatch):
    """O(edit): nothing in the edit path touches an image-sized array."""
    doc = make(7)
    sizes = []
    for name in ("error_codes",):
        real = getattr(comparison_module.errormap, name)
        monkeypatch.setattr(comparison_module.errormap, name,
                            lambda gt, pred, _real=real, **kw: sizes.append(np.asarray(gt).size) or _real(gt, pred, **kw))
    real_bins = comparison_module._confidence_bins
    monkeypatch.setattr(comparison_module, "_confidence_bins", lambda c: sizes.append(np.asarray(c).size) or real_bins(c))
    doc.begin_stroke(1)
    doc.paint_dab(20, 20, 3)
    doc.commit_stroke()
    assert sizes and max(sizes) <= 7 * 7
    assert_exact(doc)
