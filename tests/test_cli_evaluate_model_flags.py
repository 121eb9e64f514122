"""``segstudio evaluate --model`` takes predict's preprocessing flags (issue 11, item 4)."""
from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from segstudio.cli import main
from segstudio.inference import model_trust
from segstudio.inference.model_trust import trust_file


@pytest.fixture(autouse=True)
def own_trust_store(tmp_path, monkeypatch):
    monkeypatch.setattr(model_trust, "default_trust_file", lambda: tmp_path / "trusted_models.json")


class RedAboveZero(nn.Module):
    """Class 1 where the normalised red channel is above 0; only works on 32 x 32 input."""

    def forward(self, x):
        red = x.reshape(x.shape[0], 3, 32, 32)[:, :1]
        return torch.cat([torch.zeros_like(red), red], dim=1)


@pytest.fixture
def setup(tmp_path):
    """A 40 x 48 image of red 100 (0.392 in 0-1 units) whose ground truth is class 1 everywhere."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "class_names.txt").write_text("background\nred\n")
    image = np.zeros((40, 48, 3), np.uint8)
    image[..., 2] = 100   # BGR on disk: red
    cv2.imwrite(str(root / "images" / "a.png"), image)
    cv2.imwrite(str(root / "masks" / "a.png"), np.ones((40, 48), np.uint8))
    model = tmp_path / "red.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # TorchScript is deprecated, still shipped
        torch.jit.trace(RedAboveZero(), torch.zeros(1, 3, 32, 32)).save(str(model))
    trust_file(model)
    return root, model


def run(root, model, report, *flags):
    return main(["evaluate", "--dataset", str(root), "--model", str(model), "--device", "cpu",
                 "--report", str(report), *flags])


def test_a_fixed_size_model_needs_input_size_and_gets_it(setup, tmp_path, capsys):
    root, model = setup
    report = tmp_path / "r.json"
    assert run(root, model, report) == 2
    err = capsys.readouterr().err
    assert "failed on a 64x64 test input" in err
    assert "set input_size in the model card or pass --input-size" in err
    assert run(root, model, report, "--input-size", "32", "32", "--mean", "0.2", "0.2", "0.2",
               "--std", "1", "1", "1") == 0
    # (0.392 - 0.2) / 1 > 0 everywhere: class 1 everywhere, as the ground truth says.
    assert json.loads(report.read_text())["summary"]["pixel_accuracy"] == 1.0


def test_mean_and_std_reach_the_model(setup, tmp_path):
    root, model = setup
    report = tmp_path / "r.json"
    # (0.392 - 0.5) / 0.25 < 0 everywhere: class 0 everywhere, no pixel right.
    assert run(root, model, report, "--input-size", "32", "32", "--mean", "0.5", "0.5", "0.5",
               "--std", "0.25", "0.25", "0.25") == 0
    assert json.loads(report.read_text())["summary"]["pixel_accuracy"] == 0.0


@pytest.mark.parametrize(("flags", "said"), [
    (["--std", "0", "1", "1"], "'std': values must be positive"),
    (["--mean", "120", "110", "100"], "looks like 0-255 units"),
    (["--input-size", "0", "32"], "--input-size: [0, 32]: must be positive"),
])
def test_bad_preprocessing_values_exit_2_with_one_line(setup, tmp_path, capsys, flags, said):
    root, model = setup
    assert run(root, model, tmp_path / "r.json", *flags) == 2
    assert said in capsys.readouterr().err
