"""Saving corrected masks: each format round-trips through the dataset readers; writes are atomic."""
from __future__ import annotations

import json
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from segstudio.core.io.classes import CITYSCAPES_LABEL_TO_TRAIN, ClassTable
from segstudio.core.io.datasets import open_dataset
from segstudio.core.io.saving import (
    corrected_dir,
    destination_for,
    encode_palette_png,
    save_ground_truth,
    train_to_label_lut,
)

SHAPE = (40, 56)


def chunks_of(path):
    """Every (type, data) chunk of a PNG, parsed here independently of the code under test."""
    blob = open(path, "rb").read()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", blob[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + data)
        out.append((kind, data))
        pos += 12 + n
    return out


def labels(seed=0, n=5, ignore=None):
    rng = np.random.default_rng(seed)
    m = np.kron(rng.integers(0, n, (SHAPE[0] // 8, SHAPE[1] // 8)), np.ones((8, 8), int)).astype(np.uint8)
    if ignore is not None:
        m[rng.random(SHAPE) < 0.05] = ignore
    return m


def folder_dataset(tmp_path, mask_writer):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((*SHAPE, 3), np.uint8))
    mask_writer(tmp_path / "masks" / "a.png")
    table = ClassTable.generic(5)
    ds = open_dataset(tmp_path, format="folder", class_table=table)
    return ds, ds[0]


def test_palette_png_keeps_source_palette_byte_for_byte(tmp_path):
    src = labels(1)
    odd_palette = bytes([10, 20, 30, 200, 0, 0, 0, 200, 0, 1, 2, 3, 250, 250, 5, 9, 9, 9])  # 6 entries

    def write(path):
        im = Image.fromarray(src, "P")
        im.putpalette(odd_palette)
        im.info["transparency"] = bytes([255, 128, 0])
        im.save(path, transparency=bytes([255, 128, 0]))

    ds, sample = folder_dataset(tmp_path, write)
    before = dict(chunks_of(sample.mask_path))
    gt = sample.load_mask()
    assert np.array_equal(gt, src)
    gt[5:20, 5:30] = 4
    result = save_ground_truth(ds, sample, gt)
    assert result.kind == "palette" and result.backup is None
    assert result.path == tmp_path / "corrected" / "masks" / "a.png"
    after = dict(chunks_of(result.path))
    assert after[b"PLTE"] == before[b"PLTE"] == odd_palette
    assert after[b"tRNS"] == before[b"tRNS"]
    with Image.open(result.path) as im:
        assert im.mode == "P"
        assert np.array_equal(np.array(im), gt)
    # the original is untouched
    with Image.open(sample.mask_path) as im:
        assert np.array_equal(np.array(im), src)


def test_palette_grows_only_when_an_id_is_beyond_it():
    blob = encode_palette_png(np.array([[0, 3]], np.uint8), bytes(range(6)))
    path_chunks = []
    pos = 8
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        path_chunks.append((blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + n]))
        pos += 12 + n
    plte = dict(path_chunks)[b"PLTE"]
    assert plte == bytes(range(6)) + bytes(6)
    assert np.array_equal(cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED).shape, (1, 2, 3))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_index_png_stays_index(tmp_path, dtype):
    src = labels(2)

    def write(path):
        cv2.imwrite(str(path), src.astype(dtype))

    ds, sample = folder_dataset(tmp_path, write)
    gt = sample.load_mask()
    gt[:10] = 2
    result = save_ground_truth(ds, sample, gt, out_dir=tmp_path / "out")
    assert result.kind == "index" and result.path == tmp_path / "out" / "masks" / "a.png"
    back = cv2.imread(str(result.path), cv2.IMREAD_UNCHANGED)
    assert back.ndim == 2 and np.array_equal(back, gt)
    assert dict(chunks_of(result.path))[b"IHDR"][9] == 0       # grayscale, no palette


