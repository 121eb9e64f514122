"""Refreshing the panels that summarise the shown image: metrics, error regions, class counts, browser.

They redraw at most every 100 ms while strokes come in (at once after a new prediction), so a burst of
dabs costs one refresh, not one each. Error regions are O(image) (connected components): they are
searched on the task runner once a stroke is committed, one search at a time and keyed, so a result
computed for an older state is dropped.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from segstudio.core.editing.document import ImageDocument
from segstudio.core.evaluation import errormap
from segstudio.core.tasks import TaskKind

if TYPE_CHECKING:
    from segstudio.ui.main_window import MainWindow

__all__ = ["PanelRefresher"]


class PanelRefresher(QObject):
    """Schedules and runs the refreshes of ``window``'s summary panels (see the module docstring)."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.regions_stale = False        # a stroke in progress changed labels the regions predate
        self._panels_timer = QTimer(self, singleShot=True, interval=0)
        self._panels_timer.timeout.connect(self.refresh_panels)
        self._regions_timer = QTimer(self, singleShot=True, interval=250)
        self._regions_timer.timeout.connect(self.refresh_regions)

    def schedule(self, regions_now: bool = False, regions: bool = True) -> None:
        if not self._panels_timer.isActive():
            self._panels_timer.setInterval(0 if regions_now else 100)
            self._panels_timer.start()
        if regions or regions_now:
            self.regions_stale = False
            self._regions_timer.setInterval(0 if regions_now else 250)
            self._regions_timer.start()

    def stop(self) -> None:
        """Nothing may start background work after the window's task runner is joined."""
        self._panels_timer.stop()
        self._regions_timer.stop()

    def refresh_panels(self) -> None:
        window = self.window
        session = window.session
        if session is None:
            return
        window.browser.refresh()
        doc = window.document
        self._update_class_counts(doc)
        if window.metrics_panel is not None:
            image_cm = doc.confusion if doc is not None and doc.pred is not None and doc.gt is not None else None
            window.metrics_panel.show_metrics(image_cm, session.dataset_confusion(), len(session.stats))

    def _update_class_counts(self, doc: ImageDocument | None) -> None:
        panel = self.window.class_panel
        if doc is None or doc.gt is None:
            panel.set_pixel_counts(None, None)
        elif doc.pred is not None:
            panel.set_pixel_counts(doc.confusion.gt_pixels(), doc.confusion.pred_pixels())
        else:
            panel.set_pixel_counts(doc.gt_counts, None)

    def refresh_regions(self) -> None:
        window = self.window
        doc = window.document
        if doc is None or doc.gt is None or doc.pred is None:
            window.task_runner.cancel(TaskKind.ERROR_REGIONS)   # a search for the previous state is not shown
            window.regions.clear("No prediction yet: run the model (Model › Run on this image)"
                                 if doc is None or doc.pred is None else "No ground truth to compare with")
            return
        # The live labels are read without a copy (64 MB at 8192²); a result whose labels changed
        # while it was computed is dropped and searched again once the stroke is committed.
        gt, pred, codes, version = doc.gt, doc.pred, doc.error_codes, doc.labels_version
        ignore, error_class = doc.class_table.ignore_index, doc.error_class
        window.task_runner.submit(lambda _context: errormap.error_regions(gt, pred, ignore, error_class, codes=codes),
                                  kind=TaskKind.ERROR_REGIONS, key=TaskKind.ERROR_REGIONS,
                                  on_returned=lambda regions: self._on_regions_found(doc, version, regions))

    def _on_regions_found(self, document: ImageDocument, version: int, regions) -> None:
        if document is not self.window.document:
            return
        if document.labels_version != version:
            self.regions_stale = True
            if not document.in_stroke:
                self.schedule(regions=True)
            return
        self.window.regions.set_regions(regions, document.class_table.names)
