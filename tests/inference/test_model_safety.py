"""TorchScript files are code: inspected before they load or run, and run only when trusted
(issue 10, item 5; ADR 0016). State dicts are data and never ask."""
from __future__ import annotations

import shutil
import warnings
from typing import Tuple

import pytest
import torch
from torch import nn

from segstudio import cli
from segstudio.core.errors import CheckpointError
from segstudio.inference import model_trust, script_guard
from segstudio.inference.model_trust import TrustStore, UntrustedModelError, needs_trust, trust_file
from segstudio.inference.registry import resolve_model
from tests.inference.helpers import save_tiny, save_torchscript, tiny_net


@pytest.fixture(autouse=True)
def own_trust_store(tmp_path, monkeypatch):
    """Each test starts with nothing trusted (TorchScript saves of equal modules are equal bytes)."""
    monkeypatch.setattr(model_trust, "default_trust_file", lambda: tmp_path / "trusted_models.json")


class WritesAFile(nn.Module):
    """What the issue describes: a forward pass that maps a file with ``shared=True`` and writes it."""

    def __init__(self, target: str, hidden: bool = False):
        super().__init__()
        self.target = target
        self.hidden = hidden
        self.head = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        if self.hidden:   # inside a block, as a reviewer skimming forward would not see it
            return self.head(x) + _touch(self.target)
        mapped = torch.from_file(self.target, shared=True, size=16, dtype=torch.uint8)
        mapped.fill_(65)
        return self.head(x) + mapped[:1].float().sum() * 0


def _touch(target: str) -> torch.Tensor:
    mapped = torch.from_file(target, shared=True, size=16, dtype=torch.uint8)
    mapped.fill_(66)
    return mapped[:1].float().sum() * 0


