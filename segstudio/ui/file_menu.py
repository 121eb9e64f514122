"""The File menu: open a dataset, an image or a predictions folder, the recent list, quit."""
from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from segstudio.ui import settings as keys

__all__ = ["FileMenu", "IMAGE_FILTER"]

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp);;All files (*)"


class FileMenu:
    """Fills ``menu``; opening goes to ``open_path`` / ``open_predictions``, the dialogs sit on ``parent``."""

    def __init__(self, menu: QMenu, parent: QWidget, settings, add_action: Callable,
                 open_path: Callable[[str], bool], open_predictions: Callable[[str], object],
                 quit_: Callable[[], object]):
        self._parent, self._settings = parent, settings
        self._open_path, self._open_predictions = open_path, open_predictions
        add_action(menu, "Open dataset…", self.choose_dataset, QKeySequence.StandardKey.Open)
        add_action(menu, "Open image…", self.choose_image)
        add_action(menu, "Open predictions folder…", self.choose_predictions)
        self.recent_menu = menu.addMenu("Recent")
        menu.addSeparator()
        add_action(menu, "Quit", quit_, QKeySequence.StandardKey.Quit)
        self.rebuild_recent()

    def choose_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._parent, "Open dataset")
        if folder:
            self._open_path(folder)

    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._parent, "Open image", "", IMAGE_FILTER)
        if path:
            self._open_path(path)

    def choose_predictions(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._parent, "Open predictions folder")
        if folder:
            self._open_predictions(folder)

    def rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for path in keys.recent_items(self._settings):
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self._open_path(p))
        self.recent_menu.setEnabled(bool(self.recent_menu.actions()))
