"""Work around PySide6 builds whose void methods drop a reference to ``None`` on Python < 3.12.

The PySide6 6.12 wheels are built for the stable ABI of a Python where ``None`` is immortal, so a
wrapped C++ method returning ``void`` hands back ``Py_None`` without a new reference. On CPython 3.11
every such call (``QPainter.drawImage``, ``QWidget.resize``, ``QLabel.setText`` ...) lowers ``None``'s
reference count by one; after some ten thousand calls the interpreter aborts with
"Fatal Python error: none_dealloc". A canvas repaints dozens of tiles per frame, so that is seconds.

:func:`guard_none_refcount` measures the leak with a harmless call and, only when it is there, raises
``None``'s count far out of reach — what Python 3.12 does by making ``None`` immortal. Remove this
module once the supported PySide6 / Python pairs no longer leak.
"""
from __future__ import annotations

import ctypes
import logging
import platform
import sys

from PySide6.QtCore import QRect

_HEADROOM = 1 << 40
_PROBE_CALLS = 64
_log = logging.getLogger(__name__)
_guarded = False


def none_refs_dropped_per_call() -> float:
    """How many references to ``None`` one void PySide6 call drops (0 on a sound build)."""
    rect = QRect()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        rect.setWidth(1)
    return (before - sys.getrefcount(None)) / _PROBE_CALLS


def guard_none_refcount() -> bool:
    """Give ``None`` enough references to outlive the leak, when it exists. Returns True if applied."""
    global _guarded
    if _guarded:
        return True
    if sys.version_info >= (3, 12) or platform.python_implementation() != "CPython":
        return False
    if none_refs_dropped_per_call() < 0.5:
        return False
    # ob_refcnt is the first field of every CPython object (non-debug builds).
    ctypes.c_ssize_t.from_address(id(None)).value += _HEADROOM
    _guarded = True
    _log.info("PySide6 void methods drop references to None on this Python; compensating")
    return True
