"""Progress on stderr through tqdm: a live bar on a terminal, a few plain lines in a log.

On a terminal the bar redraws in place (ETA, rate). When stderr is a file or a pipe (CI logs, Slurm
output files) a redrawn bar would write thousands of ``\\r`` frames into the log, so instead one
line is printed every ``step`` percent (and at the end), formatted by tqdm with the same counts,
rate and ETA.
"""
from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """``progress(done, total)`` callback shown with tqdm; ``close()`` ends it.

    Parameters
    ----------
    stream : file
        Where to write (stderr).
    prog : str
        Prefix of the plain lines (``segstudio evaluate``).
    unit : str
        What is counted (``img``).
    step : int
        Without a terminal: percent between two lines.
    """

    def __init__(self, stream: TextIO, prog: str, unit: str = "img", step: int = 10):
        self.stream = stream
        self.prog = prog
        self.unit = unit
        self.step = max(1, int(step))
        self.tty = _is_terminal(stream)
        self._bar = None
        self._start = time.monotonic()
        self._next_percent = self.step
        self._last_done = -1

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            self._draw(done, total)
        else:
            self._log(done, total)

    def _draw(self, done: int, total: int) -> None:
        from tqdm import tqdm  # noqa: PLC0415 - only on a terminal

        if self._bar is None:
            self._bar = tqdm(total=total, file=self.stream, unit=self.unit, dynamic_ncols=True,
                             mininterval=0.1, leave=True)
        if total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def _log(self, done: int, total: int) -> None:
        from tqdm import tqdm  # noqa: PLC0415

        percent = 100 * done // total if total else 100
        if done == self._last_done or (percent < self._next_percent and done < total):
            return
        self._last_done = done
        while self._next_percent <= percent:
            self._next_percent += self.step
        elapsed = time.monotonic() - self._start
        # No ncols: the meter without its bar, e.g. " 40% 80/200 [00:04<00:06, 19.8img/s]".
        meter = tqdm.format_meter(done, total, elapsed, unit=self.unit, ncols=0)
        self.stream.write(f"{self.prog}: {meter}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar so that later output starts on a fresh line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
