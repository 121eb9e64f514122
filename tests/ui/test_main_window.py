"""The main window on a synthetic dataset with a gated fake runner: no torch, exact pixels."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from segstudio.core.editing.selection import ErrorMode
from segstudio.core.evaluation import errormap
from segstudio.core.display.render import instance_lut

from tests.ui.editing_helpers import rendered_rgb, show_only
from tests.ui.fakes import GatedRunner, fake_controller
from tests.ui.reference import reference_metrics
from tests.ui.synthetic import TABLE, make_dataset, truth_and_prediction

BACKGROUND = (40, 40, 40)   # the canvas background behind transparent pixels


@pytest.fixture
def runner():
    return GatedRunner()


@pytest.fixture
def window(open_window, tmp_path, runner):
    return open_window(fake_controller(lambda request: runner), make_dataset(tmp_path / "data"),
                       size=(1000, 700), model="fake", device="cpu")


def predict_current(qtbot, window):
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(lambda: window.metrics_panel.headline("image", "mean_iou") != "–")
    qtbot.waitUntil(lambda: bool(window.regions.regions))  # found on a pool thread


def over_background(rgba):
    alpha = rgba[3] / 255
    return tuple(round(alpha * c + (1 - alpha) * b) for c, b in zip(rgba[:3], BACKGROUND))


def assert_close(actual, expected, tol=2):
    assert np.all(np.abs(np.subtract(actual, expected)) <= tol), (actual, expected)


def test_opens_first_image_with_ground_truth(window):
    gt_a, _ = truth_and_prediction()["a"]
    assert window.document.name == "a"
    np.testing.assert_array_equal(window.canvas.layer("gt").array, gt_a)
    assert "pred" not in window.canvas.layer_names()
    assert window.browser.model.rowCount() == 2


def test_prediction_lands_on_canvas_and_metrics_match_numpy(qtbot, window):
    predict_current(qtbot, window)
    gt, pred = truth_and_prediction()["a"]
    np.testing.assert_array_equal(window.canvas.layer("pred").array, pred)
    ref = reference_metrics(gt, pred, 3)
    for key in ("pixel_accuracy", "mean_iou", "fw_iou", "mean_f1"):
        assert window.metrics_panel.headline("image", key) == f"{ref[key]:.3f}"
        assert window.metrics_panel.headline("dataset", key) == f"{ref[key]:.3f}"
    assert window.regions.regions[0].size == max(r.size for r in window.regions.regions)


def test_result_for_an_image_left_is_cached_for_it_not_painted_here(qtbot, window, runner):
    runner.gate.clear()
    job = window.run_on_image()
    qtbot.waitUntil(runner.entered.is_set)
    assert window.step_image(1)
    assert window.document.name == "b"
    with qtbot.waitSignal(window.controller.finished, timeout=5000) as blocker:
        runner.gate.set()
    assert blocker.args[:2] == [job, "a"]
    qtbot.waitUntil(lambda: not window.controller.busy)
    assert window.document.pred is None
    assert "pred" not in window.canvas.layer_names()
    np.testing.assert_array_equal(window.session.predictions["a"].mask, truth_and_prediction()["a"][1])
    assert window.step_image(-1)
    np.testing.assert_array_equal(window.canvas.layer("pred").array, truth_and_prediction()["a"][1])


def test_dataset_run_fills_the_browser_and_sorts_worst_first(qtbot, window):
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_dataset()
    qtbot.waitUntil(lambda: len(window.session.stats) == 2)
    window.browser.sort_worst_first()
    assert window.browser.visible_names() == ["b", "a"]   # b's IoU is 0.0 / 2 classes
    both = reference_metrics(np.stack([v[0] for v in truth_and_prediction().values()]),
                             np.stack([v[1] for v in truth_and_prediction().values()]), 3)
    qtbot.waitUntil(lambda: window.metrics_panel.headline("dataset", "mean_iou") == f"{both['mean_iou']:.3f}")
    window.browser.filter_class(2)
    assert sorted(window.browser.visible_names()) == ["b"]   # only b has class 2 in its ground truth


def test_cancel_leaves_no_prediction(qtbot, window, runner):
    runner.gate.clear()
    window.run_on_image()
    qtbot.waitUntil(runner.entered.is_set)
    assert window.model_dock.cancel_button.isEnabled()
    with qtbot.waitSignal(window.controller.cancelled, timeout=5000):
        window.model_dock.cancel_button.click()
    qtbot.waitUntil(lambda: not window.controller.busy)
    assert window.document.pred is None
    assert window.model_dock.run_image_button.isEnabled()


def test_close_during_a_job_stops_the_thread(qtbot, window, runner):
    runner.gate.clear()
    window.run_on_image()
    qtbot.waitUntil(runner.entered.is_set)
    thread = window.controller._thread
    window.close()
    assert not thread.isRunning()


def test_error_map_colours_all_classes_then_one_class(qtbot, window):
    predict_current(qtbot, window)
    canvas = window.canvas
    show_only(canvas, "errors")
    assert_close(rendered_rgb(canvas, 35, 10), over_background(errormap.ERROR_COLORS[errormap.FALSE_POSITIVE]))
    assert_close(rendered_rgb(canvas, 10, 10), over_background(errormap.ERROR_COLORS[errormap.CORRECT]))
    # the misclassified block is hatched with the gt (red) and predicted (green) class colours
    show_only(canvas, "misclassified")
    hatch = {rendered_rgb(canvas, x, 40) for x in range(4, 12)}
    assert {over_background((255, 0, 0, 220)), over_background((0, 255, 0, 220))} <= {
        tuple(int(v) for v in c) for c in hatch} or len(hatch) == 2
    window.select_class(1)
    window.error_mode_action.trigger()            # 'E': one class
    assert window.selection.error_mode is ErrorMode.ONE
    assert "misclassified" not in canvas.layer_names()
    show_only(canvas, "errors")
    assert_close(rendered_rgb(canvas, 8, 40), over_background(errormap.ERROR_COLORS[errormap.FALSE_NEGATIVE]))
    assert_close(rendered_rgb(canvas, 35, 10), over_background(errormap.ERROR_COLORS[errormap.FALSE_POSITIVE]))
    assert_close(rendered_rgb(canvas, 50, 10), BACKGROUND)


def test_instance_view_and_outlines(qtbot, window):
    canvas = window.canvas
    gt_a, _ = truth_and_prediction()["a"]
    window.instance_action.trigger()              # 'I'
    layer = canvas.layer("gt")
    ids = layer.array
    assert ids[10, 10] != 0 and ids[10, 50] != ids[10, 10]
    np.testing.assert_array_equal(layer.lut[ids[10, 10]], instance_lut()[ids[10, 10]])
    window.instance_action.trigger()
    window.outlines_action.trigger()              # 'O'
    show_only(canvas, "gt")
    assert_close(rendered_rgb(canvas, 31, 20), (255, 0, 0))   # border of the class-1 half
    assert_close(rendered_rgb(canvas, 10, 20), BACKGROUND)    # inside: the image shows through


def test_confusion_cell_highlights_its_pixels(qtbot, window):
    predict_current(qtbot, window)
    gt, pred = truth_and_prediction()["a"]
    with qtbot.waitSignal(window.presenter.layers_changed):
        window.metrics_panel.cell_clicked.emit(0, 1)
    highlight = window.canvas.layer("highlight").array
    np.testing.assert_array_equal(highlight.astype(bool), (gt == 0) & (pred == 1))


def test_clicking_an_error_region_centres_the_canvas_on_it(qtbot, window):
    predict_current(qtbot, window)
    window.regions.table.setFocus()
    smallest = len(window.regions.regions) - 1
    region = window.regions.regions[smallest]
    rect = window.regions.table.visualItemRect(window.regions.table.item(smallest, 0))
    qtbot.mouseClick(window.regions.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    x, y, w, h = region.bbox
    vx, vy, vw, vh = window.canvas.visible_image_rect()
    assert abs((vx + vw / 2) - (x + w / 2)) < 1 and abs((vy + vh / 2) - (y + h / 2)) < 1
    assert vw < 64  # zoomed in on the region


def test_a_stroke_updates_the_metrics_and_shows_the_class_change(qtbot, window):
    predict_current(qtbot, window)
    doc = window.document
    before = doc.confusion.copy()
    window.select_class(1)
    doc.begin_stroke(1)
    doc.paint_dab(36, 20, 3)           # paint class 1 over false-positive pixels: IoU of class 1 rises
    doc.commit_stroke()
    gt, pred = doc.gt, doc.pred
    ref = reference_metrics(gt, pred, 3)
    qtbot.waitUntil(lambda: window.metrics_panel.headline("image", "mean_iou") == f"{ref['mean_iou']:.3f}")
    old = before.iou()[1]
    assert window.metrics_panel.change_label.text().startswith(f"cell: IoU {old:.3f} → {ref['iou'][1]:.3f}")
    np.testing.assert_array_equal(window.canvas.layer("gt").array, gt)


def test_a_stroke_in_outlines_view_redraws_only_its_neighbourhood(qtbot, window):
    """Outlines of the edited labels equal the whole-image outlines, drawn from the stroke's rect alone."""
    window.outlines_action.trigger()
    doc = window.document
    layer = window.canvas.layer("gt")
    stale = layer.array.copy()
    doc.begin_stroke(2)
    doc.paint_dab(20, 20, 5)
    doc.commit_stroke()
    shown = window.canvas.layer("gt").array
    assert shown is layer.array                      # edited in place, not rebuilt
    table = doc.class_table
    g = doc.gt
    edge = np.zeros(g.shape, bool)                   # 4-neighbour class borders, written out in numpy
    edge[:, 1:] |= g[:, 1:] != g[:, :-1]
    edge[:, :-1] |= g[:, 1:] != g[:, :-1]
    edge[1:, :] |= g[1:, :] != g[:-1, :]
    edge[:-1, :] |= g[1:, :] != g[:-1, :]
    edge &= (g != 0) & (g != table.ignore_index)
    lut = layer.lut
    np.testing.assert_array_equal(lut[shown][..., 3] > 0, edge & (lut[g][..., 3] > 0))
    np.testing.assert_array_equal(shown[edge], g[edge])
    changed = np.argwhere(shown != stale)
    assert changed.size and changed.min(0).tolist() >= [14, 14] and changed.max(0).tolist() <= [26, 26]


