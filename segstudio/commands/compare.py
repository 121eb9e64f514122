"""``segstudio compare``: model A vs model B on one dataset, or one model against original vs corrected labels.

A source (``--a``, ``--b``) is a predictions folder or a model spec (``demo``, ``torchvision:NAME``, a model
file, an SMP folder); ``folder:PATH`` and ``model:SPEC`` say which when a name could be either (a folder
holding ``config.json`` is taken for an SMP model). With ``--a labels:original --b labels:corrected`` the
two sources are versions of the labels instead, and ``--model SPEC`` or ``--predictions DIR`` is the one
prediction scored against both: how much of the model's "error" the label corrections removed.

The summary goes to stdout, a progress bar to stderr. Bad input ends the run with one line
``segstudio compare: error: <path>: <reason>`` on stderr and exit code 2; images a model fails on are
left out and reported after the summary (exit code 1); Ctrl+C exits with 130.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segstudio.commands._common import (ALLOW_OUTSIDE_ROOT_HELP, EXIT_SOME_FAILED, TRUST_MODEL_HELP,
                                        guarded, print_error, print_stdout, say, write_report)
from segstudio.commands._data import CLASSES_HELP
from segstudio.commands._progress import Progress
from segstudio.commands.engines.options import (add_engine_arguments, check_engine_arguments, parse_shard,
                                                shard_dataset)
from segstudio.core.errors import SegStudioError

PROG = "segstudio compare"
LABEL_VERSIONS = ("original", "corrected")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``segstudio compare``."""
    parser.add_argument("--dataset", required=True, metavar="PATH", help="dataset folder, COCO .json file or image")
    parser.add_argument("--format", default="auto", choices=["auto", "folder", "voc", "coco", "cityscapes"],
                        help="dataset layout (default: detected from the folder)")
    parser.add_argument("--split", default=None, help="dataset split (train, val ...)")
    parser.add_argument("--allow-outside-root", action="store_true", help=ALLOW_OUTSIDE_ROOT_HELP)
    parser.add_argument("--classes", metavar="NAME|FILE", default=None, help=CLASSES_HELP)
    parser.add_argument("--a", required=True, metavar="SRC",
                        help="source A: predictions folder, model spec, or labels:original / labels:corrected")
    parser.add_argument("--b", required=True, metavar="SRC", help="source B (Δ = B - A), as --a")
    scored = parser.add_mutually_exclusive_group()
    scored.add_argument("--model", metavar="SPEC", help="with labels: sources, the model scored against both")
    scored.add_argument("--predictions", metavar="DIR",
                        help="with labels: sources, the predictions folder scored against both")
    parser.add_argument("--corrections", metavar="DIR", default=None,
                        help="where labels:corrected are read (default: <dataset>/corrected, as saved by the app)")
    parser.add_argument("--trust-model", action="store_true", help=TRUST_MODEL_HELP)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"],
                        help="inference device for models (default: auto)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="images per forward pass (default: 1)")
    parser.add_argument("--tile", type=int, default=None, metavar="N",
                        help="tile size in pixels for models on large images (default: whole image)")
    parser.add_argument("--resamples", type=int, default=1000, metavar="N",
                        help="paired bootstrap resamples over images (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--report", metavar="FILE", default=None, help="write the full report to FILE.json or FILE.csv")
    add_engine_arguments(parser, stats=False,
                         shard_help="only the i-th of N parts of the dataset sorted by name (i from 0); compare reports are not merged")


EXPLICIT_PREFIXES = {"folder:": "predictions", "model:": "model"}


def parse_source(text: str) -> tuple[str, str]:
    """``(kind, value)`` of a source: ``("labels", version)``, ``("predictions", folder)`` or ``("model", spec)``.

    Raises
    ------
    ValueError
        An unknown label version, or an empty spec.
    """
    prefix, sep, rest = text.partition(":")
    if sep and prefix == "labels":
        if rest not in LABEL_VERSIONS:
            raise ValueError(f"{text}: unknown label version, use labels:original or labels:corrected")
        return "labels", rest
    kind = EXPLICIT_PREFIXES.get(prefix + sep)
    if kind is not None:
        if not rest:
            raise ValueError(f"{text}: empty {prefix}")
        return kind, rest
    path = Path(text)
    if path.is_dir() and not (path / "config.json").is_file():
        return "predictions", text
    return "model", text


class _Models:
    """The runners started for model sources, their cancel token and the images they failed on."""

    def __init__(self, args: argparse.Namespace, dataset):
        self.args = args
        self.dataset = dataset
        self.failures: list[str] = []
        self.streams: list = []
        self.token = None
        self.total = 0

    def check_spec(self, spec: str) -> None:
        from segstudio.inference.catalog import spec_problem  # noqa: PLC0415 - no torch

        problem = spec_problem(spec)
        if problem is not None:
            raise SegStudioError(spec, problem)

    def stream(self, spec: str):
        """``(index, prediction)`` pairs of ``spec`` over the samples with labels, lazily."""
        from segstudio.inference.model_trust import needs_trust, trust_file  # noqa: PLC0415
        from segstudio.inference.registry import resolve_model  # noqa: PLC0415
        from segstudio.inference.runner import CancelToken, Runner  # noqa: PLC0415

        if self.args.trust_model:
            path = needs_trust(spec)
            if path is not None:
                trust_file(path)
        entry = resolve_model(spec)
        if entry.class_table.num_classes != self.dataset.class_table.num_classes:
            say(PROG, f"warning: {spec} has {entry.class_table.num_classes} classes, the dataset "
                f"{self.dataset.class_table.num_classes}")
        runner = Runner(entry, device=self.args.device, tile_size=self.args.tile, batch_size=self.args.batch_size)
        if self.token is None:
            self.token = CancelToken()
        indices = [i for i, s in enumerate(self.dataset) if s.mask_path]
        self.total = max(self.total, len(indices))
        stream = runner.predict_dataset(self.dataset, indices=indices, cancel=self.token,
                                        on_error=lambda index, exc: self.failures.append(_failure_line(
                                            self.dataset, spec, index, exc)))
        self.streams.append(stream)
        return stream, f"{spec} ({runner.device_name})"

    def cancel(self) -> None:
        if self.token is not None:
            self.token.cancel()
        self.close()

    def close(self) -> None:
        """Close the streams: a stream read up to its last image may not have run its cleanup yet."""
        for stream in self.streams:
            stream.close()  # runs the runner's cleanup now: its loader thread stops


