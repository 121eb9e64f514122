"""Model dock: device choice from the GPU report, model files with and without a card, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox

from segstudio.core.errors import CheckpointError
from segstudio.ui.model_dock import ModelDock, ModelFormDialog, format_duration
from segstudio.ui.worker import InferenceController, ModelRequest

from tests.ui.synthetic import make_dataset


@pytest.fixture
def dock(qtbot):
    widget = ModelDock()
    qtbot.addWidget(widget)
    return widget


def test_cuda_choice_shows_the_gpu_and_its_free_memory(dock):
    dock.set_gpu_report({"cuda_available": True, "device_name": "NVIDIA H100", "memory_free": 70 * 2**30})
    index = dock.device.findData("cuda")
    assert dock.device.itemText(index) == "CUDA — NVIDIA H100, 70.0 GiB free"
    assert dock.device.model().item(index).isEnabled()


def test_cuda_choice_disabled_without_a_gpu(dock):
    dock.set_device("cuda")
    dock.set_gpu_report({"cuda_available": False})
    assert not dock.device.model().item(dock.device.findData("cuda")).isEnabled()
    assert dock.device.currentData() == "auto"


def test_mps_choice_only_where_apple_gpu_is_present(dock):
    index = dock.device.findData("mps")
    assert dock.device.view().isRowHidden(index)
    dock.set_gpu_report({"cuda_available": False, "mps_available": True})
    assert not dock.device.view().isRowHidden(index) and dock.device.model().item(index).isEnabled()
    dock.set_device("mps")
    dock.set_gpu_report({"cuda_available": False, "mps_available": False})
    assert dock.device.view().isRowHidden(index) and dock.device.currentData() == "auto"


def test_registry_entries_and_selection(dock):
    class Entry:
        def __init__(self, name):
            self.name, self.description = name, f"about {name}"

    dock.select_spec("demo")
    dock.set_models([Entry("demo"), Entry("torchvision:fcn_resnet50"), Entry("smp:Unet")])
    assert dock.models.count() == 3
    dock.set_device("cpu")
    assert dock.selected_request() == ModelRequest("demo", "cpu")


def test_model_file_without_card_asks_for_classes(dock, tmp_path, monkeypatch):
    model = tmp_path / "net.pt"
    model.write_bytes(b"PK\x03\x04weights")   # a zip, as torch.save writes
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(model), ""))

    def answer(form: ModelFormDialog):
        form.classes.setText("background, road, car")
        form.channel_order.setCurrentText("BGR")
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ModelFormDialog, "exec", answer)
    dock.load_file_button.click()
    request = dock.selected_request()
    assert request.spec == str(model)
    overrides = dict(request.overrides)
    assert overrides["classes"] == ["background", "road", "car"]
    assert overrides["channel_order"] == "BGR"
    assert overrides["mean"] == (0.485, 0.456, 0.406)


def test_model_file_with_card_needs_no_form(dock, tmp_path, monkeypatch):
    model = tmp_path / "net.pt"
    model.write_bytes(b"PK\x03\x04weights")   # a zip, as torch.save writes
    (tmp_path / "net.json").write_text(json.dumps({"classes": ["a", "b"]}))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(model), ""))
    monkeypatch.setattr(ModelFormDialog, "exec", lambda form: pytest.fail("form shown"))
    dock.load_file_button.click()
    assert dock.selected_request().overrides == ()


def test_progress_text_has_elapsed_and_eta(dock):
    dock.set_busy(True)
    dock.set_progress(1, 4, 10.0)
    assert dock.timing.text() == "1/4 · 0:10 elapsed, about 0:30 left"
    assert format_duration(3725) == "1:02:05"


def test_a_model_that_fails_to_load_shows_why_and_the_app_stays_up(qtbot, open_window, tmp_path):
    def broken(request):
        raise CheckpointError(request.spec, "unsafe pickle: refusing to load")

    controller = InferenceController(runner_factory=broken, gpu_check=dict)
    window = open_window(controller, make_dataset(tmp_path / "data"), model="/models/bad.pt")
    with qtbot.waitSignal(window.errors_shown, timeout=5000):
        window.run_on_image()
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.parent() is window]
    assert boxes and "/models/bad.pt: unsafe pickle: refusing to load" in boxes[-1].text()
    qtbot.waitUntil(lambda: window.model_dock.run_image_button.isEnabled())
    assert window.document.pred is None and np.any(window.document.gt)


def test_the_gpu_check_waits_until_the_device_list_is_opened(qtbot, open_window, tmp_path):
    controller = InferenceController(runner_factory=lambda request: None, gpu_check=lambda: {"cuda_available": False})
    window = open_window(controller, make_dataset(tmp_path / "data"), device="cpu")
    assert window.gpu_report is None and window.model_dock.models.count() > 1   # listed without torch
    combo = window.model_dock.device
    with qtbot.waitSignal(controller.gpu_checked, timeout=5000):
        combo.showPopup()
    combo.hidePopup()
    assert window.gpu_report == {"cuda_available": False}
    assert combo.itemText(combo.findData("cuda")) == "CUDA (not available)"
