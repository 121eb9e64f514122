"""Settings persistence, Help › About, and the keyboard: I / O / E / digits / PageDown / PageUp."""
from __future__ import annotations

import PySide6
import pytest
from PySide6.QtCore import Qt

from segstudio.core.editing.selection import ErrorMode
from segstudio.ui import settings as keys
from segstudio.ui.worker import InferenceController

from tests.ui.fakes import GatedRunner
from tests.ui.synthetic import make_dataset


@pytest.fixture
def make_window(open_window):
    def make(path, **startup):
        runner = GatedRunner()
        controller = InferenceController(
            runner_factory=lambda request: runner,
            gpu_check=lambda: {"cuda_available": False, "summary": "no CUDA"})
        return open_window(controller, path, **startup)

    return make


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data")


def test_settings_survive_a_restart(qtbot, make_window, dataset):
    window = make_window(dataset, model="fake", device="cpu")
    window.resize(760, 720)  # inside the offscreen screen (800x800), so restoring does not clamp it
    window._on_layer_opacity("gt", 0.25)
    window.close()
    settings = keys.app_settings()
    assert settings.value(keys.DEVICE) == "cpu"
    assert settings.value(keys.MODEL) == "fake"
    assert settings.value(keys.LAST_DATASET) == str(dataset)
    assert keys.recent_items(settings) == [str(dataset)]

    again = make_window(dataset)
    assert again.size().width() == 760 and again.size().height() == 720
    assert again.model_dock.selected_request().device == "cpu"
    assert again.model_dock.selected_spec() == "fake"
    assert again.canvas.layer("gt").opacity == pytest.approx(0.25)
    assert [a.text() for a in again.file_menu.recent_menu.actions()] == [str(dataset)]


def test_about_lists_versions_device_and_gpu_check(qtbot, make_window, dataset):
    window = make_window(dataset, device="cpu")
    assert window.gpu_report is None            # no model has run: no GPU check, no torch
    with qtbot.waitSignal(window.controller.gpu_checked, timeout=5000):
        box = window.show_about()                # ...until About asks for it
        assert "GPU check: running…" in box.text()
    text = box.text()
    assert f"PySide6 {PySide6.__version__}" in text and "numpy" in text and "OpenCV" in text
    assert "Device: cpu" in text and "GPU check:\n  no CUDA" in text
    box.close()


def test_keys_toggle_views_pick_classes_and_page_through_images(qtbot, make_window, dataset):
    window = make_window(dataset)
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.waitUntil(window.canvas.hasFocus)
    qtbot.keyClick(window.canvas, Qt.Key.Key_I)
    assert window.instance_view
    qtbot.keyClick(window.canvas, Qt.Key.Key_O)
    assert window.outlines
    qtbot.keyClick(window.canvas, Qt.Key.Key_2)
    assert window.selection.class_id == 2 and window.class_panel.current_class() == 2
    qtbot.keyClick(window.canvas, Qt.Key.Key_E)
    assert window.selection.error_mode is ErrorMode.ONE and window.document.error_class == 2
    qtbot.keyClick(window.canvas, Qt.Key.Key_PageDown)
    assert window.document.name == "b"
    assert window.document.error_class == 2      # the mode carries over to the next image
    qtbot.keyClick(window.canvas, Qt.Key.Key_PageUp)
    assert window.document.name == "a"
    assert "view: outlines" in window.status_mode.text() and "errors: debris" in window.status_mode.text()


def test_status_bar_names_the_pixel_under_the_cursor(qtbot, make_window, dataset):
    window = make_window(dataset)
    window.canvas.cursor_moved.emit(5, 7)
    text = window.status_pixel.text()
    assert text.startswith("x 5  y 7") and "value (1, 30, 0)" in text and "gt: cell" in text
