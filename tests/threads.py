"""Test helper: which threads call a method."""
from __future__ import annotations

import threading


def threads_calling(monkeypatch, owner, name: str) -> list[threading.Thread]:
    """Wrap ``owner.name`` (for the test) so each call appends the calling thread to the returned list."""
    threads: list[threading.Thread] = []
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return threads
