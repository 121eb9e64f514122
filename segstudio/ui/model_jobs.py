"""The window's model jobs: running a model or reading a predictions folder, and what comes back.

A mixin of :class:`~segstudio.ui.main_window.MainWindow` (it uses the window's session, controller,
model dock and comparison controller); split out so the window file only composes.
"""
from __future__ import annotations

from segstudio.core.display.layers import attach_prediction
from segstudio.core.editing.session import match_prediction_files
from segstudio.core.io.binary_masks import find_binary_mask
from segstudio.core.tasks import TaskKind
from segstudio.core.evaluation.comparison import SourceKey, SourceKind
from segstudio.ui import settings as keys
from segstudio.ui.binary_mapping import prediction_binary_mapping
from segstudio.ui.gpu_notice import install_gpu_notice

__all__ = ["ModelJobs"]


class ModelJobs:
    """Model runs, predictions folders and the GPU check of the main window."""

    def open_predictions(self, folder: str) -> int | None:
        """Read a folder of prediction masks named like the images, in the worker; returns the job, or
        None when it starts later: a folder without a remembered binary mapping first has a few masks
        probed for {0, 255} on the task runner (a 4096² mask decodes in ~50 ms), then the dialog asks."""
        if self.session is None:
            return None
        try:
            files = match_prediction_files(self.session.dataset, folder)
        except OSError as exc:
            self.show_error("Cannot open predictions", f"{folder}: {exc}")
            return None
        if not files:
            self.show_error("Cannot open predictions", f"{folder}: no mask file is named like an image")
            return None
        mapping = keys.binary_mapping(self.settings, folder)
        if mapping is not None:
            return self._load_predictions(folder, files, mapping)
        session = self.session
        self.task_runner.submit(lambda _context: find_binary_mask(files.values()), kind=TaskKind.PROBE,
                                key=(TaskKind.PROBE, str(folder)),
                                on_returned=lambda binary: self._predictions_probed(session, folder, files, binary))
        return None

    def _predictions_probed(self, session, folder: str, files: dict, binary) -> None:
        if session is not self.session:
            return   # another dataset was opened meanwhile
        asked, mapping = prediction_binary_mapping(self, self.settings, folder, binary, session.class_table)
        if asked:
            self._load_predictions(folder, files, mapping)

    def _load_predictions(self, folder: str, files: dict, mapping) -> int:
        self.class_notice.check_predictions_folder(folder)
        job = self.controller.load_prediction_files(self.session.dataset, files, self._labels(files), mapping)
        return self._track_job(job, [self.session.dataset[i].name for i in files],
                               SourceKey(SourceKind.FOLDER, str(folder)))

    # --- inference ----------------------------------------------------------------------------
    def _labels(self, indices) -> dict:
        """Index -> the sample whose mask the worker scores a prediction against: the saved
        correction when there is one (the session's label source decides)."""
        return {i: self.session.sample_to_load(i) for i in indices}

    def check_gpu(self) -> None:
        """Run the GPU check in the worker (it imports torch) unless it has run or is running; the
        first model job runs it too."""
        if self.gpu_report is None and self._gpu_check_job is None:
            self._gpu_check_job = self.controller.check_gpu()

    def run_on_image(self) -> int | None:
        if self.document is None:
            return None
        request = self.model_dock.request_to_run()   # asks first if the file is code
        if request is None:
            return None
        job = self.controller.predict_image(request, self.document.name, self.document.image)
        self.model_dock.track_job(job, request)
        return self._track_job(job, [self.document.name], SourceKey(SourceKind.MODEL, request.spec))

    def run_on_dataset(self) -> int | None:
        if self.session is None:
            return None
        request = self.model_dock.request_to_run()
        if request is None:
            return None
        job = self.run_model_on(request, list(range(len(self.session))))
        self.model_dock.track_job(job, request)
        return job

    def run_model_on(self, request, indices: list[int]) -> int | None:
        """Run ``request`` (a ``ModelRequest``) on images ``indices`` of the open dataset; returns the job."""
        if self.session is None:
            return None
        job = self.controller.predict_dataset(request, self.session.dataset, indices, self._labels(indices))
        return self._track_job(job, [self.session.dataset[i].name for i in indices],
                               SourceKey(SourceKind.MODEL, request.spec))

    def _track_job(self, job: int, names: list[str], source: SourceKey) -> int:
        """A job started for ``names`` of the open session; its predictions belong to ``source``."""
        self.compare.note_job(job, source)
        self._job_sessions[job] = self.session
        self.session.job_requested(job, names)
        self.model_dock.set_busy(True)
        return job

    def _on_job_ended(self, job: int) -> None:
        if job == self._gpu_check_job:
            self._gpu_check_job = None
        self._job_sessions.pop(job, None)
        if not self._job_sessions:
            self.model_dock.set_busy(False)

    def _on_prediction(self, job: int, name: str, prediction) -> None:
        if self.session is None or self._job_sessions.get(job) is not self.session:
            return  # a result for a dataset that is no longer open
        if self.session.accept_prediction(job, name, prediction):
            attach_prediction(self.task_runner, self.document, prediction)
        self.prediction_received.emit(name)
        self.panels.schedule()

    def compare_sources(self, a: SourceKey, b: SourceKey) -> None:
        """Compare source ``a`` with ``b`` (e.g. a parent model with its fine-tuned child) and show it."""
        self.compare.compare_sources(a, b)
        self._docks["compare"].raise_()

    def _on_gpu_report(self, report) -> None:
        self.gpu_report = report
        self.model_dock.set_gpu_report(report)
        self._gpu_notice = install_gpu_notice(self, report, self._gpu_notice)
        from segstudio.ui.about import refresh_about_box   # lazily: About is rare, its imports are not

        refresh_about_box(self._about_box, self._device(), report)

    def _save_model_choice(self) -> None:
        request = self.model_dock.selected_request()
        if request is not None:
            self.settings.setValue(keys.MODEL, request.spec)
            self.settings.setValue(keys.DEVICE, request.device)
