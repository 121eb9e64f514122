"""Measuring helpers shared by bench/window_bench.py and bench/napari_baseline.py.

Standard library only, and the Qt binding is passed in: the napari side runs under PyQt5 in its own
interpreter, segstudio's under PySide6, and both must measure the same way.
"""
from __future__ import annotations

import resource
import statistics
import time

HEARTBEAT_MS = 5


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]}


class Heartbeat:
    """A 5 ms precise timer; the longest gap between its ticks, less the interval, is the longest block.

    ``QtCore`` is the binding's module (PySide6.QtCore or PyQt5.QtCore).
    """

    def __init__(self, QtCore):  # noqa: N803 - the module's own name
        self.ticks: list[float] = []
        self.timer = QtCore.QTimer()
        self.timer.setTimerType(QtCore.Qt.PreciseTimer)
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def start(self) -> float:
        self.ticks = [time.perf_counter()]
        self.timer.start()
        return self.ticks[0]

    def stop(self) -> float:
        self.timer.stop()
        self.ticks.append(time.perf_counter())
        gaps = [b - a for a, b in zip(self.ticks, self.ticks[1:])]
        return max(0.0, max(gaps) * 1000 - HEARTBEAT_MS)
