"""``segstudio label-errors``: regions whose labels a model confidently contradicts (confident learning).

The per-pixel class probabilities come from a model (``--model SPEC``, run twice: the per-class
thresholds need the whole dataset before any image can be scored; once with ``--save-probabilities DIR``,
which keeps them on disk for the second pass) or from ``--probabilities DIR``
(``<image stem>.npy``, float16/float32, ``(C, H, W)``, summing to 1 over C). The summary goes to stdout,
a progress bar to stderr; bad input (a probability file of the wrong shape or dtype, a pickle, ...) ends
the run with one line ``segstudio label-errors: error: <path>: <reason>`` and exit code 2; images the
model fails on are left out and reported after the summary (exit code 1); Ctrl+C exits with 130.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segstudio.commands._common import (ALLOW_OUTSIDE_ROOT_HELP, EXIT_SOME_FAILED, TRUST_MODEL_HELP,
                                        guarded, print_error, print_stdout, say, trust_if_asked, write_report)
from segstudio.commands._data import CLASSES_HELP
from segstudio.commands._progress import Progress
from segstudio.commands.engines.options import add_engine_arguments, check_engine_arguments
from segstudio.core.errors import PredictionError, SegStudioError

PROG = "segstudio label-errors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``segstudio label-errors``."""
    from segstudio.core.evaluation.label_error_report import DEFAULT_MIN_AREA  # noqa: PLC0415 - numpy only
    from segstudio.core.evaluation.label_errors import DEFAULT_MIN_WIDTH  # noqa: PLC0415

    parser.add_argument("--dataset", required=True, metavar="PATH", help="dataset folder, COCO .json file or image")
    parser.add_argument("--format", default="auto", choices=["auto", "folder", "voc", "coco", "cityscapes"],
                        help="dataset layout (default: detected from the folder)")
    parser.add_argument("--split", default=None, help="dataset split (train, val ...)")
    parser.add_argument("--allow-outside-root", action="store_true", help=ALLOW_OUTSIDE_ROOT_HELP)
    parser.add_argument("--classes", metavar="NAME|FILE", default=None, help=CLASSES_HELP)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="SPEC",
                        help="model whose softmax is used: 'demo', 'torchvision:NAME', a model file or SMP folder")
    source.add_argument("--probabilities", metavar="DIR",
                        help="folder of <image name>.npy, float16/float32 (C, H, W) summing to 1 over C")
    parser.add_argument("--min-area", type=int, default=DEFAULT_MIN_AREA, metavar="N",
                        help=f"smallest region reported, in suspect pixels (default: {DEFAULT_MIN_AREA})")
    parser.add_argument("--min-width", type=int, default=DEFAULT_MIN_WIDTH, metavar="N",
                        help=f"leave out regions with no part N pixels across, such as slivers along outlines "
                             f"(default: {DEFAULT_MIN_WIDTH}; 1 keeps all)")
    parser.add_argument("--save-probabilities", metavar="DIR", default=None,
                        help="with --model: write each image's probabilities to DIR/<image>.npy (float16) on the "
                             "first pass and read them back on the second instead of running the model again; "
                             "DIR then serves --probabilities")
    parser.add_argument("--trust-model", action="store_true", help=TRUST_MODEL_HELP)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"],
                        help="inference device for --model (default: auto)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="images per forward pass (default: 1)")
    parser.add_argument("--tile", type=int, default=None, metavar="N",
                        help="tile size in pixels for --model on large images (default: whole image)")
    parser.add_argument("--report", metavar="FILE", default=None, help="write the full report to FILE.json or FILE.csv")
    add_engine_arguments(parser, stats=False,
                         shard_help="refused: the thresholds need the whole dataset (use --engine ray)")


def check_label_model(args: argparse.Namespace, dataset):
    """The registry entry of ``--model``, refused with a ``SegStudioError`` when it cannot give
    probabilities matching the dataset's classes (checked on the driver by every engine)."""
    from segstudio.inference.catalog import spec_problem  # noqa: PLC0415 - no torch

    problem = spec_problem(args.model)
    if problem is not None:
        raise SegStudioError(args.model, problem)
    from segstudio.inference.registry import resolve_model  # noqa: PLC0415

    trust_if_asked(args)
    entry = resolve_model(args.model)
    if entry.kind != "semantic":
        raise SegStudioError(args.model, "label errors need a semantic model's per-pixel probabilities")
    if entry.class_table.num_classes != dataset.class_table.num_classes:
        raise SegStudioError(args.model, f"the model has {entry.class_table.num_classes} classes, the dataset "
                                         f"{dataset.class_table.num_classes}: probabilities cannot be matched")
    return entry


