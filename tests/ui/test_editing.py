"""Editing tools driven through the real canvas with mouse and key events; exact pixels checked."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt

from tests.ui.editing_helpers import (click, ctrl_wheel, double_click, drag, editing_window, hover,
                                      image_point, key, rendered_rgb, segment_capsule, show_only)
from tests.ui.fakes import GatedRunner
from tests.ui.reference import reference_metrics
from tests.ui.synthetic import H, W, make_dataset, truth_and_prediction

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def runner():
    return GatedRunner()


@pytest.fixture
def window(qtbot, tmp_path, runner):
    return editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: runner)


def predict_current(qtbot, window):
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(lambda: window.document.pred is not None)


def test_fast_brush_drag_paints_the_exact_capsule_and_redraws_it(qtbot, window):
    canvas, doc = window.canvas, window.document
    original = doc.gt.copy()
    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, Qt.Key.Key_2)
    window.editor.set_brush_radius(3)
    assert window.editor.tool_name == "brush" and window.selection.class_id == 2
    drag(qtbot, canvas, [(10, 20), (50, 30)])          # one move event 40 px away: no gaps allowed
    expected = original.copy()
    expected[segment_capsule(original.shape, (10, 20), (50, 30), 3)] = 2
    np.testing.assert_array_equal(doc.gt, expected)
    assert canvas.layer("gt").array is doc.gt
    show_only(canvas, "gt")
    assert rendered_rgb(canvas, 30, 25) == pytest.approx((0, 255, 0), abs=2)     # class 2 is green
    assert rendered_rgb(canvas, 30, 5) == pytest.approx((255, 0, 0), abs=2)      # class 1 untouched
    assert window.windowTitle().startswith("* ")
    assert window.browser.model.index(0, 1).data() == "a *"


def test_undo_redo_keys_round_trip_to_identical_arrays(qtbot, window):
    canvas, doc = window.canvas, window.document
    key(qtbot, window, Qt.Key.Key_B)
    states = [doc.gt.copy()]
    for cls, path in ((2, [(5, 5), (40, 12)]), (0, [(20, 30), (22, 44), (60, 40)]), (1, [(50, 5)])):
        key(qtbot, window, getattr(Qt.Key, f"Key_{cls}"))
        drag(qtbot, canvas, path)
        states.append(doc.gt.copy())
    assert all(not np.array_equal(a, b) for a, b in zip(states, states[1:]))
    for state in reversed(states[:-1]):
        key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        np.testing.assert_array_equal(doc.gt, state)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)   # nothing left: no change
    np.testing.assert_array_equal(doc.gt, states[0])
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(doc.gt, states[1])
    key(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(doc.gt, states[3])
    np.testing.assert_array_equal(canvas.layer("gt").array, states[3])


def test_eraser_paints_background_and_shift_eraser_paints_ignore(qtbot, window):
    canvas, doc = window.canvas, window.document
    original = doc.gt.copy()
    key(qtbot, window, Qt.Key.Key_X)
    window.editor.set_brush_radius(2)
    drag(qtbot, canvas, [(10, 10), (20, 10)])
    drag(qtbot, canvas, [(10, 30), (20, 30)], Qt.KeyboardModifier.ShiftModifier)
    expected = original.copy()
    expected[segment_capsule(original.shape, (10, 10), (20, 10), 2)] = 0
    expected[segment_capsule(original.shape, (10, 30), (20, 30), 2)] = 255
    np.testing.assert_array_equal(doc.gt, expected)


def test_accept_prediction_brush_copies_the_prediction_under_the_stroke(qtbot, window):
    predict_current(qtbot, window)
    canvas, doc = window.canvas, window.document
    gt, pred = truth_and_prediction()["a"]
    key(qtbot, window, Qt.Key.Key_A)
    window.editor.set_brush_radius(4)
    drag(qtbot, canvas, [(6, 38), (36, 40)])
    under = segment_capsule(gt.shape, (6, 38), (36, 40), 4)
    expected = gt.copy()
    expected[under] = pred[under]
    np.testing.assert_array_equal(doc.gt, expected)
    assert (doc.gt[under] == 2).any() and (doc.gt[under] == 1).any()


def test_metrics_panel_shows_the_class_change_of_a_stroke(qtbot, window):
    predict_current(qtbot, window)
    gt, pred = truth_and_prediction()["a"]
    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, Qt.Key.Key_1)
    window.editor.set_brush_radius(2)
    drag(qtbot, window.canvas, [(35, 5), (35, 30)])      # into the false-positive columns
    after = window.document.gt
    before_iou = reference_metrics(gt, pred, 3)["iou"][1]
    ref = reference_metrics(after, pred, 3)
    f1_before = 2 * np.sum((gt == 1) & (pred == 1)) / (np.sum(gt == 1) + np.sum(pred == 1))
    f1_after = 2 * np.sum((after == 1) & (pred == 1)) / (np.sum(after == 1) + np.sum(pred == 1))
    assert ref["iou"][1] > before_iou
    assert window.metrics_panel.change_label.text() == (
        f"cell: IoU {before_iou:.3f} → {ref['iou'][1]:.3f}   F1 {f1_before:.3f} → {f1_after:.3f}")


def test_flood_fill_and_shift_fill(qtbot, window):
    canvas, doc = window.canvas, window.document
    original = doc.gt.copy()
    key(qtbot, window, Qt.Key.Key_G)
    key(qtbot, window, Qt.Key.Key_2)
    click(qtbot, canvas, (50, 10))
    expected = original.copy()
    expected[original == 0] = 2                        # the background half is one 4-connected region
    np.testing.assert_array_equal(doc.gt, expected)
    click(qtbot, canvas, (5, 5), Qt.KeyboardModifier.ShiftModifier)
    expected[original == 1] = 255
    np.testing.assert_array_equal(doc.gt, expected)


def test_polygon_by_clicks_double_click_enter_and_lasso(qtbot, window):
    canvas, doc = window.canvas, window.document
    original = doc.gt.copy()
    key(qtbot, window, Qt.Key.Key_P)
    key(qtbot, window, Qt.Key.Key_2)
    # vertices on pixel corners; the fill includes the polygon's edges
    for corner in ((40, 5), (55, 5), (55, 15)):
        click(qtbot, canvas, corner, corner=True)
    double_click(qtbot, canvas, (40, 15), corner=True)
    expected = original.copy()
    expected[5:16, 40:56] = 2
    np.testing.assert_array_equal(doc.gt, expected)

    key(qtbot, window, Qt.Key.Key_0)                   # background
    for corner in ((42, 8), (50, 8), (50, 12)):
        click(qtbot, canvas, corner, corner=True)
    click(qtbot, canvas, (42, 12), corner=True)
    key(qtbot, window, Qt.Key.Key_Return)
    expected[8:13, 42:51] = 0
    np.testing.assert_array_equal(doc.gt, expected)

    key(qtbot, window, Qt.Key.Key_1)
    drag(qtbot, canvas, [(45, 25), (60, 25), (60, 40), (45, 40)], corner=True)   # lasso: fills on release
    expected[25:41, 45:61] = 1
    np.testing.assert_array_equal(doc.gt, expected)


def test_right_click_drops_a_polygon(qtbot, window):
    canvas, doc = window.canvas, window.document
    original = doc.gt.copy()
    key(qtbot, window, Qt.Key.Key_P)
    for corner in ((40, 5), (55, 5), (55, 15)):
        click(qtbot, canvas, corner, corner=True)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.RightButton, pos=image_point(canvas, (50, 30)))
    key(qtbot, window, Qt.Key.Key_Return)
    np.testing.assert_array_equal(doc.gt, original)


def test_alt_click_picks_the_class_in_any_tool_and_picker_tool(qtbot, window):
    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, Qt.Key.Key_2)
    original = window.document.gt.copy()
    click(qtbot, window.canvas, (10, 10), Qt.KeyboardModifier.AltModifier)
    assert window.selection.class_id == 1
    np.testing.assert_array_equal(window.document.gt, original)    # picking does not paint
    key(qtbot, window, Qt.Key.Key_K)
    click(qtbot, window.canvas, (50, 10))
    assert window.selection.class_id == 0


def test_brush_size_keys_ctrl_wheel_and_true_size_cursor(qtbot, window):
    editor, canvas = window.editor, window.canvas
    key(qtbot, window, Qt.Key.Key_B)
    editor.set_brush_radius(10)
    key(qtbot, window, Qt.Key.Key_BracketRight)
    assert editor.brush_radius == 12
    key(qtbot, window, Qt.Key.Key_BracketLeft)
    key(qtbot, window, Qt.Key.Key_BracketLeft)
    assert editor.brush_radius == 8
    with qtbot.waitSignal(editor.brush_radius_changed) as blocker:
        ctrl_wheel(canvas, (30, 20), -120)
    assert blocker.args == [7]
    assert editor.radius_spin.value() == 15   # the diameter: 2r + 1, as the ring shows
    # the ring is drawn r + 0.5 image pixels from the mouse: white at that distance, not inside
    centre = image_point(canvas, (30, 20))
    hover(qtbot, canvas, (30, 20))
    image = canvas.render_viewport()
    ring = (7 + 0.5) * canvas.zoom()
    whites = [image.pixelColor(centre.x() + round(ring) + d, centre.y()).lightness() for d in (-1, 0, 1)]
    assert max(whites) > 200
    inside = image.pixelColor(centre.x() + round(ring / 2), centre.y()).lightness()
    assert inside < 200
    assert window.settings.value("editing/brush_radius") in (7, "7")


def test_paint_only_over_and_preserve_other_labels(qtbot, window):
    canvas, doc, editor = window.canvas, window.document, window.editor
    original = doc.gt.copy()
    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, Qt.Key.Key_2)
    editor.set_brush_radius(3)
    editor.only_over_combo.setCurrentIndex(editor.only_over_combo.findData(0))   # paint over background only
    assert editor.only_over == 0
    drag(qtbot, canvas, [(25, 10), (40, 10)])
    stroke = segment_capsule(original.shape, (25, 10), (40, 10), 3)
    expected = original.copy()
    expected[stroke & (original == 0)] = 2
    np.testing.assert_array_equal(doc.gt, expected)

    editor.only_over_combo.setCurrentIndex(0)
    editor.preserve_action.trigger()
    assert editor.preserve_labels and editor.only_over is None
    key(qtbot, window, Qt.Key.Key_0)
    drag(qtbot, canvas, [(25, 30), (40, 30)])          # erase class 0 over 1 and 2: all preserved
    np.testing.assert_array_equal(doc.gt, expected)


def test_error_region_actions_from_list_and_under_cursor(qtbot, window):
    predict_current(qtbot, window)
    qtbot.waitUntil(lambda: len(window.regions.regions) == 2)
    doc, canvas = window.document, window.canvas
    gt, pred = truth_and_prediction()["a"]
    block = next(r for r in window.regions.regions if r.bbox == (4, 36, 8, 8))
    window.regions.table.selectRow(window.regions.regions.index(block))
    hover(qtbot, canvas, (-5, -5), outside=True)
    window.editor.accept_region_action.trigger()
    expected = gt.copy()
    expected[36:44, 4:12] = 2
    np.testing.assert_array_equal(doc.gt, expected)
    hover(qtbot, canvas, (35, 20))                     # the false-positive columns
    key(qtbot, window, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    expected[:, 32:40] = 1
    np.testing.assert_array_equal(doc.gt, expected)
    np.testing.assert_array_equal(doc.gt, pred)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    hover(qtbot, canvas, (6, 38))
    key(qtbot, window, Qt.Key.Key_X, Qt.KeyboardModifier.ShiftModifier)     # erase the block region
    expected = gt.copy()
    expected[36:44, 4:12] = 0
    np.testing.assert_array_equal(doc.gt, expected)


def test_start_from_prediction_is_one_undoable_step(qtbot, window):
    assert window.step_image(1)
    predict_current(qtbot, window)
    doc = window.document
    gt, pred = truth_and_prediction()["b"]
    window.editor.start_action.trigger()
    np.testing.assert_array_equal(doc.gt, pred)
    np.testing.assert_array_equal(window.canvas.layer("gt").array, pred)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(doc.gt, gt)


def test_enter_in_the_image_list_still_opens_the_image(qtbot, window):
    key(qtbot, window, Qt.Key.Key_P)                   # the polygon tool binds Enter on the canvas only
    view = window.browser.view
    window.dock("dataset").raise_()
    view.setFocus()
    view.setCurrentIndex(window.browser.proxy.index(1, 1))
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert window.document.name == "b"


POINT = st.tuples(st.integers(0, W - 1), st.integers(0, H - 1))
STROKE = st.tuples(st.sampled_from(["brush", "eraser"]), st.integers(0, 2), st.lists(POINT, min_size=1, max_size=4),
                   st.integers(0, 5))
CTRL = Qt.KeyboardModifier.ControlModifier


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strokes=st.lists(STROKE, min_size=1, max_size=4))
def test_random_strokes_paint_exact_pixels_and_undo_redo_round_trips(qtbot, window, strokes):
    doc = window.document
    start = doc.gt.copy()
    states = [start]
    for tool, cls, points, radius in strokes:
        key(qtbot, window, Qt.Key.Key_B if tool == "brush" else Qt.Key.Key_X)
        key(qtbot, window, getattr(Qt.Key, f"Key_{cls}"))
        window.editor.set_brush_radius(radius)
        drag(qtbot, window.canvas, points)
        covered = np.zeros(start.shape, bool)
        for a, b in zip(points, points[1:] + points[-1:]):
            covered |= segment_capsule(start.shape, a, b, radius)
        expected = states[-1].copy()
        expected[covered] = cls if tool == "brush" else 0
        np.testing.assert_array_equal(doc.gt, expected)
        if not np.array_equal(expected, states[-1]):
            states.append(expected)                   # a stroke that changes nothing is no undo step
    for state in reversed(states[:-1]):
        key(qtbot, window, Qt.Key.Key_Z, CTRL)
        np.testing.assert_array_equal(doc.gt, state)
    for state in states[1:]:
        key(qtbot, window, Qt.Key.Key_Y, CTRL)
        np.testing.assert_array_equal(doc.gt, state)
    for _ in states[1:]:                              # leave the shared window as the example found it
        key(qtbot, window, Qt.Key.Key_Z, CTRL)
    np.testing.assert_array_equal(doc.gt, start)
    np.testing.assert_array_equal(window.canvas.layer("gt").array, start)
