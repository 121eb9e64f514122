"""Raw counts in the evaluate report, exact figures, and merge_reports == the unsharded report."""
import json
from fractions import Fraction

import cv2
import numpy as np
import pytest

from segstudio.commands.engines.options import shard_dataset
from segstudio.core.evaluation.merge import ReportMergeError, load_report, merge_reports
from segstudio.core.evaluation.report import evaluate, write_report
from segstudio.core.io.datasets import open_dataset

NAMES = ["background", "road", "car", "bike", "sky"]


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture
def dataset(tmp_path):
    """Nine images of odd sizes, five classes and the ignore index; predictions 70 % right."""
    rng = np.random.default_rng(11)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "class_names.txt").write_text("\n".join(NAMES) + "\n")
    gts, preds = {}, {}
    for i in range(9):
        h, w = 13 + i, 17 + 2 * i
        gt = rng.integers(0, len(NAMES), (h, w)).astype(np.uint8)
        gt[rng.random((h, w)) < 0.05] = 255
        pred = gt.copy()
        wrong = rng.random((h, w)) < 0.3
        pred[wrong] = rng.integers(0, len(NAMES), int(wrong.sum()))
        name = f"img{i}"
        write_png(tmp_path / "ds" / "images" / f"{name}.png", rng.integers(0, 255, (h, w, 3), np.uint8))
        write_png(tmp_path / "ds" / "masks" / f"{name}.png", gt)
        write_png(tmp_path / "pred" / f"{name}.png", pred)
        gts[name], preds[name] = gt, pred
    return tmp_path / "ds", tmp_path / "pred", gts, preds


def numpy_confusion(gts, preds):
    c = len(NAMES)
    g = np.concatenate([a.ravel() for a in gts]).astype(np.int64)
    p = np.concatenate([a.ravel() for a in preds]).astype(np.int64)
    ok = (g < c) & (p < c)
    return np.bincount(g[ok] * c + p[ok], minlength=c * c).reshape(c, c)


def test_report_carries_dataset_and_per_image_confusion(dataset):
    ds_path, pred_path, gts, preds = dataset
    report = evaluate(open_dataset(ds_path), pred_path, per_image_confusion=True)
    assert report["confusion"] == numpy_confusion(gts.values(), preds.values()).tolist()
    assert report["settings"]["per_image_confusion"] is True
    for entry in report["images"]:
        expected = numpy_confusion([gts[entry["name"]]], [preds[entry["name"]]])
        assert entry["confusion"] == expected.tolist()
        assert entry["error_pixels"] == int(expected.sum() - np.trace(expected))
    assert "confusion" not in evaluate(open_dataset(ds_path), pred_path)["images"][0]


def test_perfect_prediction_prints_exactly_one(dataset, tmp_path):
    ds_path, _, gts, _ = dataset
    for name, gt in gts.items():
        write_png(tmp_path / "perfect" / f"{name}.png", gt)
    summary = evaluate(open_dataset(ds_path), tmp_path / "perfect")["summary"]
    # Exact equality, not approx: integers summed, one division each.
    assert summary["fw_iou"] == 1.0 and summary["mean_iou"] == 1.0
    assert summary["pixel_accuracy"] == 1.0 and summary["mean_f1"] == 1.0
    assert all(c["iou"] == 1.0 for c in summary["per_class"].values())


