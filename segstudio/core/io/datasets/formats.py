"""``DatasetFormat``: everything that differs between dataset layouts, in one object per layout.

A format detects its layout from names, opens it as a ``Dataset`` (whose samples carry the format's
``MaskDecoder``, the decode part), and decides how corrected labels are written back: which encoding
(``output_kind``), to which file (``destination``) and whether a saved correction can be read back
per sample (``saved_labels``). Callers ask ``dataset.kind`` instead of comparing ``dataset.format``
with a name, so a rule of one format lives in one class (folder, voc, coco, cityscapes, image
modules) and the registry in ``segstudio.core.io.datasets`` lists them.

The defaults here serve formats whose ground truth is one mask file per image (folder, VOC, a lone
image); Cityscapes and COCO override what differs.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from segstudio.core.io.classes import ClassTable
from segstudio.core.io.masks import InstanceMask
from segstudio.core.io.saving import confine_destination, corrected_dir, mask_file_kind, write_mask_png

if TYPE_CHECKING:
    from segstudio.core.io.datasets.base import Dataset, Sample

__all__ = ["DatasetFormat"]


class DatasetFormat(ABC):
    """One dataset layout: detection, opening, and where and how corrected labels are written.

    Instances are stateless singletons (``FOLDER``, ``VOC``, ``COCO``, ``CITYSCAPES``, ``IMAGE``);
    compare them with ``is``.

    Attributes
    ----------
    name : str
        The layout's name as ``open_dataset(format=...)`` takes it and reports show it.
    ground_truth_layout : str
        Where the layout keeps its ground truth, in words.
    """

    name: ClassVar[str]
    ground_truth_layout: ClassVar[str] = "one mask file per image"
    """Where this layout keeps its ground truth, in words: what an evaluation that found none says
    it looked for."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # --- reading ---------------------------------------------------------------------------------
    @abstractmethod
    def detect(self, path: Path) -> bool:
        """Whether ``path`` (an existing file or a non-empty folder) has this layout, from names only.

        Nothing is opened; the registry asks the formats in order and takes the first ``True``.
        """

    @abstractmethod
    def open(self, path: str | PathLike, class_table: ClassTable | str | PathLike | None = None,
             split: str | None = None, *, binary_mapping: dict[int, int] | None = None) -> Dataset:
        """List the dataset at ``path`` without decoding anything (see ``open_dataset``).

        Raises
        ------
        DatasetError
            The path does not hold this layout, or an unknown split; the message names the path.
        """

    # --- writing corrected labels ----------------------------------------------------------------
    def source_file(self, sample: Sample) -> Path | None:
        """The annotation file a correction of ``sample`` replaces (``None``: it has none yet)."""
        return Path(sample.mask_path) if sample.mask_path is not None else None

    def new_file_name(self, sample: Sample) -> str:
        """File name of a correction of ``sample`` when it has no annotation file to mirror."""
        return f"{sample.name}.png"

    def destination(self, dataset: Dataset, sample: Sample, output_dir: str | PathLike | None = None,
                    *, overwrite: bool = False) -> Path:
        """Where the corrected labels of ``sample`` are written.

        Parameters
        ----------
        output_dir : path or None
            Output folder; default ``corrected_dir(dataset)``. The annotation file's path inside
            the dataset is mirrored under it; without one, ``new_file_name`` is used.
        overwrite : bool
            Write over the annotation file itself (when the sample has one).

        Raises
        ------
        ValueError
            Without ``overwrite``, the destination would be the annotation file itself.
        """
        source = self.source_file(sample)
        if overwrite and source is not None:
            return source
        out = Path(output_dir) if output_dir is not None else corrected_dir(dataset)
        if source is None:
            return out / self.new_file_name(sample)
        root = Path(dataset.root)
        root = root if root.is_dir() else root.parent
        try:
            rel = source.resolve().relative_to(root.resolve())
        except ValueError:
            rel = Path(source.name)
        dest = out / rel
        if dest.resolve() == source.resolve():
            raise ValueError(f"{dest}: output would overwrite the original; pass overwrite=True "
                             "to do that")
        return dest

    def saved_labels(self, dataset: Dataset, sample: Sample, output_dir: str | PathLike | None = None,
                     *, overwrite: bool = False) -> Path | None:
        """The file holding ``sample``'s saved correction, for reopening it on those labels.

        The path is returned whether or not a correction was saved yet (callers check that it is a
        file); ``None`` when corrections of this format cannot be read back per sample or the
        destination is refused (see ``destination``).

        Raises
        ------
        OutsideRootError
            A symbolic link leads the path out of its folder (``saving.confine_destination``):
            labels are never read from outside the dataset or the output folder.
        """
        try:
            dest = self.destination(dataset, sample, output_dir, overwrite=overwrite)
        except ValueError:
            return None
        return confine_destination(dataset, dest, output_dir)

    def output_kind(self, dataset: Dataset, sample: Sample) -> str:
        """The encoding a correction of ``sample`` is written in: the annotation file's own
        (``'palette'``, ``'index'`` or ``'colour'``), ``'palette'`` when it has none.

        Raises
        ------
        MaskReadError
            The annotation file cannot be read.
        """
        source = self.source_file(sample)
        return "palette" if source is None else mask_file_kind(source)

    def write(self, dataset: Dataset, sample: Sample, labels: np.ndarray, dest: Path, *,
              output_kind: str, instances: InstanceMask | None = None) -> None:
        """Write ``labels`` (HxW class ids as edited) for ``sample`` to ``dest``, atomically.

        ``output_kind`` is what ``output_kind`` returned (asked first, so an unreadable annotation
        fails before anything is written); ``instances`` is used by formats that store them.
        """
        write_mask_png(dest, labels, output_kind, self.source_file(sample), dataset.class_table)
