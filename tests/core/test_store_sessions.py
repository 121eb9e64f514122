"""Two app instances on one dataset: each journals in its own session of the project store. Saving,
clearing and recovery touch this instance's entries and dead instances' only; the editing service asks
what to do when another live instance holds the dataset. The other instance's process is stood in for
by a pid whose liveness the test decides (``alive``)."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from segstudio.core.editing.service import EditingService, OtherInstanceChoice
from segstudio.core.editing.store import ProjectStore, store_path_for
from tests.core.editing_service_helpers import Answers, open_session, paint
from tests.core.test_store import base_masks, make_doc

A_PID, B_PID, C_PID = 101, 202, 303


@pytest.fixture
def live():
    return {A_PID, B_PID, C_PID}


def instance(path, pid, live):
    return ProjectStore(path, pid=pid, host="this-host", alive=live.__contains__)


def test_a_save_leaves_b_unsaved_and_a_killed_b_is_recovered(tmp_path, live):
    db = tmp_path / "p.sqlite"
    gt0, _ = base_masks()
    a, b = instance(db, A_PID, live), instance(db, B_PID, live)
    doc_a, doc_b = make_doc(a), make_doc(b)
    doc_b.fill(5, 5, 4)                       # B's unsaved stroke
    doc_a.fill(45, 45, 2)
    a.mark_saved("a")                         # A wrote its labels
    assert a.pending_recovery() == {}         # B's stroke is B's business while B runs
    assert b.pending_recovery() == {"a": 1}
    np.testing.assert_array_equal(b.replay("a", gt0), doc_b.gt)
    live.discard(B_PID)                       # B is killed
    with instance(db, C_PID, live) as c:
        assert c.other_sessions()[0].pid == A_PID
        assert c.pending_recovery() == {"a": 1}
        np.testing.assert_array_equal(c.replay("a", gt0), doc_b.gt)
    a.close()
    b.close()


def test_clear_spares_a_live_instance_and_takes_a_dead_ones(tmp_path, live):
    db = tmp_path / "p.sqlite"
    a, b = instance(db, A_PID, live), instance(db, B_PID, live)
    make_doc(a).fill(5, 5, 4)
    make_doc(b).fill(45, 45, 2)
    b.clear("a")
    assert a.journal_length("a") == 1 and b.pending_recovery() == {}
    live.discard(A_PID)
    assert b.pending_recovery() == {"a": 1}
    b.clear("a")
    assert b.journal_length("a") == 0
    a.close()
    b.close()


def test_a_closed_session_is_dead_and_its_kept_edits_come_back(tmp_path, live):
    db = tmp_path / "p.sqlite"
    with instance(db, A_PID, live) as a:      # quit keeping the journal, process still running
        make_doc(a).fill(5, 5, 4)
    with instance(db, B_PID, live) as b:
        assert b.other_sessions() == [] and b.pending_recovery() == {"a": 1}


def test_a_schema_1_store_keeps_its_entries_as_a_dead_legacy_session(tmp_path, live):
    db = tmp_path / "p.sqlite"
    with instance(db, A_PID, live) as a:
        make_doc(a).fill(5, 5, 4)
    with sqlite3.connect(db) as old:          # as segstudio before sessions left it
        old.execute("DROP INDEX journal_session")
        old.execute("ALTER TABLE journal DROP COLUMN session")
        old.execute("DROP TABLE sessions")
        old.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with instance(db, B_PID, live) as b:
        assert b.pending_recovery() == {"a": 1}
        gt0, _ = base_masks()
        expected = make_doc()
        expected.fill(5, 5, 4)
        np.testing.assert_array_equal(b.replay("a", gt0), expected.gt)
        b.mark_saved("a")                     # a legacy entry is not this session's to mark
        assert b.pending_recovery() == {"a": 1}


def factory_for(pid, live):
    return lambda root: ProjectStore(store_path_for(root), pid=pid, host="this-host", alive=live.__contains__)


def test_a_second_instance_declining_restore_keeps_the_live_ones_journal(data, runner, live):
    root, _ = data
    first = EditingService(Answers(), runner, store_factory=factory_for(A_PID, live))
    _, doc, _ = open_session(first, root)
    paint(doc)
    asker = Answers(restore=False, other=OtherInstanceChoice.TAKE_OVER)
    second = EditingService(asker, runner, store_factory=factory_for(B_PID, live))
    open_session(second, root)
    assert asker.asked_restore == []          # nothing of a dead instance to offer
    assert [o.pid for o in asker.asked_other[0]] == [A_PID]
    assert second.read_only_reason is None
    assert first.store.pending_recovery() == {"a": 1}
    assert second.confirm_close() and first.confirm_close()


def test_a_dead_instances_edits_are_offered_and_restored(data, runner, live):
    root, _ = data
    first = EditingService(Answers(), runner, store_factory=factory_for(A_PID, live))
    _, doc, _ = open_session(first, root)
    paint(doc)
    edited = doc.gt.copy()
    live.discard(A_PID)                       # killed: its store is never closed
    asker = Answers()
    second = EditingService(asker, runner, store_factory=factory_for(B_PID, live))
    _, doc2, _ = open_session(second, root)
    assert asker.asked_other == [] and asker.asked_restore == [{"a": 1}]
    np.testing.assert_array_equal(doc2.gt, edited)
    assert second.save(doc2)
    first.store.close()
    second.confirm_close()


def test_read_only_when_another_instance_holds_the_dataset(data, runner, live):
    root, _ = data
    first = EditingService(Answers(), runner, store_factory=factory_for(A_PID, live))
    open_session(first, root)
    asker, errors, reasons = Answers(), [], []
    second = EditingService(asker, runner, store_factory=factory_for(B_PID, live))
    second.error.connect(lambda title, message: errors.append(title))
    second.read_only.connect(reasons.append)
    _, doc, _ = open_session(second, root)
    assert [o.pid for o in asker.asked_other[0]] == [A_PID]
    assert second.read_only_reason and f"pid {A_PID}" in second.read_only_reason
    assert reasons == [second.read_only_reason]
    paint(doc)
    assert not second.save(doc) and errors == ["Cannot save"]
    assert not (root / "corrected").exists()
    second.autosave()
    assert not (root / "corrected").exists()
    assert first.store.pending_recovery() == {}                      # B runs: its edit is B's
    assert second.confirm_close() and asker.asked_unsaved == []     # the edit stays in its journal
    assert reasons[-1] is None
    assert first.store.pending_recovery() == {"a": 1}                # B quit: offered at the next open
    assert first.confirm_close()


def test_a_dead_session_is_retired_so_a_reused_pid_does_not_revive_it(tmp_path, live):
    db = tmp_path / "p.sqlite"
    a = instance(db, A_PID, live)
    make_doc(a).fill(5, 5, 4)
    live.discard(A_PID)                       # killed
    with instance(db, B_PID, live) as b:
        live.add(A_PID)                       # an unrelated process now has A's pid
        assert b.other_sessions() == [] and b.pending_recovery() == {"a": 1}
    a.close()
