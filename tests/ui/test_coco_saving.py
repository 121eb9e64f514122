"""COCO corrections through the window (issue 10, item 1): Ctrl+S, the next image and back shows the
saved labels, and a second save keeps the first correction."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from segstudio.ui import edit_settings

from tests.core.test_coco_corrections import corrected, labels_in, make_coco
from tests.ui.editing_helpers import editing_window, key


def stroke(doc, value, at):
    doc.begin_stroke(value)
    doc.paint_dab(*at, 2)
    doc.commit_stroke()


def test_ctrl_s_then_next_image_and_back_shows_the_saved_coco_correction(qtbot, tmp_path):
    root = tmp_path / "coco"
    truth = make_coco(root)
    window = editing_window(qtbot, root, settings_values={edit_settings.AUTOSAVE_ON_SWITCH: False})
    stroke(window.document, 1, (12, 9))                  # stroke A
    after_a = window.document.gt.copy()
    assert not np.array_equal(after_a, truth["a"])
    with qtbot.waitSignal(window.saving.saved):
        key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, window, Qt.Key.Key_PageDown)
    assert window.document.name == "b"
    key(qtbot, window, Qt.Key.Key_PageUp)
    assert window.document.name == "a"
    np.testing.assert_array_equal(window.document.gt, after_a)
    np.testing.assert_array_equal(window.canvas.layer("gt").array, after_a)
    stroke(window.document, 1, (2, 10))                  # stroke C
    with qtbot.waitSignal(window.saving.saved):
        key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(labels_in(corrected(root), "a.png"), window.document.gt)
    assert labels_in(corrected(root), "a.png")[after_a == 1].all()   # A is still there
