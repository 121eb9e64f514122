"""Journal write failures (issue 10, item 3): a locked or full journal never stops editing or loses
what is in memory; the service reports it (and its recovery); failed entries are written on the next
write; a damaged journal row is reported and the other rows are restored."""
from __future__ import annotations

import sqlite3
import time

import numpy as np

from segstudio.core.editing.document import ImageDocument
from segstudio.core.editing.service import EditingService
from segstudio.core.editing.store import ProjectStore, store_path_for
from segstudio.core.io.classes import ClassTable
from tests.core.editing_service_helpers import C, Answers, open_session, paint


class FullDisk:
    """A connection whose writes fail as on a full disk while ``full`` is set; reads pass through."""

    def __init__(self, db: sqlite3.Connection):
        self.db, self.full = db, True

    def execute(self, sql, *args):
        if self.full and sql.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "BEGIN"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


def reported(service):
    problems = []
    service.journal_status.connect(problems.append)
    return problems


def test_a_locked_journal_keeps_editing_warns_and_catches_up(data, runner):
    root, _ = data
    service = EditingService(Answers(), runner)
    problems = reported(service)
    _, doc, _ = open_session(service, root)
    holder = sqlite3.connect(str(store_path_for(root.resolve())), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                  # another process holds the write lock
    started = time.monotonic()
    paint(doc, 2, (3, 3))
    paint(doc, 0, (3, 9))
    assert time.monotonic() - started < 2.0            # not 5 s per stroke
    assert len(problems) == 1 and "locked" in problems[0]
    assert doc.modified and doc.history.undo_depth == 2
    holder.rollback()
    holder.close()
    paint(doc, 1, (9, 12))                             # the next write catches up
    assert problems[-1] is None
    assert service.store.pending_recovery() == {"a": 3}
    np.testing.assert_array_equal(service.store.replay("a", data[1]["a"]), doc.gt)
    assert service.confirm_close()


def test_a_full_disk_keeps_the_edits_in_memory_and_journals_them_later(data, runner):
    root, truth = data
    service = EditingService(Answers(), runner)
    problems = reported(service)
    _, doc, _ = open_session(service, root)
    store = service.store
    store._db = FullDisk(store._db)
    paint(doc, 2, (3, 3))
    doc.undo()
    doc.redo()
    assert problems == ["database or disk is full"]
    np.testing.assert_array_equal(store.replay("a", truth["a"]), truth["a"])   # nothing on disk yet
    store._db.full = False
    paint(doc, 0, (3, 9))
    assert problems == ["database or disk is full", None]
    assert store.pending_recovery() == {"a": 4}
    np.testing.assert_array_equal(store.replay("a", truth["a"]), doc.gt)
    assert service.confirm_close()


def test_saving_while_the_journal_fails_is_remembered(data, runner):
    root, truth = data
    service = EditingService(Answers(), runner)
    _, doc, _ = open_session(service, root)
    store = service.store
    store._db = FullDisk(store._db)
    paint(doc, 2, (3, 3))
    assert service.save(doc)                           # the labels are on disk: nothing to recover
    store._db.full = False
    paint(doc, 0, (3, 9))
    assert store.pending_recovery() == {"a": 1}
    assert service.confirm_close()


def test_a_damaged_journal_row_is_reported_and_the_others_restored(data, runner):
    root, truth = data
    first = EditingService(Answers(), runner)
    _, doc, _ = open_session(first, root)
    paint(doc, 2, (3, 3))
    paint(doc, 0, (3, 9))                              # this row will be damaged
    paint(doc, 1, (13, 9))
    first.store.close()
    with sqlite3.connect(str(store_path_for(root.resolve()))) as db:
        (seq,) = db.execute("SELECT seq FROM journal WHERE op = 'do' ORDER BY seq LIMIT 1 OFFSET 1").fetchone()
        db.execute("UPDATE journal SET mask = ? WHERE seq = ?", (b"not zlib", seq))
    db.close()

    expected = ImageDocument("a", np.zeros((*truth["a"].shape, 3), np.uint8), ClassTable.generic(C),
                             truth["a"].copy())
    paint(expected, 2, (3, 3))
    paint(expected, 1, (13, 9))
    again = EditingService(Answers(restore=True), runner)
    errors = []
    again.error.connect(lambda title, message: errors.append((title, message)))
    _, doc, _ = open_session(again, root)
    assert (doc.gt != truth["a"]).sum() == (expected.gt != truth["a"]).sum() > 0
    np.testing.assert_array_equal(doc.gt, expected.gt)
    assert len(errors) == 1 and errors[0][0] == "Damaged journal" and "'a'" in errors[0][1]
    assert again.confirm_close()


def test_a_damaged_row_does_not_break_the_undo_markers_after_it(tmp_path):
    gt = np.zeros((6, 6), np.uint8)
    table = ClassTable.generic(C)
    with ProjectStore(tmp_path / "p.sqlite") as store:
        doc = ImageDocument("a", np.zeros((6, 6, 3), np.uint8), table, gt.copy(), journal=store)
        paint(doc, 1, (1, 1), radius=1)
        paint(doc, 2, (4, 4), radius=1)                # damaged below, then undone
        doc.undo()
        expected = doc.gt.copy()
        store._db.execute("UPDATE journal SET old = ? WHERE seq = 2", (b"\x00",))
        damaged = []
        out = store.replay("a", gt, damaged=damaged)
    np.testing.assert_array_equal(out, expected)
    assert damaged == [2]
