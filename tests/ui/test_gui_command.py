"""`segstudio` itself: the window comes up on the demo before torch is imported, and exits cleanly."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_window_is_shown_before_torch_and_the_app_exits_cleanly(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SEGSTUDIO_SETTINGS_DIR=str(tmp_path),
               SEGSTUDIO_STARTUP_PROBE=repr(time.time()))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", "segstudio"], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    values = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert values["torch_imported_at_show"] == "False"
    assert 0 < float(values["window_shown_s"]) <= float(values["first_image_shown_s"])
    assert "QThread: Destroyed while thread" not in done.stderr
