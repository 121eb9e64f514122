"""``evaluate --shard`` + ``segstudio merge-reports``, progress lines, ``--instance-predictions``."""
import io
import json
import re

import cv2
import numpy as np
import pytest

from segstudio.cli import main
from segstudio.commands._progress import Progress


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(4)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "class_names.txt").write_text("background\nroad\ncar\n")
    for i in range(7):
        gt = rng.integers(0, 3, (12, 15)).astype(np.uint8)
        pred = np.where(rng.random(gt.shape) < 0.25, rng.integers(0, 3, gt.shape), gt).astype(np.uint8)
        write_png(tmp_path / "ds" / "images" / f"f{i}.png", np.zeros((12, 15, 3), np.uint8))
        write_png(tmp_path / "ds" / "masks" / f"f{i}.png", gt)
        write_png(tmp_path / "pred" / f"f{i}.png", pred)
    return tmp_path / "ds", tmp_path / "pred"


def error_lines(err):
    return [line for line in err.splitlines() if line and not re.match(r"^segstudio [\w-]+: +\d+%", line)]


def test_shards_merge_to_the_unsharded_report_byte_for_byte(dataset, tmp_path, capsys):
    ds, pred = dataset
    base = ["evaluate", "--dataset", str(ds), "--predictions", str(pred), "--per-image-confusion"]
    assert main(base + ["--report", str(tmp_path / "all.json")]) == 0
    for i in range(3):
        assert main(base + ["--shard", f"{i}/3", "--report", str(tmp_path / f"s{i}.json")]) == 0
    shard = json.loads((tmp_path / "s1.json").read_text())
    assert shard["settings"]["shard"] == "1/3"
    # Every third name of the sorted names, from the second.
    assert sorted(e["name"] for e in shard["images"]) == ["f1", "f4"]
    capsys.readouterr()
    assert main(["merge-reports", *(str(tmp_path / f"s{i}.json") for i in range(3)),
                 "--report", str(tmp_path / "merged.json")]) == 0
    out = capsys.readouterr().out
    assert "7 evaluated" in out
    assert (tmp_path / "merged.json").read_bytes() == (tmp_path / "all.json").read_bytes()
    assert main(["merge-reports", str(tmp_path / "s0.json"), str(tmp_path / "s1.json"),
                 "--report", str(tmp_path / "merged.csv")]) == 0
    assert (tmp_path / "merged.csv").read_text().count("\nimage,") == 5
    pq = pytest.importorskip("pyarrow.parquet")
    assert main(["merge-reports", *(str(tmp_path / f"s{i}.json") for i in range(3)),
                 "--stats", str(tmp_path / "merged.parquet")]) == 0
    assert main(base + ["--stats", str(tmp_path / "all.parquet")]) == 0
    assert pq.read_table(tmp_path / "merged.parquet").equals(pq.read_table(tmp_path / "all.parquet"))


def test_merge_reports_refuses_with_one_line(dataset, tmp_path, capsys):
    ds, pred = dataset
    base = ["evaluate", "--dataset", str(ds), "--predictions", str(pred)]
    assert main(base + ["--shard", "0/2", "--report", str(tmp_path / "a.json")]) == 0
    assert main(base + ["--shard", "1/2", "--iou-threshold", "0.7", "--report", str(tmp_path / "b.json")]) == 0
    capsys.readouterr()
    assert main(["merge-reports", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("segstudio merge-reports: error: ")
    assert "iou_threshold" in lines[0] and "b.json" in lines[0]
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["merge-reports", str(tmp_path / "junk.json")]) == 2
    assert "not a JSON report" in capsys.readouterr().err


@pytest.mark.parametrize("shard", ["3/3", "1", "a/b", "-1/2"])
def test_bad_shard_exits_2(dataset, capsys, shard):
    ds, pred = dataset
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred), f"--shard={shard}"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_ray_engine_without_ray_says_how_to_install(dataset, capsys, monkeypatch):
    import sys
    ds, pred = dataset
    monkeypatch.setitem(sys.modules, "ray", None)   # "import ray" raises ImportError
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred), "--engine", "ray"]) == 2
    assert "pip install segstudio[ray]" in capsys.readouterr().err
    assert main(["predict", "--model", "demo", "--images", str(ds), "--out", str(ds.parent / "o"),
                 "--engine", "ray"]) == 2
    assert "pip install segstudio[ray]" in capsys.readouterr().err


