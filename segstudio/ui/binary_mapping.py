"""Binary masks in the GUI: ask how to read {0, 255} masks when a dataset or predictions folder
holding them is opened, and remember the answer for that path.

The core refuses such masks rather than guess (255 may be the foreground or "ignore"); the CLI takes
``--binary-mapping``. Here a dialog asks once per dataset, suggesting 0 -> background and 255 -> class
1, and the answer is kept in the settings keyed by the dataset's path, so reopening it asks nothing.
"""
from __future__ import annotations

from pathlib import Path
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout,
                               QWidget)

from segstudio.core.io.classes import ClassTable
from segstudio.ui import settings as keys

__all__ = ["BinaryMappingDialog", "GUI_OPTION", "ask_binary_mapping", "open_dataset_asking",
           "prediction_binary_mapping"]

GUI_OPTION = ("reopen the dataset (File › Open) and choose how to read 0 and 255 in the dialog, or "
              "use --binary-mapping on the command line")
"""What a {0, 255} mask's refusal tells a GUI user to do (the CLI names its flag instead)."""

class BinaryMappingDialog(QDialog):
    """Asks which class 0 and 255 stand for; 255 may also be the ignore index."""

    def __init__(self, what: str, example: str, table: ClassTable, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Binary masks")
        self._table = table
        text = QLabel(f"The masks of {what} hold only the values 0 and 255 (e.g. {example}).\n"
                      "They could mean background/foreground, or 255 could mean \"ignore\". "
                      "How should they be read?")
        text.setWordWrap(True)
        self.zero = self._choices(include_ignore=False, default=0)
        self.high = self._choices(include_ignore=True, default=1 if table.num_classes > 1 else 0)
        form = QFormLayout()
        form.addRow("0 is", self.zero)
        form.addRow("255 is", self.high)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addLayout(form)
        layout.addWidget(QLabel("The answer is remembered for this folder."))
        layout.addWidget(buttons)

    def _choices(self, include_ignore: bool, default: int) -> QComboBox:
        box = QComboBox()
        for info in self._table:
            box.addItem(f"{info.id}: {info.name}", info.id)
        if include_ignore:
            box.addItem(f"ignore ({self._table.ignore_index})", self._table.ignore_index)
        box.setCurrentIndex(default)
        return box

    def mapping(self) -> dict[int, int]:
        """Stored value -> class id, as chosen."""
        return {0: int(self.zero.currentData()), 255: int(self.high.currentData())}


def ask_binary_mapping(parent: QWidget, what: str, example: str, table: ClassTable) -> dict[int, int] | None:
    """Show the dialog modally; the mapping chosen, or ``None`` when cancelled."""
    dialog = BinaryMappingDialog(what, example, table, parent)
    try:
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.mapping()
    finally:
        dialog.deleteLater()


def _decoders(dataset) -> list:
    found = {}
    for sample in dataset:
        if sample.decoder is not None:
            found.setdefault(id(sample.decoder), sample.decoder)
    return list(found.values())


def open_dataset_asking(parent: QWidget, settings, path: str, ask=ask_binary_mapping, **options):
    """``open_dataset(path)`` with the {0, 255} mapping remembered for ``path``; when there is none
    and the first masks are binary, ask (``ask``: the dialog) and remember the answer.

    Cancelling opens the dataset as it is (nothing remembered): its images show without ground
    truth, each refusal saying how to answer (``GUI_OPTION``), and the next opening asks again.

    Raises
    ------
    SegStudioError
        As ``open_dataset``.
    """
    from segstudio.core.io.binary_masks import find_binary_mask  # noqa: PLC0415
    from segstudio.core.io.datasets import open_dataset  # noqa: PLC0415

    mapping = keys.binary_mapping(settings, path)
    dataset = open_dataset(path, binary_mapping=mapping, **options)
    if mapping is None:
        binary = find_binary_mask(s.mask_path for s in dataset)
        if binary is not None:
            mapping = ask(parent, f"the dataset {Path(path).name}", binary.name, dataset.class_table)
            if mapping is not None:
                keys.set_binary_mapping(settings, path, mapping)
                dataset = open_dataset(path, binary_mapping=mapping, **options)
    for decoder in _decoders(dataset):
        decoder.binary_option = GUI_OPTION
    return dataset


def prediction_binary_mapping(parent: QWidget, settings, folder: str, binary: Path | None, table: ClassTable,
                              ask=ask_binary_mapping) -> tuple[bool, dict[int, int] | None]:
    """The mapping to read the predictions of ``folder`` with: the remembered one, else asked when
    ``binary`` (a {0, 255} mask of the folder, ``find_binary_mask``'s answer) is not None.
    ``(False, None)`` when the user cancels."""
    mapping = keys.binary_mapping(settings, folder)
    if mapping is not None:
        return True, mapping
    if binary is None:
        return True, None
    mapping = ask(parent, f"the predictions folder {Path(folder).name}", binary.name, table)
    if mapping is None:
        return False, None
    keys.set_binary_mapping(settings, folder, mapping)
    return True, mapping
