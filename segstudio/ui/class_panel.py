"""The class panel: the class table as a list with colour, name, pixel counts and show / hide.

The panel reports requests (select, hide, recolour, show only) and mirrors the hidden set and current
class; it never edits the :class:`~segstudio.core.io.classes.ClassTable` (tables are immutable — the owner
builds the recoloured table and may pass it back with :meth:`ClassPanel.set_class_table`).

Keys (when the panel has focus; the main window forwards them too): ``0``-``9`` select the class with
that id, so ``1`` is the first foreground class of VOC-style tables and ``0`` the background.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from PySide6.QtCore import QPoint, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView, QColorDialog, QHBoxLayout, QHeaderView, QMenu, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from segstudio.core.io.classes import ClassTable

COL_SHOW, COL_COLOR, COL_ID, COL_NAME, COL_GT, COL_PRED = range(6)
HEADERS = ("", "", "id", "name", "gt px", "pred px")
ID_ROLE = Qt.ItemDataRole.UserRole


def format_count(count) -> str:
    return "" if count is None else f"{int(count):,}"


class ClassPanel(QWidget):
    """Table of classes: show/hide checkbox, colour swatch, id, name, gt and predicted pixel counts."""

    class_selected = Signal(int)
    class_visibility_changed = Signal(int, bool)
    class_color_changed = Signal(int, tuple)  # (r, g, b, a)
    show_only_requested = Signal(int)
    hidden_classes_changed = Signal(object)  # frozenset of hidden class ids, after any change

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._table: ClassTable | None = None
        self._hidden: set[int] = set()
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.setShowGrid(False)
        header = self.table.horizontalHeader()
        for col in (COL_SHOW, COL_COLOR, COL_ID, COL_GT, COL_PRED):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.currentCellChanged.connect(self._on_current_changed)
        self.table.cellDoubleClicked.connect(self._on_double_clicked)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.table.installEventFilter(self)

        self.show_only_button = QPushButton("Show only")
        self.show_only_button.setToolTip("Hide every class but the selected one")
        self.show_only_button.clicked.connect(self._show_only_current)
        self.show_all_button = QPushButton("Show all")
        self.show_all_button.clicked.connect(self.show_all)
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_only_button)
        buttons.addWidget(self.show_all_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

    # -- state in ----------------------------------------------------------------------------------
    def set_class_table(self, class_table: "ClassTable") -> None:
        """Show a table's classes. Hidden ids and the current class survive when still in range.

        Emits nothing; read :meth:`current_class` and :meth:`hidden_classes` after calling.
        """
        previous = self.current_class()
        self._table = class_table
        self._hidden = {i for i in self._hidden if i < class_table.num_classes}
        with QSignalBlocker(self.table):
            self.table.setRowCount(len(class_table.classes))
            for row, info in enumerate(class_table.classes):
                show = QTableWidgetItem()
                show.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled
                              | Qt.ItemFlag.ItemIsSelectable)
                show.setCheckState(Qt.CheckState.Unchecked if info.id in self._hidden else Qt.CheckState.Checked)
                show.setToolTip(f"Show or hide {info.name}")
                swatch = self._read_only_item("")
                swatch.setToolTip("Double-click to change the colour")
                cells = {COL_SHOW: show, COL_COLOR: swatch, COL_ID: self._read_only_item(str(info.id)),
                         COL_NAME: self._read_only_item(info.name), COL_GT: self._read_only_item(""),
                         COL_PRED: self._read_only_item("")}
                for col, item in cells.items():
                    item.setData(ID_ROLE, info.id)
                    self.table.setItem(row, col, item)
                self._paint_swatch(info.id, info.color)
            if previous is None or previous >= class_table.num_classes:
                previous = 1 if class_table.num_classes > 1 else 0
            if class_table.num_classes:
                self.table.setCurrentCell(self._row_of(previous), COL_NAME)
        self._update_buttons()

    def set_pixel_counts(self, gt_counts: Sequence[int] | None, pred_counts: Sequence[int] | None) -> None:
        """Fill the gt / pred pixel-count columns (one count per class id; ``None`` blanks a column)."""
        for counts, col in ((gt_counts, COL_GT), (pred_counts, COL_PRED)):
            for row in range(self.table.rowCount()):
                class_id = self.table.item(row, COL_ID).data(ID_ROLE)
                value = None if counts is None or class_id >= len(counts) else counts[class_id]
                item = self.table.item(row, col)
                item.setText(format_count(value))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    # -- state out ---------------------------------------------------------------------------------
    def current_class(self) -> int | None:
        item = self.table.item(self.table.currentRow(), COL_ID) if self.table.currentRow() >= 0 else None
        return None if item is None else item.data(ID_ROLE)

    def hidden_classes(self) -> frozenset[int]:
        return frozenset(self._hidden)

    def class_table(self) -> "ClassTable | None":
        return self._table

    # -- slots -------------------------------------------------------------------------------------
    def select_class(self, class_id: int) -> None:
        """Make ``class_id`` the current class (ids outside the table are ignored); emits ``class_selected``."""
        if self._table is None or not 0 <= class_id < self._table.num_classes:
            return
        with QSignalBlocker(self.table):
            self.table.setCurrentCell(self._row_of(class_id), COL_NAME)
        self.table.scrollToItem(self.table.item(self._row_of(class_id), COL_NAME))
        self._update_buttons()
        self.class_selected.emit(class_id)

    def set_class_visible(self, class_id: int, visible: bool) -> None:
        """Show or hide one class; emits ``class_visibility_changed`` and ``hidden_classes_changed``."""
        item = self.table.item(self._row_of(class_id), COL_SHOW)
        item.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)  # -> _on_item_changed

    def show_only(self, class_id: int) -> None:
        """Hide every class but ``class_id``; emits ``show_only_requested`` and ``hidden_classes_changed``."""
        if self._table is None:
            return
        self._set_hidden(set(range(self._table.num_classes)) - {class_id})
        self.show_only_requested.emit(class_id)
        self.hidden_classes_changed.emit(self.hidden_classes())

    def show_all(self) -> None:
        """Show every class; emits ``hidden_classes_changed`` when something was hidden."""
        if not self._hidden:
            return
        self._set_hidden(set())
        self.hidden_classes_changed.emit(self.hidden_classes())

    def edit_class_color(self, class_id: int) -> None:
        """Ask for a new colour with a QColorDialog, then :meth:`apply_class_color`."""
        if self._table is None:
            return
        r, g, b, a = self._table.classes[class_id].color
        color = QColorDialog.getColor(QColor(r, g, b, a), self, f"Colour of {self._table.classes[class_id].name}",
                                      QColorDialog.ColorDialogOption.ShowAlphaChannel)
        if color.isValid():
            self.apply_class_color(class_id, (color.red(), color.green(), color.blue(), color.alpha()))

    def apply_class_color(self, class_id: int, rgba: Sequence[int]) -> None:
        """Show ``rgba`` on the class's swatch and emit ``class_color_changed(class_id, rgba)``."""
        rgba = tuple(int(v) for v in rgba)
        if len(rgba) == 3:
            rgba = rgba + (255,)
        self._paint_swatch(class_id, rgba)
        self.class_color_changed.emit(class_id, rgba)

    # -- internals ---------------------------------------------------------------------------------
    @staticmethod
    def _read_only_item(text: str) -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        return item

    def _row_of(self, class_id: int) -> int:
        return class_id  # rows follow ids: tables are dense and ordered

    def _paint_swatch(self, class_id: int, rgba: Sequence[int]) -> None:
        item = self.table.item(self._row_of(class_id), COL_COLOR)
        color = QColor(*rgba)
        with QSignalBlocker(self.table):
            item.setData(Qt.ItemDataRole.DecorationRole, color)
            item.setData(Qt.ItemDataRole.UserRole + 1, tuple(rgba))
            item.setText("")

    def swatch_color(self, class_id: int) -> tuple[int, int, int, int]:
        """The RGBA the swatch shows now."""
        return self.table.item(self._row_of(class_id), COL_COLOR).data(Qt.ItemDataRole.UserRole + 1)

    def _set_hidden(self, hidden: set[int]) -> None:
        self._hidden = set(hidden)
        with QSignalBlocker(self.table):
            for row in range(self.table.rowCount()):
                class_id = self.table.item(row, COL_SHOW).data(ID_ROLE)
                state = Qt.CheckState.Unchecked if class_id in self._hidden else Qt.CheckState.Checked
                self.table.item(row, COL_SHOW).setCheckState(state)
        self.table.viewport().update()

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != COL_SHOW:
            return
        class_id, visible = item.data(ID_ROLE), item.checkState() == Qt.CheckState.Checked
        if visible == (class_id not in self._hidden):
            return
        if visible:
            self._hidden.discard(class_id)
        else:
            self._hidden.add(class_id)
        self.class_visibility_changed.emit(class_id, visible)
        self.hidden_classes_changed.emit(self.hidden_classes())

    def _on_current_changed(self, row: int, _col: int, previous_row: int, _pcol: int) -> None:
        self._update_buttons()
        if row >= 0 and row != previous_row:
            self.class_selected.emit(self.table.item(row, COL_ID).data(ID_ROLE))

    def _on_double_clicked(self, row: int, col: int) -> None:
        if col == COL_COLOR:
            self.edit_class_color(self.table.item(row, COL_ID).data(ID_ROLE))

    def _show_only_current(self) -> None:
        current = self.current_class()
        if current is not None:
            self.show_only(current)

    def context_menu_for(self, class_id: int) -> QMenu:
        """The right-click menu of a class row (built fresh each time)."""
        name = self._table.classes[class_id].name
        menu = QMenu(self)
        menu.addAction(f"Show only {name}", lambda: self.show_only(class_id))
        menu.addAction("Show all classes", self.show_all)
        menu.addSeparator()
        menu.addAction(f"Change colour of {name}…", lambda: self.edit_class_color(class_id))
        return menu

    def _show_context_menu(self, pos: QPoint) -> None:
        item = self.table.itemAt(pos)
        if item is None:
            return
        self.context_menu_for(item.data(ID_ROLE)).exec(self.table.viewport().mapToGlobal(pos))

    def _update_buttons(self) -> None:
        self.show_only_button.setEnabled(self.current_class() is not None)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self.table and isinstance(event, QKeyEvent) and event.type() == QKeyEvent.Type.KeyPress:
            if self._handle_digit(event):
                return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not self._handle_digit(event):
            super().keyPressEvent(event)

    def _handle_digit(self, event: QKeyEvent) -> bool:
        key = event.key()
        if Qt.Key.Key_0 <= key <= Qt.Key.Key_9 and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.select_class(int(key - Qt.Key.Key_0))
            return True
        return False
