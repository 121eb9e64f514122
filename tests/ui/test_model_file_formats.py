"""Loading .pt2 and ONNX model files in the window, and the input size asked by the load dialog
(issue 11, items 1, 2 and 4): a model that fails on the small test input says, in the window, to set
the input size in the card or the dialog, not a command-line flag."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from segstudio.inference import model_trust
from segstudio.inference.model_file import InputSizeNeeded
from segstudio.ui.model_dock import ModelDock, ModelFormDialog
from segstudio.ui.worker import InferenceController

from tests.ui.synthetic import make_dataset


@pytest.fixture(autouse=True)
def own_trust_store(tmp_path, monkeypatch):
    monkeypatch.setattr(model_trust, "default_trust_file", lambda: tmp_path / "trusted_models.json")


@pytest.fixture
def dock(qtbot):
    widget = ModelDock()
    qtbot.addWidget(widget)
    return widget


def test_the_load_dialog_asks_for_an_input_size(qtbot, tmp_path):
    form = ModelFormDialog(str(tmp_path / "net.onnx"))
    qtbot.addWidget(form)
    form.classes.setText("background, cell")
    form.input_size.setText("512 x 384")
    assert form.overrides()["input_size"] == (512, 384)
    form.input_size.setText("")
    assert "input_size" not in form.overrides()
    form.input_size.setText("512 x")
    with pytest.raises(ValueError, match="width x height"):
        form.overrides()


def test_pt2_and_onnx_files_are_offered_and_a_pt2_asks_for_trust(dock, tmp_path, monkeypatch):
    program = tmp_path / "net.pt2"
    with zipfile.ZipFile(program, "w") as archive:   # what the trust check sees of a .pt2
        archive.writestr("net/models/model.json", "{}")
        archive.writestr("net/archive_format", "pt2")
    program.with_suffix(".json").write_text(json.dumps({"classes": ["a", "b"]}))
    offered = []

    def choose(parent, title, folder, filters):
        offered.append(filters)
        return str(program), filters

    monkeypatch.setattr(QFileDialog, "getOpenFileName", choose)
    dock.choose_model_file()
    assert "*.pt2" in offered[0] and "*.onnx" in offered[0]
    assert dock.selected_spec() == str(program)
    asked = []
    dock.trust_asker = lambda path: asked.append(path) or False
    assert dock.request_to_run() is None and asked == [program]
    assert "contains code" in dock.info.text()


def _fixed_size_model(path):
    import torch
    from torch import nn

    class NeedsThirtyTwo(nn.Module):
        def forward(self, x):
            y = x.reshape(x.shape[0], 3, 32, 32)[:, :2]
            return y

    torch.jit.trace(NeedsThirtyTwo(), torch.zeros(1, 3, 32, 32)).save(str(path))
    model_trust.trust_file(path)


def _error_text(window) -> str:
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.parent() is window]
    return boxes[-1].text() if boxes else ""


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_window_says_to_set_the_input_size_in_the_card_or_dialog(qtbot, open_window, tmp_path):
    model = tmp_path / "fixed.pt"
    _fixed_size_model(model)
    controller = InferenceController(gpu_check=dict)
    window = open_window(controller, make_dataset(tmp_path / "data"), model=str(model), device="cpu")
    with qtbot.waitSignal(window.errors_shown, timeout=30000):
        window.run_on_image()
    text = _error_text(window)
    assert "failed on a 64x64 test input" in text and InputSizeNeeded.WINDOW_HINT in text
    assert "--input-size" not in text
    qtbot.waitUntil(lambda: window.model_dock.run_image_button.isEnabled())
    # The answer the dialog would give: the same file with its input size runs.
    window.model_dock.add_model(str(model), "fixed.pt", overrides={"input_size": (32, 32)})
    window.model_dock.select_spec(str(model))
    with qtbot.waitSignal(window.controller.finished, timeout=30000):
        window.run_on_image()
    qtbot.waitUntil(lambda: window.document.pred is not None)
    assert window.document.pred.shape == window.document.gt.shape
    assert np.isin(window.document.pred, [0, 1]).all()