def _failure_line(dataset, spec: str, index: int, exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, SegStudioError) else f"{dataset[index].image_path}: {exc}"
    return f"{spec}: {text}"


def _check_args(args: argparse.Namespace) -> tuple[tuple[str, str], tuple[str, str]] | str:
    """The parsed sources, or the one-line reason the arguments are refused."""
    if args.report and not args.report.lower().endswith((".json", ".csv")):
        return f"{args.report}: the report must be a .json or .csv file"
    if args.resamples < 1:
        return f"--resamples {args.resamples}: must be at least 1"
    try:
        a, b = parse_source(args.a), parse_source(args.b)
    except ValueError as exc:
        return str(exc)
    labels = [s[0] == "labels" for s in (a, b)]
    if any(labels) and not all(labels):
        return "labels: sources compare label versions: give both --a and --b as labels:original / labels:corrected"
    if all(labels) and args.model is None and args.predictions is None:
        return "labels: sources need the predictions to score against both: --model SPEC or --predictions DIR"
    if not any(labels) and (args.model is not None or args.predictions is not None):
        return "--model and --predictions go with labels: sources; give models and folders as --a and --b"
    return a, b


def run(args: argparse.Namespace) -> int:
    """Run the comparison; return the exit code (0, 1 when images failed, 2 for bad input, 130 when interrupted)."""
    from segstudio.core.evaluation.compare_report import (compare_label_versions, compare_predictions,
                                                          corrected_labels, format_compare_summary,
                                                          original_labels, write_compare_report)
    from segstudio.core.io.datasets import open_dataset

    checked = _check_args(args)
    if isinstance(checked, str):
        return print_error(PROG, checked)
    (kind_a, value_a), (kind_b, value_b) = checked
    problem = check_engine_arguments(args)
    if problem is not None:
        return print_error(PROG, problem)
    bar = Progress(sys.stderr, PROG)
    opened: dict = {}

    def work() -> dict:
        dataset = open_dataset(args.dataset, args.format, class_table=args.classes, split=args.split,
                               allow_outside_root=args.allow_outside_root)
        for warning in dataset.warnings:
            say(PROG, f"warning: {warning}")
        dataset = shard_dataset(dataset, parse_shard(args.shard))
        models = opened["models"] = _Models(args, dataset)
        options = dict(resamples=args.resamples, seed=args.seed, progress=bar)
        if args.engine == "ray":
            from segstudio.distributed.ray_review import compare_on_ray  # noqa: PLC0415
            report, models.failures, models.total = compare_on_ray(
                args, dataset, (kind_a, value_a), (kind_b, value_b), progress=bar,
                warn=lambda line: say(PROG, line))
            return report
        if kind_a == "labels":
            versions = {"original": original_labels, "corrected": corrected_labels(dataset, args.corrections)}
            if args.model is not None:
                models.check_spec(args.model)
                predictions, name = models.stream(args.model)
            else:
                predictions, name = args.predictions, args.predictions
            return compare_label_versions(dataset, predictions, labels_a=versions[value_a],
                                          labels_b=versions[value_b], name_a=args.a, name_b=args.b,
                                          predictions_name=name, **options)
        for kind, value in ((kind_a, value_a), (kind_b, value_b)):
            if kind == "model":
                models.check_spec(value)
        sources = [models.stream(value) if kind == "model" else (value, value)
                   for kind, value in ((kind_a, value_a), (kind_b, value_b))]
        return compare_predictions(dataset, sources[0][0], sources[1][0], name_a=sources[0][1],
                                   name_b=sources[1][1], **options)

    report = guarded(PROG, args.dataset, bar, work, lambda: opened.get("models"))
    if isinstance(report, int):
        return report
    models = opened["models"]
    if args.shard:
        report["shard"] = args.shard
    if report["missing"]:
        say(PROG, f"warning: {len(report['missing'])} image(s) left out (no labels, or no prediction "
            f"from a source), e.g. {report['missing'][0]}")
    if not report["images"]:
        return print_error(PROG, f"{args.dataset}: no image has labels and a prediction from both sources")
    print_stdout(format_compare_summary(report))
    code = write_report(PROG, report, args.report, write_compare_report)
    if code is not None:
        return code
    if models.failures:
        for message in models.failures:
            print_error(PROG, message)
        say(PROG, f"{len(models.failures)} model run(s) failed on an image of {models.total}")
        return EXIT_SOME_FAILED
    return 0
