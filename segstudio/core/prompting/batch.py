"""The prompts file of ``segstudio prompt --prompts``: a JSON list of per-object prompts.

Each item is ``{"image": NAME_OR_PATH, "points": [[x, y, 1|0], ...], "box": [x0, y0, x1, y1],
"class": ID}``; ``points`` or ``box`` (or both) must be there, ``class`` defaults to 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from os import PathLike

from segstudio.core.errors import SegStudioError
from segstudio.core.io.jsonfile import read_json

__all__ = ["PromptFileError", "PromptItem", "read_prompts"]


class PromptFileError(SegStudioError):
    """A prompts file is unreadable or an item in it is malformed."""


@dataclass(frozen=True)
class PromptItem:
    image: str
    points: tuple[tuple[float, float, int], ...]
    box: tuple[float, float, float, float] | None
    class_id: int


def _numbers(value, count, path, where) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != count or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise PromptFileError(path, f"{where}: expected {count} finite numbers, got {value!r}")
    return tuple(float(v) for v in value)


def read_prompts(path: str | PathLike) -> list[PromptItem]:
    """Read and check a prompts file (see the module docstring); raises :class:`PromptFileError`."""
    data = read_json(path, PromptFileError, "cannot read the prompts file")
    if not isinstance(data, list) or not data:
        raise PromptFileError(path, "expected a non-empty JSON list of {image, points, box, class}")
    items = []
    for i, item in enumerate(data):
        where = f"item {i}"
        if not isinstance(item, dict) or not isinstance(item.get("image"), str) or not item["image"]:
            raise PromptFileError(path, f"{where}: needs an \"image\" name or path")
        points = []
        for j, point in enumerate(item.get("points") or []):
            x, y, label = _numbers(point, 3, path, f"{where} point {j}")
            if label not in (0.0, 1.0):
                raise PromptFileError(path, f"{where} point {j}: the third value is 1 (object) or 0 (not object)")
            points.append((x, y, int(label)))
        box = _numbers(item["box"], 4, path, f"{where} box") if item.get("box") is not None else None
        if not points and box is None:
            raise PromptFileError(path, f"{where}: needs \"points\" or a \"box\"")
        class_id = item.get("class", 1)
        if not isinstance(class_id, int) or isinstance(class_id, bool) or class_id < 0:
            raise PromptFileError(path, f"{where}: \"class\" must be a class id (a non-negative integer)")
        items.append(PromptItem(item["image"], tuple(points), box, class_id))
    return items
