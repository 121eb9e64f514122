"""The editing service without Qt: saving, the autosave policy, recovery from the journal, the
before/after metrics (against a numpy formula written here) and the saved-labels policy."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segstudio.core.editing.service import EditingService, SaveSettings, UnsavedChoice
from segstudio.core.editing.store import ProjectStore
from tests.core.editing_service_helpers import C, Answers, open_session, paint


def test_save_writes_the_corrections_and_marks_the_journal_saved(data, runner):
    root, truth = data
    saved = []
    service = EditingService(Answers(), runner)
    service.saved.connect(lambda name, path: saved.append((name, path)))
    session, doc, _ = open_session(service, root)
    paint(doc)
    assert doc.modified and service.store.pending_recovery() == {"a": 1}
    assert service.save(doc)
    written = root / "corrected" / "masks" / "a.png"
    np.testing.assert_array_equal(np.array(Image.open(written)), doc.gt)
    assert not np.array_equal(doc.gt, truth["a"])
    np.testing.assert_array_equal(np.array(Image.open(root / "masks" / "a.png")), truth["a"])   # untouched
    assert saved == [("a", str(written))] and not doc.modified
    assert service.store.pending_recovery() == {}
    assert service.confirm_close()


def test_a_failed_save_reports_an_error_and_keeps_the_edits(data, runner, tmp_path):
    root, _ = data
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    errors = []
    service = EditingService(Answers(), runner, SaveSettings(output_dir=str(blocker)))
    service.error.connect(lambda title, message: errors.append(title))
    _, doc, _ = open_session(service, root)
    paint(doc)
    assert not service.save(doc)
    assert errors == ["Cannot save"] and doc.modified


def test_autosave_policy(data, runner):
    root, _ = data
    service = EditingService(Answers(), runner, SaveSettings(autosave_on_switch=False))
    session, doc_a, factory = open_session(service, root)
    paint(doc_a)
    doc_b = session.open(1, factory)
    service.release(doc_a)                               # switching off: nothing written
    service.track(doc_b)
    assert not (root / "corrected").exists()
    assert service.modified_documents() == [doc_a]
    doc_b.begin_stroke(1)
    doc_b.paint_dab(8, 8, 2)                             # a stroke in progress is not autosaved
    service.autosave()
    assert [d.name for d in service.modified_documents()] == ["b"]
    assert (root / "corrected" / "masks" / "a.png").is_file() and not doc_a.modified
    doc_b.commit_stroke()
    service.update_settings(SaveSettings(autosave_on_switch=True))
    service.release(doc_b)                               # switching on: saved when left
    assert (root / "corrected" / "masks" / "b.png").is_file() and service.modified_documents() == []


def test_restore_from_the_journal_after_a_crash_is_one_undo_step(data, runner):
    root, truth = data
    first = EditingService(Answers(), runner)
    _, doc, _ = open_session(first, root)
    paint(doc, 2, (3, 3))
    paint(doc, 0, (3, 9))
    expected = doc.gt.copy()
    first.store.close()                                  # the process dies: nothing saved, no prompt

    answers = Answers(restore=True)
    again = EditingService(answers, runner)
    restored = []
    again.restored.connect(restored.append)
    _, doc, _ = open_session(again, root)
    assert answers.asked_restore == [{"a": 2}] and restored == ["a"]
    np.testing.assert_array_equal(doc.gt, expected)
    assert doc.modified
    doc.undo()
    np.testing.assert_array_equal(doc.gt, truth["a"])   # one undo: back to the file
    doc.redo()
    assert again.confirm_close() and answers.asked_unsaved == [["a"]]   # SAVE
    np.testing.assert_array_equal(np.array(Image.open(root / "corrected" / "masks" / "a.png")), expected)


def test_declining_recovery_clears_the_journal(data, runner):
    root, truth = data
    first = EditingService(Answers(), runner)
    _, doc, _ = open_session(first, root)
    paint(doc)
    first.store.close()
    _, doc, _ = open_session(EditingService(Answers(restore=False), runner), root)
    np.testing.assert_array_equal(doc.gt, truth["a"])
    with ProjectStore.for_dataset(root) as store:
        assert store.pending_recovery() == {}


@pytest.mark.parametrize("choice, journal_left", [(UnsavedChoice.DISCARD, {}), (UnsavedChoice.KEEP, {"a": 1})])
def test_quitting_without_saving(data, runner, choice, journal_left):
    root, _ = data
    service = EditingService(Answers(unsaved=choice), runner)
    _, doc, _ = open_session(service, root)
    paint(doc)
    closed = []
    service.store_closed.connect(lambda: closed.append(True))
    assert service.confirm_close() and closed == [True]
    assert not (root / "corrected").exists()
    with ProjectStore.for_dataset(root) as store:
        assert store.pending_recovery() == journal_left


def test_cancel_keeps_everything_open(data, runner):
    root, _ = data
    service = EditingService(Answers(unsaved=UnsavedChoice.CANCEL), runner)
    _, doc, _ = open_session(service, root)
    paint(doc)
    assert not service.confirm_close()
    assert service.store is not None and doc.modified
    service.ask.unsaved = UnsavedChoice.DISCARD
    assert service.confirm_close()


def mean_iou(gt, pred, n=C):
    """Mean IoU over the classes present in either mask, written from the definition."""
    ious = []
    for k in range(n):
        inter = np.sum((gt == k) & (pred == k))
        union = np.sum((gt == k) | (pred == k))
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


def test_before_and_after_metrics_match_a_numpy_reference(data, runner):
    root, truth = data
    service = EditingService(Answers(), runner)
    _, doc, _ = open_session(service, root)
    pred = truth["a"].copy()
    pred[:4, :] = 2
    doc.set_prediction(pred)
    task = service.record_before(doc)
    assert service.store.metrics("a") is None               # computed on the runner, not here
    runner.deliver(task)
    before = service.store.metrics("a")["before"]
    assert before["mean_iou"] == pytest.approx(mean_iou(truth["a"], pred))
    assert before["error_pixels"] == int((truth["a"] != pred).sum())
    doc.begin_stroke(2)
    doc.paint_line(0, 1, 15, 1, 2)                          # towards the prediction
    doc.commit_stroke()
    assert service.save(doc)
    metrics = service.store.metrics("a")
    assert metrics["before"] == before
    assert metrics["after"]["mean_iou"] == pytest.approx(mean_iou(doc.gt, pred))
    assert metrics["after"]["error_pixels"] == int((doc.gt != pred).sum())
    assert metrics["after"]["mean_iou"] > before["mean_iou"]


def test_before_metrics_of_a_replaced_prediction_are_dropped(data, runner):
    root, truth = data
    service = EditingService(Answers(), runner)
    _, doc, _ = open_session(service, root)
    doc.set_prediction(np.zeros_like(truth["a"]))
    task = service.record_before(doc)
    replacement = truth["a"].copy()
    doc.set_prediction(replacement)                          # before the first result is delivered
    runner.deliver(task)
    assert service.store.metrics("a") is None
    runner.deliver(service.record_before(doc))
    assert service.store.metrics("a")["before"]["mean_iou"] == pytest.approx(1.0)


def test_reopening_reads_the_saved_corrections_under_the_current_settings(data, runner, tmp_path):
    root, truth = data
    service = EditingService(Answers(), runner)
    _, doc, _ = open_session(service, root)
    paint(doc)
    edited = doc.gt.copy()
    assert service.save(doc)
    assert service.confirm_close()

    reopened = EditingService(Answers(), runner)
    session, doc, _ = open_session(reopened, root)
    np.testing.assert_array_equal(doc.gt, edited)            # the first image, decoded once, from the file
    assert session.classes_present("a") == frozenset({0, 1, 2})
    assert session.sample_to_load(0).mask_path == root / "corrected" / "masks" / "a.png"
    assert session.sample_to_load(1).mask_path == root / "masks" / "b.png"   # nothing saved for b
    reopened.update_settings(SaveSettings(output_dir=str(tmp_path / "elsewhere")))
    assert session.sample_to_load(0).mask_path == root / "masks" / "a.png"   # the policy follows settings
    assert reopened.confirm_close()
