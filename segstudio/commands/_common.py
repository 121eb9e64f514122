"""What the command-line subcommands share: exit codes, the escaped message line, stdout tables, the
review commands' failure handling and report writing (progress: _progress.py)."""
from __future__ import annotations

import re
import sys

from segstudio.core.errors import SegStudioError

EXIT_BAD_INPUT = 2
EXIT_SOME_FAILED = 1     # the run went on past images that could not be read or predicted
EXIT_CANCELLED = 130

# C0 and C1 controls, DEL, and lone surrogates (names that are not valid UTF-8).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with control characters and lone surrogates as Python escapes (``\\n``, ``\\x1b``).

    File names may hold a newline, which would split a one-line error, or a terminal escape
    sequence, which the terminal would obey. Every line the commands print about a path goes
    through here.
    """
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def say(prog: str, message: str) -> None:
    """Print ``<prog>: <message>`` on stderr as one line, paths in it escaped by ``printable``."""
    print(f"{prog}: {printable(message)}", file=sys.stderr)


ALLOW_OUTSIDE_ROOT_HELP = ("accept COCO image file_names that are absolute or climb out of the dataset "
                           "with '..' (refused by default)")
TRUST_MODEL_HELP = ("run a TorchScript or torch.export (.pt2) model file (which is code) and remember its "
                    "hash as trusted; without it such a file runs only if trusted before, else exit 2")


def trust_if_asked(args) -> None:
    """``--trust-model``: record the ``--model`` file as trusted when it is code (no torch needed)."""
    from segstudio.inference.model_trust import needs_trust, trust_file  # noqa: PLC0415

    path = needs_trust(args.model) if args.trust_model and args.model else None
    if path is not None:
        trust_file(path)


def print_error(prog: str, message: str) -> int:
    """Print ``<prog>: error: <message>`` on stderr; return ``EXIT_BAD_INPUT`` (to return in turn)."""
    say(prog, f"error: {message}")
    return EXIT_BAD_INPUT


def print_stdout(text: str) -> None:
    """A table or summary on stdout. Image names reach it: their control characters are escaped line
    by line (and lone surrogates, which would not encode); backslashreplace covers a terminal that is
    not UTF-8."""
    text = "\n".join(printable(line) for line in text.split("\n"))
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    sys.stdout.write(text.encode(encoding, errors="backslashreplace").decode(encoding) + "\n")
    sys.stdout.flush()


def guarded(prog: str, dataset_path, bar, work, resource=lambda: None):
    """``work()`` (the report, or an exit code) with the review commands' failure handling.

    A bad file (``SegStudioError``) or an OS error ends the run with one line (exit 2); Ctrl+C
    cancels what ``resource()`` runs (an object with ``cancel()`` and ``close()``, or None) and exits
    130; the resource is closed whatever happens, and the progress ``bar`` once the work ends.
    """
    try:
        result = work()
        bar.close()
        return result
    except SegStudioError as exc:
        bar.close()
        return print_error(prog, str(exc))
    except OSError as exc:
        bar.close()
        return print_error(prog, f"{exc.filename or dataset_path}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        if resource() is not None:
            resource().cancel()
        bar.close()
        say(prog, "cancelled")
        return EXIT_CANCELLED
    finally:
        if resource() is not None:
            resource().close()


def write_report(prog: str, report, path, writer) -> int | None:
    """``writer(report, path)`` when a ``--report`` path was given; an exit code when it fails."""
    if path:
        try:
            writer(report, path)
        except OSError as exc:
            return print_error(prog, f"{path}: cannot write the report: {exc.strerror or exc}")
    return None
