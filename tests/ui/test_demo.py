"""The bundled demo through the real worker, model registry and runner (torch on the CPU)."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.io.datasets import open_dataset
from segstudio.core.io.images import to_display_rgb
from segstudio.resources import resource_path

from tests.ui.reference import reference_metrics

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_window(open_window):
    return open_window(size=(1280, 800), device="cpu")   # no path: the bundled demo, demo model


def test_launch_shows_the_demo_image_with_its_ground_truth(demo_window):
    first = open_dataset(resource_path("demo"))[0]
    assert demo_window.document.name == first.name
    np.testing.assert_array_equal(demo_window.canvas.layer("image").array, to_display_rgb(first.load_image()))
    np.testing.assert_array_equal(demo_window.canvas.layer("gt").array, first.load_mask())
    assert demo_window.canvas.layer("gt").visible
    assert demo_window.model_dock.selected_spec() == "demo"


def test_demo_model_through_the_worker_matches_the_runner_and_the_metrics(qtbot, demo_window):
    from segstudio.inference.registry import resolve_model
    from segstudio.inference.runner import Runner

    with qtbot.waitSignal(demo_window.controller.finished, timeout=120_000) as blocker:
        job = demo_window.run_on_image()
    assert blocker.args[:2] == [job, demo_window.document.name]
    qtbot.waitUntil(lambda: demo_window.metrics_panel.headline("image", "mean_iou") != "–", timeout=5000)

    sample = open_dataset(resource_path("demo"))[0]
    expected = Runner(resolve_model("demo"), device="cpu").predict(sample.load_image())
    np.testing.assert_array_equal(demo_window.canvas.layer("pred").array, expected.mask)
    ref = reference_metrics(sample.load_mask(), expected.mask, 4)
    for key in ("pixel_accuracy", "mean_iou", "fw_iou", "mean_f1"):
        assert demo_window.metrics_panel.headline("image", key) == f"{ref[key]:.3f}", key
    iou_column = [demo_window.metrics_panel.table.item(row, 1).text() for row in range(4)]
    assert iou_column == [f"{v:.3f}" for v in ref["iou"]]
