"""The Pascal VOC segmentation layout.

::

    VOC2012/                         (also found as root/VOCdevkit/VOC2012/ or root/VOC2012/)
      JPEGImages/                    2007_000032.jpg ...
      SegmentationClass/             2007_000032.png ...  palette PNGs, 255 = void border
      SegmentationObject/            optional: palette PNGs of instance ids, 255 = void border
      ImageSets/Segmentation/        optional: train.txt val.txt trainval.txt ... one stem a line
      class_names.txt                optional; the default table is ClassTable.voc()

Without a split, the samples are the images that have a ``SegmentationClass`` mask (VOC ships
17,125 images but masks for 2,913), or every image when there are no masks at all.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

from segstudio.core.io.classes import ClassTable
from segstudio.core.io.datasets.base import (
    Dataset,
    MaskDecoder,
    Sample,
    files_by_stem,
    natural_key,
    resolve_class_table,
    scan_files,
    subfolders,
    unreadable_warning,
)
from segstudio.core.io.datasets.formats import DatasetFormat
from segstudio.core.errors import DatasetError

__all__ = ["VOC", "VocFormat", "find_voc_root", "open_voc"]


class VocFormat(DatasetFormat):
    """Pascal VOC: corrections mirror ``SegmentationClass/`` palette PNGs, palette kept."""

    name = "voc"
    ground_truth_layout = ("SegmentationClass/<image>.png (instances: SegmentationObject/) beside "
                           "JPEGImages/")

    def detect(self, path: Path) -> bool:
        """``JPEGImages/`` in the folder or under ``VOCdevkit/VOC*/`` / ``VOC*/`` -- unless it has
        no VOC masks and a COCO annotation file lies beside it (labelme's COCO export), which is
        COCO's."""
        if not path.is_dir():
            return False
        root = find_voc_root(path)
        if root is None:
            return False
        if any((root / d).is_dir() for d in ("SegmentationClass", "SegmentationObject")):
            return True
        from segstudio.core.io.datasets.coco import coco_files_beside  # noqa: PLC0415 - coco imports voc's peers

        return not (coco_files_beside(root) or coco_files_beside(path))

    def open(self, path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
             split: str | None = None, *, binary_mapping: dict[int, int] | None = None) -> Dataset:
        """See ``open_voc``."""
        return open_voc(path, class_table, split, binary_mapping=binary_mapping)


VOC = VocFormat()


def find_voc_root(path: Path) -> Path | None:
    """The folder holding ``JPEGImages/`` at, or one or two ``VOC*`` levels below, ``path``."""
    if (path / "JPEGImages").is_dir():
        return path
    for parent in (path / "VOCdevkit", path):
        for name in reversed(subfolders(parent)):  # newest year first: VOC2012 before VOC2007
            if name.upper().startswith("VOC") and (parent / name / "JPEGImages").is_dir():
                return parent / name
    return None


def open_voc(path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
             split: str | None = None, binary_mapping: dict[int, int] | None = None) -> Dataset:
    """List a VOC dataset without decoding anything.

    Parameters
    ----------
    path : path
        The ``VOC2012`` folder or a folder above it (``VOCdevkit`` nesting).
    class_table : ClassTable, path or None
        Default: ``class_names.txt`` / ``classes.json`` in the VOC folder, else ``ClassTable.voc()``.
    split : str or None
        Read ``ImageSets/Segmentation/<split>.txt`` to select and order the samples.
    binary_mapping : dict or None
        See ``open_dataset``.

    Raises
    ------
    DatasetError
        No ``JPEGImages/``, unknown split, a split naming an image that is missing.
    """
    path = Path(path)
    root = find_voc_root(path)
    if root is None:
        raise DatasetError(path, "not a Pascal VOC folder: no JPEGImages/ here or under "
                           "VOCdevkit/VOC*/")
    images_dir = root / "JPEGImages"
    unreadable: list[Path] = []
    images = files_by_stem(scan_files(images_dir, unreadable=unreadable), images_dir, unique=True)
    if not images:
        raise DatasetError(images_dir, "no images in the folder")
    masks = _files(root / "SegmentationClass", unreadable)
    objects = _files(root / "SegmentationObject", unreadable)

    if split is not None:
        names = _read_split(root, split)
        missing = [n for n in names if n not in images]
        if missing:
            raise DatasetError(root / "ImageSets" / "Segmentation" / f"{split}.txt",
                               f"{len(missing)} listed image(s) missing from JPEGImages/, "
                               f"first: {missing[0]}")
    elif masks:
        names = sorted((n for n in masks if n in images), key=natural_key)
    else:
        names = sorted(images, key=natural_key)

    table = resolve_class_table(class_table, [root, path], ClassTable.voc)
    decoder = MaskDecoder(table, binary_mapping=binary_mapping, instance_format="voc")
    samples = [Sample(n, images[n], masks.get(n), objects.get(n), decoder) for n in names]
    dataset = Dataset(root, VOC, table, samples, split=split)
    skipped = unreadable_warning(unreadable)
    if skipped:
        dataset.warnings.append(skipped)
    return dataset


def _files(folder: Path, unreadable: list[Path]) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return files_by_stem(scan_files(folder, unreadable=unreadable), folder, unique=False)


def _read_split(root: Path, split: str) -> list[str]:
    """Stems listed in ``ImageSets/Segmentation/<split>.txt`` (first word of each line), in order."""
    sets = root / "ImageSets" / "Segmentation"
    split_file = sets / f"{split}.txt"
    try:
        text = split_file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        found = sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else []
        raise DatasetError(split_file, f"no such split (splits found: {', '.join(found) or 'none'})"
                           ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(split_file, f"cannot read the split file: {exc}") from None
    names = [line.split()[0] for line in text.splitlines() if line.strip()]
    if not names:
        raise DatasetError(split_file, "the split file lists no images")
    return names
