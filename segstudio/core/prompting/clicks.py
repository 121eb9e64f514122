"""The standard click simulator of interactive segmentation (NoC@IoU), and prompts from error regions.

Simulator (Xu et al. 2016, as used by RITM, SimpleClick, SAM's evaluation): the first click goes to the
object's interior point farthest from its border; each next click to the point farthest from the border
of the largest error region, positive when it is a missed part of the object, negative when it is an
extra one. ``clicks_to_iou`` runs it against any ``segment(prompt) -> mask`` callable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from segstudio.core.prompting.types import Prompt

__all__ = ["ClickRun", "clicks_to_iou", "interior_point", "iou", "next_click", "prompt_from_error_region"]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def interior_point(region: np.ndarray) -> tuple[int, int] | None:
    """``(x, y)`` of the pixel of ``region`` farthest from its border (the image edge counts as border)."""
    if not region.any():
        return None
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def _largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool), 0
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best, int(stats[best, cv2.CC_STAT_AREA])


def next_click(gt: np.ndarray, pred: np.ndarray | None) -> tuple[int, int, bool] | None:
    """The simulator's next click ``(x, y, positive)`` for object ``gt`` given the current mask ``pred``."""
    if pred is None or not pred.any():
        point = interior_point(gt)
        return None if point is None else (*point, True)
    missed, missed_size = _largest_component(gt & ~pred)
    extra, extra_size = _largest_component(pred & ~gt)
    if missed_size == 0 and extra_size == 0:
        return None
    positive = missed_size >= extra_size
    x, y = interior_point(missed if positive else extra)
    return x, y, positive


@dataclass
class ClickRun:
    """One object's run: the IoU after each click, and the clicks given."""

    ious: list[float]
    clicks: list[tuple[int, int, bool]]

    def noc(self, threshold: float, max_clicks: int) -> int:
        """Clicks needed to reach ``threshold`` (``max_clicks`` when it never does, as is customary)."""
        for k, value in enumerate(self.ious, start=1):
            if value >= threshold:
                return k
        return max_clicks


def clicks_to_iou(gt: np.ndarray, segment: Callable[[Prompt, np.ndarray | None], np.ndarray],
                  max_clicks: int = 20, stop_at: float = 0.9) -> ClickRun:
    """Click on ``gt`` until the mask ``segment(prompt, previous_mask)`` reaches ``stop_at`` IoU."""
    prompt, mask, run = Prompt(), None, ClickRun([], [])
    for _ in range(max_clicks):
        click = next_click(gt, mask)
        if click is None:
            break
        run.clicks.append(click)
        prompt = prompt.with_click(click[0], click[1], click[2])
        mask = segment(prompt, mask).astype(bool)
        run.ious.append(iou(mask, gt))
        if run.ious[-1] >= stop_at:
            break
    return run


def prompt_from_error_region(gt: np.ndarray, pred: np.ndarray, region: np.ndarray,
                             bbox: tuple[int, int, int, int], class_id: int, max_points: int = 3,
                             margin: int = 4) -> Prompt | None:
    """The prompt the issue's auto-prompt builds from one error region, toward class ``class_id``.

    ``region`` is the region's bool mask inside ``bbox`` (``x, y, w, h``). Positive points lie inside
    its false-negative pixels (labelled ``class_id``, not predicted so), negative points inside its
    false-positive ones (predicted ``class_id``, not labelled so), each at the interior point farthest
    from the border of what is left (up to ``max_points`` of each). The box covers the region and the
    labelled object of ``class_id`` it touches, padded by ``margin``. With no false-negative pixel, one
    positive point goes inside that object when there is one. None when the region is empty.
    """
    x, y, w, h = bbox
    if not region.any():
        return None
    full = np.zeros(gt.shape, dtype=bool)
    full[y:y + h, x:x + w] = region
    labelled, predicted = gt == class_id, pred == class_id
    grown = cv2.dilate(full.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    count, components = cv2.connectedComponents(labelled.astype(np.uint8), connectivity=8)
    touched = np.unique(components[grown & labelled])
    obj = np.isin(components, touched[touched > 0]) if count > 1 else np.zeros_like(full)
    points: list[tuple[float, float, int]] = []
    for pixels, label in ((full & labelled & ~predicted, 1), (full & predicted & ~labelled, 0)):
        remaining = pixels.astype(np.uint8)
        for _ in range(max_points):
            point = interior_point(remaining.astype(bool))
            if point is None:
                break
            points.append((point[0], point[1], label))
            cv2.circle(remaining, point, 6, 0, -1)     # the next point lies elsewhere in the region
    if not any(p[2] == 1 for p in points):
        inside = interior_point(obj)
        if inside is not None:
            points.append((inside[0], inside[1], 1))
    extent = full | obj
    rows, cols = np.flatnonzero(extent.any(axis=1)), np.flatnonzero(extent.any(axis=0))
    H, W = gt.shape
    box = (max(0, int(cols[0]) - margin), max(0, int(rows[0]) - margin),
           min(W - 1, int(cols[-1]) + margin), min(H - 1, int(rows[-1]) + margin))
    return Prompt.of(points, box=box)
