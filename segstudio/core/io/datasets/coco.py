"""COCO instance annotations: a ``.json`` file, or a folder with ``annotations/*.json`` and images.

Opening reads and checks the JSON (keys and types only); segmentations (polygons, compressed and
uncompressed RLE) are decoded with pycocotools when a sample's masks are loaded, after a check of
what pycocotools trusts blindly (RLE counts that cover the image exactly, finite polygon coordinates
near it): a bad one raises ``DatasetError`` naming the annotation instead of crashing the process. The class table is
background (0) followed by the categories in the order the file lists them; ``category_to_class``
maps each COCO category id to its contiguous class id.

Instances are numbered 1..N in annotation order (later annotations paint over earlier ones where
they overlap). Crowd annotations (``iscrowd: 1``) are not instances: in the semantic mask their
pixels not covered by an instance become the ignore index.
"""
from __future__ import annotations

import json
import os
import threading
from os import PathLike
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from segstudio.core.io.classes import (
    LABELME_BACKGROUND,
    LABELME_IGNORE,
    ClassInfo,
    ClassTable,
    class_table_from_spec,
    voc_colormap,
)
from segstudio.core.io.datasets.base import (
    IMAGE_EXTENSIONS,
    Dataset,
    MaskDecoder,
    Sample,
    natural_key,
    subfolders,
)
from segstudio.core.io.coco_segmentation import polygon_problem, rle_problem
from segstudio.core.io.datasets.formats import DatasetFormat
from segstudio.core.errors import DatasetError, MaskSizeMismatch, OutsideRootError
from segstudio.core.io.jsonfile import refuse_special_file
from segstudio.core.io.masks import InstanceMask
from segstudio.core.io.saving import write_coco_image

__all__ = ["COCO", "CocoDecoder", "CocoFormat", "coco_files_beside", "find_coco_annotations",
           "open_coco", "table_from_categories"]

# JSON files that sit in dataset folders without being COCO annotations.
_NOT_COCO_JSON = frozenset({"classes.json", "model.json", "card.json", "segstudio.json"})
_COCO_NAME_HINTS = ("annotation", "instances", "coco")


class CocoFormat(DatasetFormat):
    """COCO: one annotation JSON holds every image; a correction rewrites that image's annotations
    in a copy of the JSON (``corrected/`` mirrors it) or, with ``overwrite``, in the JSON itself,
    keeping every other image's annotations as that file holds them (earlier corrections included)."""

    name = "coco"
    ground_truth_layout = "an 'annotations' list in the COCO JSON, with segmentations of its images"

    def detect(self, path: Path) -> bool:
        """A ``.json`` file; a folder whose ``annotations/`` holds JSON files and no masks; or a
        folder without mask folders holding a JSON file beside its images (labelme's COCO export:
        ``annotations.json`` beside ``JPEGImages/``)."""
        if path.is_dir():
            return bool(find_coco_annotations(path)) or bool(coco_files_beside(path))
        return path.suffix.lower() == ".json"

    def open(self, path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
             split: str | None = None, *, binary_mapping: dict[int, int] | None = None,
             allow_outside_root: bool = False) -> Dataset:
        """See ``open_coco`` (``binary_mapping`` does not apply)."""
        return open_coco(path, class_table, split, allow_outside_root=allow_outside_root)

    def source_file(self, sample: Sample) -> Path | None:
        """The annotation JSON, also for a file without an ``annotations`` list."""
        return Path(sample.mask_path) if sample.mask_path is not None else Path(sample.decoder.json_path)

    def saved_labels(self, dataset: Dataset, sample: Sample, output_dir: str | PathLike | None = None,
                     *, overwrite: bool = False) -> Path | None:
        """The corrected JSON (``destination``): once saved it is the label source of the images it
        holds; ``CocoDecoder`` decodes a sample from the JSON its ``mask_path`` names."""
        return super().saved_labels(dataset, sample, output_dir, overwrite=overwrite)

    def output_kind(self, dataset: Dataset, sample: Sample) -> str:
        return "coco"

    def write(self, dataset: Dataset, sample: Sample, labels: np.ndarray, dest: Path, *,
              output_kind: str, instances: InstanceMask | None = None) -> None:
        """Replace this image's annotations by RLE ones (one per instance when ``instances`` is
        given, else one per class), starting from ``dest`` once a first correction is there."""
        decoder = sample.decoder
        base = dest if dest.exists() else Path(decoder.json_path)
        image_record, _ = decoder.records[sample.name]
        category_of_class = {c: cat for cat, c in decoder.category_to_class.items()}
        write_coco_image(dest, base, image_record["file_name"], labels, category_of_class,
                         dataset.class_table.ignore_index, instances=instances)


