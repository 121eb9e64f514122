"""The main window's View, Model and Help menus (File is :class:`segstudio.ui.file_menu.FileMenu`).

Kept apart so ``main_window.py`` stays a composition of parts; every action calls a public slot of
the window, so the menus hold no state of their own.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QToolBar

from segstudio.core.editing.selection import ErrorMode
from segstudio.ui.icons import assign

__all__ = ["build_menus", "hide_panels", "cancel_or_clear", "show_help"]


def build_menus(window, bar, action, docks):
    """Add View, Model and Help to menu bar ``bar``; ``action(menu, text, slot, shortcut, checkable)``
    makes one window-wide action. Returns the instance-view, outlines and one-class-error-map actions
    (the window keeps them checked to match its state) and the Model menu (the editor's menu goes
    before it)."""
    view = bar.addMenu("&View")
    instance = action(view, "Instance view", window.set_instance_view, "I", True)
    outlines = action(view, "Outlines", window.set_outlines, "O", True)
    error_mode = action(view, "Error map for the selected class only",
                        lambda on: window.set_error_mode(ErrorMode.ONE if on else ErrorMode.ALL), "E", True)
    assign(action(view, "Fit to window", window.canvas.fit_to_window, "F"), "fit")
    view.addSeparator()
    action(view, "Next image", lambda: window.step_image(1), Qt.Key.Key_PageDown)
    action(view, "Previous image", lambda: window.step_image(-1), Qt.Key.Key_PageUp)
    view.addSeparator()
    for dock in docks:
        view.addAction(dock.toggleViewAction())
    window.view_menu = view
    window.hide_panels_action = action(view, "Hide all panels", lambda on: hide_panels(window, on), "Ctrl+Shift+H",
                                        True)
    assign(window.hide_panels_action, "panels")
    for digit in range(10):  # like the class panel: digit = class id (0 is the background)
        select = QAction(f"Select class {digit}", window)
        select.setShortcut(QKeySequence(str(digit)))
        select.triggered.connect(lambda _=False, n=digit: window.select_class(n))
        window.addAction(select)

    model = bar.addMenu("&Model")
    assign(action(model, "Load model file…", window.model_dock.choose_model_file), "load_model")
    run = action(model, "Run on this image", window.run_on_image, "Ctrl+R")
    run_all = action(model, "Run on whole dataset", window.run_on_dataset, "Ctrl+Shift+R")
    cancel = action(model, "Cancel", lambda: cancel_or_clear(window), "Esc")
    cancel.setToolTip("Cancel the running model; with nothing running, clear the confusion-cell highlight")
    for item, key in ((run, "run"), (run_all, "run_all"), (cancel, "cancel")):
        assign(item, key)
    tools = QToolBar("Model")
    tools.setObjectName("toolbar_model")    # saveState / restoreState key
    tools.addActions([run, run_all, cancel])
    window.add_tool_bar(tools)

    help_menu = bar.addMenu("&Help")
    assign(action(help_menu, "Getting started", lambda: show_help(window, "GettingStartedDialog"), "F1"), "help")
    assign(action(help_menu, "Keyboard shortcuts", lambda: show_help(window, "ShortcutsDialog"), "Ctrl+/"), "shortcuts")
    help_menu.addSeparator()
    assign(action(help_menu, "About segstudio", window.show_about), "about")
    return instance, outlines, error_mode, model


def hide_panels(window, hide: bool) -> None:
    """Collapse every dock so the canvas has the whole window, or bring back the ones that were open."""
    if hide:
        window._panels_before_hiding = [d for d in window.findChildren(QDockWidget) if d.isVisible()]
        for dock in window._panels_before_hiding:
            dock.hide()
    else:
        for dock in getattr(window, "_panels_before_hiding", []) or window.findChildren(QDockWidget):
            dock.show()
        window._panels_before_hiding = []


def cancel_or_clear(window) -> None:
    """Esc: cancel the running model, and drop the confusion-cell highlight."""
    window.controller.cancel()
    window.clear_highlight()


def show_help(window, name: str):
    """Open Help › Getting started or Help › Keyboard shortcuts (non-modal); returns the dialog."""
    from segstudio.ui import help_dialogs

    dialog = getattr(help_dialogs, name)(window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
