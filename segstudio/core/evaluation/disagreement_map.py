"""The disagreement map of the image on screen, kept exact through label edits in O(edit).

:mod:`segstudio.core.evaluation.disagreement` codes every pixel by how sources A and B fare against the
labels. The GUI builds the codes once per image and source pair (O(image), on the task runner) and then
follows each edit atom: only the atom's bounding box is recoded, and the per-kind pixel counts move by
the difference inside that box, so a stroke never costs O(image).
"""
from __future__ import annotations

import numpy as np

from segstudio.core.evaluation.disagreement import COUNT_KEYS, Disagreement, disagreement_codes, update_codes

__all__ = ["DisagreementMap", "DISAGREEMENT_COLORS", "DISAGREEMENT_LABELS", "disagreement_lut"]

# Colour per kind: B breaks red, B fixes green, both wrong (same answer) orange, both wrong (different
# answers) purple, ignored grey; both right stays transparent.
DISAGREEMENT_COLORS: dict[Disagreement, tuple[int, int, int, int]] = {
    Disagreement.BOTH_RIGHT: (0, 0, 0, 0),
    Disagreement.B_FIXES: (0, 170, 60, 255),
    Disagreement.B_BREAKS: (220, 30, 30, 255),
    Disagreement.BOTH_WRONG_SAME: (245, 150, 0, 255),
    Disagreement.BOTH_WRONG_DIFFERENT: (140, 60, 200, 255),
    Disagreement.IGNORED: (128, 128, 128, 160),
}
DISAGREEMENT_LABELS: dict[Disagreement, str] = {
    Disagreement.BOTH_RIGHT: "both right",
    Disagreement.B_FIXES: "B fixes (A wrong, B right)",
    Disagreement.B_BREAKS: "B breaks (A right, B wrong)",
    Disagreement.BOTH_WRONG_SAME: "both wrong, same class",
    Disagreement.BOTH_WRONG_DIFFERENT: "both wrong, different classes",
    Disagreement.IGNORED: "ignored",
}


def disagreement_lut() -> np.ndarray:
    """``(256, 4)`` uint8 RGBA lookup table for the codes (an Indexed8 image on the canvas)."""
    lut = np.zeros((256, 4), np.uint8)
    for kind, rgba in DISAGREEMENT_COLORS.items():
        lut[int(kind)] = rgba
    return lut


class DisagreementMap:
    """Codes and per-kind counts of sources A and B against one image's labels.

    Parameters
    ----------
    gt, pred_a, pred_b : np.ndarray
        ``(H, W)`` labels and the two predictions; the predictions are kept (they do not change), the
        labels are read again at every :meth:`apply_edit`.
    ignore_index, num_classes : int
        From the class table.
    codes : np.ndarray, optional
        Codes already computed for exactly these arrays (on a worker thread); computed here otherwise.
    """

    def __init__(self, gt: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, ignore_index: int,
                 num_classes: int, codes: np.ndarray | None = None):
        self.pred_a, self.pred_b = pred_a, pred_b
        self.ignore_index, self.num_classes = int(ignore_index), int(num_classes)
        self.codes = codes if codes is not None else disagreement_codes(gt, pred_a, pred_b, self.ignore_index,
                                                                        self.num_classes)
        self.counts = np.bincount(self.codes.ravel(), minlength=len(COUNT_KEYS))[:len(COUNT_KEYS)].astype(np.int64)

    def apply_edit(self, gt: np.ndarray, bbox: tuple[int, int, int, int]) -> None:
        """Labels changed inside ``bbox`` ``(x, y, w, h)``: recode that box and move the counts, O(bbox)."""
        x, y, w, h = bbox
        window = self.codes[y:y + h, x:x + w]
        n = len(COUNT_KEYS)
        self.counts -= np.bincount(window.ravel(), minlength=n)[:n]
        update_codes(self.codes, gt, self.pred_a, self.pred_b, self.ignore_index, bbox, self.num_classes)
        self.counts += np.bincount(window.ravel(), minlength=n)[:n]

    def count_dict(self) -> dict[str, int]:
        """Pixels of each kind, keyed like :func:`~segstudio.core.evaluation.disagreement.disagreement_counts`."""
        return {key: int(self.counts[i]) for i, key in enumerate(COUNT_KEYS)}
