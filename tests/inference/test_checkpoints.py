"""Safe checkpoint reading: unsafe pickles refused before anything runs, junk files named."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from segstudio.core.errors import CheckpointError
from segstudio.inference import checkpoints
from segstudio.inference.registry import resolve_model
from tests.inference.helpers import TINY, save_tiny, save_torchscript, tiny_net, write_card


class _Payload:
    """Unpickling this would create ``marker`` (it never must)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned.txt"
    bad = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Payload(marker)}, bad)
    with pytest.raises(CheckpointError) as err:
        resolve_model(bad)
    assert err.value.path == str(bad)
    assert "refused" in err.value.reason and "io.open" in err.value.reason
    assert not marker.exists()


def test_plain_pickle_with_os_system_is_refused(tmp_path):
    marker = tmp_path / "created-by-system"
    bad = tmp_path / "evil2.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(CheckpointError, match="refused"):
        checkpoints.safe_load(bad)
    assert not marker.exists()


def test_pickled_whole_module_is_refused_with_advice(tmp_path):
    path = tmp_path / "whole.pth"
    torch.save(tiny_net(), path)
    with pytest.raises(CheckpointError) as err:
        checkpoints.load_state_dict_file(path)
    assert "state_dict()" in err.value.reason and "TinyNet" in err.value.reason


@pytest.mark.parametrize(("content", "detected"), [
    (b"hello, I am a text file\n", "a text file"),
    (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "unknown format"),
    (b"", "an empty file")], ids=["text", "random", "empty"])
def test_non_model_files_raise_checkpoint_error_naming_the_file(tmp_path, content, detected):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    assert err.value.path == str(path)
    assert detected in err.value.reason and "segstudio reads" in err.value.reason


def test_missing_file_and_unknown_spec(tmp_path):
    with pytest.raises(CheckpointError, match="not a registry name"):
        resolve_model(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="unknown architecture"):
        resolve_model("torchvision:resnet_without_head")


@pytest.mark.parametrize("wrap,prefix", [(None, ""), ("state_dict", ""), ("model", ""), (None, "module."),
                                         ("state_dict", "module."), (None, "_orig_mod.module.")])
def test_wrapped_and_prefixed_state_dicts_load(tmp_path, wrap, prefix):
    path = tmp_path / "net.pth"
    net = save_tiny(path, num_classes=4, wrap=wrap, prefix=prefix)
    entry = resolve_model(path)
    model = entry.load("cpu")
    for key, value in net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    assert entry.class_table.names == ["c0", "c1", "c2", "c3"]


def test_lightning_style_model_prefix_is_aligned(tmp_path):
    path = tmp_path / "lightning.ckpt"
    net = tiny_net(3)
    torch.save({"state_dict": {"model." + k: v for k, v in net.state_dict().items()},
                "optimizer_states": []}, path)
    write_card(path, architecture=TINY, classes=["a", "b", "c"])
    model = resolve_model(path).load("cpu")
    torch.testing.assert_close(model.head.weight, net.head.weight)


def test_wrong_class_count_names_file_and_counts(tmp_path):
    path = tmp_path / "net.pth"
    save_tiny(path, num_classes=3)
    write_card(path, architecture=TINY, classes=["a", "b", "c", "d", "e"])
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    assert err.value.path == str(path)
    assert "5 classes" in err.value.reason and "head.weight" in err.value.reason and "3" in err.value.reason


def test_shape_mismatch_is_reported(tmp_path):
    path = tmp_path / "net.pth"
    state = tiny_net(3).state_dict()
    state["body.weight"] = torch.zeros(8, 3, 5, 5)
    torch.save(state, path)
    write_card(path, architecture=TINY)
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    assert "body.weight (8, 3, 5, 5) vs expected (8, 3, 3, 3)" in err.value.reason


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    path = tmp_path / "net.pth"
    state = tiny_net(3).state_dict()
    del state["body.bias"]
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, path)
    write_card(path, architecture=TINY)
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    assert "missing key(s): body.bias" in err.value.reason
    assert "unexpected key(s): extra.weight" in err.value.reason


def test_state_dict_without_architecture_that_fits_nothing(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save(tiny_net(3).state_dict(), path)
    with pytest.raises(CheckpointError, match="fits no known architecture"):
        resolve_model(path)


def test_checkpoint_without_tensors(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="no state dict found"):
        resolve_model(path)


def test_torchscript_detection(tmp_path):
    scripted = tmp_path / "net.pt"
    save_torchscript(tiny_net(3), scripted)
    plain = tmp_path / "plain.pt"
    torch.save(tiny_net(3).state_dict(), plain)
    assert checkpoints.is_torchscript(scripted)
    assert not checkpoints.is_torchscript(plain)
    names = zipfile.ZipFile(scripted).namelist()
    assert any(n.endswith("constants.pkl") for n in names)


def test_bad_model_card_is_named(tmp_path):
    path = tmp_path / "net.pth"
    save_tiny(path)
    card = path.with_suffix(".json")
    card.write_text('{"architecture": "tests.TinyNet", "mean": [123.7, 116.3, 103.5]}')
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    assert err.value.path == str(card) and "0-255" in err.value.reason
    card.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        resolve_model(path)
