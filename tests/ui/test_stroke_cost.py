"""After a stroke nothing O(image) runs on the GUI thread: panels, review queue, metrics and error map
all update from the edit atom; what is O(image) by nature (error regions) runs on the task runner.

Every helper that costs O(image) when handed a whole mask is wrapped to record the size of what it was
given and on which thread; a brush stroke through the real canvas must hand the GUI thread nothing
image-sized, from the first dab until the panels, the review queue and the error regions are refreshed.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from segstudio.core.display import layers, overlays
from segstudio.core.editing import document as document_module
from segstudio.core.editing import review
from segstudio.core.evaluation import comparison as comparison_module
from segstudio.core.evaluation import errormap
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.tasks import TaskKind
from segstudio.ui import document_view, review_dock
from tests.ui.editing_helpers import drag, editing_window
from tests.ui.fakes import GatedRunner
from tests.ui.synthetic import H, W, make_dataset

IMAGE = H * W


class SizeRecorder:
    """(name, size of the largest array argument) of calls made on the GUI thread."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.gui = threading.main_thread()

    def wrap(self, monkeypatch, owner, name: str) -> None:
        real = getattr(owner, name)

        def recorded(*args, **kwargs):
            if threading.current_thread() is self.gui:
                sizes = [np.asarray(a).size for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
                self.calls.append((name, max(sizes, default=0)))
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, recorded)

    def image_sized(self) -> list[tuple[str, int]]:
        return [(name, size) for name, size in self.calls if size >= IMAGE // 2]


@pytest.fixture
def window(qtbot, tmp_path):
    runner = GatedRunner()
    win = editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: runner)
    with qtbot.waitSignal(win.controller.job_ended, timeout=5000):
        win.run_on_image()
    qtbot.waitUntil(lambda: win.document.pred is not None)
    qtbot.waitUntil(lambda: not win.task_runner.active())
    return win


def test_a_stroke_hands_the_gui_thread_nothing_image_sized(qtbot, window, monkeypatch):
    recorder = SizeRecorder()
    for owner, name in ((np, "bincount"), (np, "unique"), (errormap, "error_codes"),
                        (errormap, "error_regions"), (document_module, "class_counts"),
                        (comparison_module, "label_error_histogram"), (overlays, "pair_codes"),
                        (document_view, "pair_codes"), (layers, "hatch_codes"), (review, "image_review_stats"),
                        (review_dock, "image_review_stats"), (ConfusionMatrix, "update")):
        recorder.wrap(monkeypatch, owner, name)
    refreshed = threading.Event()
    recorder.wrap(monkeypatch, review_dock, "review_stats_of")      # the queue read the live comparison
    real_stats_of = review_dock.review_stats_of
    monkeypatch.setattr(review_dock, "review_stats_of", lambda *a, **k: refreshed.set() or real_stats_of(*a, **k))
    regions_started = []
    window.task_runner.started.connect(lambda _id, kind: regions_started.append(kind))

    window.editor.set_tool("brush")
    window.editor.set_brush_radius(2)
    window.select_class(2)
    before = window.document.gt.copy()
    drag(qtbot, window.canvas, [(10, 10), (14, 12), (20, 15), (26, 18)])
    assert (window.document.gt != before).any(), "the stroke painted"

    qtbot.waitUntil(refreshed.is_set, timeout=5000)                  # review queue refreshed
    qtbot.waitUntil(lambda: TaskKind.ERROR_REGIONS.value in regions_started, timeout=5000)
    qtbot.waitUntil(lambda: not window.task_runner.active(), timeout=5000)
    assert recorder.calls, "the instrumented helpers were reached"
    assert recorder.image_sized() == [], f"O(image) work on the GUI thread after a stroke: {recorder.image_sized()}"
    # and what the panels show is right: the document's figures equal a full recompute
    c, gt, pred = window.document.num_classes, window.document.gt, window.document.pred
    valid = (gt < c) & (pred < c)
    reference = np.bincount(gt[valid].astype(np.int64) * c + pred[valid], minlength=c * c).reshape(c, c)
    assert np.array_equal(window.document.confusion.matrix, reference)
    assert np.array_equal(window.session.stats[window.document.name].confusion, reference)
