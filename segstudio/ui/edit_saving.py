"""Saving, autosave, the crash journal and quitting with unsaved edits, for the editor.

:class:`EditPersistence` follows the window's review session:

* it opens the dataset's :class:`~segstudio.core.editing.store.ProjectStore` and attaches it as the journal of
  every document shown, so each committed stroke is on disk before the next one starts;
* on opening a dataset whose journal holds unsaved strokes it asks :meth:`ask_restore` and, if
  yes, replays them over the labels as last saved when each image is shown (one undo step);
* :meth:`save` writes a document's labels with ``core.io.saving`` (default ``<dataset>/corrected/``),
  marks the document and its journal saved and records the metrics before/after in the store;
* it autosaves on image switch and every N seconds, and :meth:`confirm_close` (an event filter on the
  window's close event) asks before quitting with unsaved edits.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox

from segstudio.core.errors import SegStudioError
from segstudio.core.editing.history import EditAtom
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.editing.review import likely_label_errors, metrics_summary, record_metrics
from segstudio.core.io.saving import save_ground_truth
from segstudio.core.editing.store import ProjectStore
from segstudio.core.tasks import TaskKind

__all__ = ["EditPersistence", "net_atom"]

Button = QMessageBox.StandardButton
HEADLESS_PLATFORMS = ("offscreen", "minimal")   # nobody can answer a dialog there


def can_ask() -> bool:
    """Whether a modal question can be answered (not on a headless Qt platform)."""
    return QGuiApplication.platformName() not in HEADLESS_PLATFORMS


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


def blank_labels(document) -> np.ndarray:
    """All-ignore labels of the dtype a document drafts for an image without ground truth."""
    wide = max(document.num_classes - 1, document.ignore_index) > 255
    return np.full(document.shape, document.ignore_index, dtype=np.uint16 if wide else np.uint8)


class EditPersistence(QObject):
    """Store, saving and recovery for the documents of the window's session (see module docstring)."""

    saved = Signal(str, str)              # image name, file written
    restored = Signal(str)                # image name whose journal was replayed
    store_closed = Signal()               # the project store was closed (window closing, other dataset)

    def __init__(self, window, settings, task_runner, parent: QObject | None = None):
        super().__init__(parent)
        self.window = window
        self.settings = settings
        self._task_runner = task_runner
        self.session = None
        self.store: ProjectStore | None = None
        self._documents: dict[str, object] = {}   # documents shown in this session, by name
        self._to_restore: set[str] = set()
        self._fresh_session = False
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self.apply_settings()
        window.installEventFilter(self)

    # --- dialogs (tests replace these) -----------------------------------------------------------
    def ask_restore(self, pending: dict[str, int]) -> bool:
        """Ask whether to restore the unsaved strokes found in the journal (headless: restore)."""
        if not can_ask():
            return True
        names = ", ".join(sorted(pending)[:5]) + (" …" if len(pending) > 5 else "")
        answer = QMessageBox.question(
            self.window, "Restore unsaved edits?",
            f"segstudio stopped with unsaved edits on {len(pending)} image(s): {names}.\n"
            "Restore them? (No discards them.)",
            Button.Yes | Button.No, Button.Yes)
        return answer == Button.Yes

    def ask_unsaved(self, names: list[str]) -> Button:
        """Save, Discard or Cancel before quitting with unsaved edits.

        Headless there is no one to ask: the answer is Ignore, which closes and leaves the edits in the
        journal, so the next launch offers to restore them (never blocks, never loses work).
        """
        if not can_ask():
            return Button.Ignore
        shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
        return QMessageBox.question(
            self.window, "Unsaved edits", f"Save the edits of {len(names)} image(s) ({shown}) before quitting?",
            Button.Save | Button.Discard | Button.Cancel, Button.Save)

    # --- settings -------------------------------------------------------------------------------
    def apply_settings(self) -> None:
        seconds = self.settings.autosave_seconds
        if seconds > 0:
            self.autosave_timer.start(seconds * 1000)
        else:
            self.autosave_timer.stop()

    def saved_labels_path(self, sample):
        """Where ``sample``'s corrected labels are saved; the dataset's format decides (None for COCO)."""
        dataset = self.session.dataset if self.session is not None else None
        if dataset is None:
            return None
        return dataset.kind.saved_labels(dataset, sample, self.settings.output_dir,
                                         overwrite=self.settings.overwrite)

    # --- session and documents ------------------------------------------------------------------
    def attach(self, session) -> None:
        """The window opened another dataset: save the old one's edits, open the new store, offer recovery."""
        if session is self.session:
            return
        if self.session is not None and self.settings.autosave_on_switch:
            for document in self.modified_documents():
                self.save(document)
        self._close_store()
        self.session = session
        self._documents = {}
        self._to_restore = set()
        if session is None:
            return
        session.saved_labels = self.saved_labels_path
        self._fresh_session = True
        try:
            self.store = ProjectStore.for_dataset(session.root)
        except Exception as exc:  # noqa: BLE001 - sqlite3 / OSError: edit on without a journal
            self.store = None
            self.window.show_error("No crash journal", f"{session.root}: cannot open the project store: {exc}")
            return
        names = set(session.names)
        pending = {k: v for k, v in self.store.pending_recovery().items() if k in names}
        if pending:
            if self.ask_restore(pending):
                self._to_restore = set(pending)
            else:
                for name in pending:
                    self.store.clear(name)

    def track(self, document) -> None:
        """``document`` is now shown: journal it, load saved labels, restore it if pending."""
        self._documents[document.name] = document
        if self._fresh_session:
            self._fresh_session = False
            self._reload_saved(document)
        document.journal = self.store
        if document.name in self._to_restore:
            self._to_restore.discard(document.name)
            self._restore(document)
        self.record_before(document)

    def release(self, document) -> None:
        """``document`` is no longer shown: autosave it when that is on."""
        if document.modified and self.settings.autosave_on_switch:
            self.save(document)
        if not document.modified:
            self._documents.pop(document.name, None)

    def _reload_saved(self, document) -> None:
        """The first image of a dataset was decoded before the saved-labels lookup was set."""
        if document.modified or self.session is None:
            return
        index = self.session.dataset.index_of(document.name)
        sample = self.session.sample_to_load(index)
        if sample.mask_path != self.session.dataset[index].mask_path:
            document.set_ground_truth(sample.load_mask(), document.gt_instances)

    def _restore(self, document) -> None:
        base = document.gt if document.gt is not None else blank_labels(document)
        restored = self.store.replay(document.name, base)
        atom = net_atom(base, restored)
        self.store.clear(document.name)
        if atom is not None:
            document.apply(atom)        # journalled again as one stroke: undo returns to the saved labels
        self.restored.emit(document.name)

    def documents(self) -> list:
        """Documents shown in this session that may still change (the current one, unsaved ones)."""
        return list(self._documents.values())

    def modified_documents(self) -> list:
        return [d for d in self._documents.values() if d.modified]

    # --- saving ---------------------------------------------------------------------------------
    def save(self, document) -> bool:
        """Write ``document``'s labels in the dataset's format; False (and a message) on failure."""
        if document is None or document.gt is None or self.session is None:
            return False
        if document.in_stroke:
            document.commit_stroke()
        dataset = self.session.dataset
        try:
            sample = dataset[dataset.index_of(document.name)]
            result = save_ground_truth(dataset, sample, document.gt, out_dir=self.settings.output_dir,
                                       overwrite=self.settings.overwrite)
        except (SegStudioError, OSError, ValueError, KeyError) as exc:
            self.window.show_error("Cannot save", f"{document.name}: {exc}")
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
        """Timer tick: save every modified document not in the middle of a stroke."""
        for document in self.modified_documents():
            if not document.in_stroke:
                self.save(document)

    # --- metrics in the store -------------------------------------------------------------------
    def _before_inputs(self, document) -> tuple | None:
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

    def record_before(self, document) -> None:
        """Metrics of the original labels against the prediction, once per image, in the background.

        Decoding the original mask takes ~100 ms at 4096², too long for the GUI thread when a
        prediction arrives. The result is recorded only if, by then, the store is the same, the
        document is still tracked and still shows that prediction; a newer request supersedes it.
        """
        inputs = self._before_inputs(document)
        if inputs is None:
            return
        store, pred = self.store, document.pred

        def recorded(summary: dict | None) -> None:
            if summary is None or store is not self.store or document.pred is not pred \
                    or self._documents.get(document.name) is not document:
                return
            if (store.metrics(document.name) or {}).get("before") is None:
                record_metrics(store, document.name, before=summary)

        self._task_runner.submit(original_metrics, *inputs, kind=TaskKind.BEFORE_METRICS,
                                 key=(TaskKind.BEFORE_METRICS, document.name), on_returned=recorded)

    def record_after(self, document) -> None:
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

    # --- quitting -------------------------------------------------------------------------------
    def confirm_close(self) -> bool:
        """Ask about unsaved edits; True when the window may close.

        Save writes every edited image (a failure keeps the window open), Discard also clears their
        journal, Ignore closes and keeps the journal, Cancel keeps the window open.
        """
        for document in self._documents.values():
            if document.in_stroke:
                document.commit_stroke()
        modified = self.modified_documents()
        if modified:
            answer = self.ask_unsaved([d.name for d in modified])
            if answer == Button.Cancel:
                return False
            if answer == Button.Save and not self.save_all():
                return False
            if answer == Button.Discard and self.store is not None:
                for document in modified:
                    self.store.clear(document.name)
        self.autosave_timer.stop()
        self._close_store()
        return True

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self.window and event.type() == QEvent.Type.Close and not self.confirm_close():
            event.ignore()
            return True
        return False

    def _close_store(self) -> None:
        if self.store is None:
            return
        for document in self._documents.values():
            if document.journal is self.store:
                document.journal = None
        self.store.close()
        self.store = None
        self.store_closed.emit()
