"""Model loading and inference off the GUI thread.

An :class:`InferenceWorker` lives in its own ``QThread`` and runs jobs one at a time; the GUI talks
to it only through an :class:`InferenceController`, which hands out job ids, keeps a
``CancelToken`` per job and shuts the thread down cleanly. Every result travels back through a
queued signal as plain numpy arrays (the runner's :class:`segstudio.core.evaluation.prediction.Prediction`)
tagged with its job id and image name; the GUI decides where it belongs. torch is imported here,
in the worker thread, by the first job that needs it (a model, or the GPU check), never on the GUI
thread and never for a predictions folder.
"""
from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from contextlib import closing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from segstudio.core.errors import SegStudioError
from segstudio.core.editing.session import compute_stats, load_prediction_file
from segstudio.inference.cancel import CancelToken

__all__ = ["ModelRequest", "InferenceController", "InferenceWorker", "JobKind", "ModelInfo"]


@dataclass(frozen=True)
class ModelRequest:
    """Which model to run where: a registry name or file, a device, and user overrides."""

    spec: str
    device: str = "auto"
    overrides: tuple[tuple[str, Any], ...] = ()
    probabilities: bool = False     # also return per-pixel class probabilities (the label-error scan)

    @property
    def key(self) -> tuple:
        return (self.spec, self.device, tuple((k, repr(v)) for k, v in self.overrides), self.probabilities)


@dataclass
class ModelInfo:
    """What the GUI learns about a loaded model (no torch objects cross the thread boundary)."""

    spec: str
    name: str
    kind: str
    class_table: Any
    device_name: str


class JobKind(Enum):
    """What a worker job does (the worker's ``_runs`` maps each to its method)."""

    GPU_CHECK = "gpu"
    LOAD_MODEL = "load"
    IMAGE = "image"
    DATASET = "dataset"
    FILES = "files"
    LABEL_ERRORS = "label-errors"
    CALL = "call"           # any callable that belongs on this lane (a prompt model's image encoder)


@dataclass
class _Job:
    job_id: int
    kind: JobKind
    cancel: CancelToken | None = None
    model: ModelRequest | None = None
    image_name: str = ""
    image: Any = None
    dataset: Any = None
    indices: list[int] = field(default_factory=list)
    files: dict = field(default_factory=dict)   # dataset index -> prediction mask file
    labels: dict = field(default_factory=dict)  # dataset index -> sample whose mask scores it
    binary_mapping: dict | None = None          # how {0, 255} prediction masks read (FILES)
    scan_items: list = field(default_factory=list)   # label-error scan: core ScanItem per image
    min_area: int = 1
    call: Any = None                            # JobKind.CALL: fn(*args) run in the worker thread
    args: tuple = ()


def _default_runner_factory(request: ModelRequest):
    from segstudio.inference.registry import resolve_model
    from segstudio.inference.runner import Runner

    entry = resolve_model(request.spec, **dict(request.overrides))
    if request.probabilities:
        return Runner(entry, device=request.device, probabilities=True)
    return Runner(entry, device=request.device)


def _default_gpu_check() -> dict:
    from segstudio.inference.gpu_check import gpu_check

    return gpu_check()