class _ModelPasses:
    """``open_pass`` for ``find_label_errors``: a fresh model stream (with probabilities) per pass."""

    def __init__(self, args: argparse.Namespace, dataset):
        from segstudio.inference.runner import CancelToken, Runner  # noqa: PLC0415

        entry = check_label_model(args, dataset)
        self.runner = Runner(entry, device=args.device, tile_size=args.tile, batch_size=args.batch_size,
                             probabilities=True)
        self.dataset = dataset
        self.token = CancelToken()
        self.failures: dict[int, str] = {}
        self.streams: list = []
        self.name = f"{args.model} ({self.runner.device_name})"
        self.indices = [i for i, s in enumerate(dataset) if s.mask_path]
        self.save_dir = Path(args.save_probabilities) if args.save_probabilities else None
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        self.passes = 0

    def __call__(self):
        from segstudio.core.evaluation.label_error_report import (ProbabilityFolder,  # noqa: PLC0415
                                                                  save_probabilities)
        from segstudio.core.evaluation.report import _lookup  # noqa: PLC0415

        self.passes += 1
        if self.save_dir is not None and self.passes > 1:
            return ProbabilityFolder(self.save_dir, self.dataset.class_table.num_classes)

        stream = self.runner.predict_dataset(self.dataset, indices=self.indices, cancel=self.token,
                                             on_error=self._failed)
        self.streams.append(stream)
        lookup = _lookup(stream)

        def probabilities(index, sample, shape):
            prediction = lookup(index, sample)
            if prediction is None:
                return None
            if prediction.probabilities.shape[1:] != tuple(shape):
                raise PredictionError(sample.image_path, f"the model's output is {prediction.probabilities.shape[1:]}"
                                                         f" but the labels are {tuple(shape)}")
            if self.save_dir is not None:
                save_probabilities(self.save_dir, sample.name, prediction.probabilities)
            return prediction.probabilities

        return probabilities

    def _failed(self, index: int, exc: BaseException) -> None:
        if index not in self.failures:  # the same image fails on both passes: report it once
            self.failures[index] = str(exc) if isinstance(exc, SegStudioError) else f"{self.dataset[index].image_path}: {exc}"

    def cancel(self) -> None:
        self.token.cancel()

    def close(self) -> None:
        for stream in self.streams:
            stream.close()


def run(args: argparse.Namespace) -> int:
    """Find label errors; return the exit code (0, 1 when images failed, 2 for bad input, 130 when interrupted)."""
    from segstudio.core.evaluation.label_error_report import (ProbabilityFolder, find_label_errors,
                                                              format_label_error_summary, write_label_error_report)
    from segstudio.core.io.datasets import open_dataset

    if args.report and not args.report.lower().endswith((".json", ".csv")):
        return print_error(PROG, f"{args.report}: the report must be a .json or .csv file")
    if args.min_area < 1:
        return print_error(PROG, f"--min-area {args.min_area}: must be at least 1")
    if args.min_width < 1:
        return print_error(PROG, f"--min-width {args.min_width}: must be at least 1")
    if args.save_probabilities and args.model is None:
        return print_error(PROG, "--save-probabilities goes with --model (the probabilities to save)")
    if args.shard is not None:
        # Thresholds are a sum over the whole dataset: a shard's would differ from the full run's.
        return print_error(PROG, "--shard: label errors need the thresholds of the whole dataset before any "
                                 "image is scored, so they cannot be split; use --engine ray to spread both "
                                 "passes over workers")
    problem = check_engine_arguments(args)
    if problem is not None:
        return print_error(PROG, problem)
    bar = Progress(sys.stderr, PROG)
    opened: dict = {}

    def work():
        dataset = open_dataset(args.dataset, args.format, class_table=args.classes, split=args.split,
                               allow_outside_root=args.allow_outside_root)
        for warning in dataset.warnings:
            say(PROG, f"warning: {warning}")
        if args.engine == "ray":
            from segstudio.distributed.ray_review import label_errors_on_ray  # noqa: PLC0415
            return label_errors_on_ray(args, dataset, progress=bar)
        if args.probabilities is not None:
            folder = ProbabilityFolder(args.probabilities, dataset.class_table.num_classes)
            return find_label_errors(dataset, lambda: folder, min_area=args.min_area, min_width=args.min_width,
                                     source=str(folder.path), progress=bar), {}, 0
        model = opened["model"] = _ModelPasses(args, dataset)
        report = find_label_errors(dataset, model, min_area=args.min_area, min_width=args.min_width,
                                   source=model.name, progress=bar)
        return report, model.failures, len(model.indices)

    result = guarded(PROG, args.dataset, bar, work, lambda: opened.get("model"))
    if isinstance(result, int):
        return result
    report, failed, labelled = result
    if report["missing"]:
        say(PROG, f"warning: {len(report['missing'])} image(s) have no labels or no probabilities, "
            f"e.g. {report['missing'][0]}")
    if not report["images"]:
        return print_error(PROG, f"{args.dataset}: no image has both labels and probabilities")
    print_stdout(format_label_error_summary(report))
    code = write_report(PROG, report, args.report, write_label_error_report)
    if code is not None:
        return code
    if failed:
        for _, message in sorted(failed.items()):
            print_error(PROG, message)
        say(PROG, f"{len(failed)} of {labelled} images failed")
        return EXIT_SOME_FAILED
    return 0
