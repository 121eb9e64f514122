"""Evaluate predictions against a dataset's ground truth: the report ``segstudio evaluate`` writes.

Dataset figures come from the confusion matrix summed over all images (never from averaging
per-image figures) and instance figures from TP/FP/FN and matched IoUs summed over all images. The
report is a JSON-ready dict::

    {"dataset": str, "predictions": str, "classes": [name, ...],
     "settings": {"ignore_index", "iou_threshold", "per_image_confusion"[, "shard": "i/N"]},
     "summary": {"pixel_accuracy", "mean_iou", "fw_iou", "mean_f1",
                 "per_class": {name: {"iou", "precision", "recall", "f1", "gt_pixels", "pred_pixels"}}},
     "confusion": [[int, ...], ...],                      # C x C, rows = ground truth, summed exactly
     "images": [{"name", "pixel_accuracy", "mean_iou", "per_class": {...}, "error_pixels"
                 [, "confusion"]}, ...],                  # worst first, ties by name
     "missing_predictions": [name, ...], "missing_ground_truth": [name, ...],   # by name
     "failed": [{"name", "reason"}, ...],                # images left out (unreadable, model failed)
     "instances": {"iou_threshold", "tp", "fp", "fn", "precision", "recall", "f1",
                   "pq", "sq", "rq", "iou_sum", "iou_sum_exact"}}   # only with instances on both sides

Every figure is derived from summed integers (and, for instances, the exact sum of the matched
IoUs as a fraction) and divided once, so a report does not depend on the order in which images were
added, and ``merge_reports`` of shard reports equals the report of the whole run bit for bit.
Undefined values are ``None`` (JSON null).
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from segstudio.core.io._atomic import atomic_write_bytes
from segstudio.core.io.csvcell import csv_cell
from segstudio.core.io.datasets import Dataset, Sample
from segstudio.core.io.datasets.base import files_by_stem, natural_key, scan_files
from segstudio.core.errors import DatasetError, PredictionError
from segstudio.core.io.masks import InstanceMask, read_semantic_mask
from segstudio.core.evaluation.instances import match_instances
from segstudio.core.evaluation.metrics import ConfusionMatrix

__all__ = ["PredictionFolder", "ReportBuilder", "SampleScore", "build_report", "evaluate", "format_summary",
           "image_entry", "instance_figures", "score_sample", "write_report"]

ProgressCallback = Callable[[int, int], None]


class PredictionFolder:
    """Prediction masks in a folder, found by the sample's name (``<name>.png``, any image suffix).

    Index PNGs are read as class ids, palette PNGs as palette indices, colour PNGs through the class
    table (see ``read_semantic_mask``). Calling the folder with a sample returns its prediction or
    ``None`` when there is no file for it.

    Parameters
    ----------
    folder : path
        The folder of prediction masks (not searched recursively).
    class_table : ClassTable
        The dataset's classes.
    binary_mapping : dict or None
        How to read {0, 255}-only masks.

    Raises
    ------
    PredictionError
        The folder is missing or holds no image files.
    """

    def __init__(self, folder: str | PathLike, class_table, binary_mapping: dict[int, int] | None = None):
        self.path = Path(folder)
        self.class_table = class_table
        self.binary_mapping = binary_mapping
        if not self.path.is_dir():
            raise PredictionError(self.path, "no such folder" if not self.path.exists()
                                  else "not a folder")
        try:
            self.files = files_by_stem(scan_files(self.path), self.path, unique=False)
        except DatasetError as exc:
            raise PredictionError(self.path, exc.reason) from exc
        if not self.files:
            raise PredictionError(self.path, "no prediction masks (.png ...) in the folder")

    def __call__(self, sample: Sample) -> np.ndarray | None:
        """The prediction for ``sample``, or ``None``.

        Raises
        ------
        MaskReadError
            The file cannot be decoded; ``MaskSizeMismatch`` naming the prediction file when its
            size differs from the image's.
        """
        path = self.files.get(sample.name)
        if path is None:
            return None
        return read_semantic_mask(path, self.class_table, expected_shape=sample.image_shape(),
                                  binary_mapping=self.binary_mapping)


class _IndexedStream:
    """Look up ``(index, value)`` pairs from an iterator by index, reading ahead only as needed.

    Pairs must come in increasing index order (gaps are missing predictions) and lookups too; an
    index the stream has passed is missing. At most one pair is held back.
    """

    def __init__(self, pairs: Iterable[tuple[int, Any]]):
        self._it: Iterator[tuple[int, Any]] | None = iter(pairs)
        self._buffer: dict[int, Any] = {}

    def get(self, index: int) -> Any:
        while index not in self._buffer and self._it is not None:
            try:
                i, value = next(self._it)
            except StopIteration:
                self._it = None
                break
            self._buffer[int(i)] = value
            if int(i) > index:
                break
        for stale in [i for i in self._buffer if i < index]:
            del self._buffer[stale]
        return self._buffer.pop(index, None)


def _lookup(source: Any) -> Callable[[int, Sample], Any] | None:
    if source is None:
        return None
    if callable(source):
        return lambda index, sample: source(sample)
    stream = _IndexedStream(source)
    return lambda index, sample: stream.get(index)


def _split_prediction(value: Any) -> tuple[np.ndarray | None, InstanceMask | None]:
    """An array, an ``InstanceMask`` or a ``Prediction`` (``.mask``, ``.instances``) -> (semantic
    ids, instances)."""
    if value is None or isinstance(value, np.ndarray):
        return value, None
    if isinstance(value, InstanceMask):
        return None, value
    semantic = getattr(value, "mask", None)
    return (None if semantic is None else np.asarray(semantic)), getattr(value, "instances", None)


def _check_prediction(sample: Sample, pred: np.ndarray, gt: np.ndarray, table) -> None:
    if pred.shape != gt.shape:
        raise PredictionError(sample.image_path, f"prediction is {pred.shape[1::-1]} (width, height) "
                              f"but the ground truth is {gt.shape[1::-1]}")
    if not np.issubdtype(pred.dtype, np.integer):
        raise PredictionError(sample.image_path, f"prediction has dtype {pred.dtype}, expected "
                              f"integer class ids")
    bad = (pred >= table.num_classes) & (pred != table.ignore_index)
    if bad.any():
        raise PredictionError(sample.image_path, f"prediction holds class id {int(pred[bad].max())} "
                              f"but the class table has {table.num_classes} classes")


def evaluate(dataset: Dataset, predictions: Any, *, progress: ProgressCallback | None = None,
             instance_predictions: Any = None, iou_threshold: float = 0.5,
             source: str | None = None, per_image_confusion: bool = False,
             failures: list[tuple[str, str]] | None = None) -> dict:
    """Score predictions against every sample of ``dataset`` that has ground truth.

    Parameters
    ----------
    dataset : Dataset
        Ground truth and class table.
    predictions : callable, iterable or path
        ``f(sample) -> array | None``; or an iterable of ``(index, value)`` pairs, e.g. a runner's
        ``predict_dataset``; or a folder of prediction masks (read with ``PredictionFolder``).
        A value is an HxW array of class ids, or a ``Prediction`` (``.mask``; for instance models
        also ``.instances``, which are scored too). ``None`` scores instances only.
    progress : callable, optional
        ``progress(done, total)`` after each sample.
    instance_predictions : callable or iterable, optional
        Instance predictions (``InstanceMask``), given like ``predictions``.
    iou_threshold : float
        IoU at which a predicted instance matches a ground-truth instance.
    source : str, optional
        What ``"predictions"`` says in the report; default the folder path, or ``""``.
    per_image_confusion : bool
        Also keep each image's confusion matrix in its entry.
    failures : list of (name, reason), optional
        Images left out of the scores, filled while ``predictions`` streams (a runner's
        ``on_error``); read once the stream is exhausted, they become the report's ``"failed"``.

    Returns
    -------
    dict
        The report (see the module docstring).

    Raises
    ------
    PredictionError
        A prediction's size differs from its ground truth's, or it holds ids beyond the table.
    MaskReadError, ImageReadError
        A ground-truth or prediction file cannot be read; ``MaskSizeMismatch`` names the file.
    """
    table = dataset.class_table
    if isinstance(predictions, (str, PathLike)):
        predictions = PredictionFolder(predictions, table)
    if source is None:
        source = str(getattr(predictions, "path", ""))
    semantic_of = _lookup(predictions)
    instances_of = _lookup(instance_predictions)
    builder = ReportBuilder(table, iou_threshold=iou_threshold, per_image_confusion=per_image_confusion)
    count = len(dataset)
    for index, sample in enumerate(dataset):
        pred, pred_instances = _split_prediction(None if semantic_of is None else semantic_of(index, sample))
        if instances_of is not None:
            pred_instances = instances_of(index, sample)
        builder.add(score_sample(sample, pred, pred_instances, table, iou_threshold))
        if progress is not None:
            progress(index + 1, count)
    for name, reason in failures or ():
        builder.add_failure(name, reason)
    return builder.report(str(dataset.root), source)


@dataclass
class SampleScore:
    """What one sample adds to a report: plain integers, picklable, summed exactly.

    ``status`` is ``"scored"`` (``confusion`` set), ``"missing_prediction"``,
    ``"missing_ground_truth"`` or ``"instances_only"``; ``instances`` holds
    ``(tp, fp, fn, iou_sum)`` with ``iou_sum`` an exact ``Fraction`` of the matched IoUs, or ``None``.
    """

    name: str
    status: str
    confusion: np.ndarray | None = None
    instances: tuple[int, int, int, Fraction] | None = None


def score_sample(sample: Sample, pred: np.ndarray | None, pred_instances: InstanceMask | None, table,
                 iou_threshold: float = 0.5) -> SampleScore:
    """Score one sample's prediction against its ground truth (loaded here).

    The one step every engine runs per image, so that the local and the distributed engines add
    up the very same integers.

    Raises
    ------
    PredictionError, MaskReadError, ImageReadError
        As ``evaluate``.
    """
    score = SampleScore(sample.name, "instances_only")
    if pred is None:
        if pred_instances is None:
            score.status = "missing_prediction"
    else:
        gt = sample.load_mask()
        if gt is None:
            score.status = "missing_ground_truth"
        else:
            _check_prediction(sample, pred, gt, table)
            cm = ConfusionMatrix(table.num_classes, table.ignore_index)
            cm.update(gt, pred)
            score.status = "scored"
            score.confusion = cm.matrix
    if pred_instances is not None:
        gt_instances = sample.load_instances()
        if gt_instances is not None:
            m = match_instances(gt_instances, pred_instances, iou_threshold)
            # Each IoU is a float; their exact sum (a dyadic fraction) does not depend on the order
            # in which images, shards or workers are added up.
            score.instances = (m.tp, m.fp, m.fn, sum((Fraction(iou) for _, _, iou in m.matches), Fraction(0)))
    return score


class ReportBuilder:
    """Adds ``SampleScore`` s in any order and builds the report; integers only until the end.

    Parameters
    ----------
    table : ClassTable
        The dataset's classes.
    iou_threshold : float
        Recorded in the report's settings.
    per_image_confusion : bool
        Keep each image's confusion matrix in its entry.
    """

    def __init__(self, table, *, iou_threshold: float = 0.5, per_image_confusion: bool = False):
        self.names = list(table.names)
        self.ignore_index = int(table.ignore_index)
        self.iou_threshold = float(iou_threshold)
        self.per_image_confusion = per_image_confusion
        self.total = ConfusionMatrix(table.num_classes, table.ignore_index)
        self.instances: list | None = None  # [tp, fp, fn, Fraction]
        self.images: list[dict] = []
        self.missing_predictions: list[str] = []
        self.missing_ground_truth: list[str] = []
        self.failed: list[dict] = []

    def add(self, score: SampleScore) -> None:
        """Add one sample's counts."""
        if score.status == "missing_prediction":
            self.missing_predictions.append(score.name)
        elif score.status == "missing_ground_truth":
            self.missing_ground_truth.append(score.name)
        elif score.status == "scored":
            cm = ConfusionMatrix(len(self.names), self.ignore_index)
            cm += score.confusion
            self.total += cm
            self.images.append(image_entry(score.name, cm, self.names, self.per_image_confusion))
        if score.instances is not None:
            if self.instances is None:
                self.instances = [0, 0, 0, Fraction(0)]
            for i, value in enumerate(score.instances):
                self.instances[i] += value

    def add_failure(self, name: str, reason: str) -> None:
        """Record an image left out of the scores (unreadable, or the model failed on it)."""
        self.failed.append({"name": name, "reason": reason})

    def report(self, dataset: str, source: str, shard: str | None = None) -> dict:
        """The report dict; lists in a fixed order whatever order the samples came in."""
        settings = {"ignore_index": self.ignore_index, "iou_threshold": self.iou_threshold,
                    "per_image_confusion": self.per_image_confusion}
        if shard is not None:
            settings["shard"] = shard
        return build_report(dataset, source, self.names, settings, self.total.matrix, self.images,
                            self.missing_predictions, self.missing_ground_truth, self.failed,
                            self.instances)


