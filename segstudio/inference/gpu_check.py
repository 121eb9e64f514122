"""The start-up GPU check: is there CUDA, and does it actually work? No Qt; never raises.

``devices.gpu_report()`` says what torch *sees*; this module adds whether it *works* and what to do
about it. A torch built for CUDA on a lab machine whose driver is too old, whose GPU is too old for
the build's kernels, or whose allocation fails must not crash at model load: the verdict says
``CUDA expected but unusable: <reason>`` and :func:`effective_device` sends ``auto`` (and ``cuda``)
to the CPU instead.

Verdicts (``VERDICTS``):

* ``cpu-only build`` -- torch was built without CUDA, or this is the CPU-only bundle, whose runtime
  hook sets ``SEGSTUDIO_CPU_ONLY=1`` (set it by hand to keep a CUDA build off the GPU);
* ``no CUDA device`` -- a CUDA build on a machine without an NVIDIA GPU/driver (or with every
  device hidden by ``CUDA_VISIBLE_DEVICES``);
* ``CUDA OK`` -- a tensor was allocated and a convolution ran on the GPU and matched the CPU;
* ``CUDA expected but unusable: <reason>`` -- a driver is there but CUDA cannot be used.
"""
from __future__ import annotations

import os
import platform
import re
import threading
import warnings

__all__ = ["CPU_ONLY_ENV", "VERDICT_CPU_BUILD", "VERDICT_NO_DEVICE", "VERDICT_OK", "VERDICT_UNUSABLE", "VERDICTS",
           "MIN_DRIVER", "gpu_check", "effective_device", "driver_supports", "format_report"]

VERDICT_CPU_BUILD = "cpu-only build"
VERDICT_NO_DEVICE = "no CUDA device"
VERDICT_OK = "CUDA OK"
VERDICT_UNUSABLE = "CUDA expected but unusable"
VERDICTS = (VERDICT_CPU_BUILD, VERDICT_NO_DEVICE, VERDICT_OK, VERDICT_UNUSABLE)
CPU_ONLY_ENV = "SEGSTUDIO_CPU_ONLY"

# Oldest driver that runs each CUDA major release under minor-version compatibility (NVIDIA "CUDA
# Compatibility", table 1, and the toolkit release notes): (Linux, Windows).
MIN_DRIVER = {
    11: ("450.80.02", "452.39"),
    12: ("525.60.13", "527.41"),
    13: ("580.65.06", "580.88"),
}

_lock = threading.Lock()
_cached: dict | None = None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def driver_supports(driver: str | None, torch_cuda: str | None, system: str | None = None) -> tuple[bool | None, str]:
    """Whether an NVIDIA driver version can run a torch built for ``torch_cuda``.

    Returns ``(ok, message)``; ``ok`` is None when it cannot be told (no driver version, unknown
    CUDA major release).
    """
    if not driver or not torch_cuda:
        return None, "driver or CUDA version unknown"
    try:
        major = _version_tuple(torch_cuda)[0]
        have = _version_tuple(driver)
    except (IndexError, ValueError):
        return None, f"cannot compare driver {driver!r} with CUDA {torch_cuda!r}"
    needed = MIN_DRIVER.get(major)
    if needed is None or not have:
        return None, f"no driver table for CUDA {torch_cuda}"
    minimum = needed[1] if (system or platform.system()) == "Windows" else needed[0]
    if have < _version_tuple(minimum):
        return False, f"NVIDIA driver {driver} is too old for CUDA {torch_cuda} (needs >= {minimum})"
    return True, f"driver {driver} supports CUDA {torch_cuda} (needs >= {minimum})"


def _arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool | None:
    """Whether kernels built for ``arch_list`` (``sm_80``, ``compute_90``) run on ``capability``.

    A cubin runs on its own major version with an equal or higher minor; PTX is JIT-compiled for
    any newer device. None when the list is empty (cannot tell).
    """
    if not arch_list:
        return None
    major, minor = capability
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", arch)
        if not match:
            continue
        a_major, a_minor = int(match.group(2)), int(match.group(3))
        if match.group(1) == "sm" and a_major == major and a_minor <= minor:
            return True
        if match.group(1) == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def _cuda_hidden() -> bool:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return value is not None and value.strip() in ("", "-1", "none", "NoDevFiles")


