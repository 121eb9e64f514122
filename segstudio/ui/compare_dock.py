"""The Compare dock: pick sources A and B, read where and by how much B differs from A.

Tabs: *Regions* (the disagreement map's regions by kind, largest first; click to zoom), *Metrics*
(A, B and Δ per class and overall, for the image or the dataset, with the paired bootstrap's 95 %
interval), *Images* (the images both sources predicted, B's worst regressions first; click to open) and
*Label fixes* (each model against the original and the corrected labels). A legend of the map's colours
with the pixel count of each kind sits above them. The dock only displays: the numbers come from
:class:`~segstudio.ui.compare_controller.CompareController` and the core functions it names.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton,
                               QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from segstudio.core.evaluation.disagreement import COUNT_KEYS, Disagreement
from segstudio.core.evaluation.disagreement_map import DISAGREEMENT_COLORS, DISAGREEMENT_LABELS
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.evaluation.sources import class_deltas, source_label
from segstudio.ui.metrics_panel import format_value
from segstudio.ui.tables import row_list_table

__all__ = ["CompareDock", "DisagreementLegend", "format_delta", "install_compare", "B_WORSE_ORDER"]

B_WORSE_ORDER = "b_worse"   # the review dock's order key for "where B got worse first"

METRIC_COLUMNS = ("Class", "IoU A", "IoU B", "Δ", "95 % CI of Δ")
IMAGE_COLUMNS = ("Image", "mIoU A", "mIoU B", "Δ")
REGION_COLUMNS = ("Kind", "Pixels", "Box (x, y, w, h)")
IMPACT_COLUMNS = ("Source", "mIoU original labels", "mIoU corrected labels", "Δ")


SHORT_LABELS = {Disagreement.B_BREAKS: "B breaks", Disagreement.B_FIXES: "B fixes",
                Disagreement.BOTH_WRONG_SAME: "both wrong, same", Disagreement.BOTH_WRONG_DIFFERENT: "both wrong, diff."}


LEGEND_LABELS = {Disagreement.BOTH_RIGHT: "both right", Disagreement.B_FIXES: "B fixes",
                 Disagreement.B_BREAKS: "B breaks", Disagreement.BOTH_WRONG_SAME: "both wrong, same",
                 Disagreement.BOTH_WRONG_DIFFERENT: "both wrong, diff.", Disagreement.IGNORED: "ignored"}


def format_delta(value) -> str:
    """Signed three decimals (``+0.012``), or an en dash where undefined."""
    return "–" if value is None else f"{float(value):+.3f}"


def _ci_text(ci) -> str:
    return "–" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _swatch(rgba) -> QPixmap:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(*rgba[:3], 255 if rgba[3] else 0))
    return pixmap


def _item(text: str, value=None, right: bool = True) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    item.setData(Qt.ItemDataRole.UserRole, value)
    return item


class DisagreementLegend(QWidget):
    """Colour, meaning and pixel count of each disagreement kind; shown beside the layers while the
    disagreement map is on the canvas."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(1)
        grid.addWidget(QLabel("<b>Disagreement A vs B</b>"), 0, 0, 1, 6)
        self.count_labels: dict[str, QLabel] = {}
        for i, kind in enumerate(Disagreement):
            swatch = QLabel()
            swatch.setPixmap(_swatch(DISAGREEMENT_COLORS[kind]))
            name = QLabel(LEGEND_LABELS[kind])
            name.setToolTip(DISAGREEMENT_LABELS[kind])
            count = QLabel("–")
            count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.count_labels[COUNT_KEYS[int(kind)]] = count
            row, col = divmod(i, 2)
            grid.addWidget(swatch, row + 1, col * 3)
            grid.addWidget(name, row + 1, col * 3 + 1)
            grid.addWidget(count, row + 1, col * 3 + 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(4, 1)

    def set_counts(self, counts: dict[str, int] | None) -> None:
        """Pixel counts by kind (``disagreement_counts`` keys); None hides the legend."""
        self.setVisible(counts is not None)
        for key, label in self.count_labels.items():
            label.setText("–" if counts is None else f"{counts[key]:,}")

    def counts(self) -> dict[str, str]:
        return {key: label.text() for key, label in self.count_labels.items()}


class CompareDock(QWidget):
    """Widgets of the A-vs-B comparison, bound to a ``CompareController``."""

    image_requested = Signal(str)        # image name to open (Images tab)

    def __init__(self, controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._class_names: list[str] = []
        self._bootstrap = None
        self._regions: list = []
        self._rows: list = []
        self._impact: dict = {}

        self.source_a, self.source_b = QComboBox(), QComboBox()
        for combo in (self.source_a, self.source_b):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self.compare_button = QPushButton("Compare")
        self.compare_button.clicked.connect(self._on_compare)
        self.swap_button = QPushButton("Swap")
        self.swap_button.clicked.connect(self._on_swap)
        pick = QGridLayout()
        pick.addWidget(QLabel("A"), 0, 0)
        self.source_a.setToolTip("A: the reference (e.g. the parent model)")
        pick.addWidget(self.source_a, 0, 1)
        pick.addWidget(QLabel("B"), 1, 0)
        pick.addWidget(self.source_b, 1, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.swap_button)
        pick.addLayout(buttons, 2, 1)
        pick.setColumnStretch(1, 1)

        self.legend = DisagreementLegend()
        self.legend.setVisible(False)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_regions(), "Regions")
        self.tabs.addTab(self._build_metrics(), "Metrics")
        self.tabs.addTab(self._build_images(), "Images")
        self.tabs.addTab(self._build_impact(), "Label fixes")

        self.status = QLabel("Run two models (or open a predictions folder) and pick A and B.")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(pick)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)

        c = controller
        c.sources_changed.connect(self.refresh_sources)
        c.pair_changed.connect(self._on_pair_changed)
        c.map_changed.connect(self._refresh_counts)
        c.regions_found.connect(self.set_regions)
        # Edits report every dab: the tables are redrawn at most every 100 ms.
        self._metrics_timer = QTimer(self, singleShot=True, interval=100)
        self._metrics_timer.timeout.connect(self.refresh_metrics)
        c.metrics_changed.connect(self._metrics_timer.start)
        c.bootstrap_finished.connect(self._on_bootstrap)
        c.bootstrap_failed.connect(lambda message: self.bootstrap_label.setText(message))
        c.impact_progressed.connect(self._on_impact_progress)
        c.impact_finished.connect(self._on_impact)
        self.refresh_sources()

    # --- construction -------------------------------------------------------------------------
    def _build_regions(self) -> QWidget:
        self.regions_table = row_list_table(REGION_COLUMNS)
        self.regions_table.currentCellChanged.connect(lambda row, *_: self._zoom_to(row))
        self.regions_table.cellClicked.connect(lambda row, _col: self._zoom_to(row))
        return self.regions_table

    def _build_metrics(self) -> QWidget:
        host = QWidget()
        self.scope = QComboBox()
        self.scope.addItems(["Image", "Dataset"])
        self.scope.setToolTip("Dataset: summed over the images both sources predicted")
        self.scope.currentIndexChanged.connect(self.refresh_metrics)
        self.headline = QLabel("–")
        self.headline.setObjectName("compare_headline")
        self.metrics_table = QTableWidget(0, len(METRIC_COLUMNS))
        self.metrics_table.setHorizontalHeaderLabels(METRIC_COLUMNS)
        self.metrics_table.verticalHeader().setVisible(False)
        self.metrics_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.metrics_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.bootstrap_button = QPushButton("Significance (bootstrap)")
        self.bootstrap_button.setToolTip("Paired bootstrap over images, 1,000 resamples, seed 0: 95 % interval of Δ")
        self.bootstrap_button.clicked.connect(lambda: self.controller.run_bootstrap())
        self.bootstrap_label = QLabel("")
        self.bootstrap_label.setWordWrap(True)
        self.bootstrap_label.setObjectName("bootstrap_result")
        layout = QVBoxLayout(host)
        row = QHBoxLayout()
        row.addWidget(QLabel("Scope"))
        row.addWidget(self.scope, 1)
        layout.addLayout(row)
        layout.addWidget(self.headline)
        layout.addWidget(self.metrics_table, 1)
        layout.addWidget(self.bootstrap_button)
        layout.addWidget(self.bootstrap_label)
        return host

    def _build_images(self) -> QWidget:
        self.images_table = row_list_table(IMAGE_COLUMNS)
        self.images_table.cellDoubleClicked.connect(lambda row, _col: self._open_row(row))
        self.images_table.cellClicked.connect(lambda row, _col: self._open_row(row))
        return self.images_table

    def _build_impact(self) -> QWidget:
        host = QWidget()
        self.impact_button = QPushButton("Score original vs corrected labels")
        self.impact_button.clicked.connect(lambda: self.controller.run_label_fix_impact())
        self.impact_progress = QProgressBar()
        self.impact_progress.setVisible(False)
        self.impact_note = QLabel("Images with saved corrections are scored against both label versions.")
        self.impact_note.setWordWrap(True)
        self.impact_table = row_list_table(IMPACT_COLUMNS)
        layout = QVBoxLayout(host)
        layout.addWidget(self.impact_button)
        layout.addWidget(self.impact_progress)
        layout.addWidget(self.impact_note)
        layout.addWidget(self.impact_table, 1)
        return host

    # --- sources ------------------------------------------------------------------------------
    def set_class_names(self, names: list[str]) -> None:
        self._class_names = list(names)
        self.refresh_metrics()

    def refresh_sources(self) -> None:
        keys = self.controller.sources()
        for combo, chosen in ((self.source_a, self.controller.a), (self.source_b, self.controller.b)):
            current = chosen or combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for i, key in enumerate(keys):
                combo.addItem(source_label(key), key)
                combo.setItemData(i, str(key), Qt.ItemDataRole.ToolTipRole)
            # findData cannot compare Python objects: look the key up among the keys listed
            index = keys.index(current) if current in keys else -1
            combo.setCurrentIndex(index if index >= 0 else 0)
            combo.blockSignals(False)
        if self.source_b.count() > 1 and self.controller.b is None and \
                self.source_b.currentData() == self.source_a.currentData():
            self.source_b.setCurrentIndex(1)
        self.compare_button.setEnabled(len(keys) >= 2)

    def _on_compare(self) -> None:
        a, b = self.source_a.currentData(), self.source_b.currentData()
        if a is not None and b is not None:
            self.controller.compare_sources(a, b)

    def _on_swap(self) -> None:
        a, b = self.source_a.currentData(), self.source_b.currentData()
        if a is not None and b is not None:
            self.controller.compare_sources(b, a)

    def _on_pair_changed(self) -> None:
        self.refresh_sources()
        self._bootstrap = None
        self.bootstrap_label.setText("")
        c = self.controller
        self.status.setText(f"A = {source_label(c.a)}   B = {source_label(c.b)}" if c.a is not None else "")
        self.status.setToolTip(f"A = {c.a}\nB = {c.b}" if c.a is not None else "")
        self.refresh_metrics()

    # --- disagreement map ------------------------------------------------------------------------
    def _refresh_counts(self) -> None:
        counts = self.controller.map.count_dict() if self.controller.map is not None else None
        if counts is None and self._regions:
            self.set_regions([])
        self.legend.set_counts(counts)
        c = self.controller
        if c.a is not None:
            missing = c.missing_sources()
            note = f"   (no prediction of {', '.join(source_label(k) for k in missing)} for this image)" if missing else ""
            self.status.setText(f"A = {source_label(c.a)}   B = {source_label(c.b)}{note}")

    def counts(self) -> dict[str, str]:
        """The legend's count texts (tests, tooltips)."""
        return self.legend.counts()

    def set_regions(self, regions) -> None:
        self._regions = list(regions)[:500]
        table = self.regions_table
        table.blockSignals(True)
        table.setRowCount(len(self._regions))
        for row, region in enumerate(self._regions):
            kind = QTableWidgetItem(SHORT_LABELS[region.kind])
            kind.setToolTip(DISAGREEMENT_LABELS[region.kind])
            kind.setData(Qt.ItemDataRole.DecorationRole, QColor(*DISAGREEMENT_COLORS[region.kind][:3]))
            table.setItem(row, 0, kind)
            table.setItem(row, 1, _item(f"{region.area:,}", region.area))
            table.setItem(row, 2, QTableWidgetItem(", ".join(str(v) for v in region.bbox)))
        table.blockSignals(False)
        table.resizeColumnsToContents()

    def regions(self) -> list:
        return list(self._regions)

    def _zoom_to(self, row: int) -> None:
        if 0 <= row < len(self._regions):
            self.controller.window.canvas.center_on_rect(*self._regions[row].bbox)

    # --- numbers ------------------------------------------------------------------------------
    def _name(self, class_id: int) -> str:
        if class_id < 0:
            return "Mean IoU"
        return self._class_names[class_id] if class_id < len(self._class_names) else str(class_id)

    def _confusions(self) -> tuple[ConfusionMatrix | None, ConfusionMatrix | None]:
        c = self.controller
        if c.a is None or c.b is None:
            return None, None
        if self.scope.currentIndex() == 0:
            comp_a, comp_b = c.comparisons()
            document = c.window.document
            if comp_a is None or comp_b is None or document is None or document.gt is None:
                return None, None
            return comp_a.confusion, comp_b.confusion
        if c.results is None:
            return None, None
        names, _, _ = c.results.paired(c.a, c.b)
        if not names:
            return None, None
        return c.results.dataset_confusion(c.a, names), c.results.dataset_confusion(c.b, names)

    def refresh_metrics(self) -> None:
        cm_a, cm_b = self._confusions()
        table = self.metrics_table
        if cm_a is None:
            table.setRowCount(0)
            self.headline.setText("–")
        else:
            rows, mean = class_deltas(cm_a, cm_b)
            boot = self._bootstrap if self.scope.currentIndex() == 1 else None
            self.headline.setText(f"Mean IoU  A {format_value(mean.a)}   B {format_value(mean.b)}   "
                                  f"Δ {format_delta(mean.delta)}")
            table.setRowCount(len(rows) + 1)
            for r, row in enumerate([mean] + rows):
                ci = None
                if boot is not None:
                    ci = boot.mean_iou_delta_ci95 if row.class_id < 0 else boot.per_class_ci95[row.class_id]
                table.setItem(r, 0, _item(self._name(row.class_id), row.class_id, right=False))
                table.setItem(r, 1, _item(format_value(row.a), row.a))
                table.setItem(r, 2, _item(format_value(row.b), row.b))
                delta = _item(format_delta(row.delta), row.delta)
                if row.delta is not None and row.delta != 0:
                    delta.setForeground(QColor(0, 140, 50) if row.delta > 0 else QColor(200, 30, 30))
                table.setItem(r, 3, delta)
                table.setItem(r, 4, _item(_ci_text(ci), ci))
        self._refresh_images()

    def _refresh_images(self) -> None:
        c = self.controller
        self._rows = c.results.delta_rows(c.a, c.b) if c.results is not None and c.a and c.b else []
        table = self.images_table
        table.blockSignals(True)
        table.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            table.setItem(r, 0, _item(row.name, row.name, right=False))
            table.setItem(r, 1, _item(format_value(row.a), row.a))
            table.setItem(r, 2, _item(format_value(row.b), row.b))
            table.setItem(r, 3, _item(format_delta(row.delta), row.delta))
        table.blockSignals(False)

    def image_rows(self) -> list:
        """The Images tab's rows (``DeltaRow``), B's worst regressions first."""
        return list(self._rows)

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self._rows):
            self.image_requested.emit(self._rows[row].name)

    def _on_bootstrap(self, result) -> None:
        self._bootstrap = result
        ci = result.mean_iou_delta_ci95
        verdict = ""
        if ci is not None:
            verdict = ("B is better" if ci[0] > 0 else "B is worse" if ci[1] < 0
                       else "no significant difference")
        self.bootstrap_label.setText(
            f"Δ mean IoU {format_delta(result.mean_iou_delta)}, 95 % CI {_ci_text(ci)} over "
            f"{result.images} images ({result.resamples:,} resamples, seed {result.seed}): {verdict}")
        if self.scope.currentIndex() != 1:
            self.scope.setCurrentIndex(1)     # the interval is a dataset figure
        else:
            self.refresh_metrics()

    def _on_impact_progress(self, done: int, total: int) -> None:
        self.impact_progress.setVisible(True)
        self.impact_progress.setRange(0, max(total, 1))
        self.impact_progress.setValue(done)

    def _on_impact(self, result) -> None:
        self.impact_progress.setVisible(False)
        self.impact_note.setText(f"{result.changed_images} image(s) whose corrected labels differ from the "
                                 "original ones; the others count the same on both sides.")
        table = self.impact_table
        items = sorted(result.per_source.items(), key=lambda kv: str(kv[0]))
        table.setRowCount(len(items))
        self._impact = {}
        for r, (key, (original, fixed)) in enumerate(items):
            a = original.mean_iou() if original.total else None
            b = fixed.mean_iou() if fixed.total else None
            delta = None if a is None or b is None else b - a
            self._impact[key] = (a, b, delta)
            table.setItem(r, 0, _item(source_label(key), key, right=False))
            table.setItem(r, 1, _item(format_value(a), a))
            table.setItem(r, 2, _item(format_value(b), b))
            table.setItem(r, 3, _item(format_delta(delta), delta))

    def impact(self) -> dict:
        """``{source: (mIoU original, mIoU corrected, Δ)}`` as last shown."""
        return dict(self._impact)


