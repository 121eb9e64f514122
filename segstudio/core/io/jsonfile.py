"""Reading a JSON or text file a person wrote (class tables, model cards): a typed error naming the file."""
from __future__ import annotations

import json
import os
import stat
from os import PathLike
from typing import Any

from segstudio.core.errors import SegStudioError

__all__ = ["MAX_HANDWRITTEN_BYTES", "read_json", "read_text", "refuse_special_file"]

# Far above any class table or model card; stops `--classes /dev/zero`-like mistakes from filling memory.
MAX_HANDWRITTEN_BYTES = 64 << 20


def refuse_special_file(path: str | PathLike, error: type[SegStudioError],
                        max_bytes: int | None = None) -> None:
    """Raise ``error`` when ``path`` is a FIFO, device or socket, or a file over ``max_bytes``.

    Checked before opening: opening a FIFO blocks until a writer comes, and reading a device such as
    ``/dev/zero`` never ends. A missing path or a folder passes, for the caller's ``open`` to report
    in its own words.
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return
    if stat.S_ISDIR(info.st_mode):
        return
    if not stat.S_ISREG(info.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "a device")
        raise error(path, f"not a regular file but {kind}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise error(path, f"{info.st_size} bytes, more than the {max_bytes} a hand-written file may have")


def read_text(path: str | PathLike, error: type[SegStudioError], cannot_read: str,
              not_text: str = "not UTF-8 text") -> str:
    """The UTF-8 text of ``path`` (a byte-order mark is dropped), refusing special and huge files.

    Raises
    ------
    SegStudioError
        ``error(path, reason)``; ``cannot_read`` / ``not_text`` start the reason.
    """
    refuse_special_file(path, error, MAX_HANDWRITTEN_BYTES)
    try:
        with open(path, "r", encoding="utf-8-sig") as fh:
            return fh.read()
    except OSError as exc:
        raise error(path, f"{cannot_read}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(path, f"{not_text}: {exc}") from exc


def read_json(path: str | PathLike, error: type[SegStudioError], cannot_read: str,
              invalid: str = "not valid JSON") -> Any:
    """Parse the JSON file ``path``; a UTF-8 byte-order mark (Windows editors write one) is accepted.

    Parameters
    ----------
    path : str or PathLike
        The file.
    error : type
        The ``SegStudioError`` subclass to raise, e.g. ``ClassTableError``.
    cannot_read, invalid : str
        Start of the reason when the file cannot be read / is not JSON; the cause follows a colon.

    Raises
    ------
    SegStudioError
        ``error(path, reason)`` for an unreadable, special or oversized file, invalid JSON, JSON
        nested too deeply for the parser, or text that is not UTF-8.
    """
    text = read_text(path, error, cannot_read, invalid)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(path, f"{invalid}: {exc}") from exc
    except RecursionError:
        raise error(path, f"{invalid}: nested too deeply") from None
