"""``segstudio compare``: A vs B from prediction folders and models, label-fix impact, bad input."""
import csv
import json
import re

import cv2
import numpy as np
import pytest

from segstudio.cli import main

C = 3
NAMES = ["background", "object", "thing"]


def is_progress(line):
    """A progress line (stderr is not a terminal in tests): 'segstudio compare:  50% 1/2 [...]'."""
    return re.match(r"^segstudio [\w-]+: +\d+%", line) is not None


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _miou(pairs):
    """Mean IoU of summed (gt, pred) pairs over classes present: the formula, written out."""
    cm = np.zeros((C, C), np.int64)
    for gt, pred in pairs:
        keep = gt != 255
        np.add.at(cm, (gt[keep], pred[keep]), 1)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return np.nanmean(iou), iou


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    ds = tmp_path / "ds"
    (ds).mkdir()
    (ds / "class_names.txt").write_text("\n".join(NAMES) + "\n")
    truth, preds_a, preds_b = {}, {}, {}
    for i in range(5):
        name = f"img{i}"
        gt = rng.integers(0, C, (12, 16)).astype(np.uint8)
        gt[0, :4] = 255
        a = np.where(rng.random(gt.shape) < 0.3, rng.integers(0, C, gt.shape), gt).astype(np.uint8)
        b = np.where(rng.random(gt.shape) < 0.15, rng.integers(0, C, gt.shape), gt).astype(np.uint8)
        a[gt == 255] = 0
        b[gt == 255] = 0
        if i == 3:  # B regresses badly on one image
            b = (gt + 1) % C
            b[gt == 255] = 0
        write_png(ds / "images" / f"{name}.png", np.full((12, 16, 3), 40 * i, np.uint8))
        write_png(ds / "masks" / f"{name}.png", gt)
        write_png(tmp_path / "pa" / f"{name}.png", a)
        write_png(tmp_path / "pb" / f"{name}.png", b)
        truth[name], preds_a[name], preds_b[name] = gt, a, b
    return tmp_path, truth, preds_a, preds_b


def test_compare_folders_json_matches_numpy(data, capsys):
    tmp, truth, pa, pb = data
    out = tmp / "r.json"
    code = main(["compare", "--dataset", str(tmp / "ds"), "--a", str(tmp / "pa"), "--b", str(tmp / "pb"),
                 "--report", str(out), "--resamples", "200"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out.read_text())
    assert set(report) >= {"a", "b", "classes", "summary", "images"}
    assert report["classes"] == NAMES
    ma, ia = _miou([(truth[n], pa[n]) for n in truth])
    mb, ib = _miou([(truth[n], pb[n]) for n in truth])
    s = report["summary"]
    assert s["a"]["mean_iou"] == pytest.approx(ma)
    assert s["b"]["mean_iou"] == pytest.approx(mb)
    assert s["delta"]["mean_iou"] == pytest.approx(mb - ma)
    for k, name in enumerate(NAMES):
        assert s["delta"]["per_class"][name] == pytest.approx(ib[k] - ia[k])
    boot = s["bootstrap"]
    assert boot["resamples"] == 200
    lo, hi = boot["mean_iou_delta_ci95"]
    assert lo <= hi and set(boot["per_class_ci95"]) == set(NAMES)
    # pixel kinds, summed over the dataset
    gt = np.stack(list(truth.values()))
    a = np.stack([pa[n] for n in truth])
    b = np.stack([pb[n] for n in truth])
    scored = gt != 255
    expected_pixels = {
        "both_right": (a == gt) & (b == gt), "b_fixes": (a != gt) & (b == gt), "b_breaks": (a == gt) & (b != gt),
        "both_wrong_same": (a != gt) & (b != gt) & (a == b), "both_wrong_different": (a != gt) & (b != gt) & (a != b)}
    assert s["pixels"] == {k: int((v & scored).sum()) for k, v in expected_pixels.items()}
    # images sorted by delta ascending; B's regression first
    deltas = [e["delta"] for e in report["images"]]
    assert deltas == sorted(deltas) and report["images"][0]["name"] == "img3"
    first = report["images"][0]
    assert first["a_mean_iou"] == pytest.approx(_miou([(truth["img3"], pa["img3"])])[0])
    assert first["b_mean_iou"] == 0.0
    assert set(first["pixels"]) == set(expected_pixels)
    assert "img3" in stdout and "95% CI" in stdout


def test_compare_csv_and_reproducible_seed(data, capsys):
    tmp, *_ = data
    args = ["compare", "--dataset", str(tmp / "ds"), "--a", str(tmp / "pa"), "--b", str(tmp / "pb"),
            "--resamples", "100", "--seed", "7"]
    assert main(args + ["--report", str(tmp / "1.json")]) == 0
    assert main(args + ["--report", str(tmp / "2.json")]) == 0
    one, two = (json.loads((tmp / f"{i}.json").read_text()) for i in (1, 2))
    assert one["summary"]["bootstrap"] == two["summary"]["bootstrap"]
    assert main(args + ["--report", str(tmp / "r.csv")]) == 0
    rows = list(csv.reader((tmp / "r.csv").open()))
    assert rows[0][:5] == ["scope", "name", "a_iou", "b_iou", "delta"]
    assert [r[0] for r in rows[1:]] == ["image"] * 5 + ["class"] * 3 + ["dataset"]
    assert float(rows[-1][4]) == pytest.approx(one["summary"]["delta"]["mean_iou"], abs=1e-6)


def test_identical_sources_give_zero_delta(data, capsys):
    tmp, *_ = data
    out = tmp / "r.json"
    assert main(["compare", "--dataset", str(tmp / "ds"), "--a", str(tmp / "pa"), "--b", f"folder:{tmp / 'pa'}",
                 "--report", str(out), "--resamples", "50"]) == 0
    s = json.loads(out.read_text())["summary"]
    assert s["delta"]["mean_iou"] == 0.0 and s["bootstrap"]["mean_iou_delta_ci95"] == [0.0, 0.0]
    assert s["pixels"]["b_fixes"] == s["pixels"]["b_breaks"] == 0


def one_error_line(err):
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not is_progress(line)]
    assert len(lines) == 1, err
    assert lines[0].startswith("segstudio compare: error: ")
    return lines[0]


