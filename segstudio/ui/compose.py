"""Building the application window: the one place that decides what the app is made of.

``segstudio`` (``commands/gui.py``), the UI tests and ``bench/window_bench.py`` all call
:func:`build_main_window`, so they run the same composition.
"""
from __future__ import annotations

from segstudio.ui.edit_controller import EditController
from segstudio.ui.main_window import MainWindow
from segstudio.ui.train_compare import install_training
from segstudio.ui.worker import InferenceController

__all__ = ["build_main_window"]


def build_main_window(settings=None, controller: InferenceController | None = None) -> MainWindow:
    """The main window with the editor (tool bar, Edit menu, review dock) composed in.

    ``settings``: a ``QSettings`` (default the application's); ``controller``: the inference lane
    (default a fresh ``InferenceController``; tests pass one with a fake runner).
    """
    window = MainWindow(settings, controller, editor_factory=EditController)
    install_training(window)
    return window
