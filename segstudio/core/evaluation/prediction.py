"""The one prediction type: what a model (or a predictions folder) says about one image.

The runner returns it, the worker sends it across threads, the session caches it and the canvas
draws it. Plain numpy arrays only, so it crosses the thread boundary and needs no torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from segstudio.core.editing.session import ImageStats
    from segstudio.core.io.masks import InstanceMask

__all__ = ["Prediction"]


@dataclass
class Prediction:
    """A model's (or a predictions folder's) answer for one image.

    Attributes
    ----------
    mask : ndarray
        HxW class ids (uint8; uint16 beyond 256 classes). For an instance model, the class of the
        instance on top at each pixel (0 where there is none).
    confidence : ndarray or None
        HxW float32 max softmax probability (semantic models only).
    entropy : ndarray or None
        HxW float32 entropy / log C (semantic models only).
    instances : InstanceMask or None
        Instance models: the kept instances, ``scores`` filled.
    source : str
        The model (registry name or file) or predictions folder it came from.
    stats : ImageStats or None
        Confusion against the image's labels, filled by the GUI worker for images that are not
        open (the session recomputes open ones from their document).
    probabilities : ndarray or None
        ``(C, H, W)`` float16 softmax over the classes; only when the runner was asked for it
        (``Runner(probabilities=True)``), since it costs 2·C bytes a pixel.
    """

    mask: np.ndarray
    confidence: np.ndarray | None = None
    entropy: np.ndarray | None = None
    instances: InstanceMask | None = None
    source: str = ""
    stats: ImageStats | Any = None
    probabilities: np.ndarray | None = None