@pytest.mark.parametrize("extra, needle", [
    (["--a", "PA", "--b", "nosuchmodel"], "nosuchmodel"),
    (["--a", "PA", "--b", "folder:/nonexistent/x"], "/nonexistent/x"),
    (["--a", "labels:original", "--b", "PB"], "labels:"),
    (["--a", "labels:original", "--b", "labels:corrected"], "--model SPEC or --predictions DIR"),
    (["--a", "labels:first", "--b", "labels:corrected", "--predictions", "PA"], "unknown label version"),
    (["--a", "PA", "--b", "PB", "--model", "demo"], "--model and --predictions go with labels:"),
    (["--a", "PA", "--b", "PB", "--report", "r.txt"], "r.txt"),
    (["--a", "PA", "--b", "PB", "--resamples", "0"], "--resamples"),
])
def test_bad_input_is_one_line_exit_2(data, capsys, extra, needle):
    tmp, *_ = data
    extra = [str(tmp / "pa") if e == "PA" else str(tmp / "pb") if e == "PB" else e for e in extra]
    assert main(["compare", "--dataset", str(tmp / "ds"), *extra]) == 2
    assert needle in one_error_line(capsys.readouterr().err)


def test_a_report_that_cannot_be_written_is_one_line_exit_2_after_the_summary(data, capsys):
    tmp, *_ = data
    (tmp / "a_file").write_text("not a folder")
    report = tmp / "a_file" / "r.json"
    assert main(["compare", "--dataset", str(tmp / "ds"), "--a", str(tmp / "pa"), "--b", str(tmp / "pb"),
                 "--resamples", "50", "--report", str(report)]) == 2
    out, err = capsys.readouterr()
    assert "cannot write the report" in one_error_line(err) and str(report) in err
    assert out.startswith("Dataset ") and f"A            {tmp / 'pa'}" in out     # the summary came first


def test_prediction_of_wrong_size_is_exit_2(data, capsys):
    tmp, *_ = data
    write_png(tmp / "pb" / "img2.png", np.zeros((5, 5), np.uint8))
    assert main(["compare", "--dataset", str(tmp / "ds"), "--a", str(tmp / "pa"), "--b", str(tmp / "pb")]) == 2
    assert "img2" in one_error_line(capsys.readouterr().err)


def test_label_fix_impact_original_vs_corrected(data, capsys):
    tmp, truth, pa, _ = data
    # Correct two images towards the model's prediction: the model's "errors" there were label noise.
    corrected = {}
    for name in ("img1", "img4"):
        fixed = truth[name].copy()
        fixed[:6] = pa[name][:6]
        fixed[0, :4] = 255
        corrected[name] = fixed
        write_png(tmp / "ds" / "corrected" / "masks" / f"{name}.png", fixed)
    out = tmp / "fix.json"
    assert main(["compare", "--dataset", str(tmp / "ds"), "--a", "labels:original", "--b", "labels:corrected",
                 "--predictions", str(tmp / "pa"), "--report", str(out), "--resamples", "100"]) == 0
    report = json.loads(out.read_text())
    assert report["corrected_images"] == 2
    labels_b = {n: corrected.get(n, truth[n]) for n in truth}
    ma, _ = _miou([(truth[n], pa[n]) for n in truth])
    mb, _ = _miou([(labels_b[n], pa[n]) for n in truth])
    assert report["summary"]["a"]["mean_iou"] == pytest.approx(ma)
    assert report["summary"]["b"]["mean_iou"] == pytest.approx(mb)
    assert report["summary"]["delta"]["mean_iou"] == pytest.approx(mb - ma) and mb > ma
    # b_fixes: the model disagreed with the original label and agrees with the correction
    gt = np.stack(list(truth.values()))
    lb = np.stack([labels_b[n] for n in truth])
    p = np.stack([pa[n] for n in truth])
    scored = (gt != 255) & (lb != 255)
    px = report["summary"]["pixels"]
    assert px["b_fixes"] == int(((gt != p) & (lb == p) & scored).sum()) > 0
    assert px["b_breaks"] == 0
    assert px["both_wrong_same"] == int(((gt != p) & (lb != p) & (gt == lb) & scored).sum())
    unchanged = [e for e in report["images"] if e["name"] not in corrected]
    assert all(e["delta"] == 0.0 for e in unchanged)
    assert "2 image(s) whose labels differ" in capsys.readouterr().out


