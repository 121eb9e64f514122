"""What the SAM-family backends share: two of the package's predictors over one model.

One predictor encodes (``set_image``, the inference lane), the other decodes from a cached embedding
(``predict``, the task runner), each under its own lock, so a click never waits for an encoding of
another image and never sees a half-set predictor. A subclass says how to build the model and its
predictors, what of an encoded predictor makes the embedding, and how to put an embedding back.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from segstudio.core.prompting.types import Embedding, Prompt, Proposal, as_rgb8

__all__ = ["PredictorPair"]


class PredictorPair:
    """A prompt backend over a package's image predictor (see the module docstring)."""

    supports_mask_input = True      # the previous proposal's 256x256 logits

    def __init__(self, path: str | Path, device: str = "cpu"):
        self.path = Path(path)
        self.device = device
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._decode_lock = threading.Lock()
        self._encoder = self._decoder = None

    # --- what a subclass says ------------------------------------------------------------------
    def _build(self) -> tuple:
        """The encoding and the decoding predictor, over one model on ``self.device``."""
        raise NotImplementedError

    def _encode(self, predictor, rgb: np.ndarray) -> tuple[dict, list[torch.Tensor]]:
        """Encode ``rgb``; the embedding's state and its tensors (for its size); leave ``predictor`` reset."""
        raise NotImplementedError

    def _attach(self, predictor, state: dict) -> None:
        """Make ``predictor`` decode from the embedding ``state``."""
        raise NotImplementedError

    def _detach(self, predictor) -> None:
        raise NotImplementedError

    # --- the backend interface -----------------------------------------------------------------
    def load(self) -> None:
        with self._load_lock:
            if self._encoder is None:
                self._encoder, self._decoder = self._build()

    @torch.inference_mode()
    def set_image(self, image: np.ndarray) -> Embedding:
        self.load()
        rgb = as_rgb8(image)
        with self._encode_lock:
            state, tensors = self._encode(self._encoder, rgb)
        return Embedding(rgb.shape[:2], state, sum(t.element_size() * t.nelement() for t in tensors))

    @torch.inference_mode()
    def predict(self, embedding: Embedding, prompt: Prompt) -> Proposal:
        self.load()
        with self._decode_lock:
            predictor = self._decoder
            self._attach(predictor, embedding.state)
            try:
                masks, scores, logits = predictor.predict(**prompt.predictor_arguments())
            finally:
                self._detach(predictor)
        return Proposal(np.asarray(masks) > 0, scores.astype(np.float32), logits.astype(np.float32))
