"""Font icons for the tool bar, menus and docks (qtawesome's Material Design Icons 6).

qtawesome is imported the first time an icon is asked for, after the ``QApplication`` exists. A
missing package or font (a frozen bundle built without qtawesome's data files) gives an empty
``QIcon``: the action keeps its text, nothing fails. Icons are drawn in the palette's text colour so
they follow the light and the dark theme (:mod:`segstudio.ui.theme` clears the cache on a switch).
"""
from __future__ import annotations

import weakref

from PySide6.QtGui import QGuiApplication, QIcon, QPalette

__all__ = ["icon", "assign", "clear_cache", "refresh_assigned", "ICONS"]

# What each part of the app shows -> the Material Design Icons 6 name.
ICONS = {
    "navigate": "cursor-default", "brush": "brush", "eraser": "eraser", "prediction": "format-paint",
    "fill": "format-color-fill", "polygon": "vector-polygon", "picker": "eyedropper",
    "prompt": "auto-fix",
    "preserve": "shield-half-full", "undo": "undo", "redo": "redo", "save": "content-save",
    "save_all": "content-save-all", "open": "folder-open", "run": "play", "run_all": "play-box-multiple",
    "cancel": "stop", "fit": "fit-to-screen", "shortcuts": "keyboard", "help": "book-open-variant",
    "about": "help-circle-outline", "load_model": "file-cog", "layer_up": "arrow-up", "layer_down": "arrow-down",
    "unreviewed": "circle-outline", "accepted": "check-circle", "fixed": "pencil-circle",
    "attention": "alert-circle", "unreadable": "file-alert", "panels": "dock-window",
}

_cache: dict[tuple[str, str], QIcon] = {}
_assigned: list[tuple[weakref.ref, str]] = []     # actions given an icon in the text colour (theme switch)


def _text_colour() -> str:
    app = QGuiApplication.instance()
    if app is None:
        return "#303030"
    return QGuiApplication.palette().color(QPalette.ColorRole.WindowText).name()


def icon(key: str, colour: str | None = None) -> QIcon:
    """The icon for ``key`` (an ``ICONS`` key or an ``mdi6`` name), or an empty ``QIcon`` when the
    icon font cannot be loaded."""
    colour = colour or _text_colour()
    cached = _cache.get((key, colour))
    if cached is not None:
        return cached
    try:
        import qtawesome

        result = qtawesome.icon(f"mdi6.{ICONS.get(key, key)}", color=colour,
                                color_disabled=_disabled_colour())
    except Exception:   # noqa: BLE001 - no package, no font file, unknown name: text only, never a crash
        result = QIcon()
    _cache[(key, colour)] = result
    return result


def _disabled_colour() -> str:
    if QGuiApplication.instance() is None:
        return "#a0a0a0"
    return QGuiApplication.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText).name()


def clear_cache() -> None:
    """Forget the drawn icons (the palette changed colour)."""
    _cache.clear()


def assign(target, key: str):
    """Give ``target`` (a QAction or button) the icon ``key`` in the text colour, redrawn when the theme
    changes (:func:`refresh_assigned`); returns ``target``."""
    target.setIcon(icon(key))
    _assigned.append((weakref.ref(target), key))
    return target


def refresh_assigned() -> None:
    """Redraw every assigned icon in the current palette's text colour (after a theme switch)."""
    import shiboken6

    alive = []
    for ref, key in _assigned:
        target = ref()
        if target is not None and shiboken6.isValid(target):
            target.setIcon(icon(key))
            alive.append((ref, key))
    _assigned[:] = alive
