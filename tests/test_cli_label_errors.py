"""``segstudio label-errors``: planted label errors found from probability files and from the demo model;
hostile probability files refused with one line and exit 2."""
import csv
import json
import re

import cv2
import numpy as np
import pytest

from segstudio.cli import main

NAMES = ["background", "cell", "debris"]
C = 3


def is_progress(line):
    """A progress line (stderr is not a terminal in tests): 'segstudio compare:  50% 1/2 [...]'."""
    return re.match(r"^segstudio [\w-]+: +\d+%", line) is not None


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture
def data(tmp_path):
    """Four 32x40 images; the model is right everywhere; image 'b' has a 6x8 block labelled background
    that the model (truly) calls cell, image 'c' a 3x3 one (below --min-area 10)."""
    rng = np.random.default_rng(1)
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "class_names.txt").write_text("\n".join(NAMES) + "\n")
    truth = {}
    for name in "abcd":
        true = np.zeros((32, 40), np.uint8)
        true[5:20, 5:25] = 1
        true[22:30, 30:38] = 2
        labels = true.copy()
        if name == "b":
            labels[8:14, 10:18] = 0          # a missed part of the cell: labelled background
        if name == "c":
            labels[25:28, 2:5] = 1           # a small spurious cell label
        labels[0, :3] = 255
        probs = np.full((C, 32, 40), 0.05, np.float32)
        conf = rng.uniform(0.85, 0.9, true.shape).astype(np.float32)
        for k in range(C):
            probs[k][true == k] = conf[true == k]
        probs /= probs.sum(0, keepdims=True)
        write_png(ds / "images" / f"{name}.png", np.full((32, 40, 3), 60, np.uint8))
        write_png(ds / "masks" / f"{name}.png", labels)
        (tmp_path / "probs").mkdir(exist_ok=True)
        np.save(tmp_path / "probs" / f"{name}.npy", probs.astype(np.float16))
        truth[name] = (labels, probs.astype(np.float16))
    return tmp_path, truth


def _thresholds(truth):
    """t_k = mean p_k over pixels labelled k, over the whole dataset (numpy, written out)."""
    sums, counts = np.zeros(C), np.zeros(C)
    for labels, probs in truth.values():
        for k in range(C):
            sel = labels == k
            sums[k] += probs[k][sel].astype(np.float64).sum()
            counts[k] += sel.sum()
    return sums / counts


