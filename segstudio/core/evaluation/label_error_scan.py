"""The label-error queue's data: a dataset scan, the user's decisions, and what is left to review.

:func:`scan_label_errors` runs the two passes of :mod:`segstudio.core.evaluation.label_errors` over a
dataset as one task-runner job (a generator: cancellable between images, with progress): first the
per-class thresholds from every image, then each image's suspect regions. Probabilities come from a
folder of ``<stem>.npy`` files (:func:`read_probabilities`, what ``label-errors --probabilities`` reads)
or from predictions that carry them.

A :class:`LabelErrorQueue` holds the regions best first, without those the user already rejected or
accepted (a region counts as decided when a decision of the same image, given and suggested class
overlaps it with box IoU >= 0.5, so a region found again after an unrelated edit stays decided), and
counts the decisions per class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from segstudio.core.errors import PredictionError, SegStudioError
from segstudio.core.evaluation.label_errors import LabelErrorRegion, ThresholdAccumulator, score_image

__all__ = ["ScanItem", "ScanResult", "Decision", "LabelErrorQueue", "scan_label_errors", "read_probabilities",
           "probability_files", "box_iou", "DECISIONS"]

DECISIONS = ("accepted", "rejected")
SAME_REGION_IOU = 0.5


def read_probabilities(path: str | Path, num_classes: int, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A ``(C, H, W)`` float16/float32 probability map from ``path`` (``.npy``), checked.

    Raises
    ------
    PredictionError
        Unreadable, another dtype or shape, the wrong number of classes, or not summing to 1 over C.
    """
    try:
        probs = np.load(str(path), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PredictionError(path, f"cannot read probabilities: {exc}") from None
    if probs.dtype not in (np.float16, np.float32):
        raise PredictionError(path, f"probabilities must be float16 or float32, got {probs.dtype}")
    if probs.ndim != 3 or probs.shape[0] != num_classes:
        raise PredictionError(path, f"probabilities must have shape ({num_classes}, H, W), got {probs.shape}")
    if shape is not None and tuple(probs.shape[1:]) != tuple(shape):
        raise PredictionError(path, f"probabilities are {probs.shape[1:]}, the image is {tuple(shape)}")
    sums = probs[:, ::8, ::8].astype(np.float32).sum(axis=0)
    if sums.size and np.abs(sums - 1).max() > 0.02:
        raise PredictionError(path, "probabilities do not sum to 1 over the classes (a softmax is expected)")
    return probs


def probability_files(names: Iterable[str], folder: str | Path) -> dict[str, Path]:
    """Image name -> ``<folder>/<name>.npy`` for the images that have one."""
    folder = Path(folder)
    return {n: folder / f"{n}.npy" for n in names if (folder / f"{n}.npy").is_file()}


@dataclass
class ScanItem:
    """One image to scan: its labels now and its probabilities, each read when the scan needs them."""

    name: str
    labels: Callable[[], np.ndarray | None]
    probabilities: Callable[[], np.ndarray]


@dataclass
class ScanResult:
    thresholds: np.ndarray
    regions: list[LabelErrorRegion]              # best first, across the dataset
    quality: dict[str, float | None]             # image -> label quality
    problems: list[str] = field(default_factory=list)


def scan_label_errors(context, items: list[ScanItem], num_classes: int, ignore_index: int,
                      min_area: int = 1) -> Iterator[None]:
    """Thresholds over every image, then each image's suspect regions: a generator task.

    Progress goes to ``context.progress(done, 2 * len(items))``; an image whose labels or probabilities
    cannot be read is left out and named in ``problems``. Returns a :class:`ScanResult`.
    """
    total = 2 * len(items)
    accumulator = ThresholdAccumulator(num_classes)
    problems: list[str] = []
    usable: list[ScanItem] = []
    for done, item in enumerate(items, start=1):
        try:
            labels = item.labels()
            if labels is not None:
                accumulator.add(item.probabilities(), labels, ignore_index)
                usable.append(item)
        except (SegStudioError, ValueError) as exc:
            problems.append(f"{item.name}: {exc}")
        if context is not None:
            context.progress(done, total)
        yield
    thresholds = accumulator.thresholds()
    regions: list[LabelErrorRegion] = []
    quality: dict[str, float | None] = {}
    for done, item in enumerate(usable, start=len(items) + 1):
        try:
            found = score_image(item.probabilities(), item.labels(), thresholds, ignore_index=ignore_index,
                                min_area=min_area, image_name=item.name)
        except (SegStudioError, ValueError) as exc:
            problems.append(f"{item.name}: {exc}")
        else:
            regions.extend(found.regions)
            quality[item.name] = found.quality
        if context is not None:
            context.progress(done, total)
        yield
    regions.sort(key=lambda r: (-r.score, -r.area, r.image))
    return ScanResult(thresholds, regions, quality, problems)


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


@dataclass(frozen=True)
class Decision:
    """What the user decided about one proposed region (kept in the project store)."""

    image: str
    bbox: tuple[int, int, int, int]
    given: int
    suggested: int
    decision: str          # one of DECISIONS

    def covers(self, region: LabelErrorRegion) -> bool:
        return (self.image == region.image and self.given == region.given
                and self.suggested == region.suggested and box_iou(self.bbox, region.bbox) >= SAME_REGION_IOU)


class LabelErrorQueue:
    """Regions still to review, best first, and the decisions taken (see the module docstring).

    Parameters
    ----------
    regions : iterable of LabelErrorRegion
        A scan's regions, best first.
    decisions : iterable of Decision
        Earlier decisions (from the project store): the regions they cover are not proposed.
    num_classes : int
        Length of the per-class counts.
    """

    def __init__(self, regions: Iterable[LabelErrorRegion], decisions: Iterable[Decision], num_classes: int):
        self.decisions: list[Decision] = list(decisions)
        self.num_classes = int(num_classes)
        self.pending: list[LabelErrorRegion] = [r for r in regions if not self.decided(r)]
        self.skipped: list[LabelErrorRegion] = []

    def decided(self, region: LabelErrorRegion) -> bool:
        return any(d.covers(region) for d in self.decisions)

    def decide(self, region: LabelErrorRegion, decision: str) -> Decision:
        """Record ``decision`` ('accepted' or 'rejected') on ``region`` and take it off the queue."""
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}; expected one of {DECISIONS}")
        made = Decision(region.image, tuple(int(v) for v in region.bbox), int(region.given),
                        int(region.suggested), decision)
        self.decisions.append(made)
        self._remove(region)
        return made

    def skip(self, region: LabelErrorRegion) -> None:
        """Move ``region`` to the end of the queue, undecided."""
        self._remove(region)
        self.skipped.append(region)
        self.pending.append(region)

    def _remove(self, region: LabelErrorRegion) -> None:
        self.pending = [r for r in self.pending if r is not region]

    def counts(self) -> dict[str, np.ndarray]:
        """``{'accepted': (C,), 'rejected': (C,)}`` decisions per given class (the label called wrong)."""
        out = {d: np.zeros(self.num_classes, np.int64) for d in DECISIONS}
        for d in self.decisions:
            if 0 <= d.given < self.num_classes:
                out[d.decision][d.given] += 1
        return out
