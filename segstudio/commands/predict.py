"""``segstudio predict``: run a model over images and write palette PNG masks.

One mask per image, ``OUT/<image stem>.png``, a palette PNG whose colours are the model's class
colours; instance models also write ``OUT/instances/<stem>.png`` (16-bit instance ids). A progress
bar goes to stderr. Bad input ends the run with one line
``segstudio predict: error: <path>: <reason>`` and exit code 2; an image that cannot be read, or
that the model fails on, gets such a line and the run goes on, ending with ``N of M images failed``
and exit code 1. Ctrl+C stops between batches (exit 130). Nothing here imports torch until the command runs.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from segstudio.commands._common import (ALLOW_OUTSIDE_ROOT_HELP, EXIT_CANCELLED, EXIT_SOME_FAILED,
                                        TRUST_MODEL_HELP, print_error, say, trust_if_asked)
from segstudio.commands._progress import Progress
from segstudio.commands.engines.options import (add_engine_arguments, check_engine_arguments, parse_shard,
                                                shard_dataset)
from segstudio.core.errors import SegStudioError

PROG = "segstudio predict"
# The runner halves it for tiles under 128 px, so only an overlap the user chose is refused.
DEFAULT_OVERLAP = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``segstudio predict``."""
    parser.add_argument("--model", required=True, metavar="SPEC",
                        help="'demo', 'torchvision:NAME' (e.g. torchvision:deeplabv3_resnet50), "
                        "'smp:ARCH' with --weights, a model file (.pth/.pt/.ts/.pt2/.onnx/.safetensors) or an "
                        "SMP folder")
    parser.add_argument("--images", required=True, metavar="PATH",
                        help="an image, a folder of images or a dataset folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the masks")
    parser.add_argument("--allow-outside-root", action="store_true", help=ALLOW_OUTSIDE_ROOT_HELP)
    parser.add_argument("--trust-model", action="store_true", help=TRUST_MODEL_HELP)
    parser.add_argument("--weights", metavar="FILE", default=None,
                        help="checkpoint for a 'smp:ARCH' or 'torchvision:NAME' spec")
    parser.add_argument("--encoder", metavar="NAME", default=None,
                        help="SMP encoder of the checkpoint (default: from the model card, else guessed)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"],
                        help="inference device (default: auto = CUDA when available)")
    parser.add_argument("--tile", type=int, default=None, metavar="N",
                        help="predict images larger than N px in overlapping N x N tiles")
    parser.add_argument("--overlap", type=int, default=None, metavar="N",
                        help="tile overlap, below --tile (default: 64, at most half the tile)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="images per forward pass (default: 1)")
    parser.add_argument("--score-threshold", type=float, default=0.5, metavar="S",
                        help="instance models: keep detections scoring at least S (default: 0.5)")
    parser.add_argument("--classes", metavar="NAME|FILE", default=None,
                        help="the model's classes: a built-in table (voc, cityscapes, coco), a "
                        "class-table .json or a class_names.txt")
    parser.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), default=None,
                        help="input mean in 0-1 units (default: model card, else ImageNet)")
    parser.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), default=None,
                        help="input standard deviation in 0-1 units")
    parser.add_argument("--channel-order", choices=["RGB", "BGR"], default=None,
                        help="channel order the model expects (default: model card, else RGB)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="resize every image to W x H for the model (outputs keep the image size)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_arguments(parser, stats=False)


def _overrides(args: argparse.Namespace) -> dict:
    from segstudio.core.io.classes import class_table_from_spec  # noqa: PLC0415

    overrides = {"classes": class_table_from_spec(args.classes) if args.classes else None,
                 "mean": args.mean, "std": args.std,
                 "channel_order": args.channel_order, "weights": args.weights, "encoder": args.encoder,
                 "input_size": tuple(args.input_size) if args.input_size else None}
    return {k: v for k, v in overrides.items() if v is not None}


def _check_numbers(args: argparse.Namespace) -> str | None:
    if args.tile is not None and args.tile < 16:
        return f"--tile: {args.tile}: must be at least 16"
    if args.overlap is not None and args.overlap < 0:
        return f"--overlap: {args.overlap}: must not be negative"
    if args.overlap is not None and args.tile is not None and args.overlap >= args.tile:
        return f"--overlap: {args.overlap}: must be below the tile size {args.tile}"
    if args.batch_size < 1:
        return f"--batch-size: {args.batch_size}: must be at least 1"
    if not 0.0 <= args.score_threshold <= 1.0:
        return f"--score-threshold: {args.score_threshold}: must be between 0 and 1"
    if args.input_size and min(args.input_size) < 1:
        return f"--input-size: {args.input_size}: must be positive"
    return None


def run(args: argparse.Namespace) -> int:
    """Predict every image; return 0, 1 (some images failed), 2 (bad input) or 130 (interrupted)."""
    problem = _check_numbers(args) or check_engine_arguments(args)
    if problem:
        return print_error(PROG, problem)
    from segstudio.core.io.datasets import open_dataset  # noqa: PLC0415 - keeps --help light

    bar = None if args.quiet else Progress(sys.stderr, PROG)
    try:
        dataset = shard_dataset(open_dataset(args.images, allow_outside_root=args.allow_outside_root),
                                parse_shard(args.shard))
        if args.engine == "ray":
            return _predict_on_ray(args, dataset, bar)
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            raise SegStudioError(out_dir, "--out exists and is not a folder")
        from segstudio.inference.registry import resolve_model  # noqa: PLC0415 - imports torch
        from segstudio.inference.runner import CancelToken, Cancelled, Runner  # noqa: PLC0415

        trust_if_asked(args)
        entry = resolve_model(args.model, **_overrides(args))
        runner = Runner(entry, device=args.device, tile_size=args.tile,
                        overlap=DEFAULT_OVERLAP if args.overlap is None else args.overlap,
                        batch_size=args.batch_size, score_threshold=args.score_threshold,
                        on_notice=lambda m: say(PROG, f"notice: {m}"))
        out_dir.mkdir(parents=True, exist_ok=True)
    except SegStudioError as exc:
        return print_error(PROG, str(exc))
    except OSError as exc:
        return print_error(PROG, f"{exc.filename or args.out}: {exc.strerror or exc}")

    cancel = CancelToken()
    failures: list[str] = []
    written = 0
    started = time.monotonic()
    previous = _install_sigint(cancel)
    try:
        def failed(index: int, exc: BaseException) -> None:
            failures.append(str(exc) if isinstance(exc, SegStudioError)
                            else f"{dataset[index].image_path}: {exc}")

        for index, prediction in runner.predict_dataset(dataset, cancel=cancel, progress=bar,
                                                        on_error=failed):
            write_prediction(out_dir, dataset[index].name, prediction, entry.class_table)
            written += 1
    except (Cancelled, KeyboardInterrupt):
        if bar:
            bar.close()
        say(PROG, f"interrupted; wrote {written} of {len(dataset)} mask(s) to {out_dir}")
        return EXIT_CANCELLED
    except SegStudioError as exc:
        if bar:
            bar.close()
        return print_error(PROG, str(exc))
    except OSError as exc:
        if bar:
            bar.close()
        return print_error(PROG, f"{exc.filename or out_dir}: {exc.strerror or exc}")
    finally:
        _restore_sigint(previous)
    if bar:
        bar.close()
    return _finished(out_dir, written, len(dataset), failures, started, runner.device_name)


def _predict_on_ray(args: argparse.Namespace, dataset, bar) -> int:
    """``--engine ray``: the same masks, written by Ray workers; the same exit codes."""
    from segstudio.distributed.ray_engine import predict_on_ray  # noqa: PLC0415

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        return print_error(PROG, f"{out_dir}: --out exists and is not a folder")
    failures: list[str] = []
    started = time.monotonic()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        written, device = predict_on_ray(args, dataset, out_dir, progress=bar, failures=failures)
    except KeyboardInterrupt:
        if bar:
            bar.close()
        say(PROG, f"interrupted; the Ray job was cancelled (masks already written stay in {out_dir})")
        return EXIT_CANCELLED
    except SegStudioError as exc:
        if bar:
            bar.close()
        return print_error(PROG, str(exc))
    except OSError as exc:
        if bar:
            bar.close()
        return print_error(PROG, f"{exc.filename or out_dir}: {exc.strerror or exc}")
    if bar:
        bar.close()
    return _finished(out_dir, written, len(dataset), failures, started, device)


def _finished(out_dir: Path, written: int, total: int, failures: list[str], started: float, device: str) -> int:
    """The lines both engines end with, and the exit code: 1 when images failed."""
    for message in failures:
        print_error(PROG, message)
    say(PROG, f"wrote {written} mask(s) to {out_dir} in {time.monotonic() - started:.1f} s on {device}")
    if failures:
        say(PROG, f"{len(failures)} of {total} images failed")
        return EXIT_SOME_FAILED
    return 0


def write_prediction(out_dir: Path, name: str, prediction, class_table) -> None:
    """Write one prediction's mask (and instance ids) under ``out_dir``, each file atomically."""
    import numpy as np  # noqa: PLC0415

    from segstudio.core.io.masks import write_index_png, write_palette_png  # noqa: PLC0415
    from segstudio.core.io.paths import inside_root  # noqa: PLC0415

    # Whatever a sample is called (COCO names come from the JSON), nothing lands outside --out.
    target = inside_root(out_dir, out_dir / f"{name}.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    instances, mask = prediction.instances, prediction.mask
    if mask.dtype == np.uint8:
        write_palette_png(target, mask, class_table)
    else:
        write_index_png(target, mask)  # a palette holds 256 colours at most
    if instances is not None:
        inst_path = inside_root(out_dir, out_dir / "instances" / f"{name}.png")
        inst_path.parent.mkdir(parents=True, exist_ok=True)
        write_index_png(inst_path, np.clip(instances.ids, 0, 65535).astype(np.uint16))


def _install_sigint(cancel):
    """First Ctrl+C asks the runner to stop at the next batch; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        print(f"\n{PROG}: stopping after the current batch (Ctrl+C again to abort)", file=sys.stderr)

    return signal.signal(signal.SIGINT, handler)


def _restore_sigint(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
