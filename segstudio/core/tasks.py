"""One task runner for the background work that is not inference (Qt-free, torch-free).

Decoding the next image ahead, scanning which classes the images hold, ranking images for review,
finding error regions, recording "before" metrics and prefetching a dataset for the inference lane
all go through :class:`TaskRunner`. Every job is a :class:`Task` with an id, a :class:`TaskKind`, a
cooperative cancel and the superqt worker shape of callbacks:

``on_started()`` → ``on_progress(done, total)`` / ``on_yielded(value)`` … → ``on_returned(value)`` or
``on_errored(exc)`` → ``on_finished()``.

Rules the callers rely on:

* **After ``cancel()`` only ``on_finished`` is delivered.** The check is made when a callback is
  *delivered*, so a result that was already computed but not yet delivered when the task was
  cancelled (or superseded by a newer task with the same ``key``) is dropped, never shown stale.
* **Every task gets exactly one ``on_finished``, last**, whether it returned, failed or was cancelled.
* **A failure is never silent:** it goes to ``on_errored`` and ``Task.result()``; a task without
  ``on_errored`` has it logged as well.
* **Callbacks go through ``dispatch(callable)``.** The default calls them on the worker thread; the
  Qt layer (``segstudio.ui.tasks``) passes a dispatch that queues them onto the GUI thread.
* **Long jobs are generators.** A ``fn`` that returns a generator runs in slices: each ``yield`` is a
  checkpoint where a cancelled task stops (the generator is closed, its ``finally`` runs) and where the
  worker runs other queued tasks first if any wait. So a scan of ten thousand masks cannot starve the
  error-region search the user is waiting for, with a pool of only one or two threads. A yielded value
  other than ``None`` is delivered to ``on_yielded``; the generator's ``return`` value is the result.

A forward pass cannot be interrupted, nor can one mask decode: cancellation takes effect at the next
checkpoint (``TaskContext.checkpoint()`` or the next ``yield``).
"""
from __future__ import annotations

import inspect
import itertools
import logging
import threading
import weakref
from collections import deque
from enum import Enum
from typing import Any, Callable, Hashable

__all__ = ["Cancelled", "CancelToken", "Task", "TaskContext", "TaskKind", "TaskRunner", "runner_threads"]

log = logging.getLogger(__name__)

_PENDING, _RUNNING, _DONE = "pending", "running", "done"
_EVENTS = ("started", "progress", "yielded", "returned", "errored", "finished")

# Every thread any runner started, so tests can fail one that leaks a runner (they are daemons, which
# a plain "no non-daemon thread left" check would not see).
_threads: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()


def runner_threads() -> list[threading.Thread]:
    """Threads of any :class:`TaskRunner` that are still alive."""
    return [t for t in list(_threads) if t.is_alive()]


class Cancelled(Exception):
    """Raised at the first check after ``CancelToken.cancel()``."""


class CancelToken:
    """A thread-safe cancel flag checked between steps (tiles, batches, images)."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class TaskKind(Enum):
    """What a task does (shown in logs and signals; lets a caller list or cancel one kind)."""

    DECODE_AHEAD = "decode-ahead"
    PRESENCE_SCAN = "presence-scan"
    REVIEW_STATS = "review-stats"
    ERROR_REGIONS = "error-regions"
    BEFORE_METRICS = "before-metrics"
    COMPARISON = "comparison"
    PREFETCH = "prefetch"
    LOAD_STATISTICS = "load-statistics"
    DISAGREEMENT = "disagreement"
    DISAGREEMENT_REGIONS = "disagreement-regions"
    BOOTSTRAP = "bootstrap"
    LABEL_FIX_IMPACT = "label-fix-impact"
    LABEL_ERRORS = "label-errors"
    THUMBNAILS = "thumbnails"
    PROBE = "probe"                      # a few files of a folder checked before it is opened
    PROMPT_ENCODE = "prompt-encode"      # an image embedding for click-to-segment (the inference lane)
    PROMPT_DECODE = "prompt-decode"      # one click's proposal from a cached embedding


class Task:
    """A handle on one submitted job: ``id`` (increasing per runner), ``kind``, ``key``, cancel, result."""

    def __init__(self, task_id: int, kind: TaskKind, key: Hashable | None, fn: Callable, args: tuple,
                 callbacks: dict[str, Callable], runner: "TaskRunner"):
        self.id = task_id
        self.kind = kind
        self.key = key
        self._fn, self._args = fn, args
        self._generator = None
        self._callbacks = callbacks
        self._runner = runner
        self._token = CancelToken()
        self._state = _PENDING
        self._outcome: tuple[str, Any] = ("cancelled", None)
        self._done = threading.Event()

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.kind.value} {self._state}{' cancelled' if self.cancelled else ''}>"

    @property
    def token(self) -> CancelToken:
        return self._token

    @property
    def cancelled(self) -> bool:
        return self._token.cancelled

    @property
    def done(self) -> bool:
        """``fn`` no longer runs and never will (it returned, raised, or was cancelled)."""
        return self._done.is_set()

    def cancel(self) -> None:
        """Cancel cooperatively: a pending task never runs, a running one stops at its next checkpoint.

        From now on only ``on_finished`` is delivered. Does not wait (see :meth:`wait`).
        """
        self._token.cancel()
        self._runner._withdraw(self)

    def withdraw(self) -> bool:
        """Cancel the task only if it has not started; True when it is withdrawn (will never run)."""
        return self._runner._withdraw(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :attr:`done`; False on timeout."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The return value once done; re-raises the task's exception.

        Raises
        ------
        Cancelled
            The task was cancelled (even if ``fn`` had returned: a cancelled result is stale).
        TimeoutError
            Not done within ``timeout`` seconds.
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"task {self.id} ({self.kind.value}) not done after {timeout} s")
        outcome, value = self._outcome
        if self.cancelled or outcome == "cancelled":
            raise Cancelled()
        if outcome == "errored":
            raise value
        return value


class TaskContext:
    """What ``fn`` receives as its first argument: its task's id, cancel token and progress report."""

    def __init__(self, task: Task, runner: "TaskRunner"):
        self._task = task
        self._runner = runner

    @property
    def task_id(self) -> int:
        return self._task.id

    @property
    def token(self) -> CancelToken:
        return self._task.token

    @property
    def cancelled(self) -> bool:
        return self._task.cancelled

    def checkpoint(self) -> None:
        """Raise :class:`Cancelled` if the task was cancelled (call between steps)."""
        self._task.token.raise_if_cancelled()

    def progress(self, done: int, total: int) -> None:
        """Report progress; delivered to ``on_progress(done, total)`` through the runner's dispatch."""
        self._runner._deliver(self._task, "progress", done, total)


