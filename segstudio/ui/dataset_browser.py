"""The dataset browser: one row per image with its mean IoU and error pixels once predicted.

Sortable (click "Mean IoU" for worst first) and filterable by a class present in the ground truth.
Selecting or double-clicking a row emits ``image_selected(index)`` with the dataset index.

The class filter never decodes a mask on the GUI thread: it shows the images whose classes are known,
and choosing a class starts a background scan that decodes the others' ground truth and re-filters in
chunks as it goes. Going back to "All classes", a new session or destroying the widget stops the scan.
"""
from __future__ import annotations

import logging
import math
import time

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QSize, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from segstudio.core.tasks import TaskKind
from segstudio.ui.thumbnails import STATUS_WORDS, ThumbnailCache, status_icon

__all__ = ["DatasetBrowser", "DatasetTableModel"]

log = logging.getLogger(__name__)

COLUMNS = ("#", "Image", "Mean IoU", "Error px")
SORT_ROLE = Qt.ItemDataRole.UserRole
NO_VALUE_IOU = 2.0      # sorts images without a prediction after the worst-first ones
UNREADABLE_COLOR = QColor(200, 30, 30)
NO_MASK_COLOR = QColor(200, 120, 0)


class DatasetTableModel(QAbstractTableModel):
    """Reads rows straight from a :class:`segstudio.core.editing.session.ReviewSession`."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._session = None
        self._names: list[str] = []
        self._unsubscribe = None
        # Columns another view adds (the A-vs-B comparison): headers and name -> one value per header.
        self._extra_headers: tuple[str, ...] = ()
        self._extra_values = None
        self.thumbnails = None                 # a ThumbnailCache: column "Image" shows previews
        self.status_of = lambda name: "unreviewed"   # review status of an image (the project store's)

    def set_extra_columns(self, headers, values=None) -> None:
        """Add columns after the fixed ones: ``values(name)`` returns one float or None per header
        (shown to three decimals; headers starting with "Δ" signed). ``()`` removes them."""
        self.beginResetModel()
        self._extra_headers, self._extra_values = tuple(headers), values
        self.endResetModel()

    def set_session(self, session) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.beginResetModel()
        self._session = session
        self._names = session.names if session is not None else []
        self.endResetModel()
        if session is not None:
            self._unsubscribe = session.subscribe_statistics(lambda _count: self.refresh())

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self._names)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return len(COLUMNS) + len(self._extra_headers)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section] if section < len(COLUMNS) else self._extra_headers[section - len(COLUMNS)]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        name = self._names[row]
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(row, col, name)
        if role == Qt.ItemDataRole.ToolTipRole and col == 0 and name not in self._session.bad:
            return f"Review status: {STATUS_WORDS.get(self._status(name), 'Unreviewed')}"
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.ForegroundRole):
            return self._problem_data(name, role)
        if col >= len(COLUMNS):
            return self._extra_data(name, col - len(COLUMNS), role)
        stats = self._session.statistics_of(name)   # live, else loaded from an evaluate --stats file
        if col == 0:
            return row + 1 if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE) else None
        if col == 1:
            if role == Qt.ItemDataRole.DisplayRole:
                return name + (" *" if name in self._session.modified_names() else "")
            return name if role == SORT_ROLE else None
        iou = stats.mean_iou if stats is not None else None
        errors = stats.error_pixels if stats is not None else None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if col == 2:
            if role == Qt.ItemDataRole.DisplayRole:
                return "–" if iou is None or math.isnan(iou) else f"{iou:.3f}"
            if role == SORT_ROLE:
                return NO_VALUE_IOU if iou is None or math.isnan(iou) else float(iou)
        if col == 3:
            if role == Qt.ItemDataRole.DisplayRole:
                return "–" if errors is None else f"{errors:,}"
            if role == SORT_ROLE:
                return -1 if errors is None else int(errors)
        return None

    def _extra_data(self, name: str, col: int, role):
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role not in (Qt.ItemDataRole.DisplayRole, SORT_ROLE) or self._extra_values is None:
            return None
        value = self._extra_values(name)[col]
        if role == SORT_ROLE:
            return NO_VALUE_IOU if value is None else float(value)
        if value is None:
            return "–"
        return f"{value:+.3f}" if self._extra_headers[col].startswith("Δ") else f"{value:.3f}"

    def _status(self, name: str) -> str:
        if name in self._session.bad:
            return "unreadable"
        try:
            return self.status_of(name)
        except Exception:   # noqa: BLE001 - a closed store: show the row as unreviewed, never fail a paint
            return "unreviewed"

    def _decoration(self, row: int, col: int, name: str):
        if col == 0:
            return status_icon(self._status(name)).pixmap(18, 18)   # small: the row is a thumbnail high
        if col == 1 and self.thumbnails is not None and name not in self._session.bad:
            return self.thumbnails.get(row, name)
        return None

    def _problem_data(self, name: str, role):
        """An unreadable image's row is red, an image shown without its (unreadable) mask's is
        orange; the tooltip says why."""
        bad, mask = self._session.bad.get(name), self._session.mask_problems.get(name)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"Unreadable image: {bad}" if bad is not None
                    else f"Ground truth not shown: {mask}" if mask is not None else None)
        return UNREADABLE_COLOR if bad is not None else NO_MASK_COLOR if mask is not None else None

    def name_at(self, row: int) -> str:
        return self._names[row]

    def refresh(self, name: str | None = None) -> None:
        """Statistics changed for one image (or all when ``name`` is None)."""
        if not self._names:
            return
        if name is None or name not in self._names:
            first, last = 0, len(self._names) - 1
        else:
            first = last = self._names.index(name)
        self.dataChanged.emit(self.index(first, 0), self.index(last, self.columnCount() - 1))


class _ClassFilter(QSortFilterProxyModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.class_id: int | None = None
        self.session = None

    def set_class(self, class_id: int | None) -> None:
        self.beginFilterChange()
        self.class_id = class_id
        self.endFilterChange()

    def refilter(self) -> None:
        """More images' classes became known."""
        self.beginFilterChange()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:  # noqa: N802
        if self.class_id is None or self.session is None:
            return True
        known = self.session.known_classes(self.sourceModel().name_at(source_row))
        return known is not None and self.class_id in known


