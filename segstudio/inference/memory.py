"""How much memory an untiled prediction needs, and how much there is (no torch here).

A 6000 x 6000 image predicted whole needs its logits, their softmax and the confidence and entropy
maps at full resolution at once: gigabytes for a few classes. The runner tiles such an image on its
own when the estimate exceeds a share of the memory available, instead of dying in the allocator.
"""
from __future__ import annotations

import os
from pathlib import Path

# Logits, softmax and the log-softmax the entropy needs are alive together (float32 each).
LOGIT_COPIES = 3
# The image as float32 input, and its normalised copy.
INPUT_COPIES = 2
MEMINFO = Path("/proc/meminfo")


def untiled_bytes(height: int, width: int, num_classes: int, channels: int = 3) -> int:
    """Estimated peak bytes to predict an ``height x width`` image in one forward pass."""
    pixels = int(height) * int(width)
    return pixels * 4 * (LOGIT_COPIES * max(1, int(num_classes)) + INPUT_COPIES * channels)


def available_bytes() -> int | None:
    """Memory free for new allocations: psutil when installed, else ``MemAvailable`` of
    /proc/meminfo, else free pages from ``os.sysconf``; None when none of them answers."""
    try:
        import psutil  # noqa: PLC0415 - optional
    except ImportError:
        pass
    else:
        try:
            return int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 - fall through to the other sources
            pass
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None