def build_report(dataset: str, source: str, names: list[str], settings: dict, confusion: np.ndarray,
                 images: list[dict], missing_predictions: list[str], missing_ground_truth: list[str],
                 failed: list[dict], instances: list | None) -> dict:
    """Assemble a report from summed integers: every figure derived here, each divided once."""
    cm = ConfusionMatrix(len(names), settings["ignore_index"])
    cm += np.asarray(confusion, dtype=np.int64)
    by_name = lambda n: (natural_key(n), n)  # noqa: E731
    images = sorted(images, key=lambda e: (e["mean_iou"] is None, e["mean_iou"] or 0.0,
                                           natural_key(e["name"]), e["name"]))
    report = {
        "dataset": dataset,
        "predictions": source,
        "classes": list(names),
        "settings": dict(settings),
        "summary": cm.summary(names),
        "confusion": cm.matrix.tolist(),
        "images": images,
        # A failed image has no prediction for the reason "failed"; it is listed there only.
        "missing_predictions": sorted(set(missing_predictions) - {f["name"] for f in failed}, key=by_name),
        "missing_ground_truth": sorted(missing_ground_truth, key=by_name),
        "failed": sorted(failed, key=lambda f: by_name(f["name"])),
    }
    if instances is not None:
        report["instances"] = instance_figures(*instances, iou_threshold=settings["iou_threshold"])
    return report


