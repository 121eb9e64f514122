"""The task runner: ids, callback order, errors, cooperative cancel, keys, slicing, shutdown."""
from __future__ import annotations

import threading

import pytest

from segstudio.core.tasks import Cancelled, TaskKind, TaskRunner, runner_threads

WAIT = 5   # seconds a test waits for an event that is already due; never reached when it passes
KIND = TaskKind.ERROR_REGIONS


class Recorder:
    """Collects the callbacks of tasks in the order delivered, and signals each task's end."""

    def __init__(self):
        self.events: list[tuple] = []
        self._finished: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def callbacks(self, tag: str) -> dict:
        self._finished[tag] = threading.Event()

        def note(event):
            return lambda *payload: self._add((tag, event, *payload))

        def finished():
            self._add((tag, "finished"))
            self._finished[tag].set()

        return dict(on_started=note("started"), on_progress=note("progress"), on_yielded=note("yielded"),
                    on_returned=note("returned"), on_errored=note("errored"), on_finished=finished)

    def _add(self, event: tuple) -> None:
        with self._lock:
            self.events.append(event)

    def wait_finished(self, tag: str) -> None:
        assert self._finished[tag].wait(WAIT), f"{tag} never finished: {self.events}"

    def of(self, tag: str) -> list[tuple]:
        return [e[1:] for e in self.events if e[0] == tag]


@pytest.fixture
def runner():
    runner = TaskRunner(max_workers=2, name="test-tasks")
    yield runner
    runner.shutdown()


def gated(gate: threading.Event, entered: threading.Event | None = None, value=None):
    """A task body that reports it started, then holds until ``gate`` opens, checking for cancel."""

    def body(ctx):
        if entered is not None:
            entered.set()
        while not gate.wait(0.01):
            ctx.checkpoint()
        ctx.checkpoint()
        return value

    return body


def test_ids_increase_and_kinds_are_kept(runner):
    tasks = [runner.submit(lambda ctx, i: i * i, i, kind=kind)
             for i, kind in enumerate((TaskKind.DECODE_AHEAD, TaskKind.PRESENCE_SCAN, TaskKind.REVIEW_STATS))]
    assert [t.id for t in tasks] == [1, 2, 3]
    assert [t.kind for t in tasks] == [TaskKind.DECODE_AHEAD, TaskKind.PRESENCE_SCAN, TaskKind.REVIEW_STATS]
    assert [t.result(WAIT) for t in tasks] == [0, 1, 4]


def test_callbacks_come_in_order_started_progress_returned_finished(runner):
    recorder = Recorder()
    seen = {}

    def body(ctx, total):
        seen["thread"] = threading.current_thread()
        seen["id"] = ctx.task_id
        for done in range(1, total + 1):
            ctx.progress(done, total)
        return "value"

    task = runner.submit(body, 3, kind=KIND, **recorder.callbacks("t"))
    recorder.wait_finished("t")
    assert recorder.of("t") == [("started",), ("progress", 1, 3), ("progress", 2, 3), ("progress", 3, 3),
                                ("returned", "value"), ("finished",)]
    assert task.done and task.result() == "value" and seen["id"] == task.id
    assert seen["thread"] is not threading.main_thread()


def test_errored_carries_the_exception_and_result_reraises_it(runner):
    recorder = Recorder()
    error = ValueError("bad mask")

    def body(ctx):
        raise error

    task = runner.submit(body, kind=KIND, **recorder.callbacks("t"))
    recorder.wait_finished("t")
    assert recorder.of("t") == [("started",), ("errored", error), ("finished",)]
    with pytest.raises(ValueError, match="bad mask"):
        task.result()


def test_cancel_before_start_delivers_only_finished(runner):
    one = TaskRunner(max_workers=1, name="test-one")
    gate, entered = threading.Event(), threading.Event()
    recorder = Recorder()
    ran = []
    try:
        blocker = one.submit(gated(gate, entered), kind=KIND)
        assert entered.wait(WAIT)
        waiting = one.submit(lambda ctx: ran.append(1), kind=KIND, **recorder.callbacks("w"))
        waiting.cancel()
        recorder.wait_finished("w")
        assert waiting.done and waiting.cancelled
        gate.set()
        blocker.result(WAIT)
    finally:
        one.shutdown()
    assert recorder.of("w") == [("finished",)]
    assert ran == []
    with pytest.raises(Cancelled):
        waiting.result()


def test_withdraw_only_takes_back_a_task_that_has_not_started():
    one = TaskRunner(max_workers=1, name="test-one")
    gate, entered = threading.Event(), threading.Event()
    try:
        running = one.submit(gated(gate, entered, "ran"), kind=KIND)
        assert entered.wait(WAIT)
        waiting = one.submit(lambda ctx: "never", kind=KIND)
        assert waiting.withdraw() and waiting.done
        assert not running.withdraw()
        gate.set()
        assert running.result(WAIT) == "ran"
    finally:
        one.shutdown()


def test_cooperative_cancel_stops_a_running_task_at_its_next_checkpoint(runner):
    recorder = Recorder()
    gate, entered = threading.Event(), threading.Event()
    task = runner.submit(gated(gate, entered, "stale"), kind=KIND, **recorder.callbacks("t"))
    assert entered.wait(WAIT)
    task.cancel()
    recorder.wait_finished("t")
    assert task.done and task.cancelled
    assert recorder.of("t") == [("started",), ("finished",)]
    with pytest.raises(Cancelled):
        task.result()