COCO = CocoFormat()


def find_coco_annotations(folder: Path) -> list[Path]:
    """The ``.json`` files of ``folder/annotations/`` when that folder holds no mask images."""
    annotations = folder / "annotations"
    if not annotations.is_dir():
        return []
    try:
        with os.scandir(annotations) as it:
            names = [e.name for e in it if e.is_file() and not e.name.startswith(".")]
    except OSError:
        return []
    suffixes = {os.path.splitext(n)[1].lower() for n in names}
    if suffixes & {".png", ".bmp", ".tif", ".tiff"}:
        return []
    return sorted((annotations / n for n in names if n.lower().endswith(".json")),
                  key=lambda p: natural_key(p.name))


def coco_files_beside(folder: Path) -> list[Path]:
    """The ``.json`` files directly in ``folder`` that may be COCO annotations, when ``folder`` has
    no mask folders (``SegmentationClass/``, ``masks/``, ``labels/`` ...) that would make it a VOC or
    folder dataset. A class table (``classes.json``) and labelme's per-image shape files (a JSON
    named like an image beside it) are not COCO files. Names only: nothing is opened.
    """
    from segstudio.core.io.datasets.folder import MASK_FOLDER_NAMES  # noqa: PLC0415

    try:
        with os.scandir(folder) as it:
            entries = [(e.name, e.is_dir()) for e in it if not e.name.startswith(".")]
    except OSError:
        return []
    dirs = {name for name, is_dir in entries if is_dir}
    if dirs & {"SegmentationClass", "SegmentationObject", "instances", *MASK_FOLDER_NAMES}:
        return []
    files = [name for name, is_dir in entries if not is_dir]
    image_stems = {os.path.splitext(n)[0] for n in files
                   if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS}
    # Beside JPEGImages/ (labelme) any JSON; elsewhere only names that say so (Roboflow's
    # _annotations.coco.json, instances_*.json), so a report.json left in a folder of images is no dataset.
    any_name = "JPEGImages" in dirs
    return sorted((folder / n for n in files if n.lower().endswith(".json")
                   and n.lower() not in _NOT_COCO_JSON and os.path.splitext(n)[0] not in image_stems
                   and (any_name or any(k in n.lower() for k in _COCO_NAME_HINTS))),
                  key=lambda p: natural_key(p.name))


