"""Thumbnails and review-status icons for the dataset browser.

:class:`ThumbnailCache` decodes the previews the browser asks for on the window's task runner (one
keyed task at a time, in slices, so it never holds up an error-region search), keeps the last
``capacity`` as ``QPixmap`` and says ``thumbnail_ready(name)`` when one arrives. A row that is never
painted is never decoded: the table asks only for the rows on screen. An image that cannot be read
gets no thumbnail and is asked for no more (its row shows the "unreadable" icon).
"""
from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap

from segstudio.core.display.thumbnails import THUMB_SIDE, thumbnail
from segstudio.core.tasks import TaskKind
from segstudio.ui.icons import icon

__all__ = ["ThumbnailCache", "status_icon", "STATUS_WORDS"]

STATUS_WORDS = {"unreviewed": "Unreviewed", "accepted": "Accepted", "fixed": "Fixed",
                "needs_attention": "Needs attention", "unreadable": "Unreadable"}
_STATUS_ICONS = {"unreviewed": ("unreviewed", "#8a8a8a"), "accepted": ("accepted", "#2e9d4f"),
                 "fixed": ("fixed", "#2f6fd0"), "needs_attention": ("attention", "#e08a00"),
                 "unreadable": ("unreadable", "#c81e1e")}


def status_icon(status: str):
    """The icon of a review status (``STATUS_WORDS`` keys), coloured so the column reads at a glance."""
    key, colour = _STATUS_ICONS.get(status, _STATUS_ICONS["unreviewed"])
    return icon(key, colour)


def _decode(context, samples: list):
    """Yield ``(name, rgb thumbnail or None)`` per sample, on the task runner."""
    for name, sample in samples:
        context.checkpoint()
        try:
            yield name, thumbnail(sample.load_image())
        except Exception:   # noqa: BLE001 - an unreadable file has no thumbnail; the row says why
            yield name, None


class ThumbnailCache(QObject):
    """Pixmaps of dataset images, decoded on ``task_runner`` when first asked for."""

    thumbnail_ready = Signal(str)

    def __init__(self, task_runner, capacity: int = 2000, parent: QObject | None = None):
        super().__init__(parent)
        self._runner = task_runner
        self._capacity = capacity
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._failed: set[str] = set()
        self._wanted: dict[str, object] = {}     # name -> sample, asked for and not yet delivered
        self._session = None
        self._timer = QTimer(self, singleShot=True, interval=0)   # gathers one paint's requests
        self._timer.timeout.connect(self._submit)

    def set_session(self, session) -> None:
        self._runner.cancel(TaskKind.THUMBNAILS)
        self._session = session
        self._pixmaps.clear()
        self._failed.clear()
        self._wanted.clear()

    def get(self, index: int, name: str) -> QPixmap | None:
        """The thumbnail of image ``name`` (dataset ``index``) if decoded; else None, and it is queued (once)."""
        pixmap = self._pixmaps.get(name)
        if pixmap is not None:
            self._pixmaps.move_to_end(name)
            return pixmap
        if name not in self._failed and name not in self._wanted and self._session is not None:
            self._wanted[name] = self._session.dataset[index]
            self._timer.start()
        return None

    def _submit(self) -> None:
        if not self._wanted:
            return
        samples = list(self._wanted.items())
        session = self._session
        self._runner.submit(_decode, samples, kind=TaskKind.THUMBNAILS, key=TaskKind.THUMBNAILS,
                            on_yielded=lambda item: self._store(session, *item))

    def _store(self, session, name: str, rgb) -> None:
        if session is not self._session:
            return
        self._wanted.pop(name, None)
        if rgb is None:
            self._failed.add(name)
            return
        h, w = rgb.shape[:2]
        image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()
        self._pixmaps[name] = QPixmap.fromImage(image)
        while len(self._pixmaps) > self._capacity:
            self._pixmaps.popitem(last=False)
        self.thumbnail_ready.emit(name)

    @property
    def side(self) -> int:
        return THUMB_SIDE
