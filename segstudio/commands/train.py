"""``segstudio train``: fine-tune a model on a dataset's (corrected) labels.

Writes the best model as a state dict at ``--out PATH.pth`` with its model card ``PATH.json``
(without ``--out``: a versioned name in the dataset's models folder, printed at the end) and a
resumable checkpoint ``PATH.last.ckpt``. ``--progress jsonl`` prints one JSON event a line on
stdout (what the GUI reads); a line ``cancel`` on stdin, Ctrl+C or SIGTERM stops after the current
step, keeping the best model so far (exit 130). Bad input: one line on stderr, exit 2; a model
without an architecture (TorchScript, .pt2, ONNX): "not trainable: needs an architecture", exit 2.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from segstudio.commands._common import EXIT_CANCELLED, print_error, printable, say
from segstudio.commands._data import CLASSES_HELP
from segstudio.core.errors import SegStudioError

PROG = "segstudio train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``segstudio train``."""
    parser.add_argument("--dataset", required=True, metavar="PATH", help="dataset folder, COCO .json file")
    parser.add_argument("--model", required=True, metavar="SPEC",
                        help="model to fine-tune: 'demo', a state-dict file (with its model card, or one whose "
                        "architecture its keys reveal), an SMP save_pretrained folder, 'torchvision:NAME' "
                        "(pretrained weights); or 'new:ARCH' (new:segstudio.CompactUNet, new:smp.Unet) to "
                        "start from random weights")
    parser.add_argument("--out", metavar="PATH.pth", default=None,
                        help="where the weights go (the card beside it as PATH.json); default: a versioned "
                        "name in the dataset's models folder")
    parser.add_argument("--format", default="auto", choices=["auto", "folder", "voc", "coco", "cityscapes"])
    parser.add_argument("--split", default=None, help="dataset split to train on (train, ...)")
    parser.add_argument("--classes", metavar="NAME|FILE", default=None, help=CLASSES_HELP)
    parser.add_argument("--labels", default="corrected", choices=["corrected", "original", "reviewed"],
                        help="corrected: saved corrections where they exist, originals elsewhere (default); "
                        "original: the dataset's own labels; reviewed: only images marked accepted/fixed")
    parser.add_argument("--corrections", metavar="DIR", default=None,
                        help="folder the corrections were saved to (default: the dataset's corrected/)")
    val = parser.add_mutually_exclusive_group()
    val.add_argument("--val-split", type=float, default=0.2, metavar="F",
                     help="share of the labelled images held out for validation (default 0.2, seeded)")
    val.add_argument("--val-images", metavar="FILE", default=None,
                     help="text file naming the validation images, one a line")
    parser.add_argument("--loss", default="ce+dice", choices=["ce", "focal", "dice", "ce+dice"])
    parser.add_argument("--focal-gamma", type=float, default=2.0, metavar="G")
    parser.add_argument("--focal-alpha", type=float, default=1.0, metavar="A")
    parser.add_argument("--dice-weight", type=float, default=0.5, metavar="W", help="for ce+dice (default 0.5)")
    parser.add_argument("--class-weights", default="none", choices=["auto", "none"],
                        help="auto: inverse class frequency of the training labels (ce, focal, ce+dice)")
    parser.add_argument("--epochs", type=int, default=50, metavar="N")
    parser.add_argument("--max-minutes", type=float, default=None, metavar="M", help="time budget")
    parser.add_argument("--patience", type=int, default=10, metavar="N",
                        help="stop after N epochs without a better validation mIoU (default 10)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, metavar="N",
                        help="default: enough crops to cover the training images once (at least 8 steps)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=4, metavar="N")
    parser.add_argument("--crop", type=int, default=512, metavar="PX", help="training crop side (default 512)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="forward-pass arithmetic: auto = float16 on CUDA, bfloat16 on a CPU with native "
                             "bfloat16 (AMX / AVX512-BF16), float32 elsewhere; weights and loss stay float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch-kwargs", default=None, metavar="JSON",
                        help="constructor arguments for new:ARCH, e.g. '{\"encoder_name\": \"resnet18\"}'")
    parser.add_argument("--resume", action="store_true", help="carry on from PATH.last.ckpt of an earlier run")
    parser.add_argument("--progress", default="text", choices=["text", "jsonl"],
                        help="jsonl: one JSON event a line on stdout (for the GUI); text: a line per epoch on stderr")


def _check(args) -> str | None:
    if args.epochs < 1:
        return "--epochs must be at least 1"
    if args.batch_size < 1:
        return "--batch-size must be at least 1"
    if args.crop < 16:
        return "--crop must be at least 16"
    if args.lr <= 0:
        return "--lr must be positive"
    if args.max_minutes is not None and args.max_minutes <= 0:
        return "--max-minutes must be positive"
    if args.patience < 1:
        return "--patience must be at least 1"
    if args.resume and not args.out:
        return "--resume needs the --out of the run to resume"
    return None


def _emitter(mode: str):
    lock = threading.Lock()

    def jsonl(event: dict) -> None:
        with lock:
            sys.stdout.write(json.dumps(event, allow_nan=False, default=str) + "\n")
            sys.stdout.flush()

    def text(event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            say(PROG, f"training on {event['train_images']} images, validating on {event['val_images']}, "
                f"{event['steps_per_epoch']} steps/epoch, {event['device']}")
        elif kind == "epoch":
            miou = event["val_miou"]
            say(PROG, f"epoch {event['epoch']}/{event['epochs']}: loss {event['train_loss']:.4f}, val mIoU "
                f"{'n/a' if miou is None else f'{miou:.4f}'}{' (best)' if event['improved'] else ''}")
    return jsonl if mode == "jsonl" else text


def _clean(event: dict) -> dict:
    """NaN/inf have no JSON spelling: null instead."""
    def fix(v):
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return None
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v
    return fix(event)


def run(args: argparse.Namespace) -> int:
    """Train; return 0, 2 for bad input or 130 when cancelled."""
    problem = _check(args)
    if problem:
        return print_error(PROG, problem)
    try:
        arch_kwargs = json.loads(args.arch_kwargs) if args.arch_kwargs else {}
        if not isinstance(arch_kwargs, dict):
            raise ValueError("expected a JSON object")
    except ValueError as exc:
        return print_error(PROG, f"--arch-kwargs: {exc}")
    stop = threading.Event()
    raw_emit = _emitter(args.progress)

    def emit(event: dict) -> None:
        raw_emit(_clean(event))

    def on_signal(signum, frame) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    if args.progress == "jsonl":
        threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
        _lower_priority()
    from segstudio.training.run import TrainOptions, run_training  # noqa: PLC0415 - imports torch

    options = TrainOptions(
        dataset=args.dataset, model=args.model, out=args.out, format=args.format, split=args.split,
        classes=args.classes, labels=args.labels, corrections=args.corrections,
        val_split=None if args.val_images else args.val_split, val_images=args.val_images, loss=args.loss,
        focal_gamma=args.focal_gamma, focal_alpha=args.focal_alpha, dice_weight=args.dice_weight,
        class_weights=args.class_weights, epochs=args.epochs, max_minutes=args.max_minutes, lr=args.lr,
        batch_size=args.batch_size, crop=args.crop, device=args.device, seed=args.seed, patience=args.patience,
        steps_per_epoch=args.steps_per_epoch, arch_kwargs=arch_kwargs, resume=args.resume, threads=args.threads,
        precision=args.precision)
    try:
        result, out = run_training(options, emit, stop.is_set)
    except (SegStudioError, ValueError) as exc:
        message = str(exc)
        if args.progress == "jsonl":
            emit({"event": "error", "message": message})
        return print_error(PROG, message)
    except OSError as exc:
        message = f"{exc.filename or args.dataset}: {exc.strerror or exc}"
        if args.progress == "jsonl":
            emit({"event": "error", "message": message})
        return print_error(PROG, message)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result.best_epoch is None:
        say(PROG, "cancelled before the first validation: no model written" if result.status == "cancelled"
            else "no validation result: no model written")
    else:
        say(PROG, f"{result.status.replace('_', ' ')} after {result.epochs_done} epoch(s); best validation mIoU "
            f"{result.best_miou:.4f} at epoch {result.best_epoch}")
        if args.progress != "jsonl":
            print(printable(str(out)))
    return EXIT_CANCELLED if result.status == "cancelled" else 0


def _lower_priority() -> None:
    """Run behind the GUI that started us: training saturates every core, so the GUI must win every
    wake-up. The lowest priority costs the run nothing while the GUI is idle and keeps the GUI's longest
    block short while it trains (bench/train_bench.py measures both)."""
    import os  # noqa: PLC0415

    if hasattr(os, "nice"):
        try:
            os.nice(19)
        except OSError:
            pass


def _watch_stdin(stop: threading.Event) -> None:
    """The GUI cancels by writing ``cancel`` (a signal does not reach a Windows child)."""
    try:
        for line in sys.stdin:
            if line.strip() == "cancel":
                stop.set()
                return
    except (OSError, ValueError):
        return


