"""The list-like tables the docks share (read-only rows, one selected at a time) and their scroll area."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

from PySide6.QtCore import QAbstractItemModel, Qt
from PySide6.QtWidgets import QAbstractItemView, QFrame, QHeaderView, QScrollArea, QTableView, QTableWidget, QWidget

__all__ = ["row_list_table", "row_list_view", "scrolled", "filling"]


def _one_line_rows(table: QTableView) -> None:
    """The shared look: no row numbers, whole-row single selection, read-only, one line per row (no
    wrapped names, even rows), the last column stretched."""
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.horizontalHeader().setStretchLastSection(True)


def row_list_table(columns: Sequence[str]) -> QTableWidget:
    """An empty read-only table with these headers, columns as wide as their contents."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    _one_line_rows(table)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def row_list_view(model: QAbstractItemModel) -> QTableView:
    """``row_list_table``'s look for a model of any size: rows are formatted only when shown (no
    column sized to its contents, which would visit every row)."""
    view = QTableView()
    view.setModel(model)
    _one_line_rows(view)
    return view


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: a tall panel tabbed with others then asks no more height of
    the window than its neighbours (the window still fits a 768-pixel-high screen)."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


@contextmanager
def filling(table: QTableView) -> Iterator[QTableView]:
    """Fill ``table`` with the columns sized to their contents once at the end, not after every item.

    A ``ResizeToContents`` column measures every row whenever an item changes: filling C×N items one
    by one costs O(N²) (21 classes: ~40 ms a refresh of the metrics table)."""
    header = table.horizontalHeader()
    modes = [header.sectionResizeMode(i) for i in range(header.count())]
    header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    try:
        yield table
    finally:
        for i, mode in enumerate(modes):
            header.setSectionResizeMode(i, mode)
