"""``segstudio evaluate`` end to end: through ``cli.main`` and once as ``python -m segstudio``."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.cli import main

REPO = Path(__file__).resolve().parents[1]


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture
def dataset(tmp_path):
    """Two images, classes background/object; the prediction of b misses 10 object pixels."""
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "class_names.txt").write_text("background\nobject\n")
    gt = np.zeros((8, 10), np.uint8)
    gt[2:6, 2:7] = 1  # 20 object pixels
    for name in ("a", "b"):
        write_png(tmp_path / "ds" / "images" / f"{name}.png", np.full((8, 10, 3), 90, np.uint8))
        write_png(tmp_path / "ds" / "masks" / f"{name}.png", gt)
    write_png(tmp_path / "pred" / "a.png", gt)
    worse = gt.copy()
    worse[2:4, 2:7] = 0
    write_png(tmp_path / "pred" / "b.png", worse)
    return tmp_path / "ds", tmp_path / "pred"


def expected_mean_iou():
    # object: TP 20 + 10, FN 10 -> 30/40; background: TP 60 + 60, FP 10 -> 120/130.
    return (30 / 40 + 120 / 130) / 2


def test_evaluate_prints_summary_and_writes_reports(dataset, tmp_path, capsys):
    ds, pred = dataset
    report_json, report_csv = tmp_path / "out.json", tmp_path / "out.csv"
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred),
                 "--report", str(report_json)]) == 0
    out, err = capsys.readouterr()
    assert f"mean IoU        {expected_mean_iou():.4f}" in out
    assert "object" in out and "2 evaluated" in out
    # stderr is not a terminal here: plain progress lines, no \r redraws.
    assert "segstudio evaluate: 100% 2/2" in err and "\r" not in err
    report = json.loads(report_json.read_text())
    assert report["summary"]["mean_iou"] == pytest.approx(expected_mean_iou())
    assert [e["name"] for e in report["images"]] == ["b", "a"]
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred),
                 "--report", str(report_csv)]) == 0
    lines = report_csv.read_text().splitlines()
    assert lines[0].startswith("scope,name,pixel_accuracy,mean_iou") and len(lines) == 4


def test_missing_prediction_is_a_warning(dataset, capsys):
    ds, pred = dataset
    (pred / "a.png").unlink()
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred)]) == 0
    out, err = capsys.readouterr()
    assert "1 image(s) have no prediction, e.g. a" in err
    assert "1 evaluated, 1 without prediction" in out


def is_progress(line):
    """A progress line (stderr is not a terminal in tests): 'segstudio evaluate:  50% 1/2 [...]'."""
    return re.match(r"^segstudio [\w-]+: +\d+%", line) is not None


def one_error_line(err):
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and not is_progress(line)]
    assert len(lines) == 1, err
    assert lines[0].startswith("segstudio evaluate: error: ")
    return lines[0]


@pytest.mark.parametrize("breakage, named", [
    (lambda ds, pred: ds / "nowhere", lambda ds, pred: str(ds / "nowhere")),
    (lambda ds, pred: write_png(pred / "b.png", np.zeros((8, 9), np.uint8)) or ds,
     lambda ds, pred: str(pred / "b.png")),
    (lambda ds, pred: (ds / "masks" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n") and ds,
     lambda ds, pred: str(ds / "masks" / "a.png")),
])
def test_bad_input_exits_2_with_one_line_naming_the_file(dataset, capsys, breakage, named):
    ds, pred = dataset
    target = breakage(ds, pred)
    assert main(["evaluate", "--dataset", str(target), "--predictions", str(pred)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert named(ds, pred) in one_error_line(err)


def test_missing_predictions_folder_and_bad_report_suffix(dataset, tmp_path, capsys):
    ds, pred = dataset
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(tmp_path / "none")]) == 2
    assert str(tmp_path / "none") in one_error_line(capsys.readouterr().err)
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred),
                 "--report", str(tmp_path / "r.txt")]) == 2
    assert "r.txt" in one_error_line(capsys.readouterr().err)


def test_ctrl_c_exits_130(dataset, capsys, monkeypatch):
    import segstudio.core.evaluation.report as evaluation

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "evaluate", interrupted)
    ds, pred = dataset
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred)]) == 130
    assert "cancelled" in capsys.readouterr().err


def test_predictions_and_model_are_exclusive(dataset, capsys):
    ds, pred = dataset
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--dataset", str(ds), "--predictions", str(pred), "--model", "demo"])
    assert exit_info.value.code == 2


def test_python_dash_m_segstudio_evaluate(dataset):
    ds, pred = dataset
    env = dict(os.environ, PYTHONPATH=str(REPO))
    ok = subprocess.run([sys.executable, "-m", "segstudio", "evaluate", "--dataset", str(ds),
                         "--predictions", str(pred)], capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert f"{expected_mean_iou():.4f}" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "segstudio", "evaluate", "--dataset",
                          str(ds / "missing"), "--predictions", str(pred)],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == (f"segstudio evaluate: error: {ds / 'missing'}: "
                                  f"no such file or folder")


@pytest.mark.parametrize("segmentation, reason", [
    ({"size": [2, 2], "counts": [1]}, "the RLE counts cover 1 pixels, the image has 4"),
    ({"size": [2, 2], "counts": "12"}, "the RLE counts cover 3 pixels, the image has 4"),
    ([[0, 0, 1, float("nan"), 1, 1]], "polygon 0 holds the coordinate nan"),
    ([[0, 0, 1e8, 0, 1e8, 1e8]], "polygon 0 holds the coordinate 100000000.0"),
])
def test_coco_segmentation_pycocotools_cannot_take_exits_2(tmp_path, segmentation, reason):
    # A child process: before the check these segfaulted (exit -11, nothing on stderr) or decoded
    # uninitialised memory as ground truth.
    from tests.corpus import coco_one_annotation

    bad = coco_one_annotation(tmp_path / "coco", "bad.json", segmentation)
    write_png(tmp_path / "pred" / "a.png", np.zeros((2, 2), np.uint8))
    done = subprocess.run([sys.executable, "-m", "segstudio", "evaluate", "--dataset", str(bad),
                           "--predictions", str(tmp_path / "pred")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr)
    line = one_error_line(done.stderr)
    assert f"{bad}: annotation 7 (image 1): {reason}" in line


def _evaluate_in_child(*argv, timeout=60):
    return subprocess.run([sys.executable, "-m", "segstudio", "evaluate", *map(str, argv)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          cwd=REPO, timeout=timeout)


@pytest.mark.parametrize("option", ["--dataset", "--classes"])
def test_a_fifo_or_device_is_refused_not_waited_on(dataset, tmp_path, option):
    # A child with a timeout: before the check, open() on the FIFO blocked forever and /dev/zero
    # was read until memory ran out.
    ds, pred = dataset
    fifo = tmp_path / ("fifo.json" if option == "--dataset" else "classes.json")
    os.mkfifo(fifo)
    targets = [fifo] if option == "--dataset" else [fifo, Path("/dev/zero")]
    for target in targets:
        argv = (["--dataset", target] if option == "--dataset" else
                ["--dataset", ds, "--classes", target]) + ["--predictions", pred]
        done = _evaluate_in_child(*argv)
        assert done.returncode == 2, done.stderr
        assert f"{target}: not a regular file but " in one_error_line(done.stderr)


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6, 0.85])
def test_ctrl_c_while_starting_exits_130_with_one_line(dataset, tmp_path, command, delay):
    # Before the handler covered start-up, a Ctrl+C during the first imports printed a traceback.
    import signal
    import time

    ds, pred = dataset
    argv = (["--dataset", ds, "--predictions", pred] if command == "evaluate" else
            ["--model", "demo", "--out", tmp_path / "out", "--images", ds / "images"])
    proc = subprocess.Popen([sys.executable, "-m", "segstudio", command, *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip(f"the run finished within {delay} s, before the signal")
    assert proc.returncode == 130, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line and not is_progress(line)]
    assert len(lines) == 1, err
    assert lines[0] == f"segstudio {command}: cancelled" or "interrupted; wrote" in lines[0], err


@pytest.mark.parametrize("folder", ["missing", "a_file"])
def test_unwritable_report_names_it_and_still_prints_the_summary(dataset, tmp_path, capsys, folder):
    ds, pred = dataset
    (tmp_path / "a_file").write_bytes(b"")
    report = tmp_path / folder / "report.csv"
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred),
                 "--report", str(report)]) == 2
    out, err = capsys.readouterr()
    assert f"mean IoU        {expected_mean_iou():.4f}" in out  # the work is not thrown away
    line = one_error_line(err)
    assert f"{report}: cannot write the report: " in line and ".tmp" not in line


def test_control_characters_in_paths_are_printed_escaped_on_one_line(dataset, tmp_path, capsys):
    # A newline split the "one line" error; an escape sequence in a file name reached the terminal.
    ds, pred = dataset
    missing = tmp_path / "new\nline \x1b[2J"
    assert main(["evaluate", "--dataset", str(missing), "--predictions", str(pred)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "new\\nline \\x1b[2J" in line and "\x1b" not in line
    for folder in (ds / "images", ds / "masks", pred):  # b, in the summary's worst images
        os.rename(folder / "b.png", folder / "b\x1b[31m\r.png")
    for folder in ("images", "masks"):  # c, without a prediction: in a warning
        shutil.copy(ds / folder / "a.png", ds / folder / "c\x1b[31m\n.png")
    assert main(["evaluate", "--dataset", str(ds), "--predictions", str(pred)]) == 0
    out, err = capsys.readouterr()
    assert "e.g. c\\x1b[31m\\n" in err and "b\\x1b[31m\\r (" in out
    assert "\x1b" not in out + err and "\r" not in out


def test_gui_argument_errors_escape_the_path(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "a\nb")])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("a\\nb: no such file or folder")


def _coco_escaping(tmp_path, file_name_of):
    """A COCO JSON in coco/ whose one image lies outside it, in elsewhere/a.png."""
    from tests.corpus import coco_one_annotation

    outside = tmp_path / "elsewhere" / "a.png"
    write_png(outside, np.zeros((2, 2, 3), np.uint8))
    path = coco_one_annotation(tmp_path / "coco", "escape.json", [[0, 0, 1, 0, 1, 1]])
    data = json.loads(path.read_text())
    data["images"][0]["file_name"] = file_name_of(outside, path.parent)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("file_name_of", [lambda p, here: os.path.relpath(p, here), lambda p, here: str(p)],
                         ids=["dotdot", "absolute"])
def test_coco_file_name_outside_the_dataset_exits_2_unless_allowed(tmp_path, capsys, file_name_of):
    # issue 10, item 7: '../' or absolute file_names read files outside the dataset
    bad = _coco_escaping(tmp_path, file_name_of)
    write_png(tmp_path / "pred" / "a.png", np.zeros((2, 2), np.uint8))
    name = json.loads(bad.read_text())["images"][0]["file_name"]
    assert main(["evaluate", "--dataset", str(bad), "--predictions", str(tmp_path / "pred")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{bad}: image 0 (id 1): file_name {name!r} leads outside the dataset" in line
    assert "--allow-outside-root" in line
    assert main(["evaluate", "--dataset", str(bad), "--predictions", str(tmp_path / "pred"),
                 "--allow-outside-root"]) == 0, capsys.readouterr().err
