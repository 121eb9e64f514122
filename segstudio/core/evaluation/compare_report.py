"""Compare two sources on one dataset: the report ``segstudio compare`` writes.

Two shapes of comparison share one report:

* **model A vs model B** (:func:`compare_predictions`): two prediction sources scored against the same
  labels;
* **label-fix impact** (:func:`compare_label_versions`): one prediction source scored against two
  versions of the labels (``labels:original`` vs ``labels:corrected``): Δ is how much of the model's
  "error" against the original labels was label noise that the corrections removed.

The report is a JSON-ready dict, undefined values ``None``::

    {"dataset": str, "a": str, "b": str, "classes": [name, ...],
     "summary": {"a": {...evaluate summary...}, "b": {...},
                 "delta": {"mean_iou", "per_class": {name: Δiou}},
                 "bootstrap": {"resamples", "seed", "mean_iou_delta_ci95": [lo, hi],
                               "per_class_ci95": {name: [lo, hi]}},
                 "pixels": {"both_right", "b_fixes", "b_breaks", "both_wrong_same", "both_wrong_different"}},
     "images": [{"name", "a_mean_iou", "b_mean_iou", "delta", "pixels": {...}}, ...],  # Δ ascending
     "missing": [name, ...]}          # images left out: no prediction from a source, or no labels

The label-fix report adds ``"predictions"`` (the prediction source) and ``"corrected_images"`` (how many of
the compared images have labels that differ between the two versions).
In it the pixel kinds are read with the roles of labels and prediction swapped: ``b_fixes`` = the model
disagreed with the original label and agrees with the corrected one; ``both_wrong_same`` = the model
disagrees with a label the correction left alone.

Δ = B − A everywhere; dataset figures come from summed confusion matrices (as in ``evaluate``).
"""
from __future__ import annotations

import csv
import io
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any, Callable

import numpy as np

from segstudio.core.evaluation.bootstrap import PairedBootstrap, confusion_marginals, paired_bootstrap_marginals
from segstudio.core.evaluation.disagreement import (COUNT_KEYS, Disagreement, disagreement_codes,
                                                    disagreement_counts)
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.evaluation.report import (PredictionFolder, _check_prediction, _lookup, _split_prediction,
                                              write_json_or_csv)
from segstudio.core.io.csvcell import csv_cell
from segstudio.core.io.datasets import Dataset, Sample
from segstudio.core.io.datasets.base import natural_key

__all__ = ["compare_predictions", "compare_label_versions", "pair_scores", "label_version_scores",
           "CompareTotals", "corrected_labels", "original_labels",
           "write_compare_report", "format_compare_summary", "PIXEL_KEYS"]

ProgressCallback = Callable[[int, int], None]
PIXEL_KEYS = COUNT_KEYS[:5]          # the report's pixel kinds (ignored pixels are not reported)


def original_labels(sample: Sample) -> np.ndarray | None:
    """The dataset's own annotation of ``sample`` (``labels:original``)."""
    return sample.load_mask()


def corrected_labels(dataset: Dataset, output_dir: str | PathLike | None = None) -> Callable[[Sample], Any]:
    """``labels:corrected``: ``sample -> labels`` read from its saved correction (the default
    ``<dataset>/corrected/`` or ``output_dir``; COCO: the corrected JSON), or its original labels when
    none was saved."""
    def load(sample: Sample) -> np.ndarray | None:
        saved = dataset.kind.saved_labels(dataset, sample, output_dir)
        if saved is None or not Path(saved).is_file():
            return sample.load_mask()
        decoder = sample.decoder
        if decoder is None:  # a lone image: its saved labels use the class table
            from segstudio.core.io.datasets import MaskDecoder  # noqa: PLC0415
            decoder = MaskDecoder(dataset.class_table)
        return replace(sample, mask_path=Path(saved), decoder=decoder).load_mask()

    return load


