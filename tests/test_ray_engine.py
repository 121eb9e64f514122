"""``--engine ray`` on a local Ray started once for this module: results equal the local engine's.

Ray takes 10-20 s to start on two cores, so the tests are few and each checks several things.
"""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.cli import main

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "resources" / "demo" / "model" / "demo_unet.pth"


@pytest.fixture(scope="module")
def local_ray():
    """A two-CPU Ray whose workers import this checkout of segstudio."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(8)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "class_names.txt").write_text("background\nroad\ncar\nsky\n")
    for i in range(10):
        h, w = 24 + i, 32 + 3 * i
        gt = rng.integers(0, 4, (h, w)).astype(np.uint8)
        gt[:2] = 255
        pred = np.where(rng.random(gt.shape) < 0.3, rng.integers(0, 4, gt.shape), gt).astype(np.uint8)
        write_png(tmp_path / "ds" / "images" / f"im{i}.png", rng.integers(0, 255, (h, w, 3), np.uint8))
        write_png(tmp_path / "ds" / "masks" / f"im{i}.png", gt)
        write_png(tmp_path / "pred" / f"im{i}.png", pred)
    return tmp_path / "ds", tmp_path / "pred"


def test_evaluate_folder_ray_equals_local_and_survives_a_killed_worker(local_ray, dataset, tmp_path,
                                                                       monkeypatch, capsys):
    """(Shards + merge-reports == unsharded is engine-independent: tests/test_cli_merge_reports.py.)"""
    ds, pred = dataset
    base = ["evaluate", "--dataset", str(ds), "--predictions", str(pred), "--per-image-confusion"]
    assert main(base + ["--report", str(tmp_path / "local.json")]) == 0
    # The first worker to reach its 3rd image exits hard (os._exit) once; Ray restarts it and
    # retries its batch.
    marker = tmp_path / "died"
    monkeypatch.setenv("SEGSTUDIO_RAY_FAULT", f"3:{marker}")
    assert main(base + ["--engine", "ray", "--workers", "2", "--report", str(tmp_path / "ray.json")]) == 0
    assert marker.exists(), "the fault hook never fired: the test proved nothing"
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    monkeypatch.delenv("SEGSTUDIO_RAY_FAULT")
    # Ctrl+C while the job runs: exit 130, one line, and no report, not even a partial one.
    import segstudio.commands.evaluate as evaluate_command

    class InterruptedProgress(evaluate_command.Progress):
        def __call__(self, done, total):
            if done == 3:
                raise KeyboardInterrupt
            super().__call__(done, total)

    monkeypatch.setattr(evaluate_command, "Progress", InterruptedProgress)
    capsys.readouterr()
    assert main(base + ["--engine", "ray", "--workers", "1", "--report", str(tmp_path / "cut.json")]) == 130
    assert "segstudio evaluate: cancelled" in capsys.readouterr().err
    assert not (tmp_path / "cut.json").exists()
    monkeypatch.undo()
    # Bad input met on a worker: the local engine's one line, exit 2.
    (pred / "im4.png").write_bytes(b"not a png")
    assert main(base + ["--engine", "ray", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert f"segstudio evaluate: error: {pred / 'im4.png'}: " in err


@pytest.mark.skipif(not DEMO_MODEL.exists(), reason="demo model not built")
def test_model_runs_on_ray_equal_local_with_a_failing_image_reported(local_ray, dataset, tmp_path, capsys):
    ds, _ = dataset
    (ds / "images" / "im7.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    base = ["evaluate", "--dataset", str(ds), "--model", "demo", "--device", "cpu", "--classes",
            str(ds / "class_names.txt")]
    assert main(base + ["--report", str(tmp_path / "local.json")]) == 1
    local_err = capsys.readouterr().err
    assert main(base + ["--engine", "ray", "--workers", "2", "--report", str(tmp_path / "ray.json")]) == 1
    ray_err = capsys.readouterr().err
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    report = json.loads((tmp_path / "ray.json").read_text())
    assert [f["name"] for f in report["failed"]] == ["im7"] and len(report["images"]) == 9
    for err in (local_err, ray_err):
        assert f"segstudio evaluate: error: {ds / 'images' / 'im7.png'}: " in err
        assert "1 of 10 images failed" in err
    # predict: byte-identical masks, the same failure line, the same exit code.
    images = ds / "images"
    assert main(["predict", "--model", "demo", "--images", str(images), "--out", str(tmp_path / "pl"),
                 "--device", "cpu", "--quiet"]) == 1
    assert main(["predict", "--model", "demo", "--images", str(images), "--out", str(tmp_path / "pr"),
                 "--device", "cpu", "--quiet", "--engine", "ray", "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count(f"segstudio predict: error: {images / 'im7.png'}: ") == 2
    local = sorted(p.name for p in (tmp_path / "pl").iterdir())
    assert local == sorted(p.name for p in (tmp_path / "pr").iterdir()) and len(local) == 9
    for name in local:
        assert (tmp_path / "pl" / name).read_bytes() == (tmp_path / "pr" / name).read_bytes(), name


def test_compare_and_label_errors_on_ray_equal_local(local_ray, dataset, tmp_path, capsys):
    """compare (two predictions folders; one shard) and label-errors (--probabilities, both passes on
    Ray) write the local engine's report byte for byte; label-errors refuses --shard."""
    ds, pred = dataset
    rng = np.random.default_rng(5)
    other, probs = tmp_path / "pred_b", tmp_path / "probs"
    other.mkdir()
    probs.mkdir()
    for i in range(10):
        gt = cv2.imread(str(ds / "masks" / f"im{i}.png"), cv2.IMREAD_UNCHANGED)
        if i != 6:   # im6: no prediction from B (listed as missing on both engines)
            write_png(other / f"im{i}.png", np.where(rng.random(gt.shape) < 0.2, 1, np.minimum(gt, 3)).astype(np.uint8))
        # Probabilities: mostly the label, with a block the model gives to class 2 confidently.
        labels = np.minimum(gt, 3)
        p = rng.uniform(0.0, 0.1, (4, *gt.shape)).astype(np.float32)
        p[(labels, *np.indices(gt.shape))] += 0.9
        p[:, 4:10, 4:12] = 0.01
        p[2, 4:10, 4:12] = 0.97
        np.save(probs / f"im{i}.npy", (p / p.sum(0, keepdims=True)).astype(np.float32))
    compare = ["compare", "--dataset", str(ds), "--a", str(pred), "--b", str(other), "--resamples", "200"]
    assert main(compare + ["--report", str(tmp_path / "cl.json")]) == 0
    assert main(compare + ["--engine", "ray", "--workers", "2", "--report", str(tmp_path / "cr.json")]) == 0
    assert (tmp_path / "cr.json").read_bytes() == (tmp_path / "cl.json").read_bytes()
    report = json.loads((tmp_path / "cr.json").read_text())
    assert report["missing"] == ["im6"] and len(report["images"]) == 9
    # One shard on Ray == the same shard locally: every 3rd image sorted by name, from the 2nd.
    assert main(compare + ["--shard", "1/3", "--report", str(tmp_path / "sl.json")]) == 0
    assert main(compare + ["--shard", "1/3", "--engine", "ray", "--workers", "2",
                           "--report", str(tmp_path / "sr.json")]) == 0
    assert (tmp_path / "sr.json").read_bytes() == (tmp_path / "sl.json").read_bytes()
    shard = json.loads((tmp_path / "sr.json").read_text())
    assert shard["shard"] == "1/3"
    assert sorted(e["name"] for e in shard["images"]) == sorted(sorted(f"im{i}" for i in range(10))[1::3])

    errors = ["label-errors", "--dataset", str(ds), "--probabilities", str(probs), "--min-area", "4"]
    assert main(errors + ["--report", str(tmp_path / "ll.json")]) == 0
    assert main(errors + ["--engine", "ray", "--workers", "2", "--report", str(tmp_path / "lr.json")]) == 0
    assert (tmp_path / "lr.json").read_bytes() == (tmp_path / "ll.json").read_bytes()
    found = json.loads((tmp_path / "lr.json").read_text())
    assert len(found["images"]) == 10 and found["regions"], "nothing found: the comparison proved little"
    capsys.readouterr()
    assert main(errors + ["--shard", "0/2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segstudio label-errors: error: --shard: ")
