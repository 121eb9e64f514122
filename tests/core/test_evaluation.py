"""evaluate / write_report / format_summary on folder datasets written here, checked against plain numpy
formulas computed in the test."""
import csv
import json

import cv2
import numpy as np
import pytest

from segstudio.core.io.classes import ClassTable
from segstudio.core.io.datasets import open_dataset
from segstudio.core.errors import ClassIdOutOfRange, MaskSizeMismatch, PredictionError
from segstudio.core.evaluation.report import PredictionFolder, evaluate, format_summary, write_report
from segstudio.core.io.masks import InstanceMask

NAMES = ["background", "road", "car", "never"]  # "never" appears in no gt and no prediction
IGNORE = 255


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def make_dataset(tmp_path, n=5, h=20, w=24, seed=3):
    rng = np.random.default_rng(seed)
    table = ClassTable.from_json({"classes": NAMES})
    (tmp_path / "ds").mkdir()
    table.save(tmp_path / "ds" / "classes.json")
    gts, preds = {}, {}
    for i in range(n):
        name = f"im{i}"
        write_png(tmp_path / "ds" / "images" / f"{name}.png", rng.integers(0, 255, (h, w, 3), np.uint8))
        gt = rng.integers(0, 3, (h, w)).astype(np.uint8)
        gt[: i + 1, :3] = IGNORE
        pred = gt.copy()
        wrong = rng.random((h, w)) < 0.1 * (i + 1)  # later images are worse
        pred[wrong] = rng.integers(0, 3, int(wrong.sum()))
        pred[0, 0] = IGNORE
        gts[name], preds[name] = gt, pred
        write_png(tmp_path / "ds" / "masks" / f"{name}.png", gt)
        write_png(tmp_path / "pred" / f"{name}.png", pred)
    return tmp_path / "ds", tmp_path / "pred", gts, preds


def reference(gt_list, pred_list, num_classes=len(NAMES)):
    """Per-class TP/FP/FN and the derived figures, written out plainly."""
    tp = np.zeros(num_classes)
    fp = np.zeros(num_classes)
    fn = np.zeros(num_classes)
    correct = scored = 0
    gt_px = np.zeros(num_classes)
    for gt, pred in zip(gt_list, pred_list):
        valid = (gt != IGNORE) & (pred != IGNORE)
        g, p = gt[valid], pred[valid]
        correct += int((g == p).sum())
        scored += int(valid.sum())
        for c in range(num_classes):
            tp[c] += ((g == c) & (p == c)).sum()
            fp[c] += ((g != c) & (p == c)).sum()
            fn[c] += ((g == c) & (p != c)).sum()
            gt_px[c] += (g == c).sum()
    iou = [tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else None for c in range(num_classes)]
    f1 = [2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else None
          for c in range(num_classes)]
    defined = [v for v in iou if v is not None]
    return {
        "pixel_accuracy": correct / scored if scored else None,
        "iou": iou,
        "precision": [tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else None for c in range(num_classes)],
        "recall": [tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else None for c in range(num_classes)],
        "f1": f1,
        "mean_iou": sum(defined) / len(defined) if defined else None,
        "mean_f1": np.mean([v for v in f1 if v is not None]),
        "fw_iou": sum(gt_px[c] / gt_px.sum() * iou[c] for c in range(num_classes) if gt_px[c]),
        "gt_pixels": gt_px,
        "pred_pixels": tp + fp,
    }


