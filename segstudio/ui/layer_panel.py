"""The layer panel: visibility, opacity and stacking order of the canvas layers.

The panel only reports what the user asked for; whoever owns the canvas applies it. Lists passed in and
emitted are bottom to top, like :meth:`CanvasView.set_layer_order`; the panel shows the top layer first.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSignalBlocker, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QSlider, QToolButton,
    QVBoxLayout, QWidget,
)

NAME_ROLE = Qt.ItemDataRole.UserRole
LAYER_TIPS = {   # what each canvas layer shows, on its row
    "image": "The image itself",
    "confidence": "The model's confidence per pixel (dark: unsure); from models that give probabilities",
    "entropy": "Uncertainty across the classes per pixel (bright: the model hesitates between classes)",
    "gt": "Ground-truth labels in the class colours (the labels you edit)",
    "pred": "The model's prediction in the class colours",
    "errors": "Where prediction and ground truth disagree; the legend below says what each colour means",
    "misclassified": "Wrong-class pixels striped in the ground-truth and the predicted class colours",
    "instance_marks": "Frames around missed, spurious, split and merged instances (Instance view)",
    "highlight": "The pixels of the confusion-matrix cell you clicked (Esc clears)",
}


@dataclass
class _LayerState:
    name: str
    label: str
    visible: bool
    opacity: float


class LayerRow(QWidget):
    """One row: a visibility checkbox with the layer's label, an opacity slider and its percentage."""

    def __init__(self, state: _LayerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = state.name
        self.checkbox = QCheckBox(state.label)
        self.checkbox.setChecked(state.visible)
        what = LAYER_TIPS.get(state.name)
        self.checkbox.setToolTip(f"<b>{state.label}</b>: {what}<br>Tick to show, untick to hide" if what
                                 else f"Show or hide the {state.label} layer")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(round(state.opacity * 100))
        self.slider.setToolTip(f"Opacity of the {state.label} layer")
        self.slider.setMinimumWidth(48)
        self.percent = QLabel()
        self.percent.setMinimumWidth(self.percent.fontMetrics().horizontalAdvance("100%"))
        self.percent.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.slider.valueChanged.connect(self._show_percent)
        self._show_percent(self.slider.value())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 1, 4, 1)
        layout.addWidget(self.checkbox, 1)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.percent)

    def _show_percent(self, value: int) -> None:
        self.percent.setText(f"{value}%")


class LayerPanel(QWidget):
    """Rows for the canvas layers (top layer first) with visibility, opacity and up / down buttons."""

    visibility_changed = Signal(str, bool)
    opacity_changed = Signal(str, float)
    order_changed = Signal(list)  # names, bottom to top

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._layers: list[_LayerState] = []  # bottom to top
        self._rows: dict[str, LayerRow] = {}
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setAlternatingRowColors(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)   # rows fit the width
        self.list.currentRowChanged.connect(self._update_buttons)
        self.up_button = self._tool_button(Qt.ArrowType.UpArrow, "Move the selected layer up", +1)
        self.down_button = self._tool_button(Qt.ArrowType.DownArrow, "Move the selected layer down", -1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.up_button)
        buttons.addWidget(self.down_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    def _tool_button(self, arrow: Qt.ArrowType, tip: str, step: int) -> QToolButton:
        button = QToolButton()
        button.setArrowType(arrow)
        button.setToolTip(tip)
        button.clicked.connect(lambda: self.move_selected(step))
        return button

    # -- state in ----------------------------------------------------------------------------------
    def set_layers(self, layers: list[tuple[str, str, bool, float]]) -> None:
        """Replace the rows: ``(name, label, visible, opacity)`` per layer, bottom to top. No signals."""
        self._layers = [_LayerState(n, lbl, bool(v), float(o)) for n, lbl, v, o in layers]
        self._rebuild(selected=self.selected_layer())

    def set_layer_visible(self, name: str, visible: bool) -> None:
        """Reflect a visibility change made elsewhere (no signal)."""
        self._state(name).visible = bool(visible)
        with QSignalBlocker(self._rows[name].checkbox):
            self._rows[name].checkbox.setChecked(bool(visible))

    def set_layer_opacity(self, name: str, opacity: float) -> None:
        """Reflect an opacity change made elsewhere (no signal)."""
        self._state(name).opacity = float(opacity)
        row = self._rows[name]
        with QSignalBlocker(row.slider):
            row.slider.setValue(round(opacity * 100))
        row.percent.setText(f"{row.slider.value()}%")

    # -- state out ---------------------------------------------------------------------------------
    def layer_order(self) -> list[str]:
        """Layer names, bottom to top."""
        return [s.name for s in self._layers]

    def layer_state(self, name: str) -> tuple[str, str, bool, float]:
        s = self._state(name)
        return s.name, s.label, s.visible, s.opacity

    def selected_layer(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.data(NAME_ROLE)

    def row_widget(self, name: str) -> LayerRow:
        return self._rows[name]

    # -- user actions ------------------------------------------------------------------------------
    def select_layer(self, name: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(NAME_ROLE) == name:
                self.list.setCurrentRow(i)
                return
        raise KeyError(name)

    def move_selected(self, step: int) -> None:
        """Move the selected layer ``step`` places up (positive) or down; emits ``order_changed``."""
        name = self.selected_layer()
        if name is None:
            return
        i = self.layer_order().index(name)
        j = max(0, min(len(self._layers) - 1, i + step))
        if i == j:
            return
        self._layers.insert(j, self._layers.pop(i))
        self._rebuild(selected=name)
        self.order_changed.emit(self.layer_order())

    def _on_visible(self, name: str, visible: bool) -> None:
        self._state(name).visible = visible
        self.visibility_changed.emit(name, visible)

    def _on_opacity(self, name: str, value: int) -> None:
        self._state(name).opacity = value / 100.0
        self.opacity_changed.emit(name, value / 100.0)

    # -- internals ---------------------------------------------------------------------------------
    def _state(self, name: str) -> _LayerState:
        for s in self._layers:
            if s.name == name:
                return s
        raise KeyError(f"no layer named {name!r} in the panel")

    def _rebuild(self, selected: str | None) -> None:
        with QSignalBlocker(self.list):
            self.list.clear()
            self._rows.clear()
            probe = QCheckBox()
            label_width = max((probe.sizeHint().width() + probe.fontMetrics().horizontalAdvance(state.label) + 10
                               for state in self._layers), default=0)
            for state in reversed(self._layers):  # top layer first, as in every paint program
                item = QListWidgetItem()
                item.setData(NAME_ROLE, state.name)
                row = LayerRow(state)
                row.checkbox.setFixedWidth(label_width)   # every slider starts at the same x
                row.checkbox.toggled.connect(lambda v, n=state.name: self._on_visible(n, v))
                row.slider.valueChanged.connect(lambda v, n=state.name: self._on_opacity(n, v))
                item.setSizeHint(QSize(row.minimumSizeHint().width(), row.sizeHint().height()))
                self.list.addItem(item)
                self.list.setItemWidget(item, row)
                self._rows[state.name] = row
                if state.name == selected:
                    self.list.setCurrentItem(item)
        self._update_buttons()

    def _update_buttons(self, *_) -> None:
        row, count = self.list.currentRow(), self.list.count()
        self.up_button.setEnabled(row > 0)
        self.down_button.setEnabled(0 <= row < count - 1)
