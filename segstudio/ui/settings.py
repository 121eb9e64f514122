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
