"""The dataset scan of the label-error queue, its decisions and their storage in the project store."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.editing.store import ProjectStore
from segstudio.core.errors import PredictionError
from segstudio.core.evaluation.label_error_scan import (Decision, LabelErrorQueue, ScanItem, box_iou,
                                                        folder_pass, scan_label_errors)
from segstudio.core.evaluation.label_errors import LabelErrorRegion
from segstudio.core.tasks import TaskKind, TaskRunner

C = 3


def planted(h=20, w=30):
    gt = np.zeros((h, w), np.uint8)
    gt[:, 15:] = 1
    probs = np.full((C, h, w), 0.05, np.float32)
    probs[0][gt == 0] = 0.9
    probs[1][gt == 1] = 0.9
    probs[:, 5:10, 2:8] = 0.05
    probs[2, 5:10, 2:8] = 0.9                    # labelled 0, the model is sure it is 2
    gt2 = np.full((h, w), 2, np.uint8)           # a second image where class 2 is labelled
    probs2 = np.full((C, h, w), 0.05, np.float32)
    probs2[2] = 0.9
    return [("x", gt, probs), ("y", gt2, probs2)]


def drive(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


class Sample:
    def __init__(self, name):
        self.name = name


def items_and_pass(images):
    items = [ScanItem(i, Sample(n), lambda g=g: g) for i, (n, g, _p) in enumerate(images)]
    probs = {n: p for n, _g, p in images}
    return items, lambda: (lambda index, sample, shape: probs.get(sample.name))


def test_scan_finds_the_planted_region_and_reports_bad_files(tmp_path):
    images = planted()
    for name, _gt, probs in images:
        np.save(tmp_path / f"{name}.npy", probs.astype(np.float16))
    np.save(tmp_path / "z.npy", np.zeros((2, 20, 30), np.float32))     # the wrong number of classes
    images.append(("z", np.zeros((20, 30), np.uint8), None))
    images.append(("w", np.zeros((20, 30), np.uint8), None))           # no file at all
    items, _ = items_and_pass(images)
    result = drive(scan_label_errors(None, items, folder_pass(tmp_path, C), C, 255, min_area=4))
    assert [(r.image, r.bbox, r.given, r.suggested, r.area) for r in result.regions] == [("x", (2, 5, 6, 5), 0, 2, 30)]
    assert result.regions[0].mask.all()
    # t_2 is the mean of p_2 over pixels labelled 2: image y only
    assert result.thresholds[2] == pytest.approx(0.9, abs=1e-3)
    assert len(result.problems) == 1 and "z.npy" in result.problems[0]
    assert result.missing == ["w"]


def test_scan_runs_as_a_cancellable_task_with_progress():
    runner = TaskRunner(1, "test-scan")
    progress = []
    try:
        items, open_pass = items_and_pass(planted())
        task = runner.submit(scan_label_errors, items, open_pass, C, 255, 1, kind=TaskKind.LABEL_ERRORS,
                             on_progress=lambda done, total: progress.append((done, total)))
        result = task.result()
    finally:
        runner.shutdown(wait=True)
    assert progress[-1] == (4, 4) and len(result.regions) == 1


def test_a_folder_without_probabilities_is_refused(tmp_path):
    with pytest.raises(PredictionError, match="no probability files"):
        folder_pass(tmp_path, C)


def region(image="x", bbox=(2, 5, 6, 5), given=0, suggested=2, score=0.8):
    return LabelErrorRegion(image, bbox, bbox[2] * bbox[3], given, suggested, score)


def test_queue_hides_decided_regions_and_counts_per_class(tmp_path):
    store = ProjectStore(tmp_path / "p.sqlite")
    try:
        queue = LabelErrorQueue([region(), region("y", (0, 0, 4, 4), 1, 0, 0.5)], store.label_error_decisions(), C)
        store.record_label_error_decision(queue.decide(queue.pending[0], "rejected"))
        assert [r.image for r in queue.pending] == ["y"]
    finally:
        store.close()
    store = ProjectStore(tmp_path / "p.sqlite")
    try:
        decisions = store.label_error_decisions()
        assert decisions == [Decision("x", (2, 5, 6, 5), 0, 2, "rejected")]
        # found again, shifted by a pixel after an edit: still the same region (box IoU >= 0.5)
        again = LabelErrorQueue([region(bbox=(3, 5, 6, 5)), region(suggested=1)], decisions, C)
        assert [(r.suggested) for r in again.pending] == [1]
        assert again.counts()["rejected"].tolist() == [1, 0, 0]
    finally:
        store.close()
    assert box_iou((0, 0, 2, 2), (1, 0, 2, 2)) == pytest.approx(2 / 6)