def test_a_cancelled_generator_is_closed_between_slices(runner):
    recorder = Recorder()
    step, cleaned = threading.Event(), threading.Event()
    resumed = []

    def body(ctx):
        try:
            yield "first"
            step.set()
            while True:
                resumed.append(1)
                yield
        finally:
            cleaned.set()

    task = runner.submit(body, kind=KIND, **recorder.callbacks("g"))
    assert step.wait(WAIT)
    task.cancel()
    recorder.wait_finished("g")
    assert cleaned.is_set()                       # the generator's finally ran: it was closed
    count = len(resumed)
    assert recorder.of("g") == [("started",), ("yielded", "first"), ("finished",)]
    assert len(resumed) == count                  # and never resumed again


def test_a_newer_task_with_the_same_key_supersedes_the_older(runner):
    recorder = Recorder()
    gate, entered = threading.Event(), threading.Event()
    old = runner.submit(gated(gate, entered, "old"), kind=KIND, key="regions", **recorder.callbacks("old"))
    assert entered.wait(WAIT)
    runner.submit(lambda ctx: "new", kind=KIND, key="regions", **recorder.callbacks("new"))
    gate.set()
    recorder.wait_finished("old")
    recorder.wait_finished("new")
    assert old.cancelled and ("returned", "old") not in recorder.of("old")
    assert recorder.of("new") == [("started",), ("returned", "new"), ("finished",)]
    assert runner.active() == []


def test_a_result_computed_before_the_supersede_but_delivered_after_is_dropped():
    """The staleness check is made at delivery, as on a GUI thread that drains its queue later."""
    queued = []
    runner = TaskRunner(max_workers=1, name="test-queued", dispatch=queued.append)
    recorder = Recorder()
    try:
        old = runner.submit(lambda ctx: "old", kind=KIND, key="k", **recorder.callbacks("old"))
        old.wait(WAIT)                            # returned; its callbacks wait in the "event loop"
        new = runner.submit(lambda ctx: "new", kind=KIND, key="k", **recorder.callbacks("new"))
        new.wait(WAIT)
    finally:
        runner.shutdown()
    for deliver in list(queued):
        deliver()
    assert recorder.of("old") == [("finished",)]
    assert recorder.of("new") == [("started",), ("returned", "new"), ("finished",)]


def test_cancel_by_key_drops_a_result_not_yet_delivered():
    queued = []
    runner = TaskRunner(max_workers=1, name="test-queued", dispatch=queued.append)
    recorder = Recorder()
    try:
        task = runner.submit(lambda ctx: "stale", kind=KIND, key="k", **recorder.callbacks("t"))
        task.wait(WAIT)
        assert runner.active() == [task]          # done on the worker, its end not delivered ...
        runner.cancel("k")                        # ... so still cancellable until it is
        runner.cancel("no such key")
    finally:
        runner.shutdown()
    for deliver in list(queued):
        deliver()
    assert recorder.of("t") == [("finished",)]


def test_a_long_generator_lets_queued_tasks_run_between_its_slices():
    order = []
    one = TaskRunner(max_workers=1, name="test-one")
    try:
        def long(ctx):
            for i in range(3):
                order.append(f"long {i}")
                if i == 1:
                    one.submit(lambda ctx: order.append("short"), kind=TaskKind.ERROR_REGIONS)
                yield
            return "long done"

        assert one.submit(long, kind=TaskKind.PRESENCE_SCAN).result(WAIT) == "long done"
    finally:
        one.shutdown()
    assert order == ["long 0", "long 1", "short", "long 2"]


def test_the_listener_sees_every_delivered_event():
    seen = []
    runner = TaskRunner(name="test-listener", listener=lambda task, event, *payload: seen.append((task.id, event, *payload)))
    try:
        runner.submit(lambda ctx: ctx.progress(1, 1) or 7, kind=KIND).result(WAIT)
    finally:
        runner.shutdown()
    assert seen == [(1, "started"), (1, "progress", 1, 1), (1, "returned", 7), (1, "finished")]


def test_shutdown_cancels_joins_and_leaves_no_thread():
    runner = TaskRunner(max_workers=2, name="test-shutdown")
    gate, entered = threading.Event(), threading.Event()
    running = runner.submit(gated(gate, entered), kind=KIND)
    waiting = [runner.submit(lambda ctx: None, kind=KIND) for _ in range(3)]
    assert entered.wait(WAIT)
    assert [t.name for t in runner_threads()] and all(t.daemon for t in runner_threads())
    runner.shutdown(wait=True)
    assert running.cancelled and running.done and all(t.done for t in waiting)
    assert not [t for t in threading.enumerate() if t.name.startswith("test-shutdown")]
    assert runner_threads() == []
    recorder, ran = Recorder(), []
    late = runner.submit(lambda ctx: ran.append(1), kind=KIND, **recorder.callbacks("late"))
    assert late.done and late.cancelled and ran == []
    assert recorder.of("late") == [("finished",)]
    assert runner_threads() == []                 # and no thread started for it
    runner.shutdown()                             # twice is fine


def test_threads_start_on_demand_up_to_max_workers():
    runner = TaskRunner(max_workers=2, name="test-lazy")
    assert runner_threads() == []
    gate = threading.Event()
    entered = [threading.Event() for _ in range(3)]
    try:
        tasks = [runner.submit(gated(gate, e), kind=KIND) for e in entered]
        assert entered[0].wait(WAIT) and entered[1].wait(WAIT)
        assert len([t for t in runner_threads() if t.name.startswith("test-lazy")]) == 2
        assert not entered[2].is_set()
        gate.set()
        for task in tasks:
            task.result(WAIT)
    finally:
        runner.shutdown()
