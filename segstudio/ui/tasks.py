"""The GUI's task runner: :class:`segstudio.core.tasks.TaskRunner` with its callbacks on the GUI thread.

One :class:`QtTaskRunner` belongs to the main window, which hands it to the widgets that need
background work (dataset browser, review dock, review session, editor). Callbacks of a task
(``on_started`` … ``on_finished``) run on the thread that owns the runner, never on a worker, so they
may touch widgets; every task's events are also emitted as signals carrying its id. The inference
worker (``segstudio.ui.worker``) stays a lane of its own: it holds torch and one model, and runs jobs
one at a time.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal

from segstudio.core.tasks import Task, TaskKind, TaskRunner

__all__ = ["QtTaskRunner"]


class QtTaskRunner(QObject):
    """A small pool for the GUI's background tasks; see :meth:`submit` and :meth:`join`.

    Parameters
    ----------
    max_workers : int
        Pool threads (started on demand). Two: one long scan and one short job at a time, and long
        jobs are generators that let queued ones run between their slices.
    """

    started = Signal(int, str)             # task id, kind
    progress = Signal(int, int, int)       # task id, done, total
    yielded = Signal(int, object)          # task id, value a generator task yielded
    returned = Signal(int, object)         # task id, result
    errored = Signal(int, object)          # task id, exception
    finished = Signal(int)                 # task id; last, also for cancelled tasks
    _posted = Signal(object)               # a delivery from a worker, queued to this object's thread

    def __init__(self, max_workers: int = 2, name: str = "segstudio-tasks", parent: QObject | None = None):
        super().__init__(parent)
        self._joined = False
        self._posted.connect(self._run_posted, Qt.ConnectionType.QueuedConnection)
        self._runner = TaskRunner(max_workers, name, dispatch=self._posted.emit, listener=self._relay)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.join)     # a window destroyed without closing still joins

    def submit(self, fn: Callable, *args, kind: TaskKind, **options) -> Task:
        """Queue ``fn(context, *args)``; ``options`` are ``key`` and the ``on_*`` callbacks of
        :meth:`segstudio.core.tasks.TaskRunner.submit`, called on this object's thread."""
        return self._runner.submit(fn, *args, kind=kind, **options)

    def cancel(self, key) -> None:
        """Cancel the latest task submitted with ``key``; a result it has not delivered is dropped."""
        self._runner.cancel(key)

    def active(self, kind: TaskKind | None = None) -> list[Task]:
        """Tasks submitted and not yet done (of ``kind`` when given)."""
        return self._runner.active(kind)

    def join(self) -> None:
        """Cancel every task and wait for the threads (each finishes the step it is in).

        Called when the window closes. Deliveries still queued are dropped: after ``join`` no
        callback runs, so none reaches a widget that is being torn down, and a task submitted
        later (a late timer or queued signal) is cancelled at once.
        """
        self._joined = True
        self._runner.shutdown(wait=True)

    def _run_posted(self, deliver) -> None:
        if not self._joined:
            deliver()

    def _relay(self, task: Task, event: str, *payload) -> None:
        if event == "started":
            payload = (task.kind.value,)
        getattr(self, event).emit(task.id, *payload)
