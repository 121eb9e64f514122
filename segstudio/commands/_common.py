"""What the command-line subcommands share: exit codes, the escaped message line and the progress bar."""
from __future__ import annotations

import re
import sys
import time
from typing import TextIO

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


class ProgressBar:
    """A one-line ``\\r`` progress bar; redraws at most ten times a second.

    With ``rate_unit`` (e.g. ``"img/s"``) the line ends with the items done per second since the bar
    was made.
    """

    def __init__(self, stream: TextIO, width: int = 30, rate_unit: str | None = None):
        self.stream = stream
        self.width = width
        self.rate_unit = rate_unit
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.width * done // total if total else self.width
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
        if self.rate_unit is not None:
            line += f" {done / max(now - self._start, 1e-6):.1f} {self.rate_unit}"
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line so that later output starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
