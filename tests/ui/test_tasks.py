"""The GUI task runner: callbacks and signals on the GUI thread, stale results dropped, join on close."""
from __future__ import annotations

import threading

from PySide6.QtCore import QCoreApplication, QThread

from segstudio.core.tasks import TaskKind, runner_threads

WAIT = 5


def test_callbacks_and_signals_arrive_on_the_gui_thread_in_order(qtbot, task_runner):
    gui = QCoreApplication.instance().thread()
    calls, signals, worker = [], [], []

    def body(ctx, total):
        worker.append(threading.current_thread())
        for done in range(1, total + 1):
            ctx.progress(done, total)
        return {"regions": total}

    def note(name):
        return lambda *payload: calls.append((name, payload, QThread.currentThread() is gui))

    for name in ("started", "progress", "returned", "finished"):
        getattr(task_runner, name).connect(lambda *args, n=name: signals.append((n, *args)))
    with qtbot.waitSignal(task_runner.finished, timeout=WAIT * 1000):
        task = task_runner.submit(body, 2, kind=TaskKind.ERROR_REGIONS, on_started=note("started"),
                                  on_progress=note("progress"), on_returned=note("returned"),
                                  on_finished=note("finished"))
    assert worker and worker[0] is not threading.main_thread()
    assert calls == [("started", (), True), ("progress", (1, 2), True), ("progress", (2, 2), True),
                     ("returned", ({"regions": 2},), True), ("finished", (), True)]
    assert signals == [("started", task.id, "error-regions"), ("progress", task.id, 1, 2),
                       ("progress", task.id, 2, 2), ("returned", task.id, {"regions": 2}),
                       ("finished", task.id)]


def test_errored_signal_carries_the_exception(qtbot, task_runner):
    error = OSError("disk gone")
    got = []

    def body(ctx):
        raise error

    with qtbot.waitSignal(task_runner.errored, timeout=WAIT * 1000) as signal:
        task_runner.submit(body, kind=TaskKind.REVIEW_STATS, on_errored=got.append)
    assert signal.args[1] is error
    assert got == [error]


def test_a_superseded_result_is_never_delivered(qtbot, task_runner):
    gate, entered = threading.Event(), threading.Event()
    returned = []

    def old(ctx):
        entered.set()
        assert gate.wait(WAIT)
        return "old"

    finished = []
    task_runner.finished.connect(finished.append)
    first = task_runner.submit(old, kind=TaskKind.ERROR_REGIONS, key="regions", on_returned=returned.append)
    assert entered.wait(WAIT)
    second = task_runner.submit(lambda ctx: "new", kind=TaskKind.ERROR_REGIONS, key="regions",
                                on_returned=returned.append)
    gate.set()
    qtbot.waitUntil(lambda: sorted(finished) == [first.id, second.id])
    assert first.cancelled and returned == ["new"]


def test_join_cancels_waits_and_drops_what_is_still_queued(qtbot):
    from segstudio.ui.tasks import QtTaskRunner

    runner = QtTaskRunner(name="test-join")
    gate, entered = threading.Event(), threading.Event()
    returned = []

    def held(ctx):
        entered.set()
        while not gate.wait(0.01):
            ctx.checkpoint()

    quick = runner.submit(lambda ctx: "done", kind=TaskKind.DECODE_AHEAD, on_returned=returned.append)
    quick.wait(WAIT)                               # returned on the worker; delivery still queued here
    running = runner.submit(held, kind=TaskKind.PRESENCE_SCAN)
    assert entered.wait(WAIT)
    runner.join()
    assert running.done and running.cancelled
    assert not [t for t in runner_threads() if t.name.startswith("test-join")]
    late = runner.submit(lambda ctx: "late", kind=TaskKind.ERROR_REGIONS, on_returned=returned.append)
    assert late.done and late.cancelled            # a late timer in a closing window does not crash it
    QCoreApplication.processEvents()
    assert returned == []                          # nothing reaches the GUI after join


def test_closing_the_window_joins_its_task_runner(qtbot, tmp_path):
    from segstudio.ui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    entered = threading.Event()

    def held(ctx):
        entered.set()
        while True:
            ctx.checkpoint()
            yield

    task = window.task_runner.submit(held, kind=TaskKind.PRESENCE_SCAN)
    assert entered.wait(WAIT)
    window.close()
    assert task.done and task.cancelled
    assert window.task_runner.active() == []
    assert not [t for t in runner_threads() if t.name.startswith("segstudio-tasks")]
