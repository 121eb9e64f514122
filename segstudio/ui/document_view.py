"""Binds an :class:`~segstudio.core.editing.document.ImageDocument` to the canvas layers.

The presenter turns document events into canvas calls: a stroke (``'gt'`` with a bounding box)
redraws only that rectangle; a new prediction or ground truth replaces the layers. What each layer
shows comes from core helpers (``render.view_arrays``, ``errormap``); the presenter only decides
which arrays go to which layer and keeps the user's visibility and opacity when they are replaced.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from segstudio.core.evaluation import errormap
from segstudio.core.io.images import to_display_rgb
from segstudio.core.display.highlight import highlight_color
from segstudio.core.display.layers import confidence_layer, entropy_layer, hatch_codes
from segstudio.core.display.overlays import MAX_PAIR_CLASSES, pair_codes, pair_lut
from segstudio.core.display.render import ViewMode, semantic_outlines, view_arrays
from segstudio.core.editing.document import DocumentEvent, EventKind, ImageDocument

__all__ = ["DocumentPresenter", "LAYERS", "MARK_COLORS"]

# Bottom to top. "misclassified" hatches wrong-class pixels with the (gt, pred) pair's colours.
LAYERS = ("image", "confidence", "entropy", "gt", "pred", "source_a", "source_b", "errors", "misclassified",
          "disagreement", "instance_marks", "highlight")
DEFAULTS = {  # layer -> (visible, opacity)
    "confidence": (False, 0.6), "entropy": (False, 0.6), "gt": (True, 0.5), "pred": (False, 0.5),
    "errors": (True, 0.8), "misclassified": (True, 0.8), "instance_marks": (True, 1.0),
    "highlight": (True, 0.9),
    "source_a": (False, 0.5), "source_b": (False, 0.5), "disagreement": (True, 0.8),
}
LABELS = {"image": "Image", "confidence": "Confidence", "entropy": "Entropy", "gt": "Ground truth",
          "pred": "Prediction", "errors": "Error map", "misclassified": "Misclassified (hatch)",
          "instance_marks": "Instance errors", "highlight": "Highlight",
          "source_a": "Source A", "source_b": "Source B", "disagreement": "Disagreement A vs B"}
MARK_KINDS = ("missed", "spurious", "split", "merged")
MARK_COLORS = {"missed": (0, 114, 178, 255), "spurious": (213, 94, 0, 255),
               "split": (240, 228, 66, 255), "merged": (204, 121, 167, 255)}


def _mark_lut() -> np.ndarray:
    lut = np.zeros((256, 4), np.uint8)
    for code, kind in enumerate(MARK_KINDS, start=1):
        lut[code] = MARK_COLORS[kind]
    return lut


class DocumentPresenter(QObject):
    """Keeps the canvas layers in step with one document and the view options."""

    layers_changed = Signal()       # a layer was added, replaced or removed

    def __init__(self, canvas, opacity_default=None, parent: QObject | None = None):
        super().__init__(parent)
        self.canvas = canvas
        self.document = None
        self.view_mode = ViewMode.SEMANTIC
        self.hidden_classes: set[int] = set()
        self.instance_marks: list = []
        self.order: list[str] = list(LAYERS)     # bottom to top; the layer panel may reorder
        self._opacity_default = opacity_default or (lambda layer, value: value)
        self._unsubscribe = None
        self._labels: dict[str, str] = {}        # titles of layers other controllers own

    # --- document -----------------------------------------------------------------------------
    def show(self, document: ImageDocument) -> None:
        """Show ``document`` on the canvas (image, masks, error map) and follow its changes."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.document = document
        self.canvas.set_image(to_display_rgb(document.image))
        self._unsubscribe = document.subscribe(self.on_document_event)
        self.refresh_all()

    def on_document_event(self, event: DocumentEvent) -> None:
        if event.kind is EventKind.LABELS and event.bbox is not None:
            self._update_region(event.bbox)
        elif event.kind in (EventKind.LABELS, EventKind.PREDICTION, EventKind.RELOADED):
            self.refresh_all()
        elif event.kind is EventKind.ERRORS:
            self._refresh_errors()
            self.layers_changed.emit()

    def refresh_all(self) -> None:
        self._refresh_masks()
        self._refresh_errors()
        self._refresh_maps()
        self.set_highlight(None)
        self.layers_changed.emit()

    # --- view options -------------------------------------------------------------------------
    def set_view_mode(self, mode: ViewMode) -> None:
        self.view_mode = mode
        if self.document is not None:
            self._refresh_masks()
            self.layers_changed.emit()

    def set_hidden_classes(self, hidden) -> None:
        self.hidden_classes = set(hidden)
        if self.document is not None:
            self._refresh_masks()

    def set_highlight(self, mask: np.ndarray | None) -> None:
        """Show ``mask`` (HxW bool) as the 'highlight' layer, in a colour no class uses; None removes it."""
        if mask is None:
            self._set("highlight", None)
            return
        lut = np.zeros((256, 4), np.uint8)
        lut[1] = self.highlight_color()
        self._set("highlight", mask.astype(np.uint8), lut)
        self.canvas.set_layer_visible("highlight", True)
        self.layers_changed.emit()

    def highlight_cell(self, gt_class: int, pred_class: int) -> tuple[int, str]:
        """Highlight the pixels with ground truth ``gt_class`` predicted as ``pred_class``; returns
        their count and a sentence for the status bar ("" with nothing to compare)."""
        doc = self.document
        if doc is None or doc.gt is None or doc.pred is None:
            return 0, ""
        mask = (doc.gt == gt_class) & (doc.pred == pred_class)
        self.set_highlight(mask)
        count, names = int(mask.sum()), doc.class_table.names
        return count, f"{count} pixels: gt {names[gt_class]} predicted {names[pred_class]}"

    def clear_highlight(self) -> None:
        if "highlight" in self.canvas.layer_names():
            self.set_highlight(None)
            self.layers_changed.emit()

    def highlight_color(self) -> tuple[int, int, int, int]:
        """A colour no class of the shown document, error code or instance mark is drawn in."""
        used = [errormap.ERROR_COLORS[code][:3] for code in (errormap.CORRECT, *errormap.WRONG_CODES,
                                                             errormap.IGNORED)]
        used += [colour[:3] for colour in MARK_COLORS.values()]
        if self.document is not None:
            used += [colour[:3] for colour in self.document.class_table.colors]
        return highlight_color(np.array(used))

    def set_instance_marks(self, marks: list) -> None:
        """Frame flagged instances (``errormap.InstanceMark``) in their kind's colour."""
        self.instance_marks = list(marks)
        if self.document is None or not marks:
            self._set("instance_marks", None)
            return
        import cv2

        frame = np.zeros(self.document.shape, np.uint8)
        for mark in marks:
            x, y, w, h = mark.bbox
            code = MARK_KINDS.index(mark.kind) + 1
            cv2.rectangle(frame, (x - 1, y - 1), (x + w, y + h), code, 1)
        self._set("instance_marks", frame, _mark_lut())

    def set_extra_layer(self, name: str, array: np.ndarray | None, lut: np.ndarray | None = None,
                        label: str | None = None) -> None:
        """Show (or with None remove) a layer another controller owns (the A-vs-B compare layers),
        stacked where :data:`LAYERS` puts it, keeping the user's visibility and opacity; ``label`` is its
        title in the layer list (default from :data:`LABELS`)."""
        if label is not None:
            self._labels[name] = label
        had = name in self.canvas.layer_names()
        self._set(name, array, lut)
        if had or array is not None:
            self.layers_changed.emit()

    # --- layers -------------------------------------------------------------------------------
    def _set(self, name: str, array, lut=None) -> None:
        names = self.canvas.layer_names()
        if array is None:
            if name in names:
                self.canvas.set_layer(name, None)
            return
        if name in names:
            info = self.canvas.layer(name)
            visible, opacity = info.visible, info.opacity
        else:
            visible, opacity = DEFAULTS.get(name, (True, 1.0))
            opacity = self._opacity_default(name, opacity)
        self.canvas.set_layer(name, array, lut, opacity=opacity, visible=visible)
        present = self.canvas.layer_names()
        self.canvas.set_layer_order([n for n in self.order if n in present])

    def set_order(self, names_bottom_to_top: list[str]) -> None:
        """The user restacked the layers: keep that order for layers added later, too."""
        rest = [n for n in self.order if n not in names_bottom_to_top]
        self.order = list(names_bottom_to_top) + rest
        present = self.canvas.layer_names()
        self.canvas.set_layer_order([n for n in self.order if n in present])

    def layer_rows(self) -> list[tuple[str, str, bool, float]]:
        """``(name, label, visible, opacity)`` of the canvas layers, bottom to top (layer panel)."""
        rows = []
        for name in self.canvas.layer_names():
            info = self.canvas.layer(name)
            rows.append((name, self._labels.get(name) or LABELS.get(name, name), info.visible, info.opacity))
        return rows

    def _refresh_masks(self) -> None:
        doc = self.document
        table = doc.class_table
        for name, mask, instances in (("gt", doc.gt, doc.gt_instances), ("pred", doc.pred, doc.pred_instances)):
            array, lut = view_arrays(self.view_mode, mask, table, instances, self.hidden_classes)
            self._set(name, array, lut)
        if doc.gt is None and doc.pred is not None:
            self.canvas.set_layer_visible("pred", True)   # no ground truth, no error map: show what the model saw

    def _refresh_errors(self) -> None:
        doc = self.document
        if doc.error_codes is None:
            self._set("errors", None)
            self._set("misclassified", None)
            return
        self._set("errors", doc.error_codes, errormap.ERROR_COLORS)
        # Codes prepared with the comparison (off the GUI thread) are taken once: the canvas's copy
        # is the one strokes keep up to date from then on.
        prepared = doc.comparison.layers.pop("misclassified", None)
        if doc.error_class is not None:
            self._set("misclassified", None)
        elif doc.num_classes <= MAX_PAIR_CLASSES:
            codes = prepared[0] if prepared is not None else hatch_codes(doc.comparison, doc.gt)
            self._set("misclassified", codes, pair_lut(doc.class_table))
        else:
            self._set("misclassified", errormap.pair_tint(doc.gt, doc.pred, doc.class_table))

    def _refresh_maps(self) -> None:
        """Confidence and entropy as prepared with the comparison (computed and kept there if not)."""
        comparison = self.document.comparison
        for name, make in (("confidence", lambda c: confidence_layer(c.confidence)),
                           ("entropy", lambda c: entropy_layer(c.entropy, c.num_classes))):
            if comparison is None or getattr(comparison, name) is None:
                self._set(name, None)
                continue
            if name not in comparison.layers:
                comparison.layers[name] = make(comparison)
            self._set(name, *comparison.layers[name])

    def _update_region(self, bbox) -> None:
        """A stroke changed the ground truth inside ``bbox``: redraw just that, O(bbox)."""
        doc = self.document
        x, y, w, h = bbox
        names = self.canvas.layer_names()
        if "gt" not in names:
            self._refresh_masks()
        elif self.view_mode is ViewMode.SEMANTIC:
            self.canvas.update_layer_region("gt", x, y, w, h)
        elif self.view_mode is ViewMode.OUTLINES and doc.gt_instances is None:
            # class borders move at most one pixel beyond the stroke: redraw that ring, O(bbox)
            x0, y0 = max(0, x - 1), max(0, y - 1)
            x1, y1 = min(doc.shape[1], x + w + 1), min(doc.shape[0], y + h + 1)
            rect = (x0, y0, x1 - x0, y1 - y0)
            self.canvas.layer("gt").array[y0:y1, x0:x1] = semantic_outlines(doc.gt, doc.class_table, rect)
            self.canvas.update_layer_region("gt", *rect)
        else:
            self._refresh_masks()  # instance ids can merge or split anywhere: recomputed whole
        if doc.error_codes is None:
            return
        if "errors" in names:
            self.canvas.update_layer_region("errors", x, y, w, h)
        if "misclassified" in names and doc.error_class is None:
            hatch = self.canvas.layer("misclassified").array
            rows, cols = slice(y, y + h), slice(x, x + w)
            if hatch.ndim == 2:
                hatch[rows, cols] = pair_codes(doc.error_codes[rows, cols], doc.gt[rows, cols],
                                               doc.pred[rows, cols], doc.num_classes, (x, y))
            else:
                hatch[rows, cols] = errormap.pair_tint(doc.gt[rows, cols], doc.pred[rows, cols],
                                                       doc.class_table, origin=(x, y))
            self.canvas.update_layer_region("misclassified", x, y, w, h)