class CompareTotals:
    """Per-image confusions and codes of both sides, summed into the report."""

    def __init__(self, dataset: Dataset):
        table = dataset.class_table
        self.table = table
        self.names = table.names
        self.total_a = ConfusionMatrix(table.num_classes, table.ignore_index)
        self.total_b = ConfusionMatrix(table.num_classes, table.ignore_index)
        self.per_image_a: list[np.ndarray] = []
        self.per_image_b: list[np.ndarray] = []
        self.pixels = dict.fromkeys(PIXEL_KEYS, 0)
        self.images: list[dict] = []

    def add(self, name: str, confusion_a: np.ndarray, confusion_b: np.ndarray, pixels: dict[str, int]) -> None:
        """Add one image's two confusion matrices and pixel kinds (what :func:`pair_scores` and
        :func:`label_version_scores` give); images must come in dataset order (the bootstrap's)."""
        cms = []
        for counts, total, store in ((confusion_a, self.total_a, self.per_image_a),
                                     (confusion_b, self.total_b, self.per_image_b)):
            cm = ConfusionMatrix(self.table.num_classes, self.table.ignore_index)
            cm += counts
            total += cm
            store.append(confusion_marginals(cm.matrix[None])[0])  # (3C,): C times smaller than the matrix
            cms.append(cm)
        pixels = {key: int(pixels[key]) for key in PIXEL_KEYS}
        for key in PIXEL_KEYS:
            self.pixels[key] += pixels[key]
        a, b = cms[0].mean_iou(), cms[1].mean_iou()
        self.images.append({"name": name, "a_mean_iou": a, "b_mean_iou": b,
                            "delta": None if a is None or b is None else b - a, "pixels": pixels})

    def report(self, dataset: Dataset, name_a: str, name_b: str, missing: list[str], resamples: int,
               seed: int) -> dict:
        c = self.table.num_classes
        empty = np.zeros((0, 3 * c), np.int64)
        boot = paired_bootstrap_marginals(np.stack(self.per_image_a) if self.per_image_a else empty,
                                          np.stack(self.per_image_b) if self.per_image_b else empty,
                                          resamples=resamples, seed=seed)
        self.images.sort(key=lambda e: (e["delta"] is None, e["delta"] or 0.0, natural_key(e["name"])))
        return {
            "dataset": str(dataset.root),
            "a": name_a,
            "b": name_b,
            "classes": self.names,
            "summary": {
                "a": self.total_a.summary(self.names),
                "b": self.total_b.summary(self.names),
                "delta": _delta(self.total_a, self.total_b, self.names),
                "bootstrap": _bootstrap_json(boot, self.names),
                "pixels": dict(self.pixels),
            },
            "images": self.images,
            "missing": missing,
        }


