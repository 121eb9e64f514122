"""The main window: composes the canvas, the docks, the menus and the inference worker.

It holds no business logic. The open dataset, the per-image prediction cache and the statistics live
in :class:`segstudio.core.editing.session.ReviewSession`; the image being reviewed in its
:class:`~segstudio.core.editing.document.ImageDocument`; what the canvas shows is decided by
:class:`~segstudio.ui.document_view.DocumentPresenter`. This class wires their signals together.

The editor is composed in (``editor_factory``; :mod:`segstudio.ui.compose`) against the window's
:class:`~segstudio.ui.editor_host.EditorHost` face. Saving and recovery (``self.saving``) are the window's.

Start-up is split in two so the window is on screen fast: ``__init__`` builds the light widgets, and
``finish_startup`` (called from the event loop once the window is shown) builds the pyqtgraph
panels, lists the registry (no torch) and opens the dataset. torch is imported in the worker only
when a model is about to run or the GPU check is asked for (About, the device list).
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QLabel, QMainWindow, QMessageBox, QMenu, QSizePolicy, QToolBar,
                               QVBoxLayout, QWidget)

from segstudio.core.display.render import ViewMode
from segstudio.core.editing.document import DocumentEvent, EventKind, ImageDocument
from segstudio.core.editing.selection import ErrorMode, Selection
from segstudio.core.errors import SegStudioError
from segstudio.core.editing.session import (ReviewSession, describe_pixel, instance_marks, load_document)
from segstudio.core.io.workspace import save_class_colours, with_saved_colours
from segstudio.inference.catalog import list_available
from segstudio.ui import settings as keys
from segstudio.ui.canvas import CanvasView
from segstudio.ui.binary_mapping import open_dataset_asking
from segstudio.ui.class_notice import ClassTableNotice
from segstudio.ui.class_panel import ClassPanel
from segstudio.ui.compare_dock import install_compare
from segstudio.ui.label_error_dock import install_label_errors
from segstudio.ui.dataset_browser import DatasetBrowser
from segstudio.ui.document_view import DocumentPresenter
from segstudio.ui.edit_saving import EditPersistence
from segstudio.ui.edit_settings import EditSettings
from segstudio.ui.editor_host import EditorHost
from segstudio.ui.error_regions import ErrorRegionsPanel
from segstudio.ui.file_menu import FileMenu
from segstudio.ui.hints import EmptyStateHint
from segstudio.ui.layer_panel import LayerPanel
from segstudio.ui.legend import LegendWidget
from segstudio.ui.menus import build_menus
from segstudio.ui.model_dock import ModelDock
from segstudio.ui.model_jobs import ModelJobs
from segstudio.ui.panel_refresh import PanelRefresher
from segstudio.ui.tables import scrolled
from segstudio.ui.tasks import QtTaskRunner
from segstudio.ui.worker import InferenceController

__all__ = ["MainWindow", "DEMO_MODEL"]

DEMO_MODEL = "demo"


class MainWindow(ModelJobs, QMainWindow):
    """segstudio's main window. See the module docstring for how start-up is split."""

    document_changed = Signal(object)      # the ImageDocument now shown (editing tools follow it)
    prediction_received = Signal(str)      # image name: a prediction was stored for it
    errors_shown = Signal(str)             # title, after show_error (tests and logs)

    def __init__(self, settings=None, controller: InferenceController | None = None,
                 editor_factory: Callable[[EditorHost], QObject] | None = None):
        super().__init__()
        self.setWindowTitle("segstudio")
        self.settings = settings if settings is not None else keys.app_settings()
        self.session: ReviewSession | None = None
        self.selection = Selection()       # the selected class and error-map mode; documents read it
        self.selection.subscribe(self._on_selection)
        self._shown: ImageDocument | None = None
        self._shown_modified: bool | None = None
        self.instance_view = False
        self.outlines = False
        self.gpu_report: dict | None = None
        self._gpu_notice = self._about_box = None   # the widgets a new GPU report replaces / rewrites
        self._gpu_check_job: int | None = None
        self.metrics_panel = None          # built in finish_startup (pyqtgraph is slow to import)
        self._job_sessions: dict[int, ReviewSession] = {}   # job id -> the session it serves
        self._unsubscribe_document = None
        self._cursor: tuple[int, int] | None = None   # the image pixel last under the mouse

        self.canvas = CanvasView()
        self.setCentralWidget(self.canvas)
        self.presenter = DocumentPresenter(
            self.canvas, opacity_default=lambda layer, value: keys.opacity(self.settings, layer, value),
            parent=self)
        self.controller = controller or InferenceController(self)
        # Background work other than inference: handed to whoever needs it, joined on close.
        self.task_runner = QtTaskRunner(parent=self)
        self.saving = EditPersistence(EditSettings(self.settings), self.task_runner, self, self.show_error,
                                      parent=self)
        self.panels = PanelRefresher(self)

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
        self._add_dock("compare", "Compare A/B", scrolled(install_compare(self)), Qt.DockWidgetArea.RightDockWidgetArea)
        # Beside the metrics (its numbers are metrics too): five tabs under them would elide every title.
        self.tabifyDockWidget(self._docks["metrics"], self._docks["compare"])
        self._add_dock("label_errors", "Label errors", scrolled(install_label_errors(self)),
                       Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self._docks["compare"], self._docks["label_errors"])
        self._docks["regions"].raise_()
        self._docks["metrics"].raise_()

        self.status_pixel = QLabel("")
        self.status_mode = QLabel("")
        # A long readout is cut at its own edge instead of pushing the permanent fields over.
        self.status_pixel.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.statusBar().addWidget(self.status_pixel, 1)
        self.statusBar().addPermanentWidget(self.status_mode)
        self.statusBar().addPermanentWidget(self.saving.journal_warning)

        self._build_menus()
        self.editor = editor_factory(self) if editor_factory is not None else None
        self._connect()
        self.class_notice = ClassTableNotice(self)   # class tables that differ: status bar + metrics
        self.hint = EmptyStateHint(self)
        self._restore_layout()
        self._update_mode_text()

    # --- construction -------------------------------------------------------------------------
    def _add_dock(self, key: str, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{key}")   # saveState / restoreState key
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self._docks[key] = dock
        return dock

    def dock(self, key: str) -> QDockWidget:
        """The dock ``key``: layers, model, metrics, regions, dataset, compare, label_errors and, with the
        editor, review."""
        return self._docks[key]

    def add_tool_bar(self, bar: QToolBar) -> None:
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

    def add_edit_menu(self, title: str) -> QMenu:
        """An empty menu for the editor, between View and Model."""
        menu = QMenu(title, self)
        self.menuBar().insertMenu(self._model_menu.menuAction(), menu)
        return menu

    def add_review_dock(self, widget: QWidget) -> QDockWidget:
        """The editor's review queue: a tab beside the dataset browser, the error regions kept in front."""
        dock = self._add_dock("review", "Review", widget, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self._docks["dataset"], dock)
        self.view_menu.insertAction(self.hide_panels_action, dock.toggleViewAction())   # a panel, like the others
        self._docks["regions"].raise_()
        return dock

    def _build_layers_widget(self) -> QWidget:
        host = QWidget()
        layout = QVBoxLayout(host)
        layout.setContentsMargins(0, 0, 0, 0)
        self.layer_panel = LayerPanel()
        self.class_panel = ClassPanel()
        self.legend = LegendWidget()
        self.legend.set_instance_view(self.instance_view)
        layout.addWidget(self.layer_panel)
        layout.addWidget(self.legend)
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
        self.file_menu = FileMenu(bar.addMenu("&File"), self, self.settings, self._action, self.open_path,
                                  self.open_predictions, self.close)

        actions = build_menus(self, bar, self._action, self._docks.values())
        self.instance_action, self.outlines_action, self.error_mode_action, self._model_menu = actions

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
        # The region fills about a third of the view: what surrounds it stays in sight.
        self.regions.region_selected.connect(lambda region: self.canvas.center_on_rect(*region.bbox, margin=1 / 3))
        c = self.controller
        c.progress.connect(lambda job, done, total: self.model_dock.set_progress(done, total, c.elapsed(job)))
        c.finished.connect(self._on_prediction)
        c.failed.connect(lambda job, message: self.show_error("Inference failed", message))
        c.failed.connect(self.model_dock.job_failed)
        c.cancelled.connect(self.model_dock.job_cancelled)
        c.job_ended.connect(self._on_job_ended)
        c.model_loaded.connect(self.model_dock.model_loaded)
        c.gpu_checked.connect(self._on_gpu_report)
        self.saving.saved.connect(self._on_saved)

    def finish_startup(self, path: str | None = None, model: str | None = None, device: str | None = None,
                       predictions: str | None = None, run: bool = False, demo_tour: bool = False) -> None:
        """Second half of start-up, run once the window is on screen: open ``path`` (default the
        demo), then the ``predictions`` folder; with ``run``, run ``model`` on the first image. With
        ``demo_tour`` (the app launched on the bundled demo), the demo model runs on its first image."""
        from segstudio.resources import resource_path
        from segstudio.ui.metrics_panel import MetricsPanel

        self.metrics_panel = MetricsPanel()
        self.metrics_panel.cell_clicked.connect(self.highlight_confusion_cell)
        self.metrics_panel.highlight_dropped.connect(self.clear_highlight)
        self._docks["metrics"].setWidget(self.metrics_panel)
        self._metrics_host.deleteLater()
        self.model_dock.set_device(device or str(self.settings.value(keys.DEVICE, "auto")))
        self.model_dock.set_models(list_available())
        self.model_dock.select_spec(model or str(self.settings.value(keys.MODEL, DEMO_MODEL)))
        if path is None:
            path = str(resource_path("demo"))
        if self.open_path(path) and predictions is not None:
            self.open_predictions(predictions)
        if run:
            self.run_on_image()
        elif demo_tour and path == str(resource_path("demo")) and self.model_dock.selected_spec() == DEMO_MODEL:
            self.run_on_image()   # the first screen shows an error map and metrics; Esc cancels

    def _restore_layout(self) -> None:
        geometry = self.settings.value(keys.GEOMETRY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
            # The canvas keeps most of the window: narrow docks, which the user can widen or hide.
            self.resizeDocks([self._docks["layers"], self._docks["metrics"]], [285, 385],
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
        service = self.saving.service
        store = None
        try:
            dataset = open_dataset_asking(self, self.settings, path)   # asks how {0, 255} masks read
            dataset.class_table = with_saved_colours(dataset.root, dataset.class_table)
            # Built with where the corrections are saved, so the first image is decoded once, from them.
            session = ReviewSession(dataset, self.task_runner, saved_labels=service.labels_source(dataset))
            if not len(session):
                raise SegStudioError(path, "no images found")
            store = service.open_store(session.root)
            document = session.open_readable(0, 1, self._document_factory(session, store))
        except (SegStudioError, OSError) as exc:
            if store is not None:
                store.close()
            self.show_error("Cannot open", str(exc))
            return False
        self.controller.cancel()  # results for the old dataset have nowhere to go
        if self.session is not None:
            self.session.close()
        service.attach(session, store)   # saves the old dataset's edits, offers recovery of the new one's
        self.session, self._shown = session, None
        session.subscribe_class_table(self._on_class_table)
        self.browser.set_session(session)
        self.browser.set_status_source(store.status if store is not None else (lambda _name: "unreviewed"))
        self.class_panel.set_class_table(session.class_table)
        if self.metrics_panel is not None:
            self.metrics_panel.set_class_table(session.class_table)
        self.settings.setValue(keys.LAST_DATASET, str(path))
        keys.add_recent(self.settings, str(path))
        self.file_menu.rebuild_recent()
        self._show_document(document)
        return True

    def _document_factory(self, session: ReviewSession, journal):
        """How ``session`` builds a document: on the current error mode, recording into ``journal``
        (the dataset's project store), reporting metrics for the selected class."""
        selection = self.selection
        return lambda sample, decoded=None: load_document(sample, session.class_table, selection.error_class,
                                                          decoded, journal=journal, selection=selection)

    def go_to(self, index: int) -> bool:
        """Show image ``index`` of the dataset; on a bad file say why and stay where we are."""
        if self.session is None or index == self.session.index or not 0 <= index < len(self.session):
            return False
        try:
            document = self.session.open(index, self._document_factory(self.session, self.saving.service.store))
        except (SegStudioError, OSError) as exc:
            self.browser.refresh(self.session.dataset[index].name)   # now marked unreadable
            self.browser.select_image(self.session.index)            # the selection is the image shown
            self.show_error("Cannot open image", str(exc))
            return False
        self._show_document(document)
        return True

    def step_image(self, delta: int) -> bool:
        """Show the next readable image ``delta`` away, passing over (and marking) unreadable ones."""
        session = self.session
        if session is None or session.step(delta) == session.index:
            return False
        try:
            document = session.open_readable(session.step(delta), 1 if delta > 0 else -1,
                                             self._document_factory(session, self.saving.service.store))
        except (SegStudioError, OSError):
            self.browser.refresh()
            self.report(f"No readable image {'after' if delta > 0 else 'before'} this one")
            return False
        self._show_document(document)
        return True

    def _show_document(self, document: ImageDocument) -> None:
        previous, self._shown = self._shown, document
        if previous is not None and previous is not document:
            self.saving.service.release(previous)         # autosaves it when that is on
        self.presenter.show(document)
        if self.metrics_panel is not None and previous is not document:
            self.metrics_panel.clear_class_change()       # "IoU a → b" was about the previous image
        if self._unsubscribe_document is not None:
            self._unsubscribe_document()
        self._unsubscribe_document = document.subscribe(self._on_document_event)
        self.saving.service.track(document)               # restores its unsaved strokes if pending
        self._refresh_cursor_readout()
        self.browser.select_image(self.session.index)
        self._shown_modified = None
        self._update_title()
        self._update_instance_marks()
        self.panels.schedule(regions_now=True)
        self.session.decode_ahead(self.session.step(1))   # PageDown is the common next step
        if self.session.opening_note():
            self.browser.refresh()                        # rows of the images found unreadable
            self.report(self.session.opening_note())
        self.document_changed.emit(document)

    def _update_title(self) -> None:
        """The one writer of the title: image, dataset, position, and "* " while the image has unsaved
        edits (also marked in the browser's row)."""
        document, session = self.document, self.session
        if document is None:
            return
        modified = document.modified
        if modified == self._shown_modified:
            return
        if self._shown_modified is not None:
            self.browser.refresh(document.name)
        self._shown_modified = modified
        place = f"{document.name} — {session.root.name} ({session.index + 1}/{len(session)})"
        self.setWindowTitle(f"{'* ' if modified else ''}{place} — segstudio")

    def _on_saved(self, name: str, path: str) -> None:
        self.browser.refresh(name)
        self.report(f"Saved {name} to {path}")

    def report(self, message: str) -> None:
        """A passing message in the status bar."""
        self.statusBar().showMessage(message, 5000)

    @property
    def document(self) -> ImageDocument | None:
        return self.session.document if self.session is not None else None

    # --- views --------------------------------------------------------------------------------
    def set_instance_view(self, on: bool) -> None:
        self.instance_view = bool(on)
        self.instance_action.setChecked(self.instance_view)
        self.legend.set_instance_view(self.instance_view)
        self._apply_view_mode()
        self._update_instance_marks()

    def set_outlines(self, on: bool) -> None:
        self.outlines = bool(on)
        self.outlines_action.setChecked(self.outlines)
        self._apply_view_mode()

    @property
    def view_mode(self) -> ViewMode:
        return ViewMode.OUTLINES if self.outlines else ViewMode.INSTANCE if self.instance_view else ViewMode.SEMANTIC

    def _apply_view_mode(self) -> None:
        self.presenter.set_view_mode(self.view_mode)
        self._update_mode_text()

    def set_error_mode(self, mode: ErrorMode) -> None:
        """All classes, or one: true/false positives and negatives of the selected class."""
        self.selection.set_error_mode(mode)

    def select_class(self, class_id: int) -> None:
        if self.session is None or not 0 <= class_id < self.session.class_table.num_classes:
            return
        if class_id == self.selection.class_id and self.class_panel.current_class() == class_id:
            return
        self.selection.select_class(class_id)
        self.class_panel.select_class(class_id)     # also when only the panel was behind

    def _on_selection(self, selection: Selection) -> None:
        """The selection's listener: the error map follows the error mode and, in one-class mode, the class."""
        self.error_mode_action.setChecked(selection.error_mode is ErrorMode.ONE)
        document = self.document
        if document is not None and document.error_class != selection.error_class:
            document.error_class = selection.error_class
            self.panels.schedule(regions_now=True)
        self._update_mode_text()

    def _update_mode_text(self) -> None:
        view = {ViewMode.OUTLINES: "outlines", ViewMode.INSTANCE: "instances"}.get(self.view_mode, "semantic")
        errors, class_id = "all classes", self.selection.class_id
        if self.selection.error_mode is ErrorMode.ONE:
            names = self.session.class_table.names if self.session is not None else []
            errors = names[class_id] if class_id < len(names) else str(class_id)
        self.status_mode.setText(f"view: {view}   errors: {errors}")

    def _update_instance_marks(self) -> None:
        marks = instance_marks(self.document) if self.instance_view else []
        self.presenter.set_instance_marks(marks)

    def clear_highlight(self) -> None:
        """Drop the confusion-cell highlight (Esc, leaving the confusion tab, another image)."""
        self.presenter.clear_highlight()

    def highlight_confusion_cell(self, gt_class: int, pred_class: int) -> int:
        """Highlight the pixels with ground truth ``gt_class`` predicted as ``pred_class``."""
        count, text = self.presenter.highlight_cell(gt_class, pred_class)
        if text:
            self.report(text)
        return count

    # --- panels -------------------------------------------------------------------------------
    def _on_document_event(self, event: DocumentEvent) -> None:
        """Everything here is O(C²) or O(edit); O(image) work (error regions) goes to a worker, once
        a stroke is committed rather than per dab."""
        self._update_title()
        self._refresh_cursor_readout()                    # the pixel under the cursor may have changed
        if event.kind is EventKind.SOURCE:
            return   # another source kept alongside: the compare dock listens to its own attachments
        if event.kind is EventKind.HISTORY:
            if self.document is not None and not self.document.in_stroke and self.panels.regions_stale:
                self.panels.schedule(regions=True)
            return
        if self.session is not None:
            self.session.refresh_stats()
        if event.kind is EventKind.PREDICTION:
            self.saving.service.record_before(self.document)   # on the task runner
        if event.metrics_delta is not None and self.metrics_panel is not None:
            self.metrics_panel.show_metrics_delta(event.metrics_delta)
        if event.kind is EventKind.LABELS:
            in_stroke = self.document is not None and self.document.in_stroke
            self.panels.regions_stale = in_stroke
            self.panels.schedule(regions=not in_stroke)
        else:
            self._update_instance_marks()
            self.panels.schedule(regions_now=True)

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
        except (SegStudioError, OSError) as exc:  # a read-only place: the colour still applies for this session
            self.report(f"Class colours not saved: {exc}")
        self.session.set_class_table(table)   # every open document, then _on_class_table

    def _on_class_table(self, table) -> None:
        if self.document is not None:
            self.presenter.refresh_all()   # masks and the misclassified hatch use the class colours
        if self.metrics_panel is not None:
            self.metrics_panel.set_class_table(table)

    def _on_cursor_moved(self, x: int, y: int) -> None:
        self._cursor = (x, y)
        self.status_pixel.setText(describe_pixel(self.document, x, y))

    def _refresh_cursor_readout(self) -> None:
        if self._cursor is not None:
            self._on_cursor_moved(*self._cursor)

    # --- about and closing --------------------------------------------------------------------
    def _device(self) -> str:
        request = self.model_dock.selected_request()
        return request.device if request else "auto"

    def show_about(self) -> QMessageBox:
        """Help › About; the GPU check runs now if no model has yet, and fills the box in."""
        from segstudio.ui.about import show_about_box

        self.check_gpu()
        self._about_box = show_about_box(self, self._device(), self.gpu_report)
        return self._about_box

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if not self.saving.confirm_close():    # Cancel, or a save that failed: stay open
            event.ignore()
            return
        self.settings.setValue(keys.GEOMETRY, self.saveGeometry())
        self.settings.setValue(keys.STATE, self.saveState())
        self.settings.sync()
        self.panels.stop()                     # nothing may start background work after the join
        self.controller.shutdown()
        if self.session is not None:
            self.session.close()
        self.task_runner.join()                # no task outlives the window, none of its results is shown
        super().closeEvent(event)

