"""The dataset browser: one row per image with its mean IoU and error pixels once predicted.

Sortable (click "Mean IoU" for worst first) and filterable by a class present in the ground truth.
Selecting or double-clicking a row emits ``image_selected(index)`` with the dataset index.
"""
from __future__ import annotations

import math

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal)
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QTableView, QVBoxLayout, QWidget

__all__ = ["DatasetBrowser", "DatasetTableModel"]

COLUMNS = ("#", "Image", "Mean IoU", "Error px")
SORT_ROLE = Qt.ItemDataRole.UserRole
NO_VALUE_IOU = 2.0      # sorts images without a prediction after the worst-first ones


class DatasetTableModel(QAbstractTableModel):
    """Reads rows straight from a :class:`segstudio.core.session.ReviewSession`."""

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

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:  # noqa: N802
        if self.class_id is None or self.session is None:
            return True
        name = self.sourceModel().name_at(source_row)
        return self.class_id in self.session.classes_present(name)


class DatasetBrowser(QWidget):
    """Table of the dataset's images; emits ``image_selected(dataset_index)``."""

    image_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
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
        self.class_filter.setCurrentIndex(max(0, self.class_filter.findData(class_id)))

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
        self.proxy.set_class(self.class_filter.currentData())
        self._update_count()

    def _update_count(self) -> None:
        self.count_label.setText(f"{self.proxy.rowCount()} / {self.model.rowCount()}")

    def _emit_for(self, proxy_index: QModelIndex) -> None:
        source = self.proxy.mapToSource(proxy_index)
        if source.isValid():
            self.image_selected.emit(source.row())
