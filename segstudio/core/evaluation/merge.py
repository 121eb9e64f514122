"""Merge evaluate reports (shards of one run, or runs over disjoint image sets) exactly.

The reports' raw integers are summed (dataset confusion matrices, instance TP/FP/FN, the exact
fraction of the matched-IoU sums) and every figure is derived again from the sums by the same code
that ``evaluate`` uses, so the merge of a run's shard reports equals the report of the unsharded
run bit for bit. Reports with different class tables or settings, an image present in two
reports, or a report without its raw counts (a CSV, a report of an older version) are refused.
"""
from __future__ import annotations

import json
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import SegStudioError
from segstudio.core.evaluation.report import build_report

__all__ = ["ReportMergeError", "load_report", "merge_reports"]

# Settings that must agree; "shard" differs between shards by design and is dropped.
_MUST_AGREE = ("ignore_index", "iou_threshold", "per_image_confusion")


class ReportMergeError(SegStudioError):
    """A report cannot be read or merged with the others."""


def load_report(path: str | PathLike) -> dict:
    """Read one JSON report written by ``segstudio evaluate`` and check it carries raw counts.

    Raises
    ------
    ReportMergeError
        Unreadable, not JSON, a CSV, or without ``confusion`` / ``settings``.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        raise ReportMergeError(path, "a CSV report has no confusion counts; merge the .json reports")
    try:
        with open(path, "rb") as fh:
            report = json.loads(fh.read().decode("utf-8", errors="surrogateescape"))
    except OSError as exc:
        raise ReportMergeError(path, exc.strerror or str(exc)) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReportMergeError(path, f"not a JSON report ({exc})") from exc
    _check_shape(path, report)
    return report


def _check_shape(path, report: Any) -> None:
    if not isinstance(report, dict):
        raise ReportMergeError(path, "not an evaluate report (expected a JSON object)")
    missing = [k for k in ("classes", "settings", "confusion", "images") if k not in report]
    if missing:
        raise ReportMergeError(path, f"no {', '.join(missing)}: not a report of segstudio evaluate "
                               f"with raw counts (write it again with this version)")
    classes, confusion = report["classes"], report["confusion"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ReportMergeError(path, "'classes' is not a list of names")
    matrix = np.asarray(confusion)
    if matrix.shape != (len(classes), len(classes)) or not np.issubdtype(matrix.dtype, np.integer) \
            or (matrix < 0).any():
        raise ReportMergeError(path, f"'confusion' is not a {len(classes)}x{len(classes)} matrix of "
                               f"non-negative integers")
    if not isinstance(report["settings"], dict) or any(k not in report["settings"] for k in _MUST_AGREE):
        raise ReportMergeError(path, f"'settings' must name {', '.join(_MUST_AGREE)}")


def merge_reports(reports: list[dict], paths: list[str] | None = None) -> dict:
    """One report from several: counts summed, figures derived once from the sums.

    Parameters
    ----------
    reports : list of dict
        Reports as ``evaluate`` returns them (or ``load_report`` reads them).
    paths : list of str, optional
        Where each came from, for the error messages.

    Raises
    ------
    ReportMergeError
        No report, different classes or settings, or an image present in two reports.
    """
    if not reports:
        raise ReportMergeError(None, "no report to merge")
    paths = list(paths) if paths is not None else [f"report {i + 1}" for i in range(len(reports))]
    for path, report in zip(paths, reports):
        _check_shape(path, report)
    first = reports[0]
    names = list(first["classes"])
    settings = {k: first["settings"][k] for k in _MUST_AGREE}
    for path, report in zip(paths[1:], reports[1:]):
        if report["classes"] != names:
            raise ReportMergeError(path, f"its classes {_short(report['classes'])} differ from "
                                   f"{paths[0]}'s {_short(names)}")
        for key in _MUST_AGREE:
            if report["settings"][key] != settings[key]:
                raise ReportMergeError(path, f"setting {key} is {report['settings'][key]!r} but "
                                       f"{settings[key]!r} in {paths[0]}")
    confusion = np.zeros((len(names), len(names)), dtype=np.int64)
    images, missing_pred, missing_gt, failed = [], [], [], []
    instances = None
    seen: dict[str, str] = {}
    for path, report in zip(paths, reports):
        confusion += np.asarray(report["confusion"], dtype=np.int64)
        for name in ([e["name"] for e in report["images"]] + list(report.get("missing_predictions", []))
                     + list(report.get("missing_ground_truth", []))
                     + [f["name"] for f in report.get("failed", [])]):
            if name in seen:
                raise ReportMergeError(path, f"image '{name}' is also in {seen[name]}; each image "
                                       f"may be in one report only")
            seen[name] = path
        images += report["images"]
        missing_pred += report.get("missing_predictions", [])
        missing_gt += report.get("missing_ground_truth", [])
        failed += report.get("failed", [])
        inst = report.get("instances")
        if inst is not None:
            counts = _instance_counts(path, inst)
            instances = counts if instances is None else [a + b for a, b in zip(instances, counts)]
    return build_report(_joined(r["dataset"] for r in reports), _joined(r["predictions"] for r in reports),
                        names, settings, confusion, images, missing_pred, missing_gt, failed, instances)


def _instance_counts(path, inst: dict) -> list:
    try:
        return [int(inst["tp"]), int(inst["fp"]), int(inst["fn"]), Fraction(inst["iou_sum_exact"])]
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ReportMergeError(path, f"'instances' lacks its raw counts (tp, fp, fn, iou_sum_exact): "
                               f"{exc}") from exc


def _joined(values) -> str:
    distinct: list[str] = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    return "; ".join(distinct)


def _short(names: list) -> str:
    text = ", ".join(map(str, names[:6]))
    return f"[{text}{', ...' if len(names) > 6 else ''}] ({len(names)} classes)"
