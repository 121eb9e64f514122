"""The review dock: the dataset ordered worst first, each image's review status and note, export.

Orders come from ``core.editing.review.review_order``: worst mean IoU, most error pixels, or most likely label
errors (pixels where the model's confidence is at least the threshold and it disagrees with the
ground truth). Images without a prediction are listed after the ranked ones, in dataset order.
Statuses and notes are written to the project store at once. "Next to review" (N) asks the window for
the next unreviewed or needs-attention image in the queue after the current one.

Images that are not open need their ground truth decoded to be ranked: that happens on the window's
task runner (:class:`_StatsComputer`), and the table fills in as results arrive; until then such an
image is listed with the unranked ones. "Load statistics…" reads the per-image figures of an earlier
``segstudio evaluate --stats`` run (Parquet) into the session instead: a 100,000-image evaluation is
ranked at once, nothing decoded; an image edited since is ranked from its live figures again.
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout, QHBoxLayout,
                               QLabel, QLineEdit, QMessageBox, QPushButton, QVBoxLayout, QWidget)

from segstudio.core.errors import SegStudioError
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.editing.review import (DEFAULT_CONFIDENCE_THRESHOLD, ImageReviewStats, export_review,
                                   image_review_stats, metrics_summary, review_stats_of, next_to_review, record_metrics,
                                   review_order)
from segstudio.core.editing.store import STATUSES
from segstudio.core.tasks import TaskKind
from segstudio.ui.tables import row_list_view

__all__ = ["ReviewDock", "ORDER_LABELS", "STATUS_LABELS"]

ORDER_LABELS = {"mean_iou": "Worst mean IoU", "error_pixels": "Most error pixels",
                "label_errors": "Likely label errors"}
STATUS_LABELS = {"unreviewed": "Unreviewed", "accepted": "Accepted", "fixed": "Fixed",
                 "needs_attention": "Needs attention"}
TO_REVIEW = ("unreviewed", "needs_attention")
COLUMNS = ("Image", "Status", "Mean IoU", "Error px", "Likely errors")

log = logging.getLogger(__name__)


def _stats_from_disk(task, num_classes: int, ignore_index: int, threshold: float) -> ImageReviewStats | None:
    """Decode one image's ground truth and rank it against its prediction (safe on a worker thread)."""
    name, _generation, sample, pred, confidence = task
    try:
        gt = sample.load_mask()
    except (SegStudioError, OSError):
        return None
    if gt is None or gt.shape != pred.shape:
        return None
    return image_review_stats(name, gt, pred, num_classes, ignore_index, confidence, threshold)


def _read_statistics(_context, path: str, class_names: list[str]) -> dict:
    """``read_stats`` on the task runner (pyarrow imported there, not on the GUI thread)."""
    from segstudio.core.evaluation.stats import read_stats  # noqa: PLC0415 - pyarrow is optional

    return read_stats(path, class_names)


def _rank_from_disk(_context, images: list, args: tuple, chunk_size: int, interval_s: float):
    """Rank ``images`` with :func:`_stats_from_disk`, yielding results in chunks; returns the rest.

    A generator: between images the task runner may stop it (cancel) or run a queued task first.
    """
    chunk, last_time = [], time.monotonic()
    for image in images:
        chunk.append((image[0], image[1], _stats_from_disk(image, *args)))
        due = len(chunk) >= chunk_size or time.monotonic() - last_time >= interval_s
        yield chunk if due else None
        if due:
            chunk, last_time = [], time.monotonic()
    return chunk


