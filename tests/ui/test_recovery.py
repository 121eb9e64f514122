"""Crash recovery: a child process edits in the app and is SIGKILLed; the next window offers to restore."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from segstudio.core.editing.document import ImageDocument
from segstudio.core.editing.history import HistoryBudget
from segstudio.core.editing.store import ProjectStore

from tests.ui.editing_helpers import editing_window, key
from tests.ui.synthetic import H, TABLE, W, make_dataset, truth_and_prediction

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import os, signal, sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from segstudio.ui import edit_settings
from segstudio.ui.compose import build_main_window
from segstudio.ui.settings import app_settings
from tests.ui.fakes import GatedRunner, fake_controller
from tests.ui.test_recovery import edits_a, edits_b

settings = app_settings()
settings.setValue(edit_settings.AUTOSAVE_ON_SWITCH, False)
settings.setValue(edit_settings.AUTOSAVE_SECONDS, 0)
window = build_main_window(settings, fake_controller(lambda request: GatedRunner()))
window.show()
window.finish_startup(sys.argv[1], model="fake", device="cpu")
edits_a(window.document)
assert window.go_to(1)
edits_b(window.document, in_progress=True)
print("edited", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def edits_a(doc) -> None:
    """Strokes, a fill, an undo and a redo on image a, all committed."""
    doc.begin_stroke(2)
    doc.paint_to(5, 5, 3)
    doc.paint_to(40, 20, 3)
    doc.commit_stroke()
    doc.fill(50, 40, 2)
    doc.undo()
    doc.begin_stroke(255)
    doc.paint_dab(20, 40, 4)
    doc.commit_stroke()
    doc.undo()
    doc.redo()
    doc.fill_polygon([(34, 2), (60, 2), (60, 12)], 1)


def edits_b(doc, in_progress: bool) -> None:
    """One committed stroke on image b, then (in the child) a stroke still in progress at the kill."""
    doc.begin_stroke(1)
    doc.paint_line(0, 30, 63, 35, 2)
    doc.commit_stroke()
    if in_progress:
        doc.begin_stroke(0)
        doc.paint_to(10, 2, 6)
        doc.paint_to(50, 2, 6)


def expected_after(name, edit) -> np.ndarray:
    gt, _ = truth_and_prediction()[name]
    doc = ImageDocument(name, np.zeros((H, W, 3), np.uint8), TABLE, gt.copy(), budget=HistoryBudget())
    edit(doc)
    return doc.gt


def crash_child(root: Path, tmp_path: Path) -> None:
    crash_child_running(CHILD, root, tmp_path)


def crash_child_running(script: str, root: Path, tmp_path: Path) -> None:
    """Run ``script`` on ``root`` in a child process that must end killed by SIGKILL after "edited"."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO),
               SEGSTUDIO_SETTINGS_DIR=str(tmp_path / "child_settings"))
    (tmp_path / "child_settings").mkdir()
    proc = subprocess.run([sys.executable, "-c", script, str(root)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr      # killed by SIGKILL, after the edits
    assert "edited" in proc.stdout


@pytest.fixture
def crashed(tmp_path):
    root = make_dataset(tmp_path / "data")
    crash_child(root, tmp_path)
    return root


def test_restore_after_sigkill_brings_back_every_committed_stroke(qtbot, crashed):
    expected_a = expected_after("a", edits_a)
    expected_b = expected_after("b", lambda doc: edits_b(doc, in_progress=False))
    gt_a, _ = truth_and_prediction()["a"]
    asked = []
    window = editing_window(qtbot, crashed, ask_restore=lambda pending: asked.append(dict(pending)) or True)
    assert len(asked) == 1 and set(asked[0]) == {"a", "b"}
    doc = window.document
    assert doc.name == "a" and doc.modified
    np.testing.assert_array_equal(doc.gt, expected_a)
    np.testing.assert_array_equal(window.canvas.layer("gt").array, expected_a)
    assert window.windowTitle().startswith("* ")
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)    # one undo: back to the file
    np.testing.assert_array_equal(doc.gt, gt_a)
    key(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(doc.gt, expected_a)

    key(qtbot, window, Qt.Key.Key_PageDown)             # autosaves a, restores b (its open stroke is lost)
    assert window.document.name == "b"
    np.testing.assert_array_equal(window.document.gt, expected_b)
    saved_a = np.array(Image.open(crashed / "corrected" / "masks" / "a.png"))
    np.testing.assert_array_equal(saved_a, expected_a)
    assert window.editor.save()
    window.close()
    with ProjectStore.for_dataset(crashed) as store:
        assert store.pending_recovery() == {}


def test_declining_discards_the_journal(qtbot, crashed):
    gt_a, _ = truth_and_prediction()["a"]
    window = editing_window(qtbot, crashed, ask_restore=lambda pending: False)
    np.testing.assert_array_equal(window.document.gt, gt_a)
    assert not window.document.modified
    window.close()
    again = editing_window(qtbot, crashed,
                           ask_restore=lambda pending: pytest.fail("asked again after declining"))
    np.testing.assert_array_equal(again.document.gt, gt_a)


def test_headless_quit_never_blocks_and_keeps_the_edits_for_the_next_launch(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    window = editing_window(qtbot, root, ask_unsaved=None)       # the real dialogs, on offscreen Qt
    edits_a(window.document)
    expected = window.document.gt.copy()
    assert window.close()                                        # no one to ask: closes at once
    again = editing_window(qtbot, root)                          # headless: restores
    np.testing.assert_array_equal(again.document.gt, expected)
    assert again.document.modified
