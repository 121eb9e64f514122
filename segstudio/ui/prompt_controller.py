"""Click to segment in the editor: the Prompt tool's prompt, its proposal, accepting and dropping it.

``PromptController(host, editor)`` adds the Prompt tool (key S) to the editor's tools, its actions to
the Edit menu, and binds a :class:`~segstudio.core.prompting.engine.PromptEngine` to the window's two
background lanes: image embeddings on the inference worker (``InferenceLane``), each click's decoder
on the task runner. Nothing here waits: a click on an image still being encoded is drawn at once and
its proposal follows when the embedding is in.

* Enter accepts the shown mask with the selected class as ONE edit (``ImageDocument.paint_region``,
  under "preserve other labels" / "paint only over"), so undo, the journal and the live metrics treat it
  like a brush stroke; Esc drops it; M shows the next of the model's candidate masks.
* **Prompt from error region** (Shift+S, or selecting a region while the tool is active) builds the
  prompt from the region selected in the error-regions list and selects its class.
* The model is GrabCut (offline, seeded with the prediction's probabilities when there is one) until
  the user picks SAM / SAM 2.1 weights (Edit ▸ Prompt model…); the choice is kept in the settings.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from segstudio.core.errors import SegStudioError
from segstudio.core.evaluation import errormap
from segstudio.core.prompting.clicks import prompt_from_error_region
from segstudio.core.prompting.engine import PromptEngine, PromptResult
from segstudio.core.prompting.grabcut import GrabCutBackend
from segstudio.core.prompting.types import Prompt, Proposal, prior_from_prediction
from segstudio.ui.edit_tools import protected_classes
from segstudio.ui.prompt_lane import InferenceLane
from segstudio.ui.prompt_tool import PromptTool, ProposalOverlay

__all__ = ["PromptController", "MODEL_KEY", "WEIGHTS_DIR_KEY"]

MODEL_KEY = "prompt/model"
WEIGHTS_DIR_KEY = "prompt/weights_dir"


class PromptController(QObject):
    """See the module docstring. ``proposal_shown(Proposal | None)`` after each redraw of the preview."""

    proposal_shown = Signal(object)
    accepted = Signal(object)          # the EditAtom written (None when nothing changed)

    def __init__(self, host, editor):
        super().__init__(editor)
        self.host, self.editor, self.canvas = host, editor, editor.canvas
        self.lane = InferenceLane(host.controller, self)
        self.engine = PromptEngine(GrabCutBackend(), self.lane, host.task_runner,
                                   on_proposal=self._on_proposal, on_error=self._on_error)
        self.spec = "grabcut"
        self.overlay = ProposalOverlay(self.canvas)
        self.prompt = Prompt()
        self.proposal: Proposal | None = None
        self.choice: int | None = None
        self._document = None
        self._prior_for: tuple | None = None
        self._prior: np.ndarray | None = None
        self.tool = PromptTool(self, editor)
        editor.tools[self.tool.name] = self.tool
        self._build_actions()
        editor.document_bound.connect(self._on_document)
        editor.tool_changed.connect(self._on_tool_changed)
        host.regions.region_selected.connect(self._on_region_selected)
        saved = str(host.settings.value(MODEL_KEY, "grabcut") or "grabcut")
        if saved != "grabcut":
            self.set_model(saved, quiet=True)

    # --- construction ---------------------------------------------------------------------------
    def _build_actions(self) -> None:
        menu = self.editor.menu
        menu.addSeparator()
        self.region_prompt_action = self._action("Prompt from error region", self.prompt_from_region, "Shift+S")
        self.next_mask_action = self._action("Next proposal mask", self.next_mask, "M")
        models = self.models_menu = menu.addMenu("Prompt model")
        self.grabcut_action = self._action("GrabCut (offline, no weights)", lambda: self.set_model("grabcut"),
                                           menu=models)
        models.addSeparator()
        from segstudio.inference.prompting.registry import PROMPT_MODELS   # torch-free

        for key, entry in PROMPT_MODELS.items():
            self._action(f"{key}  ({entry.filename}, {entry.size_mb} MB)", lambda _=False, k=key: self.set_model(k),
                         menu=models)
        models.addSeparator()
        self.model_action = self._action("Weights file…", self.choose_weights, menu=models)
        self.folder_action = self._action("Weights folder…", self.choose_folder, menu=models)
        # Esc on the canvas drops a prompt in progress; with none, it stays the window's Esc (cancel
        # inference): the canvas claims the key only while there is something to drop.
        self.canvas.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self.canvas and event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress) \
                and event.key() == Qt.Key.Key_Escape and not (self.prompt.empty and self.proposal is None):
            event.accept()
            if event.type() == QEvent.Type.KeyPress:
                self.drop()
            return True
        return super().eventFilter(watched, event)

    def _action(self, text: str, slot, shortcut: str | None = None, menu=None) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self.host.addAction(action)          # shortcuts work while a dock has focus, too
        (menu if menu is not None else self.editor.menu).addAction(action)
        return action

    # --- model ----------------------------------------------------------------------------------
    def set_model(self, spec: str, quiet: bool = False) -> bool:
        """Use the prompt model ``spec`` (``grabcut``, ``sam:PATH``, ``sam2:PATH[:CONFIG]``)."""
        from segstudio.inference.prompting.registry import open_backend   # torch-free

        try:
            backend = open_backend(spec, weights_dir=self.host.settings.value(WEIGHTS_DIR_KEY) or None)
        except SegStudioError as exc:
            if not quiet:
                self.host.show_error("Prompt model", str(exc))
            return False
        self.drop()
        self.engine.set_backend(backend)
        self.spec = spec
        self.host.settings.setValue(MODEL_KEY, spec)
        self.editor.report(f"Prompt model: {spec}")
        if self.editor.tool_name == self.tool.name:
            self._warm_up()
        return True

    def choose_weights(self) -> None:
        start = str(self.host.settings.value(WEIGHTS_DIR_KEY) or "")
        path, _ = QFileDialog.getOpenFileName(self.canvas.window(), "SAM or SAM 2.1 weights", start,
                                              "Weights (*.pth *.pt);;All files (*)")
        if path:
            self.host.settings.setValue(WEIGHTS_DIR_KEY, str(Path(path).parent))
            self.set_model(f"{'sam2' if 'sam2' in Path(path).name.lower() else 'sam'}:{path}")

    def choose_folder(self) -> None:
        """The folder where the registry's weights files are looked up (sam:vit_b, sam2:tiny …)."""
        start = str(self.host.settings.value(WEIGHTS_DIR_KEY) or "")
        folder = QFileDialog.getExistingDirectory(self.canvas.window(), "Folder of SAM / SAM 2.1 weights", start)
        if folder:
            self.host.settings.setValue(WEIGHTS_DIR_KEY, folder)
            self.editor.report(f"Prompt weights folder: {folder}")

    # --- document and tool ----------------------------------------------------------------------
    @property
    def document(self):
        return self.editor.document

    def _on_document(self, document) -> None:
        self.drop()
        self._document = document
        if self.editor.tool_name == self.tool.name:
            self._warm_up()

    def _on_tool_changed(self, name: str) -> None:
        if name == self.tool.name:
            self._warm_up()

    def _warm_up(self) -> None:
        """Encode the shown image now and the next one in review order after it."""
        document = self.document
        if document is None:
            return
        self.engine.precompute(document.image)
        session, review = self.host.session, getattr(self.editor, "review", None)
        name = review.next_name() if review is not None else None
        if session is None or name is None or name == document.name:
            return
        from segstudio.core.editing.session import decode_sample

        sample = session.dataset[session.dataset.index_of(name)]
        self.engine.precompute_from(lambda: decode_sample(sample)[0])

    def _prior_of(self, document) -> np.ndarray | None:
        """The prediction's object probability (GrabCut's seed), computed once per prediction."""
        if document.pred is None or not isinstance(self.engine.backend, GrabCutBackend):
            return None
        key = (id(document), id(document.pred), id(document.confidence))
        if self._prior_for != key:
            self._prior_for, self._prior = key, prior_from_prediction(document.pred, document.confidence)
        return self._prior

    # --- the prompt -----------------------------------------------------------------------------
    def add_click(self, x: float, y: float, positive: bool) -> None:
        document = self.document
        if document is None:
            return
        h, w = document.shape
        if not (0 <= x < w and 0 <= y < h):
            return
        self._request(self.prompt.with_click(int(x), int(y), positive))

    def set_box(self, box) -> None:
        if self.document is None:
            return
        self._request(Prompt(self.prompt.points, self.prompt.labels, tuple(float(v) for v in box)))

    def preview_box(self, box) -> None:
        self.overlay.show(Prompt(self.prompt.points, self.prompt.labels, tuple(box)), self._shown_mask())

    def set_prompt(self, prompt: Prompt) -> None:
        """Show the proposal for a whole prompt at once (an auto-prompt, a test)."""
        if self.document is not None and not prompt.empty:
            self.proposal, self.choice = None, None
            self._request(prompt)

    def _request(self, prompt: Prompt) -> None:
        document = self.document
        previous = None
        if self.proposal is not None and self.engine.backend.supports_mask_input \
                and self.proposal.logits is not None:
            previous = self.proposal.logits[self._index()][None]
        single = len(prompt.points) + (prompt.box is not None) == 1
        self.prompt = Prompt(prompt.points, prompt.labels, prompt.box, previous, single, self._prior_of(document))
        self.engine.request(document.image, self.prompt)
        self.overlay.show(self.prompt, self._shown_mask(), waiting=True)
        if self.engine.waiting:
            self.editor.report("Computing the image embedding… the proposal follows")

    def _index(self) -> int:
        return self.proposal.best if self.choice is None else self.choice

    def _shown_mask(self) -> np.ndarray | None:
        return None if self.proposal is None else self.proposal.mask(self._index())

    def _on_proposal(self, result: PromptResult) -> None:
        document = self.document
        if document is None or result.prompt is not self.prompt \
                or result.image_key != self.engine.key_for(document.image):
            return                                  # for another image or an older prompt
        self.proposal, self.choice = result.proposal, None
        self._redraw()

    def _redraw(self) -> None:
        self.overlay.show(self.prompt, self._shown_mask())
        if self.proposal is not None:
            k, n = self._index(), len(self.proposal.scores)
            more = " · M: next mask" if n > 1 else ""
            self.editor.report(f"Proposal {k + 1}/{n}, score {self.proposal.scores[k]:.2f} · "
                               f"Enter: accept as the selected class · Esc: drop{more}")
        self.proposal_shown.emit(self.proposal)

    def _on_error(self, message: str) -> None:
        self.overlay.show(self.prompt, self._shown_mask())
        self.host.show_error("Prompt model", message)

    def next_mask(self) -> None:
        if self.proposal is None or len(self.proposal.scores) < 2:
            return
        self.choice = (self._index() + 1) % len(self.proposal.scores)
        self._redraw()

    # --- accept / drop --------------------------------------------------------------------------
    def accept(self):
        """Paint the shown mask with the selected class as one edit; returns the atom (or None)."""
        document, mask = self.document, self._shown_mask()
        if document is None or mask is None or self.editor.read_only:
            return None
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        atom = None
        if rows.size:
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            selected = self.editor.selected_class
            try:
                atom = document.paint_region(
                    mask[y0:y1, x0:x1], (x0, y0, x1 - x0, y1 - y0), selected,
                    protect=protected_classes(document, selected, self.editor.preserve_labels),
                    only_over=self.editor.only_over)
            except ValueError as exc:
                self.editor.report(str(exc))
                return None
        self.drop()
        if atom is None:
            self.editor.report("The proposal changed no pixel")
        self.accepted.emit(atom)
        return atom

    def drop(self) -> None:
        self.engine.cancel()
        self.prompt, self.proposal, self.choice = Prompt(), None, None
        self.overlay.clear()
        self.proposal_shown.emit(None)

    # --- auto-prompt from an error region ---------------------------------------------------------
    def _on_region_selected(self, region) -> None:
        if self.editor.tool_name == self.tool.name:
            self.prompt_from_region()

    def prompt_from_region(self) -> bool:
        """Prompt from the region selected in the error-regions list; True when a prompt was made."""
        document, region = self.document, self.host.regions.selected_region()
        if document is None or document.gt is None or document.pred is None or region is None:
            self.editor.report("Select an error region in the list (needs labels and a prediction)")
            return False
        labels, regions = errormap.error_components(document.gt, document.pred, document.ignore_index,
                                                    document.error_class)
        match = next((r for r in regions if r.bbox == region.bbox and r.size == region.size), None)
        if match is None:
            return False
        class_id = match.gt_class if match.gt_class not in (0, document.ignore_index) else match.pred_class
        if not 0 <= class_id < document.num_classes:
            return False
        x, y, w, h = match.bbox
        prompt = prompt_from_error_region(document.gt, document.pred, labels[y:y + h, x:x + w] == match.label,
                                          match.bbox, class_id)
        if prompt is None:
            return False
        self.drop()
        if self.editor.tool_name != self.tool.name:
            self.editor.set_tool(self.tool.name)
        self.host.select_class(class_id)
        self.set_prompt(prompt)
        return True
