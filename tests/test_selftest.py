"""``segstudio --self-test`` from source: the report, its IoU against a plain reference, and each failure.

Every case runs ``python -m segstudio --self-test`` in a subprocess, as a user (or the frozen bundle's
build script) would. The failure cases point ``SEGSTUDIO_RESOURCES`` at a doctored copy of the demo.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.commands.selftest import EXIT_IOU, EXIT_MODEL, EXIT_RESOURCES, EXIT_TIMEOUT
from segstudio.core.demo import DEMO_MEAN_IOU_RANGE, SELF_TEST_IMAGE
from segstudio.resources import resource_path

REPO = Path(__file__).resolve().parent.parent


def self_test(env_extra: dict | None = None, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SEGSTUDIO_RESOURCES", "SEGSTUDIO_CPU_ONLY")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "segstudio", "--self-test", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def failure_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("self-test FAILED: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def demo_copy(tmp_path: Path) -> Path:
    """resources/ with a demo holding only the self-test field (cheap to copy and to doctor)."""
    source = resource_path("demo")
    demo = tmp_path / "resources" / "demo"
    for part in ("images", "masks", "model"):
        (demo / part).mkdir(parents=True)
    for part in (f"images/{SELF_TEST_IMAGE}.png", f"masks/{SELF_TEST_IMAGE}.png", "classes.json",
                 "model/demo_unet.pth", "model/demo_unet.json"):
        shutil.copy2(source / part, demo / part)
    return demo


def reference_mean_iou() -> float:
    """The demo model on the self-test field, computed the plain way (torch + a numpy confusion)."""
    torch = pytest.importorskip("torch")
    from segstudio.inference.unet import CompactUNet

    demo = resource_path("demo")
    card = json.loads((demo / "model" / "demo_unet.json").read_text())
    net = CompactUNet(**card["arch_kwargs"])
    net.load_state_dict(torch.load(demo / "model" / "demo_unet.pth", map_location="cpu", weights_only=True))
    rgb = np.array(Image.open(demo / "images" / f"{SELF_TEST_IMAGE}.png").convert("RGB"))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(card["mean"]).view(1, 3, 1, 1)) / torch.tensor(card["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = net.eval()(x)[0].argmax(0).numpy()
    gt = np.asarray(Image.open(demo / "masks" / f"{SELF_TEST_IMAGE}.png")).astype(np.int64)
    confusion = np.zeros((4, 4), np.int64)
    np.add.at(confusion, (gt.ravel(), pred.ravel()), 1)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    return float((tp[union > 0] / union[union > 0]).mean())


@pytest.mark.slow
def test_self_test_passes_from_source():
    done = self_test()
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for name in ("segstudio", "Python", "torch", "CUDA", "PySide6", "OpenCV", "numpy", "GPU check", "device"):
        assert re.search(rf"^  {re.escape(name)}\s+\S", out, re.MULTILINE), f"{name} missing:\n{out}"
    assert "from source" in out
    assert re.search(r"^  GPU check\s+(cpu-only build|no CUDA device|CUDA OK|CUDA expected but unusable: )",
                     out, re.MULTILINE)
    assert "self-test passed in" in out.splitlines()[-1]
    mean_iou = float(re.search(r"^  mean IoU\s+([0-9.]+)", out, re.MULTILINE).group(1))
    assert DEMO_MEAN_IOU_RANGE[0] <= mean_iou <= DEMO_MEAN_IOU_RANGE[1]
    # The GUI worker's answer is the plain forward pass's answer.
    assert mean_iou == pytest.approx(reference_mean_iou(), abs=2e-3)


def test_missing_resources_fail_with_one_clear_line(tmp_path):
    done = self_test({"SEGSTUDIO_RESOURCES": str(tmp_path)})
    assert done.returncode == EXIT_RESOURCES
    assert failure_line(done) == (f"self-test FAILED: resources: {tmp_path / 'demo'}: resource missing "
                                  "from this installation")
    assert "Traceback" not in done.stderr


def test_missing_model_file_is_a_resource_failure(tmp_path):
    demo = demo_copy(tmp_path)
    (demo / "model" / "demo_unet.pth").unlink()
    done = self_test({"SEGSTUDIO_RESOURCES": str(demo.parent)})
    assert done.returncode == EXIT_RESOURCES
    assert failure_line(done).endswith("demo_unet.pth: resource missing from this installation")


@pytest.mark.slow
def test_corrupt_model_fails_at_load(tmp_path):
    demo = demo_copy(tmp_path)
    (demo / "model" / "demo_unet.pth").write_bytes(b"not a checkpoint")
    done = self_test({"SEGSTUDIO_RESOURCES": str(demo.parent)})
    assert done.returncode == EXIT_MODEL, done.stdout + done.stderr
    line = failure_line(done)
    assert line.startswith("self-test FAILED: demo model load or inference failed: ")
    assert "demo_unet.pth" in line
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_iou_out_of_range_fails(tmp_path):
    demo = demo_copy(tmp_path)
    mask_path = demo / "masks" / f"{SELF_TEST_IMAGE}.png"
    mask = Image.open(mask_path)
    wrong = Image.fromarray(np.full(np.asarray(mask).shape, 3, np.uint8), mode="P")   # all "debris"
    wrong.putpalette(mask.getpalette())
    wrong.save(mask_path)
    done = self_test({"SEGSTUDIO_RESOURCES": str(demo.parent)})
    assert done.returncode == EXIT_IOU, done.stdout + done.stderr
    assert re.fullmatch(rf"self-test FAILED: demo mean IoU 0\.\d{{4}} outside the documented range "
                        rf"0\.70-0\.92 on {SELF_TEST_IMAGE}", failure_line(done))


def test_timeout_fails_with_its_own_status():
    done = self_test({"SEGSTUDIO_SELFTEST_TIMEOUT": "0.01"})
    assert done.returncode == EXIT_TIMEOUT
    assert failure_line(done).startswith("self-test FAILED: timed out waiting for torch to import")


@pytest.mark.slow
def test_required_cuda_without_a_usable_gpu_fails():
    pytest.importorskip("torch")
    from segstudio.inference.gpu_check import gpu_check

    if gpu_check()["cuda_usable"]:
        pytest.skip("this machine has a working GPU")
    done = self_test(None, "--device", "cuda")
    assert done.returncode == EXIT_MODEL
    assert failure_line(done).startswith("self-test FAILED: --device cuda requested but ")