class SetsStateFromAFile(nn.Module):
    """Code that ``torch.jit.load`` itself runs: a scripted ``__setstate__``."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.count = 1

    @torch.jit.export
    def __getstate__(self) -> Tuple[int, str, bool]:
        return (self.count, self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[int, str, bool]) -> None:
        mapped = torch.from_file(state[1], shared=True, size=4, dtype=torch.uint8)
        self.count = state[0] + int(mapped.fill_(67).sum().item()) * 0
        self.target = state[1]
        self.training = state[2]

    def forward(self, x):
        return x


def _script(net: nn.Module, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(net).save(str(path))


@pytest.fixture
def evil(tmp_path):
    """The crafted model as ``.pt`` and the same bytes as ``.pth``, both trusted, and its target."""
    target = tmp_path / "bashrc"
    pt = tmp_path / "evil.pt"
    _script(WritesAFile(str(target)), pt)
    pth = tmp_path / "evil.pth"
    shutil.copyfile(pt, pth)
    trust_file(pt)    # trust never overrides the inspection
    return pt, pth, target


def test_the_crafted_model_really_writes_its_file_when_run_unguarded(tmp_path):
    # The threat is real: plain torch.jit.load + one forward pass creates and writes the target.
    target = tmp_path / "written"
    path = tmp_path / "evil.pt"
    _script(WritesAFile(str(target)), path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(path))(torch.zeros(1, 3, 4, 4))
    assert target.read_bytes() == b"A" * 16


@pytest.mark.parametrize("which", [0, 1], ids=["pt", "renamed-pth"])
def test_a_model_that_touches_files_is_refused_before_any_forward(evil, which):
    path, target = evil[which], evil[2]
    with pytest.raises(CheckpointError) as raised:
        resolve_model(path)
    assert not isinstance(raised.value, UntrustedModelError)
    assert "aten::from_file" in raised.value.reason and raised.value.path == str(path)
    assert not target.exists()


def test_an_op_inside_a_branch_of_a_called_function_is_found(tmp_path):
    target = tmp_path / "bashrc"
    path = tmp_path / "hidden.pt"
    _script(WritesAFile(str(target), hidden=True), path)
    with pytest.raises(CheckpointError, match=r"aten::from_file in forward"):
        script_guard.load_inspected(path.read_bytes(), path)
    assert not target.exists()


def test_a_scripted_setstate_is_refused_before_loading(tmp_path):
    target = tmp_path / "bashrc"
    path = tmp_path / "setstate.pt"
    _script(SetsStateFromAFile(str(target)), path)
    trust_file(path)
    with pytest.raises(CheckpointError, match="defines __setstate__"):
        resolve_model(path)
    assert not target.exists()


def test_an_op_of_an_unknown_namespace_is_refused(tmp_path):
    library = torch.library.Library("segstudio_test", "DEF")
    library.define("touch(Tensor x) -> Tensor")
    library.impl("touch", lambda x: x, "CompositeExplicitAutograd")

    class CallsCustomOp(nn.Module):
        def forward(self, x):
            return torch.ops.segstudio_test.touch(x)

    path = tmp_path / "custom.pt"
    _script(CallsCustomOp(), path)
    with pytest.raises(CheckpointError, match=r"segstudio_test::touch"):
        script_guard.load_inspected(path.read_bytes(), path)


def test_a_benign_model_needs_trust_then_runs(tmp_path):
    path = tmp_path / "net.pt"
    save_torchscript(tiny_net(3), path, trusted=False)
    assert needs_trust(path) == path
    with pytest.raises(UntrustedModelError, match="--trust-model"):
        resolve_model(path)
    trust_file(path)
    assert needs_trust(path) is None
    renamed = tmp_path / "renamed.pth"
    shutil.copyfile(path, renamed)
    assert needs_trust(renamed) is None     # trust follows the content, not the name
    entry = resolve_model(renamed)
    assert entry.class_table.num_classes == 3
    assert tuple(entry.load("cpu")(torch.zeros(1, 3, 8, 8)).shape) == (1, 3, 8, 8)


def test_an_edited_file_is_asked_about_again(tmp_path):
    path = tmp_path / "net.pt"
    save_torchscript(tiny_net(3), path)
    with open(path, "ab") as handle:
        handle.write(b"\0")
    assert needs_trust(path) == path


def test_state_dicts_are_data_and_never_ask(tmp_path):
    path = tmp_path / "net.pth"
    save_tiny(path)
    assert needs_trust(path) is None
    assert resolve_model(path).class_table.num_classes == 3


def test_trust_store_round_trip_and_a_broken_file_trusts_nothing(tmp_path):
    store = TrustStore(tmp_path / "deep" / "trusted.json")
    assert not store.is_trusted("ab" * 32)
    store.trust("ab" * 32, "net.pt")
    assert TrustStore(store.path).is_trusted("ab" * 32)
    store.path.write_text("{not json")
    assert not store.is_trusted("ab" * 32)


def _predict(tmp_path, model, *extra):
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    cv2.imwrite(str(images / "a.png"), np.zeros((16, 16, 3), np.uint8))
    return cli.main(["predict", "--model", str(model), "--images", str(images), "--out", str(tmp_path / "out"),
                     "--quiet", *extra])


def test_cli_refuses_an_untrusted_model_with_exit_2_then_trusts_when_told(tmp_path, capsys):
    path = tmp_path / "net.pt"
    save_torchscript(tiny_net(3), path, trusted=False)
    assert _predict(tmp_path, path) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "contains code" in lines[0] and "--trust-model" in lines[0]
    assert _predict(tmp_path, path, "--trust-model") == 0
    assert (tmp_path / "out" / "a.png").is_file()
    assert needs_trust(path) is None
    assert _predict(tmp_path, path) == 0     # remembered


def test_cli_trust_model_does_not_run_a_refused_model(tmp_path, capsys):
    target = tmp_path / "bashrc"
    path = tmp_path / "evil.pth"
    _script(WritesAFile(str(target)), path)
    assert _predict(tmp_path, path, "--trust-model") == 2
    assert "aten::from_file" in capsys.readouterr().err
    assert not target.exists()
