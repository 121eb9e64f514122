"""Model A vs model B in the window: sources, their comparisons on the shown image, the disagreement map.

Holds no numbers of its own: predictions and per-image confusions per source live in a
:class:`~segstudio.core.evaluation.sources.SourceResults`; the shown image's comparisons in its
document (one per source, keyed by :class:`~segstudio.core.evaluation.comparison.SourceKey`, kept
exact by every edit atom); the disagreement codes in a
:class:`~segstudio.core.evaluation.disagreement_map.DisagreementMap`, recoded in O(edit) from each
atom's bounding box. Everything O(image) or O(dataset) runs on the window's task runner.

Where a prediction comes from is told by whoever starts the job (:meth:`CompareController.note_job`):
a model run is ``model:<spec>``, a predictions folder ``folder:<path>``; the saved label version
``labels:original`` (the dataset's own masks, against the corrected labels) is always offered.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from segstudio.core.display.layers import prepare_layers
from segstudio.core.editing.document import DocumentEvent, EventKind, ImageDocument
from segstudio.core.errors import SegStudioError
from segstudio.core.evaluation.comparison import SourceKey, SourceKind
from segstudio.core.evaluation.disagreement import Disagreement, disagreement_codes, disagreement_regions
from segstudio.core.evaluation.disagreement_map import DisagreementMap, disagreement_lut
from segstudio.core.evaluation.sources import (ORIGINAL_LABELS, DeltaRow, SourceResults, label_fix_impact,
                                               label_fix_inputs, matrix_mean_iou, source_label)
from segstudio.core.tasks import TaskKind

if TYPE_CHECKING:
    from segstudio.ui.main_window import MainWindow

__all__ = ["CompareController", "REGION_KINDS"]

# Kinds listed in the regions table, in this order for equal areas.
REGION_KINDS = (Disagreement.B_BREAKS, Disagreement.B_FIXES, Disagreement.BOTH_WRONG_SAME,
                Disagreement.BOTH_WRONG_DIFFERENT)


def _build_map(_context, gt, pred_a, pred_b, ignore_index, num_classes):
    codes = disagreement_codes(gt, pred_a, pred_b, ignore_index, num_classes)
    return DisagreementMap(gt, pred_a, pred_b, ignore_index, num_classes, codes=codes)


def _bootstrap(_context, mats_a, mats_b, resamples, seed):
    from segstudio.core.evaluation.bootstrap import paired_bootstrap

    return paired_bootstrap(np.stack(mats_a), np.stack(mats_b), resamples=resamples, seed=seed)


class CompareController(QObject):
    """Keeps sources A and B of the shown image and the dataset in step; see the module docstring."""

    sources_changed = Signal()          # a source appeared (or the dataset changed)
    pair_changed = Signal()             # A or B was chosen
    map_changed = Signal()              # the disagreement map was rebuilt or an edit recoded part of it
    regions_found = Signal(object)      # [DisagreementRegion], largest first
    metrics_changed = Signal()          # the confusions of A or B changed (prediction, edit)
    bootstrap_finished = Signal(object)     # PairedBootstrap
    bootstrap_failed = Signal(str)
    impact_progressed = Signal(int, int)
    impact_finished = Signal(object)    # core LabelFixImpact

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.results: SourceResults | None = None
        self._session = None
        self.a: SourceKey | None = None
        self.b: SourceKey | None = None
        self.map: DisagreementMap | None = None
        self._map_document: ImageDocument | None = None
        self._job_keys: dict[int, SourceKey] = {}
        self._document: ImageDocument | None = None
        self._unsubscribe = None
        self._regions_timer = QTimer(self, singleShot=True, interval=250)
        self._regions_timer.timeout.connect(self.find_regions)
        window.controller.finished.connect(self._on_prediction)
        window.document_changed.connect(self._on_document_changed)

    # --- sources ------------------------------------------------------------------------------
    def note_job(self, job: int, key: SourceKey) -> None:
        """The predictions of inference job ``job`` belong to source ``key``."""
        self._job_keys[job] = key

    def _ensure_results(self) -> SourceResults | None:
        session = self.window.session
        if session is None:
            return None
        if session is not self._session:
            table = session.class_table
            self._session, self.results = session, SourceResults(table.num_classes, table.ignore_index)
            had_pair = self.a is not None
            self.a = self.b = None
            self._clear_map()
            self.sources_changed.emit()
            if had_pair:
                self.pair_changed.emit()
        return self.results

    def sources(self) -> list[SourceKey]:
        """Sources the user can pick: every source with a prediction, then the original labels."""
        results = self._ensure_results()
        keys = results.keys() if results is not None else []
        return [k for k in keys if k != ORIGINAL_LABELS] + [ORIGINAL_LABELS]

    def compare_sources(self, a: SourceKey, b: SourceKey) -> None:
        """Compare source ``a`` (the reference) with ``b``: layers, disagreement map, Δ numbers."""
        self._ensure_results()
        self.a, self.b = a, b
        self._clear_map()
        self.pair_changed.emit()
        self._attach_sources(self.window.document)

    def _on_prediction(self, job: int, name: str, prediction) -> None:
        key = self._job_keys.get(job)
        results = self._ensure_results()
        if key is None or results is None or self.window.session is not self._session:
            return
        stats = getattr(prediction, "stats", None)
        results.record(key, name, prediction, stats.confusion if stats is not None else None)
        new_source = len(results.predictions(key)) == 1
        document = self.window.document
        if document is not None and document.name == name and key in (self.a, self.b):
            self._attach(document, key, prediction.mask)
        if new_source:
            self.sources_changed.emit()
        self.metrics_changed.emit()

    # --- the shown document ---------------------------------------------------------------------
    def _on_document_changed(self, document: ImageDocument) -> None:
        self._ensure_results()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._document = document
        self._unsubscribe = document.subscribe(self._on_document_event)
        self._clear_map()
        self._attach_sources(document)
        self.metrics_changed.emit()

    def _attach_sources(self, document: ImageDocument | None) -> None:
        """Compare the document with sources A and B where it has their predictions. Only the pair
        chosen is compared: a user who is not comparing pays nothing for the sources recorded."""
        results = self.results
        if document is None or results is None:
            return
        for key in (self.a, self.b):
            if key is None or key in document.comparisons or key == ORIGINAL_LABELS:
                continue
            prediction = results.prediction(key, document.name)
            if prediction is not None:
                self._attach(document, key, prediction.mask)
        if ORIGINAL_LABELS in (self.a, self.b) and ORIGINAL_LABELS not in document.comparisons:
            self._attach_original(document)
        self._rebuild_map()

    def _attach(self, document: ImageDocument, key: SourceKey, mask: np.ndarray) -> None:
        try:
            build, version = document.comparison_builder(mask, source=key)
        except SegStudioError as exc:
            self.window.report(f"{key}: {exc}")
            return
        gt = document.gt
        # With display arrays: a source attached first becomes the active one and is drawn at once.
        self.window.task_runner.submit(
            lambda _context: prepare_layers(build(), gt), kind=TaskKind.COMPARISON,
            key=(TaskKind.COMPARISON, document.name, key),
            on_returned=lambda comparison: self._attached(document, comparison, version))

    def _attach_original(self, document: ImageDocument) -> None:
        """The dataset's own mask as a source: decoded on the task runner, compared with the labels now."""
        session = self.window.session
        try:
            sample = session.dataset[session.dataset.index_of(document.name)]
        except KeyError:
            return
        self.window.task_runner.submit(
            lambda _context: sample.load_mask(), kind=TaskKind.COMPARISON,
            key=(TaskKind.COMPARISON, document.name, ORIGINAL_LABELS),
            on_returned=lambda mask: self._on_original(document, mask),
            on_errored=lambda exc: self.window.report(f"Original labels of {document.name}: {exc}"))

    def _on_original(self, document: ImageDocument, mask: np.ndarray | None) -> None:
        if mask is None:
            self.window.report(f"{document.name}: the dataset has no labels for it to compare with")
        elif document is self.window.document:
            self._attach(document, ORIGINAL_LABELS, mask)

    def _attached(self, document: ImageDocument, comparison, version: int) -> None:
        document.attach_comparison(comparison, version, activate=False)
        self._store_confusion(document, comparison.key)
        if document is self.window.document:
            self.metrics_changed.emit()
            if comparison.key in (self.a, self.b):
                self._rebuild_map()

    def _store_confusion(self, document: ImageDocument, key: SourceKey) -> None:
        comparison = document.comparisons.get(key)
        if self.results is None or comparison is None:
            return
        matrix = comparison.confusion.matrix if document.gt is not None else None
        self.results.set_confusion(key, document.name, matrix)

    def _on_document_event(self, event: DocumentEvent) -> None:
        document = self._document
        if document is None or document is not self.window.document:
            return
        if event.kind is EventKind.LABELS and event.atom is not None:
            for key in (self.a, self.b):
                if key is not None:
                    self._store_confusion(document, key)
            if self.map is not None and self._map_document is document:
                self.map.apply_edit(document.gt, event.atom.bbox)
                self.window.canvas.update_layer_region("disagreement", *event.atom.bbox)
                self.map_changed.emit()
                if not document.in_stroke:
                    self._regions_timer.start()
            self.metrics_changed.emit()
        elif event.kind is EventKind.HISTORY:
            if self.map is not None and not document.in_stroke and not self._regions_timer.isActive():
                self._regions_timer.start()
        elif event.kind is EventKind.RELOADED:
            for key in list(document.comparisons):
                self._store_confusion(document, key)
            self._rebuild_map()
            self.metrics_changed.emit()

    # --- disagreement map -------------------------------------------------------------------------
    def missing_sources(self) -> list[SourceKey]:
        """Of A and B, those without a prediction for the shown image (nothing to compare there)."""
        document, results = self.window.document, self.results
        if document is None or results is None:
            return []
        return [k for k in (self.a, self.b) if k is not None and k not in document.comparisons
                and k != ORIGINAL_LABELS and results.prediction(k, document.name) is None]

    def comparisons(self):
        """The shown document's comparisons of A and B (either may be None)."""
        document = self.window.document
        if document is None:
            return None, None
        return document.comparisons.get(self.a), document.comparisons.get(self.b)

    def _clear_map(self) -> None:
        self.map, self._map_document = None, None
        self.window.task_runner.cancel(TaskKind.DISAGREEMENT)
        for name in ("disagreement", "source_a", "source_b"):
            self.window.presenter.set_extra_layer(name, None)
        self.map_changed.emit()

    def _rebuild_map(self) -> None:
        """Code the shown image for A and B, on the task runner; a result for older labels is redone."""
        document = self.window.document
        comp_a, comp_b = self.comparisons()
        if document is None or comp_a is None or comp_b is None or document.gt is None:
            return
        gt, version = document.gt, document.labels_version
        self.window.task_runner.submit(
            _build_map, gt, comp_a.pred, comp_b.pred, document.ignore_index, document.num_classes,
            kind=TaskKind.DISAGREEMENT, key=TaskKind.DISAGREEMENT,
            on_returned=lambda result: self._on_map(document, version, result))

    def _on_map(self, document: ImageDocument, version: int, result: DisagreementMap) -> None:
        if document is not self.window.document:
            return
        if document.labels_version != version:     # painted meanwhile: code again against the labels now
            self._rebuild_map()
            return
        self.map, self._map_document = result, document
        presenter, table = self.window.presenter, document.class_table
        presenter.set_extra_layer("disagreement", result.codes, disagreement_lut())
        from segstudio.core.display.render import ViewMode, view_arrays

        for name, title, key, pred in (("source_a", "A", self.a, result.pred_a), ("source_b", "B", self.b, result.pred_b)):
            presenter.set_extra_layer(name, *view_arrays(ViewMode.SEMANTIC, pred, table, None, set()),
                                      label=f"Source {title}: {source_label(key)}")
        self.map_changed.emit()
        self.find_regions()

    def find_regions(self, min_area: int = 1) -> None:
        """Connected regions of each kind, largest first, on the task runner (O(image))."""
        current, document = self.map, self._map_document
        if current is None or document is None:
            return
        version = document.labels_version
        codes = current.codes

        def found(regions) -> None:
            if self.map is current and document.labels_version == version:
                self.regions_found.emit(regions)

        self.window.task_runner.submit(lambda _context: disagreement_regions(codes, REGION_KINDS, min_area),
                                       kind=TaskKind.DISAGREEMENT_REGIONS, key=TaskKind.DISAGREEMENT_REGIONS,
                                       on_returned=found)

    # --- dataset ------------------------------------------------------------------------------
    def worse_first(self) -> list[str]:
        """Images both sources predicted, B's worst regressions first (the review order)."""
        if self.results is None or self.a is None or self.b is None:
            return []
        return [row.name for row in self.results.delta_rows(self.a, self.b)]

    def image_values(self, name: str) -> tuple[float | None, float | None, float | None]:
        """Mean IoU of A and B on image ``name`` and ``B - A`` (the dataset browser's columns)."""
        if self.results is None or self.a is None or self.b is None:
            return None, None, None
        row = DeltaRow(name, matrix_mean_iou(self.results.confusion(self.a, name)),
                       matrix_mean_iou(self.results.confusion(self.b, name)))
        return row.a, row.b, row.delta

    def run_bootstrap(self, resamples: int = 1000, seed: int = 0):
        """Paired bootstrap over the images both sources predicted, on the task runner; returns the task."""
        if self.results is None or self.a is None or self.b is None:
            return None
        names, mats_a, mats_b = self.results.paired(self.a, self.b)
        if not names:
            self.bootstrap_failed.emit("No image has a prediction from both sources yet")
            return None
        return self.window.task_runner.submit(
            _bootstrap, mats_a, mats_b, resamples, seed, kind=TaskKind.BOOTSTRAP, key=TaskKind.BOOTSTRAP,
            on_returned=self.bootstrap_finished.emit,
            on_errored=lambda exc: self.bootstrap_failed.emit(str(exc)))

    def run_label_fix_impact(self):
        """Every model source against the original and the corrected labels, summed (a task)."""
        session, results = self.window.session, self._ensure_results()
        if session is None or results is None:
            return None
        keys = [k for k in results.keys() if k.kind in (SourceKind.MODEL, SourceKind.FOLDER)]
        items, unchanged = label_fix_inputs(session, results, keys)
        table = session.class_table
        return self.window.task_runner.submit(
            label_fix_impact, items, unchanged, table.num_classes, table.ignore_index,
            kind=TaskKind.LABEL_FIX_IMPACT, key=TaskKind.LABEL_FIX_IMPACT,
            on_progress=self.impact_progressed.emit, on_returned=self.impact_finished.emit,
            on_errored=lambda exc: self.window.show_error("Label-fix impact failed", str(exc)))
