"""The selected class and the error-map mode: one owner, which notifies.

The selected class is what the brush paints, what the metrics panel reports a stroke's change for
(``ImageDocument`` reads it when it builds a ``MetricsDelta``) and, in :attr:`ErrorMode.ONE`, the
class the error map shows. It used to be copied into the window, the editor and each document by
whoever changed it, and a copy missed was a wrong number on screen; now there is this one object,
given to documents when they are built and observed by the widgets.
"""
from __future__ import annotations

from enum import Enum
from typing import Callable

__all__ = ["ErrorMode", "Selection"]


class ErrorMode(Enum):
    """Which errors the error map shows."""

    ALL = "all"      # every class
    ONE = "one"      # true/false positives and negatives of the selected class


class Selection:
    """The selected class id and the error-map mode; :meth:`subscribe` to hear every change."""

    def __init__(self, class_id: int = 1, error_mode: ErrorMode = ErrorMode.ALL):
        self._class_id = int(class_id)
        self._error_mode = error_mode
        self._listeners: list[Callable[[Selection], None]] = []

    @property
    def class_id(self) -> int:
        return self._class_id

    @property
    def error_mode(self) -> ErrorMode:
        return self._error_mode

    @property
    def error_class(self) -> int | None:
        """The class the error map is restricted to (None: all classes)."""
        return self._class_id if self._error_mode is ErrorMode.ONE else None

    def select_class(self, class_id: int) -> None:
        if int(class_id) != self._class_id:
            self._class_id = int(class_id)
            self._notify()

    def set_error_mode(self, mode: ErrorMode) -> None:
        if mode is not self._error_mode:
            self._error_mode = mode
            self._notify()

    def subscribe(self, callback: Callable[[Selection], None]) -> Callable[[], None]:
        """Call ``callback(selection)`` after every change; returns the unsubscriber."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback(self)