def _scan_presence(context, session, names: list[str], known: int, total: int, chunk: int,
                   interval_s: float):
    """Learn the classes of ``names`` one image at a time, reporting (known, total) in chunks.

    A generator: between images the task runner may stop it (cancel) or run a queued task first.
    """
    last_report, last_time = known, time.monotonic()
    for name in names:
        yield
        session.learn_classes(name)
        known += 1
        if known - last_report >= chunk or time.monotonic() - last_time >= interval_s:
            context.progress(known, total)
            last_report, last_time = known, time.monotonic()
    return known


class _PresenceScanner(QObject):
    """Runs one :func:`_scan_presence` task at a time; relays its progress on the GUI thread.

    Parentless on purpose: it must outlive the browser's children so that the browser's ``destroyed``
    can stop it.
    """

    CHUNK = 50            # report at least every 50 images ...
    INTERVAL_S = 0.1      # ... or every 100 ms, whichever comes first

    progressed = Signal(int, int)          # images known, total
    ended = Signal(bool)                   # True when every image is known, False when cancelled

    def __init__(self, task_runner):
        super().__init__()
        self._task_runner = task_runner
        self._task = None
        self._known = self._total = 0

    @property
    def scanning(self) -> bool:
        return self._task is not None

    def progress(self) -> tuple[int, int] | None:
        """(images known, total) of the scan in progress, None when there is none."""
        return None if self._task is None else (self._known, self._total)

    def start(self, session) -> None:
        """Scan ``session``'s unknown images unless a scan is already going (no-op when none is unknown)."""
        names = session.unknown_presence()
        if self._task is not None or not names:
            return
        self._total = len(session)
        self._known = self._total - len(names)
        self._task = self._task_runner.submit(
            _scan_presence, session, names, self._known, self._total, self.CHUNK, self.INTERVAL_S,
            kind=TaskKind.PRESENCE_SCAN, on_progress=self._on_progress,
            on_returned=lambda _known: self._end(True), on_errored=self._on_errored)

    def cancel(self) -> None:
        """Stop the current scan after the mask it is decoding; does not wait."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self.ended.emit(False)

    def stop(self) -> None:
        """Cancel and wait for the scan (at most one mask decode), silently.

        Silently because it also runs from the browser's ``destroyed``, when its children are gone.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            task.wait()

    def _on_progress(self, known: int, total: int) -> None:
        self._known = known
        self.progressed.emit(known, total)

    def _on_errored(self, exc: Exception) -> None:
        log.error("the class scan failed", exc_info=exc)
        self._end(False)

    def _end(self, completed: bool) -> None:
        self._task = None                  # done: its thread already left the scan
        self.ended.emit(completed)


