"""Picking a compute device and reporting on the GPU.

``gpu_report()`` never raises: every probe that fails leaves its field at ``None``.
"""
from __future__ import annotations

import shutil
import subprocess

import torch

from segstudio.core.errors import SegStudioError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


class DeviceUnavailableError(SegStudioError):
    """The requested device does not exist on this machine (``path`` is the device name)."""


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    try:
        return bool(backend and backend.is_available())
    except Exception:  # noqa: BLE001 - old builds raise on machines without Metal
        return False


def select_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else MPS, else CPU; ``cuda:1`` style indices pass through.

    Raises
    ------
    DeviceUnavailableError
        An explicit ``cuda`` / ``mps`` request on a machine without it, or an unknown name.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    kind = name.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(name, f"CUDA is not available ({gpu_report()['summary']})")
    if kind == "mps" and not mps_available():
        raise DeviceUnavailableError(name, "Apple MPS is not available on this machine")
    if kind not in DEVICE_CHOICES:
        raise DeviceUnavailableError(name, f"unknown device; choose one of {', '.join(DEVICE_CHOICES)}")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise DeviceUnavailableError(name, str(exc)) from None


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA (or MPS) out-of-memory error."""
    if isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def driver_version() -> str | None:
    """The NVIDIA driver version from pynvml or nvidia-smi; None when neither answers."""
    try:
        import pynvml  # noqa: PLC0415 - optional

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001 - absent or broken NVML: try nvidia-smi
        pass
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        done = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    line = done.stdout.strip().splitlines()[0].strip() if done.returncode == 0 and done.stdout.strip() else ""
    return line or None


def gpu_report() -> dict:
    """What the machine offers for inference; never raises.

    Returns
    -------
    dict
        ``cuda_available`` (bool), ``device_name``, ``memory_free`` and ``memory_total`` (bytes),
        ``torch_cuda`` (``torch.version.cuda``), ``driver``, ``device_count``, ``mps_available``,
        ``torch`` (version) and ``summary``, a one-line human description. Unknown values are None.
    """
    report = {"cuda_available": False, "device_count": 0, "device_name": None, "memory_free": None,
              "memory_total": None, "torch_cuda": None, "driver": None, "mps_available": False,
              "torch": getattr(torch, "__version__", None), "summary": ""}
    try:
        report["torch_cuda"] = torch.version.cuda
        report["cuda_available"] = bool(torch.cuda.is_available())
        if report["cuda_available"]:
            report["device_count"] = torch.cuda.device_count()
            report["device_name"] = torch.cuda.get_device_name(0)
            free, total = torch.cuda.mem_get_info(0)
            report["memory_free"], report["memory_total"] = int(free), int(total)
    except Exception:  # noqa: BLE001 - a broken driver must not take the app down
        pass
    try:
        report["driver"] = driver_version() if report["cuda_available"] or report["torch_cuda"] else None
    except Exception:  # noqa: BLE001
        report["driver"] = None
    report["mps_available"] = mps_available()
    report["summary"] = _summary(report)
    return report


def _summary(r: dict) -> str:
    if r["cuda_available"]:
        memory = ""
        if r["memory_total"]:
            memory = f", {r['memory_free'] / 2**30:.1f} of {r['memory_total'] / 2**30:.1f} GiB free"
        driver = f", driver {r['driver']}" if r["driver"] else ""
        return f"CUDA {r['torch_cuda']}: {r['device_name']}{memory}{driver}"
    if r["mps_available"]:
        return "Apple MPS available; no CUDA"
    if r["torch_cuda"]:
        return (f"no usable CUDA device (torch built for CUDA {r['torch_cuda']}"
                f"{', driver ' + r['driver'] if r['driver'] else ', no NVIDIA driver found'}); using CPU")
    return "CPU only (torch built without CUDA)"


def check_cuda_usable() -> tuple[bool, str]:
    """Allocate a tensor and run a small convolution on the GPU; returns (ok, message)."""
    try:
        if not torch.cuda.is_available():
            return False, "CUDA not available: " + gpu_report()["summary"]
        x = torch.randn(1, 3, 64, 64, device="cuda")
        conv = torch.nn.Conv2d(3, 8, 3, padding=1).cuda()
        with torch.inference_mode():
            y = conv(x)
            ref = torch.nn.functional.conv2d(x.cpu(), conv.weight.cpu(), conv.bias.cpu(), padding=1)
        torch.cuda.synchronize()
        err = float((y.cpu() - ref).abs().max())
        if not err < 1e-2:
            return False, f"CUDA convolution disagrees with the CPU result (max error {err:.3g})"
        return True, f"CUDA works on {torch.cuda.get_device_name(0)} (conv max error {err:.1e})"
    except Exception as exc:  # noqa: BLE001 - report any failure as a message
        return False, f"CUDA is not usable: {type(exc).__name__}: {str(exc).strip()[:300]}"
