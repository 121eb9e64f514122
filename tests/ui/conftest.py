"""UI test fixtures: a private settings file per test, no QThread may outlive its test, a task runner."""
from __future__ import annotations

import weakref

import pytest
from PySide6.QtCore import QSettings, QThread, QThreadPool

_started_threads: "weakref.WeakSet[QThread]" = weakref.WeakSet()
_original_start = QThread.start


def _tracking_start(self, *args, **kwargs):
    _started_threads.add(self)
    return _original_start(self, *args, **kwargs)


QThread.start = _tracking_start


@pytest.fixture(autouse=True)
def private_settings(tmp_path, monkeypatch):
    """Point QSettings (INI, user scope) at a fresh folder so tests never share settings."""
    folder = tmp_path / "settings"
    folder.mkdir()
    monkeypatch.setenv("SEGSTUDIO_SETTINGS_DIR", str(folder))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    return folder


@pytest.fixture(autouse=True)
def no_qthreads_left_running():
    """Fail a test that leaves a QThread or a pool runnable running (Python threads and task runners
    are checked for every test, in tests/conftest.py)."""
    running_before = {id(t) for t in list(_started_threads) if t.isRunning()}
    yield
    running = [t.objectName() or repr(t) for t in list(_started_threads)
               if t.isRunning() and id(t) not in running_before]
    assert not running, f"QThread(s) left running: {running}"
    assert QThreadPool.globalInstance().waitForDone(5000), "QThreadPool jobs still running"


@pytest.fixture
def task_runner(qtbot):
    """A GUI task runner for widgets tested on their own (the window owns one otherwise); joined after."""
    from segstudio.ui.tasks import QtTaskRunner

    runner = QtTaskRunner(name="test-ui-tasks")
    yield runner
    runner.join()


@pytest.fixture
def open_window(qtbot):
    """``open_window(controller=None, **startup)`` -> a shown MainWindow after ``finish_startup``.

    Teardown closes the windows still open, deletes them and waits until Qt has destroyed them, so no
    window (nor its docks, menus and worker) outlives its test.
    """
    import shiboken6

    from segstudio.ui.main_window import MainWindow

    windows = []

    def make(controller=None, path=None, size=None, **startup):
        window = MainWindow(controller=controller)
        windows.append(window)
        if size is not None:  # else the saved geometry, or the default
            window.resize(*size)
        window.show()
        qtbot.waitExposed(window)
        window.finish_startup(None if path is None else str(path), **startup)
        return window

    yield make
    for window in windows:
        if shiboken6.isValid(window):
            window.close()
            window.deleteLater()
    qtbot.waitUntil(lambda: not any(shiboken6.isValid(w) for w in windows))


@pytest.fixture(autouse=True)
def binary_mask_dialog_cancels(monkeypatch):
    """A modal dialog nobody answers would hang the run: unless a test answers the binary-mask dialog
    itself, the user cancels it."""
    from PySide6.QtWidgets import QDialog

    from segstudio.ui.binary_mapping import BinaryMappingDialog

    monkeypatch.setattr(BinaryMappingDialog, "exec", lambda dialog: QDialog.DialogCode.Rejected)
