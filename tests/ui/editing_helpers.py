"""Helpers for the editing tests: a window with the editor, and mouse, key and pixel helpers whose
events go to the real canvas viewport."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from segstudio.core.editing.service import UnsavedChoice
from segstudio.ui.compose import build_main_window
from segstudio.ui.settings import app_settings

from tests.ui.fakes import GatedRunner, fake_controller

LEFT = Qt.MouseButton.LeftButton
NO_BUTTON = Qt.MouseButton.NoButton
NO_MODIFIER = Qt.KeyboardModifier.NoModifier


def image_point(canvas, xy, corner: bool = False) -> QPoint:
    """Viewport point of image pixel ``xy``'s centre (or of its top-left corner)."""
    x, y = xy
    offset = 0.0 if corner else 0.5
    return canvas.mapFromScene(QPointF(x + offset, y + offset))


def _send(canvas, kind, pos: QPoint, button, buttons, modifiers) -> None:
    viewport = canvas.viewport()
    event = QMouseEvent(kind, QPointF(pos), QPointF(viewport.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(viewport, event)


def drag(qtbot, canvas, points, modifiers=NO_MODIFIER, corner: bool = False) -> None:
    """Press on the first image point, one move event per further point (held button), release."""
    where = [image_point(canvas, p, corner) for p in points]
    _send(canvas, QEvent.Type.MouseButtonPress, where[0], LEFT, LEFT, modifiers)
    for pos in where[1:]:
        _send(canvas, QEvent.Type.MouseMove, pos, NO_BUTTON, LEFT, modifiers)
    _send(canvas, QEvent.Type.MouseButtonRelease, where[-1], LEFT, NO_BUTTON, modifiers)


def click(qtbot, canvas, point, modifiers=NO_MODIFIER, corner: bool = False) -> None:
    drag(qtbot, canvas, [point], modifiers, corner)


def double_click(qtbot, canvas, point, corner: bool = False) -> None:
    """What a window system delivers for a double-click: press, release, double-click, release."""
    click(qtbot, canvas, point, corner=corner)
    pos = image_point(canvas, point, corner)
    _send(canvas, QEvent.Type.MouseButtonDblClick, pos, LEFT, LEFT, NO_MODIFIER)
    _send(canvas, QEvent.Type.MouseButtonRelease, pos, LEFT, NO_BUTTON, NO_MODIFIER)


def hover(qtbot, canvas, point, outside: bool = False) -> None:
    """Move the mouse over image point ``point`` without a button (``outside``: off the image)."""
    _send(canvas, QEvent.Type.MouseMove, image_point(canvas, point), NO_BUTTON, NO_BUTTON, NO_MODIFIER)


def ctrl_wheel(canvas, point, dy: int) -> None:
    pos = image_point(canvas, point)
    viewport = canvas.viewport()
    event = QWheelEvent(QPointF(pos), QPointF(viewport.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, dy),
                        NO_BUTTON, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)


def key(qtbot, window, key_code, modifiers=NO_MODIFIER) -> None:
    """A key press as the user types it with the canvas focused (window shortcuts apply)."""
    qtbot.keyClick(window.canvas, key_code, modifiers)


def segment_capsule(shape, a, b, radius) -> np.ndarray:
    """Pixels whose offset from the segment between anchor pixels ``a`` and ``b`` is within ``radius``.

    Written from the definition: squared distance to the nearest point of the segment, in integers
    (perpendicular distance squared = cross**2 / |b - a|**2, compared without dividing).
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.int64)
    ax, ay = a
    bx, by = b
    px, py = xx - ax, yy - ay
    ux, uy = bx - ax, by - ay
    r2 = radius * radius
    near_a = px ** 2 + py ** 2 <= r2
    near_b = (xx - bx) ** 2 + (yy - by) ** 2 <= r2
    length2 = ux * ux + uy * uy
    if length2 == 0:
        return near_a
    dot = px * ux + py * uy
    cross = px * uy - py * ux
    beside = (dot >= 0) & (dot <= length2) & (cross ** 2 <= r2 * length2)
    return near_a | near_b | beside


def show_only(canvas, name) -> None:
    for other in canvas.layer_names():
        canvas.set_layer_visible(other, other == name)
    canvas.set_layer_opacity(name, 1.0)


def rendered_rgb(canvas, x, y) -> tuple[int, int, int]:
    """The colour the viewport shows at the centre of image pixel (x, y)."""
    point = image_point(canvas, (x, y))
    color = canvas.render_viewport().pixelColor(point.x(), point.y())
    return color.red(), color.green(), color.blue()


def _discard(names):
    return UnsavedChoice.DISCARD


def editing_window(qtbot, path, runner_factory=lambda request: GatedRunner(), *, size=(1000, 700),
                   settings_values=None, ask_restore=None, ask_unsaved=_discard):
    """A shown, focused window as ``build_main_window`` makes it, on ``path``, model "fake" on the CPU.

    ``settings_values`` are written before the window reads them; ``ask_restore`` / ``ask_unsaved``
    replace the saving prompts (None keeps the real dialog), and default to discarding unsaved edits.
    """
    settings = app_settings()
    for name, value in (settings_values or {}).items():
        settings.setValue(name, value)
    win = build_main_window(settings, fake_controller(runner_factory))
    qtbot.addWidget(win)
    if ask_restore is not None:
        win.saving.ask_restore = ask_restore
    if ask_unsaved is not None:
        win.saving.ask_unsaved = ask_unsaved
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    win.finish_startup(str(path), model="fake", device="cpu")
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow)
    win.canvas.setFocus()
    return win
