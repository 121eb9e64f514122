"""The bundled demo model exported as a torch.export program and as ONNX predicts what the state
dict does on every demo image (issue 11, "Done when": at least 99.9 % of pixels).

The exports are made here, from the shipped weights, with the same card (classes, mean, std); the
state-dict model runs through its registry entry ("demo") and each export through its file.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from segstudio.core.io.datasets import open_dataset
from segstudio.inference import model_trust
from segstudio.inference.registry import resolve_model
from segstudio.inference.runner import Runner
from segstudio.resources import resource_path
from tests.inference.exports import save_onnx, save_pt2

AGREEMENT = 0.999
# Every third demo image (7 of 20) keeps the test near 30 s on a shared 2-core machine; all 20 agree
# too (figures in the notes of issue 11).
INDICES = list(range(0, 20, 3))


@pytest.fixture(scope="module")
def demo_labels():
    dataset = open_dataset(resource_path("demo"))
    runner = Runner(resolve_model("demo"), device="cpu", batch_size=4)
    return dataset, {index: p.mask for index, p in runner.predict_dataset(dataset, indices=INDICES)}


def _card_without_architecture(folder, name):
    card = json.loads((resource_path("demo", "model") / "demo_unet.json").read_text())
    card = {k: card[k] for k in ("classes", "mean", "std", "channel_order", "kind")}
    (folder / f"{name}.json").write_text(json.dumps(card))


@pytest.mark.parametrize("form", ["pt2", "onnx"])
def test_exported_demo_predicts_the_same_labels(tmp_path, monkeypatch, demo_labels, form):
    monkeypatch.setattr(model_trust, "default_trust_file", lambda: tmp_path / "trusted.json")
    dataset, expected = demo_labels
    net = resolve_model("demo").load("cpu")
    path = tmp_path / f"demo_unet.{form}"
    if form == "pt2":
        save_pt2(net, path, size=(64, 64), batch=2, dynamic=True)
    else:
        save_onnx(net, path, size=(64, 64), dynamic=True)
    _card_without_architecture(tmp_path, "demo_unet")
    entry = resolve_model(path)
    assert entry.class_table.names == resolve_model("demo").class_table.names
    runner = Runner(entry, device="cpu", batch_size=4)
    same = total = 0
    for index, prediction in runner.predict_dataset(dataset, indices=INDICES):
        same += int(np.count_nonzero(prediction.mask == expected[index]))
        total += expected[index].size
    assert len(dataset) == 20 and sorted(expected) == INDICES
    assert same / total >= AGREEMENT, f"{form}: {same / total:.5f} of pixels agree"
