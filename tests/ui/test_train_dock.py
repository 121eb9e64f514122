"""The Train dock runs ``segstudio train`` as a child process: curves, the model selector, crashes."""
from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.ui.train_compare import comparison_lines, install_training
from tests.training.helpers import TINY_UNET, make_dataset
from tests.ui.fakes import GatedRunner, fake_controller
from segstudio.core.evaluation.comparison import SourceKey, SourceKind

TINY = f"--arch-kwargs '{TINY_UNET}' --steps-per-epoch 3 --threads 1"


@pytest.fixture
def runners():
    return {}


@pytest.fixture
def window(open_window, tmp_path, runners):
    def factory(request):
        runners.setdefault(request.spec, GatedRunner(steps=1))
        return runners[request.spec]
    return open_window(fake_controller(factory), make_dataset(tmp_path / "data", count=6), size=(1200, 800),
                       model="fake", device="cpu")


def _dock(window, tmp_path, epochs=2, extra=TINY):
    host = install_training(window)
    dock = host.show()
    dock.model.setCurrentText("new:segstudio.CompactUNet")
    dock.epochs.setValue(epochs)
    dock.crop.setValue(32)
    dock.batch.setValue(2)
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.out.setText(str(tmp_path / "out" / "tiny.pth"))
    dock.extra.setText(extra)
    return host, dock


def test_training_run_fills_the_curves_and_the_model_selector(window, qtbot, tmp_path):
    host, dock = _dock(window, tmp_path)
    assert dock.dataset.text() == str(window.session.dataset.root)
    with qtbot.waitSignal(dock.run_ended, timeout=120000) as ended:
        assert dock.start()
        assert dock.cancel_button.isEnabled() and not dock.start_button.isEnabled()
    outcome, message = ended.args
    assert outcome == "complete", message
    out = str(tmp_path / "out" / "tiny.pth")
    assert window.model_dock.selected_spec() == out          # in the selector, and selected
    arguments = dock.arguments()
    assert arguments[arguments.index("--precision") + 1] == "auto"
    lineage = json.loads((tmp_path / "out" / "tiny.json").read_text())["lineage"]
    assert lineage["precision"] in ("bf16", "fp32")          # what auto chose on this CPU, recorded
    x, y = dock.loss_curve.getData()
    assert len(x) >= 2 and all(v > 0 for v in y)
    mx, my = dock.miou_curve.getData()
    assert list(mx) == [0.0, 1.0, 2.0]                       # the starting model, then each epoch
    card = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert max(my[1:]) == pytest.approx(card["lineage"]["validation"]["mean_iou"])   # the best epoch's
    assert my[0] == pytest.approx(card["lineage"]["parent_validation"]["mean_iou"])
    assert "Training finished" in dock.status.text()
    assert dock.resume_button.isEnabled()
    dock.grab().save(os.environ.get("TRAIN_DOCK_PNG", str(tmp_path / "train_dock.png")))


def test_killing_the_child_mid_epoch_leaves_the_app_up(window, qtbot, tmp_path):
    host, dock = _dock(window, tmp_path, epochs=1000, extra=TINY.replace("--steps-per-epoch 3", "--steps-per-epoch 40"))
    seen = []
    dock.process.event_received.connect(lambda e: seen.append(e["event"]))
    dock.start()
    # after the first epoch's checkpoint, wait for a step of the next epoch, then kill it (as the OOM killer would)
    qtbot.waitUntil(lambda: "checkpoint" in seen and seen[-1] == "step" and seen.count("step") > seen.index("checkpoint"),
                    timeout=120000)
    with qtbot.waitSignal(dock.run_ended, timeout=30000) as ended:
        os.kill(dock.process.pid(), signal.SIGKILL)
    outcome, message = ended.args
    assert outcome == "crashed" and "killed or crashed" in message and "segstudio itself is unaffected" in message
    assert "best model so far is kept" in message
    qtbot.waitUntil(lambda: any(isinstance(w, QMessageBox) and w.isVisible() and "killed" in w.text()
                                for w in QApplication.topLevelWidgets()))
    assert window.isVisible() and dock.resume_button.isEnabled()
    state = torch.load(tmp_path / "out" / "tiny.last.ckpt", weights_only=True)
    assert state["epoch"] >= 1 and "model" in state
    torch.load(tmp_path / "out" / "tiny.pth", weights_only=True)
    # resume carries on from that checkpoint
    with qtbot.waitSignal(dock.run_ended, timeout=120000) as ended:
        dock.epochs.setValue(state["epoch"] + 1)
        assert dock.resume()
    assert ended.args[0] == "complete", ended.args[1]
    assert torch.load(tmp_path / "out" / "tiny.last.ckpt", weights_only=True)["epoch"] == state["epoch"] + 1


