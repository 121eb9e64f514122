"""What every dataset format shares: ``Sample``, ``Dataset``, the mask decoder and folder scanning.

Listing a dataset only walks directories with ``os.scandir``; no pixel is decoded and no image header
is read until a sample's ``load_*`` method is called. A format (a ``DatasetFormat`` in the ``folder``,
``voc``, ``coco``, ``cityscapes`` and ``image`` modules) turns a path into a list of samples and a
``MaskDecoder`` that knows that format's rules for turning annotation files into class ids and
instances.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence, overload

import numpy as np

from segstudio.core.io.classes import ClassTable, class_table_from_spec
from segstudio.core.errors import BinaryMaskError, DatasetError, MaskSizeMismatch
from segstudio.core.io.images import image_size, read_image
from segstudio.core.io.masks import InstanceMask, read_instance_mask, read_semantic_mask

if TYPE_CHECKING:
    from segstudio.core.io.datasets.formats import DatasetFormat

__all__ = [
    "IMAGE_EXTENSIONS",
    "Sample",
    "Dataset",
    "MaskDecoder",
    "load_class_table",
    "resolve_class_table",
    "scan_files",
    "natural_key",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
"""File suffixes (lower case) treated as images or masks when a folder is listed."""


@dataclass(eq=False)
class Sample:
    """One image of a dataset and where its annotations live.

    Nothing is read when a sample is made; every ``load_*`` call reads the files afresh.

    Attributes
    ----------
    name : str
        File stem, unique within the dataset (Cityscapes: without the ``_leftImg8bit`` suffix).
    image_path : Path
        The image file.
    mask_path : Path or None
        Semantic ground truth. For COCO it is the annotation JSON (shared by all samples), so write
        corrections through the dataset's format (``Dataset.kind``), never straight to this path.
    instance_path : Path or None
        Instance ground truth (COCO: the annotation JSON too).
    decoder : MaskDecoder or None
        The dataset's rules for decoding the annotation files; ``None`` means no ground truth.
    """

    name: str
    image_path: Path
    mask_path: Path | None = None
    instance_path: Path | None = None
    decoder: "MaskDecoder | None" = field(default=None, repr=False)
    # ((mtime_ns, size, inode) of the image file, (height, width)): the last header read, reused
    # while the file is unchanged (every mask read checks its size against the image's).
    _shape: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def load_image(self) -> np.ndarray:
        """Decode the image (see ``segstudio.core.io.images.read_image``).

        Raises
        ------
        ImageReadError
            Missing, unreadable or corrupt image; ``ImageTooLargeError`` beyond the pixel limit.
        """
        return read_image(self.image_path)

    def image_shape(self) -> tuple[int, int]:
        """``(height, width)`` of the image, read from its header only (again when the file changed)."""
        try:
            st = os.stat(self.image_path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp is not None and self._shape is not None and self._shape[0] == stamp:
            return self._shape[1]
        width, height = image_size(self.image_path)
        if stamp is not None:
            self._shape = (stamp, (height, width))
        return height, width

    def load_mask(self) -> np.ndarray | None:
        """The semantic ground truth as class ids, or ``None`` when the sample has none.

        Returns
        -------
        numpy.ndarray or None
            HxW uint8 (uint16 for tables of more than 255 classes); the table's ignore index marks
            unlabelled pixels.

        Raises
        ------
        MaskReadError
            Corrupt mask, unknown colours, class ids beyond the table; ``MaskSizeMismatch`` when the
            mask's size differs from the image header's.
        """
        if self.decoder is None:
            return None
        return self.decoder.load_mask(self)

    def load_instances(self) -> InstanceMask | None:
        """The instance ground truth, or ``None`` when the sample has none.

        Raises
        ------
        MaskReadError
            As for ``load_mask``.
        """
        if self.decoder is None:
            return None
        return self.decoder.load_instances(self)


class Dataset(Sequence[Sample]):
    """An ordered, immutable list of samples with the class table their masks are decoded with.

    Parameters
    ----------
    root : path
        The folder (or annotation file) the dataset was opened from.
    kind : DatasetFormat or str
        The dataset's format (``FOLDER``, ``VOC``, ``COCO``, ``CITYSCAPES``, ``IMAGE``), or its name.
    class_table : ClassTable
        Classes of the ground truth.
    samples : iterable of Sample
        Names must be unique.
    split : str or None
        The split that was selected, if any.

    Attributes
    ----------
    kind : DatasetFormat
        The format: it decides where and how corrected labels are written.
    warnings : list of str
        Things noticed while listing that are not errors (masks without an image ...).

    Raises
    ------
    DatasetError
        Two samples share a name, or ``kind`` names no format.
    """

    def __init__(self, root: str | PathLike, kind: DatasetFormat | str, class_table: ClassTable,
                 samples: Iterable[Sample], split: str | None = None):
        self.root = Path(root)
        if isinstance(kind, str):
            from segstudio.core.io.datasets import find_format

            found = find_format(kind)
            if found is None:
                raise DatasetError(self.root, f"unknown dataset format '{kind}'")
            kind = found
        self.kind = kind
        self.class_table = class_table
        self.split = split
        self.warnings: list[str] = []
        self.samples: list[Sample] = list(samples)
        self._index: dict[str, int] = {}
        for i, sample in enumerate(self.samples):
            if sample.name in self._index:
                other = self.samples[self._index[sample.name]]
                raise DatasetError(self.root, f"two images share the name '{sample.name}': "
                                   f"{other.image_path.name} and {sample.image_path.name}")
            self._index[sample.name] = i

    @property
    def format(self) -> str:
        """The format's name (``dataset.kind.name``), as reports show it."""
        return self.kind.name

    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index):
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __repr__(self) -> str:
        split = f", split={self.split!r}" if self.split else ""
        return (f"Dataset({str(self.root)!r}, format={self.format!r}, {len(self)} samples, "
                f"{self.class_table!r}{split})")

    def index_of(self, name: str) -> int:
        """Position of the sample called ``name``.

        Raises
        ------
        KeyError
            No sample has that name.
        """
        return self._index[name]

    @property
    def has_ground_truth(self) -> bool:
        """Whether at least one sample has a semantic or instance annotation."""
        return any(s.decoder is not None and (s.mask_path or s.instance_path) for s in self.samples)


