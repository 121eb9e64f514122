"""Training in the window: the Model menu's Train action, the Train dock, and "Compare with parent".

``install_training(window)`` adds **Model → Train on corrected labels…**; the dock (and pyqtgraph)
is built the first time it is opened. A model the run writes joins the model selector at once;
when the run ends well it becomes the selected model. A crash of the child process is shown as an
error box and the window carries on.

``compare_with_parent(window, weights)`` runs the parent and the fine-tuned model on the run's
validation images (the parent first, so the new model's predictions are the ones shown, as the
active source) and shows both models' validation IoU per class from the model card.
"""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QDockWidget

from segstudio.ui.worker import ModelRequest

__all__ = ["TrainingHost", "install_training", "compare_with_parent", "comparison_lines"]

GOOD_OUTCOMES = ("complete", "early_stopped", "time_budget", "cancelled")


class TrainingHost(QObject):
    """Owns the Train dock of one window (built on first use) and stops its run when the window closes."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.dock = None
        self.dock_widget: QDockWidget | None = None
        self._listed_root: str | None = None
        window.installEventFilter(self)
        window.document_changed.connect(lambda *_: self._on_document())

    def show(self):
        """Open (building on first use) the Train dock; returns the ``TrainDock``."""
        if self.dock is None:
            from segstudio.ui.train_dock import TrainDock  # noqa: PLC0415 - pyqtgraph, only when used

            self.dock = TrainDock()
            self.dock.unsaved_note = self._unsaved_note
            self.dock.model_trained.connect(self._on_model_trained)
            self.dock.run_ended.connect(self._on_run_ended)
            self.dock.compare_requested.connect(lambda path: compare_with_parent(self.window, path, self.dock))
            self.dock_widget = QDockWidget("Train", self.window)
            self.dock_widget.setObjectName("dock_train")
            self.dock_widget.setWidget(self.dock)
            self.window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock_widget)
            try:   # a tab beside the error regions / dataset / review docks: room for the curves
                self.window.tabifyDockWidget(self.window.dock("regions"), self.dock_widget)
            except KeyError:
                pass
        self._sync_dataset()
        models = self.window.model_dock.models
        specs = [models.item(row).data(Qt.ItemDataRole.UserRole) for row in range(models.count())]
        self.dock.set_models([s for s in specs if s], self.window.model_dock.selected_spec())
        self.dock_widget.show()
        self.dock_widget.raise_()
        return self.dock

    def _on_document(self) -> None:
        self._sync_dataset()
        session = self.window.session
        root = str(session.dataset.root) if session is not None else None
        if root is not None and root != self._listed_root:
            self._listed_root = root
            self.list_trained_models(root)

    def list_trained_models(self, root: str) -> list[str]:
        """Add the models earlier runs wrote for this dataset (its models folder) to the model selector."""
        from segstudio.core.io.workspace import working_dir  # noqa: PLC0415

        try:
            folder = working_dir(root) / "models"
            found = sorted(p for p in folder.glob("*.pth") if p.with_suffix(".json").is_file())
        except OSError:
            return []
        for path in found:
            self.window.model_dock.add_model(str(path), path.stem, f"trained by segstudio train ({path})")
        return [str(p) for p in found]

    def _unsaved_note(self) -> str | None:
        session = self.window.session
        names = session.modified_names() if session is not None else []
        if not names:
            return None
        return (f"{len(names)} image(s) have unsaved edits ({', '.join(names[:3])}{' …' if len(names) > 3 else ''}); "
                "training uses their last saved labels.")

    def _sync_dataset(self) -> None:
        if self.dock is not None:
            session = self.window.session
            self.dock.set_dataset(str(session.dataset.root) if session is not None else None)

    def _on_model_trained(self, path: str, title: str, description: str) -> None:
        self.window.model_dock.add_model(path, title, description)

    def _on_run_ended(self, outcome: str, message: str) -> None:
        path = self.dock.last_out
        if outcome in GOOD_OUTCOMES and path and Path(path).is_file():
            self.window.model_dock.select_spec(path)
            self.window.report(message)
        elif outcome not in GOOD_OUTCOMES:
            self.window.show_error("Training stopped", message)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if obj is self.window and event.type() == QEvent.Type.Close and self.dock is not None:
            self.dock.shutdown()
        return False


def install_training(window) -> TrainingHost:
    """Add the Train action to the window's Model menu; returns the host that owns the dock."""
    host = TrainingHost(window)
    menu = next((a.menu() for a in window.menuBar().actions() if a.menu() is not None
                 and a.text().replace("&", "") == "Model"), None)
    if menu is not None:
        menu.addSeparator()
        action = menu.addAction("Train on corrected labels…")
        action.triggered.connect(host.show)
    return host


def comparison_lines(card: dict) -> list[str]:
    """'class: parent -> new' lines from a card's validation figures (same validation images)."""
    lineage = card.get("lineage") or {}
    before = (lineage.get("parent_validation") or {})
    after = (lineage.get("validation") or {})
    lines = [f"mean IoU: {_fmt(before.get('mean_iou'))} → {_fmt(after.get('mean_iou'))}"]
    for name, value in (after.get("class_iou") or {}).items():
        lines.append(f"{name}: {_fmt((before.get('class_iou') or {}).get(name))} → {_fmt(value)}")
    return lines


def compare_with_parent(window, weights: str, dock=None) -> list[int]:
    """Run parent and new model on the validation images; the new model ends as the active source.

    Returns the two job ids (empty when it cannot run; the reason is shown).
    """
    card_path = Path(weights).with_suffix(".json")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        lineage = card["lineage"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        window.show_error("Cannot compare", f"{card_path}: no training lineage in the model card ({exc})")
        return []
    parent = lineage.get("parent")
    if not parent:
        window.show_error("Cannot compare", f"{Path(weights).name} was trained from scratch: it has no parent model")
        return []
    dataset = lineage.get("dataset")
    session = window.session
    if session is None or Path(session.dataset.root).resolve() != Path(dataset).resolve():
        if not window.open_path(dataset):
            return []
        session = window.session
    known = set(session.names)
    indices = [session.dataset.index_of(n) for n in lineage.get("validation_images", []) if n in known]
    if not indices:
        window.show_error("Cannot compare", "none of the run's validation images is in the open dataset")
        return []
    request = window.model_dock.selected_request()
    device = request.device if request is not None else "auto"
    window.model_dock.add_model(parent, parent, "parent of the fine-tuned model")
    window.model_dock.add_model(str(weights), Path(weights).stem, "fine-tuned model")
    jobs = [window.run_model_on(ModelRequest(parent, device), indices),
            window.run_model_on(ModelRequest(str(weights), device), indices)]
    window.model_dock.select_spec(str(weights))
    window.go_to(indices[0])
    summary = "Validation IoU, parent → new:\n" + "\n".join(comparison_lines(card))
    if dock is not None:
        dock.status.setText(summary)
    window.report(summary.splitlines()[1])
    return [j for j in jobs if j is not None]


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"