class _StatsComputer(QObject):
    """Runs one :func:`_rank_from_disk` task at a time; its chunks arrive as ``computed``.

    Parentless on purpose: the dock's ``destroyed`` (emitted after its children are gone) stops it.
    """

    CHUNK = 100           # report every 100 images ...
    INTERVAL_S = 0.3      # ... or 300 ms: each report rebuilds the dock's table

    computed = Signal(object)  # [(name, generation, ImageReviewStats | None)], on the GUI thread

    def __init__(self, task_runner):
        super().__init__()
        self._task_runner = task_runner
        self._task = None

    @property
    def busy(self) -> bool:
        return self._task is not None

    def submit(self, images: list, num_classes: int, ignore_index: int, threshold: float) -> None:
        """Start on ``images`` (name, generation, sample, pred, confidence); the caller checks ``busy``."""
        self.stop()
        self._task = self._task_runner.submit(
            _rank_from_disk, images, (num_classes, ignore_index, threshold), self.CHUNK, self.INTERVAL_S,
            kind=TaskKind.REVIEW_STATS, on_yielded=self.computed.emit, on_returned=self._on_ended,
            on_errored=self._on_errored)

    def stop(self) -> None:
        """Cancel the job and wait until it has stopped (at most one image), without reporting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            task.wait()

    def _on_errored(self, exc: Exception) -> None:
        log.error("ranking images for review failed", exc_info=exc)
        self._on_ended([])

    def _on_ended(self, chunk: list) -> None:
        self._task = None
        self.computed.emit(chunk)          # after the job ended the dock may start the next


class _QueueModel(QAbstractTableModel):
    """The queue's rows, formatted when the view asks (only the visible ones)."""

    def __init__(self, dock: ReviewDock):
        super().__init__(dock)
        self.dock = dock
        self.order: list[str] = []
        self.statuses: dict[str, str] = {}

    def reset(self, order: list[str], statuses: dict[str, str]) -> None:
        self.beginResetModel()
        self.order, self.statuses = list(order), dict(statuses)
        self.endResetModel()

    def current_changed(self) -> None:
        if self.order:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.order) - 1, 0),
                                  [Qt.ItemDataRole.FontRole])

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self.order)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        name = self.order[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.dock.cells(name, self.statuses)[index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() >= 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and index.column() == 0 and name == self.dock.current:
            font = QFont()
            font.setBold(True)
            return font
        return None


class ReviewDock(QWidget):
    """Review queue, status buttons, note, next-to-review and export (see the module docstring)."""

    image_requested = Signal(int)        # dataset index to show
    status_changed = Signal(str, str)    # image name, status
    exported = Signal(str)               # path written
    statistics_loaded = Signal(str, int)  # statistics file, images it ranked

    def __init__(self, task_runner, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = None
        self.store = None
        self.current: str | None = None
        self.before_export = None        # callable run before exporting (records live metrics)
        self._stats: dict[str, ImageReviewStats | None] = {}
        self._order: list[str] = []
        self._orders: dict[str, object] = {}   # order key -> names() of an order another view provides
        # Stats of images that are not open come from the worker; a result is kept only if its image
        # was not invalidated since it was asked for (same generation).
        self._wanted: set[str] = set()
        self._generations: dict[str, int] = {}
        self._epoch = 0
        self._stale_loaded: set[str] = set()   # loaded figures that an edit has made out of date
        self._unsubscribe = None
        self._task_runner = task_runner
        self._statistics_task = None
        self._computer = _StatsComputer(task_runner)
        self._computer.computed.connect(self._on_computed)
        self.destroyed.connect(self._computer.stop)   # on quit the runner itself joins

        self.order_combo = QComboBox()
        for key, label in ORDER_LABELS.items():
            self.order_combo.addItem(label, key)
        self.order_combo.currentIndexChanged.connect(self.refresh)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setSingleStep(0.01)
        self.threshold_spin.setValue(DEFAULT_CONFIDENCE_THRESHOLD)
        self.threshold_spin.setToolTip("Confidence at or above which a disagreement counts as a likely label error")
        self.threshold_spin.valueChanged.connect(self.refresh)
        top = QHBoxLayout()
        top.addWidget(QLabel("Order"))
        top.addWidget(self.order_combo, 1)
        top.addWidget(QLabel("conf ≥"))
        top.addWidget(self.threshold_spin)

        self._model = _QueueModel(self)
        self.table = row_list_view(self._model)
        self.table.clicked.connect(lambda index: self._request(self._order[index.row()]))

        self.status_group = QButtonGroup(self)
        self.status_buttons: dict[str, QPushButton] = {}
        status_grid = QGridLayout()      # 2 x 2 keeps the dock narrow enough to share a tab
        for i, status in enumerate(STATUSES):
            button = QPushButton(STATUS_LABELS[status])
            button.setCheckable(True)
            self.status_group.addButton(button)
            self.status_buttons[status] = button
            button.clicked.connect(lambda _=False, s=status: self.set_status(s))
            status_grid.addWidget(button, i // 2, i % 2)
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("Note for this image")
        self.note_edit.textEdited.connect(self._on_note_edited)
        self.next_button = QPushButton("Next to review (N)")
        self.next_button.clicked.connect(self.go_next)
        self.csv_button = QPushButton("Export CSV…")
        self.json_button = QPushButton("Export JSON…")
        self.csv_button.clicked.connect(lambda: self._choose_export("csv"))
        self.json_button.clicked.connect(lambda: self._choose_export("json"))
        self.load_stats_button = QPushButton("Load stats…")
        self.load_stats_button.setToolTip("Rank from the per-image statistics of 'segstudio evaluate --stats' "
                                          "(Parquet) instead of computing them")
        self.load_stats_button.clicked.connect(self._choose_statistics)
        self.stats_label = QLabel("")
        self.stats_label.setVisible(False)       # shown once a file is loaded: no space taken before
        bottom = QGridLayout()
        bottom.addWidget(self.next_button, 0, 0, 1, 3)
        bottom.addWidget(self.csv_button, 1, 0)
        bottom.addWidget(self.json_button, 1, 1)
        bottom.addWidget(self.load_stats_button, 1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.stats_label)
        layout.addLayout(status_grid)
        layout.addWidget(self.note_edit)
        layout.addLayout(bottom)
        self._sync_current_widgets()

    # --- sources --------------------------------------------------------------------------------
    def set_source(self, session, store) -> None:
        """Review ``session``'s images with statuses and notes kept in ``store`` (either may be None)."""
        self._computer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.session, self.store = session, store
        self._stale_loaded = set()
        self.stats_label.setText("")
        self.stats_label.setVisible(False)
        if session is not None:
            self._unsubscribe = session.subscribe_statistics(self._on_statistics_loaded)
        self._stats = {}
        self._wanted = set()
        self._epoch += 1
        self.current = session.current_name if session is not None and len(session) else None
        self.refresh()

    def set_current(self, name: str | None) -> None:
        self.current = name
        self._sync_current_widgets()
        self._highlight_current()

    def invalidate(self, name: str | None = None) -> None:
        """Labels or prediction of ``name`` (or of every image) changed; recompute on the next refresh."""
        if name is None:
            self._stats = {}
            self._epoch += 1
        else:
            self._stats.pop(name, None)
            self._stale_loaded.add(name)
            self._generations[name] = self._generations.get(name, 0) + 1

    @property
    def computing(self) -> bool:
        """Statistics of some images are still being computed in the background."""
        return self._computer.busy or bool(self._wanted)

    @property
    def order_key(self) -> str:
        return self.order_combo.currentData()

    def add_order(self, key: str, label: str, names) -> None:
        """Offer another order: ``names()`` lists image names first to last (e.g. the A-vs-B
        comparison's "where B got worse first"); the images it leaves out follow in dataset order."""
        if key not in self._orders:
            self.order_combo.addItem(label, key)
        self._orders[key] = names
        if self.order_key == key:
            self.refresh()

    def set_order(self, key: str) -> None:
        """Choose the order ``key`` (one of ``ORDER_LABELS`` or one added with :meth:`add_order`)."""
        index = self.order_combo.findData(key)
        if index >= 0:
            self.order_combo.setCurrentIndex(index)

    @property
    def threshold(self) -> float:
        return float(self.threshold_spin.value())

    # --- queue ----------------------------------------------------------------------------------
    def _image_stats(self, name: str) -> ImageReviewStats | None:
        """Known statistics of ``name``; an image that is not open is queued for the worker (None now)."""
        if name in self._stats:
            return self._stats[name]
        session = self.session
        result = None
        document = session.document if session.current_name == name else None
        loaded = session.loaded_statistics.get(name) if name not in self._stale_loaded else None
        if document is not None and document.gt is not None and document.pred is not None:
            result = review_stats_of(name, document.comparison, self.threshold)   # O(C²), live
        elif loaded is not None:
            result = ImageReviewStats(name, loaded.mean_iou, int(loaded.error_pixels or 0), None, self.threshold)
        elif name in session.predictions:
            self._wanted.add(name)
            return None
        self._stats[name] = result
        return result

    def _generation(self, name: str) -> tuple[int, int]:
        return self._epoch, self._generations.get(name, 0)

    def _tasks(self, names) -> list:
        session = self.session
        return [(name, self._generation(name), session.sample_to_load(session.dataset.index_of(name)),
                 session.predictions[name].mask, session.predictions[name].confidence)
                for name in names if name in session.predictions]

    def _compute_wanted(self) -> None:
        if self._computer.busy or not self._wanted or self.session is None:
            return
        order = {n: i for i, n in enumerate(self.session.names)}
        wanted = sorted((n for n in self._wanted if n not in self._stats), key=lambda n: order.get(n, -1))
        self._wanted = set()
        table = self.session.class_table
        self._computer.submit(self._tasks(wanted), table.num_classes, table.ignore_index, self.threshold)

    def _on_computed(self, chunk: list) -> None:
        for name, generation, stats in chunk:
            if generation == self._generation(name) and name not in self._stats:
                self._stats[name] = stats
        self.refresh()

    def queue(self) -> list[str]:
        """Image names in review order (ranked first, then images without a figure)."""
        if self.session is None:
            return []
        names = self.session.names
        ranked = [s for s in (self._image_stats(n) for n in names) if s is not None]
        self._compute_wanted()
        if self.order_key in self._orders:
            order = [n for n in self._orders[self.order_key]() if n in set(names)]
        else:
            order = review_order(ranked, by=self.order_key, threshold=self.threshold)
        seen = set(order)
        return order + [n for n in names if n not in seen]

    def statuses(self) -> dict[str, str]:
        return self.store.statuses() if self.store is not None else {}

    def next_name(self) -> str | None:
        """Next unreviewed or needs-attention image after the current one in queue order."""
        return next_to_review(self.queue(), self.statuses(), self.current, wanted=TO_REVIEW)

    def go_next(self) -> str | None:
        """Ask for the next image to review; returns its name (None when all are reviewed)."""
        name = self.next_name()
        if name is not None:
            self._request(name)
        return name

    def _request(self, name: str) -> None:
        if self.session is not None:
            self.image_requested.emit(self.session.dataset.index_of(name))

    # --- status and note ------------------------------------------------------------------------
    def set_status(self, status: str) -> None:
        """Set the current image's review status (stored at once)."""
        if self.store is None or self.current is None:
            return
        self.store.set_status(self.current, status)
        self.status_changed.emit(self.current, status)
        self._sync_current_widgets()
        self.refresh()

    def _on_note_edited(self, text: str) -> None:
        if self.store is not None and self.current is not None:
            self.store.set_note(self.current, text)

    def _sync_current_widgets(self) -> None:
        enabled = self.store is not None and self.current is not None
        status = self.store.status(self.current) if enabled else "unreviewed"
        self.status_group.setExclusive(False)
        for key, button in self.status_buttons.items():
            button.setEnabled(enabled)
            button.setChecked(key == status)
        self.status_group.setExclusive(True)
        self.note_edit.setEnabled(enabled)
        note = self.store.note(self.current) if enabled else ""
        if self.note_edit.text() != note:
            self.note_edit.setText(note)

    # --- table ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        self._order = self.queue()
        # The model formats only the rows the view shows: a 100,000-image queue refreshes in the
        # time of its sort, not of 500,000 table items.
        self._model.reset(self._order, self.statuses())
        self._sync_current_widgets()

    def cells(self, name: str, statuses: dict[str, str]) -> tuple[str, ...]:
        """The text of ``name``'s row."""
        stats = self._stats.get(name)
        errors = stats.label_errors_at(self.threshold) if stats is not None else None
        iou = stats.mean_iou if stats is not None else None
        return (name, STATUS_LABELS[statuses.get(name, "unreviewed")],
                "–" if iou is None or math.isnan(iou) else f"{iou:.3f}",
                "–" if stats is None else f"{stats.error_pixels:,}",
                "–" if errors is None else f"{errors:,}")

    def _highlight_current(self) -> None:
        self._model.current_changed()

    def rows(self) -> list[tuple[str, ...]]:
        """The table's text, row by row (tests, debugging)."""
        model = self._model
        return [tuple(model.data(model.index(r, c)) for c in range(model.columnCount()))
                for r in range(model.rowCount())]

    # --- statistics of an earlier evaluation ------------------------------------------------------
    def _choose_statistics(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load statistics", "", "Parquet (*.parquet)")
        if path:
            self.load_statistics_in_background(path)

    def load_statistics_in_background(self, path: str) -> None:
        """``load_statistics`` with the file read on the task runner (100,000 rows take a second or
        two); ``statistics_loaded`` when applied, a message box naming the reason when refused."""
        if self.session is None:
            return
        session = self.session
        if self._statistics_task is not None:
            self._statistics_task.cancel()
        self.stats_label.setText(f"Reading {path.rsplit('/', 1)[-1]}…")
        self.stats_label.setVisible(True)

        def returned(statistics) -> None:
            self._statistics_task = None
            if self.session is session:        # a file read for another dataset is dropped
                self._apply_statistics(path, statistics)

        def errored(exc: Exception) -> None:
            self._statistics_task = None
            self.stats_label.setVisible(False)
            QMessageBox.warning(self, "Load statistics", str(exc))

        self._statistics_task = self._task_runner.submit(
            _read_statistics, path, list(session.class_table.names), kind=TaskKind.LOAD_STATISTICS,
            on_returned=returned, on_errored=errored)

    def load_statistics(self, path: str) -> int:
        """Rank (and show in the dataset browser) from an ``evaluate --stats`` file; returns the
        number of this dataset's images it holds.

        Raises
        ------
        StatisticsError
            pyarrow missing, not a statistics file, or other classes than the session's.
        """
        from segstudio.core.evaluation.stats import read_stats  # noqa: PLC0415 - pyarrow is optional

        if self.session is None:
            return 0
        return self._apply_statistics(path, read_stats(path, self.session.class_table.names))

    def _apply_statistics(self, path: str, statistics: dict) -> int:
        count = self.session.load_statistics(statistics)   # -> _on_statistics_loaded
        self.stats_label.setText(f"Ranked from {path.rsplit('/', 1)[-1]}: {count:,} images")
        self.stats_label.setVisible(True)
        self.statistics_loaded.emit(str(path), count)
        return count

    def _on_statistics_loaded(self, _count: int) -> None:
        self._stale_loaded = set()
        self._stats = {n: s for n, s in self._stats.items()
                       if self.session is not None and self.session.document is not None
                       and n == self.session.current_name}
        self.refresh()

    # --- export ---------------------------------------------------------------------------------
    def _choose_export(self, suffix: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export review", f"review.{suffix}",
                                              f"{suffix.upper()} (*.{suffix})")
        if path:
            self.export_to(path)

    def export_to(self, path: str) -> list[dict]:
        """Write statuses, notes and before/after metrics of every image to ``path`` (.csv / .json)."""
        if self.store is None or self.session is None:
            return []
        if self.before_export is not None:
            self.before_export()
        self._finish_stats_now()
        self._fill_unedited_metrics()
        rows = export_review(path, self.store, self.session.names)
        self.exported.emit(str(path))
        return rows

    def _finish_stats_now(self) -> None:
        """The export needs every scored image's figures: compute here what the worker has not yet."""
        self._computer.stop()
        missing = [n for n in self.session.names if n in self.session.predictions and n not in self._stats]
        self._wanted = set()
        table = self.session.class_table
        for task in self._tasks(missing):
            self._stats[task[0]] = _stats_from_disk(task, table.num_classes, table.ignore_index, self.threshold)

    def _fill_unedited_metrics(self) -> None:
        """Images scored but never edited: their metrics are the same before and after."""
        table = self.session.class_table
        for name, stats in self.session.stats.items():
            stored = self.store.metrics(name) or {}
            if stored.get("before") is not None and stored.get("after") is not None:
                continue
            cm = ConfusionMatrix(table.num_classes, table.ignore_index)
            cm.matrix = np.asarray(stats.confusion, dtype=np.int64).copy()
            review = self._stats.get(name)
            summary = metrics_summary(cm, review.label_errors_at(self.threshold) if review is not None else None)
            record_metrics(self.store, name, before=stored.get("before") or summary,
                           after=stored.get("after") or summary)