class InferenceWorker(QObject):
    """Runs jobs in the worker thread. Use it through :class:`InferenceController`."""

    started = Signal(int, str)              # job_id, image name ('' for a dataset job)
    progress = Signal(int, int, int)        # job_id, done, total
    finished = Signal(int, str, object)     # job_id, image name, Prediction
    failed = Signal(int, str)               # job_id, message
    cancelled = Signal(int)                 # job_id
    job_ended = Signal(int)                 # job_id, after finished/failed/cancelled
    model_loaded = Signal(int, object)      # job_id, ModelInfo
    gpu_checked = Signal(object)            # gpu_check() report dict
    label_errors_found = Signal(int, object)   # job_id, core ScanResult
    called = Signal(int, object)            # job_id, ("returned", value) | ("errored", exception)

    def __init__(self, runner_factory: Callable[[ModelRequest], Any] | None = None,
                 gpu_check: Callable[[], dict] | None = None, cache_size: int = 2):
        super().__init__()
        self._runner_factory = runner_factory or _default_runner_factory
        self._gpu_check = gpu_check or _default_gpu_check
        self._gpu_reported = False
        self._runners: OrderedDict[tuple, Any] = OrderedDict()
        self._cache_size = cache_size
        self._runs = {JobKind.GPU_CHECK: self._run_gpu, JobKind.LOAD_MODEL: self._run_load,
                      JobKind.IMAGE: self._run_image, JobKind.DATASET: self._run_dataset, JobKind.FILES: self._run_files,
                      JobKind.LABEL_ERRORS: self._run_label_errors,
                      JobKind.CALL: self._run_call}

    @Slot(object)
    def run_job(self, job: _Job) -> None:
        if job.cancel is not None and job.cancel.cancelled:
            self.cancelled.emit(job.job_id)
            self.job_ended.emit(job.job_id)
            return
        self.started.emit(job.job_id, job.image_name)
        try:
            self._runs[job.kind](job)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the user, not kill the thread
            # Whatever a cancelled job raised on its way out (the runner's Cancelled, ours) is a cancel.
            if job.cancel is not None and job.cancel.cancelled:
                self.cancelled.emit(job.job_id)
            else:
                self.failed.emit(job.job_id, _describe(exc))
        self.job_ended.emit(job.job_id)

    def _run_gpu(self, job: _Job | None = None) -> None:
        self._gpu_reported = True
        self.gpu_checked.emit(self._gpu_check())

    def _runner(self, request: ModelRequest):
        if not self._gpu_reported:   # the first model job says which devices work before it loads
            self._run_gpu()
        runner = self._runners.get(request.key)
        if runner is None:
            runner = self._runner_factory(request)
            self._runners[request.key] = runner
            while len(self._runners) > self._cache_size:
                self._runners.popitem(last=False)
        self._runners.move_to_end(request.key)
        return runner

    def _model_info(self, request: ModelRequest, runner) -> ModelInfo:
        entry = runner.entry
        return ModelInfo(request.spec, entry.name, entry.kind, entry.class_table, runner.device_name)

    def _run_load(self, job: _Job) -> None:
        runner = self._runner(job.model)
        self.model_loaded.emit(job.job_id, self._model_info(job.model, runner))

    def _run_image(self, job: _Job) -> None:
        runner = self._runner(job.model)
        self.model_loaded.emit(job.job_id, self._model_info(job.model, runner))
        result = runner.predict(job.image, cancel=job.cancel,
                                progress=lambda done, total: self.progress.emit(job.job_id, done, total))
        job.cancel.raise_if_cancelled()
        self.finished.emit(job.job_id, job.image_name, result)

    def _run_call(self, job: _Job) -> None:
        """Run ``job.call``; its outcome goes to ``called`` only (never the prediction signals)."""
        try:
            value = job.call(*job.args)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, which reports it
            self.called.emit(job.job_id, ("errored", exc))
        else:
            self.called.emit(job.job_id, ("returned", value))

    def _run_dataset(self, job: _Job) -> None:
        """The runner's dataset stream (decoding ahead, batching); each image scored against its labels."""
        runner = self._runner(job.model)
        self.model_loaded.emit(job.job_id, self._model_info(job.model, runner))
        table = job.dataset.class_table
        total = len(job.indices)
        problems: list[str] = []
        self.progress.emit(job.job_id, 0, total)
        results = runner.predict_dataset(
            job.dataset, job.indices, cancel=job.cancel,
            progress=lambda done, _total: self.progress.emit(job.job_id, done, total),
            on_error=lambda index, exc: problems.append(_describe(exc)))
        predicted = 0
        with closing(results):   # a cancel raised here stops the runner's loader thread at once
            for index, prediction in results:
                _with_stats(prediction, job.labels.get(index, job.dataset[index]), table)
                job.cancel.raise_if_cancelled()
                self.finished.emit(job.job_id, job.dataset[index].name, prediction)
                predicted += 1
        if problems:   # the runner counts only what it predicted: the skipped images were done too
            self.progress.emit(job.job_id, total, total)
        self._report_problems(job, problems, f"{predicted} of {total} images predicted; "
                                             f"{len(problems)} could not be read or predicted")

    def _run_files(self, job: _Job) -> None:
        """Read a predictions folder: every readable file becomes a prediction; bad ones are listed."""
        table = job.dataset.class_table
        problems = []
        total = len(job.files)
        for done, (index, path) in enumerate(sorted(job.files.items()), start=1):
            job.cancel.raise_if_cancelled()
            sample = job.dataset[index]
            try:
                prediction = load_prediction_file(path, sample, table, job.binary_mapping)
                _with_stats(prediction, job.labels.get(index, sample), table)
            except SegStudioError as exc:
                problems.append(str(exc))
            else:
                self.finished.emit(job.job_id, sample.name, prediction)
            self.progress.emit(job.job_id, done, total)
        self._report_problems(job, problems, f"{len(problems)} prediction file(s) could not be read")

    def _run_label_errors(self, job: _Job) -> None:
        """Two passes of the model over the scan's images (thresholds, then regions), probabilities
        streamed and dropped image by image: memory stays O(one image) whatever the dataset's size."""
        from segstudio.core.evaluation.label_error_scan import scan_label_errors
        from segstudio.core.evaluation.report import _lookup

        runner = self._runner(job.model)
        self.model_loaded.emit(job.job_id, self._model_info(job.model, runner))
        indices = [item.index for item in job.scan_items]
        problems: list[str] = []
        streams = []

        def open_pass():
            stream = runner.predict_dataset(job.dataset, indices, cancel=job.cancel,
                                            on_error=lambda index, exc: problems.append(_describe(exc)))
            streams.append(stream)
            lookup = _lookup(stream)

            def probabilities(index, sample, shape):
                prediction = lookup(index, sample)
                return None if prediction is None else prediction.probabilities
            return probabilities

        progress = _Progress(self.progress, job.job_id)
        table = job.dataset.class_table
        scan = scan_label_errors(progress, job.scan_items, open_pass, table.num_classes, table.ignore_index,
                                 job.min_area)
        try:
            while True:
                job.cancel.raise_if_cancelled()
                next(scan)
        except StopIteration as stop:
            result = stop.value
        finally:
            scan.close()
            for stream in streams:
                stream.close()
        result.problems[:0] = sorted(set(problems))
        self.label_errors_found.emit(job.job_id, result)

    def _report_problems(self, job: _Job, problems: list[str], what: str) -> None:
        """One ``failed`` for the files a job skipped; the job's other results stand."""
        if problems:
            shown = "\n".join(problems[:10]) + (f"\n… and {len(problems) - 10} more" if len(problems) > 10 else "")
            self.failed.emit(job.job_id, f"{what}:\n{shown}")