class DatasetBrowser(QWidget):
    """Table of the dataset's images; emits ``image_selected(dataset_index)``.

    ``task_runner`` (the window's ``QtTaskRunner``) runs the class scan.
    """

    image_selected = Signal(int)
    class_scan_ended = Signal(bool)      # True: every image's classes are known; False: cancelled

    def __init__(self, task_runner, parent: QWidget | None = None):
        super().__init__(parent)
        self._scanner = _PresenceScanner(task_runner)
        self._scanner.progressed.connect(self._on_scan_progressed)
        self._scanner.ended.connect(self._on_scan_ended)
        self.destroyed.connect(self._scanner.stop)   # on quit the runner itself joins
        self._shown_index: int | None = None   # the dataset index of the image the window shows
        self.model = DatasetTableModel(self)
        self.thumbnails = ThumbnailCache(task_runner, parent=self)
        self.model.thumbnails = self.thumbnails
        self.thumbnails.thumbnail_ready.connect(self.model.refresh)
        self.proxy = _ClassFilter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setIconSize(QSize(self.thumbnails.side, self.thumbnails.side))
        self.view.verticalHeader().setDefaultSectionSize(self.thumbnails.side + 4)
        self.view.setWordWrap(False)
        header = self.view.horizontalHeader()
        header.setStretchLastSection(False)
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch if col == 1
                                        else QHeaderView.ResizeMode.ResizeToContents)
        self.view.doubleClicked.connect(self._emit_for)
        self.view.activated.connect(self._emit_for)
        self.view.clicked.connect(self._emit_for)
        self.class_filter = QComboBox()
        self.class_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.count_label = QLabel("")
        top = QHBoxLayout()
        top.addWidget(QLabel("Class in GT"))
        top.addWidget(self.class_filter, 1)
        top.addWidget(self.count_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)

    def set_status_source(self, status_of) -> None:
        """``status_of(name)`` gives an image's review status (unreviewed, accepted, fixed, needs_attention)."""
        self.model.status_of = status_of
        self.model.refresh()

    def set_session(self, session) -> None:
        self._scanner.stop()
        self.thumbnails.set_session(session)
        self.proxy.session = session
        self.model.set_session(session)
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem("All classes", None)
        if session is not None:
            for info in session.class_table.classes:
                self.class_filter.addItem(f"{info.id}: {info.name}", info.id)
        self.class_filter.blockSignals(False)
        self.proxy.set_class(None)
        self._update_count()

    def refresh(self, name: str | None = None) -> None:
        self.model.refresh(name)

    def sort_worst_first(self) -> None:
        self.view.sortByColumn(2, Qt.SortOrder.AscendingOrder)

    def filter_class(self, class_id: int | None) -> None:
        """Show only images whose ground truth has ``class_id`` (None: all); returns without decoding."""
        self.class_filter.setCurrentIndex(max(0, self.class_filter.findData(class_id)))

    @property
    def scanning(self) -> bool:
        """A background scan is still learning which classes some images hold."""
        return self._scanner.scanning

    def stop_scan(self) -> None:
        """Cancel the class scan and wait until it has stopped."""
        self._scanner.stop()

    def visible_names(self) -> list[str]:
        """Image names in the order the table shows them."""
        return [self.proxy.index(r, 1).data(SORT_ROLE) for r in range(self.proxy.rowCount())]

    def selected_index(self) -> int | None:
        """The dataset index of the selected row (None when no row is selected)."""
        rows = self.view.selectionModel().selectedRows()
        return self.proxy.mapToSource(rows[0]).row() if rows else None

    def select_image(self, dataset_index: int) -> None:
        """Highlight the row of ``dataset_index`` without emitting ``image_selected``; the row stays
        selected through filtering and sorting (it is the image shown)."""
        self._shown_index = dataset_index
        source = self.model.index(dataset_index, 0)
        proxied = self.proxy.mapFromSource(source)
        self.view.blockSignals(True)
        if proxied.isValid():
            self.view.selectRow(proxied.row())
            self.view.scrollTo(proxied)
        else:
            self.view.clearSelection()
        self.view.blockSignals(False)

    def _on_filter_changed(self, _index: int) -> None:
        class_id = self.class_filter.currentData()
        if class_id is None:
            self._scanner.cancel()
        elif self.proxy.session is not None:
            self._scanner.start(self.proxy.session)
        self.proxy.set_class(class_id)
        self._reselect()
        self._update_count()

    def _on_scan_progressed(self, _known: int, _total: int) -> None:
        self.proxy.refilter()
        self._reselect()
        self._update_count()

    def _on_scan_ended(self, completed: bool) -> None:
        if completed:
            self.proxy.refilter()
            self._reselect()
        self._update_count()
        self.class_scan_ended.emit(completed)

    def _reselect(self) -> None:
        if self._shown_index is not None:
            self.select_image(self._shown_index)

    def _update_count(self) -> None:
        text = f"{self.proxy.rowCount()} of {self.model.rowCount()} images"
        progress = self._scanner.progress()
        if progress is not None:
            text += f" (scanning {progress[0]}/{progress[1]}…)"
        self.count_label.setText(text)

    def _emit_for(self, proxy_index: QModelIndex) -> None:
        source = self.proxy.mapToSource(proxy_index)
        if source.isValid():
            self.image_selected.emit(source.row())
