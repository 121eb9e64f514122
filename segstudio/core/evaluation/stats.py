"""Per-image statistics of an evaluation as a Parquet file, and the loader the GUI ranks from.

``segstudio evaluate --stats FILE.parquet`` writes one row per evaluated image::

    image            string    the sample name
    pixel_accuracy   float64   null where nothing was scored
    mean_iou         float64   null where no class is present
    iou:<class>      float64   one column per class, null where the class is absent from the image
    error_pixels     int64     scored pixels where prediction and ground truth differ
    label_quality    float64   only when the run computed a label-quality score per image
    confusion        list<int64>  C x C row-major, only with --per-image-confusion

The file's metadata holds the class names (``segstudio.classes``, JSON) so a reader can check it
against the dataset it is opened with. pyarrow is imported only here, inside the functions: the
``parquet`` extra (or ``ray``) installs it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from segstudio.core.errors import SegStudioError

__all__ = ["ImageStatistics", "StatisticsError", "read_stats", "write_stats", "PARQUET_HINT"]

PARQUET_HINT = "Parquet statistics need `pip install segstudio[parquet]`"
_CLASSES_KEY = b"segstudio.classes"
_NAME_COLUMN = "image"


class StatisticsError(SegStudioError):
    """A statistics file cannot be written or read."""


def _pyarrow(path):
    try:
        import pyarrow  # noqa: PLC0415
        import pyarrow.parquet  # noqa: F401, PLC0415
    except ImportError as exc:
        raise StatisticsError(path, PARQUET_HINT) from exc
    return pyarrow


def write_stats(report: dict, path: str | PathLike, label_quality: dict[str, float] | None = None) -> None:
    """Write ``report``'s images (worst first, as in the report) to ``path`` as Parquet, atomically.

    Raises
    ------
    StatisticsError
        pyarrow is missing.
    OSError
        The file cannot be written.
    """
    pa = _pyarrow(path)
    import pyarrow.parquet as pq  # noqa: PLC0415

    from segstudio.core.io._atomic import atomic_write_bytes  # noqa: PLC0415

    classes = list(report["classes"])
    images = report["images"]
    columns = {
        _NAME_COLUMN: pa.array([e["name"] for e in images], pa.string()),
        "pixel_accuracy": pa.array([e["pixel_accuracy"] for e in images], pa.float64()),
        "mean_iou": pa.array([e["mean_iou"] for e in images], pa.float64()),
    }
    for name in classes:
        columns[f"iou:{name}"] = pa.array([e["per_class"].get(name, {}).get("iou") for e in images],
                                          pa.float64())
    columns["error_pixels"] = pa.array([e.get("error_pixels") for e in images], pa.int64())
    if label_quality is not None:
        columns["label_quality"] = pa.array([label_quality.get(e["name"]) for e in images], pa.float64())
    if images and all("confusion" in e for e in images):
        columns["confusion"] = pa.array([np.asarray(e["confusion"], np.int64).ravel() for e in images],
                                        pa.list_(pa.int64()))
    table = pa.table(columns).replace_schema_metadata({_CLASSES_KEY: json.dumps(classes).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


@dataclass
class ImageStatistics:
    """One row of a statistics file."""

    name: str
    pixel_accuracy: float | None
    mean_iou: float | None
    error_pixels: int | None
    per_class_iou: dict[str, float]
    label_quality: float | None = None
    confusion: np.ndarray | None = None


def read_stats(path: str | PathLike, class_names: list[str] | None = None) -> dict[str, ImageStatistics]:
    """Read a statistics file into ``{image name: ImageStatistics}``, in the file's order.

    Parameters
    ----------
    class_names : list of str, optional
        The classes of the dataset it is loaded for: a file of other classes is refused.

    Raises
    ------
    StatisticsError
        pyarrow is missing, the file is not a segstudio statistics file, or its classes differ.
    """
    path = Path(path)
    _pyarrow(path)
    import pyarrow.parquet as pq  # noqa: PLC0415

    try:
        table = pq.read_table(path)
    except OSError as exc:
        raise StatisticsError(path, getattr(exc, "strerror", None) or str(exc)) from exc
    except Exception as exc:  # pyarrow raises ArrowInvalid for a file that is not Parquet
        raise StatisticsError(path, f"not a Parquet file ({exc})") from exc
    meta = table.schema.metadata or {}
    if _CLASSES_KEY not in meta or _NAME_COLUMN not in table.column_names:
        raise StatisticsError(path, "not a segstudio statistics file (written by evaluate --stats)")
    classes = json.loads(meta[_CLASSES_KEY])
    if class_names is not None and list(class_names) != classes:
        raise StatisticsError(path, f"its {len(classes)} classes differ from the dataset's "
                              f"{len(class_names)} ({', '.join(classes[:4])}... vs "
                              f"{', '.join(class_names[:4])}...)")
    data = table.to_pydict()
    n = table.num_rows
    c = len(classes)
    out: dict[str, ImageStatistics] = {}
    for i in range(n):
        confusion = None
        if "confusion" in data and data["confusion"][i] is not None:
            confusion = np.asarray(data["confusion"][i], np.int64).reshape(c, c)
        name = data[_NAME_COLUMN][i]
        out[name] = ImageStatistics(
            name=name, pixel_accuracy=data["pixel_accuracy"][i], mean_iou=data["mean_iou"][i],
            error_pixels=data["error_pixels"][i],
            per_class_iou={k: data[f"iou:{k}"][i] for k in classes if data[f"iou:{k}"][i] is not None},
            label_quality=data["label_quality"][i] if "label_quality" in data else None,
            confusion=confusion)
    return out
