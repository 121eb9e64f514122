"""What the editor needs from the window that hosts it, and nothing more.

``EditController`` is written against :class:`EditorHost`, not ``MainWindow``: the tool bar, the Edit
menu and the review dock are handed to the host through explicit methods, and everything it reads is
listed here, so a change to the window that the editor depends on shows up as a type error.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings, SignalInstance
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QDockWidget, QMenu, QToolBar, QWidget

    from segstudio.core.editing.document import ImageDocument
    from segstudio.core.editing.selection import Selection
    from segstudio.core.editing.session import ReviewSession
    from segstudio.ui.canvas import CanvasView
    from segstudio.ui.edit_saving import EditPersistence
    from segstudio.ui.error_regions import ErrorRegionsPanel
    from segstudio.ui.tasks import QtTaskRunner

__all__ = ["EditorHost"]


class EditorHost(Protocol):
    """The window as the editor sees it (``MainWindow`` implements it)."""

    canvas: CanvasView                   # tools draw previews on it and receive its mouse events
    selection: Selection                 # the class the tools paint; the editor observes it
    saving: EditPersistence              # save, save all, settings, store (the review dock's source)
    task_runner: QtTaskRunner            # for the review dock's statistics
    settings: QSettings                  # the editing keys (brush size, output folder)
    regions: ErrorRegionsPanel           # the selected error region, for the region actions
    document_changed: SignalInstance     # (ImageDocument | None) now shown; saving already tracks it
    prediction_received: SignalInstance  # (image name) a prediction was stored for that image

    @property
    def session(self) -> ReviewSession | None: ...
    @property
    def document(self) -> ImageDocument | None: ...

    def go_to(self, index: int) -> bool: ...
    def select_class(self, class_id: int) -> None: ...
    def report(self, message: str) -> None: ...
    def addAction(self, action: QAction) -> None: ...     # noqa: N802 - window-wide shortcuts (Qt's)
    def add_tool_bar(self, bar: QToolBar) -> None: ...
    def add_edit_menu(self, title: str) -> QMenu: ...      # an empty menu in the host's menu bar
    def add_review_dock(self, widget: QWidget) -> QDockWidget: ...