def call_here(callback: Callable[[], None]) -> None:
    """Default dispatch: run the callback at once, on the thread where the event happened (the
    worker, or the thread that cancelled a pending task). Its failure is logged, not raised into the
    runner: a callback's bug must not turn a returned task into a failed one."""
    try:
        callback()
    except Exception:  # noqa: BLE001 - a callback's bug is reported, the runner goes on
        log.exception("task callback failed")


class TaskRunner:
    """A small pool of daemon threads running :class:`Task` s in submission order.

    Parameters
    ----------
    max_workers : int
        Threads in the pool (started on demand, kept until :meth:`shutdown`).
    name : str
        Thread name prefix (threads are ``name-1``, ``name-2``).
    dispatch : callable, optional
        ``dispatch(callable)`` runs a callback where the caller wants it (default: :func:`call_here`).
    listener : callable, optional
        ``listener(task, event, *payload)`` is delivered with every task's callbacks (the Qt layer
        turns it into signals); events are ``'started'``, ``'progress'``, ``'yielded'``,
        ``'returned'``, ``'errored'`` and ``'finished'``.
    """

    def __init__(self, max_workers: int = 1, name: str = "segstudio-tasks",
                 dispatch: Callable[[Callable[[], None]], None] | None = None,
                 listener: Callable[..., None] | None = None):
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.name = name
        self.max_workers = max_workers
        self._dispatch = dispatch or call_here
        self._listener = listener
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[Task] = deque()
        self._live: dict[int, Task] = {}
        self._undelivered: dict[int, Task] = {}   # submitted, end (on_finished) not delivered yet
        self._keyed: dict[Hashable, Task] = {}
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    # --- public API -----------------------------------------------------------------------------
    def submit(self, fn: Callable, *args, kind: TaskKind, key: Hashable | None = None,
               on_started: Callable | None = None, on_progress: Callable | None = None,
               on_yielded: Callable | None = None, on_returned: Callable | None = None,
               on_errored: Callable | None = None, on_finished: Callable | None = None) -> Task:
        """Queue ``fn(context, *args)``; a live task with the same ``key`` is cancelled (superseded).

        After :meth:`shutdown` the task comes back cancelled: it never runs, only ``on_finished`` is
        delivered. A late event (a timer, a queued signal) in a closing window must not crash it.
        """
        callbacks = dict(zip(_EVENTS, (on_started, on_progress, on_yielded, on_returned, on_errored,
                                       on_finished)))
        callbacks = {event: cb for event, cb in callbacks.items() if cb is not None}
        with self._lock:
            superseded = self._keyed.get(key) if key is not None else None
        if superseded is not None:
            superseded.cancel()          # first, so its on_finished comes before the new one's on_started
        with self._lock:
            task = Task(next(self._ids), kind, key, fn, args, callbacks, self)
            if not self._closed:
                self._live[task.id] = task
                self._undelivered[task.id] = task
                if key is not None:
                    self._keyed[key] = task
                self._queue.append(task)
                if len(self._queue) > self._idle and len(self._threads) < self.max_workers:
                    self._start_thread()
                self._wake.notify()
                return task
            task._state = _RUNNING       # settled below, exactly once
        self._settle(task, "cancelled")
        return task

    def cancel(self, key: Hashable) -> None:
        """Cancel the latest task submitted with ``key``, unless its end was delivered already.

        Also drops a result computed but not yet delivered, which ``active()`` no longer lists.
        """
        with self._lock:
            task = self._keyed.get(key)
        if task is not None:
            task.cancel()

    def active(self, kind: TaskKind | None = None) -> list[Task]:
        """Tasks submitted whose end is not delivered yet (of ``kind`` when given), oldest first.

        A task done on its worker still counts until its results reach the dispatch thread, so a
        caller waiting for a kind of work to be over sees its results when it sees it over.
        """
        with self._lock:
            return [t for t in self._undelivered.values() if kind is None or t.kind is kind]

    def shutdown(self, wait: bool = True) -> None:
        """Cancel every task and stop the threads; with ``wait``, join them (a running step finishes).

        Tasks submitted later are cancelled at once. Safe to call twice, and from a callback on a
        worker thread (that thread is not joined: it ends after the callback returns).
        """
        with self._lock:
            self._closed = True
            live = list(self._live.values())
            self._undelivered.clear()        # what is still queued for delivery is dropped with them
            self._wake.notify_all()
        for task in live:
            task.cancel()
        if wait:
            for thread in list(self._threads):
                if thread is not threading.current_thread():
                    thread.join()

    # --- workers --------------------------------------------------------------------------------
    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads) + 1}",
                                  daemon=True)   # shutdown() joins them; a forgotten one must not hang exit
        self._threads.append(thread)
        _threads.add(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._wake.wait()
                    self._idle -= 1
                if not self._queue:
                    return                   # shut down and nothing left to settle
                task = self._queue.popleft()
                first = task._state == _PENDING
                task._state = _RUNNING
            self._step(task, first)

    def _step(self, task: Task, first: bool) -> None:
        outcome, value = self._advance(task, first)
        if outcome is not None:
            self._settle(task, outcome, value)

    def _advance(self, task: Task, first: bool) -> tuple[str | None, Any]:
        """Run ``task`` to its end, or one generator slice when other tasks wait (then it is queued
        again and the outcome is None); returns ``(outcome, value)``."""
        try:
            if first:
                if task.cancelled:           # cancelled between pop and here
                    raise Cancelled()
                self._deliver(task, "started")
                value = task._fn(TaskContext(task, self), *task._args)
                if not inspect.isgenerator(value):
                    return "returned", value
                task._generator = value
            generator = task._generator
            while True:
                if task.cancelled:
                    generator.close()
                    raise Cancelled()
                yielded = next(generator)
                if yielded is not None:
                    self._deliver(task, "yielded", yielded)
                with self._lock:
                    if self._queue and not self._closed:
                        self._queue.append(task)   # let the waiting tasks run; resumed after them
                        return None, None
        except StopIteration as stop:
            return "returned", stop.value
        except Cancelled:
            return "cancelled", None
        except Exception as exc:  # noqa: BLE001 - handed to on_errored / result()
            return "errored", exc

    def _settle(self, task: Task, outcome: str, value: Any = None) -> None:
        if outcome == "cancelled":
            task._token.cancel()             # fn raised Cancelled itself: it counts as cancelled
        with self._lock:
            task._state = _DONE
            task._outcome = (outcome, value)
            task._fn = task._args = task._generator = None   # let go of the arrays it held
            self._live.pop(task.id, None)
        task._done.set()
        if outcome == "errored" and "errored" not in task._callbacks and not task.cancelled:
            log.error("task %d (%s) failed", task.id, task.kind.value, exc_info=value)
        if outcome in ("returned", "errored"):
            self._deliver(task, outcome, value)
        self._deliver(task, "finished")

    def _withdraw(self, task: Task) -> bool:
        """Settle ``task`` as cancelled if it has not started; True when it was pending."""
        with self._lock:
            if task._state != _PENDING:
                return False
            self._queue.remove(task)
            task._state = _RUNNING          # settled below, exactly once
        self._settle(task, "cancelled")
        return True

    def _deliver(self, task: Task, event: str, *payload) -> None:
        callback = task._callbacks.get(event)
        listener = self._listener
        if callback is None and listener is None and event != "finished":
            return

        def deliver() -> None:
            if event == "finished":
                self._forget(task)
            elif task.cancelled:
                return                       # stale: a cancelled task reports nothing but its end
            if listener is not None:
                listener(task, event, *payload)
            if callback is not None:
                callback(*payload)

        self._dispatch(deliver)

    def _forget(self, task: Task) -> None:
        """``task``'s end is delivered: a newer task with its key no longer needs to cancel it.

        Until then it may hold a result not yet delivered, which a supersede must still drop.
        """
        with self._lock:
            self._undelivered.pop(task.id, None)
            if task.key is not None and self._keyed.get(task.key) is task:
                del self._keyed[task.key]
        task._callbacks = {}                 # their closures may hold large arrays
