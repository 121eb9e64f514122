"""The label-error queue dock on the synthetic dataset with two planted label errors: found best first
from a probabilities folder, accept = one undoable edit that moves the metrics exactly as painting those
pixels would, reject remembered in the project store across a reopen, counts per class."""
from __future__ import annotations

import numpy as np
import pytest

from tests.ui.editing_helpers import editing_window
from tests.ui.fakes import GatedRunner
from tests.ui.reference import reference_metrics
from tests.ui.synthetic import H, W, make_dataset, truth_and_prediction

# (image, y0, y1, x0, x1, true class, p of the true class): labelled 0, the model says otherwise.
PLANTED = (("a", 10, 20, 40, 50, 2, 0.95), ("b", 30, 38, 10, 30, 1, 0.9))


def probabilities(gt: np.ndarray, planted) -> np.ndarray:
    """A model right everywhere (p = 0.9 on the label) except on the planted regions."""
    probs = np.full((3, H, W), 0.05, np.float32)
    for k in range(3):
        probs[k][gt == k] = 0.9
    for _name, y0, y1, x0, x1, k, p in planted:
        probs[:, y0:y1, x0:x1] = (1 - p) / 2
        probs[k, y0:y1, x0:x1] = p
    return probs


@pytest.fixture
def scanned(qtbot, tmp_path):
    data = make_dataset(tmp_path / "data")
    folder = tmp_path / "probs"
    folder.mkdir()
    for name, (gt, _pred) in truth_and_prediction().items():
        np.save(folder / f"{name}.npy", probabilities(gt, [p for p in PLANTED if p[0] == name]).astype(np.float16))
    window = editing_window(qtbot, data, lambda request: GatedRunner())
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()                         # image a gets a prediction: it has metrics
    qtbot.waitUntil(lambda: window.document.pred is not None)
    dock = window.label_errors
    with qtbot.waitSignal(dock.scan_finished, timeout=10000):
        dock.scan_folder(str(folder))
    return window, dock, folder


def test_planted_errors_are_found_best_first(qtbot, scanned):
    _window, dock, _folder = scanned
    pending = dock.queue.pending
    assert [(r.image, r.bbox, r.given, r.suggested) for r in pending] == [
        ("a", (40, 10, 10, 10), 0, 2), ("b", (10, 30, 20, 8), 0, 1)]
    assert all(r.mask.all() for r in pending)
    # score = mean of p_suggested - p_given over the region
    assert pending[0].score == pytest.approx(0.95 - 0.025, abs=1e-3)
    assert pending[1].score == pytest.approx(0.9 - 0.05, abs=1e-3)
    assert dock.table.rowCount() == 2 and dock.table.item(0, 1).text() == "background → debris"
    assert "Lowest label quality: " in dock.summary.text() and "a (" in dock.summary.text()


def test_accept_is_one_undo_step_that_changes_metrics_like_painting(qtbot, scanned):
    window, dock, _folder = scanned
    document = window.document
    assert document.name == "a" and dock.current_region().image == "a"
    gt0 = document.gt.copy()
    pred = document.pred.copy()
    depth = document.history.undo_depth
    atom = dock.accept_current()
    assert atom is not None and document.history.undo_depth == depth + 1
    painted = gt0.copy()
    painted[10:20, 40:50] = 2
    np.testing.assert_array_equal(document.gt, painted)
    np.testing.assert_array_equal(document.confusion.matrix, reference_metrics(painted, pred, 3)["matrix"])
    assert dock.queue.counts()["accepted"].tolist() == [1, 0, 0]
    assert [r.image for r in dock.queue.pending] == ["b"]
    document.undo()
    np.testing.assert_array_equal(document.gt, gt0)
    np.testing.assert_array_equal(document.confusion.matrix, reference_metrics(gt0, pred, 3)["matrix"])


def test_reject_is_remembered_across_a_reopen_and_skip_keeps_it(qtbot, scanned):
    window, dock, folder = scanned
    dock.skip_current()
    assert [r.image for r in dock.queue.pending] == ["b", "a"]
    assert dock.current_region().image == "b" and window.document.name == "b"
    dock.reject_current()
    assert dock.queue.counts()["rejected"].tolist() == [1, 0, 0]
    assert [r.image for r in dock.queue.pending] == ["a"]
    assert dock.counts_table.item(0, 2).text() == "1"

    assert window.open_path(str(window.session.root))  # a fresh session and project store
    with qtbot.waitSignal(dock.scan_finished, timeout=10000):
        dock.scan_folder(str(folder))
    assert [r.image for r in dock.queue.pending] == ["a"]   # b's region is never proposed again
    assert dock.queue.counts()["rejected"].tolist() == [1, 0, 0]
    assert "1 already decided" in dock.summary.text()


def test_cancel_stops_the_scan(qtbot, scanned):
    window, dock, folder = scanned
    with qtbot.waitSignal(window.task_runner.finished, timeout=10000):
        task = dock.scan_folder(str(folder))
        dock.cancel()
    assert task.cancelled
    assert not dock.progress.isVisible()


class ProbabilityRunner(GatedRunner):
    """GatedRunner whose predictions carry probabilities: 0.8 on the predicted class, 0.1 on the others."""

    def __init__(self, request):
        super().__init__()
        self.request = request

    def predict(self, image, cancel=None, progress=None):
        prediction = super().predict(image, cancel, progress)
        probs = np.full((3, *prediction.mask.shape), 0.1, np.float16)
        for k in range(3):
            probs[k][prediction.mask == k] = 0.8
        prediction.probabilities = probs
        return prediction


def test_the_model_route_streams_two_passes_and_matches_the_folder_route(qtbot, tmp_path):
    made = []

    def factory(request):
        made.append(ProbabilityRunner(request))
        return made[-1]

    data = make_dataset(tmp_path / "data")
    window = editing_window(qtbot, data, factory)
    dock = window.label_errors
    dock.min_area.setValue(1)
    with qtbot.waitSignal(dock.scan_finished, timeout=10000) as blocker:
        job = dock.scan_model()
    assert job is not None and made[-1].request.probabilities
    by_model = blocker.args[0]
    folder = tmp_path / "probs"
    folder.mkdir()
    for name in ("a", "b"):
        image = window.session.dataset[window.session.dataset.index_of(name)].load_image()
        np.save(folder / f"{name}.npy", ProbabilityRunner(None).predict(image).probabilities)
    with qtbot.waitSignal(dock.scan_finished, timeout=10000) as blocker:
        dock.scan_folder(str(folder))
    by_folder = blocker.args[0]
    assert by_model.regions and [(r.image, r.bbox, r.given, r.suggested, r.area) for r in by_model.regions] == \
        [(r.image, r.bbox, r.given, r.suggested, r.area) for r in by_folder.regions]
    np.testing.assert_allclose(by_model.thresholds, by_folder.thresholds)
    qtbot.waitUntil(lambda: not window.controller.busy)


def test_cancel_stops_the_model_scan_between_images(qtbot, tmp_path):
    runner = ProbabilityRunner(None)
    window = editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: runner)
    dock = window.label_errors
    runner.gate.clear()                                   # hold the first image's forward pass
    job = dock.scan_model()
    qtbot.waitUntil(runner.entered.is_set)
    assert dock.cancel_button.isEnabled() and dock.progress.isVisible()
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000, check_params_cb=lambda j: j == job):
        dock.cancel()
        runner.gate.set()
    assert dock.queue is None and dock.summary.text() == "Scan cancelled or failed."
    assert not dock.progress.isVisible() and not dock.cancel_button.isEnabled()
