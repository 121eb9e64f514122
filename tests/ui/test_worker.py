"""The inference worker: ids, progress, results as arrays, failures, cancel and shutdown."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.errors import CheckpointError
from segstudio.ui.worker import InferenceController, ModelRequest

from tests.ui.fakes import GatedRunner

MODEL = ModelRequest("fake", "cpu")


@pytest.fixture
def runner():
    return GatedRunner()


@pytest.fixture
def controller(qtbot, runner):
    made = []

    def factory(request):
        made.append(request)
        return runner

    ctrl = InferenceController(runner_factory=factory, gpu_check=lambda: {"cuda": False})
    ctrl.made = made
    yield ctrl
    assert ctrl.shutdown()


def test_image_job_returns_arrays_with_id_and_name(qtbot, controller, runner):
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    progress = []
    controller.progress.connect(lambda j, d, t: progress.append((j, d, t)))
    with qtbot.waitSignal(controller.finished, timeout=5000) as blocker:
        job = controller.predict_image(MODEL, "img0", image)
    job_id, name, prediction = blocker.args
    assert (job_id, name) == (job, "img0")
    np.testing.assert_array_equal(prediction.mask, GatedRunner.expected(image).mask)
    assert prediction.source == "fake"
    qtbot.waitUntil(lambda: not controller.busy)
    assert progress[-1] == (job, 4, 4)


def test_model_is_loaded_once_per_spec_and_device(qtbot, controller):
    image = np.zeros((2, 2), np.uint8)
    for _ in range(2):
        with qtbot.waitSignal(controller.job_ended, timeout=5000):
            controller.predict_image(MODEL, "a", image)
    with qtbot.waitSignal(controller.job_ended, timeout=5000):
        controller.predict_image(ModelRequest("fake", "cuda"), "a", image)
    assert controller.made == [MODEL, ModelRequest("fake", "cuda")]


def test_failure_reports_the_reason_and_the_worker_goes_on(qtbot, controller, runner):
    runner.fail_with = CheckpointError("/m.pt", "unsafe pickle")
    with qtbot.waitSignal(controller.failed, timeout=5000) as blocker:
        job = controller.predict_image(MODEL, "a", np.zeros((2, 2), np.uint8))
    assert blocker.args == [job, "/m.pt: unsafe pickle"]
    runner.fail_with = None
    with qtbot.waitSignal(controller.finished, timeout=5000):
        controller.predict_image(MODEL, "a", np.zeros((2, 2), np.uint8))


def test_cancel_running_job(qtbot, controller, runner):
    runner.gate.clear()
    finished = []
    controller.finished.connect(lambda *a: finished.append(a))
    job = controller.predict_image(MODEL, "a", np.zeros((2, 2), np.uint8))
    qtbot.waitUntil(runner.entered.is_set)
    with qtbot.waitSignal(controller.cancelled, timeout=5000) as blocker:
        controller.cancel(job)
    assert blocker.args == [job]
    qtbot.waitUntil(lambda: not controller.busy)
    assert finished == []


def test_cancel_all_drops_queued_jobs_too(qtbot, controller, runner):
    runner.gate.clear()
    cancelled = []
    controller.cancelled.connect(cancelled.append)
    first = controller.predict_image(MODEL, "a", np.zeros((2, 2), np.uint8))
    second = controller.predict_image(MODEL, "b", np.zeros((2, 2), np.uint8))
    qtbot.waitUntil(runner.entered.is_set)
    controller.cancel()
    qtbot.waitUntil(lambda: not controller.busy, timeout=5000)
    assert cancelled == [first, second]
    assert runner.calls == 1


def test_shutdown_during_a_job_cancels_and_stops_the_thread(qtbot, runner):
    runner.gate.clear()
    ctrl = InferenceController(runner_factory=lambda r: runner)
    ctrl.predict_image(MODEL, "a", np.zeros((2, 2), np.uint8))
    qtbot.waitUntil(runner.entered.is_set)
    assert ctrl.shutdown(5000)


def test_gpu_check_job_reports_the_gpu(qtbot, controller):
    with qtbot.waitSignal(controller.gpu_checked, timeout=5000) as blocker:
        controller.check_gpu()
    assert blocker.args == [{"cuda": False}]


def test_the_first_model_job_reports_the_gpu_once_before_loading(qtbot, controller):
    events = []
    controller.gpu_checked.connect(lambda report: events.append(("gpu", report)))
    controller.model_loaded.connect(lambda job, info: events.append(("loaded", info.name)))
    for _ in range(2):
        with qtbot.waitSignal(controller.job_ended, timeout=5000):
            controller.predict_image(MODEL, "a", np.zeros((2, 2), np.uint8))
    assert events == [("gpu", {"cuda": False}), ("loaded", "fake"), ("loaded", "fake")]
