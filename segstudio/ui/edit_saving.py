"""The Qt binding of the editing service: dialogs, the autosave timer, settings and signals.

The business of saving, recovery and the before/after metrics is
:class:`segstudio.core.editing.service.EditingService`; :class:`EditPersistence` gives it what only Qt
has: the editing settings from ``QSettings`` (as a ``SaveSettings`` value), ``QMessageBox`` questions for
its asks, a ``QTimer`` for the timed autosave, Qt signals for what it reports, and
``journal_warning``, a status-bar label shown for as long as edits cannot be journalled or the
dataset is open read-only (another instance holds it). The window
owns one, puts the label in its status bar and asks :meth:`EditPersistence.confirm_close` from its
close event.
"""
from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from segstudio.core.editing.service import EditingService, OtherInstanceChoice, TaskSubmitter, UnsavedChoice
from segstudio.core.editing.store import OtherSession
from segstudio.ui.edit_settings import EditSettings

__all__ = ["EditPersistence", "can_ask"]

Button = QMessageBox.StandardButton
HEADLESS_PLATFORMS = ("offscreen", "minimal")   # nobody can answer a dialog there
CHOICES = {Button.Save: UnsavedChoice.SAVE, Button.Discard: UnsavedChoice.DISCARD,
           Button.Cancel: UnsavedChoice.CANCEL}


def can_ask() -> bool:
    """Whether a modal question can be answered (not on a headless Qt platform)."""
    return QGuiApplication.platformName() not in HEADLESS_PLATFORMS


