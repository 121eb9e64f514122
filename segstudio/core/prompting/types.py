"""The one interface every prompt backend offers, and the values that cross it.

A backend turns an image into an *embedding* once (``set_image``: the heavy encoder, run on the
inference lane) and then answers each prompt from that embedding (``predict``: the light decoder, run
per click on the task runner). Embeddings are opaque to callers; they report their size so the
:class:`~segstudio.core.prompting.cache.EmbeddingCache` can bound its memory.

Coordinates are image pixels, ``x`` right and ``y`` down, as the canvas reports them; a box is
``(x0, y0, x1, y1)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["as_rgb8", "Embedding", "Prompt", "PromptBackend", "Proposal", "prior_from_prediction"]


@dataclass
class Embedding:
    """What ``set_image`` computed for one image: backend state plus its size in bytes."""

    shape: tuple[int, int]          # (H, W) of the image it encodes
    state: Any                      # backend-specific (tensors for SAM, arrays for GrabCut)
    nbytes: int = 0


@dataclass(frozen=True)
class Prompt:
    """Clicks, an optional box, the previous proposal's logits and an optional prior.

    Attributes
    ----------
    points : (N, 2) float array
        Click positions ``(x, y)``.
    labels : (N,) int array
        1 for a positive click (object), 0 for a negative one (not object).
    box : tuple or None
        ``(x0, y0, x1, y1)``.
    mask_input : array or None
        The previous proposal's low-resolution logits (refinement, where the backend supports it).
    multimask : bool
        Ask for several candidate masks (the backend's scores rank them).
    prior : (H, W) float array or None
        Probability that a pixel belongs to the object, from a prediction (GrabCut seeds with it;
        the SAM family ignores it).
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    box: tuple[float, float, float, float] | None = None
    mask_input: np.ndarray | None = None
    multimask: bool = True
    prior: np.ndarray | None = None

    @classmethod
    def of(cls, points=(), box=None, **kw) -> "Prompt":
        """``Prompt.of([(x, y, 1), (x, y, 0)], box=(x0, y0, x1, y1))``."""
        rows = np.asarray(list(points), dtype=np.float64).reshape(-1, 3)
        return cls(rows[:, :2].astype(np.float32), rows[:, 2].astype(np.int32),
                   None if box is None else tuple(float(v) for v in box), **kw)

    @property
    def empty(self) -> bool:
        return len(self.points) == 0 and self.box is None

    def predictor_arguments(self) -> dict:
        """This prompt as the keyword arguments of ``predict`` in both SAM packages' image predictors
        (``SamPredictor``, ``SAM2ImagePredictor``): no points as None, the mask input as (1, 256, 256)."""
        clicked = len(self.points) > 0
        return {"point_coords": self.points if clicked else None,
                "point_labels": self.labels if clicked else None,
                "box": None if self.box is None else np.asarray(self.box, dtype=np.float32),
                "mask_input": (None if self.mask_input is None
                               else np.asarray(self.mask_input, np.float32).reshape(1, 256, 256)),
                "multimask_output": self.multimask}

    def with_click(self, x: float, y: float, positive: bool) -> "Prompt":
        """This prompt plus one click (the mask input and prior are kept)."""
        return Prompt(np.vstack([self.points, np.float32([[x, y]])]),
                      np.concatenate([self.labels, np.int32([1 if positive else 0])]),
                      self.box, self.mask_input, self.multimask, self.prior)


@dataclass
class Proposal:
    """Candidate masks for one prompt, best first is :attr:`best`.

    ``masks`` is ``(K, H, W)`` bool, ``scores`` ``(K,)`` (the backend's own quality estimate), and
    ``logits`` the ``(K, h, w)`` low-resolution logits a refinement feeds back (None: not supported).
    """

    masks: np.ndarray
    scores: np.ndarray
    logits: np.ndarray | None = None

    @property
    def best(self) -> int:
        return int(np.argmax(self.scores)) if len(self.scores) else 0

    def mask(self, index: int | None = None) -> np.ndarray:
        return self.masks[self.best if index is None else index]


class PromptBackend(Protocol):
    """``set_image`` -> :class:`Embedding`; ``predict`` -> :class:`Proposal`.

    ``model_id`` names the weights (cache key); ``predict`` must be safe to call from another
    thread than ``set_image`` and must not change the embedding.
    """

    model_id: str
    supports_mask_input: bool

    def set_image(self, image: np.ndarray) -> Embedding: ...
    def predict(self, embedding: Embedding, prompt: Prompt) -> Proposal: ...


def prior_from_prediction(pred: np.ndarray, confidence: np.ndarray | None = None,
                          background: int = 0) -> np.ndarray:
    """Object probability from a semantic prediction: any class but ``background`` is object.

    With ``confidence`` (the max softmax probability) a pixel predicted as object gets that
    probability and a background pixel its complement; without, 0.9 / 0.1.
    """
    obj = pred != background
    if confidence is None:
        return np.where(obj, np.float32(0.9), np.float32(0.1))
    conf = np.clip(confidence.astype(np.float32), 0.0, 1.0)
    return np.where(obj, conf, 1.0 - conf).astype(np.float32)


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """``image`` as contiguous HxWx3 uint8 RGB (gray repeated, alpha dropped, wider types stretched
    between their 0.5 and 99.5 percentiles): what every backend encodes."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    if img.dtype != np.uint8:
        lo, hi = np.percentile(img, (0.5, 99.5))
        img = np.clip((img.astype(np.float32) - lo) * (255.0 / max(float(hi - lo), 1e-6)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)
