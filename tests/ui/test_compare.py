"""Model A vs model B in the window: two predictions folders as sources, the disagreement layer kept
exact through strokes, the A/B/Δ numbers, the images B made worse first, the bootstrap, the label-fix
impact. Every number is checked against a numpy formula written here."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt

from segstudio.core.evaluation.comparison import SourceKey, SourceKind
from tests.ui.editing_helpers import drag, editing_window, key
from tests.ui.fakes import GatedRunner
from tests.ui.synthetic import H, make_dataset, truth_and_prediction

IGNORE = 255


def predictions_b() -> dict[str, np.ndarray]:
    """B: fixes a's false-positive columns 32..35 and breaks a block of b's class-2 rows."""
    preds = {name: pred.copy() for name, (_gt, pred) in truth_and_prediction().items()}
    preds["a"][:, 32:36] = 0           # A says 1 there, the labels say 0: B fixes
    preds["a"][0:6, 0:8] = 2           # A right (1), B wrong with another class than A: breaks
    preds["b"][0:10, 0:20] = 2         # the labels say 2 there, A says 0: B fixes
    preds["b"][30:40, 40:60] = 1       # A right (0): B breaks
    return preds


def write_folder(folder, masks: dict[str, np.ndarray]):
    folder.mkdir()
    for name, mask in masks.items():
        cv2.imwrite(str(folder / f"{name}.png"), mask)
    return folder


def reference_codes(gt, a, b):
    """0 both right, 1 B fixes, 2 B breaks, 3 both wrong same, 4 both wrong different, 5 ignored."""
    codes = np.full(gt.shape, 4, np.uint8)
    codes[(a == gt) & (b == gt)] = 0
    codes[(a != gt) & (b == gt)] = 1
    codes[(a == gt) & (b != gt)] = 2
    codes[(a != gt) & (b != gt) & (a == b)] = 3
    codes[gt == IGNORE] = 5
    return codes


def reference_mean_iou(gt, pred, num_classes=3):
    ious = []
    for k in range(num_classes):
        g, p = (gt == k) & (gt != IGNORE), (pred == k) & (gt != IGNORE)
        union = (g | p).sum()
        if union:
            ious.append((g & p).sum() / union)
    return float(np.mean(ious))


@pytest.fixture
def compared(qtbot, tmp_path):
    data = make_dataset(tmp_path / "data")
    folder_a = write_folder(tmp_path / "pred_a", {n: p for n, (_g, p) in truth_and_prediction().items()})
    folder_b = write_folder(tmp_path / "pred_b", predictions_b())
    window = editing_window(qtbot, data, lambda request: GatedRunner())
    for folder in (folder_a, folder_b):
        with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
            window.open_predictions(str(folder))
    a, b = SourceKey(SourceKind.FOLDER, str(folder_a)), SourceKey(SourceKind.FOLDER, str(folder_b))
    assert window.compare.sources()[:2] == [a, b]
    with qtbot.waitSignal(window.compare.regions_found, timeout=5000):
        window.compare_sources(a, b)
    dock = window.compare_dock
    assert (dock.source_a.currentText(), dock.source_b.currentText()) == ("folder:pred_a", "folder:pred_b")
    titles = {name: title for name, title, _visible, _opacity in window.presenter.layer_rows()}
    assert titles["source_a"] == "Source A: folder:pred_a" and titles["disagreement"] == "Disagreement A vs B"
    return window


def shown_codes(window) -> np.ndarray:
    return window.canvas.layer("disagreement").array


def test_disagreement_layer_equals_the_formula_and_follows_strokes(qtbot, compared):
    window = compared
    gt, pred_a = truth_and_prediction()["a"]
    pred_b = predictions_b()["a"]
    np.testing.assert_array_equal(shown_codes(window), reference_codes(gt, pred_a, pred_b))
    counts = np.bincount(reference_codes(gt, pred_a, pred_b).ravel(), minlength=6)
    dock = window.compare_dock
    assert dock.counts()["b_breaks"] == f"{counts[2]:,}" and dock.counts()["b_fixes"] == f"{counts[1]:,}"
    regions = dock.regions()
    assert [r.area for r in regions] == sorted((r.area for r in regions), reverse=True)
    assert {(r.kind.name, r.area) for r in regions} == {
        ("B_FIXES", 4 * H), ("B_BREAKS", 6 * 8),                        # columns 32..35, the top-left block
        ("BOTH_WRONG_SAME", 4 * H), ("BOTH_WRONG_SAME", 8 * 8)}         # columns 36..39, the class-2 block

    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, Qt.Key.Key_2)
    window.editor.set_brush_radius(3)
    built, codes = window.compare.map, shown_codes(window)
    with qtbot.waitSignal(window.compare.regions_found, timeout=5000):
        drag(qtbot, window.canvas, [(20, 20), (45, 20)])
    # recoded in place from the atoms' boxes, never rebuilt over the image
    assert window.compare.map is built and shown_codes(window) is codes is built.codes
    now = window.document.gt
    assert (now != gt).sum() > 50
    expected = reference_codes(now, pred_a, pred_b)
    np.testing.assert_array_equal(shown_codes(window), expected)
    counts = np.bincount(expected.ravel(), minlength=6)
    assert dock.counts()["both_wrong_different"] == f"{counts[4]:,}"
    assert window.compare.map.counts.tolist() == counts.tolist()

    dock.tabs.setCurrentIndex(0)
    with qtbot.waitSignal(window.compare.regions_found, timeout=5000):
        window.document.undo()
    np.testing.assert_array_equal(shown_codes(window), reference_codes(gt, pred_a, pred_b))
    dock.regions_table.setCurrentCell(0, 0)
    x, y, w, h = dock.regions()[0].bbox
    vx, vy, vw, vh = window.canvas.visible_image_rect()
    assert vx <= x + w / 2 <= vx + vw and vy <= y + h / 2 <= vy + vh


def test_metrics_side_by_side_and_images_b_made_worse_first(qtbot, compared):
    window, dock = compared, compared.compare_dock
    truth = truth_and_prediction()
    preds_b = predictions_b()
    expected = {n: (reference_mean_iou(g, p), reference_mean_iou(g, preds_b[n])) for n, (g, p) in truth.items()}
    rows = dock.image_rows()
    assert [r.name for r in rows] == sorted(expected, key=lambda n: expected[n][1] - expected[n][0])
    for r in rows:
        assert r.a == pytest.approx(expected[r.name][0]) and r.b == pytest.approx(expected[r.name][1])
    table = dock.images_table
    assert table.item(0, 3).text() == f"{rows[0].delta:+.3f}"

    model = window.browser.model
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in (4, 5, 6)] == [
        "mIoU folder:pred_a", "mIoU folder:pred_b", "Δ mIoU (B − A)"]
    for name, (ea, eb) in expected.items():
        row = model._names.index(name)
        assert [model.index(row, c).data() for c in (4, 5, 6)] == [f"{ea:.3f}", f"{eb:.3f}", f"{eb - ea:+.3f}"]
    window.browser.view.sortByColumn(6, Qt.SortOrder.AscendingOrder)
    assert window.browser.visible_names() == [r.name for r in rows]
    review = window.dock("review").widget()
    review.set_order("b_worse")
    assert review.queue() == [r.name for r in rows] and review.rows()[0][0] == rows[0].name

    gt, pred_a = truth["a"]
    dock.scope.setCurrentIndex(0)
    qtbot.waitUntil(lambda: dock.metrics_table.rowCount() == 4)     # redrawn at most every 100 ms
    mean_a, mean_b = expected["a"]
    assert dock.metrics_table.item(0, 3).text() == f"{mean_b - mean_a:+.3f}"
    for k in range(3):
        ia = ((gt == k) & (pred_a == k)).sum() / ((gt == k) | (pred_a == k)).sum()
        ib = ((gt == k) & (preds_b["a"] == k)).sum() / ((gt == k) | (preds_b["a"] == k)).sum() \
            if ((gt == k) | (preds_b["a"] == k)).any() else np.nan
        cell = dock.metrics_table.item(k + 1, 3).text()
        assert cell == ("–" if np.isnan(ia) or np.isnan(ib) else f"{ib - ia:+.3f}")

    with qtbot.waitSignal(window.compare.bootstrap_finished, timeout=20000) as blocker:
        dock.bootstrap_button.click()
    result = blocker.args[0]
    assert result.images == 2 and result.resamples == 1000
    assert "95 % CI" in dock.bootstrap_label.text()
    assert dock.scope.currentIndex() == 1
    lo, hi = result.mean_iou_delta_ci95
    assert dock.metrics_table.item(0, 4).text() == f"[{lo:+.3f}, {hi:+.3f}]"


def test_a_model_run_becomes_a_source_and_the_original_labels_are_one(qtbot, tmp_path):
    window = editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: GatedRunner())
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    model = SourceKey(SourceKind.MODEL, "fake")
    original = SourceKey(SourceKind.LABELS, "original")
    assert window.compare.sources() == [model, original]
    # Paint, then compare the model with the original labels: where the model agrees with the shipped
    # labels and not with the corrected ones, the "original" source is right and the model wrong.
    key(qtbot, window, Qt.Key.Key_B)
    key(qtbot, window, Qt.Key.Key_1)
    window.editor.set_brush_radius(3)
    drag(qtbot, window.canvas, [(35, 5), (35, 25)])
    with qtbot.waitSignal(window.compare.regions_found, timeout=5000):
        window.compare_sources(model, original)
    gt_orig, pred = truth_and_prediction()["a"]
    np.testing.assert_array_equal(shown_codes(window), reference_codes(window.document.gt, pred, gt_orig))
    assert window.dock("compare").isVisible()


def test_swap_in_the_dock_swaps_fixes_and_breaks(qtbot, compared):
    window, dock = compared, compared.compare_dock
    a, b = window.compare.a, window.compare.b
    with qtbot.waitSignal(window.compare.regions_found, timeout=5000):
        dock.swap_button.click()
    assert (window.compare.a, window.compare.b) == (b, a)
    assert (dock.source_a.currentText(), dock.source_b.currentText()) == ("folder:pred_b", "folder:pred_a")
    gt, pred_a = truth_and_prediction()["a"]
    np.testing.assert_array_equal(shown_codes(window), reference_codes(gt, predictions_b()["a"], pred_a))


def test_label_fix_impact_scores_each_model_on_both_label_versions(qtbot, tmp_path):
    from tests.ui.reference import reference_metrics
    from tests.ui.test_dataset_run import correct_and_leave_image_a

    window = editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: GatedRunner())
    saved = correct_and_leave_image_a(qtbot, window)
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_dataset()
    assert window.session.corrected_names() == ["a"]
    dock = window.compare_dock
    with qtbot.waitSignal(window.compare.impact_finished, timeout=10000):
        dock.impact_button.click()
    truth = truth_and_prediction()
    (gt_a, pred_a), (gt_b, pred_b) = truth["a"], truth["b"]
    both = lambda first_gt: reference_metrics(np.concatenate([first_gt, gt_b]),   # noqa: E731
                                              np.concatenate([pred_a, pred_b]), 3)["mean_iou"]
    original, corrected, delta = dock.impact()[SourceKey(SourceKind.MODEL, "fake")]
    assert original == pytest.approx(both(gt_a)) and corrected == pytest.approx(both(saved))
    assert delta == pytest.approx(both(saved) - both(gt_a)) and delta > 0
    assert dock.impact_table.item(0, 3).text() == f"{delta:+.3f}"
    assert dock.impact_note.text().startswith("1 image(s) whose corrected labels differ")


class ShiftedRunner(GatedRunner):
    """A second model: GatedRunner's answer, with class 2 painted over the left 8 columns."""

    def predict(self, image, cancel=None, progress=None):
        prediction = super().predict(image, cancel, progress)
        prediction.mask = prediction.mask.copy()
        prediction.mask[:, :8] = 2
        return prediction


