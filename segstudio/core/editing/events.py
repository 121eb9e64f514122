"""What an image document tells its listeners, and what it needs from a crash journal.

Kept apart from :mod:`segstudio.core.editing.document` so the edit operations
(:mod:`segstudio.core.editing.edits`) and the listeners can name the event types without the document.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Protocol

from segstudio.core.editing.history import EditAtom
from segstudio.core.evaluation.comparison import SourceKey

__all__ = ["EventKind", "MetricsDelta", "DocumentEvent", "Journal", "StrokeError", "Bbox"]

Bbox = tuple[int, int, int, int]


class EventKind(str, Enum):
    """What a :class:`DocumentEvent` reports (the values are the historical string kinds)."""

    LABELS = "gt"
    PREDICTION = "pred"
    RELOADED = "all"
    ERRORS = "errors"
    HISTORY = "history"
    SOURCE = "source"        # a comparison with another, not active, source was attached


class MetricsDelta(NamedTuple):
    """How one class's scores moved through an edit (``None`` where a score is undefined)."""

    class_id: int
    iou_before: float | None
    iou_after: float | None
    f1_before: float | None
    f1_after: float | None


@dataclass(frozen=True)
class DocumentEvent:
    """A change notification; see the module docstring for the kinds."""

    kind: EventKind
    bbox: Bbox | None = None
    metrics_delta: MetricsDelta | None = None
    atom: EditAtom | None = None
    source: SourceKey | None = None


class Journal(Protocol):
    """What the document needs from a crash journal (``segstudio.core.editing.store.ProjectStore``)."""

    def journal_commit(self, image_name: str, atom: EditAtom) -> int | None: ...
    def journal_undo(self, image_name: str) -> int | None: ...
    def journal_redo(self, image_name: str) -> int | None: ...


class StrokeError(RuntimeError):
    """A stroke call out of order (painting without ``begin_stroke``, a second ``begin_stroke``)."""

