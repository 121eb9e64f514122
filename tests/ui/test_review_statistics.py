"""The review queue and the dataset browser ranked from an ``evaluate --stats`` file, nothing decoded."""
from __future__ import annotations

import cv2
import pytest
from PySide6.QtWidgets import QFileDialog

from segstudio.cli import main
from segstudio.core.evaluation.stats import StatisticsError

from tests.ui.editing_helpers import editing_window
from tests.ui.reference import reference_metrics
from tests.ui.synthetic import make_dataset, truth_and_prediction

pytest.importorskip("pyarrow")


@pytest.fixture
def evaluated(tmp_path):
    """The synthetic dataset and the statistics file of its predictions, written by the CLI."""
    root = make_dataset(tmp_path / "data")
    for name, (_gt, pred) in truth_and_prediction().items():
        (tmp_path / "pred").mkdir(exist_ok=True)
        assert cv2.imwrite(str(tmp_path / "pred" / f"{name}.png"), pred)
    stats = tmp_path / "stats.parquet"
    assert main(["evaluate", "--dataset", str(root), "--predictions", str(tmp_path / "pred"),
                 "--stats", str(stats)]) == 0
    return root, stats


def test_loaded_statistics_rank_the_queue_and_fill_the_browser(qtbot, evaluated, tmp_path, monkeypatch):
    root, stats = evaluated
    win = editing_window(qtbot, root, size=(1200, 1100))
    dock = win.editor.review
    assert not win.session.predictions          # no model ran: without the file nothing is ranked
    assert all(row[2] == "–" for row in dock.rows())
    figures = {name: (reference_metrics(gt, pred, 3)["mean_iou"], int((gt != pred).sum()))
               for name, (gt, pred) in truth_and_prediction().items()}
    dock.order_combo.setCurrentIndex(dock.order_combo.findData("mean_iou"))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(stats), "Parquet (*.parquet)"))
    with qtbot.waitSignal(dock.statistics_loaded, timeout=10000) as loaded:
        dock.load_stats_button.click()          # read on the task runner, applied on the GUI thread
    assert loaded.args == [str(stats), 2]
    assert dock.queue() == sorted(figures, key=lambda n: figures[n][0]) == ["b", "a"]
    assert not dock.computing
    rows = {row[0]: row for row in dock.rows()}
    for name, (iou, errors) in figures.items():
        assert rows[name][2:4] == (f"{iou:.3f}", f"{errors:,}")
    model = win.browser.model
    shown = {model.name_at(r): (model.index(r, 2).data(), model.index(r, 3).data()) for r in range(model.rowCount())}
    assert shown == {name: (f"{iou:.3f}", f"{errors:,}") for name, (iou, errors) in figures.items()}
    assert "Ranked from stats.parquet: 2 images" in dock.stats_label.text()
    win.editor.review_dock.show()
    win.editor.review_dock.raise_()
    qtbot.waitUntil(dock.isVisible)
    dock.grab().save(str(tmp_path / "review_statistics.png"))
    # A file of other classes is refused with the reason, and the ranking stays.
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    (other / "masks").mkdir()
    (other / "class_names.txt").write_text("background\nthing\n")
    gt, pred = truth_and_prediction()["a"]
    cv2.imwrite(str(other / "images" / "a.png"), cv2.merge([gt, gt, gt]))
    cv2.imwrite(str(other / "masks" / "a.png"), (gt > 0).astype("uint8"))
    assert main(["evaluate", "--dataset", str(other), "--predictions", str(other / "masks"),
                 "--stats", str(tmp_path / "other.parquet")]) == 0
    with pytest.raises(StatisticsError, match="classes differ"):
        dock.load_statistics(str(tmp_path / "other.parquet"))
    assert dock.queue() == ["b", "a"]
