"""The dataset browser's class filter never decodes on the GUI thread; a background scan fills it in."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import shiboken6

from segstudio.core.io.datasets import open_dataset
from segstudio.core.tasks import TaskKind
from segstudio.core.io.datasets.base import Sample
from segstudio.core.editing.session import ReviewSession
from segstudio.ui import dataset_browser
from segstudio.ui.dataset_browser import DatasetBrowser
from tests.ui.synthetic import TABLE

N = 20
CORRUPT = "img07"      # its mask file is not an image: counts as having no classes


def scans(task_runner) -> list:
    """Class scans still running (or cancelled but not yet stopped) on ``task_runner``; a stopped one
    stays active until its end is delivered on the GUI thread, which these checks do not wait for."""
    return [task for task in task_runner.active(TaskKind.PRESENCE_SCAN) if not task.done]


@pytest.fixture
def masks(tmp_path) -> dict[str, np.ndarray]:
    """N 8x8 ground truths with random classes; writes the dataset folder under tmp_path/d."""
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(7)
    masks = {}
    for i in range(N):
        name = f"img{i:02d}"
        gt = rng.choice([0, 1, 2], size=(8, 8), p=[0.8, 0.15, 0.05]).astype(np.uint8)
        gt[0, 0] = 2 if i == 7 else gt[0, 0]       # the corrupt one would have class 2
        cv2.imwrite(str(root / "images" / f"{name}.png"), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(root / "masks" / f"{name}.png"), gt)
        masks[name] = gt
    (root / "masks" / f"{CORRUPT}.png").write_bytes(b"not a png at all")
    TABLE.save(root / "classes.json")
    return masks


def with_class(masks, class_id: int) -> list[str]:
    """Reference answer: names whose (decodable) ground truth holds ``class_id``, by numpy."""
    return sorted(n for n, gt in masks.items() if n != CORRUPT and np.any(gt == class_id))


@pytest.fixture
def browser(qtbot, tmp_path, masks, task_runner):
    widget = DatasetBrowser(task_runner)
    qtbot.addWidget(widget)
    widget.set_session(ReviewSession(open_dataset(tmp_path / "d")))
    return widget


class RecordingLoader:
    """Stands in for ``Sample.load_mask``: records the thread and can hold the scan at call ``hold_at``."""

    def __init__(self, monkeypatch, hold_at: int | None = None):
        self.original = Sample.load_mask
        self.threads: list[threading.Thread] = []
        self.hold_at = hold_at
        self.held = threading.Event()
        self.gate = threading.Event()
        monkeypatch.setattr(Sample, "load_mask", self)

    def __get__(self, sample, owner=None):
        return lambda: self(sample)

    def __call__(self, sample):
        self.threads.append(threading.current_thread())
        if len(self.threads) == self.hold_at:
            self.held.set()
            assert self.gate.wait(10), "test never opened the gate"
        return self.original(sample)


def test_choosing_a_class_returns_at_once_and_scans_off_the_gui_thread(qtbot, browser, masks, monkeypatch,
                                                                      task_runner):
    loader = RecordingLoader(monkeypatch, hold_at=1)
    with qtbot.waitSignal(browser.class_scan_ended, timeout=10000) as ended:
        browser.filter_class(2)
        assert browser.visible_names() == []            # nothing known yet, nothing decoded here
        assert browser.count_label.text() == f"0 of {N} images (scanning 0/{N}…)"
        qtbot.waitUntil(loader.held.is_set)
        loader.gate.set()
    assert ended.args == [True]
    assert len(loader.threads) == N
    assert all(t is not threading.main_thread() for t in loader.threads)
    assert sorted(browser.visible_names()) == with_class(masks, 2)
    assert browser.count_label.text() == f"{len(with_class(masks, 2))} of {N} images"
    assert not browser.scanning
    assert not scans(task_runner)                       # stopped before the signal

    browser.filter_class(1)                             # every image known now: no second scan
    assert not browser.scanning
    assert len(loader.threads) == N
    assert sorted(browser.visible_names()) == with_class(masks, 1)


def test_the_filter_fills_in_chunk_by_chunk(qtbot, browser, masks, monkeypatch):
    monkeypatch.setattr(dataset_browser._PresenceScanner, "CHUNK", 5)
    loader = RecordingLoader(monkeypatch, hold_at=11)
    browser.filter_class(1)
    qtbot.waitUntil(loader.held.is_set)
    first_ten = sorted(masks)[:10]
    qtbot.waitUntil(lambda: browser.count_label.text().endswith(f"(scanning 10/{N}…)"))
    assert sorted(browser.visible_names()) == [n for n in with_class(masks, 1) if n in first_ten]
    with qtbot.waitSignal(browser.class_scan_ended, timeout=10000) as ended:
        loader.gate.set()
    assert ended.args == [True]
    assert sorted(browser.visible_names()) == with_class(masks, 1)


def test_back_to_all_classes_cancels_the_scan(qtbot, browser, masks, monkeypatch, task_runner):
    loader = RecordingLoader(monkeypatch, hold_at=4)
    browser.filter_class(2)
    qtbot.waitUntil(loader.held.is_set)
    with qtbot.waitSignal(browser.class_scan_ended, timeout=5000) as ended:
        browser.filter_class(None)
    assert ended.args == [False]
    assert not browser.scanning
    assert browser.count_label.text() == f"{N} of {N} images"
    loader.gate.set()
    qtbot.waitUntil(lambda: not scans(task_runner))
    assert len(loader.threads) == 4                     # stopped after the mask it was decoding
    assert sorted(browser.visible_names()) == sorted(masks)


def test_a_new_session_joins_the_scan(qtbot, browser, tmp_path, monkeypatch, task_runner):
    loader = RecordingLoader(monkeypatch, hold_at=1)
    browser.filter_class(2)
    qtbot.waitUntil(loader.held.is_set)
    loader.gate.set()
    browser.set_session(ReviewSession(open_dataset(tmp_path / "d")))
    assert not scans(task_runner)
    assert not browser.scanning
    assert browser.count_label.text() == f"{N} of {N} images"


def test_destroying_the_browser_joins_the_scan(qtbot, tmp_path, masks, monkeypatch, task_runner):
    widget = DatasetBrowser(task_runner)   # not qtbot.addWidget: this test deletes it itself
    widget.set_session(ReviewSession(open_dataset(tmp_path / "d")))
    loader = RecordingLoader(monkeypatch, hold_at=1)
    widget.filter_class(2)
    qtbot.waitUntil(loader.held.is_set)
    loader.gate.set()
    shiboken6.delete(widget)
    assert not scans(task_runner)


def test_documents_opened_meanwhile_win_over_the_scan(tmp_path, masks):
    from segstudio.core.editing.session import load_document

    dataset = open_dataset(tmp_path / "d")
    session = ReviewSession(dataset)
    assert session.known_classes("img00") is None
    document = session.open(0, lambda sample: load_document(sample, dataset.class_table))
    document.set_ground_truth(np.full_like(document.gt, 1))   # labels changed in memory, through the API
    assert session.learn_classes("img00") == frozenset(int(c) for c in np.unique(masks["img00"]))
    assert session.known_classes("img00") == frozenset({1})
    assert session.learn_classes(CORRUPT) == frozenset()
    assert session.known_classes(CORRUPT) == frozenset()


def test_thumbnails_are_decoded_off_the_gui_thread_and_status_icons_follow_the_review(qtbot, tmp_path):
    """Deliverable 8 of issue 12: each row gets a thumbnail of its image and an icon of its status."""
    import threading

    import cv2
    from PySide6.QtCore import Qt

    from segstudio.core.display import thumbnails as thumbs
    from tests.ui.editing_helpers import editing_window
    from tests.ui.synthetic import make_dataset

    root = make_dataset(tmp_path / "data")
    gui_thread = threading.get_ident()
    decoded_on = []
    real = thumbs.thumbnail

    def spy(image, side=thumbs.THUMB_SIDE):
        decoded_on.append(threading.get_ident())
        return real(image, side)

    import segstudio.ui.thumbnails as ui_thumbs
    ui_thumbs.thumbnail = spy
    try:
        window = editing_window(qtbot, root)
        browser = window.browser
        model = browser.model
        first = model.index(0, 1)
        model.data(first, Qt.ItemDataRole.DecorationRole)          # a paint asks for it
        qtbot.waitUntil(lambda: model.data(first, Qt.ItemDataRole.DecorationRole) is not None, timeout=5000)
    finally:
        ui_thumbs.thumbnail = real
    pixmap = model.data(first, Qt.ItemDataRole.DecorationRole)
    assert decoded_on and gui_thread not in decoded_on
    image = cv2.imread(str(root / "images" / "a.png"))[..., ::-1]
    scale = thumbs.THUMB_SIDE / max(image.shape[:2])
    assert (pixmap.width(), pixmap.height()) == (round(image.shape[1] * scale), round(image.shape[0] * scale))
    # the review status shows in column 0 and follows the review dock
    status = model.index(0, 0)
    assert model.data(status, Qt.ItemDataRole.ToolTipRole) == "Review status: Unreviewed"
    window.editor.review.set_status("fixed")
    assert model.data(status, Qt.ItemDataRole.ToolTipRole) == "Review status: Fixed"
    assert not model.data(status, Qt.ItemDataRole.DecorationRole).isNull()