def test_report_shape_and_dataset_figures_match_numpy(tmp_path):
    ds_path, pred_path, gts, preds = make_dataset(tmp_path)
    ds = open_dataset(ds_path)
    calls = []
    report = evaluate(ds, pred_path, progress=lambda done, total: calls.append((done, total)))
    assert set(report) == {"dataset", "predictions", "classes", "settings", "summary", "confusion",
                           "images", "missing_predictions", "missing_ground_truth", "failed"}
    assert report["settings"] == {"ignore_index": 255, "iou_threshold": 0.5, "per_image_confusion": False}
    g = np.concatenate([gts[n].ravel() for n in sorted(gts)]).astype(np.int64)
    p = np.concatenate([preds[n].ravel() for n in sorted(gts)]).astype(np.int64)
    ok = (g < len(NAMES)) & (p < len(NAMES))
    counts = np.bincount(g[ok] * len(NAMES) + p[ok], minlength=len(NAMES) ** 2).reshape(len(NAMES), -1)
    assert report["confusion"] == counts.tolist()
    assert report["dataset"] == str(ds_path) and report["predictions"] == str(pred_path)
    assert report["classes"] == NAMES
    assert calls == [(i, 5) for i in range(1, 6)]
    ref = reference([gts[n] for n in sorted(gts)], [preds[n] for n in sorted(gts)])
    s = report["summary"]
    assert set(s) == {"pixel_accuracy", "mean_iou", "fw_iou", "mean_f1", "per_class"}
    assert s["pixel_accuracy"] == pytest.approx(ref["pixel_accuracy"])
    assert s["mean_iou"] == pytest.approx(ref["mean_iou"])
    assert s["fw_iou"] == pytest.approx(ref["fw_iou"])
    assert s["mean_f1"] == pytest.approx(ref["mean_f1"])
    for c, name in enumerate(NAMES):
        entry = s["per_class"][name]
        assert set(entry) == {"iou", "precision", "recall", "f1", "gt_pixels", "pred_pixels"}
        for key in ("iou", "precision", "recall", "f1"):
            assert entry[key] == pytest.approx(ref[key][c]) if ref[key][c] is not None \
                else entry[key] is None
        assert entry["gt_pixels"] == ref["gt_pixels"][c]
        assert entry["pred_pixels"] == ref["pred_pixels"][c]
    assert s["per_class"]["never"]["iou"] is None and s["per_class"]["never"]["f1"] is None
    # The dataset mean IoU comes from the summed matrix, not from averaging the images.
    assert s["mean_iou"] != pytest.approx(np.mean([e["mean_iou"] for e in report["images"]]))


def test_images_sorted_worst_first_with_their_own_figures(tmp_path):
    ds_path, pred_path, gts, preds = make_dataset(tmp_path)
    report = evaluate(open_dataset(ds_path), pred_path)
    images = report["images"]
    assert [e["name"] for e in images] == ["im4", "im3", "im2", "im1", "im0"]
    assert [e["mean_iou"] for e in images] == sorted(e["mean_iou"] for e in images)
    for entry in images:
        assert set(entry) == {"name", "pixel_accuracy", "mean_iou", "per_class", "error_pixels"}
        ref = reference([gts[entry["name"]]], [preds[entry["name"]]])
        assert entry["pixel_accuracy"] == pytest.approx(ref["pixel_accuracy"])
        assert entry["mean_iou"] == pytest.approx(ref["mean_iou"])
        assert set(entry["per_class"]) == {"background", "road", "car"}  # only the present ones
        assert entry["per_class"]["car"]["iou"] == pytest.approx(ref["iou"][2])


def test_undefined_values_are_null_in_json(tmp_path):
    ds_path, _, gts, _ = make_dataset(tmp_path, n=1)
    gt = gts["im0"]
    gt[:10] = IGNORE
    write_png(ds_path / "masks" / "im0.png", gt)
    pred = np.full_like(gt, IGNORE)
    pred[:10] = 1  # predicted only where the ground truth is ignored: nothing is scored
    report = evaluate(open_dataset(ds_path), lambda sample: pred)
    assert report["summary"]["pixel_accuracy"] is None and report["summary"]["mean_iou"] is None
    assert report["summary"]["fw_iou"] is None
    assert report["images"][0]["mean_iou"] is None and report["images"][0]["per_class"] == {}
    out = tmp_path / "r.json"
    write_report(report, out)
    text = out.read_text()
    assert '"pixel_accuracy": null' in text and "NaN" not in text
    assert json.loads(text) == report


def test_missing_prediction_and_ground_truth_are_reported(tmp_path):
    ds_path, pred_path, gts, preds = make_dataset(tmp_path)
    (pred_path / "im2.png").unlink()
    (ds_path / "masks" / "im3.png").unlink()
    report = evaluate(open_dataset(ds_path), pred_path)
    assert report["missing_predictions"] == ["im2"]
    assert report["missing_ground_truth"] == ["im3"]
    assert sorted(e["name"] for e in report["images"]) == ["im0", "im1", "im4"]
    ref = reference([gts[n] for n in ("im0", "im1", "im4")], [preds[n] for n in ("im0", "im1", "im4")])
    assert report["summary"]["mean_iou"] == pytest.approx(ref["mean_iou"])