def test_a_model_without_architecture_fails_with_its_reason(window, qtbot, tmp_path):
    host, dock = _dock(window, tmp_path)
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"\x08\x07")
    dock.model.setCurrentText(str(graph))
    with qtbot.waitSignal(dock.run_ended, timeout=60000) as ended:
        dock.start()
    assert ended.args[0] == "failed" and "not trainable: needs an architecture" in ended.args[1]
    assert window.isVisible()


def test_compare_with_parent_runs_both_models_on_the_validation_images(window, qtbot, tmp_path, runners):
    host, dock = _dock(window, tmp_path)
    parent = tmp_path / "out" / "parent.pth"
    dock.out.setText(str(parent))
    with qtbot.waitSignal(dock.run_ended, timeout=120000):
        dock.start()
    dock.model.setCurrentText(str(parent))
    dock.out.setText(str(tmp_path / "out" / "child.pth"))
    dock.extra.setText("--steps-per-epoch 3 --threads 1")
    with qtbot.waitSignal(dock.run_ended, timeout=120000) as ended:
        dock.start()
    assert ended.args[0] == "complete", ended.args[1]
    child = str(tmp_path / "out" / "child.pth")
    card = json.loads((tmp_path / "out" / "child.json").read_text())
    with qtbot.waitSignal(window.controller.job_ended, timeout=10000):
        with qtbot.waitSignal(window.controller.job_ended, timeout=10000):
            dock.compare_button.click()
    val = card["lineage"]["validation_images"]
    names = window.session.names
    assert [names[i] for i in runners[str(parent)].dataset_indices] == val
    assert [names[i] for i in runners[child].dataset_indices] == val
    assert window.model_dock.selected_spec() == child
    # The A-vs-B comparison is open on parent (A) against the fine-tuned child (B).
    assert (window.compare.a, window.compare.b) == (SourceKey(SourceKind.MODEL, str(parent)),
                                                    SourceKey(SourceKind.MODEL, child))
    assert dock.status.text().startswith("Validation IoU, parent → new")
    assert comparison_lines(card)[0].startswith("mean IoU: ")


def test_models_trained_earlier_for_the_dataset_join_the_selector(open_window, tmp_path):
    data = make_dataset(tmp_path / "data2", count=3)
    models = data / ".segstudio" / "models"
    models.mkdir(parents=True)
    (models / "tiny-v001.pth").write_bytes(b"")
    (models / "tiny-v001.json").write_text("{}")
    (models / "tiny-v001.last.ckpt").write_bytes(b"")
    (models / "orphan.pth").write_bytes(b"")          # no card: not one of ours
    window = open_window(fake_controller(lambda request: GatedRunner()), None, size=(900, 600))
    install_training(window)
    assert window.open_path(str(data))
    specs = [window.model_dock.models.item(r).data(256) for r in range(window.model_dock.models.count())]
    assert str(models / "tiny-v001.pth") in specs and str(models / "orphan.pth") not in specs


def test_closing_the_window_stops_a_running_child_quietly(window, qtbot, tmp_path):
    host, dock = _dock(window, tmp_path, epochs=1000)
    started = []
    dock.process.event_received.connect(lambda e: started.append(e["event"]))
    errors = []
    window.errors_shown.connect(errors.append)
    dock.start()
    qtbot.waitUntil(lambda: "start" in started, timeout=120000)
    pid = dock.process.pid()
    window.close()
    assert not dock.process.is_running() and errors == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
