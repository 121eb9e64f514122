"""Cooperative cancellation, importable without torch.

The GUI makes a token on its own thread before torch is loaded (the window must appear first), and
the runner checks the same token between tiles and batches. A forward pass itself cannot be
interrupted; cancellation takes effect at the next check.
"""
from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised at the first check after ``CancelToken.cancel()``."""


class CancelToken:
    """A thread-safe cancel flag checked between tiles and batches."""

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