def test_colour_mask_stays_colour(tmp_path):
    table = ClassTable.generic(5)
    src = labels(3)

    def write(path):
        rgb = table.colors[src][..., :3]
        cv2.imwrite(str(path), rgb[..., ::-1])

    ds, sample = folder_dataset(tmp_path, write)
    gt = sample.load_mask()
    gt[20:, :] = 1
    result = save_ground_truth(ds, sample, gt)
    assert result.kind == "colour"
    back = cv2.imread(str(result.path), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert np.array_equal(back, table.colors[gt][..., :3])


def test_cityscapes_labelids_written_back_as_labelids(tmp_path):
    root = tmp_path / "cs"
    img_dir = root / "leftImg8bit" / "val" / "city"
    gt_dir = root / "gtFine" / "val" / "city"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    cv2.imwrite(str(img_dir / "city_000000_000001_leftImg8bit.png"), np.zeros((*SHAPE, 3), np.uint8))
    raw = np.full(SHAPE, 7, np.uint8)          # road
    raw[:10] = 1                               # ego vehicle: void, no train id
    raw[10:20, :20] = 26                       # car
    raw[30:, 30:] = 4                          # static: void
    cv2.imwrite(str(gt_dir / "city_000000_000001_gtFine_labelIds.png"), raw)
    ds = open_dataset(root, format="cityscapes")
    sample = ds[0]
    gt = sample.load_mask()
    assert np.array_equal(gt, CITYSCAPES_LABEL_TO_TRAIN[raw])
    gt[20:25, :] = 11                          # person (labelId 24)
    gt[0:2, :5] = 0                            # paint road over part of the ego vehicle
    result = save_ground_truth(ds, sample, gt)
    assert result.kind == "labelIds"
    assert result.path.name == "city_000000_000001_gtFine_labelIds.png"
    assert result.path.parent == corrected_dir(ds) / "gtFine" / "val" / "city"
    out = cv2.imread(str(result.path), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(CITYSCAPES_LABEL_TO_TRAIN[out], gt)
    assert (out[20:25] == 24).all() and (out[0:2, :5] == 7).all()
    untouched = np.ones(SHAPE, bool)
    untouched[20:25] = False
    untouched[0:2, :5] = False
    assert np.array_equal(out[untouched], raw[untouched])     # void labels survive
    inv = train_to_label_lut()
    assert inv[0] == 7 and inv[13] == 26 and inv[255] == 0


def make_coco(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for name in ("x.png", "y.png"):
        cv2.imwrite(str(root / "images" / name), np.zeros((*SHAPE, 3), np.uint8))
    data = {
        "images": [{"id": 10, "file_name": "x.png", "height": SHAPE[0], "width": SHAPE[1]},
                   {"id": 11, "file_name": "y.png", "height": SHAPE[0], "width": SHAPE[1]}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 9, "name": "owl"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3, "iscrowd": 0, "area": 100, "bbox": [0, 0, 10, 10],
             "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
            {"id": 2, "image_id": 11, "category_id": 9, "iscrowd": 0, "area": 100, "bbox": [5, 5, 10, 10],
             "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]]},
        ],
    }
    (root / "annotations" / "instances_val.json").write_text(json.dumps(data))
    return root, data


def test_coco_rle_round_trip(tmp_path):
    root, original = make_coco(tmp_path)
    ds = open_dataset(root, format="coco")
    sample = ds[ds.index_of("x")]
    gt = sample.load_mask()
    gt[20:30, 20:40] = 2                        # dog (category 7)
    gt[0:5, 40:50] = 3                          # owl
    gt[35:, :] = 255                            # ignored -> crowd
    result = save_ground_truth(ds, sample, gt)
    assert result.kind == "coco" and result.path == root / "corrected" / "annotations" / "instances_val.json"
    data = json.loads(result.path.read_text())
    mine = [a for a in data["annotations"] if a["image_id"] == 10]
    other = [a for a in data["annotations"] if a["image_id"] == 11]
    assert other == original["annotations"][1:]          # the other image is untouched
    by_cat = {}
    for ann in mine:
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        decoded = mask_utils.decode(rle).astype(bool)
        assert ann["area"] == int(decoded.sum())
        by_cat[(ann["category_id"], ann["iscrowd"])] = decoded
    assert set(by_cat) == {(3, 0), (7, 0), (9, 0), (3, 1)}
    for (cat, crowd), decoded in by_cat.items():
        cls = 255 if crowd else {3: 1, 7: 2, 9: 3}[cat]
        assert np.array_equal(decoded, gt == cls)
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
    # and the dataset reader decodes the written file back to the same labels (placed where the
    # reader finds the images: file names are relative to the annotation folder's neighbours)
    beside = root / "annotations" / "corrected_val.json"
    beside.write_bytes(result.path.read_bytes())
    again = open_dataset(beside, format="coco")
    assert np.array_equal(again[again.index_of("x")].load_mask(), gt)


def test_overwrite_keeps_first_original_as_bak(tmp_path):
    src = labels(4)
    ds, sample = folder_dataset(tmp_path, lambda p: cv2.imwrite(str(p), src))
    original = sample.mask_path.read_bytes()
    gt = src.copy()
    gt[:5] = 1
    first = save_ground_truth(ds, sample, gt, overwrite=True)
    assert first.path == sample.mask_path and first.backup == sample.mask_path.with_name("a.png.bak")
    assert first.backup.read_bytes() == original
    gt[:5] = 2
    save_ground_truth(ds, sample, gt, overwrite=True)
    assert first.backup.read_bytes() == original            # still the very first version
    assert np.array_equal(cv2.imread(str(sample.mask_path), cv2.IMREAD_UNCHANGED), gt)
    with pytest.raises(ValueError):
        destination_for(ds, sample, out_dir=tmp_path)        # would land on the original


def test_interrupted_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    src = labels(5)
    ds, sample = folder_dataset(tmp_path, lambda p: cv2.imwrite(str(p), src))
    gt = src.copy()
    gt[:] = 3
    first = save_ground_truth(ds, sample, src)
    old_bytes = first.path.read_bytes()

    def fail(a, b):
        raise OSError("disk pulled")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk pulled"):
        save_ground_truth(ds, sample, gt)
    monkeypatch.undo()
    assert first.path.read_bytes() == old_bytes
    assert sorted(p.name for p in first.path.parent.iterdir()) == ["a.png"]


def test_new_mask_for_sample_without_ground_truth_uses_class_colours(tmp_path):
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "b.png"), np.zeros((*SHAPE, 3), np.uint8))
    table = ClassTable.generic(5)
    ds = open_dataset(tmp_path, format="folder", class_table=table)
    sample = ds[0]
    assert sample.mask_path is None
    gt = labels(6, ignore=255)
    result = save_ground_truth(ds, sample, gt)
    assert result.kind == "palette" and result.path == tmp_path / "corrected" / "b.png"
    plte = dict(chunks_of(result.path))[b"PLTE"]
    assert np.array_equal(np.frombuffer(plte, np.uint8).reshape(-1, 3)[:5], table.colors[:, :3])
    with Image.open(result.path) as im:
        assert np.array_equal(np.array(im), gt)