def _none(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _delta(a: ConfusionMatrix, b: ConfusionMatrix, names: list[str]) -> dict:
    ma, mb = a.mean_iou(), b.mean_iou()
    per_class = b.iou() - a.iou()
    return {"mean_iou": None if ma is None or mb is None else mb - ma,
            "per_class": {n: _none(v) for n, v in zip(names, per_class)}}


def _bootstrap_json(boot: PairedBootstrap, names: list[str]) -> dict:
    def interval(ci):
        return None if ci is None else [float(ci[0]), float(ci[1])]
    return {"resamples": boot.resamples, "seed": boot.seed,
            "mean_iou_delta_ci95": interval(boot.mean_iou_delta_ci95),
            "per_class_ci95": {n: interval(ci) for n, ci in zip(names, boot.per_class_ci95)}}


def _source(dataset: Dataset, source: Any) -> Callable[[int, Sample], Any]:
    if isinstance(source, (str, PathLike)):
        source = PredictionFolder(source, dataset.class_table)
    return _lookup(source)


def _confusion(gt: np.ndarray, pred: np.ndarray, table) -> np.ndarray:
    cm = ConfusionMatrix(table.num_classes, table.ignore_index)
    cm.update(gt, pred)
    return cm.matrix


def pair_scores(sample: Sample, pred_a: np.ndarray | None, pred_b: np.ndarray | None,
                table) -> tuple[np.ndarray, np.ndarray, dict[str, int]] | None:
    """One image of model A vs model B: ``(confusion A, confusion B, pixel kinds)``, all integers, or
    ``None`` when the image is left out (no prediction from a source, or no labels).

    The one per-image step of every engine (local, Ray), so that they add up the same integers.

    Raises
    ------
    PredictionError, MaskReadError, ImageReadError
        As :func:`compare_predictions`.
    """
    gt = sample.load_mask() if pred_a is not None and pred_b is not None else None
    if gt is None:
        return None
    _check_prediction(sample, pred_a, gt, table)
    _check_prediction(sample, pred_b, gt, table)
    codes = disagreement_codes(gt, pred_a, pred_b, table.ignore_index, table.num_classes)
    return _confusion(gt, pred_a, table), _confusion(gt, pred_b, table), disagreement_counts(codes)


def label_version_scores(sample: Sample, pred: np.ndarray | None, labels_a: Callable[[Sample], Any],
                         labels_b: Callable[[Sample], Any],
                         table) -> tuple[np.ndarray, np.ndarray, dict[str, int], bool] | None:
    """One image of the label-fix comparison: ``(confusion A, confusion B, pixel kinds, labels differ)``,
    or ``None`` when the image is left out (as :func:`pair_scores`)."""
    gt_a = labels_a(sample) if pred is not None else None
    gt_b = labels_b(sample) if gt_a is not None else None
    if gt_b is None:
        return None
    _check_prediction(sample, pred, gt_a, table)
    _check_prediction(sample, pred, gt_b, table)
    # Roles swapped: the prediction is the reference each label version agrees with or not.
    codes = disagreement_codes(pred, gt_a, gt_b, table.ignore_index)
    ignored = ((gt_a == table.ignore_index) | (gt_b == table.ignore_index)
               | (gt_a >= table.num_classes) | (gt_b >= table.num_classes))
    codes[ignored] = Disagreement.IGNORED
    return (_confusion(gt_a, pred, table), _confusion(gt_b, pred, table), disagreement_counts(codes),
            not np.array_equal(gt_a, gt_b))


def compare_predictions(dataset: Dataset, predictions_a: Any, predictions_b: Any, *, name_a: str, name_b: str,
                        resamples: int = 1000, seed: int = 0, progress: ProgressCallback | None = None) -> dict:
    """Model A vs model B on every sample with labels and a prediction from both.

    ``predictions_a`` / ``predictions_b`` are given as to ``evaluate``: a folder, ``f(sample)``, or an
    iterable of ``(index, prediction)`` pairs (a runner's ``predict_dataset``). Samples missing from
    either source, or without labels, are listed in ``"missing"``.

    Raises
    ------
    PredictionError
        A prediction's size differs from its labels', or it holds ids beyond the class table.
    MaskReadError, ImageReadError
        A label or prediction file cannot be read.
    """
    table = dataset.class_table
    of_a, of_b = _source(dataset, predictions_a), _source(dataset, predictions_b)
    totals = CompareTotals(dataset)
    missing: list[str] = []
    for index, sample in enumerate(dataset):
        scores = pair_scores(sample, _split_prediction(of_a(index, sample))[0],
                             _split_prediction(of_b(index, sample))[0], table)
        if scores is None:
            missing.append(sample.name)
        else:
            totals.add(sample.name, *scores)
        if progress is not None:
            progress(index + 1, len(dataset))
    return totals.report(dataset, name_a, name_b, missing, resamples, seed)


def compare_label_versions(dataset: Dataset, predictions: Any, *, labels_a: Callable[[Sample], Any],
                           labels_b: Callable[[Sample], Any], name_a: str = "labels:original",
                           name_b: str = "labels:corrected", predictions_name: str = "",
                           resamples: int = 1000, seed: int = 0,
                           progress: ProgressCallback | None = None) -> dict:
    """One prediction source against two versions of the labels (label-fix impact).

    ``labels_a`` / ``labels_b`` map a sample to its labels (:func:`original_labels`,
    :func:`corrected_labels`). Pixels are ignored where either version is the ignore index.
    """
    table = dataset.class_table
    of_pred = _source(dataset, predictions)
    totals = CompareTotals(dataset)
    missing: list[str] = []
    changed = 0
    for index, sample in enumerate(dataset):
        scores = label_version_scores(sample, _split_prediction(of_pred(index, sample))[0], labels_a, labels_b,
                                      table)
        if scores is None:
            missing.append(sample.name)
        else:
            totals.add(sample.name, *scores[:3])
            changed += scores[3]
        if progress is not None:
            progress(index + 1, len(dataset))
    report = totals.report(dataset, name_a, name_b, missing, resamples, seed)
    report["predictions"] = predictions_name
    report["corrected_images"] = changed
    return report


# ------------------------------------------------------------------------------------------ output
def write_compare_report(report: dict, path: str | PathLike) -> None:
    """Write ``report`` atomically as JSON (``.json``) or CSV (``.csv``).

    The CSV has a ``scope`` column: ``image`` rows (Δ ascending), one ``class`` row per class (IoU of A
    and B, Δ and its interval), then the ``dataset`` row ``ALL`` (mean IoU, Δ and its interval, pixel
    counts). Empty cells are undefined values.

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
    writer.writerow(["scope", "name", "a_iou", "b_iou", "delta", "delta_ci95_lo", "delta_ci95_hi",
                     *PIXEL_KEYS])
    for image in report["images"]:
        writer.writerow(["image", csv_cell(image["name"]), csv_cell(image["a_mean_iou"]),
                         csv_cell(image["b_mean_iou"]), csv_cell(image["delta"]), "", "",
                         *(image["pixels"][k] for k in PIXEL_KEYS)])
    summary = report["summary"]
    boot = summary["bootstrap"]
    for name in report["classes"]:
        ci = boot["per_class_ci95"][name] or [None, None]
        writer.writerow(["class", csv_cell(name), csv_cell(summary["a"]["per_class"][name]["iou"]),
                         csv_cell(summary["b"]["per_class"][name]["iou"]),
                         csv_cell(summary["delta"]["per_class"][name]), csv_cell(ci[0]), csv_cell(ci[1]),
                         *([""] * len(PIXEL_KEYS))])
    ci = boot["mean_iou_delta_ci95"] or [None, None]
    writer.writerow(["dataset", "ALL", csv_cell(summary["a"]["mean_iou"]), csv_cell(summary["b"]["mean_iou"]),
                     csv_cell(summary["delta"]["mean_iou"]), csv_cell(ci[0]), csv_cell(ci[1]),
                     *(summary["pixels"][k] for k in PIXEL_KEYS)])
    return out.getvalue()


def _fmt(value: float | None, digits: int = 4, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _interval(ci) -> str:
    return "-" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def format_compare_summary(report: dict, worst: int = 5) -> str:
    """A plain-text table of a compare report for a terminal: per class A, B, Δ and its 95 % interval."""
    s = report["summary"]
    boot = s["bootstrap"]
    lines = [f"Dataset      {report['dataset']}", f"A            {report['a']}", f"B            {report['b']}"]
    if "predictions" in report:
        lines.append(f"Predictions  {report['predictions']}")
        lines.append(f"Corrected    {report.get('corrected_images')} image(s) whose labels differ between A and B")
    lines += [f"Images       {len(report['images'])} compared, {len(report['missing'])} left out", ""]
    delta = s["delta"]["mean_iou"]
    verdict = ""
    ci = boot["mean_iou_delta_ci95"]
    if ci is not None:
        verdict = ("  B better" if ci[0] > 0 else "  B worse" if ci[1] < 0 else "  no significant difference")
    lines.append(f"mean IoU   A {_fmt(s['a']['mean_iou'])}   B {_fmt(s['b']['mean_iou'])}   "
                 f"Δ {_fmt(delta, sign=True)}   95% CI {_interval(ci)} "
                 f"({boot['resamples']} resamples, seed {boot['seed']}){verdict}")
    lines.append("")
    width = min(24, max([5] + [len(c) for c in report["classes"]]))
    lines.append(f"{'class':<{width}}  {'A IoU':>6}  {'B IoU':>6}  {'Δ IoU':>7}  95% CI")
    for name in report["classes"]:
        lines.append(f"{name[:width]:<{width}}  {_fmt(s['a']['per_class'][name]['iou']):>6}  "
                     f"{_fmt(s['b']['per_class'][name]['iou']):>6}  "
                     f"{_fmt(s['delta']['per_class'][name], sign=True):>7}  "
                     f"{_interval(boot['per_class_ci95'][name])}")
    px = s["pixels"]
    lines += ["", "pixels: " + "  ".join(f"{k.replace('_', ' ')} {px[k]}" for k in PIXEL_KEYS)]
    regressions = [e for e in report["images"] if e["delta"] is not None and e["delta"] < 0][:worst]
    if regressions:
        lines += ["", "where B got worse (Δ mean IoU): "
                  + ", ".join(f"{e['name']} ({e['delta']:+.3f})" for e in regressions)]
    return "\n".join(lines)
