"""``Runner(probabilities=True)``: the per-pixel softmax, float16 (C, H, W), untiled, resized and tiled."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from segstudio.core.io.classes import ClassTable
from segstudio.inference.registry import ModelEntry
from segstudio.inference.runner import Runner
from tests.inference.helpers import random_image, reference_logits, tiny_net


def _entry(net, num_classes, **fields) -> ModelEntry:
    values = dict(name="test", kind="semantic", class_table=ClassTable.generic(num_classes),
                  mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), channel_order="RGB", scale=None,
                  input_size=None, loader=lambda device, progress=None: net.to(device).eval())
    values.update(fields)
    return ModelEntry(**values)


def test_probabilities_are_off_by_default_and_equal_the_softmax_when_asked():
    net = tiny_net(4, seed=3)
    image = random_image(40, 52, seed=1)
    assert Runner(_entry(net, 4), device="cpu").predict(image).probabilities is None
    prediction = Runner(_entry(net, 4), device="cpu", probabilities=True).predict(image)
    probs = prediction.probabilities
    assert probs.dtype == np.float16 and probs.shape == (4, 40, 52)
    expected = F.softmax(reference_logits(net, image)[0], dim=0).numpy()
    np.testing.assert_allclose(probs.astype(np.float32), expected, atol=1e-3)
    np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=5e-3)
    assert (probs.argmax(0) == prediction.mask).mean() > 0.99  # float16 may tie two close classes


def test_probabilities_resized_and_tiled():
    net = tiny_net(3, seed=4)
    image = random_image(150, 170, seed=2)
    resized = Runner(_entry(net, 3, input_size=(64, 48)), device="cpu", probabilities=True).predict(image)
    assert resized.probabilities.shape == (3, 150, 170)
    np.testing.assert_allclose(resized.probabilities.astype(np.float32).max(0), resized.confidence, atol=1e-3)
    whole = Runner(_entry(net, 3), device="cpu", probabilities=True).predict(image)
    tiled = Runner(_entry(net, 3), device="cpu", tile_size=128, overlap=32, probabilities=True).predict(image)
    assert tiled.probabilities.shape == (3, 150, 170)
    np.testing.assert_allclose(tiled.probabilities.astype(np.float32).max(0), tiled.confidence, atol=1e-3)
    assert np.abs(tiled.probabilities.astype(np.float32) - whole.probabilities.astype(np.float32)).mean() < 2e-3
