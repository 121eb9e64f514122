"""Every case of the bad-input corpus, opened through the window: a message box, never a crash,
and the image that was open stays open; a bad mask opens its image without ground truth instead."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.corpus import make_bad_inputs
from tests.ui.fakes import fake_controller
from tests.ui.synthetic import make_dataset

CASE_NAMES = [case.name for case in make_bad_inputs(Path(tempfile.mkdtemp(prefix="segstudio-corpus-")))]


@pytest.fixture
def window(open_window, tmp_path):
    return open_window(fake_controller(lambda request: None), make_dataset(tmp_path / "good"), model="fake")


def message_boxes(window) -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.parent() is window and w.isVisible()]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_through_the_window(qtbot, window, tmp_path, name):
    case = next(c for c in make_bad_inputs(tmp_path / "corpus") if c.name == name)
    if case.skip:
        pytest.skip(case.skip)
    if case.isolate or case.kind == "classes":
        # A regression would crash or hang the whole run here; tests/core/test_bad_inputs.py opens
        # these in a child process, through the same readers the window uses.
        pytest.skip("opened in a child process by the core corpus test")
    target = case.root if case.kind == "mask" else case.path
    before = window.document
    opened = window.open_path(str(target))
    boxes = message_boxes(window)
    if case.expected is None:
        assert opened and not boxes, [b.text() for b in boxes]
        assert window.document.shape == tuple(case.shape[:2])
        return
    if case.kind == "mask":   # the image is still shown, without ground truth, and the status bar says why
        assert opened and not boxes, [b.text() for b in boxes]
        assert window.document.gt is None
        assert str(case.path) in window.statusBar().currentMessage()
        return
    assert not opened
    assert len(boxes) == 1
    assert case.path.name in boxes[0].text() or str(case.path) in boxes[0].text()
    assert window.document is before and window.document.name == "a"
    assert window.canvas.layer("image").array.shape[:2] == before.shape
