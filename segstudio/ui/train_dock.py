"""The Train dock: options, start / cancel / resume, live loss and validation-mIoU curves, ETA.

The dock only binds widgets: the run is ``segstudio train`` in a child process (``TrainProcess``),
so the GUI never waits on torch and a crash of the run leaves the app up with a message. A model
written by the run is announced with ``model_trained(path, title, description)`` as soon as its first
checkpoint exists (the window adds it to the model selector); ``compare_requested(path)`` asks the
window to compare the new model with its parent on the validation images.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from segstudio.ui.model_dock import format_duration
from segstudio.ui.train_process import TrainProcess

__all__ = ["TrainDock"]

LABEL_CHOICES = (("Corrected where saved, else original", "corrected"), ("Original labels only", "original"),
                 ("Reviewed images only (accepted / fixed)", "reviewed"))
LOSS_CHOICES = (("Cross-entropy + Dice", "ce+dice"), ("Cross-entropy", "ce"), ("Focal", "focal"),
                ("Soft Dice", "dice"))
DEVICE_CHOICES = (("Auto (GPU if it passes the check)", "auto"), ("CUDA", "cuda"), ("CPU", "cpu"))
PRECISION_CHOICES = (("Auto", "auto"), ("float32", "fp32"), ("bfloat16", "bf16"), ("float16 (CUDA)", "fp16"))


class TrainDock(QWidget):
    model_trained = Signal(str, str, str)      # weights path, title, description
    compare_requested = Signal(str)            # weights path
    run_ended = Signal(str, str)               # outcome, message

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.process = TrainProcess(self)
        self.process.event_received.connect(self._on_event)
        self.process.ended.connect(self._on_ended)
        self.last_out: str | None = None
        self._last_arguments: list[str] | None = None
        self._announced: set[str] = set()
        self._loss_x: list[float] = []
        self._loss_y: list[float] = []
        self._miou_x: list[float] = []
        self._miou_y: list[float] = []
        self._steps_per_epoch = 1

        self.dataset = QLabel("No dataset open")
        self.dataset.setWordWrap(True)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.labels = _combo(LABEL_CHOICES)
        self.loss = _combo(LOSS_CHOICES)
        self.class_weights = QCheckBox("Weight classes by inverse frequency")
        self.epochs = _spin(1, 10000, 50)
        self.minutes = _spin(0, 100000, 0)
        self.minutes.setSpecialValueText("no limit")
        self.minutes.setSuffix(" min")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(1e-3)
        self.batch = _spin(1, 512, 4)
        self.crop = _spin(16, 4096, 512)
        self.crop.setSuffix(" px")
        self.val_share = QDoubleSpinBox()
        self.val_share.setRange(0.05, 0.9)
        self.val_share.setSingleStep(0.05)
        self.val_share.setValue(0.2)
        self.device = _combo(DEVICE_CHOICES)
        self.precision = _combo(PRECISION_CHOICES)
        self.precision.setToolTip("Arithmetic of the training steps. Auto: float16 on CUDA, bfloat16 on a CPU "
                                  "with native bfloat16 (AMX / AVX512-BF16, about 2x the steps), float32 "
                                  "elsewhere. Weights, loss and validation stay float32.")
        self.seed = _spin(0, 2 ** 31 - 1, 0)
        self.out = QLineEdit()
        self.out.setPlaceholderText("automatic: a new version in the dataset's models folder")
        self.extra = QLineEdit()
        self.extra.setPlaceholderText("more segstudio train options, e.g. --patience 5")
        self._dataset_path: str | None = None
        # () -> a note about images with unsaved edits (they train on their last saved labels), or None
        self.unsaved_note = lambda: None

        self.start_button = QPushButton("Train")
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.compare_button = QPushButton("Compare with parent")
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.process.cancel)
        self.resume_button.clicked.connect(self.resume)
        self.compare_button.clicked.connect(lambda: self.last_out and self.compare_requested.emit(self.last_out))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.loss_plot = pg.PlotWidget(title="Training loss")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen((80, 160, 255), width=1))
        self.miou_plot = pg.PlotWidget(title="Validation mIoU")
        self.miou_plot.setLabel("bottom", "epoch")
        self.miou_curve = self.miou_plot.plot([], [], pen=pg.mkPen((255, 170, 40), width=2), symbol="o",
                                              symbolSize=5, symbolBrush=(255, 170, 40))
        self.best_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((120, 220, 120), style=Qt.PenStyle.DashLine))
        self.best_line.setVisible(False)
        self.miou_plot.addItem(self.best_line)
        self.miou_plot.setYRange(0.0, 1.0, padding=0.02)
        self.miou_plot.enableAutoRange(axis="y", enable=False)
        for plot in (self.loss_plot, self.miou_plot):
            plot.setMinimumHeight(110)
            plot.showGrid(x=True, y=True, alpha=0.2)

        form = QFormLayout()
        form.addRow("Dataset", self.dataset)
        form.addRow("Start from", self.model)
        form.addRow("Labels", self.labels)
        form.addRow("Loss", self.loss)
        form.addRow("", self.class_weights)
        form.addRow(_row("Epochs", self.epochs, "Time", self.minutes))
        form.addRow(_row("LR", self.lr, "Batch", self.batch, "Crop", self.crop))
        form.addRow(_row("Validation", self.val_share, "Seed", self.seed))
        device = _row(self.device, "Precision", self.precision)
        device.setStretch(0, 1)
        form.addRow("Device", device)
        form.addRow("Save as", self.out)
        form.addRow("Options", self.extra)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.resume_button, self.compare_button):
            buttons.addWidget(button)
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.miou_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(plots, 1)
        self._set_running(False)

    # --- inputs ---------------------------------------------------------------------------------
    def set_dataset(self, path: str | None) -> None:
        self._dataset_path = path
        self.dataset.setText(path or "No dataset open")
        self._set_running(self.process.is_running())

    def set_models(self, specs: list[str], current: str | None = None) -> None:
        """The model choices (the model selector's), with ``current`` selected."""
        text = current or self.model.currentText()
        self.model.clear()
        self.model.addItems(specs)
        self.model.setCurrentText(text)

    def arguments(self) -> list[str]:
        """The ``segstudio train`` arguments the form says (``ValueError`` for bad extra options)."""
        args = ["--dataset", self._dataset_path or "", "--model", self.model.currentText().strip(),
                "--labels", self.labels.currentData(), "--loss", self.loss.currentData(),
                "--class-weights", "auto" if self.class_weights.isChecked() else "none",
                "--epochs", str(self.epochs.value()), "--lr", f"{self.lr.value():g}",
                "--batch-size", str(self.batch.value()), "--crop", str(self.crop.value()),
                "--val-split", f"{self.val_share.value():g}", "--device", self.device.currentData(),
                "--precision", self.precision.currentData(), "--seed", str(self.seed.value())]
        if self.minutes.value():
            args += ["--max-minutes", str(self.minutes.value())]
        if self.out.text().strip():
            args += ["--out", self.out.text().strip()]
        return args + shlex.split(self.extra.text())

    # --- running --------------------------------------------------------------------------------
    def start(self) -> bool:
        if self.process.is_running() or not self._dataset_path:
            return False
        if not self.model.currentText().strip():
            self.status.setText("Choose the model to start from.")
            return False
        try:
            arguments = self.arguments()
        except ValueError as exc:
            self.status.setText(f"Options: {exc}")
            return False
        started = self._launch(arguments)
        note = self.unsaved_note()
        if started and note:
            self.status.setText(f"Starting the training process… {note}")
        return started

    def resume(self) -> bool:
        """Carry the last run on from its checkpoint, with the form's settings (raise Epochs to train
        longer); the output is the last run's."""
        if self.process.is_running() or not self._last_arguments or not self.last_out:
            return False
        try:
            arguments = self.arguments()
        except ValueError as exc:
            self.status.setText(f"Options: {exc}")
            return False
        if "--out" in arguments:
            at = arguments.index("--out")
            del arguments[at:at + 2]
        return self._launch(arguments + ["--out", self.last_out, "--resume"])

    def _launch(self, arguments: list[str]) -> bool:
        self._last_arguments = arguments
        resuming = "--resume" in arguments
        if not resuming:
            self._loss_x, self._loss_y, self._miou_x, self._miou_y = [], [], [], []
            self.loss_curve.setData([], [])
            self.miou_curve.setData([], [])
            self.best_line.setVisible(False)
        self.progress.setRange(0, 0)
        self.status.setText("Starting the training process…")
        self.process.start(arguments)
        self._set_running(True)
        return True

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running and bool(self._dataset_path))
        self.cancel_button.setEnabled(running)
        self.resume_button.setEnabled(not running and bool(self.last_out and self._last_arguments))
        self.compare_button.setEnabled(not running and bool(self.last_out) and Path(self.last_out).is_file())

    # --- events ---------------------------------------------------------------------------------
    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "output":
            self.last_out = event.get("out")
        elif kind == "loading":
            self.status.setText(f"Reading {event.get('images')} labelled images ({event.get('corrected')} corrected)…")
        elif kind == "start":
            self._steps_per_epoch = max(1, int(event.get("steps_per_epoch") or 1))
            total = self._steps_per_epoch * int(event.get("epochs") or 1)
            self.progress.setRange(0, total)
            self.progress.setValue(int(event.get("resumed_at_step") or 0))
            self.status.setText(f"Training on {event.get('train_images')} images, validating on "
                                f"{event.get('val_images')} · {event.get('device')}")
        elif kind == "baseline":
            miou = event.get("val_miou")
            if miou is not None:
                self._miou_x.append(0.0)
                self._miou_y.append(miou)
                self.miou_curve.setData(self._miou_x, self._miou_y)
        elif kind == "step":
            self._loss_x.append(event["step"] / self._steps_per_epoch)
            self._loss_y.append(event["loss"])
            self.loss_curve.setData(self._loss_x, self._loss_y)
            self.progress.setValue(int(event["step"]))
            self._show_timing(event, f"epoch {event['epoch']} · loss {event['loss']:.4f}")
        elif kind == "epoch":
            if event.get("val_miou") is not None:
                self._miou_x.append(float(event["epoch"]))
                self._miou_y.append(event["val_miou"])
                self.miou_curve.setData(self._miou_x, self._miou_y)
            if event.get("best_miou") is not None:
                self.best_line.setValue(event["best_miou"])
                self.best_line.setVisible(True)
            best = event.get("best_miou")
            self._show_timing(event, f"epoch {event['epoch']}/{event['epochs']} · val mIoU "
                              f"{_fmt(event.get('val_miou'))} (best {_fmt(best)} at {event.get('best_epoch')})")
        elif kind == "checkpoint":
            path = event.get("path")
            self.last_out = path
            self.model_trained.emit(path, f"{Path(path).stem} (val mIoU {_fmt(event.get('val_miou'))})",
                                    f"Fine-tuned from {self.model.currentText()}, epoch {event.get('epoch')}")
            self._announced.add(path)

    def _show_timing(self, event: dict, head: str) -> None:
        elapsed = event.get("elapsed") or 0.0
        eta = event.get("eta")
        tail = f" · about {format_duration(eta)} left" if eta is not None else ""
        self.status.setText(f"{head} · {format_duration(elapsed)} elapsed{tail}")

    def _on_ended(self, outcome: str, message: str) -> None:
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.status.setText(message)
        self._set_running(False)
        self.run_ended.emit(outcome, message)

    def shutdown(self) -> None:
        """Stop a running child (the window is closing): quietly, no "crashed" message for a kill we made."""
        if self.process.is_running():
            self.process.ended.disconnect(self._on_ended)
            self.process.kill()
            self.process.ended.connect(self._on_ended)


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


def _row(*parts) -> QHBoxLayout:
    """A form row of widgets, a text standing for a label before the widget it names."""
    row = QHBoxLayout()
    for part in parts:
        row.addWidget(QLabel(part) if isinstance(part, str) else part)
    return row


def _combo(choices) -> QComboBox:
    combo = QComboBox()
    for title, value in choices:
        combo.addItem(title, value)
    return combo


def _spin(low: int, high: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin
