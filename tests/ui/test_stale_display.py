"""No stale display (issue 12, deliverable 5): every piece of status text belongs to what is shown now."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from segstudio.core.errors import CheckpointError
from segstudio.ui import settings as keys

from tests.ui.editing_helpers import editing_window
from tests.ui.fakes import GatedRunner
from tests.ui.synthetic import make_dataset, truth_and_prediction


def predict_current(qtbot, window):
    with qtbot.waitSignal(window.controller.job_ended, timeout=10_000):
        window.run_on_image()
    qtbot.waitUntil(lambda: window.document.pred is not None)


def test_an_inference_failure_ends_starting(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"),
                            runner_factory=lambda request: GatedRunner(fail_with=RuntimeError("out of memory")))
    with qtbot.waitSignal(window.controller.job_ended, timeout=10_000):
        window.run_on_image()
        assert window.model_dock.timing.text() == "Starting…"
    assert window.model_dock.timing.text() == "Failed: RuntimeError: out of memory"
    assert window.model_dock.run_image_button.isEnabled()


def test_a_cancelled_run_says_cancelled(qtbot, tmp_path):
    runner = GatedRunner()
    runner.gate.clear()
    window = editing_window(qtbot, make_dataset(tmp_path / "data"), runner_factory=lambda request: runner)
    with qtbot.waitSignal(window.controller.job_ended, timeout=10_000):
        window.run_on_image()
        runner.entered.wait(5)
        window.controller.cancel()
    assert window.model_dock.timing.text() == "Cancelled"


def test_the_iou_line_belongs_to_its_image(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    predict_current(qtbot, window)
    doc = window.document
    doc.begin_stroke(2)
    doc.paint_dab(5, 5, 2)
    doc.commit_stroke()
    assert ": IoU " in window.metrics_panel.change_label.text()
    assert window.go_to(1)
    assert window.metrics_panel.change_label.text() == ""
    assert window.go_to(0)     # coming back does not bring another image's line either
    assert window.metrics_panel.change_label.text() == ""


def test_the_browser_selection_is_the_image_shown(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    for folder in ("images", "masks"):
        shutil.copy(root / folder / "a.png", root / folder / "c.png")
    (root / "images" / "c.png").write_bytes(b"not a png")
    window = editing_window(qtbot, root)
    browser = window.browser
    assert browser.selected_index() == 0
    browser.view.clicked.emit(browser.proxy.index(1, 0))          # b opens
    assert window.document.name == "b" and browser.selected_index() == 1
    browser.view.clicked.emit(browser.proxy.index(2, 0))          # c is unreadable: b stays shown ...
    assert window.document.name == "b"
    assert browser.selected_index() == 1                           # ... and selected
    window.step_image(-1)
    assert browser.selected_index() == window.session.index == 0


def test_the_cursor_readout_follows_predictions_edits_undo_and_image_switches(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    gt, pred = truth_and_prediction()["a"]
    assert (gt[7, 5], pred[7, 5]) == (1, 1)
    window.canvas.cursor_moved.emit(5, 7)
    assert "gt: cell" in window.status_pixel.text()
    assert "pred: no prediction" in window.status_pixel.text()
    predict_current(qtbot, window)                                 # no mouse move since
    assert "pred: cell" in window.status_pixel.text()
    doc = window.document
    doc.begin_stroke(2)
    doc.paint_dab(5, 7, 1)
    doc.commit_stroke()
    assert "gt: debris" in window.status_pixel.text()
    window.editor.undo()
    assert "gt: cell" in window.status_pixel.text()
    assert window.go_to(1)                                         # b: debris at the top, no prediction
    assert truth_and_prediction()["b"][0][7, 5] == 2
    text = window.status_pixel.text()
    assert "gt: debris" in text and "pred: no prediction" in text


def test_the_model_label_names_the_model_loaded_not_the_row_selected(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    dock = window.model_dock
    predict_current(qtbot, window)
    assert dock.info.text().startswith("Loaded: fake · semantic")
    dock.select_spec("torchvision:fcn_resnet50")
    assert "Loaded" not in dock.info.text()
    assert dock.info.text().startswith("Selected: torchvision:fcn_resnet50 (loads when it runs)")
    dock.select_spec("fake")
    assert dock.info.text().startswith("Loaded: fake")


def test_a_model_file_that_fails_to_load_leaves_the_list_and_is_not_remembered(qtbot, tmp_path, monkeypatch):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 a zip that is no checkpoint")

    def runner_factory(request):
        if request.spec == str(broken):
            raise CheckpointError(str(broken), "no state dict in the archive")
        return GatedRunner()

    window = editing_window(qtbot, make_dataset(tmp_path / "data"), runner_factory=runner_factory)
    monkeypatch.setattr("segstudio.ui.model_dock.has_model_card", lambda path: True)
    dock = window.model_dock
    assert dock.add_model_file(str(broken))
    assert dock.selected_spec() == str(broken)
    with qtbot.waitSignal(window.controller.job_ended, timeout=10_000):
        window.run_on_image()
    assert dock._item_for(str(broken)) is None
    assert dock.selected_spec() != str(broken)
    assert window.settings.value(keys.MODEL) != str(broken)
    assert "could not be loaded and was removed" in dock.info.text()


def test_load_model_file_refuses_a_file_that_is_no_model_before_asking_anything(qtbot, tmp_path, monkeypatch):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    notes = tmp_path / "notes.pt"
    notes.write_text("these are my notes")
    monkeypatch.setattr("segstudio.ui.model_dock.ModelFormDialog",
                        lambda *a: pytest.fail("asked for classes of a file that is no model"))
    assert not window.model_dock.add_model_file(str(notes))
    assert window.model_dock._item_for(str(notes)) is None
    assert "not a model file" in window.model_dock.info.text()
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert not window.model_dock.add_model_file(str(empty))
    assert "empty" in window.model_dock.info.text()


def test_registry_entries_without_weights_are_marked_with_the_reason(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    item = window.model_dock._item_for("smp:Unet")
    assert item.text() == "smp:Unet — needs weights"
    assert not item.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "Load model file…" in item.toolTip() and "--" not in item.toolTip()


def test_highlight_colour_is_no_class_colour_and_clears_on_esc_and_leaving_the_tab(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from tests.ui.editing_helpers import key

    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    predict_current(qtbot, window)
    panel = window.metrics_panel
    panel.tabs.setCurrentWidget(panel.confusion_plot)
    gt, pred = truth_and_prediction()["a"]
    window.metrics_panel.cell_clicked.emit(0, 1)
    layer = window.canvas.layer("highlight")
    np.testing.assert_array_equal(layer.array.astype(bool), (gt == 0) & (pred == 1))
    colour = tuple(int(c) for c in layer.lut[1][:3])
    class_colours = {tuple(int(c) for c in rgba[:3]) for rgba in window.session.class_table.colors}
    assert colour not in class_colours
    key(qtbot, window, Qt.Key.Key_Escape)
    assert "highlight" not in window.canvas.layer_names()
    window.metrics_panel.cell_clicked.emit(0, 1)
    assert "highlight" in window.canvas.layer_names()
    panel.tabs.setCurrentWidget(panel.table)
    assert "highlight" not in window.canvas.layer_names()


def test_jumping_to_an_error_region_keeps_context_around_it(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"))
    predict_current(qtbot, window)
    qtbot.waitUntil(lambda: len(window.regions.regions) > 0)
    region = window.regions.regions[-1]             # the smallest
    window.regions.region_selected.emit(region)
    x, y, w, h = region.bbox
    vx, vy, vw, vh = window.canvas.visible_image_rect()
    assert abs((vx + vw / 2) - (x + w / 2)) < 1 and abs((vy + vh / 2) - (y + h / 2)) < 1
    # the region's larger side (relative to the view) is a third of it, not most of it
    assert max(w / vw, h / vh) == pytest.approx(1 / 3, rel=0.02)


def test_the_crash_restore_prompt_names_each_image_and_the_state_it_comes_back_in():
    from segstudio.ui.edit_saving import restore_question

    text = restore_question({"b": 1, "a": 6})
    assert "2 image(s)" in text
    assert text.index("  a: 6 steps") < text.index("  b: 1 step ")
    assert "after its last finished stroke" in text and "not restored" in text


def test_quit_question_says_discard_does_not_undo_an_autosave(qtbot, tmp_path):
    from segstudio.ui import edit_settings
    from segstudio.ui.edit_saving import unsaved_question

    window = editing_window(qtbot, make_dataset(tmp_path / "data"),
                            settings_values={edit_settings.AUTOSAVE_ON_SWITCH: True})
    text = unsaved_question(["a"], window.saving.settings)
    assert "Discard does not undo an autosave" in text
    window.settings.setValue(edit_settings.AUTOSAVE_ON_SWITCH, False)
    window.settings.setValue(edit_settings.AUTOSAVE_SECONDS, 0)
    assert "autosave" not in unsaved_question(["a"], window.saving.settings)


def test_the_settings_dialog_shows_the_real_save_folder(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    window = editing_window(qtbot, root)
    dialog = window.editor.settings_dialog()
    qtbot.addWidget(dialog)
    assert dialog.output_edit.placeholderText() == str(root.resolve() / "corrected")


def test_a_prediction_on_an_image_without_ground_truth_is_shown(qtbot, tmp_path):
    root = make_dataset(tmp_path / "data")
    (root / "masks" / "a.png").unlink()
    window = editing_window(qtbot, root)
    assert window.document.gt is None
    predict_current(qtbot, window)
    qtbot.waitUntil(lambda: "pred" in window.canvas.layer_names())
    assert window.canvas.layer("pred").visible
    assert window.layer_panel.layer_state("pred")[2]
