"""Help › Keyboard shortcuts and Help › Getting started.

The shortcut sheet is built from the window's real ``QAction`` objects (menus, tool bar, canvas), so
it cannot drift from what the keys do: an action added, renamed or rebound shows up as it is.
"""
from __future__ import annotations

import re

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLineEdit, QMenu, QTableWidget,
                               QTableWidgetItem, QTextBrowser, QToolBar, QVBoxLayout, QWidget)

__all__ = ["shortcut_rows", "ShortcutsDialog", "GettingStartedDialog", "shortcut_text"]


def _clean(text: str) -> str:
    text = text.replace("&&", "\0").replace("&", "").replace("\0", "&")
    return re.sub(r"\s+\([^()]*\)$", "", text) if re.search(r"\((?:[A-Z]|Shift\+\w+|[\[\]])\)$", text) else text


def _where(action: QAction) -> str:
    """The menu (or tool bar) the action lives in, for grouping; "Canvas" / "Window" otherwise."""
    for owner in action.associatedObjects():
        if isinstance(owner, QMenu) and owner.title():
            return _clean(owner.title())
    for owner in action.associatedObjects():
        if isinstance(owner, QToolBar):
            return owner.windowTitle()
    parent = action.parent()
    return "Canvas" if parent is not None and parent.metaObject().className() == "CanvasView" else "Window"


def shortcut_rows(window: QWidget) -> list[tuple[str, str, str, str]]:
    """``(where, action, keys, tooltip)`` for every action of ``window`` that has a shortcut, sorted by
    where it lives, then by name. Keys in the platform's native text (Ctrl on Linux, ⌘ on macOS)."""
    seen, rows = set(), []
    for action in [*window.actions(), *window.findChildren(QAction)]:
        if id(action) in seen or not action.shortcuts() or not action.text():
            continue
        seen.add(id(action))
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts())
        name = _clean(action.text())
        tip = action.toolTip()
        rows.append((_where(action), name, keys, "" if _clean(tip) == name else tip))
    return sorted(rows, key=lambda r: (r[0], r[1].lower()))


def shortcut_text(window: QWidget, name: str) -> str:
    """The keys of the action called ``name`` (as in the sheet), or "" when it has none."""
    for _where_, action, keys, _tip in shortcut_rows(window):
        if action == name or action.startswith(name + " ("):
            return keys.split(",")[0]
    return ""


class ShortcutsDialog(QDialog):
    """A searchable table of every keyboard shortcut (Help › Keyboard shortcuts)."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(620, 560)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search actions or keys (e.g. brush, Ctrl+S)")
        self.search.setClearButtonEnabled(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Where", "Action", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        rows = shortcut_rows(window)
        self.table.setRowCount(len(rows))
        for r, (where, name, keys, tip) in enumerate(rows):
            for c, text in enumerate((where, name, keys)):
                item = QTableWidgetItem(text)
                if tip:
                    item.setToolTip(tip)
                self.table.setItem(r, c, item)
        self.search.textChanged.connect(self.filter)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)

    def filter(self, text: str) -> None:
        words = text.lower().split()
        for row in range(self.table.rowCount()):
            haystack = " ".join(self.table.item(row, c).text() for c in range(3)).lower()
            self.table.setRowHidden(row, not all(w in haystack for w in words))

    def visible_actions(self) -> list[str]:
        return [self.table.item(r, 1).text() for r in range(self.table.rowCount()) if not self.table.isRowHidden(r)]


def _key(window: QWidget, name: str, fallback: str = "no key") -> str:
    keys = shortcut_text(window, name)
    return f"<kbd>{keys}</kbd>" if keys else f"({fallback})"


def getting_started_html(window: QWidget) -> str:
    """The Getting started page, its keys read from the window's actions."""
    k = lambda name: _key(window, name)   # noqa: E731 - a short local helper
    return f"""
<h2>Getting started</h2>
<p>segstudio compares a model's prediction with the ground truth, shows where they disagree and lets
you correct the labels. The bundled demo opens on first launch and the demo model runs on its first
image by itself.</p>
<h3>1. Review the errors</h3>
<ul>
<li>Run a model on the image: <b>Model › Run on this image</b> {k("Run on this image")}
 (the whole dataset: {k("Run on whole dataset")}); <b>Cancel</b> {k("Cancel")} stops it.</li>
<li>The <b>error map</b> colours each pixel; its legend sits under the layers. <b>Error regions</b>
 lists the disagreements, biggest first: click one to jump to it.</li>
<li>The <b>Metrics</b> dock shows IoU, precision and recall per class and the confusion matrix: click a
 cell to highlight those pixels, <kbd>Esc</kbd> clears the highlight.</li>
<li>Next / previous image: {k("Next image")} / {k("Previous image")}; the next image worth reviewing:
 {k("Next to review")}.</li>
</ul>
<h3>2. Correct the labels</h3>
<ul>
<li>Pick a class with the digit keys or in the class list, then a tool: brush {k("Brush")}, eraser
 {k("Eraser")}, flood fill {k("Flood fill")}, polygon {k("Polygon / lasso fill")}, or the
 accept-prediction brush {k("Accept prediction brush")} that copies the model's labels.</li>
<li>Accept the prediction in the error region under the cursor: {k("Accept prediction in region")}.</li>
<li>Undo {k("Undo")}, redo {k("Redo")}. "IoU a → b" under the metrics shows what each stroke changed.</li>
</ul>
<h3>3. Save</h3>
<ul>
<li><b>Edit › Save labels</b> {k("Save labels")} writes the corrected mask; where it goes is shown in
 <b>Edit › Editing settings…</b>. Unsaved strokes survive a crash and are offered back on the next
 start.</li>
</ul>
<p>Every shortcut: <b>Help › Keyboard shortcuts</b> {k("Keyboard shortcuts")}.</p>
"""


class GettingStartedDialog(QDialog):
    """Help › Getting started: the three tasks (review errors, correct labels, save) on one page."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setWindowTitle("Getting started")
        self.resize(560, 600)
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        self.text.setHtml(getting_started_html(window))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)