def instance_figures(tp: int, fp: int, fn: int, iou_sum: Fraction, *, iou_threshold: float) -> dict:
    """The report's ``"instances"``: counts, the exact IoU sum, and every ratio divided once from them.

    ``iou_sum_exact`` is ``"numerator/denominator"``, what ``merge-reports`` adds up.
    """
    iou_sum = Fraction(iou_sum)

    def div(num, den) -> float | None:
        return float(Fraction(num) / Fraction(den)) if den else None

    rq_den = Fraction(2 * tp + fp + fn, 2)
    return {"iou_threshold": iou_threshold, "tp": int(tp), "fp": int(fp), "fn": int(fn),
            "precision": div(tp, tp + fp), "recall": div(tp, tp + fn), "f1": div(2 * tp, 2 * tp + fp + fn),
            "pq": div(iou_sum, rq_den), "sq": div(iou_sum, tp), "rq": div(tp, rq_den),
            "iou_sum": float(iou_sum), "iou_sum_exact": f"{iou_sum.numerator}/{iou_sum.denominator}"}


def image_entry(name: str, cm: ConfusionMatrix, names: list[str], with_confusion: bool = False) -> dict:
    """One image's figures; ``per_class`` lists only the classes present in its gt or prediction."""
    summary = cm.summary(names)
    present = cm.present()
    entry = {
        "name": name,
        "pixel_accuracy": summary["pixel_accuracy"],
        "mean_iou": summary["mean_iou"],
        "per_class": {n: v for (n, v), p in zip(summary["per_class"].items(), present) if p},
        "error_pixels": int(cm.total - np.trace(cm.matrix)),
    }
    if with_confusion:
        entry["confusion"] = cm.matrix.tolist()
    return entry


