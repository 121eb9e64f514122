"""The editor: tool bar, Edit menu and review dock, bound to the window through :class:`EditorHost`.

``EditController(host)`` builds a tool bar with the editing tools, brush size and the "preserve other
labels" / "paint only over" options, an Edit menu (undo, redo, save, start from prediction,
error-region actions) and the review dock, and hands them to the host (``add_tool_bar``,
``add_edit_menu``, ``add_review_dock``). It follows ``host.document_changed`` and keeps no pixel state:
tools call the current :class:`~segstudio.core.editing.document.ImageDocument`, whose events already
drive the canvas (``DocumentPresenter`` redraws only the dirty rectangle) and the metrics panel.
Saving, autosave, the crash journal and the quit prompt are the host's ``saving``
(:class:`~segstudio.ui.edit_saving.EditPersistence`); the selected class is ``host.selection``.

Keys: V navigate, B brush, X eraser (Shift: ignore), A accept-prediction brush, G flood fill,
P polygon / lasso, K class picker (Alt+click picks in every tool), ``[`` / ``]`` and Ctrl+wheel brush
size, Enter closes a polygon, Ctrl+Z undo, Ctrl+Shift+Z / Ctrl+Y redo, Ctrl+S save, Shift+A accept
the prediction in the error region under the cursor (or the one selected in the list), Shift+X erase
it, N next image to review.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox, QToolBar

from segstudio.core.editing.document import DocumentEvent, EventKind, ImageDocument
from segstudio.core.evaluation import errormap
from segstudio.ui.edit_settings import BRUSH_RADIUS, EditSettingsDialog
from segstudio.ui.editor_host import EditorHost
from segstudio.ui.icons import assign
from segstudio.ui.edit_tools import (AcceptPredictionBrush, BrushTool, ClassPickerTool, EraserTool,
                                     FloodFillTool, PolygonTool)
from segstudio.ui.review_dock import ReviewDock

__all__ = ["EditController", "TOOL_KEYS", "MAX_BRUSH_RADIUS"]

# name -> (label, shortcut); None = navigate only (no tool on the canvas)
TOOL_KEYS = {
    "navigate": ("Navigate", "V"),
    "brush": ("Brush", "B"),
    "eraser": ("Eraser (Shift: ignore)", "X"),
    "prediction": ("Accept prediction brush", "A"),
    "fill": ("Flood fill", "G"),
    "polygon": ("Polygon / lasso fill", "P"),
    "picker": ("Class picker", "K"),
    "prompt": ("Prompt: click to segment", "S"),    # the tool is added by ui.prompt_controller
}
MAX_BRUSH_RADIUS = 256
TOOL_TIPS = {   # shown on hover over the icon, after the tool's name and key
    "navigate": "Drag to pan, wheel to zoom; no editing",
    "brush": "Paint the selected class; [ and ] or Ctrl+wheel change the size",
    "eraser": "Paint background; with Shift held, paint the ignore index (left out of the metrics)",
    "prediction": "Copy the model's prediction into the ground truth under the brush",
    "fill": "Fill the connected region under the click with the selected class (Shift: ignore index)",
    "polygon": "Click corners (Enter or a click on the first closes) or drag a lasso; fills with the selected class",
    "picker": "Click to select the ground-truth class under the cursor (Alt+click does it in every tool)",
    "prompt": "Click an object to segment it (Shift or right click: not this), drag a box; Enter accepts "
              "the outlined proposal with the selected class, Esc drops it, M shows the next candidate",
}


class EditController(QObject):
    """Editing tools and actions for a ``MainWindow`` (see the module docstring)."""

    tool_changed = Signal(str)
    brush_radius_changed = Signal(int)
    document_bound = Signal(object)     # the document the editor now edits (after recovery)

    def __init__(self, host: EditorHost):
        super().__init__(host)           # the host is the window: the editor lives as long as it
        self.host = host
        self.canvas = host.canvas
        self.persistence = host.saving
        self.settings = host.saving.settings
        self._session = None
        self.document: ImageDocument | None = None
        self.only_over: int | None = None
        self.preserve_labels = False
        self._radius = min(self.settings.brush_radius, MAX_BRUSH_RADIUS)
        self._unsubscribe = None
        self._cursor = (-1, -1)
        self.tools = {tool.name: tool for tool in (BrushTool(self), EraserTool(self), AcceptPredictionBrush(self),
                                                  FloodFillTool(self), PolygonTool(self), ClassPickerTool(self))}
        self.tool_name = "navigate"
        self._review_timer = QTimer(self, singleShot=True, interval=400)

        self._build_review_dock()
        self._build_toolbar()
        self._build_menu()
        self._review_timer.timeout.connect(self.review.refresh)
        host.document_changed.connect(self._on_document_changed)
        host.prediction_received.connect(self._on_prediction_received)
        self.canvas.brush_resize_requested.connect(self.step_brush)
        self.canvas.cursor_moved.connect(self._on_cursor_moved)
        self.persistence.saved.connect(self._on_saved)
        self.persistence.store_closed.connect(self._on_store_closed)
        self.persistence.read_only_changed.connect(self._on_read_only)
        self.persistence.restored.connect(lambda name: self.report(f"Restored the unsaved edits of {name}"))
        if host.document is not None:
            self._on_document_changed(host.document)

    # --- EditContext for the tools ----------------------------------------------------------------
    @property
    def selected_class(self) -> int:
        return self.host.selection.class_id

    @property
    def brush_radius(self) -> float:
        return float(self._radius)

    def pick_class(self, class_id: int) -> None:
        self.host.select_class(int(class_id))

    def report(self, message: str) -> None:
        self.host.report(message)

    # --- construction ---------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcuts=(), menu=None, checkable=False) -> QAction:
        action = QAction(text, self)
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.host.addAction(action)        # shortcuts work while a dock has focus, too
        if menu is not None:
            menu.addAction(action)
        return action

    def _build_toolbar(self) -> None:
        bar = QToolBar("Edit tools")
        bar.setObjectName("toolbar_edit")    # saveState / restoreState key
        self.toolbar = bar
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for name, (label, key) in TOOL_KEYS.items():
            action = self._action(f"{label} ({key})", lambda _=False, n=name: self.set_tool(n), [key],
                                  checkable=True)
            action.setIconText(label.split(" (")[0])
            assign(action, name)
            action.setToolTip(f"<b>{label}</b> ({key})<br>{TOOL_TIPS[name]}")
            self.tool_group.addAction(action)
            bar.addAction(action)
            self.tool_actions[name] = action
        self.tool_actions["navigate"].setChecked(True)
        bar.addSeparator()
        size_label = QLabel(" Size ")
        bar.addWidget(size_label)
        # The diameter, as the ring on the canvas shows it: a radius r paints 2r + 1 pixels across.
        self.radius_spin = QSpinBox()
        self.radius_spin.setRange(1, 2 * MAX_BRUSH_RADIUS + 1)
        self.radius_spin.setSingleStep(2)
        self.radius_spin.setSuffix(" px")
        self.radius_spin.setToolTip("Brush diameter in image pixels, as the ring on the canvas shows it "
                                    "([ / ] or Ctrl+wheel)")
        size_label.setToolTip(self.radius_spin.toolTip())
        self.radius_spin.setValue(2 * self._radius + 1)
        self.radius_spin.valueChanged.connect(lambda diameter: self.set_brush_radius((diameter - 1) // 2))
        bar.addWidget(self.radius_spin)
        self.screen_size = QLabel()
        self.screen_size.setToolTip("The brush diameter in screen pixels at the current zoom")
        bar.addWidget(self.screen_size)
        self.canvas.zoom_changed.connect(lambda _zoom: self._show_screen_size())
        self.preserve_action = QAction("Preserve other labels", self)
        self.preserve_action.setCheckable(True)
        assign(self.preserve_action, "preserve")
        self.preserve_action.setToolTip("<b>Preserve other labels</b> (on when pressed)<br>Change only "
                                        "background, unlabelled and selected-class pixels")
        self.preserve_action.toggled.connect(self.set_preserve_labels)
        bar.addAction(self.preserve_action)
        bar.widgetForAction(self.preserve_action).setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        bar.addWidget(QLabel(" Paint over "))
        self.only_over_combo = QComboBox()
        self.only_over_combo.currentIndexChanged.connect(
            lambda _i: self.set_only_over(self.only_over_combo.currentData()))
        bar.addWidget(self.only_over_combo)
        self.host.add_tool_bar(bar)
        self.smaller_action = self._action("Smaller brush", lambda: self.step_brush(-1), ["["])
        self.larger_action = self._action("Larger brush", lambda: self.step_brush(1), ["]"])
        # Enter closes a polygon only while the canvas has focus, so lists keep Enter for themselves.
        self.close_polygon_action = QAction("Close polygon", self.canvas)
        self.close_polygon_action.setShortcuts([QKeySequence("Return"), QKeySequence("Enter")])
        self.close_polygon_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.close_polygon_action.triggered.connect(self.finish_gesture)
        self.canvas.addAction(self.close_polygon_action)
        self._fill_only_over_combo()

    def _build_menu(self) -> None:
        menu = self.menu = self.host.add_edit_menu("&Edit")
        self.undo_action = self._action("Undo", self.undo, ["Ctrl+Z"], menu)
        self.redo_action = self._action("Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], menu)
        menu.addSeparator()
        self.save_action = self._action("Save labels", self.save, ["Ctrl+S"], menu)
        self.save_all_action = self._action("Save all edited images", self.persistence.service.save_all, [], menu)
        for action, name in ((self.undo_action, "undo"), (self.redo_action, "redo"), (self.save_action, "save"),
                             (self.save_all_action, "save_all")):
            assign(action, name)
        first_tool = self.tool_actions["navigate"]
        self.toolbar.insertActions(first_tool, [self.save_action, self.undo_action, self.redo_action])
        self.toolbar.insertSeparator(first_tool)
        menu.addSeparator()
        self.start_action = self._action("Start from prediction", self.start_from_prediction, [], menu)
        self.accept_region_action = self._action("Accept prediction in region",
                                                 lambda: self.region_action("prediction"), ["Shift+A"], menu)
        self.erase_region_action = self._action("Erase region", lambda: self.region_action("erase"),
                                                ["Shift+X"], menu)
        menu.addSeparator()
        self.next_action = self._action("Next to review", self.review.go_next, ["N"], menu)
        self.settings_action = self._action("Editing settings…", self.show_settings, [], menu)

    def _build_review_dock(self) -> None:
        self.review = ReviewDock(self.host.task_runner)
        self.review.before_export = self.persistence.service.record_live_metrics
        self.review.image_requested.connect(self.host.go_to)
        self.review.status_changed.connect(lambda name, _status: self.host.browser.refresh(name))
        self.review_dock = self.host.add_review_dock(self.review)

    # --- tools ----------------------------------------------------------------------------------
    @property
    def tool(self):
        return self.tools.get(self.tool_name)

    def set_tool(self, name: str) -> None:
        """Activate a tool by name (``TOOL_KEYS``); ``'navigate'`` leaves the mouse to panning."""
        if name not in TOOL_KEYS:
            raise ValueError(f"unknown tool {name!r}")
        if name != "navigate" and self.read_only:
            self.report(self.persistence.service.read_only_reason)
            name = "navigate"
        self.tool_name = name
        self.tool_actions[name].setChecked(True)
        tool = self.tools.get(name)
        self.canvas.set_tool(tool)
        self._update_brush_cursor()
        self.tool_changed.emit(name)

    def finish_gesture(self) -> None:
        tool = self.tool
        if tool is not None:
            tool.finish()

    def set_brush_radius(self, radius: int) -> None:
        radius = max(0, min(MAX_BRUSH_RADIUS, int(radius)))
        changed = radius != self._radius
        self._radius = radius
        if self.radius_spin.value() != 2 * radius + 1:
            self.radius_spin.setValue(2 * radius + 1)
        self._show_screen_size()
        self._update_brush_cursor()
        if changed:
            self.settings.set(BRUSH_RADIUS, radius)
            self.brush_radius_changed.emit(radius)

    def step_brush(self, steps: int) -> None:
        """Grow (+) or shrink (-) the brush by ~15 % a step, at least one pixel."""
        radius = self._radius
        for _ in range(abs(int(steps))):
            delta = max(1, round(radius * 0.15))
            radius = radius + delta if steps > 0 else radius - delta
        self.set_brush_radius(radius)

    def _show_screen_size(self) -> None:
        self.screen_size.setText(f" ≈ {(2 * self._radius + 1) * self.canvas.zoom():.0f} on screen ")

    def _update_brush_cursor(self) -> None:
        tool = self.tool
        # Disk pixels are those whose centres lie within r of the anchor's centre, so their outer edge
        # is r + 0.5 away: the ring is drawn there, at true size.
        self.canvas.set_brush_cursor(self._radius + 0.5 if tool is not None and tool.shows_brush else None)

    def set_preserve_labels(self, on: bool) -> None:
        self.preserve_labels = bool(on)
        if self.preserve_action.isChecked() != self.preserve_labels:
            self.preserve_action.setChecked(self.preserve_labels)

    def set_only_over(self, class_id: int | None) -> None:
        self.only_over = None if class_id is None else int(class_id)
        self._sync_only_over_combo()

    def _fill_only_over_combo(self) -> None:
        combo = self.only_over_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("any class", None)
        session = self.host.session
        if session is not None:
            for info in session.class_table.classes:
                combo.addItem(f"{info.id}: {info.name}", info.id)
        combo.blockSignals(False)
        self._sync_only_over_combo()

    def _sync_only_over_combo(self) -> None:
        index = max(0, self.only_over_combo.findData(self.only_over))
        if self.only_over_combo.currentIndex() != index:
            self.only_over_combo.blockSignals(True)
            self.only_over_combo.setCurrentIndex(index)
            self.only_over_combo.blockSignals(False)

    # --- document binding -----------------------------------------------------------------------
    def _on_document_changed(self, document: ImageDocument | None) -> None:
        if self.tool is not None:
            self.tool.deactivate()       # a gesture belongs to the image it started on
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        session = self.host.session
        if session is not self._session:
            self._session = session
            self.review.set_source(session, self.persistence.service.store)
            self._fill_only_over_combo()
        self.document = document
        if document is not None:
            self._unsubscribe = document.subscribe(self._on_document_event)
            self.review.invalidate(document.name)
            self.review.set_current(document.name)
            self._review_timer.start()
        self._update_actions()
        self.document_bound.emit(document)

    def _on_document_event(self, event: DocumentEvent) -> None:
        if event.kind in (EventKind.LABELS, EventKind.RELOADED, EventKind.PREDICTION):
            self.review.invalidate(self.document.name)
            self._review_timer.start()
        self._update_actions()

    def _on_prediction_received(self, name: str) -> None:
        self.review.invalidate(name)
        self._review_timer.start()

    def _on_cursor_moved(self, x: int, y: int) -> None:
        self._cursor = (x, y)

    @property
    def read_only(self) -> bool:
        """Another instance holds the dataset and the user chose to only look (see EditingService)."""
        return self.persistence.service.read_only_reason is not None

    def _on_read_only(self, reason: str) -> None:
        if reason and self.tool_name != "navigate":
            self.set_tool("navigate")
        self._update_actions()

    def _update_actions(self) -> None:
        document = None if self.read_only else self.document
        self.undo_action.setEnabled(document is not None and document.can_undo)
        self.redo_action.setEnabled(document is not None and document.can_redo)
        self.start_action.setEnabled(document is not None and document.pred is not None)
        for action in (self.accept_region_action, self.erase_region_action,
                       *(a for name, a in self.tool_actions.items() if name != "navigate")):
            action.setEnabled(not self.read_only)

    def _on_saved(self, name: str, _path: str) -> None:
        self.review.invalidate(name)

    def _on_store_closed(self) -> None:
        self._review_timer.stop()
        self._session = None
        self.review.set_source(None, None)

    # --- commands -------------------------------------------------------------------------------
    def undo(self) -> None:
        if self.document is not None and self.document.undo() is None:
            self.report("Nothing to undo")

    def redo(self) -> None:
        if self.document is not None and self.document.redo() is None:
            self.report("Nothing to redo")

    def save(self) -> bool:
        return self.persistence.service.save(self.document)

    def start_from_prediction(self) -> None:
        document = self.document
        if document is None or document.pred is None:
            self.report("No prediction on this image to start from")
            return
        document.start_from_prediction()

    def region_action(self, source: str) -> bool:
        """Accept the prediction into (``'prediction'``) or erase (``'erase'``) one error region.

        The region under the mouse when the canvas has it, else the one selected in the error
        regions list. Returns True when the ground truth changed.
        """
        document = self.document
        if document is None or document.gt is None or document.pred is None:
            self.report("Error-region actions need ground truth and a prediction")
            return False
        labels, regions = errormap.error_components(document.gt, document.pred, document.ignore_index,
                                                    document.error_class)
        label = 0
        x, y = self._cursor
        if 0 <= y < labels.shape[0] and 0 <= x < labels.shape[1]:
            label = int(labels[y, x])
        if not label:
            label = self._selected_region_label(regions)
        region = next((r for r in regions if r.label == label), None) if label else None
        if region is None:
            self.report("Point at an error region or select one in the Error regions list")
            return False
        rx, ry, rw, rh = region.bbox
        mask = labels[ry:ry + rh, rx:rx + rw] == label
        atom = document.apply_region(mask, region.bbox, source=source, erase_value=0)
        return atom is not None

    def _selected_region_label(self, regions) -> int:
        chosen = self.host.regions.selected_region()
        if chosen is None:
            return 0
        match = next((r for r in regions if r.bbox == chosen.bbox and r.size == chosen.size), None)
        return match.label if match is not None else 0

    def settings_dialog(self) -> EditSettingsDialog:
        """The editing settings, showing the folder corrections of the open dataset really go to."""
        from segstudio.core.io.saving import corrected_dir

        session = self.host.session
        default = str(corrected_dir(session.dataset)) if session is not None else None
        return EditSettingsDialog(self.settings, self.canvas.window(), default_folder=default)

    def show_settings(self) -> None:
        if self.settings_dialog().exec():
            self.persistence.apply_settings()