def test_probabilities_folder_finds_the_planted_region(data, capsys):
    tmp, truth = data
    out = tmp / "r.json"
    assert main(["label-errors", "--dataset", str(tmp / "ds"), "--probabilities", str(tmp / "probs"),
                 "--min-area", "10", "--report", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["classes"] == NAMES
    expected_t = _thresholds(truth)
    assert [report["thresholds"][n] for n in NAMES] == pytest.approx(list(expected_t), rel=1e-6)
    regions = report["regions"]
    assert len(regions) == 1
    r = regions[0]
    assert (r["image"], r["bbox"], r["area"], r["given"], r["suggested"]) == ("b", [10, 8, 8, 6], 48, "background", "cell")
    labels, probs = truth["b"]
    margin = probs[1, 8:14, 10:18].astype(np.float64) - probs[0, 8:14, 10:18].astype(np.float64)
    assert r["score"] == pytest.approx(margin.mean(), abs=1e-6)
    by_name = {e["name"]: e for e in report["images"]}
    assert by_name["b"]["suspect_pixels"] == 48 and by_name["c"]["suspect_pixels"] == 9
    assert by_name["a"]["suspect_pixels"] == 0
    assert report["images"][-1]["quality"] > report["images"][0]["quality"]
    assert {report["images"][0]["name"], report["images"][1]["name"]} == {"b", "c"}
    stdout = capsys.readouterr().out
    assert "background -> cell" in stdout
    # with the default-free --min-area 1 the small region appears too, after the larger-margin one or not
    assert main(["label-errors", "--dataset", str(tmp / "ds"), "--probabilities", str(tmp / "probs"),
                 "--min-area", "1", "--report", str(tmp / "r.csv")]) == 0
    rows = list(csv.reader((tmp / "r.csv").open()))
    assert rows[0][:3] == ["scope", "name", "x"]
    region_rows = [row for row in rows if row[0] == "region"]
    assert sorted(row[1] for row in region_rows) == ["b", "c"]
    assert [row[0] for row in rows[1:]].count("class") == 3


@pytest.mark.parametrize("breakage, reason", [
    ("pickle", "not a readable .npy"),
    ("float64", "float16 or float32"),
    ("shape", "expected (C, H, W)"),
    ("classes", "expected (C, H, W)"),
    ("halved", "sum to 1"),
    ("logits", "softmax"),
    ("nan", "NaN"),
    ("truncated", "not a readable .npy"),
    ("lying_header", "not a readable .npy"),
    ("text", "not a readable .npy"),
])
def test_hostile_probability_files_are_one_line_exit_2(data, capsys, breakage, reason):
    tmp, truth = data
    path = tmp / "probs" / "c.npy"
    good = truth["c"][1]
    if breakage == "pickle":
        np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    elif breakage == "float64":
        np.save(path, good.astype(np.float64))
    elif breakage == "shape":
        np.save(path, good[:, :16])
    elif breakage == "classes":
        np.save(path, np.concatenate([good, good[:1] * 0]))
    elif breakage == "halved":
        np.save(path, good * np.float16(0.5))
    elif breakage == "logits":
        np.save(path, (good.astype(np.float32) * 4 - 1))
    elif breakage == "nan":
        bad = good.copy()
        bad[0, 3, 3] = np.nan
        np.save(path, bad)
    elif breakage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif breakage == "lying_header":
        raw = path.read_bytes()
        path.write_bytes(raw.replace(b"(3, 32, 40)", b"(3, 32000, 40000)", 1))
    elif breakage == "text":
        path.write_text("not numpy at all")
    assert main(["label-errors", "--dataset", str(tmp / "ds"), "--probabilities", str(tmp / "probs")]) == 2
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines()
             if line.strip() and not is_progress(line)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("segstudio label-errors: error: ") and "c.npy" in lines[0] and reason in lines[0]


@pytest.mark.parametrize("args, needle", [
    (["--probabilities", "/nonexistent/p"], "/nonexistent/p"),
    (["--probabilities", "PROBS", "--report", "r.txt"], "r.txt"),
    (["--probabilities", "PROBS", "--min-area", "0"], "--min-area"),
    (["--model", "nosuchmodel"], "nosuchmodel"),
    (["--probabilities", "PROBS", "--save-probabilities", "out"], "--save-probabilities goes with --model"),
])
def test_bad_arguments_exit_2(data, capsys, args, needle):
    tmp, _ = data
    args = [str(tmp / "probs") if a == "PROBS" else a for a in args]
    assert main(["label-errors", "--dataset", str(tmp / "ds"), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("error:") == 1


def test_demo_model(tmp_path, capsys):
    """The demo model on a demo image with one planted error: thresholds as the numpy formula over the
    model's own softmax, and the planted region comes out first."""
    import shutil

    from segstudio.core.io.datasets import open_dataset
    from segstudio.inference.registry import resolve_model
    from segstudio.inference.runner import Runner
    from segstudio.resources import resource_path

    demo = resource_path("demo")
    demo_masks = {s.name: s for s in open_dataset(demo)}
    ds = tmp_path / "ds"
    for sub in ("images", "masks"):
        (ds / sub).mkdir(parents=True)
    shutil.copy(demo / "classes.json", ds / "classes.json")
    runner = Runner(resolve_model("demo"), device="cpu", probabilities=True)
    sums = counts = None
    planted = None
    for name in ("cells_00",):
        shutil.copy(demo / "images" / f"{name}.png", ds / "images" / f"{name}.png")
        labels = demo_masks[name].load_mask()
        probs = runner.predict(demo_masks[name].load_image()).probabilities
        if name == "cells_00":
            # relabel the model's most confident nucleus blob to background: a planted label error
            sure = (probs.argmax(0) == 1) & (probs[1] > 0.95) & (labels == 1)
            n, cc, stats, _ = cv2.connectedComponentsWithStats(sure.astype(np.uint8), connectivity=8)
            big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            labels = labels.copy()
            labels[cc == big] = 0
            planted = (cc == big)
        assert cv2.imwrite(str(ds / "masks" / f"{name}.png"), labels)
        c = probs.shape[0]
        if sums is None:
            sums, counts = np.zeros(c), np.zeros(c)
        for k in range(c):
            sel = labels == k
            sums[k] += probs[k][sel].astype(np.float64).sum()
            counts[k] += sel.sum()
    out = tmp_path / "r.json"
    assert main(["label-errors", "--dataset", str(ds), "--model", "demo", "--device", "cpu",
                 "--report", str(out)]) == 0
    report = json.loads(out.read_text())
    t = [report["thresholds"][n] for n in report["classes"]]
    assert t == pytest.approx(list(sums / counts), rel=1e-3)
    top = report["regions"][0]
    assert top["image"] == "cells_00" and top["suggested"] == report["classes"][1] and top["given"] == report["classes"][0]
    ys, xs = np.nonzero(planted)
    x, y, w, h = top["bbox"]
    assert x <= xs.min() and y <= ys.min() and x + w > xs.max() and y + h > ys.max()


@pytest.mark.parametrize("command", ["label-errors", "compare"])
def test_ctrl_c_during_a_model_run_exits_130_with_one_line(tmp_path, command):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from segstudio.resources import resource_path

    repo = Path(__file__).resolve().parents[1]
    demo = resource_path("demo")
    argv = (["--model", "demo"] if command == "label-errors" else ["--a", "demo", "--b", "demo"])
    proc = subprocess.Popen([sys.executable, "-m", "segstudio", command, "--dataset", str(demo), "--device", "cpu",
                             *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo,
                            env=dict(os.environ, PYTHONPATH=str(repo)))
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        line = proc.stderr.readline()        # the progress bar's first draw: the model is running
        if "[" in line or "\r" in line or not line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert proc.returncode == 130, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line and not is_progress(line)]
    assert lines == [f"segstudio {command}: cancelled"], err


def test_save_probabilities_runs_the_model_once_and_serves_probabilities(tmp_path, monkeypatch):
    import shutil

    from segstudio.inference.runner import Runner
    from segstudio.resources import resource_path

    demo = resource_path("demo")
    ds = tmp_path / "ds"
    for sub in ("images", "masks"):
        (ds / sub).mkdir(parents=True)
        shutil.copy(demo / sub / "cells_01.png", ds / sub / "cells_01.png")
    shutil.copy(demo / "classes.json", ds / "classes.json")
    runs = []
    real = Runner.predict_dataset

    def counting(self, *args, **kwargs):
        runs.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "predict_dataset", counting)
    saved = tmp_path / "probs"
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    assert main(["label-errors", "--dataset", str(ds), "--model", "demo", "--device", "cpu",
                 "--save-probabilities", str(saved), "--report", str(first)]) == 0
    assert len(runs) == 1
    probs = np.load(saved / "cells_01.npy")
    assert probs.dtype == np.float16 and probs.shape[0] == 4
    np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=1e-2)
    assert main(["label-errors", "--dataset", str(ds), "--probabilities", str(saved), "--report", str(second)]) == 0
    a, b = (json.loads(p.read_text()) for p in (first, second))
    assert a["thresholds"] == b["thresholds"] and a["regions"] == b["regions"] and a["images"] == b["images"]
