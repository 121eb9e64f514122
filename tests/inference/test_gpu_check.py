"""The start-up GPU check: verdicts, driver table, and CPU fallback when CUDA is broken.

Broken CUDA is simulated by monkeypatching ``torch.cuda`` functions to raise ``RuntimeError`` the way
a too-old driver, a failed allocation or a missing kernel image does on a lab machine.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segstudio.inference import devices, gpu_check  # noqa: E402
from segstudio.inference.gpu_check import (VERDICT_CPU_BUILD, VERDICT_NO_DEVICE, VERDICT_OK,  # noqa: E402
                                           VERDICT_UNUSABLE, driver_supports, effective_device,
                                           format_report)
from segstudio.inference.registry import resolve_model  # noqa: E402
from segstudio.inference.runner import Runner  # noqa: E402
from tests.inference.helpers import random_image, save_tiny  # noqa: E402


def _raise(message):
    def fail(*args, **kwargs):
        raise RuntimeError(message)
    return fail


@pytest.fixture(autouse=True)
def fresh_check(monkeypatch):
    """No cached verdict leaks in or out of a test; no real nvidia-smi / NVML is consulted."""
    monkeypatch.setattr(gpu_check, "_cached", None)
    monkeypatch.setattr(devices, "driver_version", lambda: None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SEGSTUDIO_CPU_ONLY", raising=False)


@pytest.fixture
def cuda_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")


@pytest.fixture
def broken_gpu(monkeypatch, cuda_build):
    """torch says a GPU is there, but every call that touches it fails."""
    monkeypatch.setattr(devices, "driver_version", lambda: "580.95.05")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA Fake GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_80", "sm_90", "compute_90"])
    monkeypatch.setattr(torch.cuda, "mem_get_info", _raise("CUDA error: out of memory"))
    monkeypatch.setattr(torch.cuda, "synchronize", _raise("CUDA error: unspecified launch failure"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    real_randn = torch.randn

    def randn(*args, device=None, **kwargs):
        if device is not None and str(device).startswith("cuda"):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_randn(*args, device=device, **kwargs)

    monkeypatch.setattr(torch, "randn", randn)


def test_cpu_only_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"] == VERDICT_CPU_BUILD
    assert report["cuda_usable"] is False and report["device"] in ("cpu", "mps")
    assert effective_device("auto", report) == report["device"]


def test_cpu_only_bundle_marker(monkeypatch, cuda_build):
    """The CPU-only bundle's runtime hook sets SEGSTUDIO_CPU_ONLY=1: no GPU is touched."""
    monkeypatch.setenv("SEGSTUDIO_CPU_ONLY", "1")
    monkeypatch.setattr(torch.cuda, "is_available", _raise("CUDA driver initialization failed"))
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"] == f"{VERDICT_CPU_BUILD} (torch built for CUDA 13.0; SEGSTUDIO_CPU_ONLY=1)"
    assert effective_device("auto", report) == "cpu"


def test_cuda_build_without_driver_is_no_device(monkeypatch, cuda_build):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"] == VERDICT_NO_DEVICE
    assert report["torch_cuda"] == "13.0" and report["driver"] is None


def test_devices_hidden_by_cuda_visible_devices(monkeypatch, cuda_build):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(devices, "driver_version", lambda: "580.95.05")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.gpu_check(refresh=True)["verdict"].startswith(VERDICT_NO_DEVICE)


def test_driver_too_old_for_the_cuda_runtime(monkeypatch, cuda_build):
    monkeypatch.setattr(devices, "driver_version", lambda: "535.104.05")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"] == (f"{VERDICT_UNUSABLE}: NVIDIA driver 535.104.05 is too old for CUDA 13.0 "
                                 "(needs >= 580.65.06)")
    assert effective_device("auto", report) == "cpu"


