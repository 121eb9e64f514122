"""The editing service: the project store, saving, recovery and before/after metrics, without Qt.

One :class:`EditingService` follows the window's review session:

* :meth:`EditingService.open_store` opens the dataset's :class:`~segstudio.core.editing.store.ProjectStore`;
  documents are built with it as their journal, so each committed stroke is on disk before the next
  (when the journal cannot be written, the store keeps the entries in memory and retries, and the
  service reports ``journal_status(reason)``, then ``journal_status(None)`` once they are written);
* :meth:`EditingService.attach` makes a session current: the previous one's edits are saved (when
  autosave on switch is on), its store closed, and unsaved strokes found in the new journal are offered
  back through :meth:`EditingAsker.ask_restore`; they are replayed over the labels as last saved when
  each image is first shown (:meth:`EditingService.track`), as one undo step;
* :meth:`EditingService.save` writes a document's labels with ``core.io.saving`` (default
  ``<dataset>/corrected/``), marks the document and its journal saved and records the metrics
  before/after in the store;
* :meth:`EditingService.labels_source` is the saved-labels policy: where a sample's corrections are,
  so a session opens every image on them (the dataset's format decides; COCO: the corrected JSON);
* when another live app instance has the dataset open, :meth:`EditingService.attach` asks
  :meth:`EditingAsker.ask_other_instance`: ``TAKE_OVER`` edits here too (each instance journals in its
  own session of the store; the last save of an image wins), ``READ_ONLY`` opens it without saving
  (``read_only`` reports the reason; the editor disables its tools). Either way, the journal of dead
  instances is offered back only when no other instance is live, since the live one may have claimed it;
* :meth:`EditingService.confirm_close` asks :meth:`EditingAsker.ask_unsaved` before quitting with
  unsaved edits.

The Qt layer (``segstudio.ui.edit_saving``) supplies the dialogs, the autosave timer and the settings;
it hears back through the :class:`Notifier` attributes ``saved``, ``restored``, ``store_closed``,
``journal_status``, ``read_only`` and ``error``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from segstudio.core.editing.document import ImageDocument
from segstudio.core.editing.history import EditAtom
from segstudio.core.editing.review import likely_label_errors, metrics_summary, record_metrics
from segstudio.core.editing.store import OtherSession, ProjectStore
from segstudio.core.errors import SegStudioError
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.io.saving import save_ground_truth
from segstudio.core.tasks import Task, TaskKind

__all__ = ["EditingAsker", "EditingService", "Notifier", "OtherInstanceChoice", "SaveSettings", "TaskSubmitter",
           "UnsavedChoice",
           "metrics_against", "net_atom", "original_metrics"]

LabelSource = Callable[[Any], "Path | None"]


@dataclass(frozen=True)
class SaveSettings:
    """Where and when corrections are written (the editing settings, as plain values)."""

    output_dir: str | None = None        # None: <dataset>/corrected/
    overwrite: bool = False              # replace the original masks (a .bak is kept)
    autosave_seconds: int = 60           # 0: no timed autosave
    autosave_on_switch: bool = True      # save an image when another is shown


class UnsavedChoice(Enum):
    """The answer to "save before quitting?"."""

    SAVE = "save"            # write every edited image; a failure keeps the window open
    DISCARD = "discard"      # drop the edits and their journal
    CANCEL = "cancel"        # keep the window open
    # Close and leave the edits in the journal, so the next launch offers them back. What a headless
    # run answers: nobody can be asked, and neither blocking nor losing work is acceptable.
    KEEP = "keep"


class OtherInstanceChoice(Enum):
    """The answer to "another segstudio has this dataset open"."""

    TAKE_OVER = "take_over"  # edit here too; each instance journals apart, the last save wins
    READ_ONLY = "read_only"  # look, do not save (what a headless run answers: it cannot ask)


class EditingAsker(Protocol):
    """The decisions the service leaves to the user."""

    def ask_restore(self, pending: dict[str, int]) -> bool: ...
    def ask_unsaved(self, names: list[str]) -> UnsavedChoice: ...
    def ask_other_instance(self, others: list[OtherSession]) -> OtherInstanceChoice: ...


class TaskSubmitter(Protocol):
    """What the service needs from ``core.tasks.TaskRunner``."""

    def submit(self, fn: Callable[..., Any], *args: Any, kind: TaskKind, key: Any = None,
               **callbacks: Any) -> Task: ...


class Notifier:
    """A tiny observer list: ``connect(callback)`` returns the disconnector; ``emit(*args)`` calls all."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., None]] = []

    def connect(self, callback: Callable[..., None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


def net_atom(before: np.ndarray, after: np.ndarray) -> EditAtom | None:
    """One atom taking ``before`` to ``after`` (their differing pixels, in their bounding box)."""
    diff = before != after
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    changed = diff[y0:y1, x0:x1]
    return EditAtom((x0, y0, x1 - x0, y1 - y0), changed, before[y0:y1, x0:x1][changed],
                    after[y0:y1, x0:x1][changed])


def metrics_against(gt: np.ndarray, pred: np.ndarray, confidence: np.ndarray | None, num_classes: int,
                    ignore_index: int) -> dict:
    """The store's metrics summary of labels ``gt`` against a prediction (safe on a worker thread)."""
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(gt, pred)
    errors = None
    if confidence is not None:
        errors = likely_label_errors(gt, pred, confidence, ignore_index=ignore_index)
    return metrics_summary(cm, errors)


def original_metrics(_context, sample, pred: np.ndarray, confidence: np.ndarray | None, num_classes: int,
                     ignore_index: int) -> dict | None:
    """Decode ``sample``'s labels as on disk and summarise them against ``pred``; None when they cannot
    be read or do not fit (safe on a worker thread: it touches no document)."""
    try:
        original = sample.load_mask()
    except (SegStudioError, OSError):
        return None
    if original is None or original.shape != pred.shape:
        return None
    return metrics_against(original, pred, confidence, num_classes, ignore_index)


def blank_labels(document: ImageDocument) -> np.ndarray:
    """All-ignore labels of the dtype a document drafts for an image without ground truth."""
    wide = max(document.num_classes - 1, document.ignore_index) > 255
    return np.full(document.shape, document.ignore_index, dtype=np.uint16 if wide else np.uint8)


class EditingService:
    """Store, saving and recovery for the documents of one review session at a time.

    Parameters
    ----------
    ask : EditingAsker
        Asks the user about recovery and about quitting with unsaved edits.
    tasks : TaskSubmitter
        Where the "before" metrics are computed (decoding the original mask is O(image)).
    settings : SaveSettings
        Replaced with :meth:`update_settings`; read at each use, so a change applies at once.
    store_factory : callable, optional
        ``store_factory(dataset_root) -> ProjectStore``; ``ProjectStore.for_dataset`` by default.
    """

    def __init__(self, ask: EditingAsker, tasks: TaskSubmitter, settings: SaveSettings = SaveSettings(),
                 store_factory: Callable[[Path], ProjectStore] = ProjectStore.for_dataset):
        self.ask = ask
        self.tasks = tasks
        self.settings = settings
        self.store_factory = store_factory
        self.session = None
        self.store: ProjectStore | None = None
        self._documents: dict[str, ImageDocument] = {}   # documents shown in this session, by name
        self._to_restore: set[str] = set()
        self.saved = Notifier()          # (image name, file written)
        self.restored = Notifier()       # (image name) whose journal was replayed
        self.store_closed = Notifier()   # () the store was closed (quitting, another dataset)
        self.error = Notifier()          # (title, message) for the user
        self.journal_status = Notifier()  # (reason | None): journal writes failing / working again
        self.read_only = Notifier()      # (reason | None): the dataset opened read-only / editable again
        self.read_only_reason: str | None = None
        self._unsubscribe_journal: Callable[[], None] | None = None

    def update_settings(self, settings: SaveSettings) -> None:
        self.settings = settings

    # --- the saved-labels policy ----------------------------------------------------------------
    def labels_source(self, dataset) -> LabelSource:
        """``sample -> path`` of its saved corrections under the current settings (None: none can be
        read back per sample). Give it to the ``ReviewSession`` of ``dataset``; it may run on a worker
        thread (the browser's class scan), so it reads only the immutable settings value."""
        def saved_labels(sample) -> Path | None:
            settings = self.settings
            return dataset.kind.saved_labels(dataset, sample, settings.output_dir, overwrite=settings.overwrite)

        return saved_labels

    # --- session and documents ------------------------------------------------------------------
    def open_store(self, root) -> ProjectStore | None:
        """The project store of the dataset at ``root``, for a session about to open (None, reported
        through ``error``, when it cannot be opened: editing goes on without a journal)."""
        try:
            return self.store_factory(Path(root))
        except Exception as exc:  # noqa: BLE001 - sqlite3 / OSError: edit on without a journal
            self.error.emit("No crash journal", f"{root}: cannot open the project store: {exc}")
            return None

    def attach(self, session, store: ProjectStore | None) -> None:
        """Make ``session`` (with its store from :meth:`open_store`) current: save the previous
        session's edits when autosave on switch is on, close its store, offer recovery."""
        if session is self.session:
            return
        if self.session is not None and self.settings.autosave_on_switch:
            for document in self.modified_documents():
                self.save(document)
        self._close_store()
        self._set_read_only(None)
        self.session, self.store = session, store
        self._documents = {}
        self._to_restore = set()
        if session is None or store is None:
            return
        self._unsubscribe_journal = store.subscribe_journal_status(self.journal_status.emit)
        if store.journal_problem is not None:
            self.journal_status.emit(store.journal_problem)
        others = store.other_sessions()
        if others:
            if self.ask.ask_other_instance(others) is OtherInstanceChoice.READ_ONLY:
                first = others[0]
                self._set_read_only(f"read-only: segstudio (pid {first.pid} on {first.host}) has this "
                                    "dataset open; nothing is saved here")
            return      # the live instance may have claimed the dead ones' journal: not offered here
        names = set(session.names)
        pending = {k: v for k, v in store.pending_recovery().items() if k in names}
        if pending:
            if self.ask.ask_restore(pending):
                self._to_restore = set(pending)
            else:
                for name in pending:
                    store.clear(name)

    def _set_read_only(self, reason: str | None) -> None:
        if reason != self.read_only_reason:
            self.read_only_reason = reason
            self.read_only.emit(reason)

    def track(self, document: ImageDocument) -> None:
        """``document`` is now shown: follow it, restore it if pending, record its "before" metrics."""
        self._documents[document.name] = document
        if document.name in self._to_restore:
            self._to_restore.discard(document.name)
            self._restore(document)
        self.record_before(document)

    def release(self, document: ImageDocument) -> None:
        """``document`` is no longer shown: autosave it when that is on."""
        if document.modified and self.settings.autosave_on_switch and self.read_only_reason is None:
            self.save(document)
        if not document.modified:
            self._documents.pop(document.name, None)

    def _restore(self, document: ImageDocument) -> None:
        base = document.gt if document.gt is not None else blank_labels(document)
        damaged: list[int] = []
        restored = self.store.replay(document.name, base, damaged=damaged)
        atom = net_atom(base, restored)
        self.store.clear(document.name)
        if damaged:
            self.error.emit("Damaged journal", f"'{document.name}': {len(damaged)} journalled edit(s) "
                            "could not be read and were left out; the other edits were restored.")
        if atom is not None:
            document.apply(atom)        # journalled again as one stroke: undo returns to the saved labels
        self.restored.emit(document.name)

    def documents(self) -> list[ImageDocument]:
        """Documents shown in this session that may still change (the current one, unsaved ones)."""
        return list(self._documents.values())

    def modified_documents(self) -> list[ImageDocument]:
        return [d for d in self._documents.values() if d.modified]

    # --- saving ---------------------------------------------------------------------------------
    def save(self, document: ImageDocument | None) -> bool:
        """Write ``document``'s labels in the dataset's format; False (and an ``error``) on failure."""
        if document is None or document.gt is None or self.session is None:
            return False
        if self.read_only_reason is not None:
            self.error.emit("Cannot save", f"{document.name}: {self.read_only_reason}")
            return False
        if document.in_stroke:
            document.commit_stroke()
        dataset, settings = self.session.dataset, self.settings
        try:
            sample = dataset[dataset.index_of(document.name)]
            result = save_ground_truth(dataset, sample, document.gt, out_dir=settings.output_dir,
                                       overwrite=settings.overwrite)
        except (SegStudioError, OSError, ValueError, KeyError) as exc:
            self.error.emit("Cannot save", f"{document.name}: {exc}")
            return False
        document.mark_saved()
        if self.store is not None:
            self.store.mark_saved(document.name)
            self.record_after(document)
        self.saved.emit(document.name, str(result.path))
        return True

    def save_all(self) -> bool:
        return all([self.save(d) for d in self.modified_documents()])

    def autosave(self) -> None:
        """A timed autosave: save every modified document not in the middle of a stroke, and retry
        journal entries that could not be written."""
        if self.store is not None:
            self.store.flush_journal()
            self.store.heartbeat()
        if self.read_only_reason is not None:
            return
        for document in self.modified_documents():
            if not document.in_stroke:
                self.save(document)

    # --- metrics in the store -------------------------------------------------------------------
    def _before_inputs(self, document: ImageDocument) -> tuple | None:
        """Arguments of :func:`original_metrics` for ``document``; None when its "before" is recorded
        already or cannot be (no store, no prediction, not in the dataset)."""
        if self.store is None or document.pred is None or self.session is None:
            return None
        if (self.store.metrics(document.name) or {}).get("before") is not None:
            return None
        dataset = self.session.dataset
        try:
            sample = dataset[dataset.index_of(document.name)]
        except KeyError:
            return None
        return sample, document.pred, document.confidence, document.num_classes, document.ignore_index

    def record_before(self, document: ImageDocument) -> Task | None:
        """Metrics of the original labels against the prediction, once per image, in the background.

        Decoding the original mask takes ~100 ms at 4096², too long for the GUI thread when a
        prediction arrives. The result is recorded only if, by then, the store is the same, the
        document is still tracked and still shows that prediction; a newer request supersedes it.
        Returns the task (None when there is nothing to record).
        """
        inputs = self._before_inputs(document)
        if inputs is None:
            return None
        store, pred = self.store, document.pred

        def recorded(summary: dict | None) -> None:
            if summary is None or store is not self.store or document.pred is not pred \
                    or self._documents.get(document.name) is not document:
                return
            if (store.metrics(document.name) or {}).get("before") is None:
                record_metrics(store, document.name, before=summary)

        return self.tasks.submit(original_metrics, *inputs, kind=TaskKind.BEFORE_METRICS,
                                 key=(TaskKind.BEFORE_METRICS, document.name), on_returned=recorded)

    def record_after(self, document: ImageDocument) -> None:
        """Metrics of the labels as they are now, from the live comparison (O(C²), no pixel read);
        "before" first if the background one is not in yet (a save or an export needs both now)."""
        if self.store is None or document.pred is None or document.gt is None:
            return
        inputs = self._before_inputs(document)
        before = original_metrics(None, *inputs) if inputs is not None else None
        if before is not None:
            record_metrics(self.store, document.name, before=before)
        comparison = document.comparison
        record_metrics(self.store, document.name,
                       after=metrics_summary(comparison.confusion.copy(), comparison.label_errors_at()))

    def record_live_metrics(self) -> None:
        """The "after" metrics of every document that may have changed (before an export)."""
        for document in self.documents():
            self.record_after(document)

    # --- quitting -------------------------------------------------------------------------------
    def confirm_close(self) -> bool:
        """Ask about unsaved edits; True when the application may close (the store is closed then)."""
        for document in self._documents.values():
            if document.in_stroke:
                document.commit_stroke()
        modified = self.modified_documents()
        if modified and self.read_only_reason is None:     # read-only: edits stay in this journal
            answer = self.ask.ask_unsaved([d.name for d in modified])
            if answer is UnsavedChoice.CANCEL:
                return False
            if answer is UnsavedChoice.SAVE and not self.save_all():
                return False
            if answer is UnsavedChoice.DISCARD and self.store is not None:
                for document in modified:
                    self.store.clear(document.name)
        self._close_store()
        return True

    def _close_store(self) -> None:
        # The documents journalling into it belong to the session being left (or the window closing):
        # none is edited again, so none needs another journal.
        if self.store is None:
            return
        if self._unsubscribe_journal is not None:
            self._unsubscribe_journal()
            self._unsubscribe_journal = None
        problem = self.store.journal_problem
        self.store.close()
        self.store = None
        self._set_read_only(None)
        if problem is not None:
            self.journal_status.emit(None)   # that journal is gone; the next one reports for itself
        self.store_closed.emit()
