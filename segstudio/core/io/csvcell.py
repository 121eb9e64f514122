"""CSV cells that a spreadsheet opens as data, never as a formula (CSV or formula injection)."""
from __future__ import annotations

from typing import Any

__all__ = ["csv_cell"]

# What Excel, LibreOffice and Google Sheets treat as the start of a formula (tab and CR too: some
# strip them first).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """``value`` for a CSV row: ``None`` empty, text that would start a formula behind a ``'``.

    Only text is changed: a number such as -0.5 is written as it is and stays a number. Image names,
    class names and notes come from files and people, so any of them may start with ``=``.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