def test_instance_view_frames_a_missed_instance(qtbot, window):
    # image b: the ground truth is one band of class 2 over the top rows, predicted as background
    assert window.step_image(1)
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(lambda: window.document.pred is not None)
    window.instance_action.trigger()
    frames = window.canvas.layer("instance_marks").array
    assert window.presenter.instance_marks and window.presenter.instance_marks[0].kind == "missed"
    x, y, w, h = window.presenter.instance_marks[0].bbox
    assert frames[y + h, x + w // 2] == 1 and frames[y + h // 2, x + w // 2] == 0   # frame, not fill
    window.instance_action.trigger()
    assert "instance_marks" not in window.canvas.layer_names()


def test_predictions_folder_fills_the_cache_and_reports_bad_files(qtbot, window, tmp_path):
    import cv2

    folder = tmp_path / "preds"
    folder.mkdir()
    for name, (_, pred) in truth_and_prediction().items():
        cv2.imwrite(str(folder / f"{name}.png"), pred)
    (folder / "b.png").write_bytes(b"not a png")
    with qtbot.waitSignal(window.errors_shown, timeout=5000):
        window.open_predictions(str(folder))
    qtbot.waitUntil(lambda: not window.controller.busy)
    qtbot.waitUntil(lambda: window.document.pred is not None)   # its comparison is built off the GUI thread
    np.testing.assert_array_equal(window.canvas.layer("pred").array, truth_and_prediction()["a"][1])
    assert "b" not in window.session.predictions
    assert window.session.stats["a"].error_pixels == int((truth_and_prediction()["a"][0] !=
                                                          truth_and_prediction()["a"][1]).sum())


def test_clicking_a_row_in_the_dataset_browser_opens_that_image(qtbot, window):
    view = window.browser.view
    window.dock("dataset").raise_()
    qtbot.waitUntil(view.isVisible)
    row_b = window.browser.visible_names().index("b")
    rect = view.visualRect(window.browser.proxy.index(row_b, 1))
    with qtbot.waitSignal(window.document_changed):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.document.name == "b"
    assert view.selectionModel().selectedRows()[0].row() == row_b


def test_recolouring_a_class_redraws_masks_and_hatch(qtbot, window):
    predict_current(qtbot, window)
    window.class_panel.apply_class_color(1, (0, 0, 255, 255))
    assert tuple(window.canvas.layer("gt").lut[1]) == (0, 0, 255, 255)
    hatch = window.canvas.layer("misclassified")
    gt_colours = {tuple(hatch.lut[code][:3]) for code in np.unique(hatch.array) if code}
    assert (0, 0, 255) in gt_colours and (255, 0, 0) not in gt_colours


def test_class_colour_edits_persist_for_the_dataset(qtbot, open_window, tmp_path):
    """A recoloured class keeps its colour when the dataset is opened again; the masks are untouched."""
    data = make_dataset(tmp_path / "data")
    masks_before = {p.name: p.read_bytes() for p in (data / "masks").iterdir()}
    first = open_window(None, data, size=(900, 600), device="cpu")
    first.class_panel.apply_class_color(2, (10, 200, 30, 255))
    first.close()
    second = open_window(None, data, size=(900, 600), device="cpu")
    assert tuple(second.session.class_table.classes[2].color) == (10, 200, 30, 255)
    assert tuple(second.canvas.layer("gt").lut[2]) == (10, 200, 30, 255)
    assert tuple(second.session.class_table.classes[1].color) == tuple(TABLE.classes[1].color)
    assert {p.name: p.read_bytes() for p in (data / "masks").iterdir()} == masks_before


def test_recolouring_reaches_open_unsaved_documents(qtbot, window):
    """Regression: an edited image left for another kept its old colours after a recolour."""
    first = window.document
    first.begin_stroke(2)
    first.paint_dab(5, 5, 3)
    first.commit_stroke()
    assert first.modified
    with qtbot.waitSignal(window.document_changed):
        window.step_image(1)
    window.class_panel.apply_class_color(2, (1, 2, 3, 255))
    assert first.class_table.classes[2].color == (1, 2, 3, 255)
    with qtbot.waitSignal(window.document_changed):
        window.step_image(-1)
    assert window.document is first
    assert tuple(window.canvas.layer("gt").lut[2]) == (1, 2, 3, 255)
