"""``segstudio evaluate`` on the data real users bring: binary masks, ISBI folders, built-in class
tables by name, labelme's exports, and runs that find nothing to evaluate."""
import json

import numpy as np
import pytest
from PIL import Image

from segstudio.cli import main
from tests import labelme_data


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def binary(tmp_path):
    """ISBI-style image/ + label/ with {0, 255} masks, and {0, 255} predictions."""
    gt, pred = {}, {}
    for i, stem in enumerate(("s0", "s1")):
        mask = np.zeros((10, 12), np.uint8)
        mask[2:8, 2:10] = 255
        guess = mask.copy()
        guess[2:4, 2:10] = 0 if i else 255      # s1 misses 16 foreground pixels
        gt[stem], pred[stem] = mask, guess
        _save(tmp_path / "isbi" / "image" / f"{stem}.png", np.full((10, 12), 100, np.uint8))
        _save(tmp_path / "isbi" / "label" / f"{stem}.png", mask)
        _save(tmp_path / "pred" / f"{stem}.png", guess)
    return tmp_path, gt, pred


def _miou_reference(gt: dict, pred: dict) -> float:
    """Mean IoU over classes {0, 1} from the confusion summed over images (numpy, written here)."""
    cm = np.zeros((2, 2), np.int64)
    for stem in gt:
        g, p = (gt[stem] == 255).astype(int), (pred[stem] == 255).astype(int)
        np.add.at(cm, (g.ravel(), p.ravel()), 1)
    ious = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    return float(ious.mean())


def test_binary_masks_are_refused_naming_the_flag(binary, capsys):
    root, _, _ = binary
    code = main(["evaluate", "--dataset", str(root / "isbi"), "--predictions", str(root / "pred"),
                 "--pred-binary-mapping", "255:1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "label/s0.png" in err and "--binary-mapping 255:1" in err and "binary_mapping=" not in err


def test_prediction_refusal_names_the_prediction_flag(binary, capsys):
    root, _, _ = binary
    code = main(["evaluate", "--dataset", str(root / "isbi"), "--predictions", str(root / "pred"),
                 "--binary-mapping", "255:1"])
    err = capsys.readouterr().err
    assert code == 2 and "pred" in err and "--pred-binary-mapping 255:1" in err


def test_binary_mappings_evaluate(binary, tmp_path, capsys):
    root, gt, pred = binary
    report = tmp_path / "r.json"
    assert main(["evaluate", "--dataset", str(root / "isbi"), "--predictions", str(root / "pred"),
                 "--binary-mapping", "255:1", "--pred-binary-mapping", "255:1",
                 "--classes", "voc", "--report", str(report)]) == 0
    capsys.readouterr()
    data = json.loads(report.read_text())
    # With the 21-class VOC table only classes 0 and 1 are present; absent classes are undefined.
    assert data["summary"]["mean_iou"] == pytest.approx(_miou_reference(gt, pred))


def test_images_and_masks_name_the_folders(binary, tmp_path, capsys):
    root, gt, pred = binary
    (root / "isbi" / "label").rename(root / "gt_somewhere")
    report = tmp_path / "r.json"
    assert main(["evaluate", "--images", str(root / "isbi" / "image"), "--masks", str(root / "gt_somewhere"),
                 "--predictions", str(root / "pred"), "--binary-mapping", "255:1",
                 "--pred-binary-mapping", "255:1", "--report", str(report)]) == 0
    capsys.readouterr()
    assert json.loads(report.read_text())["summary"]["mean_iou"] == pytest.approx(_miou_reference(gt, pred))


@pytest.mark.parametrize("argv, message", [
    (["--masks", "x"], "--masks needs --images"),
    ([], "pass --dataset PATH, or --images DIR --masks DIR"),
])
def test_ground_truth_arguments_are_checked(binary, capsys, argv, message):
    root, _, _ = binary
    assert main(["evaluate", *argv, "--predictions", str(root / "pred")]) == 2
    assert message in capsys.readouterr().err


def test_bad_binary_mapping_exits_2(binary, capsys):
    root, _, _ = binary
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--dataset", str(root / "isbi"), "--predictions", str(root / "pred"),
              "--binary-mapping", "255=1"])
    assert info.value.code == 2 and "is not VALUE:CLASS" in capsys.readouterr().err


def test_unknown_class_table_name_lists_builtins(binary, capsys, monkeypatch):
    root, _, _ = binary
    monkeypatch.chdir(root)
    assert main(["evaluate", "--dataset", str(root / "isbi"), "--predictions", str(root / "pred"),
                 "--classes", "ade20k"]) == 2
    err = capsys.readouterr().err
    assert "ade20k" in err and "built-in: voc, cityscapes, coco" in err


