"""Find likely label errors in a dataset: the report ``segstudio label-errors`` writes.

Two passes over the dataset (see ``label_errors`` for the definitions): the first sums each class's
predicted probability over the pixels labelled with it (the thresholds ``t_k``), the second scores every
image against those thresholds. The report is a JSON-ready dict, undefined values ``None``::

    {"dataset": str, "probabilities": str, "min_area": int, "min_width": int, "classes": [name, ...],
     "thresholds": {name: t_k},
     "regions": [{"image", "bbox": [x, y, w, h], "area", "given", "suggested", "score"}, ...],  # best first
     "images": [{"name", "quality", "suspect_pixels"}, ...],                                   # worst first
     "missing": [name, ...]}          # images without labels or probabilities

Probability files (``--probabilities DIR``) are ``<image stem>.npy``: float16 or float32, shape
``(C, H, W)``, summing to 1 over ``C``. They are untrusted input: read with ``allow_pickle=False`` and
memory-mapped (a header cannot make us allocate), checked for shape, dtype, finite values in ``[0, 1]``
and the sum, and refused with a :class:`PredictionError` naming the file otherwise.
"""
from __future__ import annotations

import csv
import io
from os import PathLike
from pathlib import Path
from typing import Any, Callable

import numpy as np

from segstudio.core.errors import PredictionError
from segstudio.core.evaluation.label_errors import DEFAULT_MIN_WIDTH, ThresholdAccumulator, score_image
from segstudio.core.evaluation.report import write_json_or_csv
from segstudio.core.io._atomic import atomic_write_bytes
from segstudio.core.io.csvcell import csv_cell
from segstudio.core.io.datasets import Dataset, Sample
from segstudio.core.io.datasets.base import files_by_stem, natural_key, scan_files

__all__ = ["ProbabilityFolder", "check_probabilities", "save_probabilities", "find_label_errors", "write_label_error_report",
           "threshold_sums", "image_label_errors", "label_error_report",
           "format_label_error_summary", "DEFAULT_MIN_AREA", "SUM_TOLERANCE"]

DEFAULT_MIN_AREA = 20
SUM_TOLERANCE = 0.01      # |sum over C - 1| allowed (float16 rounding of a softmax is ~1e-3)
_CHECK_ROWS = 256         # rows checked at a time: float32 temporaries stay small

ProgressCallback = Callable[[int, int], None]
# One pass over the dataset: (index, sample, labels shape) -> (C, H, W) probabilities or None.
ProbabilityLookup = Callable[[int, Sample, "tuple[int, int]"], "np.ndarray | None"]


def check_probabilities(probs: np.ndarray, num_classes: int, shape: tuple[int, int], path: Any) -> np.ndarray:
    """Refuse probabilities that are not ``(C, H, W)`` float16/float32 in ``[0, 1]`` summing to 1 over C.

    Raises
    ------
    PredictionError
        Naming ``path`` and what is wrong.
    """
    if not isinstance(probs, np.ndarray) or probs.dtype.kind != "f" or probs.dtype.itemsize not in (2, 4):
        dtype = getattr(probs, "dtype", type(probs).__name__)
        raise PredictionError(path, f"probabilities must be float16 or float32, got {dtype}")
    expected = (num_classes, *shape)
    if probs.shape != expected:
        raise PredictionError(path, f"probabilities have shape {probs.shape}, expected (C, H, W) = {expected}")
    for top in range(0, shape[0], _CHECK_ROWS):
        band = np.asarray(probs[:, top:top + _CHECK_ROWS], dtype=np.float32)
        if not np.isfinite(band).all():
            raise PredictionError(path, "probabilities hold NaN or infinite values")
        if band.min(initial=0.0) < -SUM_TOLERANCE or band.max(initial=0.0) > 1 + SUM_TOLERANCE:
            raise PredictionError(path, "probabilities must lie in [0, 1]; give a softmax, not logits")
        sums = band.sum(axis=0)
        worst = float(np.abs(sums - 1).max(initial=0.0))
        if worst > SUM_TOLERANCE:
            raise PredictionError(path, f"probabilities must sum to 1 over the classes (a pixel sums to "
                                        f"{float(sums.flat[np.abs(sums - 1).argmax()]):.4f}); give a softmax, "
                                        f"not logits")
    return probs


