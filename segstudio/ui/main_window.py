"""The main window: composes the canvas, the docks, the menus and the inference worker.

It holds no business logic. The open dataset, the per-image prediction cache and the statistics live
in :class:`segstudio.core.editing.session.ReviewSession`; the image being reviewed in its
:class:`~segstudio.core.editing.document.ImageDocument`; what the canvas shows is decided by
:class:`~segstudio.ui.document_view.DocumentPresenter`. This class wires their signals together.

Start-up is split in two so the window is on screen fast: ``__init__`` builds the light widgets, and
``finish_startup`` (called from the event loop once the window is shown) builds the pyqtgraph
panels, lists the registry (no torch) and opens the dataset. torch is imported in the worker only
when a model is about to run or the GPU check is asked for (About, the device list).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox,
                               QVBoxLayout, QWidget)

from segstudio.core.evaluation import errormap
from segstudio.core.display.layers import prepare_layers
from segstudio.core.editing.document import DocumentEvent, EventKind, ImageDocument
from segstudio.core.evaluation.prediction import Prediction
from segstudio.core.errors import SegStudioError
from segstudio.core.editing.session import (ReviewSession, describe_pixel, instance_marks, load_document,
                                    match_prediction_files)
from segstudio.core.io.workspace import save_class_colours, with_saved_colours
from segstudio.inference.catalog import list_available
from segstudio.core.tasks import TaskKind
from segstudio.ui import settings as keys
from segstudio.ui.canvas import CanvasView
from segstudio.ui.class_panel import ClassPanel
from segstudio.ui.dataset_browser import DatasetBrowser
from segstudio.ui.document_view import DocumentPresenter
from segstudio.ui.error_regions import ErrorRegionsPanel
from segstudio.ui.gpu_notice import install_gpu_notice
from segstudio.ui.layer_panel import LayerPanel
from segstudio.ui.model_dock import ModelDock
from segstudio.ui.tasks import QtTaskRunner
from segstudio.ui.worker import InferenceController

__all__ = ["MainWindow", "DEMO_MODEL"]

DEMO_MODEL = "demo"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp);;All files (*)"


class MainWindow(QMainWindow):
    """segstudio's main window. See the module docstring for how start-up is split."""

    document_changed = Signal(object)      # the ImageDocument now shown (editing tools follow it)
    class_selected = Signal(int)           # digit keys / class panel
    errors_shown = Signal(str)             # title, after show_error (tests and logs)

    def __init__(self, settings=None, controller: InferenceController | None = None):
        super().__init__()
        self.setWindowTitle("segstudio")
        self.settings = settings if settings is not None else keys.app_settings()
        self.session: ReviewSession | None = None
        self.selected_class = 1
        self.error_mode = "all"            # 'all' classes or 'one' (the selected class)
        self.instance_view = False
        self.outlines = False
        self.gpu_report: dict | None = None
        self._gpu_check_job: int | None = None
        self.metrics_panel = None          # built in finish_startup (pyqtgraph is slow to import)
        self._job_sessions: dict[int, ReviewSession] = {}   # job id -> the session it serves
        self._unsubscribe_document = None
        self._regions_stale = False        # a stroke in progress changed labels the regions predate

        self.canvas = CanvasView()
        self.setCentralWidget(self.canvas)
        self.presenter = DocumentPresenter(
            self.canvas, opacity_default=lambda layer, value: keys.opacity(self.settings, layer, value),
            parent=self)
        self.controller = controller or InferenceController(self)
        # Background work other than inference: handed to whoever needs it, joined on close.
        self.task_runner = QtTaskRunner(parent=self)

        self.model_dock = ModelDock()
        self.browser = DatasetBrowser(self.task_runner)
        self.regions = ErrorRegionsPanel()
        self._metrics_host = QWidget()
        QVBoxLayout(self._metrics_host).addWidget(QLabel("Loading…"))
        self._docks = {}
        self._add_dock("layers", "Layers", self._build_layers_widget(), Qt.DockWidgetArea.LeftDockWidgetArea)
        self._add_dock("model", "Model", self.model_dock, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._add_dock("metrics", "Metrics", self._metrics_host, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("regions", "Error regions", self.regions, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("dataset", "Dataset", self.browser, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self._docks["regions"], self._docks["dataset"])
        self._docks["regions"].raise_()

        self.status_pixel = QLabel("")
        self.status_mode = QLabel("")
        self.statusBar().addWidget(self.status_pixel, 1)
        self.statusBar().addPermanentWidget(self.status_mode)

        # Metrics, error regions and the browser redraw at most every 100 ms while strokes come
        # in (at once after a new prediction), so a burst of dabs costs one refresh, not one each.
        self._panels_timer = QTimer(self, singleShot=True, interval=0)
        self._panels_timer.timeout.connect(self._refresh_panels)
        self._regions_timer = QTimer(self, singleShot=True, interval=250)
        self._regions_timer.timeout.connect(self._refresh_regions)

        self._build_menus()
        self._connect()
        self._restore_layout()
        self._update_mode_text()

    # --- construction -------------------------------------------------------------------------
    def _add_dock(self, key: str, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{key}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self._docks[key] = dock
        return dock

    def _build_layers_widget(self) -> QWidget:
        host = QWidget()
        layout = QVBoxLayout(host)
        layout.setContentsMargins(0, 0, 0, 0)
        self.layer_panel = LayerPanel()
        self.class_panel = ClassPanel()
        layout.addWidget(self.layer_panel)
        layout.addWidget(self.class_panel, 1)
        return host

    def _action(self, menu, text: str, slot, shortcut=None, checkable=False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        self.addAction(action)  # shortcuts work while a dock has focus, too
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "Open dataset…", self.choose_dataset, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open image…", self.choose_image)
        self._action(file_menu, "Open predictions folder…", self.choose_predictions)
        self.recent_menu = file_menu.addMenu("Recent")
        file_menu.addSeparator()
        self._action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit)
        self._rebuild_recent_menu()

        view = bar.addMenu("&View")
        self.instance_action = self._action(view, "Instance view", self.set_instance_view, "I", True)
        self.outlines_action = self._action(view, "Outlines", self.set_outlines, "O", True)
        self.error_mode_action = self._action(view, "Error map for the selected class only",
                                              lambda on: self.set_error_mode("one" if on else "all"), "E", True)
        self._action(view, "Fit to window", self.canvas.fit_to_window, "F")
        view.addSeparator()
        self._action(view, "Next image", lambda: self.step_image(1), Qt.Key.Key_PageDown)
        self._action(view, "Previous image", lambda: self.step_image(-1), Qt.Key.Key_PageUp)
        view.addSeparator()
        for dock in self._docks.values():
            view.addAction(dock.toggleViewAction())
        for digit in range(10):  # like the class panel: digit = class id (0 is the background)
            action = QAction(self)
            action.setShortcut(QKeySequence(str(digit)))
            action.triggered.connect(lambda _=False, n=digit: self.select_class(n))
            self.addAction(action)

        model = bar.addMenu("&Model")
        self._action(model, "Load model file…", self.model_dock.choose_model_file)
        self._action(model, "Run on this image", self.run_on_image, "Ctrl+R")
        self._action(model, "Run on whole dataset", self.run_on_dataset, "Ctrl+Shift+R")
        self._action(model, "Cancel", self.controller.cancel, "Esc")

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "About segstudio", self.show_about)

    def _connect(self) -> None:
        self.canvas.cursor_moved.connect(self._on_cursor_moved)
        self.layer_panel.visibility_changed.connect(self.canvas.set_layer_visible)
        self.layer_panel.opacity_changed.connect(self._on_layer_opacity)
        self.layer_panel.order_changed.connect(self.presenter.set_order)
        self.class_panel.class_selected.connect(self.select_class)
        self.class_panel.hidden_classes_changed.connect(self.presenter.set_hidden_classes)
        self.class_panel.class_color_changed.connect(self._on_class_color)
        self.presenter.layers_changed.connect(self._on_layers_changed)
        self.model_dock.run_image_requested.connect(self.run_on_image)
        self.model_dock.run_dataset_requested.connect(self.run_on_dataset)
        self.model_dock.cancel_requested.connect(self.controller.cancel)
        self.model_dock.selection_changed.connect(self._save_model_choice)
        self.model_dock.device_info_requested.connect(self.check_gpu)
        self.browser.image_selected.connect(self.go_to)
        self.regions.region_selected.connect(lambda region: self.canvas.center_on_rect(*region.bbox))
        c = self.controller
        c.progress.connect(lambda job, done, total: self.model_dock.set_progress(done, total, c.elapsed(job)))
        c.finished.connect(self._on_prediction)
        c.failed.connect(lambda job, message: self.show_error("Inference failed", message))
        c.job_ended.connect(self._on_job_ended)
        c.model_loaded.connect(lambda job, info: self.model_dock.show_model_info(info))
        c.gpu_checked.connect(self._on_gpu_report)

    def finish_startup(self, path: str | None = None, model: str | None = None, device: str | None = None,
                       predictions: str | None = None, run: bool = False) -> None:
        """Second half of start-up, run once the window is on screen: open ``path`` (default the
        demo), then the ``predictions`` folder; with ``run``, run ``model`` on the first image."""
        from segstudio.ui.metrics_panel import MetricsPanel

        self.metrics_panel = MetricsPanel()
        self.metrics_panel.cell_clicked.connect(self.highlight_confusion_cell)
        self._docks["metrics"].setWidget(self.metrics_panel)
        self._metrics_host.deleteLater()
        self.model_dock.set_device(device or str(self.settings.value(keys.DEVICE, "auto")))
        self.model_dock.set_models(list_available())
        self.model_dock.select_spec(model or str(self.settings.value(keys.MODEL, DEMO_MODEL)))
        if path is None:
            from segstudio.resources import resource_path

            path = str(resource_path("demo"))
        if self.open_path(path) and predictions is not None:
            self.open_predictions(predictions)
        if run:
            self.run_on_image()

    def _restore_layout(self) -> None:
        geometry = self.settings.value(keys.GEOMETRY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
            self.resizeDocks([self._docks["layers"], self._docks["metrics"]], [280, 380],
                             Qt.Orientation.Horizontal)
            self.resizeDocks([self._docks["metrics"], self._docks["regions"]], [520, 380],
                             Qt.Orientation.Vertical)
        state = self.settings.value(keys.STATE)
        if state is not None:
            self.restoreState(state)

    # --- errors -------------------------------------------------------------------------------
    def show_error(self, title: str, text: str) -> QMessageBox:
        """Tell the user what went wrong, without blocking (tests find the box among top-levels)."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.errors_shown.emit(title)
        return box

    # --- opening ------------------------------------------------------------------------------
    def open_path(self, path: str) -> bool:
        """Open a dataset folder, annotation file or single image; keep the current one on failure."""
        from segstudio.core.io.datasets import open_dataset

        try:
            dataset = open_dataset(path)
            dataset.class_table = with_saved_colours(dataset.root, dataset.class_table)
            session = ReviewSession(dataset, self.task_runner)
            if not len(session):
                raise SegStudioError(path, "no images found")
            document = session.open(0, self._document_factory(session))
        except (SegStudioError, OSError) as exc:
            self.show_error("Cannot open", str(exc))
            return False
        self.controller.cancel()  # results for the old dataset have nowhere to go
        if self.session is not None:
            self.session.close()
        self.session = session
        session.subscribe_class_table(self._on_class_table)
        self.browser.set_session(session)
        self.class_panel.set_class_table(session.class_table)
        if self.metrics_panel is not None:
            self.metrics_panel.set_class_table(session.class_table)
        self.settings.setValue(keys.LAST_DATASET, str(path))
        keys.add_recent(self.settings, str(path))
        self._rebuild_recent_menu()
        self._show_document(document)
        return True

    def _document_factory(self, session: ReviewSession):
        error_class = self.selected_class if self.error_mode == "one" else None
        return lambda sample, decoded=None: load_document(sample, session.class_table, error_class, decoded)

    def go_to(self, index: int) -> bool:
        """Show image ``index`` of the dataset; on a bad file say why and stay where we are."""
        if self.session is None or index == self.session.index or not 0 <= index < len(self.session):
            return False
        try:
            document = self.session.open(index, self._document_factory(self.session))
        except (SegStudioError, OSError) as exc:
            self.show_error("Cannot open image", str(exc))
            return False
        self._show_document(document)
        return True

    def step_image(self, delta: int) -> bool:
        return self.session is not None and self.go_to(self.session.step(delta))

    def _show_document(self, document) -> None:
        self.presenter.show(document)
        if self._unsubscribe_document is not None:
            self._unsubscribe_document()
        self._unsubscribe_document = document.subscribe(self._on_document_event)
        self.browser.select_image(self.session.index)
        title = f"{document.name} — {self.session.root.name} ({self.session.index + 1}/{len(self.session)})"
        self.setWindowTitle(f"{title} — segstudio")
        self._update_instance_marks()
        self._schedule_panels(regions_now=True)
        self.session.decode_ahead(self.session.step(1))   # PageDown is the common next step
        self.document_changed.emit(document)

    @property
    def document(self):
        return self.session.document if self.session is not None else None

    def choose_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open dataset")
        if folder:
            self.open_path(folder)

    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", IMAGE_FILTER)
        if path:
            self.open_path(path)

    def choose_predictions(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open predictions folder")
        if folder:
            self.open_predictions(folder)

    def open_predictions(self, folder: str) -> int | None:
        """Read a folder of prediction masks named like the images, in the worker."""
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
        job = self.controller.load_prediction_files(self.session.dataset, files, self._labels(files))
        self._track_job(job, [self.session.dataset[i].name for i in files])
        return job

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in keys.recent_items(self.settings):
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent_menu.actions()))

    # --- inference ----------------------------------------------------------------------------
    def _labels(self, indices) -> dict:
        """Index -> the sample whose mask the worker scores a prediction against: the saved
        correction when there is one. Resolved here, on the GUI thread, where the editor's settings live."""
        return {i: self.session.sample_to_load(i) for i in indices}

    def check_gpu(self) -> None:
        """Run the GPU check in the worker (it imports torch) unless it has run or is running; the
        first model job runs it too."""
        if self.gpu_report is None and self._gpu_check_job is None:
            self._gpu_check_job = self.controller.check_gpu()

    def run_on_image(self) -> int | None:
        request = self.model_dock.selected_request()
        if request is None or self.document is None:
            return None
        job = self.controller.predict_image(request, self.document.name, self.document.image)
        self._track_job(job, [self.document.name])
        return job

    def run_on_dataset(self) -> int | None:
        request = self.model_dock.selected_request()
        if request is None or self.session is None:
            return None
        indices = list(range(len(self.session)))
        job = self.controller.predict_dataset(request, self.session.dataset, indices, self._labels(indices))
        self._track_job(job, self.session.names)
        return job

    def _track_job(self, job: int, names: list[str]) -> None:
        self._job_sessions[job] = self.session
        self.session.job_requested(job, names)
        self.model_dock.set_busy(True)

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
            self._attach_prediction(self.document, prediction)
        self._schedule_panels()

    def _attach_prediction(self, document: ImageDocument, prediction: Prediction) -> None:
        """Compare ``document``'s labels with a new prediction without blocking the GUI: the
        comparison and its display arrays are built on the task runner (O(image)) and attached on
        return in O(1); if the user painted meanwhile, attaching rebuilds it against the labels now."""
        build, version = document.comparison_builder(prediction.mask, prediction.confidence,
                                                     prediction.entropy, prediction.instances)
        gt = document.gt
        self.task_runner.submit(lambda _context: prepare_layers(build(), gt), kind=TaskKind.COMPARISON,
                                key=(TaskKind.COMPARISON, document.name),
                                on_returned=lambda comparison: document.attach_comparison(comparison, version))

    def _on_gpu_report(self, report) -> None:
        self.gpu_report = report
        self.model_dock.set_gpu_report(report)
        install_gpu_notice(self, report)
        about = self.findChild(QMessageBox, "about")
        if about is not None:
            about.setText(self._about_text())

    def _save_model_choice(self) -> None:
        request = self.model_dock.selected_request()
        if request is not None:
            self.settings.setValue(keys.MODEL, request.spec)
            self.settings.setValue(keys.DEVICE, request.device)

    # --- views --------------------------------------------------------------------------------
    def set_instance_view(self, on: bool) -> None:
        self.instance_view = bool(on)
        self.instance_action.setChecked(self.instance_view)
        self._apply_view_mode()
        self._update_instance_marks()

    def set_outlines(self, on: bool) -> None:
        self.outlines = bool(on)
        self.outlines_action.setChecked(self.outlines)
        self._apply_view_mode()

    def _apply_view_mode(self) -> None:
        mode = "outlines" if self.outlines else "instance" if self.instance_view else "semantic"
        self.presenter.set_view_mode(mode)
        self._update_mode_text()

    def set_error_mode(self, mode: str) -> None:
        """'all' classes, or 'one': true/false positives and negatives of the selected class."""
        self.error_mode = mode
        self.error_mode_action.setChecked(mode == "one")
        if self.document is not None:
            self.document.error_class = self.selected_class if mode == "one" else None
        self._update_mode_text()
        self._schedule_panels(regions_now=True)

    def select_class(self, class_id: int) -> None:
        if self.session is None or not 0 <= class_id < self.session.class_table.num_classes:
            return
        if class_id == self.selected_class and self.class_panel.current_class() == class_id:
            return
        self.selected_class = class_id
        self.class_panel.select_class(class_id)
        if self.document is not None:
            self.document.metrics_class = class_id
        if self.error_mode == "one":
            self.set_error_mode("one")
        self._update_mode_text()
        self.class_selected.emit(class_id)

    def _update_mode_text(self) -> None:
        view = "outlines" if self.outlines else "instances" if self.instance_view else "semantic"
        errors = "all classes"
        if self.error_mode == "one":
            names = self.session.class_table.names if self.session is not None else []
            errors = names[self.selected_class] if self.selected_class < len(names) else str(self.selected_class)
        self.status_mode.setText(f"view: {view}   errors: {errors}")

    def _update_instance_marks(self) -> None:
        marks = instance_marks(self.document) if self.instance_view else []
        self.presenter.set_instance_marks(marks)

    def highlight_confusion_cell(self, gt_class: int, pred_class: int) -> int:
        """Highlight the pixels with ground truth ``gt_class`` predicted as ``pred_class``."""
        doc = self.document
        if doc is None or doc.gt is None or doc.pred is None:
            return 0
        mask = (doc.gt == gt_class) & (doc.pred == pred_class)
        self.presenter.set_highlight(mask)
        count = int(mask.sum())
        names = doc.class_table.names
        self.statusBar().showMessage(f"{count} pixels: gt {names[gt_class]} predicted {names[pred_class]}", 5000)
        return count

    # --- panels -------------------------------------------------------------------------------
    def _on_document_event(self, event: DocumentEvent) -> None:
        """Everything here is O(C²) or O(edit); O(image) work (error regions) goes to a worker, once
        a stroke is committed rather than per dab."""
        if event.kind is EventKind.HISTORY:
            if self.document is not None and not self.document.in_stroke and self._regions_stale:
                self._schedule_panels(regions=True)
            return
        if self.session is not None:
            self.session.refresh_stats()
        if event.metrics_delta is not None and self.metrics_panel is not None:
            self.metrics_panel.show_metrics_delta(event.metrics_delta)
        if event.kind is EventKind.LABELS:
            in_stroke = self.document is not None and self.document.in_stroke
            self._regions_stale = in_stroke
            self._schedule_panels(regions=not in_stroke)
        else:
            self._update_instance_marks()
            self._schedule_panels(regions_now=True)

    def _schedule_panels(self, regions_now: bool = False, regions: bool = True) -> None:
        if not self._panels_timer.isActive():
            self._panels_timer.setInterval(0 if regions_now else 100)
            self._panels_timer.start()
        if regions or regions_now:
            self._regions_stale = False
            self._regions_timer.setInterval(0 if regions_now else 250)
            self._regions_timer.start()

    def _refresh_panels(self) -> None:
        session = self.session
        if session is None:
            return
        self.browser.refresh()
        doc = self.document
        self._update_class_counts(doc)
        if self.metrics_panel is not None:
            image_cm = doc.confusion if doc is not None and doc.pred is not None and doc.gt is not None else None
            self.metrics_panel.show_metrics(image_cm, session.dataset_confusion(), len(session.stats))

    def _update_class_counts(self, doc) -> None:
        if doc is None or doc.gt is None:
            self.class_panel.set_pixel_counts(None, None)
        elif doc.pred is not None:
            self.class_panel.set_pixel_counts(doc.confusion.gt_pixels(), doc.confusion.pred_pixels())
        else:
            self.class_panel.set_pixel_counts(doc.gt_counts, None)

    def _refresh_regions(self) -> None:
        """Find the error regions on the task runner (connected components cost tens of ms on big
        images); one search at a time, keyed, so a result computed for an older state is dropped."""
        doc = self.document
        if doc is None or doc.gt is None or doc.pred is None:
            self.task_runner.cancel(TaskKind.ERROR_REGIONS)   # a search for the previous state is not shown
            self.regions.clear("No prediction yet" if doc is None or doc.pred is None else "No ground truth")
            return
        # The live labels are read without a copy (64 MB at 8192²); a result whose labels changed
        # while it was computed is dropped and searched again once the stroke is committed.
        gt, pred, codes, version = doc.gt, doc.pred, doc.error_codes, doc.labels_version
        ignore, error_class = doc.class_table.ignore_index, doc.error_class
        self.task_runner.submit(lambda _context: errormap.error_regions(gt, pred, ignore, error_class, codes=codes),
                                kind=TaskKind.ERROR_REGIONS, key=TaskKind.ERROR_REGIONS,
                                on_returned=lambda regions: self._on_regions_found(doc, version, regions))

    def _on_regions_found(self, document: ImageDocument, version: int, regions) -> None:
        if document is not self.document:
            return
        if document.labels_version != version:
            self._regions_stale = True
            if not document.in_stroke:
                self._schedule_panels(regions=True)
            return
        self.regions.set_regions(regions, document.class_table.names)

    def _on_layers_changed(self) -> None:
        self.layer_panel.set_layers(self.presenter.layer_rows())

    def _on_layer_opacity(self, name: str, value: float) -> None:
        self.canvas.set_layer_opacity(name, value)
        keys.set_opacity(self.settings, name, value)

    def _on_class_color(self, class_id: int, rgba) -> None:
        """Recolour a class everywhere it is drawn (tables are immutable: swap in a new one)."""
        table = self.session.class_table.with_color(class_id, rgba)
        try:
            save_class_colours(self.session.root, table)
        except OSError as exc:  # a read-only place: the colour still applies for this session
            self.statusBar().showMessage(f"Class colours not saved: {exc}", 8000)
        self.session.set_class_table(table)   # every open document, then _on_class_table

    def _on_class_table(self, table) -> None:
        if self.document is not None:
            self.presenter.refresh_all()   # masks and the misclassified hatch use the class colours
        if self.metrics_panel is not None:
            self.metrics_panel.set_class_table(table)

    def _on_cursor_moved(self, x: int, y: int) -> None:
        self.status_pixel.setText(describe_pixel(self.document, x, y))

    # --- about and closing --------------------------------------------------------------------
    def _about_text(self) -> str:
        from segstudio.ui.about import about_text

        request = self.model_dock.selected_request()
        return about_text(request.device if request else "auto", self.gpu_report)

    def show_about(self) -> QMessageBox:
        """Help › About; the GPU check runs now if no model has yet, and fills the box in."""
        self.check_gpu()
        box = QMessageBox(QMessageBox.Icon.Information, "About segstudio", self._about_text(),
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("about")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.settings.setValue(keys.GEOMETRY, self.saveGeometry())
        self.settings.setValue(keys.STATE, self.saveState())
        self.settings.sync()
        self._panels_timer.stop()              # nothing may start background work after the join
        self._regions_timer.stop()
        self.controller.shutdown()
        if self.session is not None:
            self.session.close()
        self.task_runner.join()                # no task outlives the window, none of its results is shown
        super().closeEvent(event)

