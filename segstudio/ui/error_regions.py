"""The error-regions dock: connected regions of wrong pixels, largest first; click one to go there."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QTableWidgetItem, QVBoxLayout, QWidget

from segstudio.ui.tables import row_list_table

__all__ = ["ErrorRegionsPanel"]

COLUMNS = ("Pixels", "Ground truth", "Predicted", "Where (x, y  w×h)")


class ErrorRegionsPanel(QWidget):
    """Lists ``core.evaluation.errormap.ErrorRegion`` objects; ``region_selected(region)`` on click or arrow keys."""

    region_selected = Signal(object)

    def __init__(self, parent: QWidget | None = None, max_rows: int = 500):
        super().__init__(parent)
        self._regions: list = []
        self._max_rows = max_rows
        self.summary = QLabel("No prediction yet")
        self.summary.setWordWrap(True)
        self.table = row_list_table(COLUMNS)
        self.table.setToolTip("Connected regions where prediction and ground truth disagree, largest first; "
                              "click one to go there (Shift+A accepts the prediction in it)")
        # A click on a new row changes the current cell (press) and then clicks it (release): emit
        # once. A click on the row already current re-centres on it.
        self._just_selected = -1
        self.table.currentCellChanged.connect(self._on_current_changed)
        self.table.cellClicked.connect(self._on_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)

    @property
    def regions(self) -> list:
        return list(self._regions)

    def selected_region(self):
        """The region of the list's current row, or None."""
        row = self.table.currentRow()
        return self._regions[row] if 0 <= row < len(self._regions) else None

    def set_regions(self, regions, class_names: list[str] | None = None, note: str = "") -> None:
        """Show ``regions`` (already sorted by size, largest first); at most ``max_rows`` rows."""
        self._regions = list(regions)[: self._max_rows]
        names = class_names or []

        def name(class_id: int) -> str:
            return names[class_id] if 0 <= class_id < len(names) else str(class_id)

        self.table.blockSignals(True)
        self.table.setRowCount(len(self._regions))
        for row, region in enumerate(self._regions):
            size = QTableWidgetItem(str(region.size))
            size.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, 0, size)
            self.table.setItem(row, 1, QTableWidgetItem(name(region.gt_class)))
            self.table.setItem(row, 2, QTableWidgetItem(name(region.pred_class)))
            x, y, w, h = region.bbox
            where = QTableWidgetItem(f"{x}, {y}  {w}×{h}")
            where.setToolTip(f"Bounding box: x {x}, y {y}, width {w}, height {h} (image pixels)")
            self.table.setItem(row, 3, where)
        self.table.blockSignals(False)
        total = len(list(regions))
        shown = f" (largest {len(self._regions)} shown)" if total > len(self._regions) else ""
        self.summary.setText(f"{total} error regions{shown}" + (f" · {note}" if note else ""))

    def clear(self, message: str = "No prediction yet") -> None:
        self._regions = []
        self.table.setRowCount(0)
        self.summary.setText(message)

    def _on_current_changed(self, row: int, *_):
        self._just_selected = row
        self._select(row)

    def _on_clicked(self, row: int, _column: int) -> None:
        if row != self._just_selected:
            self._select(row)
        self._just_selected = -1

    def _select(self, row: int) -> None:
        if 0 <= row < len(self._regions):
            self.region_selected.emit(self._regions[row])
