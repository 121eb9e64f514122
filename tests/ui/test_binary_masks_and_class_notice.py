"""Binary masks ask once per dataset (the dialog's exec is monkeypatched); a model or predictions
folder whose class table differs from the dataset's raises a visible warning."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PySide6.QtWidgets import QDialog

from segstudio.core.io.classes import ClassTable
from segstudio.ui import settings as keys
from segstudio.ui.binary_mapping import BinaryMappingDialog
from tests.ui.fakes import GatedRunner, fake_controller
from tests.ui.synthetic import H, W, make_dataset, truth_and_prediction


def make_binary_dataset(root):
    """ISBI layout: image/ + label/, labels in {0, 255}."""
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    masks = {}
    for i, name in enumerate(("c1", "c2")):
        mask = np.zeros((H, W), np.uint8)
        mask[5 + i:30, 10:40 + i] = 255
        masks[name] = mask
        cv2.imwrite(str(root / "image" / f"{name}.png"), np.full((H, W, 3), 60, np.uint8))
        cv2.imwrite(str(root / "label" / f"{name}.png"), mask)
    return root, masks


class DialogAnswers:
    """Stands in for the user: records each dialog shown, picks 255's class, accepts or cancels."""

    def __init__(self, monkeypatch, high_index=None, accept=True):
        self.shown: list[BinaryMappingDialog] = []
        answers = self

        def exec_(dialog):
            answers.shown.append(dialog)
            if high_index is not None:
                dialog.high.setCurrentIndex(high_index)
            return QDialog.DialogCode.Accepted if accept else QDialog.DialogCode.Rejected

        monkeypatch.setattr(BinaryMappingDialog, "exec", exec_)


def test_dialog_suggests_background_and_class_1(qtbot, tmp_path):
    dialog = BinaryMappingDialog("the dataset x", "a.png", ClassTable.voc())
    qtbot.addWidget(dialog)
    assert dialog.mapping() == {0: 0, 255: 1}
    dialog.high.setCurrentIndex(dialog.high.count() - 1)       # the last choice: ignore
    assert dialog.mapping() == {0: 0, 255: 255}
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.grab().save(str(tmp_path / "binary_dialog.png"))


def test_opening_binary_masks_asks_once_and_remembers(qtbot, open_window, tmp_path, monkeypatch):
    root, masks = make_binary_dataset(tmp_path / "isbi")
    answers = DialogAnswers(monkeypatch)
    window = open_window(path=root)
    assert len(answers.shown) == 1
    assert window.session is not None and window.session.root == root
    np.testing.assert_array_equal(window.document.gt, (masks["c1"] == 255).astype(np.uint8))
    assert keys.binary_mapping(window.settings, str(root)) == {0: 0, 255: 1}
    assert window.open_path(str(root))                           # reopening: remembered, not asked
    assert len(answers.shown) == 1
    assert window.go_to(1)
    np.testing.assert_array_equal(window.document.gt, (masks["c2"] == 255).astype(np.uint8))


def test_255_as_ignore(qtbot, open_window, tmp_path, monkeypatch):
    root, masks = make_binary_dataset(tmp_path / "isbi")
    DialogAnswers(monkeypatch, high_index=21)                   # VOC's 21 classes, then "ignore"
    window = open_window(path=root)
    np.testing.assert_array_equal(window.document.gt, masks["c1"])


def test_cancelling_the_dialog_opens_without_ground_truth_and_asks_again(qtbot, open_window, tmp_path,
                                                                         monkeypatch):
    root, _ = make_binary_dataset(tmp_path / "isbi")
    answers = DialogAnswers(monkeypatch, accept=False)
    window = open_window(path=root)
    assert len(answers.shown) == 1 and window.session.root == root
    assert window.document.gt is None
    message = window.statusBar().currentMessage()
    assert "c1.png" in message and "choose how to read 0 and 255 in the dialog" in message
    assert keys.binary_mapping(window.settings, str(root)) is None
    assert window.open_path(str(root)) and len(answers.shown) == 2


def test_binary_prediction_folder_asks_and_loads(qtbot, open_window, tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "data")
    answers = DialogAnswers(monkeypatch)
    window = open_window(fake_controller(lambda request: GatedRunner()), root)
    assert not answers.shown                                     # the dataset's masks are ids
    preds = tmp_path / "preds"
    preds.mkdir()
    gt_a = truth_and_prediction()["a"][0]
    for name in ("a", "b"):
        cv2.imwrite(str(preds / f"{name}.png"), (gt_a * 255).astype(np.uint8))
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.open_predictions(str(preds))
    assert len(answers.shown) == 1
    qtbot.waitUntil(lambda: window.document.pred is not None)
    np.testing.assert_array_equal(window.document.pred, gt_a)
    assert window.session.stats["a"].error_pixels == 0


def test_model_with_another_class_table_warns_visibly(qtbot, open_window, tmp_path):
    runner = GatedRunner()
    runner.entry.class_table = ClassTable.voc()                  # 21 classes on a 3-class dataset
    window = open_window(fake_controller(lambda request: runner), make_dataset(tmp_path / "data"),
                         model="fake", device="cpu")
    notice = window.class_notice
    assert not notice.label.isVisible() and not window.metrics_panel.warning.isVisible()
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(notice.label.isVisible)
    assert "3 vs 21 classes" in notice.label.text()
    warning = window.metrics_panel.warning
    assert warning.isVisible()
    assert "'synthetic' has 3 classes" in warning.text() and "has 21 classes" in warning.text()
    assert "class 1 is 'cell' vs 'aeroplane'" in warning.text()
    window.grab().save(str(tmp_path / "class_notice.png"))


def test_model_with_the_same_classes_says_nothing(qtbot, open_window, tmp_path):
    from tests.ui.synthetic import TABLE

    runner = GatedRunner()
    runner.entry.class_table = TABLE
    window = open_window(fake_controller(lambda request: runner), make_dataset(tmp_path / "data"),
                         model="fake", device="cpu")
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(lambda: window.document.pred is not None)
    assert window.class_notice.line is None and not window.metrics_panel.warning.isVisible()


@pytest.mark.parametrize("names, expect", [("background\ncell\ndebris\n", False),
                                           ("background\ncell\n", True)])
def test_predictions_folder_class_table_is_compared(qtbot, open_window, tmp_path, names, expect):
    window = open_window(fake_controller(lambda request: GatedRunner()), make_dataset(tmp_path / "data"))
    preds = tmp_path / "preds"
    preds.mkdir()
    cv2.imwrite(str(preds / "a.png"), truth_and_prediction()["a"][1])
    (preds / "class_names.txt").write_text(names)
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.open_predictions(str(preds))
    assert window.metrics_panel.warning.isVisible() is expect
    assert window.class_notice.label.isVisible() is expect
