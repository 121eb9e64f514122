"""Saving from the editor: Ctrl+S in the dataset's format, autosave, modified markers, the quit prompt."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from segstudio.core.editing.service import UnsavedChoice
from segstudio.core.io.datasets.base import Sample
from segstudio.core.io.masks import read_semantic_mask
from segstudio.core.tasks import TaskKind
from segstudio.resources import resource_path
from segstudio.ui import edit_settings

from tests.threads import threads_calling
from tests.ui.editing_helpers import drag, editing_window, key, segment_capsule
from tests.ui.reference import reference_metrics
from tests.ui.synthetic import make_dataset, truth_and_prediction


def demo_copy(root, names=("cells_00", "cells_01")):
    demo = resource_path("demo")
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for name in names:
            shutil.copy(demo / sub / f"{name}.png", root / sub / f"{name}.png")
    shutil.copy(demo / "classes.json", root / "classes.json")
    return root


@pytest.fixture
def demo_window(qtbot, tmp_path):
    return editing_window(qtbot, demo_copy(tmp_path / "demo"))


def paint(qtbot, window, points, class_key=Qt.Key.Key_2, radius=6):
    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, class_key)
    window.editor.set_brush_radius(radius)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    window.canvas.center_on_rect(min(xs) - radius, min(ys) - radius, max(xs) - min(xs) + 2 * radius,
                                 max(ys) - min(ys) + 2 * radius)
    assert window.canvas.zoom() > 1     # every image pixel is hit exactly by screen points
    drag(qtbot, window.canvas, points)


def test_ctrl_s_writes_a_palette_png_with_the_source_palette(qtbot, demo_window, tmp_path):
    window, root = demo_window, tmp_path / "demo"
    doc = window.document
    original = doc.gt.copy()
    paint(qtbot, window, [(100, 100), (200, 130)])
    expected = original.copy()
    expected[segment_capsule(original.shape, (100, 100), (200, 130), 6)] = 2
    np.testing.assert_array_equal(doc.gt, expected)
    assert window.windowTitle().startswith("* ") and window.browser.model.index(0, 1).data() == "cells_00 *"
    with qtbot.waitSignal(window.saving.saved) as blocker:
        key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    written = root / "corrected" / "masks" / "cells_00.png"
    assert blocker.args == ["cells_00", str(written)]
    source = Image.open(root / "masks" / "cells_00.png")
    saved = Image.open(written)
    assert saved.mode == "P"
    assert saved.getpalette() == source.getpalette()
    np.testing.assert_array_equal(np.array(saved), expected)
    np.testing.assert_array_equal(read_semantic_mask(written, doc.class_table), expected)
    np.testing.assert_array_equal(np.array(Image.open(root / "masks" / "cells_00.png")), original)  # untouched
    assert not doc.modified
    assert not window.windowTitle().startswith("* ")
    assert window.browser.model.index(0, 1).data() == "cells_00"


def test_autosave_on_switch_and_coming_back_keeps_edits_and_undo(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    original = window.document.gt.copy()
    paint(qtbot, window, [(10, 20), (50, 30)], radius=3)
    edited = window.document.gt.copy()
    with qtbot.waitSignal(window.saving.saved):
        key(qtbot, window, Qt.Key.Key_PageDown)
    assert window.document.name == "b"
    written = tmp_path / "data" / "corrected" / "masks" / "a.png"
    np.testing.assert_array_equal(np.array(Image.open(written)), edited)
    key(qtbot, window, Qt.Key.Key_PageDown)             # b is last: stays; then back to a
    key(qtbot, window, Qt.Key.Key_PageUp)
    assert window.document.name == "a"
    np.testing.assert_array_equal(window.document.gt, edited)
    np.testing.assert_array_equal(window.canvas.layer("gt").array, edited)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(window.document.gt, original)


def test_reopening_the_dataset_shows_the_saved_corrections(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    window = editing_window(qtbot, root)
    paint(qtbot, window, [(10, 20), (50, 30)], radius=3)
    edited = window.document.gt.copy()
    assert window.editor.save()
    window.close()
    again = editing_window(qtbot, root)
    assert again.document.name == "a"
    np.testing.assert_array_equal(again.document.gt, edited)
    assert not again.document.modified


def test_autosave_timer_saves_modified_images(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"),
                            settings_values={edit_settings.AUTOSAVE_SECONDS: 1})
    assert window.saving.autosave_timer.interval() == 1000
    paint(qtbot, window, [(10, 20), (30, 20)], radius=2)
    with qtbot.waitSignal(window.saving.saved, timeout=5000):
        pass
    assert not window.document.modified
    written = tmp_path / "data" / "corrected" / "masks" / "a.png"
    np.testing.assert_array_equal(np.array(Image.open(written)), window.document.gt)


def test_output_folder_and_overwrite_settings(qtbot, tmp_path):
    out = tmp_path / "elsewhere"
    window = editing_window(qtbot, make_dataset(tmp_path / "data"),
                            settings_values={edit_settings.OUTPUT_DIR: str(out)})
    paint(qtbot, window, [(10, 20), (30, 20)], radius=2)
    assert window.editor.save()
    np.testing.assert_array_equal(np.array(Image.open(out / "masks" / "a.png")), window.document.gt)
    window.settings.setValue(edit_settings.OVERWRITE, True)
    window.saving.apply_settings()                  # what the settings dialog does on OK
    original = np.array(Image.open(tmp_path / "data" / "masks" / "a.png"))
    paint(qtbot, window, [(10, 40), (30, 40)], radius=2)
    assert window.editor.save()
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "data" / "masks" / "a.png")), window.document.gt)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "data" / "masks" / "a.png.bak")), original)


def test_quitting_with_unsaved_edits_asks(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    paint(qtbot, window, [(10, 20), (30, 20)], radius=2)
    asked = []
    window.saving.ask_unsaved = lambda names: asked.append(names) or UnsavedChoice.CANCEL
    assert not window.close()
    assert window.isVisible() and asked == [["a"]]
    window.saving.ask_unsaved = lambda names: asked.append(names) or UnsavedChoice.SAVE
    assert window.close()
    written = tmp_path / "data" / "corrected" / "masks" / "a.png"
    np.testing.assert_array_equal(np.array(Image.open(written)), window.document.gt)
    assert len(asked) == 2


def test_quitting_without_edits_does_not_ask(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    window.saving.ask_unsaved = lambda names: pytest.fail("asked without unsaved edits")
    assert window.close()


def test_settings_dialog_writes_the_editing_keys(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    dialog = edit_settings.EditSettingsDialog(window.saving.settings, window)
    assert dialog.autosave_spin.value() == 60 and dialog.switch_box.isChecked()
    assert not dialog.overwrite_box.isChecked() and dialog.output_edit.text() == ""
    dialog.output_edit.setText(str(tmp_path / "out"))
    dialog.autosave_spin.setValue(5)
    dialog.switch_box.setChecked(False)
    dialog.accept()
    window.saving.apply_settings()
    settings = window.saving.settings
    assert settings.output_dir == str(tmp_path / "out") and settings.autosave_seconds == 5
    assert not settings.autosave_on_switch and not settings.overwrite
    assert window.saving.autosave_timer.interval() == 5000
    paint(qtbot, window, [(10, 20), (30, 20)], radius=2)
    key(qtbot, window, Qt.Key.Key_PageDown)                 # autosave on switch is off now
    assert not (tmp_path / "out").exists()
    assert window.saving.service.modified_documents()[0].name == "a"


def test_review_dock_and_tool_bar_layout_survive_a_restart(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    window = editing_window(qtbot, root)
    window.editor.review_dock.setFloating(True)
    window.editor.toolbar.hide()
    window.close()
    again = editing_window(qtbot, root)
    assert again.editor.review_dock.isFloating()
    assert not again.editor.toolbar.isVisible()


def before_metrics(window, name):
    return (window.saving.service.store.metrics(name) or {}).get("before")


def idle_window(qtbot, tmp_path):
    """The synthetic dataset's window once its start-up tasks (decoding ahead) are over."""
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    qtbot.waitUntil(lambda: not window.task_runner.active())
    assert window.document.name == "a"
    return window


