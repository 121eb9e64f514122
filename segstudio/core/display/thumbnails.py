"""Small previews of dataset images for the browser (no Qt): decoded and shrunk off the GUI thread."""
from __future__ import annotations

import numpy as np

from segstudio.core.io.images import to_display_rgb

__all__ = ["thumbnail", "THUMB_SIDE"]

THUMB_SIDE = 48


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """An RGB uint8 preview of ``image`` whose longer side is ``side`` pixels (area-averaged), C-contiguous."""
    import cv2

    image = np.asarray(image)
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale < 1 and image.dtype in (np.uint8, np.uint16, np.float32) and (image.ndim == 2 or image.shape[2] <= 4):
        # shrink first: the contrast stretch then reads side² pixels, not the whole image
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    rgb = to_display_rgb(image)
    if max(rgb.shape[:2]) > side:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[..., :3])