def test_prediction_of_wrong_size_names_the_prediction_file(tmp_path):
    ds_path, pred_path, _, _ = make_dataset(tmp_path, n=2)
    write_png(pred_path / "im1.png", np.zeros((20, 23), np.uint8))
    with pytest.raises(MaskSizeMismatch) as err:
        evaluate(open_dataset(ds_path), pred_path)
    assert str(pred_path / "im1.png") in str(err.value)


def test_prediction_ids_beyond_the_table(tmp_path):
    ds_path, pred_path, _, preds = make_dataset(tmp_path, n=1)
    bad = preds["im0"].copy()
    bad[5, 5] = 9
    write_png(pred_path / "im0.png", bad)
    with pytest.raises(ClassIdOutOfRange) as err:
        evaluate(open_dataset(ds_path), pred_path)
    assert str(pred_path / "im0.png") in str(err.value)
    ds = open_dataset(ds_path)
    with pytest.raises(PredictionError) as err:
        evaluate(ds, lambda sample: bad)
    assert "im0" in str(err.value) and "9" in str(err.value)


def test_callable_and_index_stream_give_the_folder_result(tmp_path):
    ds_path, pred_path, gts, preds = make_dataset(tmp_path)
    ds = open_dataset(ds_path)
    from_folder = evaluate(ds, PredictionFolder(pred_path, ds.class_table))
    from_callable = evaluate(ds, lambda sample: preds[sample.name], source=str(pred_path))
    # A stream comes in index order and may skip indices (missing); objects with .mask are unwrapped.
    Pred = type("Pred", (), {})
    def stream():
        for i in (0, 1, 2, 4):
            p = Pred()
            p.mask = preds[ds[i].name]
            yield i, p
    from_stream = evaluate(ds, stream())
    assert from_callable == from_folder
    assert from_stream["missing_predictions"] == ["im3"]
    assert from_stream["summary"]["mean_iou"] == pytest.approx(reference(
        [gts[n] for n in ("im0", "im1", "im2", "im4")],
        [preds[n] for n in ("im0", "im1", "im2", "im4")])["mean_iou"])


