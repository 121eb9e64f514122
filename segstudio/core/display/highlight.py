"""The colour of the confusion-cell highlight: one no class, error code or instance mark uses.

A fixed yellow clashes with any yellow class (and with the "split" mark); the highlight is instead the
candidate farthest, in RGB distance, from every colour already on the canvas.
"""
from __future__ import annotations

import numpy as np

__all__ = ["CANDIDATES", "highlight_color"]

# Saturated and light colours a highlight reads well in, in order of preference on a tie.
CANDIDATES = np.array([
    (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255), (0, 255, 0), (255, 128, 0),
    (128, 0, 255), (255, 0, 0), (0, 128, 255), (255, 160, 200), (160, 255, 160), (0, 0, 0),
], np.float64)


def highlight_color(used: np.ndarray) -> tuple[int, int, int, int]:
    """The candidate whose nearest colour in ``used`` (N x 3 or N x 4 uint8, RGB first) is farthest
    away; opaque RGBA."""
    used = np.asarray(used, np.float64).reshape(-1, np.shape(used)[-1] if np.ndim(used) > 1 else 3)[:, :3]
    if not len(used):
        return (*(int(c) for c in CANDIDATES[0]), 255)
    distance = np.sqrt(((CANDIDATES[:, None, :] - used[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    best = CANDIDATES[int(np.argmax(distance))]
    return (*(int(c) for c in best), 255)