def test_two_models_from_the_model_dock_are_two_sources(qtbot, tmp_path):
    runners = {"fake": GatedRunner(), "second": ShiftedRunner()}
    window = editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: runners[request.spec])
    for spec in ("fake", "second"):
        window.model_dock.select_spec(spec)
        with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
            window.run_on_dataset()
    first, second = SourceKey(SourceKind.MODEL, "fake"), SourceKey(SourceKind.MODEL, "second")
    assert window.compare.sources() == [first, second, SourceKey(SourceKind.LABELS, "original")]
    with qtbot.waitSignal(window.compare.regions_found, timeout=5000):
        window.compare_sources(first, second)
    truth = truth_and_prediction()
    gt, pred = truth["a"]
    shifted = pred.copy()
    shifted[:, :8] = 2
    np.testing.assert_array_equal(shown_codes(window), reference_codes(gt, pred, shifted))
    # the layers per source show each model's own answer
    np.testing.assert_array_equal(window.canvas.layer("source_b").array != window.canvas.layer("source_a").array,
                                  pred != shifted)
    for row in window.compare_dock.image_rows():
        g, p = truth[row.name]
        s = p.copy()
        s[:, :8] = 2
        assert row.delta == pytest.approx(reference_mean_iou(g, s) - reference_mean_iou(g, p))


def test_the_disagreement_layer_renders_the_legend_colours(qtbot, compared):
    from segstudio.core.evaluation.disagreement import Disagreement
    from segstudio.core.evaluation.disagreement_map import DISAGREEMENT_COLORS
    from tests.ui.editing_helpers import rendered_rgb, show_only

    window = compared
    show_only(window.canvas, "disagreement")
    # one pixel of each kind in image a (see predictions_b and the synthetic dataset)
    for (x, y), kind in (((2, 2), Disagreement.B_BREAKS), ((33, 20), Disagreement.B_FIXES),
                         ((37, 20), Disagreement.BOTH_WRONG_SAME)):
        assert rendered_rgb(window.canvas, x, y) == DISAGREEMENT_COLORS[kind][:3]
    legend = window.compare_dock.legend
    assert legend.isVisible() and legend.parentWidget() is window.layer_panel.parentWidget()
