"""The display arrays of a comparison: quantised confidence and entropy, the misclassified hatch.

Each is O(image), so the GUI prepares them with :func:`prepare_layers` on the thread that builds
the comparison and only attaches them; the canvas presenter computes one itself only when a view
change needs it (error mode, recolour of a many-class table).
"""
from __future__ import annotations

import numpy as np

from segstudio.core.display.overlays import MAX_PAIR_CLASSES, pair_codes
from segstudio.core.display.render import heat_lut, quantize
from segstudio.core.evaluation.comparison import Comparison
from segstudio.core.tasks import TaskKind

__all__ = ["attach_prediction", "confidence_layer", "entropy_layer", "hatch_codes", "prepare_layers"]


def confidence_layer(confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence in 0-1 as uint8 codes with the viridis LUT."""
    return quantize(confidence), heat_lut("viridis")


def entropy_layer(entropy: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Entropy from 0 to log(C) (its maximum) as uint8 codes with the magma LUT."""
    return quantize(entropy, 0.0, float(np.log(max(num_classes, 2)))), heat_lut("magma")


def hatch_codes(comparison: Comparison, gt: np.ndarray) -> np.ndarray | None:
    """The misclassified hatch as uint16 pair codes, or None where it is not drawn that way
    (one-class error map, no ground truth, more classes than the codes can hold)."""
    if gt is None or comparison.error_codes is None or comparison.error_class is not None \
            or comparison.num_classes > MAX_PAIR_CLASSES:
        return None
    return pair_codes(comparison.error_codes, gt, comparison.pred, comparison.num_classes)


def prepare_layers(comparison: Comparison, gt: np.ndarray | None) -> Comparison:
    """Fill ``comparison.layers`` with its display arrays (run off the GUI thread); returns it."""
    if comparison.confidence is not None:
        comparison.layers["confidence"] = confidence_layer(comparison.confidence)
    if comparison.entropy is not None:
        comparison.layers["entropy"] = entropy_layer(comparison.entropy, comparison.num_classes)
    codes = hatch_codes(comparison, gt)
    if codes is not None:
        comparison.layers["misclassified"] = (codes, None)
    return comparison


def attach_prediction(tasks, document, prediction):
    """Compare ``document``'s labels with a new prediction without blocking the caller's thread.

    The comparison and its display arrays are built on ``tasks`` (a ``core.tasks.TaskRunner``;
    O(image)) and attached on return in O(1); if the labels were painted meanwhile, attaching rebuilds
    it against the labels now. A newer prediction for the same image supersedes this one. Returns the task.
    """
    build, version = document.comparison_builder(prediction.mask, prediction.confidence,
                                                 prediction.entropy, prediction.instances)
    gt = document.gt
    return tasks.submit(lambda _context: prepare_layers(build(), gt), kind=TaskKind.COMPARISON,
                        key=(TaskKind.COMPARISON, document.name),
                        on_returned=lambda comparison: document.attach_comparison(comparison, version))