def save_probabilities(folder: str | PathLike, name: str, probs: np.ndarray) -> Path:
    """Write ``probs`` as ``<folder>/<name>.npy`` (float16), atomically; the file ``ProbabilityFolder`` reads.

    Raises
    ------
    PredictionError
        ``name`` is not a plain file name.
    OSError
        The file cannot be written.
    """
    if not name or Path(name).name != name or name in (".", ".."):
        raise PredictionError(folder, f"cannot name a probability file after the image name {name!r}")
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(probs, dtype=np.float16), allow_pickle=False)
    path = Path(folder) / f"{name}.npy"
    atomic_write_bytes(path, buffer.getvalue())
    return path


class ProbabilityFolder:
    """``<stem>.npy`` probability files in a folder, found by sample name; ``None`` for a sample without one.

    Raises
    ------
    PredictionError
        The folder is missing or holds no ``.npy`` file.
    """

    def __init__(self, folder: str | PathLike, num_classes: int):
        self.path = Path(folder)
        self.num_classes = int(num_classes)
        if not self.path.is_dir():
            raise PredictionError(self.path, "no such folder" if not self.path.exists() else "not a folder")
        self.files = files_by_stem(scan_files(self.path, frozenset({".npy"})), self.path, unique=False)
        if not self.files:
            raise PredictionError(self.path, "no probability files (<image name>.npy) in the folder")

    def __call__(self, index: int, sample: Sample, shape: tuple[int, int]) -> np.ndarray | None:
        """A :data:`ProbabilityLookup`: the same files on every pass."""
        return self.load(sample, shape)

    def load(self, sample: Sample, shape: tuple[int, int]) -> np.ndarray | None:
        """The checked, memory-mapped probabilities of ``sample`` (labels of ``shape``), or None."""
        path = self.files.get(sample.name)
        if path is None:
            return None
        try:
            probs = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError, SyntaxError, TypeError, OverflowError) as exc:
            # object arrays (pickles), a header promising more than the file holds, truncation, not .npy
            raise PredictionError(path, f"not a readable .npy array: {' '.join(str(exc).split())}") from None
        return check_probabilities(probs, self.num_classes, shape, path)


def find_label_errors(dataset: Dataset, open_pass: Callable[[], ProbabilityLookup], *, min_area: int = DEFAULT_MIN_AREA,
                      min_width: int = DEFAULT_MIN_WIDTH, source: str = "",
                      progress: ProgressCallback | None = None) -> dict:
    """Score every labelled image of ``dataset`` for label errors; see the module docstring.

    Parameters
    ----------
    open_pass : callable
        Called once per pass (twice); returns ``lookup(index, sample, labels_shape) -> probabilities or
        None`` for that pass (a :class:`ProbabilityFolder` can be returned as it is).
    min_area : int
        Smallest region reported, in suspect pixels.
    min_width : int
        Regions with no part this many pixels across are left out (boundary slivers); 1 keeps all.
    progress : callable, optional
        ``progress(done, total)`` over both passes (``total`` = 2 × images).
    """
    table = dataset.class_table
    count = len(dataset)
    acc = ThresholdAccumulator(table.num_classes)
    missing: list[str] = []
    lookup = open_pass()
    for index, sample in enumerate(dataset):
        sums = threshold_sums(acc, index, sample, lookup, table.ignore_index)
        if sums is None:
            missing.append(sample.name)
        else:
            acc.add_sums(*sums)
        if progress is not None:
            progress(index + 1, 2 * count)
    thresholds = acc.thresholds()
    skip = set(missing)
    regions, images = [], []
    lookup = open_pass()
    for index, sample in enumerate(dataset):
        if sample.name not in skip:
            found = image_label_errors(index, sample, lookup, thresholds, table.ignore_index, min_area, min_width)
            if found is not None:
                regions.extend(found[0])
                images.append(found[1])
        if progress is not None:
            progress(count + index + 1, 2 * count)
    return label_error_report(dataset, source, min_area, min_width, thresholds, regions, images, missing)