class _Progress:
    """The ``context.progress`` a core generator reports to, relayed as the worker's progress signal."""

    def __init__(self, signal, job_id: int):
        self._signal, self._job_id = signal, job_id

    def progress(self, done: int, total: int) -> None:
        self._signal.emit(self._job_id, done, total)


def _with_stats(prediction, labels_sample, table):
    """Attach the image's confusion statistics against ``labels_sample``'s mask: the labels as the
    session loads them, i.e. the saved correction when there is one (None when the mask is absent
    or unreadable)."""
    try:
        gt = labels_sample.load_mask()
    except SegStudioError:
        gt = None  # a bad mask leaves the image without statistics; the run goes on
    prediction.stats = compute_stats(gt, prediction.mask, table.num_classes, table.ignore_index)
    return prediction


def _describe(exc: BaseException) -> str:
    from segstudio.inference.model_file import InputSizeNeeded  # noqa: PLC0415 - no torch

    if isinstance(exc, InputSizeNeeded):
        return exc.window_message   # the card and the load dialog, not command-line flags
    if isinstance(exc, SegStudioError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class InferenceController(QObject):
    """The GUI side of the worker: submits jobs, cancels them, owns and stops the thread.

    Its signals mirror the worker's and are delivered on the GUI thread.
    """

    started = Signal(int, str)
    progress = Signal(int, int, int)
    finished = Signal(int, str, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    job_ended = Signal(int)
    model_loaded = Signal(int, object)
    gpu_checked = Signal(object)
    label_errors_found = Signal(int, object)
    called = Signal(int, object)
    _submitted = Signal(object)

    def __init__(self, parent: QObject | None = None, **worker_options):
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._tokens: dict[int, Any] = {}
        self._started_at: dict[int, float] = {}
        self._thread = QThread()
        self._thread.setObjectName("segstudio-inference")
        self._worker = InferenceWorker(**worker_options)
        self._worker.moveToThread(self._thread)
        self._submitted.connect(self._worker.run_job)
        for name in ("started", "progress", "finished", "failed", "cancelled", "model_loaded",
                     "gpu_checked", "label_errors_found", "called"):
            getattr(self._worker, name).connect(getattr(self, name))
        self._worker.job_ended.connect(self._on_job_ended)
        self._thread.finished.connect(self._worker.deleteLater)
        app = QCoreApplication.instance()
        if app is not None:  # however the app ends, the thread is stopped before Qt tears down
            app.aboutToQuit.connect(self.shutdown)
        self._thread.start()

    # --- submitting ---------------------------------------------------------------------------
    def _submit(self, job: _Job) -> int:
        self._tokens[job.job_id] = job.cancel
        self._started_at[job.job_id] = time.monotonic()
        self._submitted.emit(job)
        return job.job_id

    def _new_job(self, kind: JobKind, **fields) -> _Job:
        return _Job(next(self._ids), kind, cancel=CancelToken(), **fields)

    def check_gpu(self) -> int:
        """Run the GPU check in the worker (imports torch); ``gpu_checked`` reports back. The first
        job that loads a model runs it too, before loading."""
        return self._submit(self._new_job(JobKind.GPU_CHECK))

    def load_model(self, model: ModelRequest) -> int:
        return self._submit(self._new_job(JobKind.LOAD_MODEL, model=model))

    def predict_image(self, model: ModelRequest, image_name: str, image) -> int:
        return self._submit(self._new_job(JobKind.IMAGE, model=model, image_name=image_name, image=image))

    def predict_dataset(self, model: ModelRequest, dataset, indices: list[int], labels: dict | None = None) -> int:
        """Run ``model`` on images ``indices``; one ``finished`` per image, its ``stats`` filled.

        ``labels`` maps a dataset index to the sample whose mask the image is scored against (the
        session's ``sample_to_load``: saved corrections win over the original file); default the
        dataset's own samples.
        """
        return self._submit(self._new_job(JobKind.DATASET, model=model, dataset=dataset, indices=list(indices),
                                          labels=dict(labels or {})))

    def load_prediction_files(self, dataset, files: dict, labels: dict | None = None,
                              binary_mapping: dict | None = None) -> int:
        """Read prediction masks (dataset index -> file) in the worker; one ``finished`` per file,
        scored against ``labels`` like :meth:`predict_dataset`; {0, 255} masks read with
        ``binary_mapping``."""
        return self._submit(self._new_job(JobKind.FILES, dataset=dataset, files=dict(files),
                                          labels=dict(labels or {}), binary_mapping=binary_mapping))

    def find_label_errors(self, model: ModelRequest, dataset, scan_items: list, min_area: int = 1) -> int:
        """Scan ``scan_items`` (core ``ScanItem``) for label errors with ``model``'s probabilities, in two
        passes; ``progress`` reports both, ``label_errors_found(job, ScanResult)`` the result."""
        from dataclasses import replace

        return self._submit(self._new_job(JobKind.LABEL_ERRORS, model=replace(model, probabilities=True),
                                          dataset=dataset, scan_items=list(scan_items), min_area=int(min_area)))

    def call(self, fn: Callable, *args) -> int:
        """Run ``fn(*args)`` on this lane, after the jobs already queued; ``called(job_id, outcome)``."""
        return self._submit(self._new_job(JobKind.CALL, call=fn, args=args))

    # --- state and control --------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self._tokens)

    def elapsed(self, job_id: int) -> float:
        return time.monotonic() - self._started_at.get(job_id, time.monotonic())

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job, or every pending and running job when ``job_id`` is None."""
        ids = list(self._tokens) if job_id is None else [job_id]
        for i in ids:
            token = self._tokens.get(i)
            if token is not None:
                token.cancel()

    @Slot()
    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel everything, stop the thread and wait for it. Returns True once it has stopped."""
        self.cancel()
        self._thread.quit()
        stopped = self._thread.wait(timeout_ms)
        return bool(stopped)

    @Slot(int)
    def _on_job_ended(self, job_id: int) -> None:
        self._tokens.pop(job_id, None)
        self._started_at.pop(job_id, None)
        self.job_ended.emit(job_id)
