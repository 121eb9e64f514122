"""A visible warning when the dataset's class table and the model's (or a predictions folder's)
differ in size or names: metrics compare class ids, so a 4-class model scored on 21-class VOC gives
numbers that mean nothing, and the user must see that, not find it in a log.

The warning sits in the status bar (short, the full line as its tooltip) and at the top of the
metrics panel (the full line). It is re-checked whenever a model reports its classes, a predictions
folder is opened, or another image or dataset is shown.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel

from segstudio.core.io.classes import ClassTable, describe_table_mismatch

__all__ = ["ClassTableNotice", "WARNING_STYLE"]

WARNING_STYLE = "QLabel { background: #fff3cd; color: #7a4b00; padding: 2px 6px; border-radius: 3px; }"


class ClassTableNotice(QObject):
    """Compares the open dataset's class table with the last model's or predictions folder's."""

    def __init__(self, window):
        super().__init__(window)
        self._window = window
        self._other: tuple[ClassTable, str] | None = None
        self.line: str | None = None
        self.label = QLabel("")
        self.label.setObjectName("class_table_warning")
        self.label.setStyleSheet(WARNING_STYLE)
        self.label.setVisible(False)
        window.statusBar().addPermanentWidget(self.label)
        window.controller.model_loaded.connect(self._on_model_loaded)
        window.document_changed.connect(lambda _document: self.refresh())

    def _on_model_loaded(self, _job: int, info) -> None:
        if getattr(info, "class_table", None) is not None:
            self.compare(info.class_table, f"model {info.name}")

    def compare(self, table: ClassTable | None, label: str) -> None:
        """Compare the dataset's table with ``table`` (``label`` names it: "model X", "predictions")."""
        self._other = (table, label) if table is not None else None
        self.refresh()

    def check_predictions_folder(self, folder: str) -> None:
        """Compare with the class table a predictions folder carries (``classes.json`` /
        ``class_names.txt`` in it), if any; a folder without one says nothing about its classes."""
        from segstudio.core.errors import SegStudioError  # noqa: PLC0415
        from segstudio.core.io.datasets.base import find_class_table  # noqa: PLC0415

        try:
            table = find_class_table(Path(folder))
        except SegStudioError:
            table = None
        if table is not None:
            self.compare(table, "predictions")

    def refresh(self) -> None:
        session = self._window.session
        line = None
        if session is not None and self._other is not None:
            table, label = self._other
            line = describe_table_mismatch(session.class_table, table, "dataset", label)
        self.line = line
        if line:
            ours, theirs = session.class_table.num_classes, self._other[0].num_classes
            self.label.setText(f"⚠ Class tables differ ({ours} vs {theirs} classes): metrics are likely "
                               "meaningless")
        self.label.setToolTip(line or "")
        self.label.setVisible(bool(line))
        panel = self._window.metrics_panel
        if panel is not None:
            panel.set_warning(line or "")
