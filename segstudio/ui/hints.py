"""The canvas's empty-state hint: what to do next when there is nothing to review yet.

A small banner at the top of the canvas: "Open a dataset: Ctrl+O" with nothing open, "Run the model:
Ctrl+R" on an image without a prediction, "Running <model>… Esc cancels" while one runs. The keys are
read from the window's actions, so the hint never names a key that does nothing. It hides itself once
the image has a prediction.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel

from segstudio.core.editing.document import EventKind
from segstudio.ui.help_dialogs import shortcut_text

__all__ = ["EmptyStateHint"]


class EmptyStateHint(QLabel):
    """A banner over ``window.canvas``'s viewport, kept up to date from the window's signals."""

    def __init__(self, window):
        super().__init__(window.canvas.viewport())
        self.setObjectName("empty_state_hint")
        self._window = window
        self._unsubscribe = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet("QLabel { background: rgba(20, 20, 20, 190); color: white; padding: 6px 14px;"
                           " border-radius: 6px; font-size: 11pt; }")
        window.document_changed.connect(self._follow)
        window.controller.started.connect(lambda *_: self.refresh())
        window.controller.job_ended.connect(lambda *_: self.refresh())
        window.canvas.viewport().installEventFilter(self)
        self.refresh()

    def _follow(self, document) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = document.subscribe(self._on_event) if document is not None else None
        self.refresh()

    def _on_event(self, event) -> None:
        if event.kind in (EventKind.PREDICTION, EventKind.RELOADED):
            self.refresh()

    def message(self) -> str:
        """The hint for the window's state ("" when there is nothing to say)."""
        window = self._window
        document = window.document
        if document is None:
            keys = shortcut_text(window, "Open dataset…")
            return f"Open a dataset: File › Open dataset… {keys}".rstrip()
        if document.pred is not None:
            return ""
        if window.controller.busy:
            keys = shortcut_text(window, "Cancel")
            return f"Running the model on this image…  {keys} cancels" if keys else "Running the model…"
        keys = shortcut_text(window, "Run on this image")
        return f"No prediction yet. Run the model: {keys}" if keys else "No prediction yet: Model › Run on this image"

    def refresh(self) -> None:
        text = self.message()
        self.setText(text)
        self.setVisible(bool(text))
        if text:
            self.adjustSize()
            self._place()
            self.raise_()

    def _place(self) -> None:
        parent = self.parentWidget()
        self.move(max(0, (parent.width() - self.width()) // 2), 12)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False