def open_coco(path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
              split: str | None = None, *, allow_outside_root: bool = False) -> Dataset:
    """Open a COCO annotation file, or the one a folder's ``annotations/`` holds.

    Parameters
    ----------
    path : path
        A ``.json`` file, or a folder with ``annotations/*.json``.
    class_table : ClassTable, path or None
        Default: built from the categories. A given table must name every category; categories are
        matched to its classes by name.
    split : str or None
        For a folder: choose the annotation file whose name contains ``split``. Without it a folder
        with several files uses the one naming ``val``, else fails listing them.
    allow_outside_root : bool
        Accept image ``file_name``s that are absolute or climb out with ``..`` (refused by default:
        they read files outside the dataset, and outputs named after them could land anywhere).

    Raises
    ------
    DatasetError
        Invalid JSON, missing or mistyped keys, unknown category ids, images not found; the
        message names the JSON file. ``OutsideRootError`` (a ``DatasetError``) for a ``file_name``
        leading out of the dataset, naming the JSON and the entry.
    """
    path = Path(path)
    json_path = path if not path.is_dir() else _choose_annotation_file(path, split)
    data = _load_json(json_path)
    categories, images, annotations = _validate(json_path, data)
    if not allow_outside_root:
        _refuse_outside(json_path, images)

    if class_table is None:
        table, cat_to_class = table_from_categories(categories, name=json_path.stem)
    else:
        table = class_table_from_spec(class_table)
        cat_to_class = _map_categories_by_name(json_path, categories, table)

    image_dir = _find_image_dir(json_path, images) if images else json_path.parent
    by_image: dict[Any, list[dict]] = {img["id"]: [] for img in images}
    for ann in annotations:
        by_image[ann["image_id"]].append(ann)
    has_gt = "annotations" in data
    decoder = CocoDecoder(table, json_path, cat_to_class)
    samples = []
    for img in images:
        file_name = img["file_name"]
        name = os.path.splitext(os.path.basename(file_name))[0]
        decoder.records[name] = (img, by_image[img["id"]])
        gt = json_path if has_gt else None
        samples.append(Sample(name, image_dir / file_name, gt, gt, decoder))
    root = path if path.is_dir() else json_path
    return Dataset(root, COCO, table, samples, split=split)


def table_from_categories(categories: list[dict], name: str = "") -> tuple[ClassTable, dict[int, int]]:
    """Background (0) + the categories in file order, VOC-map colours; and category id -> class id.

    labelme's export lists ``__ignore__`` and ``_background_`` as categories: ``_background_`` (or
    a category called ``background``) is class 0 itself, not a second background, and
    ``__ignore__`` maps to the ignore index, so the table matches labelme's own VOC masks.
    """
    cmap = voc_colormap(256)
    classes = [ClassInfo(0, "background", (0, 0, 0, 255))]
    cat_to_class = {}
    ignored = []
    for cat in categories:
        cat_name = str(cat["name"])
        if cat_name in (LABELME_BACKGROUND, "background"):
            cat_to_class[cat["id"]] = 0
        elif cat_name == LABELME_IGNORE:
            ignored.append(cat["id"])
        else:
            i = len(classes)
            classes.append(ClassInfo(i, cat_name, (*(int(v) for v in cmap[i % 256]), 255)))
            cat_to_class[cat["id"]] = i
    ignore = 255 if len(classes) <= 255 else 65535
    cat_to_class.update({cat_id: ignore for cat_id in ignored})
    return ClassTable(classes, ignore, name), cat_to_class


