"""What the commands share about reading ground truth and prediction folders: the flags that name
the folders explicitly (``--images DIR --masks DIR``), how {0, 255} masks read
(``--binary-mapping``, ``--pred-binary-mapping``), built-in class tables by name (``--classes voc``),
the warning when two class tables disagree, and the error when nothing was evaluated."""
from __future__ import annotations

import argparse

__all__ = ["add_ground_truth_arguments", "binary_mapping_arg", "check_ground_truth",
           "check_evaluated", "open_ground_truth", "prediction_folder", "CLASSES_HELP"]

CLASSES_HELP = ("class table: a built-in name (voc, cityscapes, coco) or a file (classes.json, "
                "class_names.txt); an existing file of that name wins")


def binary_mapping_arg(text: str) -> dict[int, int]:
    """argparse type of ``--binary-mapping``: ``255:1`` -> ``{0: 0, 255: 1}``."""
    from segstudio.core.io.binary_masks import parse_binary_mapping  # noqa: PLC0415

    try:
        return parse_binary_mapping(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def add_ground_truth_arguments(parser: argparse.ArgumentParser, predictions: bool = True) -> None:
    """``--images``/``--masks`` (instead of ``--dataset``), ``--binary-mapping`` and, with
    ``predictions``, ``--pred-binary-mapping``."""
    parser.add_argument("--images", metavar="DIR", default=None,
                        help="folder of images, paired with --masks by file name (instead of --dataset)")
    parser.add_argument("--masks", metavar="DIR", default=None,
                        help="folder of ground-truth masks named like the --images files")
    parser.add_argument("--binary-mapping", metavar="V:C[,V:C]", type=binary_mapping_arg, default=None,
                        help="read ground-truth masks holding only 0 and 255: '255:1' for "
                             "background/foreground, '255:255' if 255 means ignore (0 maps to 0 "
                             "unless given)")
    if predictions:
        parser.add_argument("--pred-binary-mapping", metavar="V:C[,V:C]", type=binary_mapping_arg,
                            default=None, help="the same for the --predictions masks")


def open_ground_truth(args: argparse.Namespace):
    """Open the dataset ``--dataset`` or ``--images``/``--masks`` name.

    Raises
    ------
    SegStudioError
        Neither or both given, ``--masks`` without ``--images``, or the dataset cannot be opened.
    """
    from segstudio.core.errors import DatasetError  # noqa: PLC0415
    from segstudio.core.io.datasets import open_dataset  # noqa: PLC0415

    dataset_path = getattr(args, "dataset", None)
    images, masks = getattr(args, "images", None), getattr(args, "masks", None)
    if masks is not None and images is None:
        raise DatasetError(masks, "--masks needs --images, the folder of the images it annotates")
    if dataset_path is not None and images is not None:
        raise DatasetError(images, "give --dataset or --images/--masks, not both")
    if dataset_path is None and images is None:
        raise DatasetError(None, "no ground truth: pass --dataset PATH, or --images DIR --masks DIR")
    return open_dataset(dataset_path or images, getattr(args, "format", "auto"),
                        class_table=getattr(args, "classes", None), split=getattr(args, "split", None),
                        masks=masks, binary_mapping=getattr(args, "binary_mapping", None),
                        allow_outside_root=getattr(args, "allow_outside_root", False))


def check_ground_truth(dataset) -> None:
    """Raise ``DatasetError`` when no sample has ground truth: nothing could be evaluated."""
    from segstudio.core.errors import DatasetError  # noqa: PLC0415
    from segstudio.core.io.datasets.diagnose import missing_ground_truth  # noqa: PLC0415

    line = missing_ground_truth(dataset)
    if line is not None:
        raise DatasetError(None, line)


def prediction_folder(args: argparse.Namespace, dataset, warn):
    """The ``--predictions`` folder, read with ``--pred-binary-mapping``; ``warn(line)`` is told when
    the folder's own class table (``classes.json`` / ``class_names.txt`` in it) differs from the
    dataset's."""
    from pathlib import Path  # noqa: PLC0415

    from segstudio.core.evaluation.report import PredictionFolder  # noqa: PLC0415
    from segstudio.core.io.classes import describe_table_mismatch  # noqa: PLC0415
    from segstudio.core.io.datasets.base import find_class_table  # noqa: PLC0415

    folder = PredictionFolder(args.predictions, dataset.class_table,
                              binary_mapping=getattr(args, "pred_binary_mapping", None))
    own = find_class_table(Path(args.predictions))
    if own is not None:
        line = describe_table_mismatch(dataset.class_table, own, "ground truth", "predictions")
        if line:
            warn(line)
    return _PredFlagFolder(folder)


class _PredFlagFolder:
    """A ``PredictionFolder`` whose binary-mask refusal names ``--pred-binary-mapping``."""

    def __init__(self, folder):
        self._folder = folder
        self.path, self.files = folder.path, folder.files

    def __call__(self, sample):
        from segstudio.core.errors import BinaryMaskError  # noqa: PLC0415

        try:
            return self._folder(sample)
        except BinaryMaskError as exc:
            raise BinaryMaskError(exc.path, "--pred-binary-mapping") from None


def check_evaluated(dataset, report: dict, predictions=None, source: str = "") -> None:
    """Raise ``DatasetError`` when ``report`` scored no image (see ``diagnose.nothing_evaluated``)."""
    from segstudio.core.errors import DatasetError  # noqa: PLC0415
    from segstudio.core.io.datasets.diagnose import nothing_evaluated  # noqa: PLC0415

    names = list(predictions.files) if predictions is not None and hasattr(predictions, "files") else None
    line = nothing_evaluated(dataset, report, names, source)
    if line is not None:
        raise DatasetError(None, line)
