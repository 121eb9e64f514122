"""The main window's View, Model and Help menus (File is :class:`segstudio.ui.file_menu.FileMenu`).

Kept apart so ``main_window.py`` stays a composition of parts; every action calls a public slot of
the window, so the menus hold no state of their own.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from segstudio.core.editing.selection import ErrorMode

__all__ = ["build_menus"]


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
    action(view, "Fit to window", window.canvas.fit_to_window, "F")
    view.addSeparator()
    action(view, "Next image", lambda: window.step_image(1), Qt.Key.Key_PageDown)
    action(view, "Previous image", lambda: window.step_image(-1), Qt.Key.Key_PageUp)
    view.addSeparator()
    for dock in docks:
        view.addAction(dock.toggleViewAction())
    for digit in range(10):  # like the class panel: digit = class id (0 is the background)
        select = QAction(window)
        select.setShortcut(QKeySequence(str(digit)))
        select.triggered.connect(lambda _=False, n=digit: window.select_class(n))
        window.addAction(select)

    model = bar.addMenu("&Model")
    action(model, "Load model file…", window.model_dock.choose_model_file)
    action(model, "Run on this image", window.run_on_image, "Ctrl+R")
    action(model, "Run on whole dataset", window.run_on_dataset, "Ctrl+Shift+R")
    action(model, "Cancel", window.controller.cancel, "Esc")

    help_menu = bar.addMenu("&Help")
    action(help_menu, "About segstudio", window.show_about)
    return instance, outlines, error_mode, model