class CocoDecoder(MaskDecoder):
    """Decodes one COCO file's segmentations; ``records`` maps sample name -> (image, annotations)."""

    def __init__(self, class_table: ClassTable, json_path: Path, category_to_class: dict[int, int]):
        super().__init__(class_table)
        self.json_path = json_path
        self.category_to_class = category_to_class
        self.records: dict[str, tuple[dict, list[dict]]] = {}
        self._opened = _file_signature(json_path)
        self._saved: dict[Path, tuple[tuple[int, int] | None, dict[str, tuple[dict, list[dict]]]]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # A dataset is pickled to Ray workers (segstudio.distributed); a lock is not picklable.
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def records_for(self, sample: Sample) -> tuple[dict, list[dict]]:
        """``sample``'s (image, annotations) from the JSON its ``mask_path`` names: the file opened,
        or a saved correction (read again when it changes); the opened file's record for an image
        the other JSON does not hold.

        Raises
        ------
        DatasetError
            That JSON is unreadable, invalid, or names a category the opened file lacks.
        """
        path = Path(sample.mask_path) if sample.mask_path is not None else self.json_path
        signature = _file_signature(path)
        if path == self.json_path and signature == self._opened:
            return self.records[sample.name]
        with self._lock:
            cached = self._saved.get(path)
            if cached is None or cached[0] != signature:
                cached = (signature, self._read_records(path))
                self._saved[path] = cached
        return cached[1].get(sample.name) or self.records[sample.name]

    def _read_records(self, path: Path) -> dict[str, tuple[dict, list[dict]]]:
        data = _load_json(path)
        _, images, annotations = _validate(path, data)
        unknown = {a["category_id"] for a in annotations} - set(self.category_to_class)
        if unknown:
            raise DatasetError(path, f"category ids {sorted(unknown)} are not in {self.json_path.name}")
        by_image: dict[Any, list[dict]] = {img["id"]: [] for img in images}
        for ann in annotations:
            by_image[ann["image_id"]].append(ann)
        return {os.path.splitext(os.path.basename(img["file_name"]))[0]: (img, by_image[img["id"]])
                for img in images}

    def load_mask(self, sample: Sample) -> np.ndarray | None:
        """Semantic mask painted from the instances; crowd-only pixels are the ignore index."""
        if sample.mask_path is None:
            return None
        instances, crowd = self._decode(sample)
        dtype = np.uint8 if max(self.class_table.num_classes, self.class_table.ignore_index) < 256 \
            else np.uint16
        semantic = np.zeros(instances.ids.shape, dtype=dtype)
        semantic[crowd] = self.class_table.ignore_index
        lut = np.zeros(max(instances.classes, default=0) + 1, dtype=dtype)
        for inst_id, class_id in instances.classes.items():
            lut[inst_id] = class_id
        covered = instances.ids > 0
        semantic[covered] = lut[instances.ids[covered]]
        return semantic

    def load_instances(self, sample: Sample) -> InstanceMask | None:
        """Non-crowd annotations as instances 1..N in annotation order."""
        if sample.instance_path is None:
            return None
        return self._decode(sample)[0]

    def _decode(self, sample: Sample) -> tuple[InstanceMask, np.ndarray]:
        from pycocotools import mask as mask_utils

        img, anns = self.records_for(sample)
        height, width = int(img["height"]), int(img["width"])
        actual = sample.image_shape()
        if actual != (height, width):
            raise MaskSizeMismatch(self.json_path, f"image '{img['file_name']}' is annotated as "
                                   f"{width}x{height} but the file is {actual[1]}x{actual[0]}")
        ids = np.zeros((height, width), dtype=np.int32)
        crowd = np.zeros((height, width), dtype=bool)
        classes: dict[int, int] = {}
        next_id = 1
        ignore = self.class_table.ignore_index
        for ann in anns:
            region = self._decode_segmentation(mask_utils, ann, height, width)
            class_id = self.category_to_class[ann["category_id"]]
            if ann.get("iscrowd", 0) or class_id == ignore:   # labelme's __ignore__ reads as crowd
                crowd |= region
                continue
            if class_id == 0:          # a background region (labelme's _background_) is no instance
                ids[region] = 0
                continue
            ids[region] = next_id
            classes[next_id] = class_id
            next_id += 1
        # An instance painted over entirely by a later one no longer exists.
        present = set(np.unique(ids).tolist())
        classes = {i: c for i, c in classes.items() if i in present}
        return InstanceMask(ids, classes), crowd

    def _decode_segmentation(self, mask_utils, ann: dict, height: int, width: int) -> np.ndarray:
        segm = ann["segmentation"]
        where = f"annotation {ann.get('id', '?')} (image {ann['image_id']})"
        try:
            if isinstance(segm, list):
                problem = polygon_problem(segm, height, width)
                if problem:
                    raise DatasetError(self.json_path, f"{where}: {problem}")
                if not segm:
                    return np.zeros((height, width), dtype=bool)
                rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
            else:
                size = segm.get("size")
                if list(size) != [height, width]:
                    raise DatasetError(self.json_path, f"{where}: RLE size {size} differs from the "
                                       f"image's {[height, width]}")
                counts = segm["counts"]
                if isinstance(counts, str):
                    counts = counts.encode("ascii")
                problem = rle_problem(counts, height * width)
                if problem:
                    raise DatasetError(self.json_path, f"{where}: {problem}")
                if isinstance(counts, list):
                    rle = mask_utils.frPyObjects(segm, height, width)
                else:
                    rle = {"size": [height, width], "counts": counts}
            return mask_utils.decode(rle).astype(bool)
        except DatasetError:
            raise
        except Exception as exc:  # pycocotools raises bare Exceptions and TypeErrors on bad input
            raise DatasetError(self.json_path, f"{where}: cannot decode the segmentation: {exc}"
                               ) from exc


def _choose_annotation_file(folder: Path, split: str | None) -> Path:
    files = find_coco_annotations(folder) or coco_files_beside(folder)
    if not files:
        raise DatasetError(folder, "no COCO annotation file: expected annotations/*.json or a "
                           "COCO .json beside the images")
    if split is not None:
        chosen = [f for f in files if split in f.stem]
        if not chosen:
            raise DatasetError(folder / "annotations", f"no annotation file for split '{split}' "
                               f"(found: {', '.join(f.name for f in files)})")
        files = chosen
    if len(files) > 1:
        instances = [f for f in files if f.stem.startswith("instances")]
        files = instances or files
    if len(files) > 1:
        val = [f for f in files if "val" in f.stem]
        if len(val) == 1:
            return val[0]
        raise DatasetError(folder / "annotations", f"several annotation files, pass a split to "
                           f"choose: {', '.join(f.name for f in files)}")
    return files[0]


def _load_json(path: Path) -> Any:
    # No size limit: COCO files run to hundreds of MB; but a FIFO or device would hang the reader.
    refuse_special_file(path, DatasetError)
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(path, "no such file") from None
    except IsADirectoryError:
        raise DatasetError(path, "expected a COCO .json file, found a folder") from None
    except OSError as exc:
        raise DatasetError(path, f"cannot read the file: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                           ) from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise DatasetError(path, f"not valid JSON: {exc}") from None


def _require(path: Path, record: Any, where: str, keys: dict[str, tuple[type, ...]]) -> None:
    if not isinstance(record, dict):
        raise DatasetError(path, f"{where} is not an object")
    for key, types in keys.items():
        if key not in record:
            raise DatasetError(path, f"{where} lacks the key '{key}'")
        value = record[key]
        if not isinstance(value, types) or isinstance(value, bool):
            raise DatasetError(path, f"{where}: '{key}' has the wrong type "
                               f"({type(value).__name__})")


def _validate(path: Path, data: Any) -> tuple[list[dict], list[dict], list[dict]]:
    """Check the structure the decoder relies on; return (categories, images, annotations)."""
    if not isinstance(data, dict):
        raise DatasetError(path, "not a COCO annotation file: the top level is not an object")
    for key in ("images", "categories"):
        if key not in data:
            raise DatasetError(path, f"not a COCO annotation file: no '{key}' list")
        if not isinstance(data[key], list):
            raise DatasetError(path, f"'{key}' is not a list")
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise DatasetError(path, "'annotations' is not a list")
    categories = data["categories"]
    for i, cat in enumerate(categories):
        _require(path, cat, f"category {i}", {"id": (int,), "name": (str,)})
    cat_ids = {c["id"] for c in categories}
    if len(cat_ids) != len(categories):
        raise DatasetError(path, "two categories share an id")
    if len({c["name"] for c in categories}) != len(categories):
        raise DatasetError(path, "two categories share a name")
    images = data["images"]
    image_ids = set()
    names = {}
    for i, img in enumerate(images):
        _require(path, img, f"image {i}", {"id": (int, str), "file_name": (str,),
                                           "width": (int,), "height": (int,)})
        if img["id"] in image_ids:
            raise DatasetError(path, f"image {i}: the id {img['id']} is used twice")
        image_ids.add(img["id"])
        stem = os.path.splitext(os.path.basename(img["file_name"]))[0]
        if stem in names:
            raise DatasetError(path, f"images {names[stem]} and {i} share the name '{stem}'")
        names[stem] = i
    for i, ann in enumerate(annotations):
        where = f"annotation {i}"
        _require(path, ann, where, {"image_id": (int, str), "category_id": (int,),
                                    "segmentation": (list, dict)})
        if ann["image_id"] not in image_ids:
            raise DatasetError(path, f"{where}: image_id {ann['image_id']} is not in 'images'")
        if ann["category_id"] not in cat_ids:
            raise DatasetError(path, f"{where}: category_id {ann['category_id']} is not in "
                               f"'categories'")
        # Truthiness would read "no" as crowd and drop the instance; COCO writes 0/1.
        if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
            raise DatasetError(path, f"{where} (id {ann.get('id', '?')}): 'iscrowd' must be 0 or 1, "
                               f"not {ann['iscrowd']!r}")
        segm = ann["segmentation"]
        if isinstance(segm, dict) and ("counts" not in segm or "size" not in segm):
            raise DatasetError(path, f"{where}: an RLE segmentation needs 'counts' and 'size'")
    return categories, images, annotations


def _map_categories_by_name(path: Path, categories: list[dict], table: ClassTable) -> dict[int, int]:
    mapping = {}
    for cat in categories:
        if cat["name"] == LABELME_IGNORE:
            mapping[cat["id"]] = table.ignore_index
            continue
        if cat["name"] == LABELME_BACKGROUND and LABELME_BACKGROUND not in table.names:
            mapping[cat["id"]] = 0
            continue
        try:
            mapping[cat["id"]] = table.index_of(cat["name"])
        except KeyError:
            raise DatasetError(path, f"category '{cat['name']}' is not in the class table "
                               f"'{table.name}'") from None
    return mapping


def _refuse_outside(json_path: Path, images: list[dict]) -> None:
    """``OutsideRootError`` for the first image whose ``file_name`` is absolute or climbs with ``..``."""
    for i, img in enumerate(images):
        name = img["file_name"]
        posix = PurePosixPath(name.replace("\\", "/"))
        if posix.is_absolute() or PureWindowsPath(name).drive or ".." in posix.parts:
            raise OutsideRootError(json_path, json_path.parent,
                                   f"image {i} (id {img['id']!r}): file_name {name!r} leads outside "
                                   "the dataset; refused unless outside paths are allowed (--allow-outside-root)")


def _find_image_dir(json_path: Path, images: list[dict]) -> Path:
    """The folder the images' ``file_name`` is relative to, judged by the first image."""
    first = images[0]["file_name"]
    here, above = json_path.parent, json_path.parent.parent
    candidates = [here, above, here / "images", above / "images", here / "JPEGImages"]
    # instances_val2017.json -> val2017/ or images/val2017/
    tag = json_path.stem.split("_", 1)[-1]
    candidates += [above / tag, above / "images" / tag, here / tag]
    candidates += [above / d for d in subfolders(above) if d != "annotations"]
    for folder in candidates:
        if (folder / first).is_file():
            return folder
    original = _original_of_corrected(json_path)
    if original is not None:   # a saved correction: the images are where the original JSON is
        try:
            return _find_image_dir(original, images)
        except DatasetError:
            pass
    raise DatasetError(json_path, f"cannot find the image '{first}' next to the annotations "
                       f"(looked in {', '.join(str(c) for c in candidates[:7])})")


def _original_of_corrected(json_path: Path) -> Path | None:
    """Where the JSON that ``json_path`` corrects lies, when it is under a ``corrected/`` folder
    (``saving.corrected_dir`` mirrors the original's path inside the dataset there)."""
    for folder in json_path.parents:
        if folder.name == "corrected":
            return folder.parent / json_path.relative_to(folder)
    return None


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
