"""Saved COCO corrections are the labels the editor reopens on (issue 10, item 1): a saved corrected
JSON is the label source for its images, saves merge into it, recovery replays over it, and the
corrected JSON opens as a dataset of its own."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from segstudio.core.editing.service import EditingService, SaveSettings
from segstudio.core.io.datasets import open_dataset

from tests.core.editing_service_helpers import Answers, open_session, paint

H, W = 12, 16


def make_coco(root):
    """Two images, one category ('thing', class 1): a rectangle in each."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations, truth = [], [], {}
    for i, name in enumerate(("a", "b"), start=1):
        Image.fromarray(np.full((H, W, 3), 30 * i, np.uint8)).save(root / "images" / f"{name}.png")
        x0, x1, y0, y1 = 1, 6 + i, 1, 8
        images.append({"id": i, "file_name": f"{name}.png", "width": W, "height": H})
        annotations.append({"id": i, "image_id": i, "category_id": 3, "iscrowd": 0,
                            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
        gt = np.zeros((H, W), np.uint8)
        gt[coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(
            [[x0, y0, x1, y0, x1, y1, x0, y1]], H, W))).astype(bool)] = 1
        truth[name] = gt
    path = root / "annotations" / "instances_val.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 3, "name": "thing"}]}))
    return truth


def labels_in(json_path, file_name):
    """The semantic labels of one image as a COCO JSON holds them, decoded with pycocotools here."""
    data = json.loads(json_path.read_text())
    image = next(img for img in data["images"] if img["file_name"] == file_name)
    out = np.zeros((image["height"], image["width"]), np.uint8)
    for ann in data["annotations"]:
        if ann["image_id"] != image["id"]:
            continue
        segm = ann["segmentation"]
        rle = coco_mask.frPyObjects(segm, image["height"], image["width"]) \
            if isinstance(segm, list) or isinstance(segm.get("counts"), list) else \
            {"size": segm["size"], "counts": segm["counts"].encode("ascii")}
        if isinstance(rle, list):
            rle = coco_mask.merge(rle)
        out[coco_mask.decode(rle).astype(bool)] = 255 if ann.get("iscrowd") else 1
    return out


def corrected(root):
    return root / "corrected" / "annotations" / "instances_val.json"


def test_a_saved_correction_is_what_the_image_reopens_on(tmp_path, runner):
    root = tmp_path / "coco"
    truth = make_coco(root)
    service = EditingService(Answers(), runner, SaveSettings(autosave_on_switch=False))
    session, doc, factory = open_session(service, root)
    paint(doc, 1, (12, 9))                                  # stroke A
    after_a = doc.gt.copy()
    assert not np.array_equal(after_a, truth["a"])
    assert service.save(doc)
    np.testing.assert_array_equal(labels_in(corrected(root), "a.png"), after_a)

    other = session.open(1, factory)                        # the next image and back
    service.release(doc)
    service.track(other)
    doc = session.open(0, factory)
    service.release(other)
    service.track(doc)
    np.testing.assert_array_equal(doc.gt, after_a)
    assert session.sample_to_load(0).mask_path == corrected(root)

    paint(doc, 1, (2, 10))                                  # stroke C
    after_c = doc.gt.copy()
    assert service.save(doc)
    np.testing.assert_array_equal(labels_in(corrected(root), "a.png"), after_c)   # A and C
    np.testing.assert_array_equal(labels_in(corrected(root), "b.png"), truth["b"])
    original = root / "annotations" / "instances_val.json"
    np.testing.assert_array_equal(labels_in(original, "a.png"), truth["a"])       # untouched
    assert service.confirm_close()


def test_saving_one_image_keeps_the_saved_corrections_of_the_others(tmp_path, runner):
    root = tmp_path / "coco"
    make_coco(root)
    service = EditingService(Answers(), runner, SaveSettings(autosave_on_switch=False))
    session, doc_a, factory = open_session(service, root)
    paint(doc_a, 1, (12, 9))
    assert service.save(doc_a)
    doc_b = session.open(1, factory)
    service.release(doc_a)
    service.track(doc_b)
    paint(doc_b, 0, (3, 3))
    assert service.save(doc_b)
    np.testing.assert_array_equal(labels_in(corrected(root), "a.png"), doc_a.gt)
    np.testing.assert_array_equal(labels_in(corrected(root), "b.png"), doc_b.gt)
    assert service.confirm_close()


def test_recovery_after_a_crash_replays_over_the_saved_correction(tmp_path, runner):
    root = tmp_path / "coco"
    make_coco(root)
    first = EditingService(Answers(), runner)
    _, doc, _ = open_session(first, root)
    paint(doc, 1, (12, 9))                                  # stroke A, saved
    assert first.save(doc)
    paint(doc, 0, (3, 3))                                   # stroke B, journalled only
    expected = doc.gt.copy()
    first.store.close()                                     # kill -9

    answers = Answers(restore=True)
    again = EditingService(answers, runner)
    _, doc, _ = open_session(again, root)
    assert answers.asked_restore == [{"a": 1}]
    np.testing.assert_array_equal(doc.gt, expected)         # A and B
    assert again.save(doc)
    np.testing.assert_array_equal(labels_in(corrected(root), "a.png"), expected)
    assert again.confirm_close()


def test_a_saved_corrected_json_opens_as_a_dataset(tmp_path, runner):
    root = tmp_path / "coco"
    make_coco(root)
    service = EditingService(Answers(), runner)
    _, doc, _ = open_session(service, root)
    paint(doc, 1, (12, 9))
    assert service.save(doc)
    assert service.confirm_close()
    reopened = open_dataset(corrected(root))
    assert [s.image_path for s in reopened] == [root / "images" / "a.png", root / "images" / "b.png"]
    np.testing.assert_array_equal(reopened[0].load_mask(), doc.gt)


def test_overwriting_the_original_json_is_read_back_too(tmp_path, runner):
    root = tmp_path / "coco"
    make_coco(root)
    service = EditingService(Answers(), runner, SaveSettings(overwrite=True, autosave_on_switch=False))
    session, doc, factory = open_session(service, root)
    paint(doc, 1, (12, 9))
    edited = doc.gt.copy()
    assert service.save(doc)
    other = session.open(1, factory)
    service.release(doc)
    service.track(other)
    doc = session.open(0, factory)                          # the JSON opened has changed since
    np.testing.assert_array_equal(doc.gt, edited)
    assert service.confirm_close()