def threshold_sums(acc: ThresholdAccumulator, index: int, sample: Sample, lookup: ProbabilityLookup,
                   ignore_index: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The first pass on one image: its part of the thresholds' sums (``acc.image_sums``), or ``None``
    when it has no labels or no probabilities. Every engine's per-image step of that pass."""
    labels = sample.load_mask()
    probs = lookup(index, sample, labels.shape) if labels is not None else None
    if probs is None:
        return None
    return acc.image_sums(probs, labels, ignore_index)


def image_label_errors(index: int, sample: Sample, lookup: ProbabilityLookup, thresholds: np.ndarray,
                       ignore_index: int, min_area: int, min_width: int) -> tuple[list, dict] | None:
    """The second pass on one image: ``(regions, image entry)``, or ``None`` without labels or
    probabilities. Every engine's per-image step of that pass."""
    labels = sample.load_mask()
    probs = lookup(index, sample, labels.shape) if labels is not None else None
    if labels is None or probs is None:
        return None
    found = score_image(probs, labels, thresholds, ignore_index=ignore_index,
                        min_area=min_area, min_width=min_width, image_name=sample.name)
    return found.regions, {"name": sample.name, "quality": found.quality, "suspect_pixels": found.suspect_pixels}


def label_error_report(dataset: Dataset, source: str, min_area: int, min_width: int, thresholds: np.ndarray,
                       regions: list, images: list[dict], missing: list[str]) -> dict:
    """The report from both passes' results (regions and images in dataset order; sorted here)."""
    names = dataset.class_table.names
    regions = sorted(regions, key=lambda r: (-r.score, -r.area, natural_key(r.image)))
    images = sorted(images, key=lambda e: (e["quality"] is None, e["quality"] if e["quality"] is not None else 0.0,
                                           natural_key(e["name"])))
    return {
        "dataset": str(dataset.root),
        "probabilities": source,
        "min_area": int(min_area),
        "min_width": int(min_width),
        "classes": names,
        "thresholds": {n: (None if not np.isfinite(t) else float(t)) for n, t in zip(names, thresholds)},
        "regions": [r.to_json(names) for r in regions],
        "images": images,
        "missing": missing,
    }


def write_label_error_report(report: dict, path: str | PathLike) -> None:
    """Write ``report`` atomically as JSON (``.json``) or CSV (``.csv``).

    The CSV has a ``scope`` column: ``region`` rows (best first), ``image`` rows (worst quality first),
    then one ``class`` row per class with its threshold; empty cells do not apply or are undefined.

    Raises
    ------
    ValueError
        Any other suffix.
    OSError
        The file cannot be written.
    """
    write_json_or_csv(report, path, _report_csv)


def _report_csv(report: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["scope", "name", "x", "y", "w", "h", "area", "given", "suggested", "score", "quality",
                     "suspect_pixels", "threshold"])
    for r in report["regions"]:
        writer.writerow(["region", csv_cell(r["image"]), *r["bbox"], r["area"], csv_cell(r["given"]),
                         csv_cell(r["suggested"]), csv_cell(r["score"]), "", "", ""])
    for e in report["images"]:
        writer.writerow(["image", csv_cell(e["name"]), "", "", "", "", "", "", "", "", csv_cell(e["quality"]),
                         e["suspect_pixels"], ""])
    for name, t in report["thresholds"].items():
        writer.writerow(["class", csv_cell(name), "", "", "", "", "", "", "", "", "", "", csv_cell(t)])
    return out.getvalue()


def format_label_error_summary(report: dict, top: int = 10) -> str:
    """A plain-text summary for a terminal: thresholds, the best regions and the worst images."""
    regions = report["regions"]
    lines = [f"Dataset        {report['dataset']}",
             f"Probabilities  {report['probabilities']}",
             f"Images         {len(report['images'])} scored, {len(report['missing'])} without labels or "
             f"probabilities",
             f"Regions        {len(regions)} suspected label errors (at least {report['min_area']} suspect pixels, "
             f"{report['min_width']} px wide)", ""]
    width = min(24, max([5] + [len(c) for c in report["classes"]]))
    lines.append(f"{'class':<{width}}  threshold t_k")
    for name, t in report["thresholds"].items():
        lines.append(f"{name[:width]:<{width}}  {'-' if t is None else f'{t:.4f}'}")
    if regions:
        lines += ["", "best regions (image, bbox x,y,w,h, area, given -> suggested, score):"]
        for r in regions[:top]:
            x, y, w, h = r["bbox"]
            lines.append(f"  {r['image']}  {x},{y},{w},{h}  {r['area']} px  {r['given']} -> {r['suggested']}  "
                         f"{r['score']:.3f}")
    worst = [e for e in report["images"] if e["quality"] is not None][:5]
    if worst:
        lines += ["", "lowest label quality: " + ", ".join(f"{e['name']} ({e['quality']:.3f})" for e in worst)]
    return "\n".join(lines)
