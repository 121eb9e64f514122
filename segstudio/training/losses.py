"""Segmentation losses, written against the seed's definitions (``tools/demo/train.py``).

Every loss takes logits ``(N, C, H, W)`` and a target ``(N, H, W)`` of class ids in which
``ignore_index`` marks pixels that contribute nothing: neither to the value nor to the gradient.

* cross-entropy: ``F.cross_entropy(..., weight, ignore_index)``, the weighted mean over labelled pixels;
* focal (Lin et al. 2017): ``-alpha_t (1 - p_t) ** gamma * log p_t``, mean over labelled pixels, where
  ``alpha_t`` is the class weight of the pixel's true class times the scalar ``alpha``;
* soft Dice, the seed's ``soft_dice_loss``: softmax probabilities and one-hot targets summed over the
  batch and the pixels, per class ``(2 * inter + 1) / (total + 1)``, ``1 -`` their mean over the
  classes present in the batch's target;
* CE + Dice: ``CE + dice_weight * Dice`` (the seed trained the demo model with ``dice_weight = 0.5``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "LossSpec", "cross_entropy_loss", "focal_loss", "soft_dice_loss", "make_loss",
           "inverse_frequency_weights"]

LOSSES = ("ce", "focal", "dice", "ce+dice")
DICE_SMOOTH = 1.0


@dataclass(frozen=True)
class LossSpec:
    """A loss and its parameters, as the CLI names them and the model card records them."""

    name: str = "ce+dice"
    gamma: float = 2.0
    alpha: float = 1.0
    dice_weight: float = 0.5
    class_weights: tuple[float, ...] | None = None

    def describe(self) -> dict:
        out: dict = {"name": self.name}
        if self.name == "focal":
            out.update(gamma=self.gamma, alpha=self.alpha)
        if self.name == "ce+dice":
            out["dice_weight"] = self.dice_weight
        if self.class_weights is not None and self.name != "dice":
            out["class_weights"] = [round(w, 6) for w in self.class_weights]
        return out


def _zero(logits: torch.Tensor) -> torch.Tensor:
    """A zero loss that still belongs to the graph (a batch with every pixel ignored)."""
    return logits.sum() * 0.0


def cross_entropy_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean cross-entropy over the labelled pixels (0 when every pixel is ignored)."""
    if not bool((target != ignore_index).any()):
        return _zero(logits)
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255, gamma: float = 2.0,
               alpha: float = 1.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-class focal loss, mean over the labelled pixels."""
    valid = target != ignore_index
    if not bool(valid.any()):
        return _zero(logits)
    log_probs = F.log_softmax(logits.float(), dim=1)
    safe = torch.where(valid, target, torch.zeros_like(target))
    log_pt = log_probs.gather(1, safe.unsqueeze(1)).squeeze(1)
    pt = log_pt.exp()
    alpha_t = torch.full_like(log_pt, float(alpha))
    if weight is not None:
        alpha_t = alpha_t * weight.to(log_pt)[safe]
    per_pixel = -alpha_t * (1.0 - pt).clamp(min=0.0) ** gamma * log_pt
    return per_pixel[valid].mean()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in the (labelled part of the) batch."""
    num_classes = logits.shape[1]
    valid = target != ignore_index
    if not bool(valid.any()):
        return _zero(logits)
    probs = logits.float().softmax(dim=1) * valid.unsqueeze(1)
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(probs) * valid.unsqueeze(1)
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice = (2 * inter + DICE_SMOOTH) / (total + DICE_SMOOTH)
    return 1.0 - dice[present].mean()


def make_loss(spec: LossSpec, ignore_index: int = 255, device=None):
    """``loss(logits, target) -> scalar`` for ``spec``."""
    if spec.name not in LOSSES:
        raise ValueError(f"unknown loss {spec.name!r}; choose one of {', '.join(LOSSES)}")
    weight = (torch.tensor(spec.class_weights, dtype=torch.float32, device=device)
              if spec.class_weights is not None else None)

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if spec.name == "ce":
            return cross_entropy_loss(logits, target, ignore_index, weight)
        if spec.name == "focal":
            return focal_loss(logits, target, ignore_index, spec.gamma, spec.alpha, weight)
        if spec.name == "dice":
            return soft_dice_loss(logits, target, ignore_index)
        return (cross_entropy_loss(logits, target, ignore_index, weight)
                + spec.dice_weight * soft_dice_loss(logits, target, ignore_index))

    return loss


def inverse_frequency_weights(counts: Sequence[int] | np.ndarray) -> tuple[float, ...]:
    """Class weights ``total / (K * count_c)`` over the K classes that occur (mean weight 1 over them);
    a class with no labelled pixel gets 1 (it never appears in a target, so its weight is unused)."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    if not present.any():
        return tuple(1.0 for _ in counts)
    weights = np.ones_like(counts)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return tuple(float(w) for w in weights)
