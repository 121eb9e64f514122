"""Command-line entry point: ``segstudio [PATH] [--predictions DIR] [--model SPEC [--run]]``,
``segstudio evaluate``, ``segstudio predict``.

Only argument parsing lives here. Each subcommand is a module in ``segstudio.commands``
imported on demand, so ``segstudio --help`` stays fast and never imports torch or Qt.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from segstudio import __version__

# Kept in step with segstudio.commands._common.EXIT_CANCELLED, which is not imported here so that
# the import stays the only thing between a Ctrl+C and this module's handler.
EXIT_CANCELLED = 130

SUBCOMMANDS = {
    "evaluate": "Evaluate predictions (or a model) against a dataset's ground truth.",
    "predict": "Run a model over images and write palette PNG masks.",
    "train": "Fine-tune a model on a dataset's (corrected) labels; writes weights + model card.",
}


def _gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segstudio",
        description="Review segmentation models against ground truth and hand-correct labels.",
        epilog="Subcommands: " + "; ".join(f"'segstudio {k}': {v}" for k, v in SUBCOMMANDS.items())
        + " Run 'segstudio SUBCOMMAND --help' for their options.",
    )
    parser.add_argument("path", nargs="?", help="dataset folder, COCO JSON or image to open "
                        "(default: the bundled demo)")
    parser.add_argument("--version", action="version", version=f"segstudio {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="load the demo model, run it once through the GUI worker, print versions "
                        "and the device found, exit 0 on success")
    parser.add_argument("--predictions", metavar="DIR",
                        help="folder of prediction masks named like the images, opened after the dataset")
    parser.add_argument("--model", metavar="SPEC", help="model to select at start-up (registry name or file; "
                        "loaded only when it runs)")
    parser.add_argument("--run", action="store_true", help="run --model on the first image at start-up")
    parser.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default=None,
                        help="inference device (default: the saved setting, else auto)")
    return parser


def _check_gui_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, with exit status 2, what can be judged before the window opens (no torch, no Qt)."""
    from pathlib import Path

    from segstudio.commands._common import printable
    from segstudio.inference.catalog import spec_problem

    if args.path is not None and not Path(args.path).exists():
        parser.error(printable(f"{args.path}: no such file or folder"))
    if args.predictions is not None and not Path(args.predictions).is_dir():
        parser.error(printable(f"--predictions {args.predictions}: no such folder"))
    if args.run and args.model is None:
        parser.error("--run needs --model SPEC (the model to run)")
    problem = spec_problem(args.model) if args.model is not None else None
    if problem is not None:
        parser.error(printable(f"--model {args.model}: {problem}"))


def _run_module(module_name: str, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    module = importlib.import_module(f"segstudio.commands.{module_name}")
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return int(module.run(args) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = f"segstudio {argv[0]}" if argv and argv[0] in SUBCOMMANDS else "segstudio"
    try:
        code = _main(argv)
    except KeyboardInterrupt:
        # Ctrl+C before a command's own handler is in place (imports of torch or Qt take a while)
        # still ends with one line and the usual exit status, never a traceback.
        print(f"{prog}: cancelled", file=sys.stderr)
        code = EXIT_CANCELLED
    if code == EXIT_CANCELLED:
        _forget_unhandled_interrupt()
    return code


def _forget_unhandled_interrupt() -> None:
    """Let a handled Ctrl+C exit with status 130.

    CPython marks a KeyboardInterrupt that escapes an ``exec`` of a string (torch's import runs
    some) as unhandled, and at exit then kills the process with SIGINT (status -2) although it was
    handled. Every ``exec`` of a string clears that mark before it runs.
    """
    exec("")  # noqa: S102 - an empty string: nothing runs


def _main(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        name = argv[0]
        parser = argparse.ArgumentParser(prog=f"segstudio {name}", description=SUBCOMMANDS[name])
        return _run_module(name, parser, argv[1:])
    parser = _gui_parser()
    args = parser.parse_args(argv)
    if not args.self_test:
        _check_gui_args(parser, args)
    module_name = "selftest" if args.self_test else "gui"
    module = importlib.import_module(f"segstudio.commands.{module_name}")
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