def test_merge_of_shards_equals_the_whole_run_exactly(dataset, tmp_path):
    ds_path, pred_path, _, _ = dataset
    whole_ds = open_dataset(ds_path)
    whole = evaluate(whole_ds, pred_path, per_image_confusion=True, source="p")
    parts = [evaluate(shard_dataset(whole_ds, (i, 4)), pred_path, per_image_confusion=True, source="p")
             for i in range(4)]
    assert sum(len(p["images"]) for p in parts) == len(whole["images"])
    assert merge_reports(parts) == whole
    assert merge_reports(parts[::-1]) == whole
    # Through the files the CLI writes: JSON keeps every float exactly.
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"part{i}.json")
        write_report(part, paths[-1])
    merged = merge_reports([load_report(p) for p in paths], [str(p) for p in paths])
    write_report(merged, tmp_path / "merged.json")
    write_report(whole, tmp_path / "whole.json")
    assert (tmp_path / "merged.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


def test_merge_refuses_other_classes_settings_duplicates_and_csv(dataset, tmp_path):
    ds_path, pred_path, _, _ = dataset
    ds = open_dataset(ds_path)
    a = evaluate(shard_dataset(ds, (0, 2)), pred_path)
    b = evaluate(shard_dataset(ds, (1, 2)), pred_path)
    renamed = json.loads(json.dumps(b))
    renamed["classes"][2] = "truck"
    with pytest.raises(ReportMergeError, match="classes"):
        merge_reports([a, renamed], ["a.json", "b.json"])
    other = json.loads(json.dumps(b))
    other["settings"]["iou_threshold"] = 0.75
    with pytest.raises(ReportMergeError, match="iou_threshold"):
        merge_reports([a, other], ["a.json", "b.json"])
    with pytest.raises(ReportMergeError, match="also in a.json"):
        merge_reports([a, a], ["a.json", "b.json"])
    write_report(a, tmp_path / "a.csv")
    with pytest.raises(ReportMergeError, match="CSV"):
        load_report(tmp_path / "a.csv")
    old = {k: v for k, v in a.items() if k != "confusion"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ReportMergeError, match="no confusion"):
        load_report(tmp_path / "old.json")


def square_instances(shape, boxes):
    ids = np.zeros(shape, np.int32)
    for k, (y, x, h, w) in enumerate(boxes, start=1):
        ids[y:y + h, x:x + w] = k
    return ids


def test_instance_sums_are_exact_and_merge_exactly(tmp_path):
    """PQ from the exact sum of matched IoUs, whatever order images are added in."""
    from segstudio.core.io.masks import InstanceMask

    rng = np.random.default_rng(5)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "class_names.txt").write_text("background\nthing\n")
    gt_inst, pred_inst = {}, {}
    for i in range(6):
        name = f"s{i}"
        gt_boxes = [(2, 2, 9, 7), (14, 3, 6, 11), (4, 16, 10, 8)]
        pr_boxes = [(y + int(rng.integers(0, 3)), x + int(rng.integers(0, 3)), h, w) for y, x, h, w in gt_boxes]
        gt = square_instances((24, 28), gt_boxes)
        pr = square_instances((24, 28), pr_boxes[: 2 + i % 2])
        write_png(tmp_path / "ds" / "images" / f"{name}.png", np.zeros((24, 28, 3), np.uint8))
        write_png(tmp_path / "ds" / "masks" / f"{name}.png", (gt > 0).astype(np.uint8))
        gt_inst[name] = InstanceMask(gt, {k: 1 for k in range(1, 4)})
        pred_inst[name] = InstanceMask(pr, {k: 1 for k in np.unique(pr[pr > 0]).tolist()})
    ds = open_dataset(tmp_path / "ds")

    class WithInstances:
        """The dataset, with ground-truth instances (the folder format has none)."""

        def __init__(self, dataset):
            self.dataset = dataset
            self.root, self.class_table = dataset.root, dataset.class_table

        def __len__(self):
            return len(self.dataset)

        def __iter__(self):
            for sample in self.dataset:
                sample.load_instances = (lambda n=sample.name: gt_inst[n])
                yield sample

    report = evaluate(WithInstances(ds), None, instance_predictions=lambda s: pred_inst[s.name])
    # Independent reference: IoU of each (same-class) pair, matched at >= 0.5 (unique there).
    tp = fp = fn = 0
    ious = []
    for name in sorted(gt_inst):
        g, p = gt_inst[name].ids, pred_inst[name].ids
        matched = set()
        for gi in range(1, 4):
            for pi in np.unique(p[p > 0]):
                inter = np.sum((g == gi) & (p == pi))
                union = np.sum((g == gi) | (p == pi))
                if inter / union >= 0.5:  # the threshold is inclusive
                    ious.append(inter / union)
                    matched.add(gi)
        tp += len(matched)
        fn += 3 - len(matched)
        fp += len(np.unique(p[p > 0])) - len(matched)
    inst = report["instances"]
    assert (inst["tp"], inst["fp"], inst["fn"]) == (tp, fp, fn)
    exact = sum((Fraction(x) for x in ious), Fraction(0))
    assert Fraction(inst["iou_sum_exact"]) == exact
    assert inst["pq"] == float(exact / Fraction(2 * tp + fp + fn, 2))
    assert inst["sq"] == float(exact / tp)
    halves = [evaluate(WithInstances(shard_dataset(ds, (k, 2))), None,
                       instance_predictions=lambda s: pred_inst[s.name]) for k in range(2)]
    assert merge_reports(halves)["instances"] == inst
