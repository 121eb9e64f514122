"""The plain folder layout: ``images/`` beside a mask folder, paired by file stem.

::

    root/
      images/            a.jpg b.png ...            (also image/, img/, imgs/; or the image files
                                                    directly in root/)
      masks/             a.png ...                  (also mask/, labels/, label/, gt/, annotations/)
      instances/         a.png ...                  optional 16-bit instance ids
      classes.json | class_names.txt                optional class table

With a split, ``images/<split>/``, ``masks/<split>/`` and ``instances/<split>/`` are read instead.
Singular names (``image/`` + ``label/``, the ISBI cell-tracking layout) and ``img/`` + ``mask/`` are
the same layout. Images without a mask are kept (``mask_path`` is ``None``); masks without an image
are reported in ``Dataset.warnings``.
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

__all__ = ["FOLDER", "FolderFormat", "IMAGE_FOLDER_NAMES", "MASK_FOLDER_NAMES", "open_folder",
           "looks_like_folder", "find_image_folder", "find_mask_folder"]

IMAGE_FOLDER_NAMES = ("images", "image", "img", "imgs")
"""Names tried, in this order, for the image folder."""
MASK_FOLDER_NAMES = ("masks", "mask", "labels", "label", "gt", "annotations")
"""Names tried, in this order, for the semantic mask folder beside the image folder."""
GROUND_TRUTH_LAYOUT = (f"a mask folder ({'/, '.join(MASK_FOLDER_NAMES)}/) beside the image folder "
                       f"({'/, '.join(IMAGE_FOLDER_NAMES)}/ or the folder itself), masks named like "
                       "the images; or instances/")


class FolderFormat(DatasetFormat):
    """``images/`` beside ``masks/`` (or a flat folder of images); corrections mirror ``masks/``."""

    name = "folder"
    ground_truth_layout = GROUND_TRUTH_LAYOUT

    def detect(self, path: Path) -> bool:
        """A folder with an image folder (``images/``, ``image/`` ...) or image files in it (asked
        after the stricter layouts)."""
        return path.is_dir() and looks_like_folder(path)

    def open(self, path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
             split: str | None = None, *, binary_mapping: dict[int, int] | None = None,
             masks: str | PathLike | None = None) -> Dataset:
        """See ``open_folder``; ``masks`` pairs the image folder ``path`` with a mask folder."""
        return open_folder(path, class_table, split, masks=masks, binary_mapping=binary_mapping)


FOLDER = FolderFormat()


def looks_like_folder(root: Path) -> bool:
    """Whether ``root`` has an image folder (``images/``, ``image/``, ``img/``, ``imgs/``) or image
    files directly inside it."""
    return find_image_folder(root) is not None or bool(scan_files(root))


def find_image_folder(root: Path) -> Path | None:
    """The first of ``IMAGE_FOLDER_NAMES`` that is a folder in ``root``, else ``None``."""
    return next((root / n for n in IMAGE_FOLDER_NAMES if (root / n).is_dir()), None)


def find_mask_folder(root: Path) -> Path | None:
    """The first of ``MASK_FOLDER_NAMES`` that is a folder in ``root``, else ``None``."""
    return next((root / n for n in MASK_FOLDER_NAMES if (root / n).is_dir()), None)


def open_folder(root: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
                split: str | None = None, masks: str | PathLike | None = None,
                binary_mapping: dict[int, int] | None = None) -> Dataset:
    """List a folder dataset without decoding anything.

    Parameters
    ----------
    root : path
        The dataset folder; or, when ``masks`` is given, the folder of images itself.
    class_table : ClassTable, path or None
        Overrides ``classes.json`` / ``class_names.txt``; the default is ``ClassTable.voc()``.
    split : str or None
        Read ``images/<split>/`` and the matching mask subfolders.
    masks : path or None
        An explicit mask folder paired with the image folder ``root``.
    binary_mapping : dict or None
        Maps the values of {0, 255}-only masks to class ids (e.g. ``{0: 0, 255: 1}``).

    Raises
    ------
    DatasetError
        Missing or empty image folder, missing split, duplicate image stems.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "no such folder" if not root.exists() else "not a folder")
    if masks is not None:
        images_dir, mask_dir, instance_dir = root, Path(masks), None
        if not mask_dir.is_dir():
            raise DatasetError(mask_dir, "no such mask folder")
        table_folders = [mask_dir, images_dir, images_dir.parent]
    else:
        images_dir = find_image_folder(root) or root
        mask_dir = find_mask_folder(root)
        instance_dir = root / "instances" if (root / "instances").is_dir() else None
        table_folders = [root]
    if split is not None:
        if not (images_dir / split).is_dir():
            available = ", ".join(subfolders(images_dir)) or "none"
            raise DatasetError(images_dir / split, f"no such split folder (splits found: {available})")
        images_dir = images_dir / split
        mask_dir = mask_dir / split if mask_dir is not None and (mask_dir / split).is_dir() else None
        instance_dir = (instance_dir / split
                        if instance_dir is not None and (instance_dir / split).is_dir() else None)

    unreadable: list[Path] = []
    images = files_by_stem(scan_files(images_dir, unreadable=unreadable), images_dir, unique=True)
    if not images:
        raise DatasetError(images_dir, "no images in the folder (looked for .png, .jpg, .jpeg, "
                           ".bmp, .tif, .tiff, .webp files)")
    mask_files = (files_by_stem(scan_files(mask_dir, unreadable=unreadable), mask_dir, unique=False)
                  if mask_dir else {})
    instance_files = (files_by_stem(scan_files(instance_dir, unreadable=unreadable), instance_dir,
                                    unique=False) if instance_dir else {})

    table = resolve_class_table(class_table, table_folders, ClassTable.voc)
    decoder = MaskDecoder(table, binary_mapping=binary_mapping)
    samples = [Sample(stem, images[stem], mask_files.get(stem), instance_files.get(stem), decoder)
               for stem in sorted(images, key=natural_key)]
    dataset = Dataset(root, FOLDER, table, samples, split=split)
    orphans = sorted(set(mask_files) - set(images), key=natural_key)
    if orphans:
        shown = ", ".join(mask_files[s].name for s in orphans[:5])
        more = f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""
        dataset.warnings.append(f"{len(orphans)} mask(s) in {mask_dir} have no image: {shown}{more}")
    skipped = unreadable_warning(unreadable)
    if skipped:
        dataset.warnings.append(skipped)
    return dataset