def _probe() -> dict:
    """Run every probe; see :func:`gpu_check`."""
    from segstudio.inference import devices  # noqa: PLC0415 - imports torch

    torch = devices.torch
    with warnings.catch_warnings(record=True) as caught:
        # torch reports "driver too old" / "no kernel image" as warnings from is_available().
        warnings.simplefilter("always")
        report = devices.gpu_report()
    init_warnings = [str(w.message).strip().splitlines()[0] for w in caught
                     if "cuda" in str(w.message).lower()]
    report.update({"verdict": "", "cuda_usable": False, "driver_check": None, "compute_capability": None,
                   "kernel_check": None, "device": "cpu"})
    torch_cuda = report.get("torch_cuda")
    if report.get("mps_available"):
        report["device"] = "mps"

    if not torch_cuda:
        report["verdict"] = VERDICT_CPU_BUILD
        return report
    if os.environ.get(CPU_ONLY_ENV) == "1":
        report["verdict"] = f"{VERDICT_CPU_BUILD} (torch built for CUDA {torch_cuda}; {CPU_ONLY_ENV}=1)"
        return report
    driver_ok, driver_message = driver_supports(report.get("driver"), torch_cuda)
    report["driver_check"] = driver_message
    if not report.get("cuda_available"):
        if _cuda_hidden():
            report["verdict"] = f"{VERDICT_NO_DEVICE} (hidden by CUDA_VISIBLE_DEVICES)"
        elif not report.get("driver"):
            report["verdict"] = VERDICT_NO_DEVICE
        elif driver_ok is False:
            report["verdict"] = f"{VERDICT_UNUSABLE}: {driver_message}"
        else:
            why = init_warnings[0] if init_warnings else "torch cannot initialise CUDA"
            report["verdict"] = f"{VERDICT_UNUSABLE}: {why} (driver {report['driver']})"
        return report

    # torch sees a device: check the build has kernels for it, then allocate and compute on it.
    try:
        capability = tuple(torch.cuda.get_device_capability(0))
        report["compute_capability"] = f"{capability[0]}.{capability[1]}"
        supported = _arch_supported(capability, list(torch.cuda.get_arch_list()))
    except Exception as exc:  # noqa: BLE001 - a broken driver can fail any call
        report["verdict"] = f"{VERDICT_UNUSABLE}: {type(exc).__name__}: {_first_line(exc)}"
        return report
    if supported is False:
        report["verdict"] = (f"{VERDICT_UNUSABLE}: {report.get('device_name') or 'the GPU'} (compute capability "
                             f"{report['compute_capability']}) is not supported by this torch build "
                             f"({' '.join(torch.cuda.get_arch_list())})")
        return report
    ok, message = devices.check_cuda_usable()
    report["kernel_check"] = message
    if not ok:
        reason = message
        if driver_ok is False:
            reason = f"{driver_message}; {message}"
        report["verdict"] = f"{VERDICT_UNUSABLE}: {reason}"
        return report
    report.update(verdict=VERDICT_OK, cuda_usable=True, device="cuda")
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "")[:300]


def gpu_check(refresh: bool = False) -> dict:
    """Check the GPU once per process (the result is cached); never raises.

    Returns
    -------
    dict
        Every ``devices.gpu_report()`` key (``cuda_available``, ``device_name``, ``memory_free``,
        ``memory_total``, ``torch_cuda``, ``driver``, ``summary`` ...) plus ``verdict`` (one of
        ``VERDICTS``, the unusable one followed by ``": <reason>"``), ``cuda_usable`` (bool),
        ``device`` (what ``auto`` should run on: ``cuda``, ``mps`` or ``cpu``), ``driver_check``,
        ``compute_capability`` and ``kernel_check`` (messages, or None when not run).
    """
    global _cached
    with _lock:
        if _cached is None or refresh:
            try:
                _cached = _probe()
            except Exception as exc:  # noqa: BLE001 - the check itself must never take the app down
                _cached = {"cuda_available": False, "cuda_usable": False, "device": "cpu",
                           "verdict": f"{VERDICT_UNUSABLE}: GPU check failed: {type(exc).__name__}: "
                                      f"{_first_line(exc)}",
                           "summary": "GPU check failed; using CPU"}
        return dict(_cached)


def effective_device(requested: str | None = "auto", report: dict | None = None) -> str:
    """The device to really run on: ``auto`` -> the check's ``device``; ``cuda`` when CUDA is
    expected but unusable -> ``cpu`` (the fallback). Other requests pass through unchanged (an
    explicit ``cuda`` on a machine with no CUDA at all still fails cleanly in ``select_device``).
    """
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return (report or gpu_check()).get("device", "cpu")
    if requested.startswith("cuda"):
        report = report or gpu_check()
        if str(report.get("verdict", "")).startswith(VERDICT_UNUSABLE):
            return "cpu"
    return requested


def format_report(report: dict) -> list[str]:
    """Human-readable lines (self-test, About): verdict, GPU, memory, CUDA vs driver."""
    lines = [f"verdict: {report.get('verdict', '?')}"]
    if report.get("device_name"):
        cc = f" (compute capability {report['compute_capability']})" if report.get("compute_capability") else ""
        lines.append(f"GPU: {report['device_name']}{cc}")
    if report.get("memory_total"):
        lines.append(f"memory: {report['memory_free'] / 2**30:.1f} GiB free of "
                     f"{report['memory_total'] / 2**30:.1f} GiB")
    lines.append(f"torch CUDA: {report.get('torch_cuda') or 'none'}; driver: {report.get('driver') or 'none found'}")
    if report.get("driver_check") and report.get("driver"):
        lines.append(f"driver check: {report['driver_check']}")
    if report.get("kernel_check"):
        lines.append(f"kernel check: {report['kernel_check']}")
    lines.append(f"device for 'auto': {report.get('device', 'cpu')}")
    return lines
