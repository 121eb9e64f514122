"""A journal that cannot be written (issue 10, item 3): the window keeps editing, shows a persistent
warning in the status bar, and clears it once the queued edits are journalled."""
from __future__ import annotations

import sqlite3

import numpy as np

from segstudio.core.editing.store import store_path_for
from tests.ui.editing_helpers import editing_window
from tests.ui.synthetic import make_dataset


def stroke(doc, value, at):
    """A committed brush stroke that changes the labels (so it is journalled)."""
    value = value if doc.gt[at[1], at[0]] != value else (value + 1) % 3
    doc.begin_stroke(value)
    doc.paint_dab(*at, 3)
    assert doc.commit_stroke() is not None


def test_a_locked_journal_shows_a_warning_until_it_is_written_again(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    window = editing_window(qtbot, root)
    doc = window.document
    original = doc.gt.copy()
    warning = window.saving.journal_warning
    assert not warning.isVisible()
    holder = sqlite3.connect(str(store_path_for(root.resolve())), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")                   # another process holds the write lock
    reported = []                                       # emitted synchronously, on this thread
    window.saving.journal_status_changed.connect(reported.append)
    stroke(doc, 2, (10, 10))
    assert reported == ["database is locked"]
    assert warning.isVisible() and warning.text() == "edits are not being journalled: database is locked"
    assert warning in window.statusBar().findChildren(type(warning))
    stroke(doc, 1, (30, 20))                            # editing goes on
    assert warning.isVisible() and doc.history.undo_depth == 2
    assert not np.array_equal(doc.gt, original)
    holder.rollback()
    holder.close()
    stroke(doc, 0, (40, 30))
    assert reported == ["database is locked", ""] and not warning.isVisible()
    store = window.saving.service.store
    assert store.pending_recovery() == {doc.name: 3}
    np.testing.assert_array_equal(store.replay(doc.name, original), doc.gt)
