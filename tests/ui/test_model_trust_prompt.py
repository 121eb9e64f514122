"""A TorchScript model file is code: the window asks once per file content before running it, on
the GUI thread, before any job is submitted (issue 10, item 5; ADR 0016). No torch here: the
check reads the zip listing and the hash only."""
from __future__ import annotations

import zipfile

import pytest

from segstudio.inference import model_trust
from segstudio.inference.model_trust import needs_trust
from segstudio.ui.model_dock import ModelDock

from tests.ui.fakes import GatedRunner, fake_controller
from tests.ui.synthetic import make_dataset


class FakeAsker:
    def __init__(self, answer: bool):
        self.answer = answer
        self.asked = []

    def __call__(self, path) -> bool:
        self.asked.append(path)
        return self.answer


@pytest.fixture(autouse=True)
def own_trust_store(tmp_path, monkeypatch):
    monkeypatch.setattr(model_trust, "default_trust_file", lambda: tmp_path / "trusted_models.json")


@pytest.fixture
def scripted(tmp_path):
    """What the trust check sees of a TorchScript archive (named .pth: content decides, not name)."""
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/code/__torch__.py", "class Net(Module):\n  pass\n")
        archive.writestr("model/constants.pkl", b"")
    return path


@pytest.fixture
def dock(qtbot):
    widget = ModelDock()
    qtbot.addWidget(widget)
    return widget


def test_declining_runs_nothing_and_accepting_is_remembered(dock, scripted):
    dock.select_spec(str(scripted))
    dock.trust_asker = FakeAsker(False)
    assert dock.request_to_run() is None
    assert dock.trust_asker.asked == [scripted]
    assert "contains code" in dock.info.text()
    assert needs_trust(scripted) == scripted

    dock.trust_asker = FakeAsker(True)
    assert dock.request_to_run().spec == str(scripted)
    assert dock.trust_asker.asked == [scripted]
    dock.trust_asker = FakeAsker(False)
    assert dock.request_to_run().spec == str(scripted)   # once per file: not asked again
    assert dock.trust_asker.asked == []


def test_data_files_and_registry_names_never_ask(dock, tmp_path):
    weights = tmp_path / "net.pth"
    weights.write_bytes(b"\x80\x02}q\x00.")   # a pickle, not a zip: a state dict is data
    dock.trust_asker = FakeAsker(False)
    for spec in (str(weights), "demo", "torchvision:fcn_resnet50"):
        dock.select_spec(spec)
        assert dock.request_to_run().spec == spec
    assert dock.trust_asker.asked == []


def test_window_submits_no_job_until_the_user_trusts_the_file(qtbot, open_window, tmp_path, scripted):
    runner = GatedRunner()
    window = open_window(fake_controller(lambda request: runner), make_dataset(tmp_path / "data"),
                         model=str(scripted), device="cpu")
    window.model_dock.trust_asker = FakeAsker(False)
    assert window.run_on_image() is None and window.run_on_dataset() is None
    assert not window.controller.busy
    window.model_dock.trust_asker = FakeAsker(True)
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        assert window.run_on_image() is not None
    assert window.model_dock.trust_asker.asked == [scripted]
