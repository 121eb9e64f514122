"""Datasets: open a folder, a VOC or Cityscapes tree, a COCO JSON or a single image as a list of samples.

Opening lists files only (``os.scandir``, plus reading the JSON of a COCO dataset); images and masks
are decoded when a sample's ``load_image`` / ``load_mask`` / ``load_instances`` is called, so a dataset
of tens of thousands of images opens in a fraction of a second.

Each format is one ``DatasetFormat`` object living in its own module (``folder``, ``voc``, ``coco``,
``cityscapes``, ``image``): it detects its layout, opens it, and decides where and how corrected
labels are written. ``DATASET_FORMATS`` lists them in the order detection asks them.
"""
from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

from segstudio.core.io.classes import ClassTable
from segstudio.core.io.datasets.base import (
    IMAGE_EXTENSIONS,
    Dataset,
    MaskDecoder,
    Sample,
    load_class_table,
)
from segstudio.core.io.datasets.cityscapes import CITYSCAPES, CityscapesFormat
from segstudio.core.io.datasets.coco import COCO, CocoFormat
from segstudio.core.io.datasets.folder import FOLDER, FolderFormat
from segstudio.core.io.datasets.formats import DatasetFormat
from segstudio.core.io.datasets.image import IMAGE, ImageFormat
from segstudio.core.io.datasets.voc import VOC, VocFormat
from segstudio.core.errors import DatasetError

__all__ = [
    "CITYSCAPES",
    "COCO",
    "DATASET_FORMATS",
    "FOLDER",
    "FORMATS",
    "IMAGE",
    "IMAGE_EXTENSIONS",
    "VOC",
    "CityscapesFormat",
    "CocoFormat",
    "Dataset",
    "DatasetFormat",
    "FolderFormat",
    "ImageFormat",
    "MaskDecoder",
    "Sample",
    "VocFormat",
    "detect_dataset_format",
    "detect_format",
    "find_format",
    "load_class_table",
    "open_dataset",
]

DATASET_FORMATS: tuple[DatasetFormat, ...] = (VOC, CITYSCAPES, COCO, FOLDER, IMAGE)
"""Every format, in the order detection asks them: the stricter folder layouts before the plain
folder (a COCO folder has ``images/`` too)."""

FORMATS = tuple(f.name for f in DATASET_FORMATS)
"""The format names ``open_dataset`` understands (besides ``'auto'``)."""

_LAYOUTS = ("images/ with masks/ (or image/, img/ with mask/, labels/, label/, gt/, annotations/), "
            "image files, Pascal VOC (JPEGImages/, SegmentationClass/), Cityscapes (leftImg8bit/, "
            "gtFine/) or COCO (annotations/*.json, or a COCO .json beside JPEGImages/); or name the "
            "folders with --images DIR --masks DIR")


def find_format(name: str) -> DatasetFormat | None:
    """The format called ``name`` (``'folder'``, ``'voc'`` ...), or ``None``."""
    return next((f for f in DATASET_FORMATS if f.name == name), None)


def detect_dataset_format(path: str | PathLike) -> DatasetFormat:
    """Guess the format of ``path`` from names only: the first of ``DATASET_FORMATS`` that detects it.

    Raises
    ------
    DatasetError
        The path does not exist, is an empty folder, or matches no layout.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    is_dir = path.is_dir()
    if is_dir:
        try:
            with os.scandir(path) as it:
                visible = [e.name for e in it if not e.name.startswith(".")]
        except OSError as exc:
            raise DatasetError(path, f"cannot list the folder: {exc.strerror or exc}") from None
        if not visible:
            raise DatasetError(path, "the folder is empty")
    found = next((f for f in DATASET_FORMATS if f.detect(path)), None)
    if found is not None:
        return found
    if is_dir:
        raise DatasetError(path, f"unknown dataset layout; expected {_LAYOUTS}")
    raise DatasetError(path, "not a dataset: expected a folder, a COCO .json file or an image")


def detect_format(path: str | PathLike) -> str:
    """Guess the layout of ``path`` from names only; the name of ``detect_dataset_format(path)``.

    Returns
    -------
    str
        ``'coco'`` for a ``.json`` file or a folder whose ``annotations/`` holds JSON files and no
        masks; ``'image'`` for an image file; ``'voc'`` when ``JPEGImages/`` is found (also under
        ``VOCdevkit/VOC*/``); ``'cityscapes'`` when ``leftImg8bit/`` is found (also when ``path`` is
        that folder); ``'folder'`` for ``images/`` or image files in the folder.

    Raises
    ------
    DatasetError
        The path does not exist, is an empty folder, or matches no layout.
    """
    return detect_dataset_format(path).name


def open_dataset(path: str | PathLike, format: str | DatasetFormat = "auto",
                 class_table: ClassTable | str | PathLike | None = None, split: str | None = None,
                 *, masks: str | PathLike | None = None,
                 binary_mapping: dict[int, int] | None = None, allow_outside_root: bool = False) -> Dataset:
    """Open a dataset lazily: list its samples without decoding any image or mask.

    Parameters
    ----------
    path : path
        A dataset folder, a COCO ``.json`` file, an image file, or (with ``masks``) a folder of
        images.
    format : str or DatasetFormat
        ``'auto'`` (see ``detect_format``), a format's name (``'folder'``, ``'voc'``, ``'coco'``,
        ``'cityscapes'``, ``'image'``) or the format itself.
    class_table : ClassTable, path, str or None
        The classes of the ground truth, a ``.json`` table / ``class_names.txt`` to read them
        from, or a built-in table's name (``voc``, ``cityscapes``, ``coco``; a file wins). Default: the dataset's own ``classes.json`` / ``class_names.txt``, else the format's
        built-in (VOC for folder, VOC and image; Cityscapes' 19 train ids; COCO's categories).
    split : str or None
        Folder: ``images/<split>/``; VOC: ``ImageSets/Segmentation/<split>.txt``; Cityscapes:
        ``leftImg8bit/<split>/``; COCO folder: the annotation file whose name contains it.
    masks : path or None
        Keyword only: pair the image folder ``path`` with this mask folder (folder format).
    binary_mapping : dict or None
        Keyword only: how to read masks holding only 0 and 255, e.g. ``{0: 0, 255: 1}``; without
        it such masks are refused when loaded.
    allow_outside_root : bool
        Keyword only, COCO: accept image ``file_name``s that are absolute or climb out with ``..``
        (refused by default with an ``OutsideRootError`` naming the JSON and the entry).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Missing path, empty folder, unknown layout, broken COCO JSON, missing split; the message
        names the path.
    ClassTableError
        An unreadable class table file.
    """
    path = Path(path)
    if masks is not None:
        if format != "auto" and _lookup(format) is not FOLDER:
            raise DatasetError(path, f"a separate mask folder only works with the folder format, "
                               f"not '{getattr(format, 'name', format)}'")
        return FOLDER.open(path, class_table, split, masks=masks, binary_mapping=binary_mapping)
    if format == "auto":
        kind = detect_dataset_format(path)
    else:
        if not path.exists():
            raise DatasetError(path, "no such file or folder")
        kind = _lookup(format)
        if kind is None:
            raise DatasetError(path, f"unknown dataset format '{format}'; use one of "
                               f"auto, {', '.join(FORMATS)}")
    if kind is COCO:
        return COCO.open(path, class_table, split, allow_outside_root=allow_outside_root)
    return kind.open(path, class_table, split, binary_mapping=binary_mapping)


def _lookup(format: str | DatasetFormat) -> DatasetFormat | None:
    return format if isinstance(format, DatasetFormat) else find_format(format)
