"""Device choice and the GPU report (which must never raise)."""
from __future__ import annotations

import subprocess

import pytest
import torch

from segstudio.inference import devices
from segstudio.inference.devices import DeviceUnavailableError, check_cuda_usable, gpu_report, select_device

KEYS = {"cuda_available", "device_count", "device_name", "memory_free", "memory_total", "torch_cuda",
        "driver", "mps_available", "torch", "summary"}


def test_gpu_report_shape_matches_this_machine():
    report = gpu_report()
    assert set(report) == KEYS
    assert report["cuda_available"] == torch.cuda.is_available()
    assert report["torch_cuda"] == torch.version.cuda
    assert isinstance(report["summary"], str) and report["summary"]
    if report["cuda_available"]:
        assert report["device_name"] in report["summary"]
        assert 0 < report["memory_free"] <= report["memory_total"]
    else:
        assert report["device_name"] is None and report["memory_total"] is None


def test_gpu_report_survives_a_broken_driver(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", broken)
    monkeypatch.setattr(devices, "driver_version", broken)
    report = gpu_report()
    assert set(report) == KEYS and report["driver"] is None and report["memory_total"] is None


def test_driver_version_without_nvml_or_nvidia_smi(monkeypatch):
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)
    assert devices.driver_version() is None


def test_driver_version_from_nvidia_smi(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)
    monkeypatch.setattr(devices.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(devices.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "550.54.15\n", ""))
    assert devices.driver_version() == "550.54.15"


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else select_device("auto").type)
    with pytest.raises(DeviceUnavailableError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError) as err:
            select_device("cuda")
        assert err.value.path == "cuda" and "CUDA is not available" in err.value.reason


def test_check_cuda_usable_reports_instead_of_raising():
    ok, message = check_cuda_usable()
    assert ok == torch.cuda.is_available()
    assert message.startswith("CUDA works on" if ok else "CUDA not available")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_float16_runner_matches_cpu():
    from segstudio.core.io.classes import ClassTable
    from segstudio.inference.registry import ModelEntry
    from segstudio.inference.runner import Runner
    from tests.inference.helpers import random_image, tiny_net

    entry = ModelEntry("t", "semantic", ClassTable.generic(4), (0.5,) * 3, (0.25,) * 3, "RGB", None, None,
                       lambda device, progress=None: tiny_net(4, seed=1).to(device).eval())
    image = random_image(300, 260)
    cpu = Runner(entry, device="cpu").predict(image)
    gpu_runner = Runner(entry, device="cuda")
    assert gpu_runner.half and gpu_runner.device_name.startswith("cuda (")
    gpu = gpu_runner.predict(image)
    assert (gpu.mask == cpu.mask).mean() > 0.99
    tiled = Runner(entry, device="cuda", tile_size=128, batch_size=4).predict(image)
    assert (tiled.mask == cpu.mask).mean() > 0.99
