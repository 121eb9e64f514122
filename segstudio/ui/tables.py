"""The list-like table the docks share: read-only rows, one selected at a time."""
from __future__ import annotations

from typing import Sequence

from PySide6.QtWidgets import QTableWidget

__all__ = ["row_list_table"]


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
