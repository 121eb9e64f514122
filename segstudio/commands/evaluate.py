"""``segstudio evaluate``: score a folder of predictions, or a model, against a dataset.

The summary table goes to stdout, a progress bar to stderr. Bad input ends the run with one line
``segstudio evaluate: error: <path>: <reason>`` on stderr and exit code 2 (a ``--report`` that cannot be
written too, after the summary is printed); Ctrl+C cancels between images and exits with 130. With
``--model``, an image that cannot be read or that the model fails on is left out of the scores and
reported after the summary, one line each, then ``N of M images failed`` and exit code 1. A run
that scores no image at all (no ground truth, or no prediction named like an image) is bad input
too: exit 2 with what was looked for and what was found.

``--engine ray`` runs the same per-image scoring on Ray workers (``segstudio.distributed``) and gives
the same report bit for bit; ``--shard i/N`` evaluates one part of the dataset for a job array
(``segstudio merge-reports`` adds the parts up exactly); ``--stats`` writes per-image Parquet.
"""
from __future__ import annotations

import argparse
import sys

from segstudio.commands._common import (ALLOW_OUTSIDE_ROOT_HELP, EXIT_CANCELLED, EXIT_SOME_FAILED, TRUST_MODEL_HELP,
                                        print_error, print_stdout, say, trust_if_asked, write_report)
from segstudio.commands._data import (CLASSES_HELP, add_ground_truth_arguments, check_evaluated,
                                      check_ground_truth, open_ground_truth, prediction_folder)
from segstudio.commands._progress import Progress
from segstudio.commands.engines.options import (add_engine_arguments, check_engine_arguments, parse_shard,
                                                shard_dataset, write_stats_or_error)
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
    source = parser.add_mutually_exclusive_group()
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
    parser.add_argument("--per-image-confusion", action="store_true",
                        help="keep each image's confusion matrix in the JSON report (and --stats)")
    parser.add_argument("--instance-predictions", metavar="DIR|FILE.json", default=None,
                        help="instance predictions: a folder of <name>.png instance ids + <name>.json "
                        "classes/scores, or a COCO results JSON (RLE); scored as TP/FP/FN and PQ")
    parser.add_argument("--instance-score-threshold", type=float, default=0.0, metavar="S",
                        help="drop --instance-predictions scoring below S (default: keep all)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; return the exit code (0, 1 when images failed, 2 for bad input, 130 when interrupted)."""
    from segstudio.core.evaluation.report import evaluate, format_summary, write_report as write_json_or_csv

    if args.report and not args.report.lower().endswith((".json", ".csv")):
        return print_error(PROG, f"{args.report}: the report must be a .json or .csv file")
    if args.predictions is None and args.model is None and args.instance_predictions is None:
        return print_error(PROG, "nothing to evaluate: give --predictions DIR, --model SPEC or "
                           "--instance-predictions DIR|FILE.json")
    problem = check_engine_arguments(args)
    if problem:
        return print_error(PROG, problem)
    bar = Progress(sys.stderr, PROG)
    token = stream = None
    failures: list[str] = []
    failed: list[tuple[str, str]] = []
    total = 0
    try:
        dataset = open_ground_truth(args)
        for warning in dataset.warnings:
            say(PROG, f"warning: {warning}")
        dataset = shard_dataset(dataset, parse_shard(args.shard))
        predictions = None
        if args.engine == "ray":
            from segstudio.distributed.ray_engine import evaluate_on_ray  # noqa: PLC0415

            check_ground_truth(dataset)
            total = sum(1 for s in dataset if s.mask_path or s.instance_path)
            report = evaluate_on_ray(args, dataset, progress=bar, failures=failures,
                                     warn=lambda m: say(PROG, f"warning: {m}"))
        elif args.model is None:
            check_ground_truth(dataset)
            if args.predictions is not None:
                predictions = prediction_folder(args, dataset, lambda line: say(PROG, f"warning: {line}"))
            report = evaluate(dataset, predictions, progress=bar, iou_threshold=args.iou_threshold,
                              instance_predictions=_instance_source(args, dataset),
                              per_image_confusion=args.per_image_confusion, source=_source_name(args))
        else:
            stream, token, source, total = _model_predictions(args, dataset, failures, failed)
            check_ground_truth(dataset)   # after the model is read: a bad model file is named first
            report = evaluate(dataset, stream, progress=bar, iou_threshold=args.iou_threshold,
                              source=source, per_image_confusion=args.per_image_confusion,
                              failures=failed, instance_predictions=_instance_source(args, dataset))
        if args.shard:
            report["settings"]["shard"] = args.shard
        bar.close()
        if not failures:   # images that failed are listed below, which says more
            check_evaluated(dataset, report, predictions,
                            args.predictions or args.model or args.instance_predictions)
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
    print_stdout(format_summary(report))
    code = write_report(PROG, report, args.report, write_json_or_csv)
    if code is not None:
        return code
    if args.stats and write_stats_or_error(PROG, report, args.stats):
        return 2
    if failures:
        for message in failures:
            print_error(PROG, message)
        say(PROG, f"{len(failures)} of {total} images failed")
        return EXIT_SOME_FAILED
    return 0


def _source_name(args: argparse.Namespace) -> str:
    return args.predictions if args.predictions is not None else args.instance_predictions


def _instance_source(args: argparse.Namespace, dataset):
    """``--instance-predictions`` opened for ``dataset``, or ``None``."""
    if args.instance_predictions is None:
        return None
    from segstudio.core.evaluation.instance_predictions import open_instance_predictions  # noqa: PLC0415

    return open_instance_predictions(args.instance_predictions, dataset, args.instance_score_threshold)


def _model_predictions(args: argparse.Namespace, dataset, failures: list[str],
                       failed: list[tuple[str, str]] | None = None):
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
                                         on_error=lambda index, exc: _record_failure(dataset, index, exc,
                                                                                     failures, failed))
    return predictions, token, f"{args.model} ({runner.device_name})", len(indices)


def _preprocessing(args: argparse.Namespace) -> dict:
    """``--input-size``, ``--mean``, ``--std`` as model-card overrides (as ``predict`` takes them)."""
    if args.input_size is not None and min(args.input_size) < 1:
        raise SegStudioError(None, f"--input-size: {args.input_size}: must be positive")
    overrides = {"input_size": tuple(args.input_size) if args.input_size else None,
                 "mean": args.mean, "std": args.std}
    return {k: v for k, v in overrides.items() if v is not None}


def _record_failure(dataset, index: int, exc: BaseException, failures: list[str],
                    failed: list[tuple[str, str]] | None) -> None:
    failures.append(_failure_line(dataset, index, exc))
    if failed is not None:
        failed.append((dataset[index].name, getattr(exc, "reason", None) or str(exc)))


def _failure_line(dataset, index: int, exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SegStudioError) else f"{dataset[index].image_path}: {exc}"
