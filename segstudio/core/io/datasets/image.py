"""A single image file as a dataset of one sample without ground truth.

Its root is the image's folder, so corrected labels go to ``<folder>/corrected/<stem>.png``, a palette
PNG through the class table's colours.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

from segstudio.core.io.classes import ClassTable
from segstudio.core.io.datasets.base import IMAGE_EXTENSIONS, Dataset, Sample, resolve_class_table
from segstudio.core.io.datasets.formats import DatasetFormat
from segstudio.core.errors import DatasetError

__all__ = ["IMAGE", "ImageFormat", "open_image"]


class ImageFormat(DatasetFormat):
    """One image file; its corrections are written as a new palette PNG named after it."""

    name = "image"
    ground_truth_layout = "nothing: a single image opened alone has no ground truth"

    def detect(self, path: Path) -> bool:
        """A file with an image suffix."""
        return not path.is_dir() and path.suffix.lower() in IMAGE_EXTENSIONS

    def open(self, path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
             split: str | None = None, *, binary_mapping: dict[int, int] | None = None) -> Dataset:
        """See ``open_image`` (``split`` and ``binary_mapping`` do not apply)."""
        return open_image(path, class_table)


IMAGE = ImageFormat()


def open_image(path: str | PathLike, class_table: ClassTable | str | PathLike | None = None) -> Dataset:
    """A dataset of the one image ``path``, without ground truth; its root is the image's folder.

    Parameters
    ----------
    class_table : ClassTable, path or None
        Default: ``ClassTable.voc()``.

    Raises
    ------
    DatasetError
        ``path`` is a folder or has no image suffix.
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetError(path, "expected an image file, found a folder")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DatasetError(path, f"not an image file (expected one of "
                           f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    table = resolve_class_table(class_table, (), ClassTable.voc)
    return Dataset(path.parent, IMAGE, table, [Sample(path.stem, path)])
