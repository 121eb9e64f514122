"""The frozen bundle proves itself: self-test, a clear failure, and the GUI starting and quitting.

Skipped unless ``--run-package`` is given (``make package-test``). The bundle is built with
``packaging/build.sh --skip-self-test`` (minutes, GBs), or reused as it is with
``SEGSTUDIO_REUSE_BUNDLE=1``. ``SEGSTUDIO_BUNDLE`` points at another bundle folder (for example
``dist/cpu/segstudio`` from ``build.sh --cpu-only``).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segstudio.core.demo import DEMO_MEAN_IOU_RANGE

pytestmark = [pytest.mark.package, pytest.mark.skipif(sys.platform == "win32", reason="Linux/macOS paths")]

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 3600
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def bundle() -> Path:
    folder = REPO / os.environ.get("SEGSTUDIO_BUNDLE", "dist/segstudio")   # relative to the repository
    exe = folder / "segstudio"
    if os.environ.get("SEGSTUDIO_REUSE_BUNDLE") == "1":
        if not exe.is_file():
            pytest.fail(f"SEGSTUDIO_REUSE_BUNDLE=1 but {exe} does not exist; build it with packaging/build.sh")
        return folder
    option = ["--cpu-only"] if "cpu" in folder.parts else []
    done = subprocess.run(["nice", "-n", "10", "bash", "packaging/build.sh", "--skip-self-test", *option],
                          cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert exe.is_file()
    return folder


def frozen_env(tmp_path: Path, **extra: str) -> dict:
    """The environment a user would have: no source tree on the path, no developer variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SEGSTUDIO_", "PYTHON", "VIRTUAL_ENV", "QT_"))}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), SEGSTUDIO_SETTINGS_DIR=str(tmp_path / "settings"),
               **extra)
    return env


def test_frozen_self_test_passes(bundle, tmp_path):
    started = time.perf_counter()
    done = subprocess.run([str(bundle / "segstudio"), "--self-test"], cwd=tmp_path, env=frozen_env(tmp_path),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "(frozen bundle: " in out
    for name in ("Python", "torch", "CUDA", "PySide6", "OpenCV", "numpy", "GPU check", "device"):
        assert re.search(rf"^  {name}\s+\S", out, re.MULTILINE), f"{name} missing:\n{out}"
    # The demo, its model and class table come from inside the bundle.
    resources = re.search(r"^  resources\s+(.+)$", out, re.MULTILINE).group(1)
    assert Path(resources).resolve() == (bundle / "_internal" / "resources").resolve()
    mean_iou = float(re.search(r"^  mean IoU\s+([0-9.]+)", out, re.MULTILINE).group(1))
    assert DEMO_MEAN_IOU_RANGE[0] <= mean_iou <= DEMO_MEAN_IOU_RANGE[1]
    assert "Traceback" not in done.stderr
    print(f"frozen self-test wall time {elapsed:.1f} s")


def test_frozen_self_test_reports_missing_resources(bundle, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([str(bundle / "segstudio"), "--self-test"], cwd=tmp_path,
                          env=frozen_env(tmp_path, SEGSTUDIO_RESOURCES=str(empty)),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"self-test FAILED: resources: {empty / 'demo'}: resource missing from this installation")


def test_frozen_gui_starts_shows_the_demo_and_quits_cleanly(bundle, tmp_path):
    """The start-up probe (commands/gui.py) closes the window once the first image is shown."""
    env = frozen_env(tmp_path, SEGSTUDIO_STARTUP_PROBE=repr(time.time()))
    done = subprocess.run([str(bundle / "segstudio")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = re.search(r"^window_shown_s ([0-9.]+)$", done.stdout, re.MULTILINE)
    first_image = re.search(r"^first_image_shown_s ([0-9.]+)$", done.stdout, re.MULTILINE)
    assert shown and first_image, done.stdout + done.stderr
    for bad in ("Traceback", "QThread: Destroyed while thread", "Fatal Python error", "Segmentation fault"):
        assert bad not in done.stderr, done.stderr
    print(f"frozen GUI: window shown after {float(shown.group(1)):.2f} s, "
          f"first image after {float(first_image.group(1)):.2f} s")
