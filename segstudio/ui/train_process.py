"""``segstudio train --progress jsonl`` as a child process, read without ever blocking the GUI.

Training runs out of process so that a crash or an out-of-memory kill in torch never takes the app
down. ``TrainProcess`` starts the child with ``QProcess`` (the same command line the CLI takes),
turns every JSON line on its stdout into ``event_received(dict)``, cancels by writing ``cancel`` to
its stdin (a signal would not reach a Windows child; after a grace period it terminates, then kills
it), and ends with ``ended(outcome, message)``: ``complete``, ``early_stopped``, ``time_budget``,
``cancelled``, ``failed`` (bad input, exit 2) or ``crashed`` (killed, out of memory, any other
exit), with a message a user can act on.
"""
from __future__ import annotations

import json
import sys
from collections import deque

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

__all__ = ["TrainProcess", "train_command"]

CANCEL_GRACE_MS = 20000     # a step on a slow CPU can take a while; then terminate, then kill
KILL_GRACE_MS = 5000


def train_command(arguments: list[str]) -> tuple[str, list[str]]:
    """(program, arguments) running ``segstudio train ARGUMENTS`` with this very installation."""
    if getattr(sys, "frozen", False):        # the PyInstaller bundle: the executable is segstudio itself
        return sys.executable, ["train", *arguments]
    return sys.executable, ["-m", "segstudio", "train", *arguments]


class TrainProcess(QObject):
    """One training child process at a time."""

    event_received = Signal(dict)
    ended = Signal(str, str)            # outcome, message
    output_line = Signal(str)           # stderr lines (the log)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self._buffer = b""
        self._stderr = deque(maxlen=30)
        self._err_buffer = b""
        self._done: dict | None = None
        self._error: str | None = None
        self.paths: dict = {}
        self._cancelling = False
        self._escalate = QTimer(self)
        self._escalate.setSingleShot(True)
        self._escalate.timeout.connect(self._terminate)

    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int | None:
        return int(self.process.processId()) if self.is_running() else None

    def start(self, arguments: list[str]) -> None:
        """Start ``segstudio train ARGUMENTS --progress jsonl`` (``RuntimeError`` if one is running)."""
        if self.is_running():
            raise RuntimeError("a training run is already going")
        self._buffer, self._err_buffer, self._done, self._error = b"", b"", None, None
        self._stderr.clear()
        self.paths = {}
        self._cancelling = False
        program, args = train_command([*arguments, "--progress", "jsonl"])
        process = QProcess(self)
        process.setProgram(program)
        process.setArguments(args)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error_occurred)
        self.process = process
        process.start()

    def cancel(self) -> None:
        """Ask the child to stop after its current step (the best model so far is kept)."""
        if not self.is_running() or self._cancelling:
            return
        self._cancelling = True
        self.process.write(b"cancel\n")
        self._escalate.start(CANCEL_GRACE_MS)

    def kill(self) -> None:
        """Stop the child now (the app is closing)."""
        if self.is_running():
            self.process.kill()
            self.process.waitForFinished(KILL_GRACE_MS)

    def _terminate(self) -> None:
        if not self.is_running():
            return
        self.process.terminate()
        QTimer.singleShot(KILL_GRACE_MS, lambda: self.process.kill() if self.is_running() else None)

    # --- reading ---------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            try:
                event = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            if kind == "done":
                self._done = event
            elif kind == "error":
                self._error = str(event.get("message", ""))
            elif kind == "output":
                self.paths = event
            self.event_received.emit(event)

    def _read_stderr(self) -> None:
        self._err_buffer += bytes(self.process.readAllStandardError())
        *lines, self._err_buffer = self._err_buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._stderr.append(line)
                self.output_line.emit(line)

    def _finished(self, code: int, status) -> None:
        self._escalate.stop()
        self._read_stdout()
        self._read_stderr()
        outcome, message = self._outcome(code, status)
        self.ended.emit(outcome, message)

    def _error_occurred(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.ended.emit("failed", f"Could not start the training process ({self.process.errorString()}).")

    def _kept(self) -> str:
        """What survives the run: the best weights and the resumable checkpoint, where they exist."""
        from pathlib import Path  # noqa: PLC0415

        out = (self._done or {}).get("out") or self.paths.get("out")
        checkpoint = self.paths.get("checkpoint")
        parts = []
        parts.append(f" The best model so far is kept: {out}." if out and Path(out).is_file()
                     else " No model had been written yet.")
        if checkpoint and Path(checkpoint).is_file():
            parts.append(" Resume carries on from the last checkpoint.")
        return "".join(parts)

    def _outcome(self, code: int, status) -> tuple[str, str]:
        if self._done is not None and code in (0, 130):
            state = self._done.get("status", "complete")
            best = self._done.get("best_miou")
            figure = f"best validation mIoU {best:.3f}" if isinstance(best, (int, float)) else "no validation result"
            words = {"complete": "Training finished", "early_stopped": "Training stopped early (no better "
                     "validation mIoU for a while)", "time_budget": "Training used its time budget",
                     "cancelled": "Training cancelled"}.get(state, f"Training ended ({state})")
            return state, f"{words}: {figure}." + (self._kept() if state == "cancelled" else "")
        if code == 2 and status == QProcess.ExitStatus.NormalExit:
            reason = self._error or (self._stderr[-1] if self._stderr else "bad input")
            return "failed", f"Training could not start: {reason}"
        tail = "\n".join(list(self._stderr)[-5:])
        how = ("was killed or crashed (out of memory?)" if status == QProcess.ExitStatus.CrashExit
               else f"stopped unexpectedly (exit code {code})")
        return "crashed", (f"The training process {how}. segstudio itself is unaffected.{self._kept()}"
                           + (f"\n\nLast output:\n{tail}" if tail else ""))
