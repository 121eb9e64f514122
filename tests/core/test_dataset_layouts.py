"""Layouts real users bring: ISBI's singular folders, labelme's COCO and VOC exports, built-in class
tables by name, and the diagnosis when a dataset offers nothing to evaluate."""
import json

import numpy as np
import pytest
from PIL import Image

from segstudio.core.errors import BinaryMaskError, ClassTableError
from segstudio.core.evaluation.report import evaluate
from segstudio.core.io.classes import (COCO_THING_NAMES, VOC_NAMES, ClassTable, class_table_from_spec,
                                       describe_table_mismatch)
from segstudio.core.io.datasets import COCO, FOLDER, VOC, detect_dataset_format, open_dataset
from segstudio.core.io.datasets.diagnose import missing_ground_truth, nothing_evaluated
from tests import labelme_data


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _binary_set(root, images="image", masks="label", n=2):
    rng = np.random.default_rng(1)
    truth = {}
    for i in range(n):
        mask = np.zeros((10, 12), np.uint8)
        mask[2:7, 3 + i:9] = 255
        truth[f"{i}"] = mask
        _save(root / images / f"{i}.png", rng.integers(0, 255, (10, 12), dtype=np.uint8))
        _save(root / masks / f"{i}.png", mask)
    return truth


@pytest.mark.parametrize("images, masks", [("image", "label"), ("images", "labels"), ("img", "mask"),
                                           ("imgs", "masks")])
def test_isbi_style_singular_folders_are_a_folder_dataset(tmp_path, images, masks):
    truth = _binary_set(tmp_path, images, masks)
    assert detect_dataset_format(tmp_path) is FOLDER
    dataset = open_dataset(tmp_path, binary_mapping={0: 0, 255: 1})
    assert [s.name for s in dataset] == ["0", "1"]
    assert all(s.mask_path is not None and s.mask_path.parent.name == masks for s in dataset)
    for sample in dataset:
        np.testing.assert_array_equal(sample.load_mask(), (truth[sample.name] == 255).astype(np.uint8))


def test_binary_masks_refused_without_mapping_name_the_flag(tmp_path):
    _binary_set(tmp_path)
    sample = open_dataset(tmp_path)[0]
    with pytest.raises(BinaryMaskError, match="--binary-mapping 255:1"):
        sample.load_mask()


def test_explicit_image_and_mask_folders(tmp_path):
    truth = _binary_set(tmp_path, "raw", "annot")
    dataset = open_dataset(tmp_path / "raw", masks=tmp_path / "annot", binary_mapping={0: 0, 255: 255})
    np.testing.assert_array_equal(dataset[1].load_mask(), truth["1"])


# --- built-in class tables ------------------------------------------------------------------------

@pytest.mark.parametrize("name, names", [("voc", VOC_NAMES), ("VOC", VOC_NAMES),
                                         ("coco", ("background",) + COCO_THING_NAMES)])
def test_builtin_tables_by_name(tmp_path, monkeypatch, name, names):
    monkeypatch.chdir(tmp_path)
    assert class_table_from_spec(name).names == list(names)


def test_cityscapes_by_name_is_the_19_train_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = class_table_from_spec("cityscapes")
    assert table.num_classes == 19 and table.names[0] == "road" and table.names[18] == "bicycle"


def test_an_existing_file_wins_over_a_builtin_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "voc").write_text("background\nleaf\n")
    assert class_table_from_spec("voc").names == ["background", "leaf"]


def test_neither_file_nor_builtin_lists_the_builtins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClassTableError) as info:
        class_table_from_spec("pascal")
    assert "pascal" in str(info.value) and "voc, cityscapes, coco" in str(info.value)


def test_dataset_opened_with_a_builtin_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _binary_set(tmp_path / "ds")
    assert open_dataset(tmp_path / "ds", class_table="cityscapes").class_table.num_classes == 19


# --- labelme's exports ----------------------------------------------------------------------------

def test_labelme_coco_background_is_class_0_and_ignore_is_ignored(tmp_path):
    root = labelme_data.write_labelme_coco(tmp_path / "coco")
    (root / "JPEGImages").mkdir(exist_ok=True)
    assert detect_dataset_format(root) is COCO          # JSON beside JPEGImages/, no VOC masks
    dataset = open_dataset(root)
    assert dataset.class_table.names == ["background", *labelme_data.CLASSES]
    expected = labelme_data.class_masks()
    for sample in dataset:
        np.testing.assert_array_equal(sample.load_mask(), expected[sample.name])
    instances = dataset[1].load_instances()      # bird + an __ignore__ region: one instance
    assert list(instances.classes.values()) == [labelme_data.CLASSES.index("bird") + 1]