class MaskDecoder:
    """Decodes a sample's annotation files with one dataset's rules.

    The base class serves the folder and VOC formats: semantic masks go through
    ``read_semantic_mask``, instance masks through ``read_instance_mask``.

    Parameters
    ----------
    class_table : ClassTable
        Classes of the ground truth.
    binary_mapping : dict or None
        Passed to ``read_semantic_mask`` for masks holding only 0 and 255.
    label_map : numpy.ndarray or None
        Passed to ``read_semantic_mask`` to remap raw values (Cityscapes labelIds).
    instance_format : str
        How ``read_instance_mask`` reads instance files: ``'ids'`` (every non-zero value is an
        instance) or ``'voc'`` (255 marks the void border).
    """

    def __init__(self, class_table: ClassTable, binary_mapping: dict[int, int] | None = None,
                 label_map: np.ndarray | None = None, instance_format: str = "ids"):
        self.class_table = class_table
        self.binary_mapping = binary_mapping
        self.label_map = label_map
        self.instance_format = instance_format
        self.binary_option = "--binary-mapping"
        """How the user answers a {0, 255} mask's refusal where it is met (a CLI flag, or the GUI's
        words for its dialog); named in the ``BinaryMaskError``."""

    def load_mask(self, sample: Sample) -> np.ndarray | None:
        """Semantic class ids of ``sample`` (see ``Sample.load_mask``)."""
        if sample.mask_path is None:
            return None
        try:
            return read_semantic_mask(sample.mask_path, self.class_table,
                                      expected_shape=sample.image_shape(),
                                      binary_mapping=self.binary_mapping, label_map=self.label_map)
        except BinaryMaskError as exc:
            if exc.option == self.binary_option:
                raise
            raise BinaryMaskError(exc.path, self.binary_option) from None

    def load_instances(self, sample: Sample) -> InstanceMask | None:
        """Instances of ``sample`` (see ``Sample.load_instances``).

        Each instance takes the majority class of the semantic mask under it (the ignore index when
        it lies on ignored pixels only); without a semantic mask, class 1.
        """
        if sample.instance_path is None:
            return None
        table = self.class_table
        return read_instance_mask(sample.instance_path, self.load_mask(sample),
                                  format=self.instance_format, expected_shape=sample.image_shape(),
                                  ignore_index=table.ignore_index,
                                  default_class=1 if table.num_classes > 1 else 0)


def check_shape(path: Path, shape: tuple[int, ...], expected: tuple[int, int]) -> None:
    """Raise ``MaskSizeMismatch`` naming ``path`` when ``shape[:2]`` differs from ``expected``."""
    if tuple(shape[:2]) != tuple(expected):
        raise MaskSizeMismatch(path, f"mask is {shape[1]}x{shape[0]} but its image is "
                               f"{expected[1]}x{expected[0]} (width x height)")


