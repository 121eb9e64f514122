"""``segstudio [PATH] [--predictions DIR] [--model SPEC [--run]]``: the desktop app.

The window goes on screen before anything heavy happens: no pyqtgraph panel, no dataset decoding
(those run in ``MainWindow.finish_startup``, called from the event loop once the window is first
exposed), and no torch at all until a model runs: reviewing a predictions folder never loads it.

``SEGSTUDIO_STARTUP_PROBE=<epoch seconds>`` (used by ``bench/ui_bench.py`` and the tests) prints how
long after that moment the window was first exposed and the first image shown, and whether torch was
already imported at the first expose; when start-up also reads predictions or runs a model, it waits
for those jobs to end and prints whether the first image shows a prediction (and, when a model ran,
when its error map was first on the canvas: ``first_error_map_s``). Then it prints whether torch was
ever imported, the peak resident memory (``max_rss_mb``) and the moment it closes the window
(``closing_at``, epoch seconds). Launched on the bundled demo without arguments, the demo model runs
on the first image by itself, so the first screen shows an error map and metrics.
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


def _max_rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10   # bytes on macOS, KiB elsewhere


def _install_probe(window, launched_at: float, wait_for_jobs: bool, error_map: bool = False):
    """Print the start-up figures (see the module docstring); returns what to call once
    ``finish_startup`` has submitted its jobs."""
    from PySide6.QtCore import QTimer

    seen: set[str] = set()
    wanted = ({"window_shown", "first_image_shown"} | ({"jobs_ended"} if wait_for_jobs else set())
              | ({"first_error_map"} if error_map else set()))

    def record(what: str) -> None:
        if what in seen or what not in wanted:
            return
        seen.add(what)
        print(f"{what}_s {time.time() - launched_at:.4f}", flush=True)
        if what == "window_shown":
            print(f"torch_imported_at_show {'torch' in sys.modules}", flush=True)
        if what == "jobs_ended":
            document = window.document
            shown = document is not None and document.pred is not None
            print(f"prediction_shown {shown}", flush=True)
            stats = window.session.stats.get(document.name) if shown else None
            if stats is not None:
                print(f"image_mean_iou {stats.mean_iou:.6f}", flush=True)
        if seen == wanted:
            print(f"torch_imported {'torch' in sys.modules}", flush=True)
            print(f"max_rss_mb {_max_rss_mb():.0f}", flush=True)
            print(f"closing_at {time.time():.4f}", flush=True)   # the bench times the quit from here
            QTimer.singleShot(0, window.close)

    def check_jobs() -> None:
        from segstudio.core.tasks import TaskKind

        # A prediction is shown once its comparison, built on the task runner, is attached.
        document = window.document
        if document is not None and document.error_codes is not None and "errors" in window.canvas.layer_names():
            record("first_error_map")   # the error-map layer is on the canvas
        # A predictions folder is probed (TaskKind.PROBE) before its job starts.
        if not window.controller.busy and not any(window.task_runner.active(kind)
                                                  for kind in (TaskKind.PROBE, TaskKind.COMPARISON)):
            record("jobs_ended")

    _when_first_exposed(window, lambda: record("window_shown"), defer=False)
    window.document_changed.connect(lambda _doc: record("first_image_shown"))
    # Deferred past the window's own job_ended handling, so a result has reached the canvas by then.
    window.controller.job_ended.connect(lambda _job: QTimer.singleShot(0, check_jobs))
    window.task_runner.finished.connect(lambda _task: QTimer.singleShot(0, check_jobs))
    return lambda: QTimer.singleShot(0, check_jobs)   # start-up may have submitted nothing


def run(args) -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("segstudio")
    app.setOrganizationName("segstudio")
    from segstudio.ui.theme import apply_theme

    apply_theme(app)   # light or dark, following the system

    from segstudio.ui.compose import build_main_window

    window = build_main_window()
    demo_tour = args.path is None and args.predictions is None and not args.run   # the demo runs by itself
    probe_start = os.environ.get(PROBE_ENV)
    runs = bool(args.run or demo_tour)
    started = _install_probe(window, float(probe_start), wait_for_jobs=bool(args.predictions or runs),
                             error_map=runs) if probe_start else (lambda: None)

    def finish_startup() -> None:
        window.finish_startup(args.path, args.model, args.device, predictions=args.predictions, run=args.run,
                              demo_tour=demo_tour)
        started()

    _when_first_exposed(window, finish_startup)
    window.show()
    code = app.exec()
    _exit_now(code)


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown.

    By now the window has closed: edits saved or journalled, settings synced, the inference thread
    and the task runner joined. What is left is Python freeing every module, and with torch loaded
    that alone took 1.3-2.4 s (measured: ``import torch`` then exit), so quitting felt stuck. The
    ``atexit`` handlers still run and the standard streams are flushed; then the process ends.
    """
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe: nothing more to say
            pass
    os._exit(code)
