"""``segstudio evaluate``: score a folder of predictions, or a model, against a dataset.

The summary table goes to stdout, a progress bar to stderr. Bad input ends the run with one line
``segstudio evaluate: error: <path>: <reason>`` on stderr and exit code 2 (a ``--report`` that cannot be
written too, after the summary is printed); Ctrl+C cancels between images and exits with 130. With
``--model``, an image that cannot be read or that the model fails on is left out of the scores and
reported after the summary, one line each, then ``N of M images failed`` and exit code 1. A run
that scores no image at all (no ground truth, or no prediction named like an image) is bad input
too: exit 2 with what was looked for and what was found.
"""
from __future__ import annotations

import argparse
import sys

from segstudio.commands._common import (ALLOW_OUTSIDE_ROOT_HELP, EXIT_CANCELLED, EXIT_SOME_FAILED, TRUST_MODEL_HELP,
                                        ProgressBar, print_error, printable, say, trust_if_asked)
from segstudio.commands._data import (CLASSES_HELP, add_ground_truth_arguments, check_evaluated,
                                      check_ground_truth, open_ground_truth, prediction_folder)
from segstudio.core.errors import SegStudioError

PROG = "segstudio evaluate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``segstudio evaluate``."""
    parser.add_argument("--dataset", default=None, metavar="PATH",
                        help="dataset folder, COCO .json file or image (or --images/--masks)")
    parser.add_argument("--format", default="auto",
                        choices=["auto", "folder", "voc", "coco", "cityscapes"],
                        help="dataset layout (default: detected from the folder)")
    parser.add_argument("--split", default=None, help="dataset split (train, val ...)")
    parser.add_argument("--allow-outside-root", action="store_true", help=ALLOW_OUTSIDE_ROOT_HELP)
    parser.add_argument("--classes", metavar="NAME|FILE", default=None, help=CLASSES_HELP)
    add_ground_truth_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", metavar="DIR",
                        help="folder of prediction masks named like the images (index or palette PNG)")
    source.add_argument("--model", metavar="SPEC",
                        help="model to run: 'demo', 'torchvision:NAME', a model file or SMP folder")
    parser.add_argument("--trust-model", action="store_true", help=TRUST_MODEL_HELP)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"],
                        help="inference device for --model (default: auto)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="images per forward pass for --model (default: 1)")
    parser.add_argument("--tile", type=int, default=None, metavar="N",
                        help="tile size in pixels for --model on large images (default: whole image)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="--model: resize every image to W x H for the model (scores keep the image size)")
    parser.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), default=None,
                        help="--model: input mean in 0-1 units (default: model card, else ImageNet)")
    parser.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), default=None,
                        help="--model: input standard deviation in 0-1 units")
    parser.add_argument("--report", metavar="FILE", default=None,
                        help="write the full report to FILE.json or FILE.csv")
    parser.add_argument("--iou-threshold", type=float, default=0.5,
                        help="IoU for an instance match (default: 0.5)")


def _print_stdout(text: str) -> None:
    # Image names reach the table: escape their control characters line by line (and lone
    # surrogates, which would not encode); backslashreplace covers a terminal that is not UTF-8.
    text = "\n".join(printable(line) for line in text.split("\n"))
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout.write(text.encode(encoding, errors="backslashreplace").decode(encoding) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; return the exit code (0, 1 when images failed, 2 for bad input, 130 when interrupted)."""
    from segstudio.core.evaluation.report import evaluate, format_summary, write_report

    if args.report and not args.report.lower().endswith((".json", ".csv")):
        return print_error(PROG, f"{args.report}: the report must be a .json or .csv file")
    bar = ProgressBar(sys.stderr)
    token = stream = None
    failures: list[str] = []
    total = 0
    try:
        dataset = open_ground_truth(args)
        for warning in dataset.warnings:
            say(PROG, f"warning: {warning}")
        predictions = None
        if args.predictions is not None:
            check_ground_truth(dataset)
            predictions = prediction_folder(args, dataset, lambda line: say(PROG, f"warning: {line}"))
            report = evaluate(dataset, predictions, progress=bar,
                              iou_threshold=args.iou_threshold)
        else:
            stream, token, source, total = _model_predictions(args, dataset, failures)
            check_ground_truth(dataset)   # after the model is read: a bad model file is named first
            report = evaluate(dataset, stream, progress=bar, iou_threshold=args.iou_threshold,
                              source=source)
        bar.close()
        if not failures:   # images that failed are listed below, which says more
            check_evaluated(dataset, report, predictions, args.predictions or args.model)
        if report["missing_predictions"]:
            missing = report["missing_predictions"]
            say(PROG, f"warning: {len(missing)} image(s) have no prediction, e.g. {missing[0]}")
        if report["missing_ground_truth"]:
            say(PROG, f"warning: {len(report['missing_ground_truth'])} image(s) have no ground "
                f"truth and were skipped")
    except SegStudioError as exc:
        bar.close()
        return print_error(PROG, str(exc))
    except OSError as exc:
        bar.close()
        return print_error(PROG, f"{exc.filename or args.dataset or args.images}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        if token is not None:
            token.cancel()
        if stream is not None:
            stream.close()  # runs the runner's cleanup now: its loader thread stops
        bar.close()
        say(PROG, "cancelled")
        return EXIT_CANCELLED
    # The summary first: a report that cannot be written must not throw away the evaluation.
    _print_stdout(format_summary(report))
    if args.report:
        try:
            write_report(report, args.report)
        except OSError as exc:
            return print_error(PROG, f"{args.report}: cannot write the report: {exc.strerror or exc}")
    if failures:
        for message in failures:
            print_error(PROG, message)
        say(PROG, f"{len(failures)} of {total} images failed")
        return EXIT_SOME_FAILED
    return 0


def _model_predictions(args: argparse.Namespace, dataset, failures: list[str]):
    """Run ``--model`` over the samples that have ground truth, lazily, as ``(index, prediction)``;
    an image that fails is skipped and its error line added to ``failures``."""
    from segstudio.core.io.classes import describe_table_mismatch
    from segstudio.inference.registry import resolve_model
    from segstudio.inference.runner import CancelToken, Runner

    trust_if_asked(args)
    entry = resolve_model(args.model, **_preprocessing(args))
    mismatch = describe_table_mismatch(dataset.class_table, entry.class_table, "ground truth",
                                       f"model {args.model}")
    if mismatch:
        say(PROG, f"warning: {mismatch}")
    runner = Runner(entry, device=args.device, tile_size=args.tile, batch_size=args.batch_size)
    token = CancelToken()
    indices = [i for i, s in enumerate(dataset) if s.mask_path or s.instance_path]
    predictions = runner.predict_dataset(dataset, indices=indices, cancel=token,
                                         on_error=lambda index, exc: failures.append(_failure_line(dataset, index, exc)))
    return predictions, token, f"{args.model} ({runner.device_name})", len(indices)


def _preprocessing(args: argparse.Namespace) -> dict:
    """``--input-size``, ``--mean``, ``--std`` as model-card overrides (as ``predict`` takes them)."""
    if args.input_size is not None and min(args.input_size) < 1:
        raise SegStudioError(None, f"--input-size: {args.input_size}: must be positive")
    overrides = {"input_size": tuple(args.input_size) if args.input_size else None,
                 "mean": args.mean, "std": args.std}
    return {k: v for k, v in overrides.items() if v is not None}


def _failure_line(dataset, index: int, exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SegStudioError) else f"{dataset[index].image_path}: {exc}"