def load_class_table(path: str | PathLike) -> ClassTable:
    """Read a class table from a JSON table (``.json``) or a ``class_names.txt`` list.

    Raises
    ------
    ClassTableError
        Unreadable or malformed file, naming it.
    """
    if os.fspath(path).lower().endswith(".json"):
        return ClassTable.load(path)
    return ClassTable.from_names_txt(path)


def resolve_class_table(class_table: ClassTable | str | PathLike | None, folders: Sequence[Path],
                        default: Callable[[], ClassTable]) -> ClassTable:
    """The table to decode a dataset with.

    ``class_table`` itself when it is a table, the file it names when it is a path, the built-in
    table it names (``voc``, ``cityscapes``, ``coco``; see ``class_table_from_spec``), else the first
    ``classes.json`` / ``class_names.txt`` in ``folders``, else ``default()``.
    """
    if class_table is not None:
        return class_table_from_spec(class_table)
    return find_class_table(*folders) or default()


def find_class_table(*folders: Path) -> ClassTable | None:
    """The first ``classes.json`` or ``class_names.txt`` found in ``folders``, else ``None``."""
    for folder in folders:
        for name in ("classes.json", "class_names.txt"):
            candidate = folder / name
            if candidate.is_file():
                return load_class_table(candidate)
    return None


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key putting ``img2`` before ``img10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower())
                 for part in _DIGITS.split(name) if part)


def scan_files(folder: Path, suffixes: frozenset[str] = IMAGE_EXTENSIONS,
               unreadable: list[Path] | None = None) -> list[os.DirEntry]:
    """Regular files of ``folder`` (not recursive) whose lower-cased suffix is in ``suffixes``.

    Hidden files (leading dot) are skipped. Only ``os.scandir`` is used: nothing is opened. An
    entry that cannot even be stat'ed (a symbolic link to itself) is skipped and, when
    ``unreadable`` is given, appended to it, rather than refusing the whole folder.

    Raises
    ------
    DatasetError
        The folder cannot be listed.
    """
    def is_file(entry: os.DirEntry) -> bool:
        try:
            return entry.is_file()
        except OSError:
            if unreadable is not None:
                unreadable.append(Path(entry.path))
            return False

    try:
        with os.scandir(folder) as it:
            return [e for e in it if not e.name.startswith(".")
                    and os.path.splitext(e.name)[1].lower() in suffixes and is_file(e)]
    except FileNotFoundError:
        raise DatasetError(folder, "no such folder") from None
    except NotADirectoryError:
        raise DatasetError(folder, "not a folder") from None
    except OSError as exc:
        raise DatasetError(folder, f"cannot list the folder: {exc.strerror or exc}") from None


def unreadable_warning(unreadable: list[Path]) -> str | None:
    """The ``Dataset.warnings`` line for the entries ``scan_files`` skipped, or ``None``."""
    if not unreadable:
        return None
    shown = ", ".join(str(p) for p in unreadable[:5])
    more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
    return (f"skipped {len(unreadable)} file(s) that cannot be read (a symbolic link loop?): "
            f"{shown}{more}")


def subfolders(folder: Path) -> list[str]:
    """Names of the non-hidden subfolders of ``folder``, naturally sorted ([] if unreadable)."""
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []
    return sorted(names, key=natural_key)


def files_by_stem(entries: Iterable[os.DirEntry], folder: Path, unique: bool) -> dict[str, Path]:
    """Map file stem -> path.

    Parameters
    ----------
    unique : bool
        When true (images) two files with one stem raise ``DatasetError``; when false (masks) a
        ``.png`` wins over other suffixes, else the first name in sorted order.
    """
    by_stem: dict[str, os.DirEntry] = {}
    for entry in sorted(entries, key=lambda e: e.name):
        stem, suffix = os.path.splitext(entry.name)
        previous = by_stem.get(stem)
        if previous is None:
            by_stem[stem] = entry
        elif unique:
            raise DatasetError(folder, f"two images share the name '{stem}': {previous.name} and "
                               f"{entry.name}; rename one so that sample names stay unique")
        elif suffix.lower() == ".png" and not previous.name.lower().endswith(".png"):
            by_stem[stem] = entry
    return {stem: folder / entry.name for stem, entry in by_stem.items()}