def test_labelme_voc_class_names_match_labelme_coco(tmp_path):
    coco = open_dataset(labelme_data.write_labelme_coco(tmp_path / "coco"))
    voc = open_dataset(labelme_data.write_labelme_voc(tmp_path / "voc"))
    assert voc.kind is VOC
    assert describe_table_mismatch(coco.class_table, voc.class_table) is None
    # labelme's VOC masks of the same shapes score perfectly against its COCO export.
    masks = {s.name: s for s in voc}
    report = evaluate(coco, lambda sample: masks[sample.name].load_mask())
    assert report["summary"]["mean_iou"] == 1.0
    # Independent check of the pixels scored: everything but the __ignore__ region.
    expected = labelme_data.class_masks()
    scored = sum(int((m != 255).sum()) for m in expected.values())
    assert sum(v["gt_pixels"] for v in report["summary"]["per_class"].values()) == scored


def test_coco_given_a_table_maps_labelme_categories(tmp_path):
    root = labelme_data.write_labelme_coco(tmp_path / "coco")
    table = ClassTable.from_names_txt(labelme_data.write_labelme_voc(tmp_path / "voc") / "class_names.txt")
    dataset = open_dataset(root / "annotations.json", class_table=table)
    np.testing.assert_array_equal(dataset[1].load_mask(), labelme_data.class_masks()["img_002"])


def test_table_mismatch_names_sizes_and_first_difference():
    voc = ClassTable.voc()
    four = ClassTable.from_json({"name": "pets", "classes": ["background", "cat", "dog", "bird"]})
    line = describe_table_mismatch(voc, four, "ground truth", "model")
    assert "'VOC' has 21 classes" in line and "'pets' has 4 classes" in line
    assert "class 1 is 'aeroplane' vs 'cat'" in line
    prefix = ClassTable.from_json({"classes": list(VOC_NAMES[:5])})
    assert "the first 5 names agree, then 'bottle' has no counterpart" in describe_table_mismatch(voc, prefix)
    assert describe_table_mismatch(voc, ClassTable.voc()) is None
    # A model without a card only knows how many classes it has: same size, no warning.
    assert describe_table_mismatch(voc, ClassTable.generic(21)) is None
    assert "has 4 classes" in describe_table_mismatch(voc, ClassTable.generic(4))


# --- nothing to evaluate --------------------------------------------------------------------------

def test_coco_json_beside_jpegimages_without_masks_is_coco_not_voc(tmp_path):
    root = labelme_data.write_labelme_coco(tmp_path / "export")
    assert detect_dataset_format(root) is COCO
    (root / "SegmentationClass").mkdir()
    labelme_data.write_labelme_voc(root)              # with VOC masks it is VOC again
    assert detect_dataset_format(root) is VOC


def test_a_report_json_in_a_folder_of_images_is_not_coco(tmp_path):
    _save(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "report.json").write_text(json.dumps({"summary": {}}))
    assert detect_dataset_format(tmp_path) is FOLDER


def test_instances_without_masks_says_what_was_looked_for(tmp_path):
    for name in ("a", "b"):
        _save(tmp_path / "images" / f"{name}.png", np.zeros((6, 6, 3), np.uint8))
        _save(tmp_path / "instances" / f"{name}.png", np.eye(6, dtype=np.uint8))
    dataset = open_dataset(tmp_path)
    assert missing_ground_truth(dataset) is None          # it has instances
    report = evaluate(dataset, lambda s: np.zeros((6, 6), np.uint8))
    line = nothing_evaluated(dataset, report)
    assert "no image has a semantic ground-truth mask" in line
    assert "masks/" in line and "2 image(s), 0 with a semantic mask, 2 with an instance mask" in line
    assert "images/, instances/" in line


def test_no_ground_truth_at_all(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    _save(tmp_path / "JPEGImages" / "x.jpg", np.zeros((4, 4, 3), np.uint8))
    dataset = open_dataset(tmp_path)
    line = missing_ground_truth(dataset)
    assert "SegmentationClass/" in line and "1 image(s), 0 with a semantic mask" in line


def test_predictions_named_unlike_the_images(tmp_path):
    _binary_set(tmp_path)
    dataset = open_dataset(tmp_path, binary_mapping={0: 0, 255: 1})
    report = evaluate(dataset, lambda s: None)
    line = nothing_evaluated(dataset, report, ["pred_0", "pred_1"], "preds/")
    assert "none of the 2 image(s) with ground truth has a prediction in preds/" in line
    assert "'0'" in line and "'pred_0'" in line
    assert nothing_evaluated(dataset, evaluate(dataset, lambda s: s.load_mask())) is None
