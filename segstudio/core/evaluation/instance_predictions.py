"""Instance predictions read from files, for ``segstudio evaluate --instance-predictions``.

Two layouts:

* a folder: ``<name>.png``, a single-channel (8- or 16-bit) image of instance ids, 0 = none, beside
  ``<name>.json`` naming each id's class and, optionally, its score::

      {"instances": [{"id": 1, "class": 2, "score": 0.93}, ...]}

  ``class`` is a class id of the dataset's table, or its name.
* a COCO results file (the list ``pycocotools``' ``loadRes`` reads):
  ``[{"image_id", "category_id", "segmentation": RLE, "score"}, ...]``. Against a COCO dataset,
  image and category ids are the dataset's; against any other dataset, ``image_id`` is the
  sample's name and ``category_id`` a class id. Overlapping detections are painted lowest score
  first, so each pixel belongs to the most confident one.

Detections scoring below ``score_threshold`` are dropped in both layouts. Calling a source with a
sample returns its ``InstanceMask`` or ``None`` when there is no prediction for it.
"""
from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from segstudio.core.errors import PredictionError
from segstudio.core.io.datasets import Dataset, Sample
from segstudio.core.io.datasets.base import files_by_stem, scan_files
from segstudio.core.io.coco_segmentation import polygon_problem, rle_problem
from segstudio.core.io.masks import InstanceMask, read_instance_mask

__all__ = ["CocoInstanceResults", "InstancePredictionFolder", "open_instance_predictions"]


def open_instance_predictions(path: str | PathLike, dataset: Dataset, score_threshold: float = 0.0):
    """A folder or a COCO results ``.json``, whichever ``path`` is.

    Raises
    ------
    PredictionError
        Missing, empty, or not one of the two layouts.
    """
    path = Path(path)
    if path.is_dir():
        return InstancePredictionFolder(path, dataset, score_threshold)
    if path.is_file() and path.suffix.lower() == ".json":
        return CocoInstanceResults(path, dataset, score_threshold)
    raise PredictionError(path, "no such folder or file" if not path.exists()
                          else "expected a folder of instance-id PNGs or a COCO results .json")


def _load_json(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read())
    except OSError as exc:
        raise PredictionError(path, exc.strerror or str(exc)) from exc
    except ValueError as exc:
        raise PredictionError(path, f"invalid JSON: {exc}") from exc


def _class_id(path: Path, value: Any, table, where: str) -> int:
    if isinstance(value, str) and not isinstance(value, bool):
        if value in table.names:
            return table.names.index(value)
        raise PredictionError(path, f"{where}: class '{value}' is not in the class table")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < table.num_classes:
        return int(value)
    raise PredictionError(path, f"{where}: class {value!r} is not a class id below "
                          f"{table.num_classes} or a class name")


def _score(path: Path, value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    raise PredictionError(path, f"{where}: score {value!r} is not a number")


class InstancePredictionFolder:
    """``<name>.png`` instance ids + ``<name>.json`` classes and scores (see the module docstring)."""

    def __init__(self, folder: Path, dataset: Dataset, score_threshold: float = 0.0):
        self.path = Path(folder)
        self.table = dataset.class_table
        self.score_threshold = float(score_threshold)
        entries = scan_files(self.path)
        self.files = files_by_stem(entries, self.path, unique=False)
        if not self.files:
            raise PredictionError(self.path, "no instance-id PNGs in the folder")

    def __call__(self, sample: Sample) -> InstanceMask | None:
        png = self.files.get(sample.name)
        if png is None:
            return None
        meta_path = png.with_suffix(".json")
        if not meta_path.is_file():
            raise PredictionError(png, f"no {meta_path.name} beside it naming each instance's class")
        inst = read_instance_mask(png, format="ids", expected_shape=sample.image_shape())
        meta = _load_json(meta_path)
        records = meta.get("instances") if isinstance(meta, dict) else None
        if not isinstance(records, list):
            raise PredictionError(meta_path, "expected {\"instances\": [{\"id\", \"class\", \"score\"}, ...]}")
        classes: dict[int, int] = {}
        scores: dict[int, float] = {}
        for i, rec in enumerate(records):
            where = f"instance {i}"
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), int) or "class" not in rec:
                raise PredictionError(meta_path, f"{where}: needs an integer 'id' and a 'class'")
            score = _score(meta_path, rec.get("score"), where)
            if score is not None and score < self.score_threshold:
                continue
            classes[rec["id"]] = _class_id(meta_path, rec["class"], self.table, where)
            if score is not None:
                scores[rec["id"]] = score
        unnamed = sorted(set(inst.classes) - set(classes) - {r.get("id") for r in records})
        if unnamed:
            raise PredictionError(meta_path, f"instance ids {unnamed[:10]} of {png.name} have no class")
        ids = inst.ids.copy()
        dropped = [i for i in inst.classes if i not in classes]
        if dropped:
            ids[np.isin(ids, dropped)] = 0
        present = set(np.unique(ids).tolist()) - {0}
        return InstanceMask(ids, {i: c for i, c in classes.items() if i in present},
                            {i: s for i, s in scores.items() if i in present} or None)


