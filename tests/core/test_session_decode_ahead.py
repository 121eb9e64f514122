"""ReviewSession.decode_ahead: the next image is decoded as a task, and open() picks the result up."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from segstudio.core.editing.session import ReviewSession, load_document
from segstudio.core.errors import ImageReadError
from segstudio.core.io.datasets import open_dataset
from segstudio.core.io.datasets.base import Sample
from segstudio.core.tasks import TaskKind, TaskRunner, runner_threads
from tests.threads import threads_calling

WAIT = 5


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, name in enumerate(("a", "b")):
        Image.fromarray(np.full((6, 8, 3), 10 * i, np.uint8)).save(root / "images" / f"{name}.png")
        Image.fromarray(np.full((6, 8), i, np.uint8)).save(root / "masks" / f"{name}.png")
    (root / "images" / "c.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(root / "masks" / "c.png")
    return open_dataset(root)


@pytest.fixture
def runner():
    runner = TaskRunner(max_workers=1, name="test-decode")
    yield runner
    runner.shutdown()


class Factory:
    """``make_document`` that notes whether it got a decoded-ahead result."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.decoded_ahead: list[bool] = []

    def __call__(self, sample, decoded=None):
        self.decoded_ahead.append(decoded is not None)
        return load_document(sample, self.dataset.class_table, decoded=decoded)


def recording_image_loads(monkeypatch) -> list[threading.Thread]:
    return threads_calling(monkeypatch, Sample, "load_image")


def test_open_uses_the_image_decoded_ahead_on_the_runner(dataset, runner, monkeypatch):
    session = ReviewSession(dataset, runner)
    factory = Factory(dataset)
    session.open(0, factory)
    threads = recording_image_loads(monkeypatch)
    session.decode_ahead(1)
    for task in runner.active(TaskKind.DECODE_AHEAD):   # none when it is done already
        assert task.wait(WAIT)
    document = session.open(1, factory)
    assert factory.decoded_ahead == [False, True]
    assert threads and all(t is not threading.main_thread() for t in threads)
    np.testing.assert_array_equal(document.image, np.full((6, 8, 3), 10, np.uint8))
    np.testing.assert_array_equal(document.gt, np.full((6, 8), 1, np.uint8))
    session.close()


def test_a_decode_error_ahead_is_raised_when_the_image_is_opened(dataset, runner):
    session = ReviewSession(dataset, runner)
    factory = Factory(dataset)
    session.open(1, factory)
    session.decode_ahead(2)
    with pytest.raises(ImageReadError):
        session.open(2, factory)
    assert session.current_name == "b"
    session.close()


def test_a_decode_still_queued_is_withdrawn_and_done_at_once(dataset, runner, monkeypatch):
    gate, entered = threading.Event(), threading.Event()

    def busy(ctx):
        entered.set()
        assert gate.wait(WAIT)

    blocker = runner.submit(busy, kind=TaskKind.PRESENCE_SCAN)
    assert entered.wait(WAIT)
    session = ReviewSession(dataset, runner)
    factory = Factory(dataset)
    session.open(0, factory)
    session.decode_ahead(1)
    [ahead] = runner.active(TaskKind.DECODE_AHEAD)
    threads = recording_image_loads(monkeypatch)
    session.open(1, factory)                      # does not wait for the scan ahead of it
    assert factory.decoded_ahead == [False, False]
    assert threads == [threading.main_thread()]
    assert ahead.done and ahead.cancelled
    gate.set()
    blocker.result(WAIT)
    session.close()


def test_without_a_runner_the_session_makes_one_and_close_stops_it(dataset):
    session = ReviewSession(dataset)
    factory = Factory(dataset)
    session.open(0, factory)
    session.decode_ahead(1)
    assert [t.name for t in runner_threads()] == ["segstudio-decode-1"]
    session.close()
    assert runner_threads() == []
    session.decode_ahead(1)                       # after close it starts again on demand
    assert session.open(1, factory).name == "b"
    session.close()
    assert runner_threads() == []
