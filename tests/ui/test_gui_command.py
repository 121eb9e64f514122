"""`segstudio` itself: the window comes up before torch is imported, reviewing a predictions folder
never imports it, ``--model demo --run`` predicts, bad arguments exit 2, and the app exits cleanly."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from segstudio.core.demo import iou_in_range
from segstudio.resources import resource_path

from tests.ui.reference import reference_metrics
from tests.ui.synthetic import make_dataset, truth_and_prediction

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


def _launch(tmp_path, *args: str) -> dict[str, str]:
    """Run ``segstudio ARGS`` offscreen with the start-up probe; its ``name value`` lines as a dict."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SEGSTUDIO_SETTINGS_DIR=str(tmp_path / "settings"),
               SEGSTUDIO_STARTUP_PROBE=repr(time.time()))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", "segstudio", *args], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert "QThread: Destroyed while thread" not in done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


@pytest.mark.slow
def test_reviewing_a_predictions_folder_never_imports_torch(tmp_path):
    root = make_dataset(tmp_path / "data")
    folder = tmp_path / "predictions"
    folder.mkdir()
    for name, (_gt, pred) in truth_and_prediction().items():
        cv2.imwrite(str(folder / f"{name}.png"), pred)
    values = _launch(tmp_path, str(root), "--predictions", str(folder))
    assert values["prediction_shown"] == "True"
    gt, pred = truth_and_prediction()["a"]
    assert float(values["image_mean_iou"]) == pytest.approx(reference_metrics(gt, pred, 3)["mean_iou"], abs=1e-6)
    assert values["torch_imported"] == "False"
    print(f"peak RSS {values['max_rss_mb']} MB")


@pytest.mark.slow
def test_model_demo_run_predicts_the_first_image(tmp_path):
    values = _launch(tmp_path, str(resource_path("demo")), "--model", "demo", "--run")
    assert values["prediction_shown"] == "True" and values["torch_imported"] == "True"
    assert iou_in_range(float(values["image_mean_iou"]))   # the first demo field is the self-test's


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "{missing}: no such file or folder"),
    (["{data}", "--predictions", "{missing}"], "--predictions {missing}: no such folder"),
    (["{data}", "--model", "{missing}.pth"], "--model {missing}.pth: no such file, and not a registry name"),
    (["{data}", "--model", "torchvision:resnet9000"], "unknown torchvision architecture 'resnet9000'"),
    (["{data}", "--run"], "--run needs --model SPEC"),
])
def test_bad_arguments_exit_2_naming_what_is_wrong(tmp_path, capsys, args, message):
    from segstudio import cli

    where = {"missing": str(tmp_path / "nowhere"), "data": str(make_dataset(tmp_path / "data"))}
    with pytest.raises(SystemExit) as exit_info:
        cli.main([a.format(**where) for a in args])
    assert exit_info.value.code == 2
    assert message.format(**where) in capsys.readouterr().err
