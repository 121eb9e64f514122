"""The last line of defence when reading a model file (no torch here).

A damaged checkpoint fails deep inside ``zipfile``, ``zlib``, ``pickle``, ``struct`` or TorchScript's
C++ deserialiser, each with exception types of its own (``IndexError``, ``struct.error``,
``AssertionError``, ``zlib.error`` ...). Whatever the cause, reading a model file fails with a
``CheckpointError`` naming the file; the errors we raise ourselves pass through unchanged.
"""
from __future__ import annotations

from contextlib import contextmanager
from os import PathLike
from typing import Iterator

from segstudio.core.errors import CheckpointError, SegStudioError
from segstudio.core.tasks import Cancelled


def unreadable(path: str | PathLike, exc: BaseException) -> CheckpointError:
    """``CheckpointError(path, "cannot read the model file: <type>: <message>")``, the message whole
    but on one line."""
    message = " ".join(str(exc).split())
    return CheckpointError(path, f"cannot read the model file: {type(exc).__name__}"
                           + (f": {message}" if message else ""))


def read_model_bytes(path: str | PathLike) -> bytes:
    """The whole model file (code-bearing formats are inspected and hashed from these bytes, so what
    is checked is what runs); ``CheckpointError`` when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CheckpointError(path, f"cannot read the model file: {exc.strerror or exc}") from None


@contextmanager
def reading_model_file(path: str | PathLike) -> Iterator[None]:
    """Turn any exception raised inside, other than our typed ones, into ``unreadable(path, exc)``.

    ``Exception`` only, and not ``Cancelled``: a user stopping a download is no damaged file.
    """
    try:
        yield
    except (SegStudioError, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means the file cannot be read
        raise unreadable(path, exc) from None


class InputSizeNeeded(CheckpointError):
    """A model of unstated input size failed on the small test input used to count its classes.

    ``str()`` carries the command-line remedy; the window shows ``window_message`` instead, which
    points at the model card and the load dialog.
    """

    CLI_HINT = "set input_size in the model card or pass --input-size W H"
    WINDOW_HINT = ("set input_size in the model card (for a file without a card: the input size in the "
                   "dialog when loading it)")

    def __init__(self, path: str | PathLike, what: str):
        super().__init__(path, f"{what}; {self.CLI_HINT}")
        self.what = what

    @property
    def window_message(self) -> str:
        return f"{self.path}: {self.what}; {self.WINDOW_HINT}"
