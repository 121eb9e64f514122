"""The start-up GPU check, shown without getting in the way.

``install_gpu_notice(window, report)`` takes the dict of ``inference.gpu_check.gpu_check()`` (or a
plain ``devices.gpu_report()``) once the worker's GPU check job has produced it, and puts a small
permanent button in the window's status bar: "GPU: <name>" when CUDA works, "CPU" otherwise, and a
warning "CUDA unusable — running on CPU" when a CUDA build found a GPU it cannot use. A temporary
status-bar message says the same at once. Clicking the button opens the details in a non-modal box;
nothing blocks, nothing is asked. Importing this module does not import torch.
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow, QMessageBox, QStyle, QToolButton

from segstudio.inference.gpu_check import VERDICT_OK, VERDICT_UNUSABLE, format_report

__all__ = ["install_gpu_notice", "notice_text", "details_text", "NOTICE_OBJECT_NAME"]

NOTICE_OBJECT_NAME = "gpu_notice"
MESSAGE_MS = 15000


def notice_text(report: dict) -> tuple[bool, str, str]:
    """``(warning, short label, one-line message)`` for a GPU check report."""
    verdict = str(report.get("verdict") or "")
    name = report.get("device_name") or "GPU"
    if verdict.startswith(VERDICT_UNUSABLE):
        reason = verdict[len(VERDICT_UNUSABLE):].lstrip(": ")
        return True, "CUDA unusable — running on CPU", f"CUDA unusable, running on the CPU: {reason}"
    if verdict == VERDICT_OK or (not verdict and report.get("cuda_available")):
        free = report.get("memory_free")
        memory = f", {free / 2**30:.1f} GiB free" if isinstance(free, (int, float)) else ""
        return False, f"GPU: {name}", f"GPU ready: {name}{memory} (CUDA {report.get('torch_cuda')})"
    what = verdict or report.get("summary") or "no GPU"
    return False, "CPU", f"Running on the CPU ({what})"


def details_text(report: dict) -> str:
    """The GPU check as readable lines (shared by the notice and Help › About)."""
    lines = format_report(report) if report.get("verdict") else [str(report.get("summary", ""))]
    return "\n".join(lines)


def install_gpu_notice(window: QMainWindow, report: dict, previous: QToolButton | None = None) -> QToolButton:
    """Show ``report`` in ``window``'s status bar, replacing the ``previous`` notice (the button this
    returned last time, which the caller keeps); returns the new button."""
    bar = window.statusBar()
    if previous is not None and shiboken6.isValid(previous):
        bar.removeWidget(previous)
        previous.deleteLater()
    warning, label, message = notice_text(report)
    button = QToolButton(bar)
    button.setObjectName(NOTICE_OBJECT_NAME)
    button.setAutoRaise(True)
    button.setText(label)
    button.setToolTip(message + "\n\n" + details_text(report) + "\n\nClick for details (also in Help › About).")
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    if warning:
        button.setIcon(button.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
        button.setStyleSheet("QToolButton { color: #b35900; font-weight: bold; }")

    def show_details() -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Warning if warning else QMessageBox.Icon.Information,
                          "GPU check", message, QMessageBox.StandardButton.Close, window)
        box.setDetailedText(details_text(report))
        box.setInformativeText("segstudio keeps working on the CPU; predictions are slower."
                               if warning else "")
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        button.details_box = box   # for tests and for a second click to raise it
        return box

    button.clicked.connect(show_details)
    bar.addPermanentWidget(button)
    bar.showMessage(message, MESSAGE_MS)
    return button
