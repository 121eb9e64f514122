"""The Cityscapes layout.

::

    root/
      leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
      gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png     preferred ground truth
                                                  _gtFine_color.png        used when labelIds is absent
                                                  _gtFine_instanceIds.png  instances

labelIds are remapped to the 19 train ids with ``CITYSCAPES_LABEL_TO_TRAIN`` (everything else -> 255);
colour masks are decoded through the class table's colours, the colours of Cityscapes' void labels
reading as ignore; instanceIds (``labelId * 1000 + k`` for things, the bare labelId elsewhere) become
an ``InstanceMask`` of the things whose label has a train id, numbered 1..N. Sample names drop ``_leftImg8bit``.
"""
from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

import numpy as np

from segstudio.core.io.classes import CITYSCAPES_LABEL_TO_TRAIN, ClassTable
from segstudio.core.io.datasets.base import (
    Dataset,
    MaskDecoder,
    Sample,
    check_shape,
    natural_key,
    resolve_class_table,
    scan_files,
    subfolders,
)
from segstudio.core.io.datasets.formats import DatasetFormat
from segstudio.core.errors import DatasetError, ImageReadError, MaskReadError, UnknownColoursError
from segstudio.core.io.images import read_image
from segstudio.core.io.masks import InstanceMask, read_instance_mask

__all__ = ["CITYSCAPES", "CityscapesDecoder", "CityscapesFormat", "find_cityscapes_root",
           "open_cityscapes", "VOID_COLOURS"]

IMAGE_SUFFIX = "_leftImg8bit"

VOID_COLOURS = (
    (0, 0, 0), (111, 74, 0), (81, 0, 81), (250, 170, 160), (230, 150, 140), (180, 165, 180),
    (150, 100, 100), (150, 120, 90), (0, 0, 90), (0, 0, 110),
)
"""Colours of the Cityscapes labels without a train id (unlabeled, dynamic, ground, parking, rail
track, guard rail, bridge, tunnel, caravan, trailer), from cityscapesscripts' labels.py. The void
labels polegroup and license plate share pole's and car's colours and so read as those."""


class CityscapesFormat(DatasetFormat):
    """Cityscapes: corrections are written as ``*_gtFine_labelIds.png`` (train ids mapped back),
    except for samples whose ground truth is a colour mask, which stays a colour mask."""

    name = "cityscapes"
    ground_truth_layout = ("gtFine/<split>/<city>/<name>_gtFine_labelIds.png (or _color.png, "
                           "_instanceIds.png) for each leftImg8bit/ image")

    def detect(self, path: Path) -> bool:
        """``leftImg8bit/`` in the folder, or the folder is ``leftImg8bit``."""
        return path.is_dir() and find_cityscapes_root(path) is not None

    def open(self, path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
             split: str | None = None, *, binary_mapping: dict[int, int] | None = None) -> Dataset:
        """See ``open_cityscapes`` (``binary_mapping`` does not apply)."""
        return open_cityscapes(path, class_table, split)

    def new_file_name(self, sample: Sample) -> str:
        return f"{sample.name}_gtFine_labelIds.png"

    def output_kind(self, dataset: Dataset, sample: Sample) -> str:
        """``'labelIds'`` for a labelIds mask or none; a colour mask keeps its own encoding."""
        source = self.source_file(sample)
        if source is None or source.name.endswith("_labelIds.png"):
            return "labelIds"
        return super().output_kind(dataset, sample)


CITYSCAPES = CityscapesFormat()


def find_cityscapes_root(path: Path) -> Path | None:
    """The folder holding ``leftImg8bit/``: ``path`` itself or, if ``path`` is ``leftImg8bit``, its parent."""
    if (path / "leftImg8bit").is_dir():
        return path
    if path.name == "leftImg8bit" and path.is_dir():
        return path.parent
    return None


def open_cityscapes(path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
                    split: str | None = None) -> Dataset:
    """List a Cityscapes dataset without decoding anything.

    Parameters
    ----------
    path : path
        The folder holding ``leftImg8bit/`` and ``gtFine/`` (or ``leftImg8bit`` itself).
    class_table : ClassTable, path or None
        Default: ``ClassTable.cityscapes()`` (the 19 train ids).
    split : str or None
        ``'train'``, ``'val'``, ``'test'`` ...; ``None`` lists every split.

    Raises
    ------
    DatasetError
        No ``leftImg8bit/``, unknown split, no images, no ``gtFine/`` for a split other than test.
    """
    path = Path(path)
    root = find_cityscapes_root(path)
    if root is None:
        raise DatasetError(path, "not a Cityscapes folder: no leftImg8bit/ here")
    images_root = root / "leftImg8bit"
    splits = subfolders(images_root)
    if split is not None:
        if split not in splits:
            raise DatasetError(images_root / split, f"no such split (splits found: "
                               f"{', '.join(splits) or 'none'})")
        splits = [split]
    table = resolve_class_table(class_table, [root], ClassTable.cityscapes)
    decoder = CityscapesDecoder(table)
    samples = []
    for split_name in splits:
        for city in subfolders(images_root / split_name):
            samples += _city_samples(root, split_name, city, decoder)
    if not samples:
        raise DatasetError(images_root, "no *_leftImg8bit images under leftImg8bit/<split>/<city>/")
    # Without gtFine/ every image would load with no ground truth, and evaluate would score nothing
    # without a word. Only the test split is published without labels.
    labelled_splits = [s for s in splits if s != "test" and subfolders(images_root / s)]
    if labelled_splits and not (root / "gtFine").is_dir():
        raise DatasetError(root / "gtFine", f"no such folder: the ground truth of "
                           f"{', '.join(labelled_splits)} (only the test split comes without it; "
                           f"open leftImg8bit/<split>/<city>/ as a plain folder for images alone)")
    return Dataset(root, CITYSCAPES, table, samples, split=split)


