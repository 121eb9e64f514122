"""Datasets: open a folder, a VOC or Cityscapes tree, a COCO JSON or a single image as a list of samples.

Opening lists files only (``os.scandir``, plus reading the JSON of a COCO dataset); images and masks
are decoded when a sample's ``load_image`` / ``load_mask`` / ``load_instances`` is called, so a dataset
of tens of thousands of images opens in a fraction of a second.

Each format lives in its own module (``folder``, ``voc``, ``coco``, ``cityscapes``) and is imported
when first used.
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
    resolve_class_table,
)
from segstudio.core.errors import DatasetError

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "Dataset",
    "MaskDecoder",
    "Sample",
    "detect_format",
    "load_class_table",
    "open_dataset",
]

FORMATS = ("folder", "voc", "coco", "cityscapes", "image")
"""The formats ``open_dataset`` understands (besides ``'auto'``)."""

_LAYOUTS = ("images/ with masks/ (or labels/, gt/, annotations/), image files, Pascal VOC "
            "(JPEGImages/, SegmentationClass/), Cityscapes (leftImg8bit/, gtFine/) or COCO "
            "(annotations/*.json)")


def detect_format(path: str | PathLike) -> str:
    """Guess the layout of ``path`` from names only.

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
    from segstudio.core.io.datasets.cityscapes import find_cityscapes_root
    from segstudio.core.io.datasets.coco import find_coco_annotations
    from segstudio.core.io.datasets.folder import looks_like_folder
    from segstudio.core.io.datasets.voc import find_voc_root

    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    if not path.is_dir():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix in IMAGE_EXTENSIONS:
            return "image"
        raise DatasetError(path, "not a dataset: expected a folder, a COCO .json file or an image")
    try:
        with os.scandir(path) as it:
            visible = [e.name for e in it if not e.name.startswith(".")]
    except OSError as exc:
        raise DatasetError(path, f"cannot list the folder: {exc.strerror or exc}") from None
    if not visible:
        raise DatasetError(path, "the folder is empty")
    if find_voc_root(path) is not None:
        return "voc"
    if find_cityscapes_root(path) is not None:
        return "cityscapes"
    if find_coco_annotations(path):
        return "coco"
    if looks_like_folder(path):
        return "folder"
    raise DatasetError(path, f"unknown dataset layout; expected {_LAYOUTS}")


def open_dataset(path: str | PathLike, format: str = "auto",
                 class_table: ClassTable | str | PathLike | None = None, split: str | None = None,
                 *, masks: str | PathLike | None = None,
                 binary_mapping: dict[int, int] | None = None) -> Dataset:
    """Open a dataset lazily: list its samples without decoding any image or mask.

    Parameters
    ----------
    path : path
        A dataset folder, a COCO ``.json`` file, an image file, or (with ``masks``) a folder of
        images.
    format : str
        ``'auto'`` (see ``detect_format``), ``'folder'``, ``'voc'``, ``'coco'``, ``'cityscapes'`` or
        ``'image'``.
    class_table : ClassTable, path or None
        The classes of the ground truth, or a ``.json`` table / ``class_names.txt`` to read them
        from. Default: the dataset's own ``classes.json`` / ``class_names.txt``, else the format's
        built-in (VOC for folder, VOC and image; Cityscapes' 19 train ids; COCO's categories).
    split : str or None
        Folder: ``images/<split>/``; VOC: ``ImageSets/Segmentation/<split>.txt``; Cityscapes:
        ``leftImg8bit/<split>/``; COCO folder: the annotation file whose name contains it.
    masks : path or None
        Keyword only: pair the image folder ``path`` with this mask folder (folder format).
    binary_mapping : dict or None
        Keyword only: how to read masks holding only 0 and 255, e.g. ``{0: 0, 255: 1}``; without
        it such masks are refused when loaded.

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
        if format not in ("auto", "folder"):
            raise DatasetError(path, f"a separate mask folder only works with the folder format, "
                               f"not '{format}'")
        format = "folder"
    elif format == "auto":
        format = detect_format(path)
    elif not path.exists():
        raise DatasetError(path, "no such file or folder")
    if format not in FORMATS:
        raise DatasetError(path, f"unknown dataset format '{format}'; use one of "
                           f"auto, {', '.join(FORMATS)}")
    if format == "folder":
        from segstudio.core.io.datasets.folder import open_folder
        return open_folder(path, class_table, split, masks=masks, binary_mapping=binary_mapping)
    if format == "voc":
        from segstudio.core.io.datasets.voc import open_voc
        return open_voc(path, class_table, split, binary_mapping=binary_mapping)
    if format == "coco":
        from segstudio.core.io.datasets.coco import open_coco
        return open_coco(path, class_table, split)
    if format == "cityscapes":
        from segstudio.core.io.datasets.cityscapes import open_cityscapes
        return open_cityscapes(path, class_table, split)
    return _open_image(path, class_table)


def _open_image(path: Path, class_table) -> Dataset:
    """A dataset of the one image ``path``, without ground truth; its root is the image's folder."""
    if path.is_dir():
        raise DatasetError(path, "expected an image file, found a folder")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DatasetError(path, f"not an image file (expected one of "
                           f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    table = resolve_class_table(class_table, (), ClassTable.voc)
    return Dataset(path.parent, "image", table, [Sample(path.stem, path)])
