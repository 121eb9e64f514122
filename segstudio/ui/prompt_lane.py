"""The inference lane in the task runner's shape, for the prompt engine's image encoder.

Image embeddings belong where inference runs (one thread, the GPU when there is one), after the
predictions already queued there; :class:`InferenceLane` submits them to the window's
``InferenceController`` as ``call`` jobs and delivers their outcome to the ``on_*`` callbacks on the
GUI thread, like ``QtTaskRunner`` does for its tasks.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject

__all__ = ["InferenceLane"]


class _LaneContext:
    """What a task function receives first; a forward pass cannot be interrupted, so no cancel."""

    cancelled = False

    def checkpoint(self) -> None:
        return None


class InferenceLane(QObject):
    """``submit(fn, *args, kind=, on_returned=, on_errored=, on_finished=)`` onto the inference worker."""

    def __init__(self, controller, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self._callbacks: dict[int, tuple] = {}
        controller.called.connect(self._on_called)
        controller.job_ended.connect(self._on_ended)

    def submit(self, fn: Callable, *args, kind=None, key=None, on_returned=None, on_errored=None,
               on_finished=None) -> int:
        job = self.controller.call(fn, _LaneContext(), *args)
        self._callbacks[job] = (on_returned, on_errored, on_finished)
        return job

    def cancel(self, key) -> None:
        """Nothing to cancel: an encoding is computed once and cached whoever asked for it."""

    @property
    def pending(self) -> int:
        return len(self._callbacks)

    def _on_called(self, job: int, outcome) -> None:
        callbacks = self._callbacks.get(job)
        if callbacks is None:
            return
        kind, value = outcome
        callback = callbacks[0] if kind == "returned" else callbacks[1]
        if callback is not None:
            callback(value)

    def _on_ended(self, job: int) -> None:
        callbacks = self._callbacks.pop(job, None)
        if callbacks is not None and callbacks[2] is not None:
            callbacks[2]()
