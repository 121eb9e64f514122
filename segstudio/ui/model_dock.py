"""The model dock: pick a model and a device, run it, watch progress, cancel.

The dock never touches torch: the registry listing comes from ``inference.catalog`` (names, kinds
and descriptions only, ``set_models``), the GPU report from the worker's GPU check (``set_gpu_report``),
which runs before the first model does or when the device list is opened (``device_info_requested``).
What the user picks leaves as a :class:`segstudio.ui.worker.ModelRequest`, resolved only when it runs;
a model file that is code (TorchScript, a torch.export program) leaves only once the user trusts
it (``request_to_run``, ADR 0016).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QMessageBox, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from segstudio.inference.model_trust import TrustAsker, is_torchscript, needs_trust, trust_file
from segstudio.ui.worker import ModelRequest

__all__ = ["ModelDock", "ModelFormDialog", "format_duration"]

SPEC_ROLE = Qt.ItemDataRole.UserRole
OVERRIDES_ROLE = Qt.ItemDataRole.UserRole + 1
FILE_ROLE = Qt.ItemDataRole.UserRole + 2      # added with "Load model file…" (not a registry entry)
DEVICES = (("Auto", "auto"), ("CUDA", "cuda"), ("Apple GPU (MPS)", "mps"), ("CPU", "cpu"))


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class _DeviceCombo(QComboBox):
    """The device list; opening it asks for the GPU check, whose answer fills in the CUDA entry."""

    popup_requested = Signal()

    def showPopup(self) -> None:  # noqa: N802 - Qt override
        self.popup_requested.emit()
        super().showPopup()


def has_model_card(path: str) -> bool:
    """Whether a model file or SMP directory comes with a model card (no torch needed)."""
    from segstudio.inference.model_card import SMP_CARD_NAME, card_path_for

    target = Path(path)
    if target.is_dir():
        return (target / SMP_CARD_NAME).is_file()
    return card_path_for(target).is_file()


def ask_to_trust(parent: QWidget | None, path: Path) -> bool:
    """The once-per-file question before a TorchScript model or torch.export program first runs."""
    kind = "TorchScript" if is_torchscript(path) else "a torch.export program"
    answer = QMessageBox.warning(
        parent, "Run code from this model file?",
        f"{path.name} contains code ({kind}), not just weights. Running it runs that code with "
        "your permissions. Before it runs it is checked for operations that touch files, the network or "
        "the process (such a file is refused), but the check is no sandbox.\n\nRun it only if you trust where it came from. "
        "Your answer is remembered for this exact file.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class ModelFormDialog(QDialog):
    """Asks for what a model file without a card cannot tell: classes, normalisation, input size."""

    def __init__(self, path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Describe {Path(path).name}")
        self.classes = QLineEdit()
        self.classes.setPlaceholderText("background, road, car  — or a class-table .json / names .txt")
        self.mean = QLineEdit("0.485, 0.456, 0.406")
        self.std = QLineEdit("0.229, 0.224, 0.225")
        self.channel_order = QComboBox()
        self.channel_order.addItems(["RGB", "BGR"])
        self.input_size = QLineEdit()
        self.input_size.setPlaceholderText("width x height, for models of one fixed size (e.g. 512 x 512)")
        form = QFormLayout(self)
        form.addRow(QLabel("No model card was found beside this file."))
        form.addRow("Classes", self.classes)
        form.addRow("Mean (0-1)", self.mean)
        form.addRow("Std (0-1)", self.std)
        form.addRow("Channel order", self.channel_order)
        form.addRow("Input size", self.input_size)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def overrides(self) -> dict:
        """The answers as ``resolve_model`` overrides (empty fields left out)."""
        result: dict = {"channel_order": self.channel_order.currentText()}
        text = self.classes.text().strip()
        if text:
            result["classes"] = text if Path(text).suffix in (".json", ".txt") else \
                [n.strip() for n in text.split(",") if n.strip()]
        for key, field in (("mean", self.mean), ("std", self.std)):
            values = [v.strip() for v in field.text().split(",") if v.strip()]
            if values:
                result[key] = tuple(float(v) for v in values)
        size = self.input_size.text().lower().replace("×", "x").replace(",", "x").split("x")
        if any(part.strip() for part in size):
            values = [int(part) for part in size if part.strip()]
            if len(values) != 2 or min(values) < 1:
                raise ValueError(f"input size {self.input_size.text()!r}: expected width x height")
            result["input_size"] = (values[0], values[1])
        return result


class ModelDock(QWidget):
    """Model list, device choice, run / cancel buttons and a progress bar with elapsed and ETA."""

    run_image_requested = Signal()
    run_dataset_requested = Signal()
    cancel_requested = Signal()
    selection_changed = Signal()
    device_info_requested = Signal()       # the device list was opened: the GPU check is wanted

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.trust_asker: TrustAsker = lambda path: ask_to_trust(self, path)
        self.models = QListWidget()
        self.models.currentItemChanged.connect(lambda *_: self.selection_changed.emit())
        self.load_file_button = QPushButton("Load model file…")
        self.load_file_button.clicked.connect(self.choose_model_file)
        self.device = _DeviceCombo()
        self.device.popup_requested.connect(self.device_info_requested)
        for title, value in DEVICES:
            self.device.addItem(title, value)
        self._set_device_entry("cuda", "CUDA (checking…)", enabled=False)
        self._set_device_entry("mps", None, enabled=False, shown=False)   # shown on Apple silicon only
        self.device.currentIndexChanged.connect(lambda *_: self.selection_changed.emit())
        self.run_image_button = QPushButton("Run on image")
        self.run_dataset_button = QPushButton("Run on dataset")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_image_button.clicked.connect(self.run_image_requested)
        self.run_dataset_button.clicked.connect(self.run_dataset_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.timing = QLabel("")
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self._job_specs: dict[int, str] = {}      # job id -> the spec it runs
        self._loaded_jobs: set[int] = set()       # jobs whose model loaded
        self._loaded: tuple[str, str] | None = None   # (spec, description) of the model last loaded
        self._registry_count = 0
        self.models.currentItemChanged.connect(lambda *_: self._describe_selection())
        self.models.setToolTip("Models that can run here; greyed entries say why they cannot")
        self.load_file_button.setToolTip("Add a model file (.pt, .pth, TorchScript, safetensors) to the list")
        self.run_image_button.setToolTip("Run the selected model on the image shown (Ctrl+R)")
        self.run_dataset_button.setToolTip("Run the selected model on every image of the dataset (Ctrl+Shift+R)")
        self.cancel_button.setToolTip("Stop the running model between images or tiles (Esc)")
        self.progress.setToolTip("Progress of the running model")

        device_row = QHBoxLayout()
        device_row.addWidget(QLabel("Device"))
        device_row.addWidget(self.device, 1)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_image_button)
        run_row.addWidget(self.run_dataset_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.models, 1)
        layout.addWidget(self.load_file_button)
        layout.addLayout(device_row)
        layout.addLayout(run_row)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        layout.addWidget(self.timing)
        layout.addWidget(self.info)

    # --- model list ---------------------------------------------------------------------------
    def add_model(self, spec: str, title: str | None = None, description: str = "",
                  overrides: dict | None = None) -> QListWidgetItem:
        """Add a model (or update the one with the same spec) and return its row."""
        item = self._item_for(spec)
        if item is None:
            item = QListWidgetItem()
            self.models.addItem(item)
        item.setText(title or spec)
        item.setToolTip(description or spec)
        item.setData(SPEC_ROLE, spec)
        item.setData(OVERRIDES_ROLE, tuple(sorted((overrides or {}).items())))
        return item

    def set_models(self, entries) -> None:
        """Fill the list from registry listings (``name``, ``description``), keeping the selection.
        An entry that cannot run here (``unavailable``: no weights) is greyed out with the reason."""
        selected = self.selected_spec()
        for entry in entries:
            reason = getattr(entry, "unavailable", None)
            item = self.add_model(entry.name, entry.name + (" — needs weights" if reason else ""),
                                  entry.description + (f"\nCannot run here: {reason}" if reason else ""))
            if reason:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
        if selected:
            self.select_spec(selected)
        self._registry_count = len(entries)
        self._describe_selection()

    def select_spec(self, spec: str) -> bool:
        item = self._item_for(spec)
        if item is None:
            item = self.add_model(spec)
            item.setData(FILE_ROLE, True)     # not a registry entry: a file remembered or given
        self.models.setCurrentItem(item)
        return True

    def selected_spec(self) -> str | None:
        item = self.models.currentItem()
        return item.data(SPEC_ROLE) if item is not None else None

    def selected_request(self) -> ModelRequest | None:
        item = self.models.currentItem()
        if item is None:
            return None
        return ModelRequest(item.data(SPEC_ROLE), self.device.currentData(), item.data(OVERRIDES_ROLE) or ())

    def request_to_run(self) -> ModelRequest | None:
        """The selected request if it may run: asks (once per file content) before running code."""
        request = self.selected_request()
        if request is None:
            return None
        untrusted = needs_trust(request.spec)
        if untrusted is not None:
            if not self.trust_asker(untrusted):
                self.info.setText(f"Not run: {untrusted.name} contains code you did not agree to run")
                return None
            trust_file(untrusted)
        return request

    def _item_for(self, spec: str) -> QListWidgetItem | None:
        for row in range(self.models.count()):
            if self.models.item(row).data(SPEC_ROLE) == spec:
                return self.models.item(row)
        return None

    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model file", "",
                                              "Models (*.pt *.pth *.ts *.pt2 *.onnx *.ckpt *.bin *.safetensors);;"
                                              "All files (*)")
        if not path:
            return
        self.add_model_file(path)

    def add_model_file(self, path: str) -> bool:
        """Check ``path`` (readable, a model format), ask what a file without a card cannot tell, and
        add it to the list selected. Returns False (saying why) when the file is refused or the
        questions are cancelled."""
        from segstudio.inference.catalog import model_file_problem

        problem = model_file_problem(path)
        if problem is not None:      # before asking for classes, mean and std of a file that cannot load
            self.info.setText(f"Cannot use {Path(path).name}: {problem}")
            box = QMessageBox(QMessageBox.Icon.Warning, "Cannot load model file", f"{path}\n\n{problem}",
                              QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()
            return False
        overrides = {}
        if not has_model_card(path):
            form = ModelFormDialog(path, self)
            if form.exec() != QDialog.DialogCode.Accepted:
                return False
            try:
                overrides = form.overrides()
            except ValueError as exc:
                self.info.setText(f"Not a number: {exc}")
                return False
        item = self.add_model(path, Path(path).name, path, overrides)
        item.setData(FILE_ROLE, True)
        self.select_spec(path)
        return True

    # --- devices ------------------------------------------------------------------------------
    def _set_device_entry(self, value: str, text: str | None, enabled: bool, shown: bool = True) -> None:
        index = self.device.findData(value)
        if text is not None:
            self.device.setItemText(index, text)
        self.device.model().item(index).setEnabled(enabled)
        self.device.view().setRowHidden(index, not shown)
        if not enabled and self.device.currentData() == value:
            self.device.setCurrentIndex(self.device.findData("auto"))

    def set_gpu_report(self, report: dict) -> None:
        """Describe the GPU choices from the GPU check (CUDA device name and free memory; MPS if present)."""
        if report.get("cuda_usable", report.get("cuda_available")):
            name = report.get("device_name") or "GPU"
            free = report.get("memory_free")
            free_text = f", {free / 2**30:.1f} GiB free" if isinstance(free, (int, float)) else ""
            self._set_device_entry("cuda", f"CUDA — {name}{free_text}", enabled=True)
        else:
            self._set_device_entry("cuda", "CUDA (not available)", enabled=False)
        mps = bool(report.get("mps_available"))
        self._set_device_entry("mps", None, enabled=mps, shown=mps)

    def set_device(self, device: str) -> None:
        index = self.device.findData(device)
        if index >= 0:
            self.device.setCurrentIndex(index)

    # --- progress -----------------------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.run_image_button.setEnabled(not busy)
        self.run_dataset_button.setEnabled(not busy)
        if busy:
            self.progress.setRange(0, 0)  # indeterminate until the first progress report
            self.timing.setText("Starting…")
        else:  # leave the bar full (or where a cancel stopped it) with the last timing text
            self.progress.setRange(0, max(self.progress.maximum(), 1))

    def set_progress(self, done: int, total: int, elapsed: float) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        eta = f", about {format_duration(elapsed * (total - done) / done)} left" if 0 < done < total else ""
        self.timing.setText(f"{done}/{total} · {format_duration(elapsed)} elapsed{eta}")

    # --- what ran, what failed --------------------------------------------------------------------
    def track_job(self, job: int, request: ModelRequest) -> None:
        """Job ``job`` runs ``request``: its load, failure or cancel is reported against that model."""
        self._job_specs[job] = request.spec

    def model_loaded(self, job: int, info) -> None:
        """The model of ``job`` is loaded: the label names it (the model really loaded, not the row
        selected now)."""
        self._loaded_jobs.add(job)
        classes = info.class_table.num_classes if info.class_table is not None else "?"
        name = info.name if info.name == info.spec or not Path(str(info.spec)).exists() else Path(info.spec).name
        self._loaded = (info.spec, f"Loaded: {name} · {info.kind} · {classes} classes · on {info.device_name}")
        self._describe_selection()

    def job_failed(self, job: int, message: str) -> None:
        """Say the job failed (never leave "Starting…"); a model file that could not even load leaves
        the list, so it is neither selected nor remembered."""
        first = message.splitlines()[0] if message else "failed"
        self.timing.setText(f"Failed: {first}")
        spec = self._job_specs.pop(job, None)
        if spec is None or job in self._loaded_jobs:
            return
        item = self._item_for(spec)
        if item is not None and item.data(FILE_ROLE):
            self.models.takeItem(self.models.row(item))
            self.info.setText(f"{item.text()} could not be loaded and was removed from the list: {first}")

    def job_cancelled(self, job: int) -> None:
        self._job_specs.pop(job, None)
        self.timing.setText("Cancelled")

    def _describe_selection(self) -> None:
        """The info line: the model loaded when it is the one selected, else what is selected."""
        spec = self.selected_spec()
        if self._loaded is not None and self._loaded[0] == spec:
            self.info.setText(self._loaded[1])
        elif spec is not None:
            item = self._item_for(spec)
            self.info.setText(f"Selected: {item.text()} (loads when it runs) · {self._registry_count} "
                              "models in the registry")
        else:
            self.info.setText(f"{self._registry_count} models in the registry")

    def show_model_info(self, info) -> None:
        """Show ``info`` as the model loaded (no job to attribute it to)."""
        self.model_loaded(-1, info)