def install_compare(window) -> CompareDock:
    """Compose the A-vs-B comparison into ``window``: its controller (``window.compare``) and the
    Compare dock, tabbed beside the error regions. Returns the dock's widget."""
    from segstudio.ui.compare_controller import CompareController

    window.compare = CompareController(window)
    dock = window.compare_dock = CompareDock(window.compare)

    def names_changed() -> None:
        if window.session is not None:
            dock.set_class_names(window.session.class_table.names)

    def open_image(name: str) -> None:
        if window.session is not None:
            window.go_to(window.session.dataset.index_of(name))

    def browser_columns() -> None:
        c = window.compare
        if c.a is None or c.b is None or c.results is None:
            window.browser.model.set_extra_columns(())
            return
        window.browser.model.set_extra_columns(
            (f"mIoU {source_label(c.a)}", f"mIoU {source_label(c.b)}", "Δ mIoU (B − A)"), c.image_values)

    # The legend goes under the layer list, where the map's layer is switched on and off.
    window.layer_panel.parentWidget().layout().insertWidget(1, dock.legend)
    def review_order() -> None:
        review = window.findChild(QWidget, "dock_review")
        if review is not None and hasattr(review.widget(), "add_order"):
            review.widget().add_order(B_WORSE_ORDER, "Where B got worse first", window.compare.worse_first)

    window.compare.sources_changed.connect(names_changed)
    window.compare.pair_changed.connect(browser_columns)
    window.compare.pair_changed.connect(review_order)
    browser_timer = QTimer(dock, singleShot=True, interval=100)
    browser_timer.timeout.connect(lambda: window.browser.refresh())
    window.compare.metrics_changed.connect(browser_timer.start)
    dock.image_requested.connect(open_image)
    return dock
