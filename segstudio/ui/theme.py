"""Light and dark theme following the system's colour scheme (Qt 6.5+ ``styleHints().colorScheme()``).

The Fusion style with one of two palettes, and a small style sheet so checkable tool-bar buttons look
pressed when on (a checked "Preserve other labels" must not look like a plain label). When the system
switches scheme while the app runs, the palette and the icons follow.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

__all__ = ["apply_theme", "is_dark", "plot_colours"]

_DARK = {
    QPalette.ColorRole.Window: "#2b2d30", QPalette.ColorRole.WindowText: "#dfe1e5",
    QPalette.ColorRole.Base: "#1e1f22", QPalette.ColorRole.AlternateBase: "#26282b",
    QPalette.ColorRole.ToolTipBase: "#3c3f41", QPalette.ColorRole.ToolTipText: "#dfe1e5",
    QPalette.ColorRole.PlaceholderText: "#8c8f94", QPalette.ColorRole.Text: "#dfe1e5",
    QPalette.ColorRole.Button: "#35373b", QPalette.ColorRole.ButtonText: "#dfe1e5",
    QPalette.ColorRole.BrightText: "#ff6b68", QPalette.ColorRole.Highlight: "#2f65ca",
    QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.Link: "#589df6",
    QPalette.ColorRole.Light: "#45484d", QPalette.ColorRole.Midlight: "#3a3d41",
    QPalette.ColorRole.Mid: "#2a2c2f", QPalette.ColorRole.Dark: "#1b1c1f", QPalette.ColorRole.Shadow: "#111111",
}
_DISABLED_DARK = {QPalette.ColorRole.WindowText: "#7a7d82", QPalette.ColorRole.Text: "#7a7d82",
                  QPalette.ColorRole.ButtonText: "#7a7d82"}

STYLE_SHEET = """
QToolBar QToolButton { padding: 3px; border: 1px solid transparent; border-radius: 4px; }
QToolBar QToolButton:hover { border-color: palette(mid); }
QToolBar QToolButton:checked { background: palette(highlight); color: palette(highlighted-text);
                               border-color: palette(highlight); }
"""


def is_dark() -> bool:
    """Whether the dark palette is in use (the window background is darker than its text)."""
    palette = QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Window).lightness() < palette.color(QPalette.ColorRole.WindowText).lightness()


def plot_colours() -> tuple[str, str]:
    """(background, foreground) for pyqtgraph plots in the current theme."""
    palette = QGuiApplication.palette()
    return palette.color(QPalette.ColorRole.Base).name(), palette.color(QPalette.ColorRole.Text).name()


def _palette(dark: bool) -> QPalette:
    from PySide6.QtWidgets import QStyleFactory

    palette = QStyleFactory.create("Fusion").standardPalette()
    if dark:
        for role, colour in _DARK.items():
            palette.setColor(role, QColor(colour))
        for role, colour in _DISABLED_DARK.items():
            palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    return palette


def apply_theme(app, scheme: Qt.ColorScheme | None = None) -> bool:
    """Style ``app`` for ``scheme`` (default: the system's, followed from now on); returns whether
    the theme is dark."""
    from segstudio.ui import icons

    follow = scheme is None
    if follow:
        scheme = app.styleHints().colorScheme()
    app.setStyle("Fusion")
    dark = scheme == Qt.ColorScheme.Dark
    app.setPalette(_palette(dark))
    app.setStyleSheet(STYLE_SHEET)
    icons.clear_cache()
    icons.refresh_assigned()      # icons already on actions follow the new text colour
    if follow and not getattr(app, "_segstudio_follows_scheme", False):
        app._segstudio_follows_scheme = True
        app.styleHints().colorSchemeChanged.connect(lambda new: apply_theme_once(app, new))
    return dark


def apply_theme_once(app, scheme: Qt.ColorScheme) -> None:
    """The system switched scheme: restyle without connecting again."""
    apply_theme(app, scheme)
