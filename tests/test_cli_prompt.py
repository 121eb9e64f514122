"""``segstudio prompt`` end to end through ``cli.main``."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segstudio.cli import main
from segstudio.core.prompting.clicks import iou
from tests.core.test_prompting import touching_discs


@pytest.fixture
def discs(tmp_path):
    img, left, right = touching_discs()
    path = tmp_path / "discs.png"
    Image.fromarray(img).save(path)
    return path, left, right


def read_mask(path):
    return np.asarray(Image.open(path))


def test_one_image_points_to_a_binary_mask(tmp_path, discs):
    path, left, right = discs
    out = tmp_path / "out" / "mask.png"
    assert main(["prompt", "--model", "grabcut", "--image", str(path), "--point", "45,40",
                 "--point", "75,40,-", "--out", str(out)]) == 0
    mask = read_mask(out)
    assert set(np.unique(mask)) <= {0, 1}
    assert iou(mask.astype(bool), left) >= 0.85


def test_one_image_box(tmp_path, discs):
    path, left, _ = discs
    out = tmp_path / "box.png"
    assert main(["prompt", "--image", str(path), "--box", "27,22,62,57", "--out", str(out)]) == 0
    assert iou(read_mask(out).astype(bool), left) >= 0.8


def test_batch_writes_class_masks(tmp_path, discs):
    path, left, right = discs
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([
        {"image": path.name, "points": [[45, 40, 1], [75, 40, 0]], "class": 2},
        {"image": path.name, "points": [[75, 40, 1], [45, 40, 0]], "class": 3},
    ]))
    out = tmp_path / "masks"
    assert main(["prompt", "--prompts", str(prompts), "--out", str(out)]) == 0
    labels = read_mask(out / "discs.png")
    assert Image.open(out / "discs.png").mode == "P"
    assert iou(labels == 2, left) >= 0.8 and iou(labels == 3, right) >= 0.8
    assert labels[0, 0] == 0


def test_batch_into_a_dataset_format(tmp_path, discs):
    path, left, _ = discs
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.asarray(Image.open(path))).save(root / "images" / "cell.png")
    Image.fromarray(np.zeros(left.shape, np.uint8)).save(root / "masks" / "cell.png")
    (root / "class_names.txt").write_text("background\nobject\n")
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps([{"image": "cell", "points": [[45, 40, 1], [75, 40, 0]], "class": 1}]))
    out = tmp_path / "corrected"
    assert main(["prompt", "--prompts", str(prompts), "--dataset", str(root), "--out", str(out)]) == 0
    written = list(out.rglob("*.png"))
    assert len(written) == 1
    assert iou(read_mask(written[0]) == 1, left) >= 0.8


@pytest.mark.parametrize("argv, message", [
    (["--image", "IMG"], "needs at least one --point or a --box"),
    (["--image", "missing.png", "--point", "1,2"], "missing.png"),
    (["--image", "IMG", "--point", "1,2", "--model", "sam:nowhere.pth"], "nowhere.pth: model file not found"),
    (["--image", "IMG", "--point", "1,2", "--model", "unet:x"], "must be 'grabcut'"),
    (["--prompts", "PROMPTS"], "needs \"points\" or a \"box\""),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, discs, capsys, argv, message):
    path, _, _ = discs
    prompts = tmp_path / "bad.json"
    prompts.write_text(json.dumps([{"image": path.name}]))
    argv = [a.replace("IMG", str(path)).replace("PROMPTS", str(prompts)) for a in argv]
    assert main(["prompt", *argv, "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segstudio prompt: error:") and message in err and "\n" not in err


def test_bad_point_syntax_is_a_usage_error(tmp_path, discs, capsys):
    with pytest.raises(SystemExit) as info:
        main(["prompt", "--image", str(discs[0]), "--point", "1;2", "--out", str(tmp_path / "o.png")])
    assert info.value.code == 2 and "a point is X,Y" in capsys.readouterr().err


def test_missing_sam_package_says_pip_install(tmp_path, discs, capsys, monkeypatch):
    from segstudio.inference.prompting import registry

    monkeypatch.setattr(registry, "installed", lambda module: module not in ("segment_anything", "sam2"))
    weights = tmp_path / "sam.pth"
    weights.write_bytes(b"")
    assert main(["prompt", "--model", f"sam:{weights}", "--image", str(discs[0]), "--point", "4,4",
                 "--out", str(tmp_path / "o.png")]) == 2
    assert "pip install segstudio[sam]" in capsys.readouterr().err


def test_sam_through_the_cli_equals_sam_predictor(tmp_path, discs):
    pytest.importorskip("segment_anything")
    from segment_anything import SamPredictor

    from tests.inference.prompt_models import tiny_sam

    weights, model = tiny_sam(tmp_path)
    out = tmp_path / "sam.png"
    assert main(["prompt", "--model", f"sam:{weights}", "--image", str(discs[0]), "--point", "45,40",
                 "--box", "20,20,70,60", "--out", str(out)]) == 0
    predictor = SamPredictor(model)
    predictor.set_image(np.asarray(Image.open(discs[0]).convert("RGB")))
    masks, scores, _ = predictor.predict(point_coords=np.float32([[45, 40]]), point_labels=np.int32([1]),
                                         box=np.float32([20, 20, 70, 60]))
    assert np.array_equal(read_mask(out), masks[int(np.argmax(scores))].astype(np.uint8))


def test_released_model_name_without_its_file_says_what_to_fetch(tmp_path, discs, capsys):
    assert main(["prompt", "--model", "sam2:tiny", "--weights-dir", str(tmp_path), "--image", str(discs[0]),
                 "--point", "4,4", "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "sam2.1_hiera_tiny.pt" in err and "segment_anything_2/092824/sam2.1_hiera_tiny.pt" in err
