"""Project store: crash recovery from a killed process, saved markers, review state, fallback folder."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.io.classes import ClassTable
from segstudio.core.editing.document import ImageDocument
from segstudio.core.editing.history import EditAtom, HistoryBudget
from segstudio.core.editing.store import ProjectStore, store_path_for

REPO = Path(__file__).resolve().parents[2]
SHAPE = (60, 80)


def base_masks():
    rng = np.random.default_rng(42)
    gt = np.kron(rng.integers(0, 5, (6, 8)), np.ones((10, 10), int)).astype(np.uint8)
    pred = np.roll(gt, 4, axis=1)
    return gt, pred


def session_edits(doc: ImageDocument) -> None:
    """A deterministic editing session ending with a stroke still in progress (never committed)."""
    rng = np.random.default_rng(7)
    for i in range(6):
        doc.begin_stroke(i % 5)
        for _ in range(3):
            doc.paint_to(rng.uniform(0, 80), rng.uniform(0, 60), float(rng.integers(1, 6)))
        doc.commit_stroke()
    doc.undo()
    doc.redo()
    doc.fill(5, 5, 3)
    doc.fill_polygon([(40, 40), (75, 45), (50, 58)], 1)
    doc.undo()                        # leaves one atom on the redo stack
    doc.begin_stroke(source="prediction")
    doc.paint_dab(30, 30, 10)         # in progress when the process dies


def make_doc(journal=None, name="a"):
    gt, pred = base_masks()
    return ImageDocument(name, np.zeros(SHAPE, np.uint8), ClassTable.generic(5), gt, pred,
                         budget=HistoryBudget(), journal=journal)


def child_main(db_path: str) -> None:
    """Run in a subprocess: edit with a journal, then die without any cleanup."""
    import os

    store = ProjectStore(db_path)
    session_edits(make_doc(store))
    os.kill(os.getpid(), signal.SIGKILL)


class CountingJournal:
    def __init__(self):
        self.ops = []

    def journal_commit(self, name, atom):
        self.ops.append("do")

    def journal_undo(self, name):
        self.ops.append("undo")

    def journal_redo(self, name):
        self.ops.append("redo")


def test_recovery_after_sigkill_restores_committed_strokes(tmp_path):
    db = tmp_path / "project.sqlite"
    code = f"from tests.core.test_store import child_main; child_main({str(db)!r})"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    counting = CountingJournal()
    expected = make_doc(counting)      # the same session, in this process, without a store
    session_edits(expected)
    expected.abort_stroke()
    assert counting.ops.count("undo") == 2 and counting.ops.count("redo") == 1
    gt0, _ = base_masks()
    with ProjectStore(db) as store:
        assert store.pending_recovery() == {"a": len(counting.ops)}
        assert np.array_equal(store.replay("a", gt0), expected.gt)
        budget = HistoryBudget()
        restored = store.replay("a", gt0, history=budget.history_for("a"))
        assert np.array_equal(restored, expected.gt) and not np.array_equal(restored, gt0)
        _, pred = base_masks()
        doc = ImageDocument("a", np.zeros(SHAPE, np.uint8), ClassTable.generic(5), restored, pred,
                            budget=budget)          # opened on the replayed labels: stacks kept
    assert (doc.history.undo_depth, doc.history.redo_depth) == (expected.history.undo_depth, 1)
    doc.redo()
    expected.redo()
    assert np.array_equal(doc.gt, expected.gt)
    while doc.undo() is not None:
        pass
    assert np.array_equal(doc.gt, gt0)


def test_saved_entries_are_not_reapplied_but_undo_after_save_is(tmp_path):
    gt0, _ = base_masks()
    with ProjectStore(tmp_path / "p.sqlite") as store:
        doc = make_doc(store)
        doc.fill(5, 5, 4)
        doc.fill(45, 45, 2)
        on_disk = doc.gt.copy()           # what a save wrote
        store.mark_saved("a")
        assert store.pending_recovery() == {}
        doc.undo()
        assert store.pending_recovery() == {"a": 1}
        assert np.array_equal(store.replay("a", on_disk), doc.gt)
        # replaying from the original file instead would be wrong, which is why saving marks entries
        assert not np.array_equal(store.replay("a", gt0), doc.gt)
        store.clear("a")
        assert store.pending_recovery() == {} and store.journal_length("a") == 0


def test_journal_round_trips_uint16_atoms(tmp_path):
    rng = np.random.default_rng(0)
    changed = rng.random((5, 7)) < 0.5
    n = int(changed.sum())
    atom = EditAtom((3, 2, 7, 5), changed, rng.integers(0, 900, n).astype(np.uint16),
                    np.full(n, 777, np.uint16))
    gt = rng.integers(0, 900, (10, 12)).astype(np.uint16)
    gt[2:7, 3:10][changed] = atom.old_values
    with ProjectStore(tmp_path / "p.sqlite") as store:
        store.journal_commit("u", atom)
        out = store.replay("u", gt)
    expect = gt.copy()
    expect[2:7, 3:10][changed] = 777
    assert out.dtype == np.uint16 and np.array_equal(out, expect)


def test_review_state_round_trips(tmp_path):
    path = tmp_path / "p.sqlite"
    with ProjectStore(path) as store:
        assert store.status("x") == "unreviewed" and store.note("x") == "" and store.metrics("x") is None
        store.set_status("x", "needs_attention")
        store.set_note("x", "boundary of the car is off — ask Ana")
        store.set_metrics("x", {"mean_iou": np.float64(0.5), "iou": np.array([0.5, np.nan])})
        store.set_status("y", "accepted")
        with pytest.raises(ValueError):
            store.set_status("x", "done")
    with ProjectStore(path) as store:       # persisted
        assert store.statuses() == {"x": "needs_attention", "y": "accepted"}
        assert store.note("x") == "boundary of the car is off — ask Ana"
        assert store.metrics("x") == {"mean_iou": 0.5, "iou": [0.5, None]}
        assert [r["name"] for r in store.review_rows()] == ["x", "y"]
        (mode,) = store._db.execute("PRAGMA journal_mode").fetchone()
        assert mode == "wal"


def test_store_lives_in_dataset_or_falls_back(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    with ProjectStore.for_dataset(root) as store:
        assert store.path == store_path_for(root) == root.resolve() / ".segstudio" / "project.sqlite"
    coco_json = root / "instances_val.json"
    coco_json.write_text("{}")
    assert store_path_for(coco_json) == root.resolve() / ".segstudio" / "project.sqlite"
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / ".segstudio").write_text("not a folder")   # the store cannot be created here
    with ProjectStore.for_dataset(blocked, fallback_dir=tmp_path / "user") as store:
        assert store.path.parent.parent == tmp_path / "user"
        store.set_status("a", "fixed")
    assert not (blocked / ".segstudio").is_dir()


def test_not_a_database_is_reported(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        ProjectStore(bad)


def test_names_from_undecodable_file_names_round_trip(tmp_path):
    """A file name that is not UTF-8 gives a name with surrogate escapes; the store keeps it exactly."""
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    gt, _ = base_masks()
    with ProjectStore(tmp_path / "p.sqlite") as store:
        atom = EditAtom((0, 0, 2, 1), np.ones((1, 2), bool), np.array([1, 2], np.uint8), np.array([3, 3], np.uint8))
        store.journal_commit(name, atom)
        store.set_status(name, "fixed")
        store.set_note(name, "odd name")
        assert store.pending_recovery() == {name: 1}
        assert store.statuses() == {name: "fixed"}
        assert store.note(name) == "odd name" and store.review_rows()[0]["name"] == name
        np.testing.assert_array_equal(store.replay(name, gt)[0, :2], [3, 3])
        store.mark_saved(name)
        assert store.pending_recovery() == {}


def test_bundled_demo_keeps_its_working_files_out_of_resources(monkeypatch, tmp_path):
    """The shipped demo is read-only in a wheel or a bundle: its store and corrections go per-user."""
    import platformdirs

    from segstudio.core.io.datasets import open_dataset
    from segstudio.core.io.saving import corrected_dir
    from segstudio.resources import resource_path

    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(tmp_path / "user"))
    demo = resource_path("demo")
    store = store_path_for(demo)
    out = corrected_dir(open_dataset(demo))
    for path in (store, out):
        assert not path.resolve().is_relative_to(demo.resolve())
        assert path.is_relative_to(tmp_path / "user" / "projects")
    assert store.parent == out.parent
