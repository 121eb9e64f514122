"""Unreadable files inside a dataset (issue 10, item 16): a corrupt image is a marked row that opening
and PageDown pass over, a corrupt mask still shows its image, and a dataset run counts what it skipped."""
from __future__ import annotations

import shutil

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from tests.ui.editing_helpers import editing_window, key
from tests.ui.fakes import GatedRunner
from tests.ui.synthetic import H, W, make_dataset

NOT_AN_IMAGE = b"not a png"


def browser_row(window, name: str, role):
    model = window.browser.model
    return model.index(model._names.index(name), 1).data(role)


def test_a_dataset_whose_first_image_is_corrupt_opens_on_the_second(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    (root / "images" / "a.png").write_bytes(NOT_AN_IMAGE)
    window = editing_window(qtbot, root)
    assert window.document.name == "b"
    assert str(root / "images" / "a.png") in window.session.bad["a"]
    assert "skipped unreadable a" in window.statusBar().currentMessage()


def test_the_browser_marks_an_unreadable_row_with_its_reason(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    (root / "images" / "a.png").write_bytes(NOT_AN_IMAGE)
    window = editing_window(qtbot, root)
    tooltip = browser_row(window, "a", Qt.ItemDataRole.ToolTipRole)
    assert tooltip.startswith("Unreadable image: ") and str(root / "images" / "a.png") in tooltip
    assert isinstance(browser_row(window, "a", Qt.ItemDataRole.ForegroundRole), QColor)
    assert browser_row(window, "b", Qt.ItemDataRole.ToolTipRole) is None
    assert browser_row(window, "b", Qt.ItemDataRole.ForegroundRole) is None


def test_pagedown_passes_over_a_corrupt_image_and_pageup_too(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    for folder in ("images", "masks"):
        shutil.copy(root / folder / "a.png", root / folder / "c.png")
    (root / "images" / "b.png").write_bytes(NOT_AN_IMAGE)
    window = editing_window(qtbot, root)
    assert window.document.name == "a" and not window.session.bad   # b is not known bad until reached
    key(qtbot, window, Qt.Key.Key_PageDown)
    assert window.document.name == "c"
    assert "b" in window.session.bad
    assert "skipped unreadable b" in window.statusBar().currentMessage()
    key(qtbot, window, Qt.Key.Key_PageUp)           # b is known bad now: not tried again
    assert window.document.name == "a"
    key(qtbot, window, Qt.Key.Key_PageUp)           # nothing before a: stays
    assert window.document.name == "a"


def test_an_unreadable_mask_still_shows_its_image_and_says_why(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    (root / "masks" / "a.png").write_bytes(NOT_AN_IMAGE)
    window = editing_window(qtbot, root)
    assert window.document.name == "a"
    assert window.document.gt is None and window.document.image.shape[:2] == (H, W)
    message = window.statusBar().currentMessage()
    assert message.startswith("a: ground truth not shown") and str(root / "masks" / "a.png") in message
    assert "Ground truth not shown" in browser_row(window, "a", Qt.ItemDataRole.ToolTipRole)


def test_a_dataset_run_with_an_unreadable_image_ends_at_100_percent_and_counts_it(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    runner = GatedRunner()
    window = editing_window(qtbot, root, lambda request: runner)
    (root / "images" / "b.png").write_bytes(NOT_AN_IMAGE)
    failures = []
    window.controller.failed.connect(lambda job, message: failures.append(message))
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_dataset()
    bar = window.model_dock.progress
    assert (bar.value(), bar.maximum()) == (2, 2)
    assert failures[0].startswith("1 of 2 images predicted; 1 could not be read or predicted:\n")
    assert str(root / "images" / "b.png") in failures[0]
