"""ImageDocument editing: exact pixels, incremental metrics == full recompute, undo/redo round trips."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segstudio.core.evaluation import errormap
from segstudio.core.io.classes import ClassTable
from segstudio.core.editing.document import DEFAULT_SOURCE, DocumentEvent, EventKind, ImageDocument, StrokeError
from segstudio.core.errors import MaskSizeMismatch
from segstudio.core.editing.history import HistoryBudget
from segstudio.core.editing.selection import Selection
from segstudio.core.evaluation.metrics import ConfusionMatrix
from tests.core.test_tools import ref_capsule, ref_disk

C = 6
IGN = 255


@pytest.fixture
def table():
    return ClassTable.generic(C)


def random_masks(seed, shape=(48, 64)):
    rng = np.random.default_rng(seed)
    # blocky labels so that fills and protect rules meet real regions
    small = rng.integers(0, C, (shape[0] // 8, shape[1] // 8)).astype(np.uint8)
    gt = np.kron(small, np.ones((8, 8), np.uint8))
    gt[rng.random(shape) < 0.03] = IGN
    pred = gt.copy()
    flip = rng.random(shape) < 0.3
    pred[flip] = rng.integers(0, C, int(flip.sum()))
    return gt, pred


def make_doc(table, seed=0, shape=(48, 64), **kw):
    gt, pred = random_masks(seed, shape)
    image = np.zeros((*shape, 3), np.uint8)
    return ImageDocument("img", image, table, gt, pred, budget=HistoryBudget(), **kw), gt.copy(), pred


def full_confusion(gt, pred):
    cm = ConfusionMatrix(C, IGN)
    cm.update(gt, pred)
    return cm


def assert_in_sync(doc):
    assert np.array_equal(doc.confusion.matrix, full_confusion(doc.gt, doc.pred).matrix)
    ref = errormap.error_codes(doc.gt, doc.pred, ignore_index=IGN, class_id=doc.error_class)
    assert np.array_equal(doc.error_codes, ref)


def iou_f1(gt, pred, k):
    valid = (gt != IGN) & (pred != IGN)
    g, p = (gt == k) & valid, (pred == k) & valid
    tp, fp, fn = int((g & p).sum()), int((~g & p).sum()), int((g & ~p).sum())
    return (tp / (tp + fp + fn) if tp + fp + fn else None,
            2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None)


def test_stroke_paints_dab_then_gapless_capsule(table):
    doc, gt0, _ = make_doc(table)
    doc.begin_stroke(3)
    doc.paint_dab(10.5, 12.2, 4)
    doc.paint_to(58.0, 40.7, 4)          # one far mouse event: the whole segment must be covered
    atom = doc.commit_stroke()
    covered = ref_disk(gt0.shape, 10.5, 12.2, 4) | ref_capsule(gt0.shape, 10.5, 12.2, 58.0, 40.7, 4)
    expected = np.where(covered, 3, gt0)
    assert np.array_equal(doc.gt, expected)
    changed = expected != gt0
    x, y, w, h = atom.bbox
    full = np.zeros_like(changed)
    full[y:y + h, x:x + w] = atom.changed
    assert np.array_equal(full, changed)
    assert np.array_equal(atom.old_values, gt0[changed]) and (atom.new_values == 3).all()
    assert_in_sync(doc)


def test_protect_only_over_and_prediction_source(table):
    doc, gt0, pred = make_doc(table, seed=1)
    disk = ref_disk(gt0.shape, 30, 20, 9)
    doc.begin_stroke(5, protect={1, 2})
    doc.paint_dab(30, 20, 9)
    doc.commit_stroke()
    expect = np.where(disk & ~np.isin(gt0, [1, 2]), 5, gt0)
    assert np.array_equal(doc.gt, expect)
    doc.undo()
    doc.begin_stroke(4, only_over=0)
    doc.paint_dab(30, 20, 9)
    doc.commit_stroke()
    assert np.array_equal(doc.gt, np.where(disk & (gt0 == 0), 4, gt0))
    doc.undo()
    doc.begin_stroke(source="prediction")
    doc.paint_dab(30, 20, 9)
    doc.paint_to(31, 21, 9)
    doc.commit_stroke()
    assert np.array_equal(doc.gt, np.where(disk | ref_disk(gt0.shape, 31, 21, 9), pred, gt0))
    assert_in_sync(doc)


def test_dab_events_carry_bbox_and_metrics_delta(table):
    selection = Selection(class_id=2)
    doc, gt0, pred = make_doc(table, seed=2, selection=selection)
    events: list[DocumentEvent] = []
    doc.subscribe(events.append)
    before = iou_f1(gt0, pred, 2)
    doc.begin_stroke(2)
    doc.paint_dab(20, 20, 6)
    (ev,) = events
    assert ev.kind == "gt" and ev.bbox == (14, 14, 13, 13)
    after = iou_f1(doc.gt, pred, 2)
    assert ev.metrics_delta.class_id == 2
    assert ev.metrics_delta.iou_before == pytest.approx(before[0])
    assert ev.metrics_delta.iou_after == pytest.approx(after[0])
    assert ev.metrics_delta.f1_before == pytest.approx(before[1])
    assert ev.metrics_delta.f1_after == pytest.approx(after[1])
    doc.paint_dab(40, 20, 6)            # deltas stay relative to the start of the stroke
    assert events[-1].metrics_delta.iou_before == pytest.approx(before[0])
    doc.commit_stroke()
    assert events[-1] == DocumentEvent("history")
    events.clear()
    selection.select_class(4)            # the UI's selected class overrides the painted one
    doc.undo()
    assert events[-1].metrics_delta.class_id == 4
    assert events[-1].metrics_delta.iou_after == pytest.approx(iou_f1(gt0, pred, 4)[0])


def test_every_step_touches_only_the_edited_area(table, monkeypatch):
    doc, _, _ = make_doc(table, seed=3, shape=(1024, 1024))
    sizes = []
    real_codes, real_edit = errormap.error_codes, ConfusionMatrix.apply_edit
    monkeypatch.setattr(errormap, "error_codes", lambda gt, pred, **kw: sizes.append(gt.size) or real_codes(gt, pred, **kw))
    monkeypatch.setattr(ConfusionMatrix, "apply_edit",
                        lambda self, a, b, c, d: sizes.append(a.size) or real_edit(self, a, b, c, d))
    monkeypatch.setattr(ConfusionMatrix, "update", lambda *a: pytest.fail("full recompute during an edit"))
    doc.begin_stroke(1)
    doc.paint_dab(500, 500, 16)
    doc.paint_to(900, 100, 16)
    stroke = doc.commit_stroke()
    doc.undo()
    doc.redo()
    poly = doc.fill_polygon([(10, 10), (60, 10), (10, 60)], 2)
    # metrics and error codes only ever see changed pixels, never the image nor the stroke's big box
    assert sizes and max(sizes) <= stroke.count < 0.1 * stroke.changed.size
    assert sizes[-2:] == [poly.count, poly.count]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10_000), st.lists(st.tuples(st.sampled_from(["stroke", "fill", "poly", "region",
                                                                     "undo", "redo", "accept"]),
                                                    st.integers(0, 2**31 - 1)), min_size=1, max_size=12))
def test_random_edits_keep_metrics_in_sync_and_undo_redo_round_trips(table, seed, ops):
    doc, gt0, pred = make_doc(table, seed=seed % 7)
    states = [gt0.copy()]     # states[i] = gt after i edits on the current branch
    pos = 0
    h, w = gt0.shape
    for op, s in ops:
        rng = np.random.default_rng(s)
        if op == "undo":
            doc.undo()
            pos = max(pos - 1, 0)
        elif op == "redo":
            if doc.redo() is not None:
                pos += 1
        else:
            if op == "stroke":
                doc.begin_stroke(int(rng.integers(0, C)), protect={int(rng.integers(0, C))})
                for _ in range(int(rng.integers(1, 5))):
                    doc.paint_to(rng.uniform(-5, w + 5), rng.uniform(-5, h + 5), float(rng.integers(0, 7)))
                atom = doc.commit_stroke()
            elif op == "accept":
                doc.begin_stroke(source="prediction")
                doc.paint_line(*rng.uniform(0, 48, 4), 5)
                atom = doc.commit_stroke()
            elif op == "fill":
                atom = doc.fill(rng.uniform(0, w), rng.uniform(0, h), int(rng.integers(0, C)))
            elif op == "poly":
                atom = doc.fill_polygon(rng.uniform(-5, 70, (4, 2)), int(rng.integers(0, C)))
            else:
                region = rng.random((h, w)) < 0.2
                atom = doc.apply_region(region, source=str(rng.choice(["prediction", "erase"])))
            if atom is not None:
                del states[pos + 1:]
                states.append(doc.gt.copy())
                pos += 1
        assert np.array_equal(doc.gt, states[pos])
        assert_in_sync(doc)
    while doc.undo() is not None:
        pos -= 1
        assert np.array_equal(doc.gt, states[pos])
    assert pos == 0 and np.array_equal(doc.gt, gt0)
    assert_in_sync(doc)
    while doc.redo() is not None:
        pos += 1
    assert np.array_equal(doc.gt, states[-1])


def test_fill_is_four_connected_and_one_atom(table):
    gt = np.zeros((20, 20), np.uint8)
    gt[10, :] = 1
    gt[:, 10] = 1
    gt[3, 3] = 2
    gt[11, 11] = 1                    # touches the cross only diagonally... and by edges: still 4-connected
    gt[15, 15] = 1                    # isolated: must stay
    doc = ImageDocument("f", np.zeros((20, 20), np.uint8), table, gt.copy(), budget=HistoryBudget())
    atom = doc.fill(10, 2, 4)
    _, comp = cv2.connectedComponents((gt == 1).astype(np.uint8), connectivity=4)
    region = comp == comp[2, 10]
    assert np.array_equal(doc.gt, np.where(region, 4, gt))
    assert doc.gt[15, 15] == 1 and atom.count == int(region.sum())
    assert doc.history.undo_depth == 1 and doc.error_codes is None   # no prediction: no error map


def test_apply_region_with_bbox_accept_and_erase(table):
    doc, gt0, pred = make_doc(table, seed=4)
    mask = np.zeros((6, 9), bool)
    mask[1:5, 2:8] = True
    doc.apply_region(mask, (10, 20, 9, 6), source="prediction")
    exp = gt0.copy()
    exp[20:26, 10:19][mask] = pred[20:26, 10:19][mask]
    assert np.array_equal(doc.gt, exp)
    doc.apply_region(mask, (10, 20, 9, 6), source="erase", erase_value=IGN)
    exp[20:26, 10:19][mask] = IGN
    assert np.array_equal(doc.gt, exp)
    assert_in_sync(doc)
    with pytest.raises(MaskSizeMismatch):
        doc.apply_region(mask, (10, 20, 8, 6))
    with pytest.raises(ValueError):
        doc.apply_region(mask, (10, 20, 9, 6), source="bogus")


def test_start_from_prediction_without_gt_is_undoable(table):
    _, pred = random_masks(5)
    doc = ImageDocument("n", np.zeros(pred.shape, np.uint8), table, None, pred, budget=HistoryBudget())
    assert doc.gt is None and doc.error_codes is None and doc.confusion.total == 0
    events = []
    doc.subscribe(events.append)
    doc.start_from_prediction()
    assert np.array_equal(doc.gt, pred) and doc.modified
    assert events[-1].kind == "all"
    assert_in_sync(doc)
    doc.undo()
    assert (doc.gt == IGN).all() and doc.confusion.total == 0
    assert (doc.error_codes == errormap.IGNORED).all()


def test_abort_restores_pixels_and_metrics(table):
    doc, gt0, _ = make_doc(table, seed=6)
    m0 = doc.confusion.matrix.copy()
    doc.begin_stroke(1)
    doc.paint_line(0, 0, 63, 47, 5)
    assert not np.array_equal(doc.gt, gt0)
    doc.abort_stroke()
    assert np.array_equal(doc.gt, gt0) and np.array_equal(doc.confusion.matrix, m0)
    assert not doc.can_undo
    assert_in_sync(doc)


def test_error_class_mode_stays_in_sync(table):
    doc, _, _ = make_doc(table, seed=7, error_class=2)
    assert_in_sync(doc)
    doc.begin_stroke(2)
    doc.paint_line(5, 5, 40, 30, 4)
    doc.commit_stroke()
    assert_in_sync(doc)
    events = []
    doc.subscribe(events.append)
    doc.error_class = None
    assert events == [DocumentEvent("errors")]
    assert_in_sync(doc)


def test_history_survives_switching_images_only_on_same_pixels(table):
    budget = HistoryBudget()
    gt, pred = random_masks(8)
    img = np.zeros(gt.shape, np.uint8)
    doc = ImageDocument("a", img, table, gt.copy(), pred, budget=budget)
    doc.begin_stroke(5)
    doc.paint_dab(10, 10, 5)
    doc.commit_stroke()
    edited = doc.gt.copy()
    doc.close()
    other = ImageDocument("b", img, table, gt.copy(), pred, budget=budget)
    assert not other.can_undo
    back = ImageDocument("a", img, table, edited.copy(), pred, budget=budget)
    assert back.can_undo
    back.undo()
    assert np.array_equal(back.gt, gt)
    back.redo()
    back.close()
    stale = ImageDocument("a", img, table, gt.copy(), pred, budget=budget)   # edits were not kept
    assert not stale.can_undo and not stale.can_redo
    stale.begin_stroke(2)
    stale.paint_dab(30, 30, 4)
    stale.commit_stroke()
    unclosed = ImageDocument("a", img, table, stale.gt.copy(), pred, budget=budget)
    assert not unclosed.can_undo      # never closed: the pixels cannot be vouched for


def test_set_prediction_and_ground_truth(table):
    doc, gt0, pred = make_doc(table, seed=9)
    events = []
    doc.subscribe(events.append)
    doc.begin_stroke(1)
    doc.paint_dab(5, 5, 3)
    doc.commit_stroke()
    new_pred = np.roll(pred, 3, axis=1)
    doc.set_prediction(new_pred, confidence=np.ones(pred.shape, np.float32))
    assert events[-1] == DocumentEvent(EventKind.PREDICTION, source=DEFAULT_SOURCE) and doc.can_undo
    assert_in_sync(doc)
    doc.set_ground_truth(gt0.copy())
    assert events[-1] == DocumentEvent(EventKind.RELOADED) and not doc.can_undo and not doc.modified
    assert_in_sync(doc)
    with pytest.raises(MaskSizeMismatch):
        doc.set_prediction(np.zeros((3, 3), np.uint8))


def test_misuse_raises_and_queries(table):
    doc, gt0, pred = make_doc(table, seed=10)
    with pytest.raises(StrokeError):
        doc.paint_dab(1, 1, 1)
    with pytest.raises(ValueError):
        doc.begin_stroke(C)            # not a class, not the ignore index
    doc.begin_stroke(IGN)
    with pytest.raises(StrokeError):
        doc.begin_stroke(1)
    doc.paint_dab(3, 4, 0)
    assert doc.class_at(3.7, 4.2) == IGN and doc.class_at(-1, 4) is None
    assert doc.class_at(3, 4, layer="pred") == pred[4, 3]
    doc.undo()                         # commits the stroke in progress first, then undoes it
    assert np.array_equal(doc.gt, gt0) and doc.can_redo
    assert doc.modified
    doc.mark_saved()
    assert not doc.modified
    with pytest.raises(MaskSizeMismatch):
        ImageDocument("x", np.zeros((4, 4), np.uint8), table, np.zeros((4, 5), np.uint8))


def test_journal_sees_commits_undos_and_redos(table):
    calls = []

    class FakeJournal:
        def journal_commit(self, name, atom):
            calls.append(("do", name, atom.count))

        def journal_undo(self, name):
            calls.append(("undo", name))

        def journal_redo(self, name):
            calls.append(("redo", name))

    doc, _, _ = make_doc(table, seed=11, journal=FakeJournal())
    doc.begin_stroke(0)
    doc.commit_stroke()                # empty stroke: nothing to journal
    atom = doc.fill(0, 0, 5)
    doc.undo()
    doc.redo()
    assert calls == [("do", "img", atom.count), ("undo", "img"), ("redo", "img")]


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_protect_with_wide_label_types(table, dtype):
    gt, pred = random_masks(12)
    doc = ImageDocument("w", np.zeros(gt.shape, np.uint8), table, gt.astype(dtype), pred.astype(dtype),
                        budget=HistoryBudget())
    doc.begin_stroke(5, protect=[0, 3])
    doc.paint_dab(30, 25, 12)
    doc.commit_stroke()
    disk = ref_disk(gt.shape, 30, 25, 12)
    assert doc.gt.dtype == dtype
    assert np.array_equal(doc.gt, np.where(disk & ~np.isin(gt, [0, 3]), 5, gt))
    assert_in_sync(doc)


def test_stroke_merge_keeps_first_old_value_of_a_pixel_changed_twice():
    from segstudio.core.editing.strokes import PaintRules, Stroke

    labels = np.zeros((6, 6), np.uint8)
    stroke = Stroke(1, None, PaintRules(np.uint8), None)
    first = np.zeros((3, 3), bool)
    first[1, 1] = first[0, 0] = True
    stroke.add((1, 1, 3, 3), first, np.array([7, 8], np.uint8))     # pixels (1,1)=7 and (2,2)=8
    second = np.zeros((2, 2), bool)
    second[1, 1] = second[0, 0] = True
    stroke.add((2, 2, 2, 2), second, np.array([9, 4], np.uint8))     # (2,2) again, and (3,3)=4
    labels[1, 1] = labels[2, 2] = labels[3, 3] = 1
    atom = stroke.merge(labels)
    assert atom.bbox == (1, 1, 3, 3)
    assert np.array_equal(np.argwhere(atom.changed), [[0, 0], [1, 1], [2, 2]])
    assert atom.old_values.tolist() == [7, 8, 4] and atom.new_values.tolist() == [1, 1, 1]
