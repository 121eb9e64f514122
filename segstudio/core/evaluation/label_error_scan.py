"""The label-error queue's data: a dataset scan, the user's decisions, and what is left to review.

:func:`scan_label_errors` runs the two passes of :mod:`segstudio.core.evaluation.label_errors` over a
dataset as one task-runner job (a generator: cancellable between images, with progress): first the
per-class thresholds from every image, then each image's suspect regions. Probabilities come from a
folder of ``<stem>.npy`` files (:func:`folder_pass`: ``label-errors --probabilities``'s checked reader)
or from a model's prediction stream, one per pass (the GUI's inference lane). Unlike
``label_error_report.find_label_errors`` (the CLI's report), the labels are the ones being edited and the
regions keep their masks, which "accept" relabels.

A :class:`LabelErrorQueue` holds the regions best first, without those the user already rejected or
accepted (a region counts as decided when a decision of the same image, given and suggested class
overlaps it with box IoU >= 0.5, so a region found again after an unrelated edit stays decided), and
counts the decisions per class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from segstudio.core.errors import PredictionError, SegStudioError
from segstudio.core.evaluation.label_error_report import ProbabilityFolder, ProbabilityLookup
from segstudio.core.evaluation.label_errors import LabelErrorRegion, ThresholdAccumulator, score_image

__all__ = ["ScanItem", "ScanResult", "Decision", "LabelErrorQueue", "scan_label_errors", "folder_pass",
           "box_iou", "DECISIONS"]

DECISIONS = ("accepted", "rejected")
SAME_REGION_IOU = 0.5


@dataclass
class ScanItem:
    """One image to scan: its dataset index and sample, and its labels now (read when the scan needs them:
    an open document's live labels, else the saved correction or the dataset's mask)."""

    index: int
    sample: Any
    labels: Callable[[], np.ndarray | None]


@dataclass
class ScanResult:
    thresholds: np.ndarray
    regions: list[LabelErrorRegion]              # best first, across the dataset
    quality: dict[str, float | None]             # image -> label quality
    missing: list[str] = field(default_factory=list)     # no labels or no probabilities
    problems: list[str] = field(default_factory=list)    # could not be read


def folder_pass(folder: str | PathLike, num_classes: int) -> Callable[[], ProbabilityLookup]:
    """The ``open_pass`` of a folder of ``<image>.npy`` files (checked as ``label-errors`` checks them).

    Raises
    ------
    PredictionError
        The folder is missing or holds no ``.npy`` file.
    """
    folder = ProbabilityFolder(folder, num_classes)
    return lambda: folder


def scan_label_errors(context, items: list[ScanItem], open_pass: Callable[[], ProbabilityLookup],
                      num_classes: int, ignore_index: int, min_area: int = 1) -> Iterator[None]:
    """Thresholds over every image, then each image's suspect regions: a generator task.

    ``open_pass()`` is called once per pass and returns ``lookup(index, sample, labels_shape)`` -> the
    image's ``(C, H, W)`` probabilities or None (a probabilities folder, or a model's prediction stream).
    Progress goes to ``context.progress(done, 2 * len(items))``; the generator yields between images,
    where a cancel stops it. An image whose labels or probabilities cannot be read is left out and named
    in ``problems``. Returns a :class:`ScanResult` (regions keep their masks, for "accept").
    """
    total = 2 * len(items)
    accumulator = ThresholdAccumulator(num_classes)
    missing: list[str] = []
    problems: list[str] = []
    usable: list[ScanItem] = []
    lookup = open_pass()
    for done, item in enumerate(items, start=1):
        try:
            labels = item.labels()
            probs = lookup(item.index, item.sample, labels.shape) if labels is not None else None
            if probs is None:
                missing.append(item.sample.name)
            else:
                accumulator.add(probs, labels, ignore_index)
                usable.append(item)
        except (SegStudioError, ValueError) as exc:
            problems.append(str(exc))
        if context is not None:
            context.progress(done, total)
        yield
    thresholds = accumulator.thresholds()
    regions: list[LabelErrorRegion] = []
    quality: dict[str, float | None] = {}
    lookup = open_pass()
    scanned = {id(item) for item in usable}
    for done, item in enumerate(items, start=len(items) + 1):
        if id(item) in scanned:
            try:
                labels = item.labels()
                probs = lookup(item.index, item.sample, labels.shape)
                if probs is None:
                    raise PredictionError(item.sample.name, "probabilities missing on the second pass")
                found = score_image(probs, labels, thresholds, ignore_index=ignore_index, min_area=min_area,
                                    image_name=item.sample.name)
            except (SegStudioError, ValueError) as exc:
                problems.append(str(exc))
            else:
                regions.extend(found.regions)
                quality[item.sample.name] = found.quality
        if context is not None:
            context.progress(done, total)
        yield
    regions.sort(key=lambda r: (-r.score, -r.area, r.image))
    return ScanResult(thresholds, regions, quality, missing, problems)


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
