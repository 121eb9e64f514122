"""COCO crash recovery (issue 10, item 1): stroke A, save, stroke B, SIGKILL; the next window restores
A and B (B replayed over the saved corrected JSON), and the next save keeps both."""
from __future__ import annotations

import numpy as np

from segstudio.core.editing.document import ImageDocument
from segstudio.core.editing.history import HistoryBudget
from segstudio.core.editing.store import ProjectStore
from segstudio.core.io.datasets import open_dataset
from tests.core.test_coco_corrections import corrected, labels_in, make_coco
from tests.ui.editing_helpers import editing_window
from tests.ui.test_recovery import crash_child_running

CHILD = """
import os, signal, sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from segstudio.ui import edit_settings
from segstudio.ui.compose import build_main_window
from segstudio.ui.settings import app_settings
from tests.ui.fakes import GatedRunner, fake_controller
from tests.ui.test_coco_recovery import stroke_a, stroke_b

settings = app_settings()
settings.setValue(edit_settings.AUTOSAVE_SECONDS, 0)
window = build_main_window(settings, fake_controller(lambda request: GatedRunner()))
window.show()
window.finish_startup(sys.argv[1], model="fake", device="cpu")
stroke_a(window.document)
assert window.editor.save()
stroke_b(window.document)
print("edited", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def stroke_a(doc) -> None:
    doc.begin_stroke(1)
    doc.paint_dab(12, 9, 2)
    doc.commit_stroke()


def stroke_b(doc) -> None:
    doc.begin_stroke(0)
    doc.paint_dab(3, 3, 2)
    doc.commit_stroke()


def test_restore_after_sigkill_replays_over_the_saved_coco_correction(qtbot, tmp_path):
    root = tmp_path / "coco"
    truth = make_coco(root)
    crash_child_running(CHILD, root, tmp_path)
    sample = open_dataset(root)[0]
    expected = ImageDocument("a", np.zeros((*truth["a"].shape, 3), np.uint8), sample.decoder.class_table,
                             truth["a"].copy(), budget=HistoryBudget())
    stroke_a(expected)
    after_a = expected.gt.copy()
    stroke_b(expected)
    np.testing.assert_array_equal(labels_in(corrected(root), "a.png"), after_a)   # A was saved

    asked = []
    window = editing_window(qtbot, root, ask_restore=lambda pending: asked.append(dict(pending)) or True)
    assert asked == [{"a": 1}]
    np.testing.assert_array_equal(window.document.gt, expected.gt)                # A and B
    assert window.editor.save()
    np.testing.assert_array_equal(labels_in(corrected(root), "a.png"), expected.gt)
    window.close()
    with ProjectStore.for_dataset(root) as store:
        assert store.pending_recovery() == {}