def test_model_vs_folder_with_demo_model(tmp_path, capsys):
    import shutil  # noqa: PLC0415

    from segstudio.resources import resource_path  # noqa: PLC0415
    demo = resource_path("demo")
    ds = tmp_path / "ds"
    for sub in ("images", "masks"):
        (ds / sub).mkdir(parents=True)
        for name in ("cells_00.png", "cells_01.png"):
            shutil.copy(demo / sub / name, ds / sub / name)
    shutil.copy(demo / "classes.json", ds / "classes.json")
    out = tmp_path / "r.json"
    # The demo model against its own predictions written to a folder: Δ is exactly 0.
    assert main(["predict", "--model", "demo", "--images", str(ds / "images"), "--out", str(tmp_path / "p"),
                 "--device", "cpu"]) == 0
    assert main(["compare", "--dataset", str(ds), "--a", "demo", "--b", str(tmp_path / "p"), "--device", "cpu",
                 "--report", str(out), "--resamples", "50"]) == 0
    report = json.loads(out.read_text())
    assert report["a"].startswith("demo")
    assert report["summary"]["delta"]["mean_iou"] == pytest.approx(0.0, abs=1e-12)
    assert report["summary"]["pixels"]["b_fixes"] == report["summary"]["pixels"]["b_breaks"] == 0
    # Label-fix impact with --model: correct one image's labels to the model's own prediction.
    (ds / "corrected" / "masks").mkdir(parents=True)
    shutil.copy(tmp_path / "p" / "cells_00.png", ds / "corrected" / "masks" / "cells_00.png")
    assert main(["compare", "--dataset", str(ds), "--a", "labels:original", "--b", "labels:corrected",
                 "--model", "demo", "--device", "cpu", "--report", str(out), "--resamples", "20"]) == 0
    fix = json.loads(out.read_text())
    assert fix["corrected_images"] == 1 and fix["predictions"].startswith("demo")
    by_name = {e["name"]: e for e in fix["images"]}
    assert by_name["cells_00"]["b_mean_iou"] == 1.0 and by_name["cells_00"]["delta"] > 0
    assert by_name["cells_01"]["delta"] == 0.0
    assert fix["summary"]["pixels"]["b_breaks"] == 0 and fix["summary"]["pixels"]["b_fixes"] > 0


def test_label_fix_impact_reads_corrected_coco_json(tmp_path, capsys):
    from segstudio.core.io.datasets import open_dataset
    from segstudio.core.io.saving import save_ground_truth
    from tests.core.test_coco_corrections import make_coco

    root = tmp_path / "coco"
    truth = make_coco(root)
    dataset = open_dataset(root)
    # The model finds a larger object in 'a'; the correction agrees with it.
    preds = {}
    for name, gt in truth.items():
        pred = gt.copy()
        if name == "a":
            pred[8:10, 1:8] = 1
        preds[name] = pred
        write_png(tmp_path / "pred" / f"{name}.png", pred)
    sample = next(s for s in dataset if s.name == "a")
    save_ground_truth(dataset, sample, preds["a"])
    out = tmp_path / "r.json"
    assert main(["compare", "--dataset", str(root), "--a", "labels:original", "--b", "labels:corrected",
                 "--predictions", str(tmp_path / "pred"), "--report", str(out), "--resamples", "20"]) == 0
    report = json.loads(out.read_text())
    assert report["corrected_images"] == 1
    assert report["summary"]["b"]["mean_iou"] == 1.0
    expected_a = (lambda cm: np.mean([cm[k, k] / (cm[k].sum() + cm[:, k].sum() - cm[k, k]) for k in range(2)]))(
        sum(np.bincount(truth[n].ravel() * 2 + preds[n].ravel(), minlength=4).reshape(2, 2) for n in truth))
    assert report["summary"]["a"]["mean_iou"] == pytest.approx(expected_a)
    assert report["summary"]["pixels"]["b_fixes"] == 14
    assert report["images"][-1]["name"] == "a" and report["images"][-1]["delta"] > 0
