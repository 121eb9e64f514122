"""Persistent user settings (QSettings, INI format, user scope).

All keys live here so the window, the docks and the tests agree on them. Setting
``SEGSTUDIO_SETTINGS_DIR`` (or calling ``QSettings.setPath`` for the INI user scope, as the tests do)
redirects the file, so runs never overwrite each other's settings.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings

ORGANISATION = "segstudio"
APPLICATION = "segstudio"
MAX_RECENT = 10

DEVICE = "inference/device"
MODEL = "inference/model"
LAST_DATASET = "session/last_dataset"
RECENT = "session/recent"
GEOMETRY = "window/geometry"
STATE = "window/state"
OPACITY = "view/opacity/{layer}"


def app_settings() -> QSettings:
    """The settings store of this user (or of ``$SEGSTUDIO_SETTINGS_DIR`` when set)."""
    folder = os.environ.get("SEGSTUDIO_SETTINGS_DIR")
    if folder:
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, folder)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


def recent_items(settings: QSettings) -> list[str]:
    value = settings.value(RECENT, [])
    if isinstance(value, str):  # QSettings returns a lone string for a one-item list in INI files
        value = [value]
    return [str(v) for v in value or []]


def add_recent(settings: QSettings, path: str) -> list[str]:
    """Put ``path`` first in the recent list (no duplicates, at most MAX_RECENT) and return it."""
    items = [path] + [p for p in recent_items(settings) if p != path]
    items = items[:MAX_RECENT]
    settings.setValue(RECENT, items)
    return items


def opacity(settings: QSettings, layer: str, default: float) -> float:
    try:
        return float(settings.value(OPACITY.format(layer=layer), default))
    except (TypeError, ValueError):
        return default


def set_opacity(settings: QSettings, layer: str, value: float) -> None:
    settings.setValue(OPACITY.format(layer=layer), float(value))


BINARY_MAPPING = "datasets/binary_mapping/{key}"


def _path_key(path: str) -> str:
    """A settings key for a dataset or folder path: INI keys cannot hold every path character."""
    import hashlib  # noqa: PLC0415

    return hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def binary_mapping(settings: QSettings, path: str) -> dict[int, int] | None:
    """How the {0, 255} masks of the dataset (or predictions folder) at ``path`` were chosen to be
    read, or ``None`` when the user was never asked."""
    from segstudio.core.io.binary_masks import parse_binary_mapping  # noqa: PLC0415

    text = settings.value(BINARY_MAPPING.format(key=_path_key(path)))
    if not text:
        return None
    try:
        return parse_binary_mapping(str(text))
    except ValueError:
        return None   # a hand-edited settings file: ask again


def set_binary_mapping(settings: QSettings, path: str, mapping: dict[int, int]) -> None:
    """Remember ``mapping`` for the dataset (or predictions folder) at ``path``."""
    from segstudio.core.io.binary_masks import format_binary_mapping  # noqa: PLC0415

    settings.setValue(BINARY_MAPPING.format(key=_path_key(path)), format_binary_mapping(mapping))
