"""Editing settings: where corrected masks go, autosave, brush size; and the small dialog for them.

The keys live here rather than in ``ui/settings.py`` because only the editor reads them; they use the
same QSettings store (``MainWindow.settings``).
"""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLineEdit, QPushButton, QSpinBox, QWidget)

from segstudio.core.editing.service import SaveSettings

__all__ = ["OUTPUT_DIR", "OVERWRITE", "AUTOSAVE_SECONDS", "AUTOSAVE_ON_SWITCH", "BRUSH_RADIUS",
           "EditSettings", "EditSettingsDialog"]

OUTPUT_DIR = "editing/output_dir"            # "" = <dataset>/corrected/
OVERWRITE = "editing/overwrite_originals"     # replace the original masks (a .bak is kept)
AUTOSAVE_SECONDS = "editing/autosave_seconds"  # 0 = off
AUTOSAVE_ON_SWITCH = "editing/autosave_on_switch"
BRUSH_RADIUS = "editing/brush_radius"

DEFAULT_AUTOSAVE_SECONDS = 60
DEFAULT_BRUSH_RADIUS = 8


def _bool(value, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):   # INI files hand booleans back as "true" / "false"
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class EditSettings:
    """Typed access to the editing keys of a QSettings object."""

    def __init__(self, settings):
        self.settings = settings

    @property
    def output_dir(self) -> str | None:
        value = str(self.settings.value(OUTPUT_DIR, "") or "").strip()
        return value or None

    @property
    def overwrite(self) -> bool:
        return _bool(self.settings.value(OVERWRITE), False)

    @property
    def autosave_seconds(self) -> int:
        return max(0, _int(self.settings.value(AUTOSAVE_SECONDS), DEFAULT_AUTOSAVE_SECONDS))

    @property
    def autosave_on_switch(self) -> bool:
        return _bool(self.settings.value(AUTOSAVE_ON_SWITCH), True)

    @property
    def brush_radius(self) -> int:
        return max(0, _int(self.settings.value(BRUSH_RADIUS), DEFAULT_BRUSH_RADIUS))

    def save_settings(self) -> SaveSettings:
        """The values the editing service works with (read once: the service may read them on a worker)."""
        return SaveSettings(self.output_dir, self.overwrite, self.autosave_seconds, self.autosave_on_switch)

    def set(self, key: str, value) -> None:
        self.settings.setValue(key, value)


class EditSettingsDialog(QDialog):
    """Output folder, overwrite originals, autosave interval and autosave on image switch."""

    def __init__(self, settings: EditSettings, parent: QWidget | None = None, default_folder: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Editing settings")
        self._settings = settings
        self.output_edit = QLineEdit(settings.output_dir or "")
        # The folder saves really go to when the field is empty: <dataset>/corrected/, or a per-user
        # folder for the bundled demo (which is read-only).
        self.output_edit.setPlaceholderText(default_folder or "<dataset>/corrected/")
        self.output_edit.setToolTip(f"Empty: {default_folder or '<dataset>/corrected/'}")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.output_edit, 1)
        row.addWidget(browse)
        self.overwrite_box = QCheckBox("Overwrite the original masks (keeps a .bak of each)")
        self.overwrite_box.setChecked(settings.overwrite)
        self.autosave_spin = QSpinBox()
        self.autosave_spin.setRange(0, 3600)
        self.autosave_spin.setSuffix(" s")
        self.autosave_spin.setSpecialValueText("off")
        self.autosave_spin.setValue(settings.autosave_seconds)
        self.switch_box = QCheckBox("Save when switching images")
        self.switch_box.setChecked(settings.autosave_on_switch)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Corrected masks folder", row)
        form.addRow("", self.overwrite_box)
        form.addRow("Autosave every", self.autosave_spin)
        form.addRow("", self.switch_box)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Corrected masks folder", self.output_edit.text())
        if folder:
            self.output_edit.setText(folder)

    def accept(self) -> None:
        s = self._settings
        s.set(OUTPUT_DIR, self.output_edit.text().strip())
        s.set(OVERWRITE, self.overwrite_box.isChecked())
        s.set(AUTOSAVE_SECONDS, self.autosave_spin.value())
        s.set(AUTOSAVE_ON_SWITCH, self.switch_box.isChecked())
        super().accept()
