"""The Prompt tool in the window: clicks, proposals, Enter / Esc, the encoder lane, auto-prompt."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt

from segstudio.core.prompting.engine import image_fingerprint
from segstudio.core.prompting.types import Embedding, Proposal
from tests.ui.editing_helpers import click, drag, editing_window, key
from tests.ui.fakes import GatedRunner
from tests.ui.reference import reference_metrics
from tests.ui.synthetic import make_dataset, truth_and_prediction

RIGHT = Qt.MouseButton.RightButton


class DiscBackend:
    """A disc of radius 6 at the last positive click (a box: the box); counts encodings, and holds
    the encoder until ``gate`` is set."""

    model_id = "disc"
    supports_mask_input = False

    def __init__(self):
        self.encodings = 0
        self.encoded: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.decodes = 0

    def set_image(self, image):
        self.encodings += 1
        self.encoded.append(image_fingerprint(image))
        assert self.gate.wait(30)
        return Embedding(image.shape[:2], None, 16)

    def predict(self, embedding, prompt):
        self.decodes += 1
        h, w = embedding.shape
        yy, xx = np.mgrid[0:h, 0:w]
        mask = np.zeros((h, w), bool)
        if prompt.box is not None:
            x0, y0, x1, y1 = (int(v) for v in prompt.box)
            mask[y0:y1 + 1, x0:x1 + 1] = True
        positives = prompt.points[prompt.labels == 1]
        if len(positives):
            x, y = positives[-1]
            mask |= (xx - x) ** 2 + (yy - y) ** 2 <= 36
        for x, y in prompt.points[prompt.labels == 0]:
            mask &= (xx - x) ** 2 + (yy - y) ** 2 > 9
        return Proposal(mask[None], np.float32([0.9]))


@pytest.fixture
def window(qtbot, tmp_path):
    runner = GatedRunner()
    return editing_window(qtbot, make_dataset(tmp_path / "data"), lambda request: runner)


@pytest.fixture
def disc(window):
    backend = DiscBackend()
    window.prompting.engine.set_backend(backend)
    return backend


def expected_disc(shape, x, y):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (xx - x) ** 2 + (yy - y) ** 2 <= 36


def test_click_enter_accepts_one_undo_step_like_the_brush(qtbot, window, disc):
    prompting, doc = window.prompting, window.document
    key(qtbot, window, Qt.Key.Key_S)
    assert window.editor.tool_name == "prompt"
    key(qtbot, window, Qt.Key.Key_2)
    original = doc.gt.copy()
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        click(qtbot, window.canvas, (20, 20))
    mask = prompting.proposal.mask()
    np.testing.assert_array_equal(mask, expected_disc(doc.shape, 20, 20))
    assert prompting.overlay.items                       # the outline and the click are drawn
    undo_depth = doc.history.undo_depth
    key(qtbot, window, Qt.Key.Key_Return)
    expected = original.copy()
    expected[mask] = 2
    np.testing.assert_array_equal(doc.gt, expected)
    assert prompting.proposal is None and not prompting.overlay.items
    assert doc.history.undo_depth == undo_depth + 1
    accepted_gt = doc.gt.copy()
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)   # ONE undo step undoes it all
    np.testing.assert_array_equal(doc.gt, original)
    assert doc.history.undo_depth == undo_depth
    # the same pixels painted with the brush: same labels, same live metrics
    doc.begin_stroke(2)
    for y, x in zip(*np.nonzero(mask)):
        doc.paint_dab(x + 0.5, y + 0.5, 0)
    doc.commit_stroke()
    np.testing.assert_array_equal(doc.gt, accepted_gt)


def test_accept_and_brush_give_the_same_live_metrics(qtbot, window, disc):
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(lambda: window.document.pred is not None)
    prompting, doc = window.prompting, window.document
    key(qtbot, window, Qt.Key.Key_S)
    key(qtbot, window, Qt.Key.Key_2)
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        click(qtbot, window.canvas, (36, 30))
    mask = prompting.proposal.mask()
    key(qtbot, window, Qt.Key.Key_Return)
    accepted = doc.comparison.confusion.matrix.copy()
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    doc.begin_stroke(2)
    for y, x in zip(*np.nonzero(mask)):
        doc.paint_dab(x + 0.5, y + 0.5, 0)
    doc.commit_stroke()
    np.testing.assert_array_equal(doc.comparison.confusion.matrix, accepted)


def test_accepted_proposal_moves_live_metrics_like_the_reference(qtbot, window, disc):
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(lambda: window.document.pred is not None)
    prompting, doc = window.prompting, window.document
    key(qtbot, window, Qt.Key.Key_S)
    key(qtbot, window, Qt.Key.Key_2)
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        click(qtbot, window.canvas, (45, 20))
    key(qtbot, window, Qt.Key.Key_Return)
    gt, pred = truth_and_prediction()["a"]
    expected = gt.copy()
    expected[expected_disc(gt.shape, 45, 20)] = 2
    np.testing.assert_array_equal(doc.gt, expected)
    ref = reference_metrics(expected, pred, 3)
    np.testing.assert_array_equal(doc.comparison.confusion.matrix, ref["matrix"])
    assert doc.comparison.confusion.mean_iou() == pytest.approx(ref["mean_iou"])


def test_negative_clicks_box_and_esc(qtbot, window, disc):
    prompting = window.prompting
    key(qtbot, window, Qt.Key.Key_S)
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        drag(qtbot, window.canvas, [(10, 10), (20, 15), (30, 25)])       # a box
    assert prompting.prompt.box == pytest.approx((10.5, 10.5, 30.5, 25.5), abs=0.1)   # screen rounding
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        click(qtbot, window.canvas, (20, 18), Qt.KeyboardModifier.ShiftModifier)     # negative
    assert list(prompting.prompt.labels) == [0]
    assert not prompting.proposal.mask()[18, 20]
    key(qtbot, window, Qt.Key.Key_Escape)
    assert prompting.proposal is None and prompting.prompt.empty and not prompting.overlay.items


def test_click_while_the_encoder_runs_waits_without_blocking_the_gui(qtbot, window, disc):
    prompting = window.prompting
    disc.gate.clear()                                  # the encoder is busy until we say
    key(qtbot, window, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: disc.encodings == 1)       # the tool warmed the image up
    click(qtbot, window.canvas, (20, 20))
    assert prompting.engine.waiting and prompting.proposal is None
    assert prompting.overlay.items                     # the click is drawn at once
    ticks = []
    from PySide6.QtCore import QTimer
    timer = QTimer(interval=1)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    qtbot.waitUntil(lambda: len(ticks) >= 5)           # the event loop runs while the encoder works
    timer.stop()
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        disc.gate.set()
    click_count = disc.decodes
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        click(qtbot, window.canvas, (30, 30))
    current = image_fingerprint(window.document.image)
    assert disc.encoded.count(current) == 1 and disc.decodes == click_count + 1     # never encoded again
    # The next image in review order, ahead of time: encoded in the worker, then cached once its result
    # is delivered to the GUI thread (a moment later).
    qtbot.waitUntil(lambda: disc.encodings == 2 and prompting.engine.cache.computed == 2)
    assert disc.encoded[1] != current
    assert window.step_image(1)
    assert prompting.engine.has_embedding(window.document.image)


def test_auto_prompt_from_the_selected_error_region(qtbot, window):
    with qtbot.waitSignal(window.controller.job_ended, timeout=5000):
        window.run_on_image()
    qtbot.waitUntil(lambda: len(window.regions.regions) == 2)
    prompting = window.prompting
    block = next(r for r in window.regions.regions if r.bbox == (4, 36, 8, 8))   # labelled 1, predicted 2
    window.regions.table.selectRow(window.regions.regions.index(block))
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=20000):
        key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    assert window.editor.tool_name == "prompt" and window.selection.class_id == 1
    positives = prompting.prompt.points[prompting.prompt.labels == 1]
    assert len(positives) and all(36 <= y < 44 and 4 <= x < 12 for x, y in positives)
    x0, y0, x1, y1 = prompting.prompt.box
    assert x0 == 0 and y0 == 0 and x1 >= 31        # the labelled object the region belongs to


def test_preserve_other_labels_applies_to_a_proposal(qtbot, window, disc):
    prompting, doc = window.prompting, window.document
    doc.paint_region(np.ones((4, 4), bool), (18, 18, 4, 4), 2)      # some class-2 pixels under the disc
    before = doc.gt.copy()
    window.editor.set_preserve_labels(True)
    key(qtbot, window, Qt.Key.Key_S)
    key(qtbot, window, Qt.Key.Key_1)
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        click(qtbot, window.canvas, (40, 20))          # x 34..46: background and class 1 there
    key(qtbot, window, Qt.Key.Key_Return)
    disc_px = expected_disc(doc.shape, 40, 20)
    assert (doc.gt[disc_px] == 1).all()
    with qtbot.waitSignal(prompting.proposal_shown, check_params_cb=lambda p: p is not None, timeout=10000):
        click(qtbot, window.canvas, (20, 20))
    key(qtbot, window, Qt.Key.Key_Return)
    np.testing.assert_array_equal(doc.gt[18:22, 18:22], before[18:22, 18:22])    # class 2 kept


def test_a_released_model_missing_from_the_weights_folder_says_what_to_fetch(qtbot, window, tmp_path):
    from segstudio.ui.prompt_controller import WEIGHTS_DIR_KEY

    window.settings.setValue(WEIGHTS_DIR_KEY, str(tmp_path))
    entry = next(a for a in window.prompting.models_menu.actions() if a.text().startswith("sam:vit_b"))
    with qtbot.waitSignal(window.errors_shown, timeout=5000):
        entry.trigger()
    from PySide6.QtWidgets import QMessageBox

    box = next(w for w in window.findChildren(QMessageBox) if "sam_vit_b_01ec64.pth" in w.text())
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth" in box.text()
    assert window.prompting.spec == "grabcut"              # the model in use did not change


def test_overlay_draws_outlines_and_ragged_masks_as_edge_pixels(qtbot, window):
    from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsPixmapItem

    from segstudio.core.prompting.types import Prompt
    from segstudio.ui.prompt_tool import ProposalOverlay, outline_path

    overlay = ProposalOverlay(window.canvas)
    disc = expected_disc((48, 64), 20, 20)
    overlay.show(Prompt.of([(20, 20, 1)]), disc)
    assert all(isinstance(i, QGraphicsPathItem) for i in overlay.items)
    rect = outline_path(disc).boundingRect()          # through the edge pixels' centres: x 14..26 -> 14.5..26.5
    assert (rect.left(), rect.right(), rect.top(), rect.bottom()) == (14.5, 26.5, 14.5, 26.5)
    ragged = np.zeros((48, 64), bool)
    ragged[::2, ::2] = True                            # 768 one-pixel specks
    import segstudio.ui.prompt_tool as prompt_tool
    limit = prompt_tool.MAX_PATH_POINTS
    prompt_tool.MAX_PATH_POINTS = 100
    try:
        overlay.show(Prompt(), ragged)
    finally:
        prompt_tool.MAX_PATH_POINTS = limit
    pixmaps = [i for i in overlay.items if isinstance(i, QGraphicsPixmapItem)]
    assert len(pixmaps) == 1 and pixmaps[0].offset().x() == 0 and pixmaps[0].pixmap().width() == 63
    overlay.clear()