def write_report(report: dict, path: str | PathLike) -> None:
    """Write ``report`` atomically as JSON (``.json``) or CSV (``.csv``).

    The CSV has a ``scope`` column: one ``image`` row per image (worst first), then a ``dataset``
    row named ``ALL``; its columns are pixel accuracy, mean IoU and the IoU of every class (empty
    where undefined or, for an image, where the class is absent).

    Raises
    ------
    ValueError
        Any other suffix.
    OSError
        The file cannot be written.
    """
    write_json_or_csv(report, path, _report_csv)


def write_json_or_csv(report: dict, path: str | PathLike, csv_text: Callable[[dict], str]) -> None:
    """Write ``report`` atomically: indented JSON for ``.json``, ``csv_text(report)`` for ``.csv``
    (every report command's writer).

    Raises
    ------
    ValueError
        Any other suffix.
    OSError
        The file cannot be written.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        text = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        # File names that are not valid UTF-8 reach us as lone surrogates; backslashreplace writes
        # them as \udcXX, which inside a JSON string is the matching escape, so the file stays valid.
        data = text.encode("utf-8", errors="backslashreplace")
    elif suffix == ".csv":
        data = csv_text(report).encode("utf-8", errors="backslashreplace")
    else:
        raise ValueError(f"{path}: unknown report format '{suffix}', use .json or .csv")
    atomic_write_bytes(path, data)


def _report_csv(report: dict) -> str:
    classes = report["classes"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["scope", "name", "pixel_accuracy", "mean_iou"] + [f"iou:{c}" for c in classes])

    for image in report["images"]:
        per_class = image["per_class"]
        writer.writerow(["image", csv_cell(image["name"]), csv_cell(image["pixel_accuracy"]),
                         csv_cell(image["mean_iou"])]
                        + [csv_cell(per_class.get(c, {}).get("iou")) for c in classes])
    summary = report["summary"]
    writer.writerow(["dataset", "ALL", csv_cell(summary["pixel_accuracy"]), csv_cell(summary["mean_iou"])]
                    + [csv_cell(summary["per_class"][c]["iou"]) for c in classes])
    return out.getvalue()


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def format_summary(report: dict, worst: int = 5) -> str:
    """A plain-text table of the report for a terminal.

    Parameters
    ----------
    report : dict
        As ``evaluate`` returns it.
    worst : int
        How many of the worst images to list.
    """
    s = report["summary"]
    lines = [
        f"Dataset      {report['dataset']}",
        f"Predictions  {report['predictions']}",
        f"Images       {len(report['images'])} evaluated, "
        f"{len(report.get('missing_predictions', []))} without prediction, "
        f"{len(report.get('missing_ground_truth', []))} without ground truth"
        + (f", {len(report['failed'])} failed" if report.get("failed") else ""),
        "",
        f"pixel accuracy  {_fmt(s['pixel_accuracy'])}",
        f"mean IoU        {_fmt(s['mean_iou'])}",
        f"FW IoU          {_fmt(s['fw_iou'])}",
        f"mean F1         {_fmt(s['mean_f1'])}",
        "",
    ]
    width = min(24, max([5] + [len(c) for c in report["classes"]]))
    lines.append(f"{'class':<{width}}  {'IoU':>6}  {'prec':>6}  {'recall':>6}  {'F1':>6}  "
                 f"{'gt px':>11}  {'pred px':>11}")
    for name in report["classes"]:
        c = s["per_class"][name]
        lines.append(f"{name[:width]:<{width}}  {_fmt(c['iou']):>6}  {_fmt(c['precision']):>6}  "
                     f"{_fmt(c['recall']):>6}  {_fmt(c['f1']):>6}  {c['gt_pixels']:>11}  "
                     f"{c['pred_pixels']:>11}")
    if report["images"] and worst > 0:
        shown = ", ".join(f"{e['name']} ({_fmt(e['mean_iou'], 3)})" for e in report["images"][:worst])
        lines += ["", f"worst images (mean IoU): {shown}"]
    inst = report.get("instances")
    if inst:
        lines += ["", f"instances @ IoU {inst['iou_threshold']:.2f}: TP {inst['tp']}  FP {inst['fp']}"
                  f"  FN {inst['fn']}  precision {_fmt(inst['precision'])}  recall "
                  f"{_fmt(inst['recall'])}  F1 {_fmt(inst['f1'])}  PQ {_fmt(inst['pq'])}  "
                  f"SQ {_fmt(inst['sq'])}  RQ {_fmt(inst['rq'])}"]
    return "\n".join(lines)
