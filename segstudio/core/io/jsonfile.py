"""Reading a JSON file a person wrote (class tables, model cards): a typed error naming the file."""
from __future__ import annotations

import json
from os import PathLike
from typing import Any

from segstudio.core.errors import SegStudioError

__all__ = ["read_json"]


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
        ``error(path, reason)`` for an unreadable file, invalid JSON or text that is not UTF-8.
    """
    try:
        with open(path, "r", encoding="utf-8-sig") as fh:
            return json.load(fh)
    except OSError as exc:
        raise error(path, f"{cannot_read}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(path, f"{invalid}: {exc}") from exc
