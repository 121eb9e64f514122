"""The dataset browser: one row per image with its mean IoU and error pixels once predicted.

Sortable (click "Mean IoU" for worst first) and filterable by a class present in the ground truth.
Selecting or double-clicking a row emits ``image_selected(index)`` with the dataset index.

The class filter never decodes a mask on the GUI thread: it shows the images whose classes are known,
and choosing a class starts a background scan that decodes the others' ground truth and re-filters in
chunks as it goes. Going back to "All classes", a new session or destroying the widget stops the scan.
"""
from __future__ import annotations

import itertools
import math
import threading
import time

from PySide6.QtCore import (QAbstractTableModel, QCoreApplication, QModelIndex, QObject,
                            QSortFilterProxyModel, Qt, Signal)
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QTableView, QVBoxLayout, QWidget

from segstudio.inference.cancel import CancelToken

__all__ = ["DatasetBrowser", "DatasetTableModel"]

COLUMNS = ("#", "Image", "Mean IoU", "Error px")
SORT_ROLE = Qt.ItemDataRole.UserRole
NO_VALUE_IOU = 2.0      # sorts images without a prediction after the worst-first ones


class DatasetTableModel(QAbstractTableModel):
    """Reads rows straight from a :class:`segstudio.core.editing.session.ReviewSession`."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._session = None
        self._names: list[str] = []

    def set_session(self, session) -> None:
        self.beginResetModel()
        self._session = session
        self._names = session.names if session is not None else []
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return 0 if parent.isValid() else len(self._names)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt override
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        name = self._names[row]
        stats = self._session.stats.get(name)
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
        self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))


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


class _PresenceScan:
    """One pass of ``session.learn_classes`` over the images not known yet, on a worker thread."""

    CHUNK = 50            # report at least every 50 images ...
    INTERVAL_S = 0.1      # ... or every 100 ms, whichever comes first

    def __init__(self, scan_id: int, session, report):
        self.id = scan_id
        self.total = len(session)
        self._names = session.unknown_presence()
        self.known = self.total - len(self._names)
        self._session = session
        self._report = report          # report(scan_id, known, total, ended, completed), from the worker
        self._token = CancelToken()
        self.thread = threading.Thread(target=self._run, name="segstudio-presence-scan")

    def cancel(self) -> None:
        self._token.cancel()

    @property
    def cancelled(self) -> bool:
        return self._token.cancelled

    def _run(self) -> None:
        known, completed = self.known, False
        last_report, last_time = known, time.monotonic()
        try:
            for name in self._names:
                if self._token.cancelled:
                    return
                self._session.learn_classes(name)
                known += 1
                if known - last_report >= self.CHUNK or time.monotonic() - last_time >= self.INTERVAL_S:
                    self._report(self.id, known, self.total, False, False)
                    last_report, last_time = known, time.monotonic()
            completed = True
        finally:
            self._report(self.id, known, self.total, True, completed and not self._token.cancelled)


class _PresenceScanner(QObject):
    """Runs :class:`_PresenceScan` jobs; relays the current one's progress on the GUI thread.

    Parentless on purpose: it must outlive the browser's children so that the browser's ``destroyed``
    can stop it, and a scan's last report must find it alive.
    """

    progressed = Signal(int, int)          # images known, total
    ended = Signal(bool)                   # True when every image is known, False when cancelled
    _reported = Signal(int, int, int, bool, bool)

    def __init__(self):
        super().__init__()
        self._ids = itertools.count(1)
        self._current: _PresenceScan | None = None
        self._threads: list[threading.Thread] = []
        self._reported.connect(self._on_reported, Qt.ConnectionType.QueuedConnection)

    @property
    def scanning(self) -> bool:
        return self._current is not None

    def progress(self) -> tuple[int, int] | None:
        """(images known, total) of the scan in progress, None when there is none."""
        return None if self._current is None else (self._current.known, self._current.total)

    def start(self, session) -> None:
        """Scan ``session``'s unknown images unless a scan is already going (no-op when none is unknown)."""
        if self._current is not None or not session.unknown_presence():
            return
        scan = _PresenceScan(next(self._ids), session, self._reported.emit)
        self._current = scan
        self._threads = [t for t in self._threads if t.is_alive()] + [scan.thread]
        scan.thread.start()

    def cancel(self) -> None:
        """Stop the current scan after the mask it is decoding; does not wait."""
        if self._current is not None:
            self._current.cancel()
            self._current = None
            self.ended.emit(False)

    def stop(self) -> None:
        """Cancel and wait for every scan thread (at most one mask decode each), silently.

        Silently because it also runs from the browser's ``destroyed``, when its children are gone.
        """
        if self._current is not None:
            self._current.cancel()
            self._current = None
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _on_reported(self, scan_id: int, known: int, total: int, ended: bool, completed: bool) -> None:
        scan = self._current
        if scan is None or scan.id != scan_id:
            return                          # a cancelled scan's late report
        scan.known = known
        if ended:
            scan.thread.join()              # it has only its return left: no thread outlives the signal
            self._current = None
            self.ended.emit(completed)
        else:
            self.progressed.emit(known, total)


class DatasetBrowser(QWidget):
    """Table of the dataset's images; emits ``image_selected(dataset_index)``."""

    image_selected = Signal(int)
    class_scan_ended = Signal(bool)      # True: every image's classes are known; False: cancelled

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._scanner = _PresenceScanner()
        self._scanner.progressed.connect(self._on_scan_progressed)
        self._scanner.ended.connect(self._on_scan_ended)
        self.destroyed.connect(self._scanner.stop)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._scanner.stop)
        self.model = DatasetTableModel(self)
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

    def set_session(self, session) -> None:
        self._scanner.stop()
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
        """Cancel the class scan and wait for its thread."""
        self._scanner.stop()

    def visible_names(self) -> list[str]:
        """Image names in the order the table shows them."""
        return [self.proxy.index(r, 1).data(SORT_ROLE) for r in range(self.proxy.rowCount())]

    def select_image(self, dataset_index: int) -> None:
        """Highlight the row of ``dataset_index`` without emitting ``image_selected``."""
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
        self._update_count()

    def _on_scan_progressed(self, _known: int, _total: int) -> None:
        self.proxy.refilter()
        self._update_count()

    def _on_scan_ended(self, completed: bool) -> None:
        if completed:
            self.proxy.refilter()
        self._update_count()
        self.class_scan_ended.emit(completed)

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