def test_instances_summed_over_the_dataset(tmp_path):
    ds_path, pred_path, gts, preds = make_dataset(tmp_path, n=2)
    gt_inst = {}
    for name in ("im0", "im1"):
        ids = np.zeros((20, 24), np.uint16)
        ids[2:10, 4:12] = 1    # 64 px
        ids[12:18, 14:22] = 2  # 48 px
        gt_inst[name] = ids
        write_png(ds_path / "instances" / f"{name}.png", ids)
        sem = gts[name]
        sem[2:10, 4:12] = 1
        sem[12:18, 14:22] = 2
        write_png(ds_path / "masks" / f"{name}.png", sem)
    ds = open_dataset(ds_path)
    # im0: object 1 predicted 8 px short (IoU 56/64), object 2 missed, one spurious prediction.
    # im1: both found exactly.
    p0 = np.zeros((20, 24), np.int32)
    p0[2:9, 4:12] = 5
    p0[0:2, 0:2] = 6
    p1 = gt_inst["im1"].astype(np.int32)
    preds_inst = {"im0": InstanceMask(p0, {5: 1, 6: 2}), "im1": InstanceMask(p1, {1: 1, 2: 2})}
    report = evaluate(ds, pred_path, instance_predictions=lambda s: preds_inst[s.name])
    inst = report["instances"]
    tp, fp, fn = 3, 1, 1
    iou_sum = 56 / 64 + 1 + 1
    assert (inst["tp"], inst["fp"], inst["fn"]) == (tp, fp, fn)
    assert inst["iou_threshold"] == 0.5
    assert inst["precision"] == pytest.approx(tp / (tp + fp))
    assert inst["recall"] == pytest.approx(tp / (tp + fn))
    assert inst["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert inst["sq"] == pytest.approx(iou_sum / tp)
    assert inst["rq"] == pytest.approx(tp / (tp + fp / 2 + fn / 2))
    assert inst["pq"] == pytest.approx(iou_sum / (tp + fp / 2 + fn / 2))
    strict = evaluate(ds, pred_path, instance_predictions=lambda s: preds_inst[s.name],
                      iou_threshold=0.9)["instances"]
    assert (strict["tp"], strict["fp"], strict["fn"]) == (2, 2, 2)
    assert "instances" not in evaluate(ds, pred_path)


def test_csv_has_one_row_per_image_and_a_summary_row(tmp_path):
    ds_path, pred_path, _, _ = make_dataset(tmp_path, n=3)
    report = evaluate(open_dataset(ds_path), pred_path)
    out = tmp_path / "report.csv"
    write_report(report, out)
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert [r["scope"] for r in rows] == ["image"] * 3 + ["dataset"]
    assert [r["name"] for r in rows[:3]] == [e["name"] for e in report["images"]]
    for row, entry in zip(rows, report["images"]):
        assert float(row["mean_iou"]) == pytest.approx(entry["mean_iou"])
        assert float(row["iou:car"]) == pytest.approx(entry["per_class"]["car"]["iou"])
        assert row["iou:never"] == ""
    assert rows[3]["name"] == "ALL"
    assert float(rows[3]["pixel_accuracy"]) == pytest.approx(report["summary"]["pixel_accuracy"])
    assert rows[3]["iou:never"] == ""
    with pytest.raises(ValueError):
        write_report(report, tmp_path / "report.txt")


def test_json_report_with_non_utf8_and_non_ascii_names(tmp_path):
    report = {"dataset": "d", "predictions": "p", "classes": ["bg"],
              "summary": {"pixel_accuracy": 1.0, "mean_iou": 1.0, "fw_iou": 1.0, "mean_f1": 1.0,
                          "per_class": {"bg": {"iou": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
                                               "gt_pixels": 4, "pred_pixels": 4}}},
              "images": [{"name": "caf\u00e9", "pixel_accuracy": 1.0, "mean_iou": 1.0, "per_class": {}},
                         {"name": "bad\udcffname", "pixel_accuracy": 1.0, "mean_iou": 1.0,
                          "per_class": {}}],
              "missing_predictions": [], "missing_ground_truth": []}
    out = tmp_path / "r.json"
    write_report(report, out)
    text = out.read_bytes().decode("utf-8")
    assert "caf\u00e9" in text
    assert [e["name"] for e in json.loads(text)["images"]] == ["caf\u00e9", "bad\udcffname"]


def test_format_summary_lists_every_class_and_the_figures(tmp_path):
    ds_path, pred_path, _, _ = make_dataset(tmp_path, n=2)
    report = evaluate(open_dataset(ds_path), pred_path)
    text = format_summary(report)
    assert f"{report['summary']['mean_iou']:.4f}" in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    for name in NAMES:
        assert name in lines
    assert lines["never"].split()[1] == "-"
    assert f"{report['summary']['per_class']['car']['iou']:.4f}" in lines["car"]
    assert "2 evaluated" in text


def test_images_without_a_defined_mean_iou_sort_last(tmp_path):
    ds_path, _, gts, preds = make_dataset(tmp_path, n=3)

    def predict(sample):
        if sample.name == "im0":  # the best image, but nothing scored
            return np.full_like(gts["im0"], IGNORE)
        return preds[sample.name]

    report = evaluate(open_dataset(ds_path), predict)
    assert [e["name"] for e in report["images"]] == ["im2", "im1", "im0"]
    assert report["images"][-1]["mean_iou"] is None


def test_csv_report_neutralises_formulas_in_names_but_not_negative_numbers(tmp_path):
    # An image or class named "=cmd|..." ran as a formula when the report was opened in a spreadsheet.
    report = {"classes": ["-road"],
              "images": [{"name": "=cmd()", "pixel_accuracy": -0.5, "mean_iou": 0.25,
                          "per_class": {"-road": {"iou": 0.25}}},
                         {"name": "@a", "pixel_accuracy": 1.0, "mean_iou": None, "per_class": {}}],
              "summary": {"pixel_accuracy": 0.5, "mean_iou": 0.25, "per_class": {"-road": {"iou": 0.25}}}}
    write_report(report, tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines == ["scope,name,pixel_accuracy,mean_iou,iou:-road",
                     "image,'=cmd(),-0.5,0.25,0.25", "image,'@a,1.0,,", "dataset,ALL,0.5,0.25,0.25"]