def test_labelme_coco_against_labelme_voc_masks(tmp_path, capsys):
    coco = labelme_data.write_labelme_coco(tmp_path / "coco")
    voc = labelme_data.write_labelme_voc(tmp_path / "voc")
    report = tmp_path / "r.json"
    assert main(["evaluate", "--dataset", str(coco), "--predictions", str(voc / "SegmentationClass"),
                 "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err
    data = json.loads(report.read_text())
    assert data["classes"] == ["background", *labelme_data.CLASSES]
    assert data["summary"]["mean_iou"] == 1.0 and len(data["images"]) == 3


def test_class_table_mismatch_warns_on_one_line(tmp_path, capsys):
    coco = labelme_data.write_labelme_coco(tmp_path / "coco")
    voc = labelme_data.write_labelme_voc(tmp_path / "voc")
    preds = voc / "SegmentationClass"
    (preds / "class_names.txt").write_text("_background_\ncat\nbird\ndog\nfish\n")
    assert main(["evaluate", "--dataset", str(coco), "--predictions", str(preds)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "class table" in line]
    assert len(lines) == 1
    assert "has 4 classes" in lines[0] and "has 5 classes" in lines[0]
    assert "class 2 is 'dog' vs 'bird'" in lines[0] and lines[0].startswith("segstudio evaluate: warning:")


def test_coco_beside_jpegimages_evaluates_instead_of_nothing(tmp_path, capsys):
    coco = labelme_data.write_labelme_coco(tmp_path / "export")
    preds = tmp_path / "preds"
    for stem, mask in labelme_data.class_masks().items():
        _save(preds / f"{stem}.png", np.where(mask == 255, 0, mask).astype(np.uint8))
    assert main(["evaluate", "--dataset", str(coco), "--predictions", str(preds)]) == 0
    assert "3 evaluated" in capsys.readouterr().out


def test_instances_without_masks_exits_2_saying_what_it_looked_for(tmp_path, capsys):
    for name in ("a", "b"):
        _save(tmp_path / "ds" / "images" / f"{name}.png", np.zeros((6, 6, 3), np.uint8))
        _save(tmp_path / "ds" / "instances" / f"{name}.png", np.eye(6, dtype=np.uint8))
        _save(tmp_path / "pred" / f"{name}.png", np.zeros((6, 6), np.uint8))
    assert main(["evaluate", "--dataset", str(tmp_path / "ds"), "--predictions", str(tmp_path / "pred")]) == 2
    err = capsys.readouterr().err
    assert "nothing evaluated" in err and "masks/" in err and "0 with a semantic mask" in err
    assert len(err.strip().splitlines()[-1]) > 0 and "evaluated" not in capsys.readouterr().out


def test_jpegimages_without_any_ground_truth_exits_2(tmp_path, capsys):
    _save(tmp_path / "voc" / "JPEGImages" / "x.jpg", np.zeros((4, 4, 3), np.uint8))
    _save(tmp_path / "pred" / "x.png", np.zeros((4, 4), np.uint8))
    assert main(["evaluate", "--dataset", str(tmp_path / "voc"), "--predictions", str(tmp_path / "pred")]) == 2
    err = capsys.readouterr().err
    assert "no ground truth found" in err and "SegmentationClass/" in err


def test_predictions_named_unlike_images_exit_2(binary, capsys):
    root, _, pred = binary
    for stem in pred:
        (root / "pred" / f"{stem}.png").rename(root / "pred" / f"pred_{stem}.png")
    assert main(["evaluate", "--dataset", str(root / "isbi"), "--predictions", str(root / "pred"),
                 "--binary-mapping", "255:1"]) == 2
    err = capsys.readouterr().err
    assert "none of the 2 image(s) with ground truth has a prediction" in err and "'pred_s0'" in err


def test_model_with_another_class_table_warns_naming_both(tmp_path, capsys):
    coco = labelme_data.write_labelme_coco(tmp_path / "coco")
    assert main(["evaluate", "--dataset", str(coco), "--model", "demo", "--device", "cpu"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "class table" in line]
    assert len(lines) == 1
    # Both have 4 classes, but class 1 is a cat in the ground truth and a nucleus for the model.
    assert "'annotations' has 4 classes" in lines[0] and "the model demo's class table has 4 classes" in lines[0]
    assert "class 1 is 'cat' vs 'nucleus'" in lines[0]


def test_predict_classes_takes_builtin_names(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _save(tmp_path / "imgs" / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert main(["predict", "--model", "demo", "--images", str(tmp_path / "imgs"), "--out",
                 str(tmp_path / "out"), "--classes", "ade20k", "--quiet"]) == 2
    assert "built-in: voc, cityscapes, coco" in capsys.readouterr().err