def test_before_metrics_are_decoded_off_the_gui_thread_when_a_prediction_arrives(qtbot, tmp_path, monkeypatch):
    window = idle_window(qtbot, tmp_path)
    threads = threads_calling(monkeypatch, Sample, "load_mask")
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(lambda: before_metrics(window, "a") is not None)
    gt, pred = truth_and_prediction()["a"]
    before = before_metrics(window, "a")
    assert before["mean_iou"] == pytest.approx(reference_metrics(gt, pred, 3)["mean_iou"])
    assert before["error_pixels"] == int((gt != pred).sum())
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_before_metrics_of_a_replaced_prediction_are_dropped(qtbot, tmp_path, monkeypatch):
    window = idle_window(qtbot, tmp_path)
    gate, entered = threading.Event(), threading.Event()
    original = Sample.load_mask

    def held(sample):
        entered.set()
        assert gate.wait(10), "test never opened the gate"
        return original(sample)

    monkeypatch.setattr(Sample, "load_mask", held)
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(entered.is_set)                  # decoding the labels for the model's prediction
    gt, _ = truth_and_prediction()["a"]
    replacement = np.full_like(gt, 2)
    window.document.set_prediction(replacement)      # e.g. another model: its request supersedes
    gate.set()
    qtbot.waitUntil(lambda: not window.task_runner.active(TaskKind.BEFORE_METRICS))
    qtbot.waitUntil(lambda: before_metrics(window, "a") is not None)
    assert before_metrics(window, "a")["mean_iou"] == pytest.approx(
        reference_metrics(gt, replacement, 3)["mean_iou"])
