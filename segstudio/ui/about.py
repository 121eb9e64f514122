"""Help › About: versions, the chosen device and the GPU check."""
from __future__ import annotations

import platform
import sys
from importlib import metadata

import cv2
import numpy as np
import PySide6
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from segstudio import __version__
from segstudio.ui.gpu_notice import details_text

__all__ = ["about_text", "refresh_about_box", "show_about_box"]

ABOUT_OBJECT_NAME = "about"


def _torch_version() -> str:
    # Never import torch here (GUI thread, half a gigabyte): read the installed version instead.
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.__version__
    try:
        return f"{metadata.version('torch')} (not loaded yet)"
    except metadata.PackageNotFoundError:   # a frozen bundle may carry no metadata
        return "not loaded yet"


def about_text(device: str, gpu_report: dict | None) -> str:
    """Plain-text About message: versions, device choice and what the GPU check found."""
    lines = [
        f"segstudio {__version__}",
        "Review segmentation models against ground truth and hand-correct labels.",
        "",
        f"Python {platform.python_version()}",
        f"torch {_torch_version()}",
        f"PySide6 {PySide6.__version__}",
        f"OpenCV {cv2.__version__}",
        f"numpy {np.__version__}",
        "",
        f"Device: {device}",
    ]
    if gpu_report is None:
        lines.append("GPU check: running…")
    else:
        lines.append("GPU check:")
        lines.extend(f"  {line}" for line in details_text(gpu_report).splitlines())
    return "\n".join(lines)


def show_about_box(parent: QWidget, device: str, gpu_report: dict | None) -> QMessageBox:
    """Help › About, non-modal; :func:`refresh_about_box` fills the GPU check in when it reports."""
    box = QMessageBox(QMessageBox.Icon.Information, "About segstudio", about_text(device, gpu_report),
                      QMessageBox.StandardButton.Ok, parent)
    box.setObjectName(ABOUT_OBJECT_NAME)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def refresh_about_box(box: QMessageBox | None, device: str, gpu_report: dict | None) -> None:
    """Rewrite ``box`` (the one :func:`show_about_box` returned) if it is still open: it deletes
    itself on close."""
    if box is not None and shiboken6.isValid(box):
        box.setText(about_text(device, gpu_report))
