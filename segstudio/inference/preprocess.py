"""Turning a decoded image into model input, in numpy (no torch, so it can run in a loader thread).

The expensive part, normalisation to float, happens later on the compute device: uint8 images
travel as uint8 (a quarter of the bytes), everything else as float32 raw values. The entry's
``(x * scale - mean) / std`` becomes one multiply-add per channel (``normaliser``).
"""
from __future__ import annotations

import cv2
import numpy as np

from segstudio.core.io.images import to_three_channels

SIZE_DIVISOR = 32  # inputs are padded to a multiple of this (SMP encoders need /32)


def default_scale(dtype: np.dtype) -> float:
    """Raw value -> 0-1: 1/255 for uint8, 1/65535 for uint16, 1 for floats (taken as 0-1)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 1.0 / 255.0
    if dtype == np.uint16:
        return 1.0 / 65535.0
    if dtype == np.bool_:
        return 1.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    if np.issubdtype(dtype, np.integer):
        return 1.0 / float(np.iinfo(dtype).max)
    raise ValueError(f"unsupported image dtype {dtype}")


def normaliser(entry, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mul, add)`` so that ``raw * mul + add == (raw * scale - mean) / std``."""
    scale = entry.scale if entry.scale is not None else default_scale(dtype)
    mean = np.asarray(entry.mean, dtype=np.float64)
    std = np.asarray(entry.std, dtype=np.float64)
    return (scale / std).astype(np.float32), (-mean / std).astype(np.float32)


def model_input_size(entry, width: int, height: int) -> tuple[int, int]:
    """The (width, height) the model sees for an image of this size."""
    if entry.input_size is not None:
        return tuple(entry.input_size)
    if entry.short_side:
        factor = entry.short_side / min(width, height)
        return max(1, round(width * factor)), max(1, round(height * factor))
    return width, height


def prepare(image: np.ndarray, entry, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decoded image -> contiguous 3xHxW array (uint8, or float32 raw values) in the model's order.

    ``size`` is the (width, height) to resize to (None: keep). Shrinking uses area averaging,
    enlarging bilinear interpolation.
    """
    rgb = to_three_channels(image)
    if rgb.dtype not in (np.uint8, np.float32):
        rgb = rgb.astype(np.float32)  # raw values; the normaliser scales by the original dtype
    height, width = rgb.shape[:2]
    if size is not None and tuple(size) != (width, height):
        shrink = size[0] * size[1] < width * height
        rgb = cv2.resize(np.ascontiguousarray(rgb), tuple(int(v) for v in size),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if entry.channel_order == "BGR":
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))

