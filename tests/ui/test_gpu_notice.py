"""The GPU notice in the status bar: what it says for each verdict, and that nothing blocks."""
from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QMainWindow, QMessageBox, QToolButton

from segstudio.ui.gpu_notice import NOTICE_OBJECT_NAME, install_gpu_notice, notice_text

OK = {"verdict": "CUDA OK", "cuda_available": True, "cuda_usable": True, "device_name": "NVIDIA H100",
      "memory_free": 70 * 2**30, "memory_total": 80 * 2**30, "torch_cuda": "13.0", "driver": "580.95.05",
      "device": "cuda", "compute_capability": "9.0"}
BROKEN = {"verdict": "CUDA expected but unusable: NVIDIA driver 535.104.05 is too old for CUDA 13.0 "
                     "(needs >= 580.65.06)",
          "cuda_available": False, "cuda_usable": False, "torch_cuda": "13.0", "driver": "535.104.05",
          "device": "cpu", "driver_check": "NVIDIA driver 535.104.05 is too old for CUDA 13.0 (needs >= 580.65.06)"}
NO_DEVICE = {"verdict": "no CUDA device", "cuda_available": False, "torch_cuda": "13.0", "driver": None,
             "device": "cpu"}


@pytest.fixture
def window(qtbot):
    win = QMainWindow()
    qtbot.addWidget(win)
    win.resize(700, 120)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_notice_texts():
    assert notice_text(OK) == (False, "GPU: NVIDIA H100", "GPU ready: NVIDIA H100, 70.0 GiB free (CUDA 13.0)")
    warning, label, message = notice_text(BROKEN)
    assert warning and label == "CUDA unusable — running on CPU"
    assert message == ("CUDA unusable, running on the CPU: NVIDIA driver 535.104.05 is too old for CUDA 13.0 "
                       "(needs >= 580.65.06)")
    assert notice_text(NO_DEVICE) == (False, "CPU", "Running on the CPU (no CUDA device)")
    assert notice_text({"verdict": "cpu-only build"})[2] == "Running on the CPU (cpu-only build)"
    # A plain devices.gpu_report() dict (no verdict) still reads sensibly.
    assert notice_text({"cuda_available": False, "summary": "CPU only (torch built without CUDA)"}) == (
        False, "CPU", "Running on the CPU (CPU only (torch built without CUDA))")


def test_unusable_cuda_shows_a_warning_and_non_modal_details(window, qtbot, tmp_path):
    button = install_gpu_notice(window, BROKEN)
    qtbot.waitUntil(button.isVisible)
    assert window.statusBar().currentMessage().startswith("CUDA unusable, running on the CPU: NVIDIA driver")
    assert button.text() == "CUDA unusable — running on CPU" and not button.icon().isNull()
    assert "driver check: NVIDIA driver 535.104.05 is too old" in button.toolTip()
    window.grab().save(str(tmp_path / "gpu_notice.png"))
    button.click()
    box = button.details_box
    qtbot.waitExposed(box)
    assert not box.isModal() and QMessageBox.Icon.Warning == box.icon()
    assert "verdict: CUDA expected but unusable" in box.detailedText()
    assert "device for 'auto': cpu" in box.detailedText()
    # The window stays usable while the box is open.
    assert window.isEnabled() and box.isVisible()
    box.close()


def test_working_gpu_and_replacing_the_notice(window, qtbot):
    first = install_gpu_notice(window, NO_DEVICE)
    button = install_gpu_notice(window, OK, first)     # the caller keeps the notice it replaces
    qtbot.waitUntil(button.isVisible)
    buttons = window.statusBar().findChildren(QToolButton, NOTICE_OBJECT_NAME)
    live = [b for b in buttons if b.isVisibleTo(window)]
    assert [b.text() for b in live] == ["GPU: NVIDIA H100"]
    assert window.statusBar().currentMessage() == "GPU ready: NVIDIA H100, 70.0 GiB free (CUDA 13.0)"
    assert "memory: 70.0 GiB free of 80.0 GiB" in live[0].toolTip()


def test_importing_the_notice_does_not_import_torch():
    import subprocess

    code = ("import sys, segstudio.ui.gpu_notice, segstudio.inference.gpu_check; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
