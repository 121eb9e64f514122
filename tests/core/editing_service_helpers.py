"""Helpers for the editing-service tests (tests/core/test_editing_service.py and the tests of COCO
corrections and journal failures): a scripted user, a runner delivering on this thread, a two-image
folder dataset and what the window does to open it. Fixtures ``data`` and ``runner`` are in
tests/core/conftest.py."""
from __future__ import annotations

import numpy as np
from PIL import Image

from segstudio.core.editing.document import ImageDocument
from segstudio.core.editing.history import HistoryBudget
from segstudio.core.editing.service import EditingService, OtherInstanceChoice, UnsavedChoice
from segstudio.core.editing.session import ReviewSession, decode_sample
from segstudio.core.io.classes import ClassTable
from segstudio.core.io.datasets import open_dataset
from segstudio.core.tasks import TaskRunner

H, W, C = 12, 16, 3


class Answers:
    """The user, scripted: what to answer and what was asked."""

    def __init__(self, restore: bool = True, unsaved: UnsavedChoice = UnsavedChoice.SAVE,
                 other: OtherInstanceChoice = OtherInstanceChoice.READ_ONLY):
        self.restore, self.unsaved, self.other = restore, unsaved, other
        self.asked_restore: list[dict] = []
        self.asked_unsaved: list[list[str]] = []
        self.asked_other: list[list] = []

    def ask_other_instance(self, others):
        self.asked_other.append(list(others))
        return self.other

    def ask_restore(self, pending):
        self.asked_restore.append(dict(pending))
        return self.restore

    def ask_unsaved(self, names):
        self.asked_unsaved.append(list(names))
        return self.unsaved


class QueuedRunner(TaskRunner):
    """A task runner whose callbacks wait in a queue until :meth:`deliver` runs them on this thread,
    as the GUI's runner delivers them on the GUI thread (the project store is single-threaded)."""

    def __init__(self):
        self.queued: list = []
        super().__init__(max_workers=1, name="test-editing-service", dispatch=self.queued.append)

    def deliver(self, task) -> None:
        task.wait(10)
        while not task.done or self.queued:
            if self.queued:
                self.queued.pop(0)()


def make_dataset(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    truth = {}
    for i, name in enumerate(("a", "b")):
        gt = np.zeros((H, W), np.uint8)
        gt[:, : 6 + i] = 1
        gt[8:, 10:] = 2
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(root / "images" / f"{name}.png")
        Image.fromarray(gt).save(root / "masks" / f"{name}.png")
        truth[name] = gt
    ClassTable.generic(C).save(root / "classes.json")
    return truth


def open_session(service: EditingService, root):
    """What the window does: the session with its label source, the store, the first document with
    its journal, then attach and track."""
    dataset = open_dataset(root)
    session = ReviewSession(dataset, saved_labels=service.labels_source(dataset))
    store = service.open_store(session.root)
    budget = HistoryBudget()

    def factory(sample, decoded=None):
        image, gt, _ = decoded if decoded is not None else decode_sample(sample)
        return ImageDocument(sample.name, image, dataset.class_table, gt, journal=store, budget=budget)

    document = session.open(0, factory)
    service.attach(session, store)
    service.track(document)
    return session, document, factory


def paint(document, value=2, at=(3, 3), radius=2):
    document.begin_stroke(value)
    document.paint_dab(*at, radius)
    return document.commit_stroke()
