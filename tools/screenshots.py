"""Regenerate the README screenshots in docs/screenshots/ (offscreen, CPU, the bundled demo).

    python -m tools.screenshots                 # light: main_window, dataset_browser, instance_marks,
                                                #        one_class_confusion, editing
    python -m tools.screenshots --theme dark    # main_window_dark.png

Every picture is the real window at 1600x1000 as ``segstudio`` builds it, on a private settings folder
(nothing of the user's layout leaks in), after the demo model has run on the first image by itself as it
does on first launch. The legend and the tool-bar icons are in every shot.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
SIZE = (1600, 1000)


def _settle(app, done, timeout: float = 180.0, what: str = "") -> None:
    """Run the event loop until ``done()`` (a tool, not a test: polling is fine here)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):        # let queued repaints and panel refreshes land
        app.processEvents()
        time.sleep(0.01)


def _save(window, name: str, out: Path) -> Path:
    path = out / name
    window.grab().save(str(path))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--theme", choices=["light", "dark"], default="light")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    settings_dir = tempfile.mkdtemp(prefix="segstudio-shots-")
    os.environ["SEGSTUDIO_SETTINGS_DIR"] = settings_dir
    os.environ["XDG_DATA_HOME"] = settings_dir      # the demo's journal and autosaves stay out of the home folder
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QPointF, QSettings, Qt
    from PySide6.QtWidgets import QApplication

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, settings_dir)
    app = QApplication.instance() or QApplication([])
    app.setApplicationName("segstudio")
    from segstudio.core.editing.selection import ErrorMode
    from segstudio.core.tasks import TaskKind
    from segstudio.ui.compose import build_main_window
    from segstudio.ui.theme import apply_theme

    apply_theme(app, Qt.ColorScheme.Dark if args.theme == "dark" else Qt.ColorScheme.Light)
    args.out.mkdir(parents=True, exist_ok=True)
    window = build_main_window()
    window.resize(*SIZE)
    window.show()
    app.processEvents()
    window.finish_startup(None, device="cpu", demo_tour=True)

    def shown():
        doc = window.document
        return (doc is not None and doc.pred is not None and not window.controller.busy
                and not window.task_runner.active(TaskKind.COMPARISON)
                and not window.task_runner.active(TaskKind.ERROR_REGIONS) and bool(window.regions.regions))

    _settle(app, shown, what="the demo's first error map")
    if args.theme == "dark":
        _save(window, "main_window_dark.png", args.out)
        window.close()
        return 0
    _save(window, "main_window.png", args.out)
    window.dock("dataset").raise_()
    _settle(app, lambda: window.browser.thumbnails.get(1, window.session.names[1]) is not None, what="thumbnails")
    _save(window, "dataset_browser.png", args.out)
    window.dock("regions").raise_()

    window.set_instance_view(True)
    _settle(app, lambda: "instance_marks" in window.canvas.layer_names(), what="instance marks")
    _save(window, "instance_marks.png", args.out)
    window.set_instance_view(False)

    window.select_class(2)
    window.set_error_mode(ErrorMode.ONE)
    panel = window.metrics_panel
    panel.tabs.setCurrentWidget(panel.confusion_plot)
    _settle(app, lambda: True)
    window.highlight_confusion_cell(2, 1)     # dividing nuclei predicted as nuclei
    _settle(app, lambda: "highlight" in window.canvas.layer_names(), what="the highlight")
    _save(window, "one_class_confusion.png", args.out)

    window.set_error_mode(ErrorMode.ALL)
    panel.tabs.setCurrentWidget(panel.table)
    window.select_class(1)
    editor = window.editor
    regions = list(window.regions.regions)
    for region in regions[:3]:                # accept the prediction in the three largest error regions
        window.regions.table.selectRow(regions.index(region))
        editor._cursor = (-1, -1)
        editor.region_action("prediction")
    editor.set_tool("brush")
    window.dock("review").raise_()
    x, y, w, h = regions[0].bbox
    window.canvas.fit_to_window()
    window.canvas.zoom_by(2.0, QPointF(x + w / 2, y + h / 2))
    _settle(app, lambda: not window.task_runner.active(TaskKind.ERROR_REGIONS), what="the regions")
    _save(window, "editing.png", args.out)
    from segstudio.core.editing.service import UnsavedChoice

    window.saving.answer_unsaved_with(UnsavedChoice.DISCARD)   # the demo's labels stay as shipped
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
