"""The label-error queue: regions whose labels a model confidently contradicts, best first.

Find scans the dataset on the task runner (cancellable, with progress) from a folder of per-image class
probabilities (``<image>.npy``, ``(C, H, W)``) or from a source whose predictions carry them. Selecting
a region opens its image, zooms to it and highlights its pixels. **Accept** relabels those pixels to the
suggested class as one undoable edit; **Reject** is remembered in the dataset's project store and the
region is never proposed again; **Skip** moves it to the end. The counts table shows the decisions per
class. The queue's rules live in :mod:`segstudio.core.evaluation.label_error_scan`; this module binds them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from segstudio.core.errors import SegStudioError
from segstudio.core.evaluation.label_error_scan import LabelErrorQueue, ScanItem, folder_pass, scan_label_errors
from segstudio.core.tasks import TaskKind
from segstudio.ui.tables import row_list_table

if TYPE_CHECKING:
    from segstudio.ui.main_window import MainWindow

__all__ = ["LabelErrorDock", "install_label_errors"]

COLUMNS = ("Image", "Given → suggested", "Pixels", "Score")
COUNT_COLUMNS = ("Class", "Accepted", "Rejected")


def _scan_items(session) -> list[ScanItem]:
    """One item per image: live labels of an open document (copied now), else the labels as the session
    loads them (saved corrections first)."""
    items = []
    for index, sample in enumerate(session.dataset.samples):
        document = session.kept_document(sample.name)
        if document is not None and document.gt is not None:
            live = document.gt.copy()
            labels = lambda live=live: live   # noqa: E731 - bound now, read on the worker
        else:   # found on the worker, like the browser's class scan: no file is touched here
            labels = lambda index=index: session.sample_to_load(index).load_mask()   # noqa: E731
        items.append(ScanItem(index, sample, labels))
    return items


class LabelErrorDock(QWidget):
    """Widgets and bindings of the label-error queue (see the module docstring)."""

    scan_finished = Signal(object)       # ScanResult
    decided = Signal(str, object)        # 'accepted' / 'rejected' / 'skipped', the region

    def __init__(self, window: MainWindow, parent: QWidget | None = None):
        super().__init__(parent)
        self.window = window
        self.queue: LabelErrorQueue | None = None
        self._task = None
        self._job: int | None = None
        self._store = None

        self.model_button = QPushButton("Find with the selected model")
        self.model_button.setToolTip("Runs the model dock's model over the dataset twice (thresholds, then regions)")
        self.model_button.clicked.connect(self.scan_model)
        self.folder_button = QPushButton("Find from probabilities folder…")
        self.folder_button.setToolTip("A folder of <image>.npy files, (C, H, W) float16/float32 softmax")
        self.folder_button.clicked.connect(self._choose_folder)
        self.min_area = QSpinBox()
        self.min_area.setRange(1, 1_000_000)
        self.min_area.setValue(16)
        self.min_area.setPrefix("min area ")
        self.min_area.setSuffix(" px")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.summary = QLabel("No scan yet.")
        self.summary.setWordWrap(True)
        self.table = row_list_table(COLUMNS)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_row(row))
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Relabel the region to the suggested class (one undoable edit)")
        self.reject_button = QPushButton("Reject")
        self.reject_button.setToolTip("Not a label error: never propose this region again")
        self.skip_button = QPushButton("Skip")
        self.skip_button.setToolTip("Decide later: move it to the end of the queue")
        self.accept_button.clicked.connect(self.accept_current)
        self.reject_button.clicked.connect(self.reject_current)
        self.skip_button.clicked.connect(self.skip_current)
        self.counts_table = QTableWidget(0, len(COUNT_COLUMNS))
        self.counts_table.setHorizontalHeaderLabels(COUNT_COLUMNS)
        self.counts_table.verticalHeader().setVisible(False)
        self.counts_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.counts_table.setMaximumHeight(140)

        top = QHBoxLayout()
        top.addWidget(self.min_area, 1)
        top.addWidget(self.cancel_button)
        actions = QHBoxLayout()
        for button in (self.accept_button, self.reject_button, self.skip_button):
            actions.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.model_button)
        layout.addWidget(self.folder_button)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)
        layout.addWidget(self.counts_table)
        self._update_buttons()

    # --- scanning -----------------------------------------------------------------------------
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of <image>.npy class probabilities")
        if folder:
            self.scan_folder(folder)

    def scan_folder(self, folder: str):
        """Scan the open dataset with the probabilities in ``folder`` on the task runner; returns the
        task (None when there is nothing to scan)."""
        session = self.window.session
        if session is None:
            return None
        try:
            open_pass = folder_pass(folder, session.class_table.num_classes)
        except SegStudioError as exc:
            self.window.show_error("No probabilities", str(exc))
            return None
        table = session.class_table
        items = _scan_items(session)
        self._started(len(items))
        self._task = self.window.task_runner.submit(
            scan_label_errors, items, open_pass, table.num_classes, table.ignore_index, self.min_area.value(),
            kind=TaskKind.LABEL_ERRORS, key=TaskKind.LABEL_ERRORS,
            on_progress=self._on_progress,
            on_returned=lambda result: self._on_scanned(session, result),
            on_errored=lambda exc: self.window.show_error("Label-error scan failed", str(exc)),
            on_finished=self._on_scan_ended)
        return self._task

    def scan_model(self):
        """Scan with the model selected in the model dock, on the inference lane (two passes over the
        dataset, its probabilities never all in memory); returns the job id (None when nothing runs)."""
        session = self.window.session
        request = self.window.model_dock.request_to_run() if session is not None else None
        if request is None:
            return None
        controller = self.window.controller
        items = _scan_items(session)
        self._started(len(items))
        job = controller.find_label_errors(request, session.dataset, items, self.min_area.value())
        self._job = job

        def progressed(job_id: int, done: int, total: int) -> None:
            if job_id == job:
                self._on_progress(done, total)

        def found(job_id: int, result) -> None:
            if job_id == job:
                self._on_scanned(session, result)

        def ended(job_id: int) -> None:
            if job_id == job:
                for signal, slot in connections:
                    signal.disconnect(slot)
                self._job = None
                self._on_scan_ended()

        connections = [(controller.progress, progressed), (controller.label_errors_found, found),
                       (controller.job_ended, ended)]
        for signal, slot in connections:
            signal.connect(slot)
        return job

    def _started(self, images: int) -> None:
        self._store = self.window.saving.service.store
        self.queue = None
        self.refresh()
        self.progress.setVisible(True)
        self.progress.setRange(0, 2 * max(images, 1))
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.summary.setText(f"Scanning {images} images (two passes)…")

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def cancel(self) -> None:
        """Stop a scan in progress (at the next image)."""
        if self._job is not None:
            self.window.controller.cancel(self._job)
        self.window.task_runner.cancel(TaskKind.LABEL_ERRORS)

    def _on_scan_ended(self) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        if self.queue is None:
            self.summary.setText("Scan cancelled or failed.")

    def _on_scanned(self, session, result) -> None:
        if session is not self.window.session:
            return
        decisions = self._store.label_error_decisions() if self._store is not None else []
        self.queue = LabelErrorQueue(result.regions, decisions, session.class_table.num_classes)
        hidden = len(result.regions) - len(self.queue.pending)
        problems = f"; {len(result.problems)} image(s) could not be read" if result.problems else ""
        if result.missing:
            problems += f"; {len(result.missing)} image(s) without labels or probabilities"
        if result.problems:
            self.summary.setToolTip("\n".join(result.problems[:20]))
        worst = sorted(((q, n) for n, q in result.quality.items() if q is not None))[:3]
        quality = ("\nLowest label quality: " + ", ".join(f"{n} ({q:.2f})" for q, n in worst)) if worst else ""
        self.summary.setText(f"{len(result.regions)} suspected label errors in {len(result.quality)} images"
                             f" ({hidden} already decided){problems}.{quality}")
        self.refresh()
        self.scan_finished.emit(result)
        if self.queue.pending:
            self.table.setCurrentCell(0, 0)

    # --- the queue ----------------------------------------------------------------------------
    def _names(self) -> list[str]:
        return self.window.session.class_table.names if self.window.session is not None else []

    def refresh(self) -> None:
        names = self._names()

        def name(k: int) -> str:
            return names[k] if 0 <= k < len(names) else str(k)

        pending = self.queue.pending if self.queue is not None else []
        self.table.blockSignals(True)
        self.table.setRowCount(len(pending))
        for row, region in enumerate(pending):
            self.table.setItem(row, 0, QTableWidgetItem(region.image))
            self.table.setItem(row, 1, QTableWidgetItem(f"{name(region.given)} → {name(region.suggested)}"))
            for col, text in ((2, f"{region.area:,}"), (3, f"{region.score:.3f}")):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        counts = self.queue.counts() if self.queue is not None else None
        self.counts_table.setRowCount(len(names) if counts is not None else 0)
        if counts is not None:
            for k in range(len(names)):
                self.counts_table.setItem(k, 0, QTableWidgetItem(name(k)))
                for col, key in ((1, "accepted"), (2, "rejected")):
                    item = QTableWidgetItem(str(int(counts[key][k])))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.counts_table.setItem(k, col, item)
        self._update_buttons()

    def _update_buttons(self) -> None:
        has = self.current_region() is not None
        for button in (self.accept_button, self.reject_button, self.skip_button):
            button.setEnabled(has)

    def current_region(self):
        row = self.table.currentRow()
        pending = self.queue.pending if self.queue is not None else []
        return pending[row] if 0 <= row < len(pending) else None

    def _show_row(self, row: int) -> None:
        self._update_buttons()
        region = self.current_region()
        if region is None or self.window.session is None:
            return
        if self.window.document is None or self.window.document.name != region.image:
            if not self.window.go_to(self.window.session.dataset.index_of(region.image)):
                return
        document = self.window.document
        x, y, w, h = region.bbox
        mask = np.zeros(document.shape, bool)
        mask[y:y + h, x:x + w] = region.mask
        self.window.presenter.set_highlight(mask)
        self.window.canvas.center_on_rect(x, y, w, h)

    def _after_decision(self, row: int) -> None:
        self.refresh()
        pending = self.queue.pending
        if pending:
            self.table.blockSignals(True)    # the same row may now hold another region: show it either way
            self.table.setCurrentCell(min(row, len(pending) - 1), 0)
            self.table.blockSignals(False)
            self._show_row(self.table.currentRow())
        else:
            self.window.presenter.set_highlight(None)

    def _decide(self, decision: str):
        region, row = self.current_region(), self.table.currentRow()
        if region is None:
            return None
        made = self.queue.decide(region, decision)
        store = self.window.saving.service.store
        if store is not None:
            store.record_label_error_decision(made)
        self.decided.emit(decision, region)
        self._after_decision(row)
        return made

    def accept_current(self):
        """Relabel the region's pixels to the suggestion (one undoable edit) and record the decision."""
        region = self.current_region()
        if region is None:
            return None
        self._show_row(self.table.currentRow())   # its image is the one shown
        document = self.window.document
        if document is None or document.name != region.image:
            return None
        atom = document.paint_region(region.mask, region.bbox, region.suggested)
        self._decide("accepted")
        return atom

    def reject_current(self):
        """Never propose this region again (remembered in the project store)."""
        return self._decide("rejected")

    def skip_current(self) -> None:
        region, row = self.current_region(), self.table.currentRow()
        if region is None:
            return
        self.queue.skip(region)
        self.decided.emit("skipped", region)
        self._after_decision(row)


def install_label_errors(window) -> LabelErrorDock:
    """The label-error queue dock of ``window`` (``window.label_errors``)."""
    window.label_errors = LabelErrorDock(window)
    return window.label_errors