class CocoInstanceResults:
    """A COCO results list with RLE (or polygon) segmentations, decoded with pycocotools."""

    def __init__(self, path: Path, dataset: Dataset, score_threshold: float = 0.0):
        self.path = Path(path)
        self.table = dataset.class_table
        self.score_threshold = float(score_threshold)
        data = _load_json(self.path)
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            data = data["annotations"]
        if not isinstance(data, list):
            raise PredictionError(self.path, "expected a COCO results list [{image_id, category_id, "
                                  "segmentation, score}, ...]")
        decoder = dataset.samples[0].decoder if len(dataset) else None
        records = getattr(decoder, "records", None)
        category_to_class = getattr(decoder, "category_to_class", None)
        if records is not None and category_to_class is not None:
            name_of = {rec[0]["id"]: name for name, rec in records.items()}
            self.class_of = lambda cat, where: self._category(category_to_class, cat, where)
        else:
            name_of = None
            self.class_of = lambda cat, where: _class_id(self.path, cat, self.table, where)
        self.by_name: dict[str, list[dict]] = {}
        for i, det in enumerate(data):
            where = f"result {i}"
            if not isinstance(det, dict) or "image_id" not in det or "category_id" not in det \
                    or not isinstance(det.get("segmentation"), (dict, list)):
                raise PredictionError(self.path, f"{where}: needs image_id, category_id and segmentation")
            score = _score(self.path, det.get("score", 1.0), where)
            if score < self.score_threshold:
                continue
            name = name_of.get(det["image_id"]) if name_of is not None else str(det["image_id"])
            if name is None:
                raise PredictionError(self.path, f"{where}: image_id {det['image_id']} is not in the dataset")
            self.by_name.setdefault(name, []).append(det)

    def _category(self, mapping: dict, cat: Any, where: str) -> int:
        if cat not in mapping:
            raise PredictionError(self.path, f"{where}: category_id {cat!r} is not in the dataset")
        return mapping[cat]

    def __call__(self, sample: Sample) -> InstanceMask | None:
        dets = self.by_name.get(sample.name)
        if dets is None:
            return None
        from pycocotools import mask as mask_utils  # noqa: PLC0415

        height, width = sample.image_shape()
        ids = np.zeros((height, width), dtype=np.int32)
        classes: dict[int, int] = {}
        scores: dict[int, float] = {}
        # Lowest score first: where detections overlap the most confident one is painted last.
        order = sorted(range(len(dets)), key=lambda k: (float(dets[k].get("score", 1.0)), -k))
        for next_id, k in enumerate(order, start=1):
            det = dets[k]
            where = f"result for image {det['image_id']} (category {det['category_id']})"
            region = self._decode(mask_utils, det["segmentation"], height, width, where)
            ids[region] = next_id
            classes[next_id] = self.class_of(det["category_id"], where)
            scores[next_id] = float(det.get("score", 1.0))
        present = set(np.unique(ids).tolist()) - {0}
        return InstanceMask(ids, {i: c for i, c in classes.items() if i in present},
                            {i: s for i, s in scores.items() if i in present})

    def _decode(self, mask_utils, segm, height: int, width: int, where: str) -> np.ndarray:
        try:
            # The dataset reader's guards: malformed RLE or huge polygons crash pycocotools.
            problem = (polygon_problem(segm, height, width) if isinstance(segm, list)
                       else rle_problem(_counts_bytes(segm.get("counts")), height * width))
            if problem:
                raise PredictionError(self.path, f"{where}: {problem}")
            if isinstance(segm, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
            else:
                if list(segm.get("size", [])) != [height, width]:
                    raise PredictionError(self.path, f"{where}: RLE size {segm.get('size')} differs "
                                          f"from the image's {[height, width]}")
                counts = segm.get("counts")
                if isinstance(counts, list):
                    rle = mask_utils.frPyObjects(segm, height, width)
                else:
                    rle = {"size": [height, width],
                           "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
            return mask_utils.decode(rle).astype(bool)
        except PredictionError:
            raise
        except Exception as exc:  # pycocotools raises bare Exceptions on bad input
            raise PredictionError(self.path, f"{where}: cannot decode the segmentation: {exc}") from exc


def _counts_bytes(counts: Any) -> Any:
    return counts.encode("ascii", errors="replace") if isinstance(counts, str) else counts