def _city_samples(root: Path, split: str, city: str, decoder: "CityscapesDecoder") -> list[Sample]:
    image_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    gt_names = {e.name for e in scan_files(gt_dir, frozenset({".png"}))} if gt_dir.is_dir() else set()
    samples = []
    for entry in sorted(scan_files(image_dir), key=lambda e: natural_key(e.name)):
        stem = os.path.splitext(entry.name)[0]
        if not stem.endswith(IMAGE_SUFFIX):
            continue
        name = stem[: -len(IMAGE_SUFFIX)]
        mask = instance = None
        for suffix in ("_gtFine_labelIds.png", "_gtFine_color.png"):
            if name + suffix in gt_names:
                mask = gt_dir / (name + suffix)
                break
        if name + "_gtFine_instanceIds.png" in gt_names:
            instance = gt_dir / (name + "_gtFine_instanceIds.png")
        samples.append(Sample(name, image_dir / entry.name, mask, instance, decoder))
    return samples


class CityscapesDecoder(MaskDecoder):
    """labelIds through ``CITYSCAPES_LABEL_TO_TRAIN``, colour masks through the table's colours."""

    def __init__(self, class_table: ClassTable):
        super().__init__(class_table, label_map=CITYSCAPES_LABEL_TO_TRAIN)

    def load_mask(self, sample: Sample) -> np.ndarray | None:
        """Train ids of ``sample`` (see ``Sample.load_mask``)."""
        if sample.mask_path is None:
            return None
        if not sample.mask_path.name.endswith("_color.png"):
            return super().load_mask(sample)
        shape = sample.image_shape()
        mask = decode_colour_mask(sample.mask_path, self.class_table)
        check_shape(sample.mask_path, mask.shape, shape)
        return mask

    def load_instances(self, sample: Sample) -> InstanceMask | None:
        """Things whose label has a train id, renumbered 1..N in order of their stored values."""
        if sample.instance_path is None:
            return None
        return read_instance_mask(sample.instance_path, format="cityscapes",
                                  label_map=CITYSCAPES_LABEL_TO_TRAIN,
                                  expected_shape=sample.image_shape(),
                                  ignore_index=self.class_table.ignore_index)


def decode_colour_mask(path: Path, class_table: ClassTable) -> np.ndarray:
    """Class ids of an RGB(A) colour mask; the Cityscapes void colours become the ignore index.

    Raises
    ------
    MaskReadError
        Not an 8-bit colour image; ``UnknownColoursError`` for colours in neither list.
    """
    try:
        img = read_image(path)
    except ImageReadError as exc:
        raise MaskReadError(path, exc.reason) from exc
    if img.ndim != 3 or img.dtype != np.uint8:
        raise MaskReadError(path, f"a colour mask must be 8-bit RGB(A), this one is "
                            f"{img.dtype} with {1 if img.ndim == 2 else img.shape[2]} channel(s)")
    rgb = img[..., :3].astype(np.uint32)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    uniq, inverse = np.unique(keys.ravel(), return_inverse=True)
    ignore = class_table.ignore_index
    known = {(r << 16) | (g << 8) | b: ignore for r, g, b in VOID_COLOURS}
    for info in class_table:
        r, g, b = info.color[:3]
        known[(r << 16) | (g << 8) | b] = info.id
    dtype = np.uint8 if max(ignore, class_table.num_classes) < 256 else np.uint16
    lut = np.array([known.get(int(k), -1) for k in uniq], dtype=np.int64)
    if (lut < 0).any():
        counts = np.bincount(inverse.ravel(), minlength=uniq.size)
        unknown = sorted((((int(k) >> 16, (int(k) >> 8) & 255, int(k) & 255, 255), int(counts[i]))
                          for i, k in enumerate(uniq) if lut[i] < 0), key=lambda item: -item[1])
        raise UnknownColoursError(path, unknown)
    return lut[inverse].reshape(keys.shape).astype(dtype)
