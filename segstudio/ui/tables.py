"""The list-like table the docks share: read-only rows, one selected at a time."""
from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import QAbstractItemModel
from PySide6.QtWidgets import QAbstractItemView, QTableView, QTableWidget

__all__ = ["row_list_table", "row_list_view"]


def row_list_table(columns: Sequence[str]) -> QTableWidget:
    """An empty read-only table with these headers: no row numbers, whole-row single selection, the
    last column stretched to the width."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def row_list_view(model: QAbstractItemModel) -> QTableView:
    """``row_list_table``'s look for a model of any size: rows are formatted only when shown."""
    view = QTableView()
    view.setModel(model)
    view.verticalHeader().setVisible(False)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.horizontalHeader().setStretchLastSection(True)
    return view