def test_progress_is_a_tqdm_bar_on_a_terminal_and_few_lines_in_a_log():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    bar = Progress(tty, "segstudio evaluate")
    for done in range(1, 501):
        bar(done, 500)
    bar.close()
    text = tty.getvalue()
    assert "500/500" in text and "img/s" in text and "\r" in text
    log = io.StringIO()
    bar = Progress(log, "segstudio evaluate")
    for done in range(1, 501):
        bar(done, 500)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in log.getvalue()   # one every 10 %, not 500 redraws
    assert lines[0].startswith("segstudio evaluate:  10% 50/500 [") and lines[-1].startswith(
        "segstudio evaluate: 100% 500/500 [")


def test_stats_parquet_holds_the_report_figures(dataset, tmp_path):
    pa = pytest.importorskip("pyarrow.parquet")
    ds, pred = dataset
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred), "--per-image-confusion",
                 "--report", str(tmp_path / "r.json"), "--stats", str(tmp_path / "s.parquet")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    table = pa.read_table(tmp_path / "s.parquet").to_pydict()
    assert table["image"] == [e["name"] for e in report["images"]]
    assert table["mean_iou"] == [e["mean_iou"] for e in report["images"]]
    assert table["iou:car"] == [e["per_class"].get("car", {}).get("iou") for e in report["images"]]
    for name, errors, confusion in zip(table["image"], table["error_pixels"], table["confusion"]):
        gt = cv2.imread(str(ds / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        pr = cv2.imread(str(pred / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert errors == int(np.count_nonzero(gt != pr))
        assert confusion == np.bincount(gt.ravel().astype(int) * 3 + pr.ravel(), minlength=9).tolist()


def boxes_to_ids(shape, boxes):
    ids = np.zeros(shape, np.uint16)
    for k, (y, x, h, w) in enumerate(boxes, start=1):
        ids[y:y + h, x:x + w] = k
    return ids


def reference_counts(gt_ids, gt_cls, pr_ids, pr_cls):
    """TP/FP/FN and matched IoUs by brute force: same class, IoU >= 0.5 (unique there)."""
    tp, ious = 0, []
    for g, gc in gt_cls.items():
        for p, pc in pr_cls.items():
            inter = np.sum((gt_ids == g) & (pr_ids == p))
            union = np.sum((gt_ids == g) | (pr_ids == p))
            if gc == pc and inter / union >= 0.5:
                tp += 1
                ious.append(inter / union)
    return tp, len(pr_cls) - tp, len(gt_cls) - tp, ious


@pytest.fixture
def coco(tmp_path):
    """A COCO dataset of two images with instances of 'cat' (category 3) and 'dog' (7)."""
    from pycocotools import mask as mask_utils

    root = tmp_path / "coco"
    shape = (30, 40)
    gt = {"a": [((2, 3, 10, 12), 3), ((15, 20, 12, 15), 7)], "b": [((5, 5, 20, 10), 7)]}
    images, annotations = [], []
    for image_id, (name, items) in enumerate(gt.items(), start=1):
        write_png(root / "images" / f"{name}.png", np.zeros(shape + (3,), np.uint8))
        images.append({"id": image_id, "file_name": f"{name}.png", "width": shape[1], "height": shape[0]})
        for box, cat in items:
            m = np.zeros(shape, np.uint8, order="F")
            y, x, h, w = box
            m[y:y + h, x:x + w] = 1
            rle = mask_utils.encode(m)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat,
                                "iscrowd": 0, "segmentation": {"size": list(shape),
                                                               "counts": rle["counts"].decode()}})
    (root / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations,
         "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}))
    # Predictions: a's cat shifted by 2 px (IoU 0.67), its dog labelled cat (no match), one extra
    # detection on b below the score threshold, b's dog shifted by 8 rows (IoU 0.43, no match).
    preds = {"a": [((4, 3, 10, 12), "cat", 0.9), ((15, 20, 12, 15), "cat", 0.8)],
             "b": [((13, 5, 20, 10), "dog", 0.7), ((0, 30, 5, 5), "cat", 0.2)]}
    return root, shape, gt, preds


def test_instance_predictions_folder_and_coco_results(coco, tmp_path, capsys):
    from pycocotools import mask as mask_utils

    root, shape, gt, preds = coco
    folder = tmp_path / "inst"
    results = []
    cat_id = {"cat": 3, "dog": 7}
    class_id = {"cat": 1, "dog": 2}
    totals = [0, 0, 0, []]
    for image_id, name in enumerate(gt, start=1):
        kept = [p for p in preds[name] if p[2] >= 0.5]
        ids = boxes_to_ids(shape, [p[0] for p in preds[name]])
        write_png(folder / f"{name}.png", ids)
        (folder / f"{name}.json").write_text(json.dumps(
            {"instances": [{"id": k, "class": p[1], "score": p[2]} for k, p in enumerate(preds[name], 1)]}))
        for box, cls, score in preds[name]:
            m = np.zeros(shape, np.uint8, order="F")
            y, x, h, w = box
            m[y:y + h, x:x + w] = 1
            rle = mask_utils.encode(m)
            results.append({"image_id": image_id, "category_id": cat_id[cls], "score": score,
                            "segmentation": {"size": list(shape), "counts": rle["counts"].decode()}})
        gt_ids = boxes_to_ids(shape, [b for b, _ in gt[name]])
        gt_cls = {k: 1 if c == 3 else 2 for k, (_, c) in enumerate(gt[name], 1)}
        pr_ids = boxes_to_ids(shape, [p[0] for p in kept])
        pr_cls = {k: class_id[p[1]] for k, p in enumerate(kept, 1)}
        for i, value in enumerate(reference_counts(gt_ids, gt_cls, pr_ids, pr_cls)):
            totals[i] += value
    (tmp_path / "results.json").write_text(json.dumps(results))
    tp, fp, fn, ious = totals
    assert (tp, fp, fn) == (1, 2, 2)   # the fixture's story, checked before the code under test
    for source in (folder, tmp_path / "results.json"):
        report_path = tmp_path / f"{source.stem}.json"
        assert main(["evaluate", "--dataset", str(root / "annotations.json"), "--instance-predictions",
                     str(source), "--instance-score-threshold", "0.5", "--report", str(report_path)]) == 0
        out = capsys.readouterr().out
        assert "instances @ IoU 0.50: TP 1  FP 2  FN 2" in out
        inst = json.loads(report_path.read_text())["instances"]
        assert inst["pq"] == pytest.approx(sum(ious) / (tp + fp / 2 + fn / 2))
        assert inst["sq"] == pytest.approx(sum(ious) / tp)


def test_instance_predictions_bad_input_is_one_line(coco, tmp_path, capsys):
    root, shape, gt, preds = coco
    folder = tmp_path / "inst"
    write_png(folder / "a.png", boxes_to_ids(shape, [(0, 0, 4, 4)]))
    argv = ["evaluate", "--dataset", str(root / "annotations.json"), "--instance-predictions", str(folder)]
    assert main(argv) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "a.json beside it" in lines[0]
    (folder / "a.json").write_text(json.dumps({"instances": [{"id": 1, "class": "horse"}]}))
    assert main(argv) == 2
    assert "class 'horse' is not in the class table" in capsys.readouterr().err
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 99, "category_id": 3,
                                                 "segmentation": {"size": [30, 40], "counts": "0"}}]))
    argv[-1] = str(tmp_path / "r.json")
    assert main(argv) == 2
    assert "image_id 99 is not in the dataset" in capsys.readouterr().err