def test_is_available_raising_is_unusable_not_a_crash(monkeypatch, cuda_build):
    monkeypatch.setattr(devices, "driver_version", lambda: "580.95.05")
    monkeypatch.setattr(torch.cuda, "is_available", _raise("CUDA driver initialization failed"))
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"].startswith(f"{VERDICT_UNUSABLE}: ")
    assert "580.95.05" in report["verdict"]
    assert report["device"] == "cpu"


def test_allocation_failure_falls_back_to_cpu(broken_gpu):
    report = gpu_check.gpu_check(refresh=True)
    assert report["cuda_available"] is True and report["cuda_usable"] is False
    assert report["verdict"].startswith(f"{VERDICT_UNUSABLE}: CUDA is not usable: RuntimeError: ")
    assert "illegal memory access" in report["verdict"]
    assert report["device"] == "cpu"
    assert effective_device("auto", report) == "cpu"
    assert effective_device("cuda", report) == "cpu"
    assert effective_device("cpu", report) == "cpu"


def test_gpu_too_old_for_the_build(broken_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (6, 1))
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"].startswith(f"{VERDICT_UNUSABLE}: NVIDIA Fake GPU (compute capability 6.1) "
                                        "is not supported by this torch build")


def test_capability_query_raising(broken_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", _raise("CUDA error: unknown error"))
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"] == f"{VERDICT_UNUSABLE}: RuntimeError: CUDA error: unknown error"


def test_working_gpu_is_ok(broken_gpu, monkeypatch):
    monkeypatch.setattr(devices, "check_cuda_usable", lambda: (True, "CUDA works on NVIDIA Fake GPU"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (30 * 2**30, 40 * 2**30))
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"] == VERDICT_OK and report["cuda_usable"] is True
    assert effective_device("auto", report) == "cuda"
    lines = format_report(report)
    assert "GPU: NVIDIA Fake GPU (compute capability 8.9)" in lines
    assert "memory: 30.0 GiB free of 40.0 GiB" in lines
    assert "torch CUDA: 13.0; driver: 580.95.05" in lines


def test_the_check_itself_never_raises(monkeypatch):
    monkeypatch.setattr(devices, "gpu_report", _raise("boom"))
    report = gpu_check.gpu_check(refresh=True)
    assert report["verdict"] == f"{VERDICT_UNUSABLE}: GPU check failed: RuntimeError: boom"
    assert effective_device("auto", report) == "cpu"


def test_result_is_cached_until_refresh(monkeypatch, cuda_build):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    first = gpu_check.gpu_check(refresh=True)
    monkeypatch.setattr(devices, "gpu_report", _raise("not called again"))
    assert gpu_check.gpu_check() == first


@pytest.mark.parametrize("driver, cuda, system, ok", [
    ("580.65.06", "13.0", "Linux", True),
    ("575.57.08", "13.0", "Linux", False),
    ("525.60.13", "12.8", "Linux", True),
    ("525.60.12", "12.1", "Linux", False),
    ("527.41", "12.4", "Windows", True),
    ("526.98", "12.0", "Windows", False),
    ("470.82.01", "11.8", "Linux", True),
    (None, "13.0", "Linux", None),
    ("580.95.05", "10.2", "Linux", None),
])
def test_driver_table(driver, cuda, system, ok):
    assert driver_supports(driver, cuda, system)[0] is ok


def test_model_load_never_crashes_on_broken_cuda(broken_gpu, tmp_path):
    """The worker's path: ``Runner(entry, device=effective_device(request))`` loads and runs on the CPU."""
    net = save_tiny(tmp_path / "tiny.pth")
    runner = Runner(resolve_model(str(tmp_path / "tiny.pth")), device=effective_device("auto"))
    assert runner.device_name == "cpu"
    image = random_image(40, 56)
    prediction = runner.predict(image)
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = net((x - 0.5) / 0.25)[0].argmax(0).numpy()
    np.testing.assert_array_equal(prediction.mask, expected)