class EditPersistence(QObject):
    """Qt face of an :class:`EditingService` (see the module docstring)."""

    saved = Signal(str, str)              # image name, file written
    restored = Signal(str)                # image name whose journal was replayed
    store_closed = Signal()               # the project store was closed (window closing, other dataset)
    journal_status_changed = Signal(str)  # why edits are not journalled; "" when they are again
    read_only_changed = Signal(str)       # why the dataset is read-only; "" when it is editable

    def __init__(self, settings: EditSettings, tasks: TaskSubmitter, dialog_parent: QWidget,
                 show_error: Callable[[str, str], object], parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self._dialog_parent = dialog_parent
        self._preset_unsaved: UnsavedChoice | None = None
        self.service = EditingService(self, tasks, settings.save_settings())
        self.service.saved.connect(self.saved.emit)
        self.service.restored.connect(self.restored.emit)
        self.service.store_closed.connect(self.store_closed.emit)
        self.service.error.connect(show_error)
        self.journal_warning = QLabel()
        self.journal_warning.setStyleSheet("color: #b00020; font-weight: bold")
        self.journal_warning.hide()
        self._journal_problem: str | None = None
        self.service.journal_status.connect(self._on_journal_status)
        self.service.read_only.connect(self._on_read_only)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.service.autosave)
        self.apply_settings()

    def _on_journal_status(self, problem: str | None) -> None:
        """Keep the warning up while journal writes fail (editing goes on; the store retries)."""
        self._journal_problem = problem
        self._show_warning()
        self.journal_status_changed.emit(problem or "")

    def _on_read_only(self, reason: str | None) -> None:
        self._show_warning()
        self.read_only_changed.emit(reason or "")

    def _show_warning(self) -> None:
        """The label says what is wrong for as long as it is: read-only, journal writes failing, or both."""
        lines, tips = [], []
        if self.service.read_only_reason:
            lines.append(self.service.read_only_reason)
            tips.append("Another segstudio instance has this dataset open. Reopen the dataset once it "
                        "has quit (or choose Take over) to edit here.")
        if self._journal_problem:
            lines.append(f"edits are not being journalled: {self._journal_problem}")
            tips.append("A crash now would lose the edits made since. segstudio keeps them in memory and "
                        "writes them as soon as it can; saving writes the labels themselves.")
        self.journal_warning.setText(" · ".join(lines))
        self.journal_warning.setToolTip("\n".join(tips))
        self.journal_warning.setVisible(bool(lines))

    # --- the service's asks (tests replace these) -----------------------------------------------
    def ask_restore(self, pending: dict[str, int]) -> bool:
        """Ask whether to restore the unsaved strokes found in the journal (headless: restore)."""
        if not can_ask():
            return True
        answer = QMessageBox.question(self._dialog_parent, "Restore unsaved edits?", restore_question(pending),
                                      Button.Yes | Button.No, Button.Yes)
        return answer == Button.Yes

    def ask_other_instance(self, others: list[OtherSession]) -> OtherInstanceChoice:
        """Another instance holds the dataset: take over or open read-only (headless: read-only)."""
        if not can_ask():
            return OtherInstanceChoice.READ_ONLY
        who = "; ".join(f"pid {o.pid} on {o.host}, since {time.strftime('%H:%M', time.localtime(o.started))}"
                        for o in others[:3])
        box = QMessageBox(QMessageBox.Icon.Warning, "Dataset open elsewhere",
                          f"Another segstudio has this dataset open ({who}).\n\n"
                          "Read-only: look without saving. Take over: edit here too; each instance keeps "
                          "its own crash journal, and the last save of an image wins.", parent=self._dialog_parent)
        read_only = box.addButton("Open read-only", QMessageBox.ButtonRole.RejectRole)
        box.addButton("Take over", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(read_only)
        box.exec()
        return OtherInstanceChoice.READ_ONLY if box.clickedButton() is read_only else OtherInstanceChoice.TAKE_OVER

    def ask_unsaved(self, names: list[str]) -> UnsavedChoice:
        """Save, Discard or Cancel before quitting with unsaved edits; headless: keep them in the journal."""
        if self._preset_unsaved is not None:
            return self._preset_unsaved
        if not can_ask():
            return UnsavedChoice.KEEP
        answer = QMessageBox.question(self._dialog_parent, "Unsaved edits", unsaved_question(names, self.settings),
                                      Button.Save | Button.Discard | Button.Cancel, Button.Save)
        return CHOICES.get(answer, UnsavedChoice.CANCEL)

    def answer_unsaved_with(self, choice: UnsavedChoice | None) -> None:
        """Answer "save before quitting?" with ``choice`` from now on, without a dialog (scripted runs
        such as the benchmarks); None asks again."""
        self._preset_unsaved = choice

    # --- settings and closing -------------------------------------------------------------------
    def apply_settings(self) -> None:
        """The editing settings changed: hand the service the new values and re-arm the timer."""
        values = self.settings.save_settings()
        self.service.update_settings(values)
        if values.autosave_seconds > 0:
            self.autosave_timer.start(values.autosave_seconds * 1000)
        else:
            self.autosave_timer.stop()

    def confirm_close(self) -> bool:
        """Whether the window may close (asked about unsaved edits); stops autosaving when it may."""
        if not self.service.confirm_close():
            return False
        self.autosave_timer.stop()
        return True


def _listed(names, limit: int = 5) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def unsaved_question(names: list[str], settings: EditSettings) -> str:
    """The quit question, honest about what Discard does when autosave has already written images."""
    values = settings.save_settings()
    autosaves = values.autosave_seconds > 0 or values.autosave_on_switch
    text = f"Save the edits of {len(names)} image(s) ({_listed(names)}) before quitting?\n\n"
    text += "Discard drops the edits made since each of these images was last saved."
    if autosaves:
        text += (" Images already saved, by you or by autosave, keep what was saved: Discard does not "
                 "undo an autosave (reopen the image and use Undo, or turn autosave off in "
                 "Edit › Editing settings…).")
    return text


def restore_question(pending: dict[str, int]) -> str:
    """The crash-restore question: which images, how many journalled steps each, and what state they
    come back in."""
    lines = [f"  {name}: {count} step{'s' if count != 1 else ''} (strokes, fills, undos, redos)"
             for name, count in sorted(pending.items())[:8]]
    if len(pending) > 8:
        lines.append(f"  … and {len(pending) - 8} more image(s)")
    return (f"segstudio stopped with unsaved edits on {len(pending)} image(s):\n" + "\n".join(lines) +
            "\n\nYes brings each image back as it was after its last finished stroke, with its undo "
            "history; a stroke still being drawn at the stop is not restored. The files on disk are not "
            "changed until you save.\nNo discards these edits for good.")
