"""``segstudio [PATH]``: the desktop app.

The window goes on screen before anything heavy happens: no torch import (the worker imports it in
the background once the window is up), no pyqtgraph panel, no dataset decoding. Those run in
``MainWindow.finish_startup``, called from the event loop once the window is first exposed.

``SEGSTUDIO_STARTUP_PROBE=<epoch seconds>`` (used by ``bench/ui_bench.py``) prints how long after that
moment the window was first exposed and the first image shown, and whether torch was already
imported at the first expose, then closes the window.
"""
from __future__ import annotations

import os
import sys
import time

PROBE_ENV = "SEGSTUDIO_STARTUP_PROBE"


def add_arguments(parser) -> None:
    """The GUI's options are the top-level parser's (``segstudio.cli``); nothing to add."""


def _when_first_exposed(window, callback, defer: bool = True) -> None:
    """Call ``callback()`` once ``window`` is first on screen: from the event loop right after
    (``defer``), or straight from the expose event."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    class ExposeWatcher(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.Expose and obj.isExposed():
                obj.removeEventFilter(self)
                QTimer.singleShot(0, callback) if defer else callback()
            return False

    window.winId()  # create the native window so its QWindow exists before show()
    window.windowHandle().installEventFilter(ExposeWatcher(window))


def _install_probe(window, launched_at: float) -> None:
    from PySide6.QtCore import QTimer

    seen: set[str] = set()

    def record(what: str) -> None:
        if what in seen:
            return
        seen.add(what)
        print(f"{what}_s {time.time() - launched_at:.4f}", flush=True)
        if what == "window_shown":
            print(f"torch_imported_at_show {'torch' in sys.modules}", flush=True)
        if seen == {"window_shown", "first_image_shown"}:
            QTimer.singleShot(0, window.close)

    _when_first_exposed(window, lambda: record("window_shown"), defer=False)
    window.document_changed.connect(lambda _doc: record("first_image_shown"))


def run(args) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("segstudio")
    app.setOrganizationName("segstudio")

    from segstudio.ui.edit_controller import EditController
    from segstudio.ui.main_window import MainWindow

    window = MainWindow()
    window.editor = EditController(window)   # tools, Edit menu, saving and the review dock
    probe_start = os.environ.get(PROBE_ENV)
    if probe_start:
        _install_probe(window, float(probe_start))
    _when_first_exposed(window, lambda: window.finish_startup(args.path, args.model, args.device))
    window.show()
    return app.exec()
