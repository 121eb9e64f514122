"""Review queue order against metrics computed here with plain numpy; report export."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.editing.review import (
    export_review,
    image_review_stats,
    likely_label_errors,
    metrics_summary,
    next_to_review,
    record_metrics,
    review_order,
)
from segstudio.core.editing.store import ProjectStore
from segstudio.core.io.csvcell import csv_cell

C, IGN = 4, 255


def numpy_mean_iou(gt, pred):
    valid = (gt != IGN) & (pred != IGN)
    ious = []
    for k in range(C):
        g, p = (gt == k) & valid, (pred == k) & valid
        union = int((g | p).sum())
        if union:
            ious.append((g & p).sum() / union)
    return float(np.mean(ious)) if ious else None


def make_images(n=8, shape=(30, 40)):
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        gt = rng.integers(0, C, shape).astype(np.uint8)
        gt[rng.random(shape) < 0.05] = IGN
        pred = gt.copy()
        flip = rng.random(shape) < rng.uniform(0.05, 0.6)     # each image its own error rate
        pred[flip] = rng.integers(0, C, int(flip.sum()))
        conf = rng.random(shape).astype(np.float32)
        out.append((f"img{i}", gt, pred, conf))
    return out


@pytest.fixture
def images():
    return make_images()


def test_stats_match_numpy(images):
    for name, gt, pred, conf in images:
        s = image_review_stats(name, gt, pred, C, IGN, conf)
        valid = (gt != IGN) & (pred != IGN)
        assert s.mean_iou == pytest.approx(numpy_mean_iou(gt, pred))
        assert s.error_pixels == int(((gt != pred) & valid).sum())
        for t in (0.9, 0.5, 0.0, 1.0, 0.123):
            expected = int(((gt != pred) & valid & (conf >= t)).sum())
            assert likely_label_errors(gt, pred, conf, t, IGN) == expected
            assert s.label_errors_at(t) == expected
        assert s.label_errors == likely_label_errors(gt, pred, conf, 0.9, IGN)


def test_queue_orders_worst_first_by_each_key(images):
    stats = [image_review_stats(n, g, p, C, IGN, c) for n, g, p, c in images]
    by_iou = sorted(images, key=lambda im: numpy_mean_iou(im[1], im[2]))
    assert review_order(stats, "mean_iou") == [im[0] for im in by_iou]
    errors = {n: int(((g != p) & (g != IGN) & (p != IGN)).sum()) for n, g, p, _ in images}
    assert review_order(stats, "error_pixels") == sorted(errors, key=lambda n: -errors[n])
    label = {n: likely_label_errors(g, p, c, 0.75, IGN) for n, g, p, c in images}
    assert review_order(stats, "label_errors", threshold=0.75) == sorted(label, key=lambda n: -label[n])
    with pytest.raises(ValueError):
        review_order(stats, "vibes")


def test_images_without_values_go_last():
    gt = np.full((4, 4), IGN, np.uint8)
    empty = image_review_stats("empty", gt, gt, C, IGN)              # nothing scored: no mean IoU
    ok = image_review_stats("ok", np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), C, IGN)
    assert empty.mean_iou is None and empty.label_errors is None
    assert review_order([empty, ok], "mean_iou") == ["ok", "empty"]
    assert review_order([empty, ok], "label_errors") == ["empty", "ok"]  # both None: input order


def test_next_to_review_skips_done_and_wraps():
    order = ["c", "a", "d", "b"]
    statuses = {"c": "accepted", "a": "fixed", "b": "needs_attention"}
    assert next_to_review(order, statuses) == "d"
    assert next_to_review(order, statuses, current="d") is None            # d itself is the only one
    assert next_to_review(order, statuses, current="d", wanted=("unreviewed", "needs_attention")) == "b"
    assert next_to_review(order, statuses, current="b", wanted=("unreviewed", "needs_attention")) == "d"
    assert next_to_review(order, {k: "accepted" for k in order}) is None


def test_export_csv_and_json_with_before_after(tmp_path, images):
    with ProjectStore(tmp_path / "p.sqlite") as store:
        for name, gt, pred, conf in images[:3]:
            before = ConfusionMatrix(C, IGN)
            before.update(gt, pred)
            fixed = gt.copy()
            fixed[:10] = pred[:10]                  # a correction: accept the prediction in a band
            after = ConfusionMatrix(C, IGN)
            after.update(fixed, pred)
            record_metrics(store, name, before=metrics_summary(before), after=metrics_summary(after))
            store.set_status(name, "fixed")
        store.set_note("img1", 'says "check, the rider"')
        names = [im[0] for im in images[:4]]
        rows = export_review(tmp_path / "r.csv", store, names)
        export_review(tmp_path / "r.json", store, names)
    with open(tmp_path / "r.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["name"] for r in table] == names
    assert table[3]["status"] == "unreviewed" and table[3]["before_mean_iou"] == ""
    assert table[1]["note"] == 'says "check, the rider"'
    gt, pred = images[0][1], images[0][2]
    fixed = gt.copy()
    fixed[:10] = pred[:10]
    assert float(table[0]["before_mean_iou"]) == pytest.approx(numpy_mean_iou(gt, pred))
    assert float(table[0]["after_mean_iou"]) == pytest.approx(numpy_mean_iou(fixed, pred))
    assert float(table[0]["delta_mean_iou"]) == pytest.approx(
        numpy_mean_iou(fixed, pred) - numpy_mean_iou(gt, pred))
    assert int(table[0]["after_error_pixels"]) == int(((fixed != pred) & (fixed != IGN) & (pred != IGN)).sum())
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["status_counts"] == {"fixed": 3, "unreviewed": 1}
    assert len(data["images"][0]["per_class"]["before"]) == C
    assert rows[0]["after_mean_iou"] == pytest.approx(numpy_mean_iou(fixed, pred))
    with pytest.raises(ValueError):
        export_review(tmp_path / "r.txt", store=None)


def test_csv_export_neutralises_formulas_in_text_but_not_numbers(tmp_path, images):
    # A note or image name opening with = + - @ (or tab, CR) ran as a formula in a spreadsheet.
    notes = {"img0": "=HYPERLINK(\"http://x\")", "img1": "+1", "img2": "@SUM(A1)", "img3": "-2+3",
             "img4": "\tx", "img6": "plain - text"}
    with ProjectStore(tmp_path / "p.sqlite") as store:
        name, gt, pred, _ = images[0]
        before = ConfusionMatrix(C, IGN)
        before.update(gt, pred)
        record_metrics(store, name, before=metrics_summary(before), after=metrics_summary(before))
        for key, note in notes.items():
            store.set_note(key, note)
        export_review(tmp_path / "r.csv", store, list(notes))
    with open(tmp_path / "r.csv", newline="") as fh:
        table = {r["name"]: r for r in csv.DictReader(fh)}
    assert {k: table[k]["note"] for k in notes} == {
        k: ("'" + v if k != "img6" else v) for k, v in notes.items()}
    assert float(table["img0"]["delta_mean_iou"]) == 0.0  # numbers, even negative ones, stay numbers
    # A leading CR is neutralised too (the csv module does not quote a lone CR, so not round-tripped).
    assert csv_cell("\rx") == "'\rx" and csv_cell(-0.5) == -0.5 and csv_cell(None) == ""
