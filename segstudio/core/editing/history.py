"""Undo/redo history made of edit atoms, bounded by one memory budget shared by all images.

An :class:`EditAtom` is one stroke: bounding box, changed-pixel mask, old and new values at those
pixels. The same atom drives undo/redo, the partial redraw and the incremental metric update.

Histories are kept per image name in a :class:`HistoryBudget`, so coming back to an image finds its
undo stack again, and the budget caps the memory of all histories together: when the total goes over,
the oldest atoms of whichever image are dropped first. Stored atoms keep their changed mask bit-packed
(``np.packbits``, 8 pixels a byte) and a constant value run as a single scalar, so a radius-32 dab
costs about 4 kB instead of 13 kB.
"""
from __future__ import annotations

import itertools
import threading
import zlib
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EditAtom",
    "EditHistory",
    "HistoryBudget",
    "DEFAULT_BUDGET_BYTES",
    "default_budget",
    "labels_fingerprint",
]

DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024

# Python object and numpy header overhead of one stored atom, counted so that many tiny atoms cannot
# slip past the budget.
_ATOM_OVERHEAD = 400


@dataclass
class EditAtom:
    """One edit: which pixels of a bounding box changed, from what, to what.

    Attributes
    ----------
    bbox : tuple of int
        ``(x, y, w, h)`` in image pixels.
    changed : np.ndarray
        ``(h, w)`` bool, True where the edit changed the layer.
    old_values : np.ndarray
        1-D, the layer's values at the changed pixels before the edit, in row-major order of ``changed``.
    new_values : np.ndarray
        1-D, the values after the edit, same order.
    layer : str
        The edited layer (``"gt"``).
    """

    bbox: tuple[int, int, int, int]
    changed: np.ndarray
    old_values: np.ndarray
    new_values: np.ndarray
    layer: str = "gt"

    @property
    def count(self) -> int:
        """Number of changed pixels."""
        return int(self.old_values.size)

    @property
    def nbytes(self) -> int:
        """Memory held by the unpacked arrays of this atom."""
        return int(self.changed.nbytes + self.old_values.nbytes + self.new_values.nbytes)

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the bounding box, for indexing the full layer."""
        x, y, w, h = self.bbox
        return slice(y, y + h), slice(x, x + w)


def labels_fingerprint(labels: np.ndarray) -> int:
    """A checksum of a label array (CRC-32 of its bytes, shape and dtype), O(image).

    Set as :attr:`EditHistory.fingerprint` to vouch that a history's atoms apply to these labels.
    """
    arr = np.ascontiguousarray(labels)
    return zlib.crc32(repr((arr.shape, arr.dtype.str)).encode(), zlib.crc32(arr.data))


class _Values:
    """1-D values stored as a scalar when they are all equal (the usual brush stroke)."""

    __slots__ = ("scalar", "array", "size", "dtype")

    def __init__(self, values: np.ndarray):
        values = np.ascontiguousarray(values).ravel()
        self.size = values.size
        self.dtype = values.dtype
        if values.size and (values == values[0]).all():
            self.scalar, self.array = values[0], None
        else:
            self.scalar, self.array = None, values.copy()

    @property
    def nbytes(self) -> int:
        return self.array.nbytes if self.array is not None else self.dtype.itemsize

    def unpack(self) -> np.ndarray:
        if self.array is not None:
            return self.array.copy()
        return np.full(self.size, self.scalar, dtype=self.dtype)


class _StoredAtom:
    """An atom as held in a history: packed mask, compact values, global sequence number."""

    __slots__ = ("bbox", "packed", "old", "new", "layer", "seq", "nbytes")

    def __init__(self, atom: EditAtom, seq: int):
        self.bbox = tuple(int(v) for v in atom.bbox)
        self.packed = np.packbits(np.ascontiguousarray(atom.changed, dtype=bool), axis=None)
        self.old = _Values(atom.old_values)
        self.new = _Values(atom.new_values)
        self.layer = atom.layer
        self.seq = seq
        self.nbytes = self.packed.nbytes + self.old.nbytes + self.new.nbytes + _ATOM_OVERHEAD

    def unpack(self) -> EditAtom:
        _, _, w, h = self.bbox
        changed = np.unpackbits(self.packed, count=w * h).reshape(h, w).view(bool)
        return EditAtom(self.bbox, changed, self.old.unpack(), self.new.unpack(), self.layer)


class EditHistory:
    """Undo and redo stacks of one image.

    Obtain one through :meth:`HistoryBudget.history_for` so that its memory counts against the
    shared budget; a history built directly gets a private budget of :data:`DEFAULT_BUDGET_BYTES`.

    Parameters
    ----------
    name : str
        The image name the history belongs to.
    budget : HistoryBudget, optional
        The budget that accounts for (and may evict) this history's atoms.
    """

    def __init__(self, name: str = "", budget: HistoryBudget | None = None):
        self.name = name
        self._budget = budget if budget is not None else HistoryBudget()
        self._undo: deque[_StoredAtom] = deque()
        self._redo: deque[_StoredAtom] = deque()
        self.nbytes = 0
        # labels_fingerprint of the layer the stacks apply to, recorded when a document lets go of the
        # image (or a journal replay rebuilds the stacks); a document that opens the image on other
        # pixels must not undo these atoms onto them.
        self.fingerprint: int | None = None
        if budget is not None:
            budget._register(self)

    def push(self, atom: EditAtom) -> None:
        """Record a new edit; the redo stack is dropped, the budget may evict the oldest atoms."""
        with self._budget._lock:
            self._drop(self._redo)
            self._redo.clear()
            stored = _StoredAtom(atom, self._budget._next_seq())
            self._undo.append(stored)
            self.nbytes += stored.nbytes
            self._budget._charge(stored.nbytes)

    def undo(self) -> EditAtom | None:
        """Move the newest atom to the redo stack and return it (the caller restores its old values)."""
        with self._budget._lock:
            if not self._undo:
                return None
            stored = self._undo.pop()
            self._redo.append(stored)
            return stored.unpack()

    def redo(self) -> EditAtom | None:
        """Move the last undone atom back and return it (the caller re-applies its new values)."""
        with self._budget._lock:
            if not self._redo:
                return None
            stored = self._redo.pop()
            self._undo.append(stored)
            return stored.unpack()

    def clear(self) -> None:
        """Forget every atom of this image."""
        with self._budget._lock:
            self._drop(self._undo)
            self._drop(self._redo)
            self._undo.clear()
            self._redo.clear()
            self.fingerprint = None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_depth(self) -> int:
        """Number of atoms that can be undone."""
        return len(self._undo)

    @property
    def redo_depth(self) -> int:
        """Number of atoms that can be redone."""
        return len(self._redo)

    def _drop(self, stack: deque[_StoredAtom]) -> None:
        freed = sum(s.nbytes for s in stack)
        self.nbytes -= freed
        self._budget._charge(-freed)

    def _oldest(self) -> _StoredAtom | None:
        """The atom eviction would take from this history: the bottom of undo, else the far end of redo."""
        if self._undo:
            return self._undo[0]
        if self._redo:
            return self._redo[0]
        return None

    def _evict_oldest(self) -> int:
        stack = self._undo if self._undo else self._redo
        stored = stack.popleft()
        self.nbytes -= stored.nbytes
        return stored.nbytes


class HistoryBudget:
    """Per-image histories plus one memory cap for all of them together.

    Parameters
    ----------
    max_bytes : int
        Total bytes of stored atoms across all images; the oldest atoms (by push order, whichever
        image they belong to) are evicted when a push goes over. An atom larger than the whole budget
        is evicted at once, so that edit cannot be undone.
    """

    def __init__(self, max_bytes: int = DEFAULT_BUDGET_BYTES):
        if max_bytes <= 0:
            raise ValueError(f"history budget must be positive, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.total_bytes = 0
        self.evicted = 0
        self._histories: dict[str, EditHistory] = {}
        self._members: list[EditHistory] = []
        self._seq = itertools.count()
        # Reentrant: a history method holds it while it calls back into the budget.
        self._lock = threading.RLock()

    def history_for(self, name: str) -> EditHistory:
        """The history of image ``name``, created empty on first use and kept for the session."""
        with self._lock:
            hist = self._histories.get(name)
            if hist is None:
                hist = EditHistory(name, self)
                self._histories[name] = hist
            return hist

    def discard(self, name: str) -> None:
        """Drop the history of image ``name`` (for example after its edits were reverted)."""
        with self._lock:
            hist = self._histories.pop(name, None)
            if hist is not None:
                hist.clear()
                self._members.remove(hist)

    def names(self) -> list[str]:
        """Images that have a history in this budget."""
        return list(self._histories)

    def _register(self, hist: EditHistory) -> None:
        with self._lock:
            self._members.append(hist)

    def _next_seq(self) -> int:
        return next(self._seq)

    def _charge(self, nbytes: int) -> None:
        self.total_bytes += nbytes
        while self.total_bytes > self.max_bytes:
            victim = None
            for hist in self._members:
                oldest = hist._oldest()
                if oldest is not None and (victim is None or oldest.seq < victim[1]):
                    victim = (hist, oldest.seq)
            if victim is None:
                break
            self.total_bytes -= victim[0]._evict_oldest()
            self.evicted += 1


_DEFAULT: HistoryBudget | None = None
_DEFAULT_LOCK = threading.Lock()


def default_budget() -> HistoryBudget:
    """The process-wide budget (256 MB) that documents use unless given their own."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = HistoryBudget()
        return _DEFAULT
