"""Datasets: each layout on fixtures written here with OpenCV / Pillow / pycocotools, checked pixel by
pixel against arrays the tests build themselves."""
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from segstudio.core.io.classes import ClassTable, voc_colormap
from segstudio.core.io.datasets import Dataset, Sample, detect_format, open_dataset
from segstudio.core.errors import DatasetError, MaskSizeMismatch, UnknownColoursError

RNG = np.random.default_rng(7)

# pycocotools' decode trips a NumPy 2 copy-keyword deprecation inside its own code; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# --------------------------------------------------------------------------- writers (independent)
def write_rgb(path, h, w, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = RNG.integers(0, 255, (h, w, 3), dtype=np.uint8) if value is None else \
        np.full((h, w, 3), value, np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def write_index(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask)
    return path


def write_palette(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette(voc_colormap(256).ravel().tolist())
    im.save(path)
    return path


def write_colour(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(path)
    return path


def random_ids(h, w, high, ignore_border=False):
    mask = RNG.integers(0, high, (h, w), dtype=np.uint8)
    if ignore_border:
        mask[0, :] = 255
        mask[:, -1] = 255
    return mask


# --------------------------------------------------------------------------- folder
def make_folder(root):
    masks = {}
    for name in ("img10", "img2", "img1"):
        write_rgb(root / "images" / f"{name}.png", 12, 16)
    write_rgb(root / "images" / "photo.jpg", 12, 16)
    for name in ("img10", "img2", "img1"):
        masks[name] = random_ids(12, 16, 3, ignore_border=True)
        write_index(root / "masks" / f"{name}.png", masks[name])
    table = ClassTable.generic(3).to_json()
    table["classes"][2]["name"] = "tumour"
    (root / "classes.json").write_text(json.dumps(table))
    return masks


def test_folder_pairs_by_stem_with_classes_json_and_natural_order(tmp_path):
    masks = make_folder(tmp_path)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, Dataset) and ds.format == "folder" and ds.root == tmp_path
    assert [s.name for s in ds] == ["img1", "img2", "img10", "photo"]
    assert ds.class_table.names == ["class 0", "class 1", "tumour"]
    assert ds.index_of("img10") == 2
    with pytest.raises(KeyError):
        ds.index_of("nope")
    for name, expected in masks.items():
        sample = ds[ds.index_of(name)]
        assert sample.mask_path == tmp_path / "masks" / f"{name}.png"
        got = sample.load_mask()
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)
    photo = ds[3]
    assert photo.mask_path is None and photo.load_mask() is None and photo.load_instances() is None
    assert photo.load_image().shape == (12, 16, 3)
    assert ds.has_ground_truth


@pytest.mark.parametrize("mask_dir", ["labels", "gt", "annotations"])
def test_folder_accepts_other_mask_folder_names_and_class_names_txt(tmp_path, mask_dir):
    write_rgb(tmp_path / "images" / "a.jpg", 8, 9)
    mask = random_ids(8, 9, 3)
    write_index(tmp_path / mask_dir / "a.png", mask)
    (tmp_path / "class_names.txt").write_text("__ignore__\n_background_\ncat\ndog\n")
    ds = open_dataset(tmp_path)
    assert ds.format == "folder" and ds.class_table.names == ["background", "cat", "dog"]
    np.testing.assert_array_equal(ds[0].load_mask(), mask)


def test_folder_with_explicit_image_and_mask_folders(tmp_path):
    write_rgb(tmp_path / "pics" / "x.png", 5, 6)
    write_rgb(tmp_path / "pics" / "y.png", 5, 6)
    mask = random_ids(5, 6, 21)
    write_palette(tmp_path / "segs" / "x.png", mask)
    write_index(tmp_path / "segs" / "orphan.png", mask)
    ds = open_dataset(tmp_path / "pics", masks=tmp_path / "segs")
    assert [s.name for s in ds] == ["x", "y"]
    assert ds.class_table == ClassTable.voc()
    np.testing.assert_array_equal(ds[0].load_mask(), mask)
    assert ds[1].mask_path is None
    assert len(ds.warnings) == 1 and "orphan.png" in ds.warnings[0]


def test_folder_instances_take_majority_semantic_class(tmp_path):
    write_rgb(tmp_path / "images" / "a.png", 10, 10)
    semantic = np.zeros((10, 10), np.uint8)
    instances = np.zeros((10, 10), np.uint16)
    instances[1:5, 1:5] = 300            # 16 px: 12 of class 2, 4 of class 1
    semantic[1:5, 1:5] = 2
    semantic[1, 1:5] = 1
    instances[6:9, 6:9] = 7              # class 1 throughout
    semantic[6:9, 6:9] = 1
    instances[0, 9] = 9                  # lies on ignore only: its class is the ignore index
    semantic[0, 9] = 255
    write_index(tmp_path / "masks" / "a.png", semantic)
    write_index(tmp_path / "instances" / "a.png", instances)
    inst = open_dataset(tmp_path, class_table=ClassTable.generic(3))[0].load_instances()
    assert inst.classes == {300: 2, 7: 1, 9: 255}
    assert inst.ids.dtype == np.int32
    np.testing.assert_array_equal(inst.ids, instances.astype(np.int32))


def test_folder_split_subfolders(tmp_path):
    write_rgb(tmp_path / "images" / "train" / "a.png", 4, 4)
    write_rgb(tmp_path / "images" / "val" / "b.png", 4, 4)
    mask = random_ids(4, 4, 2)
    write_index(tmp_path / "masks" / "val" / "b.png", mask)
    ds = open_dataset(tmp_path, split="val")
    assert [s.name for s in ds] == ["b"] and ds.split == "val"
    np.testing.assert_array_equal(ds[0].load_mask(), mask)
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path, split="test")
    assert "test" in str(err.value) and "train, val" in str(err.value)


def test_mask_of_wrong_size_names_the_mask(tmp_path):
    write_rgb(tmp_path / "images" / "a.png", 10, 12)
    write_index(tmp_path / "masks" / "a.png", np.zeros((10, 11), np.uint8))
    with pytest.raises(MaskSizeMismatch) as err:
        open_dataset(tmp_path)[0].load_mask()
    assert "a.png" in str(err.value) and str(tmp_path / "masks") in str(err.value)


def test_duplicate_image_stems_are_refused(tmp_path):
    write_rgb(tmp_path / "images" / "a.png", 4, 4)
    write_rgb(tmp_path / "images" / "a.jpg", 4, 4)
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path)
    assert "a.jpg" in str(err.value) and "a.png" in str(err.value)


def test_listing_never_decodes(tmp_path, monkeypatch):
    """Listing 10,000 images touches names only (its speed is measured in bench/metrics_bench.py)."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(10_000):
        (images / f"im{i:05d}.jpg").touch()
        (masks / f"im{i:05d}.png").touch()

    def refuse(*args, **kwargs):
        raise AssertionError("listing decoded a file")

    monkeypatch.setattr(cv2, "imread", refuse)
    monkeypatch.setattr(cv2, "imdecode", refuse)
    monkeypatch.setattr(Image, "open", refuse)
    ds = open_dataset(tmp_path)
    assert len(ds) == 10_000 and ds[9_999].mask_path == masks / "im09999.png"


# --------------------------------------------------------------------------- VOC
def make_voc(base):
    root = base / "VOCdevkit" / "VOC2012"
    masks, objects = {}, {}
    for name in ("2007_000001", "2007_000002", "2008_000003", "2009_000004"):
        write_rgb(root / "JPEGImages" / f"{name}.jpg", 14, 18)
    for name in ("2007_000001", "2007_000002", "2008_000003"):
        m = np.zeros((14, 18), np.uint8)
        m[2:8, 3:9] = 15
        m[9:13, 10:16] = 7
        m[2:8, 2] = 255
        m[RNG.integers(0, 14), RNG.integers(0, 18)] = 1
        masks[name] = m
        write_palette(root / "SegmentationClass" / f"{name}.png", m)
        o = np.zeros((14, 18), np.uint8)
        o[2:8, 3:9] = 1
        o[9:13, 10:16] = 2
        o[2:8, 2] = 255
        objects[name] = o
        write_palette(root / "SegmentationObject" / f"{name}.png", o)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000002\n2007_000001\n")
    (sets / "val.txt").write_text("2008_000003\n")
    return root, masks, objects


def test_voc_nested_layout_split_and_palette_masks(tmp_path):
    root, masks, _ = make_voc(tmp_path)
    assert detect_format(tmp_path) == "voc"
    ds = open_dataset(tmp_path, split="train")
    assert ds.format == "voc" and ds.root == root
    assert [s.name for s in ds] == ["2007_000002", "2007_000001"]  # the split file's order
    assert ds.class_table == ClassTable.voc()
    for sample in ds:
        np.testing.assert_array_equal(sample.load_mask(), masks[sample.name])
    everything = open_dataset(root)
    assert [s.name for s in everything] == ["2007_000001", "2007_000002", "2008_000003"]


def test_voc_instances_from_segmentation_object(tmp_path):
    root, masks, objects = make_voc(tmp_path)
    inst = open_dataset(root, split="val")[0].load_instances()
    assert inst.classes == {1: 15, 2: 7}
    expected = objects["2008_000003"].astype(np.int32)
    expected[expected == 255] = 0
    np.testing.assert_array_equal(inst.ids, expected)


def test_voc_unknown_split_names_the_split_file(tmp_path):
    root, _, _ = make_voc(tmp_path)
    with pytest.raises(DatasetError) as err:
        open_dataset(root, split="trainval")
    assert str(root / "ImageSets" / "Segmentation" / "trainval.txt") in str(err.value)
    assert "train, val" in str(err.value)


def test_voc_class_names_txt_overrides_default(tmp_path):
    root, _, _ = make_voc(tmp_path)
    (root / "class_names.txt").write_text("_background_\nthing\n")
    assert open_dataset(root).class_table.names == ["background", "thing"]


# --------------------------------------------------------------------------- COCO
def uncompressed_rle(mask):
    """Column-major run lengths starting with zeros: COCO's uncompressed RLE, written plainly."""
    flat = mask.astype(np.uint8).ravel(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def make_coco(root, h=40, w=50):
    write_rgb(root / "images" / "first.jpg", h, w)
    write_rgb(root / "images" / "second.png", h, w)
    polygon = [12.0, 8.0, 40.0, 10.0, 30.0, 33.0, 8.0, 25.0]
    blob = np.zeros((h, w), np.uint8)
    blob[5:20, 30:45] = 1
    blob[18:22, 20:25] = 1
    compressed = coco_mask.encode(np.asfortranarray(blob))
    compressed["counts"] = compressed["counts"].decode("ascii")
    square = np.zeros((h, w), np.uint8)
    square[25:35, 5:15] = 1
    crowd = np.zeros((h, w), np.uint8)
    crowd[0:10, 0:10] = 1
    crowd[25:30, 5:10] = 1  # overlaps the square: the square wins
    data = {
        "images": [{"id": 1, "file_name": "first.jpg", "width": w, "height": h},
                   {"id": 7, "file_name": "second.png", "width": w, "height": h}],
        "categories": [{"id": 5, "name": "dog"}, {"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [polygon], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 5, "segmentation": compressed, "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 5, "segmentation": uncompressed_rle(square),
             "iscrowd": 0},
            {"id": 4, "image_id": 7, "category_id": 1, "segmentation": uncompressed_rle(crowd),
             "iscrowd": 1},
        ],
    }
    (root / "annotations").mkdir(parents=True)
    path = root / "annotations" / "instances_val.json"
    path.write_text(json.dumps(data))
    return path, polygon, blob.astype(bool), square.astype(bool), crowd.astype(bool)


def test_coco_categories_become_a_contiguous_table(tmp_path):
    path, *_ = make_coco(tmp_path)
    assert detect_format(tmp_path) == "coco" and detect_format(path) == "coco"
    ds = open_dataset(path)
    assert ds.format == "coco"
    assert ds.class_table.names == ["background", "dog", "cat"]
    assert [s.name for s in ds] == ["first", "second"]
    assert ds[0].image_path == tmp_path / "images" / "first.jpg"
    assert ds[0].load_image().shape == (40, 50, 3)
    assert [s.name for s in open_dataset(tmp_path)] == ["first", "second"]


def test_coco_polygon_and_compressed_rle_decode(tmp_path):
    path, polygon, blob, _, _ = make_coco(tmp_path)
    sample = open_dataset(path)[0]
    inst = sample.load_instances()
    assert inst.classes == {1: 2, 2: 1}  # cat -> 2, dog -> 1
    np.testing.assert_array_equal(inst.ids == 2, blob)
    # pycocotools and OpenCV rasterise polygon edges differently; they must agree off the outline.
    drawn = np.zeros((40, 50), np.uint8)
    points = np.array(polygon).reshape(-1, 2).round().astype(np.int32)
    cv2.fillPoly(drawn, [points], 1)
    outline = np.zeros_like(drawn)
    cv2.polylines(outline, [points], True, 1)
    near_outline = cv2.dilate(outline, np.ones((3, 3), np.uint8)).astype(bool)
    decoded = (inst.ids == 1) | ((inst.ids == 2) & drawn.astype(bool))  # blob painted over it
    disagree = decoded ^ drawn.astype(bool)
    assert not (disagree & ~near_outline).any()
    assert drawn.sum() > 400 and disagree.sum() < 0.15 * drawn.sum()
    semantic = sample.load_mask()
    np.testing.assert_array_equal(semantic, np.choose(inst.ids, [0, 2, 1]).astype(np.uint8))


def test_coco_uncompressed_rle_and_crowd_is_ignored(tmp_path):
    path, _, _, square, crowd = make_coco(tmp_path)
    sample = open_dataset(path)[1]
    inst = sample.load_instances()
    assert inst.classes == {1: 1}
    np.testing.assert_array_equal(inst.ids == 1, square)
    expected = np.zeros((40, 50), np.uint8)
    expected[crowd] = 255
    expected[square] = 1
    np.testing.assert_array_equal(sample.load_mask(), expected)


def test_coco_image_size_disagreeing_with_json(tmp_path):
    path, *_ = make_coco(tmp_path)
    write_rgb(tmp_path / "images" / "first.jpg", 41, 50)
    with pytest.raises(MaskSizeMismatch) as err:
        open_dataset(path)[0].load_mask()
    assert str(path) in str(err.value) and "first.jpg" in str(err.value)


def test_coco_with_a_class_table_maps_by_name(tmp_path):
    path, *_ = make_coco(tmp_path)
    table = ClassTable.from_json({"classes": ["background", "cat", "bird", "dog"]})
    ds = open_dataset(path, class_table=table)
    assert ds[0].load_instances().classes == {1: 1, 2: 3}


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ("[]", "top level"),
    ('{"images": [], "annotations": []}', "'categories'"),
    ('{"images": [{"id": 1, "width": 5, "height": 5}], "categories": []}', "'file_name'"),
    ('{"images": [], "categories": [], "annotations": [{"image_id": 3, "category_id": 1, '
     '"segmentation": []}]}', "image_id 3"),
])
def test_broken_coco_json_names_the_file(tmp_path, content, words):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(DatasetError) as err:
        open_dataset(path)
    assert str(path) in str(err.value) and words in str(err.value)


# --------------------------------------------------------------------------- Cityscapes
# The labelId -> trainId pairs the test relies on, from cityscapesscripts' labels.py.
ROAD, CAR, PERSON, BICYCLE, UNLABELED, DYNAMIC = 7, 26, 24, 33, 0, 5
TRAIN = {ROAD: 0, CAR: 13, PERSON: 11, BICYCLE: 18, UNLABELED: 255, DYNAMIC: 255}


def make_cityscapes(root):
    label_ids = np.array([[ROAD, ROAD, CAR, CAR], [PERSON, BICYCLE, UNLABELED, DYNAMIC],
                          [ROAD, CAR, CAR, ROAD]], np.uint8)
    city = "frankfurt"
    write_rgb(root / "leftImg8bit" / "val" / city / f"{city}_000000_000294_leftImg8bit.png", 3, 4)
    write_rgb(root / "leftImg8bit" / "val" / city / f"{city}_000001_000019_leftImg8bit.png", 3, 4)
    write_rgb(root / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png", 3, 4)
    gt = root / "gtFine" / "val" / city
    write_index(gt / f"{city}_000000_000294_gtFine_labelIds.png", label_ids)
    instance_ids = np.array([[ROAD, ROAD, 26001, 26001], [24000, 33, 0, 5],
                             [ROAD, 26002, 26002, ROAD]], np.uint16)
    write_index(gt / f"{city}_000000_000294_gtFine_instanceIds.png", instance_ids)
    colours = np.array([[(128, 64, 128), (0, 0, 142)], [(111, 74, 0), (0, 0, 0)]], np.uint8)
    write_colour(gt / f"{city}_000001_000019_gtFine_color.png",
                 np.repeat(np.repeat(colours, 2, axis=1), 2, axis=0)[:3])
    return label_ids, instance_ids


def test_cityscapes_names_and_label_ids_remapped(tmp_path):
    label_ids, _ = make_cityscapes(tmp_path)
    assert detect_format(tmp_path) == "cityscapes"
    ds = open_dataset(tmp_path, split="val")
    assert ds.format == "cityscapes" and ds.class_table == ClassTable.cityscapes()
    assert [s.name for s in ds] == ["frankfurt_000000_000294", "frankfurt_000001_000019"]
    expected = np.vectorize(TRAIN.get)(label_ids).astype(np.uint8)
    np.testing.assert_array_equal(ds[0].load_mask(), expected)
    assert [s.name for s in open_dataset(tmp_path / "leftImg8bit")] == [
        "aachen_000000_000019", "frankfurt_000000_000294", "frankfurt_000001_000019"]


def test_cityscapes_colour_mask_decoded_through_the_table(tmp_path):
    make_cityscapes(tmp_path)
    sample = open_dataset(tmp_path, split="val")[1]
    assert sample.mask_path.name.endswith("_gtFine_color.png")
    expected = np.array([[0, 0, 13, 13], [0, 0, 13, 13], [255, 255, 255, 255]], np.uint8)
    np.testing.assert_array_equal(sample.load_mask(), expected)


def test_cityscapes_unknown_colour_is_reported(tmp_path):
    make_cityscapes(tmp_path)
    bad = np.zeros((3, 4, 3), np.uint8)
    bad[0, 0] = (1, 2, 3)
    sample = open_dataset(tmp_path, split="val")[1]
    write_colour(sample.mask_path, bad)
    with pytest.raises(UnknownColoursError) as err:
        sample.load_mask()
    assert err.value.colours == [((1, 2, 3, 255), 1)]
    assert sample.mask_path.name in str(err.value)


def test_cityscapes_instance_ids(tmp_path):
    _, instance_ids = make_cityscapes(tmp_path)
    inst = open_dataset(tmp_path, split="val")[0].load_instances()
    # Renumbered 1..N in order of the stored values 24000, 26001, 26002.
    assert inst.classes == {1: 11, 2: 13, 3: 13}
    renumber = {24000: 1, 26001: 2, 26002: 3}
    expected = np.vectorize(lambda v: renumber.get(int(v), 0))(instance_ids).astype(np.int32)
    np.testing.assert_array_equal(inst.ids, expected)


def test_cityscapes_unknown_split(tmp_path):
    make_cityscapes(tmp_path)
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path, split="test")
    assert str(tmp_path / "leftImg8bit" / "test") in str(err.value)


# --------------------------------------------------------------------------- single image, detection
def test_single_image_is_a_dataset_without_ground_truth(tmp_path):
    path = write_rgb(tmp_path / "photo.png", 6, 7)
    assert detect_format(path) == "image"
    ds = open_dataset(path)
    assert ds.format == "image" and len(ds) == 1 and not ds.has_ground_truth
    sample = ds[0]
    assert isinstance(sample, Sample) and sample.name == "photo"
    assert sample.load_mask() is None and sample.load_image().shape == (6, 7, 3)


def test_flat_folder_of_images(tmp_path):
    write_rgb(tmp_path / "b.png", 3, 3)
    write_rgb(tmp_path / "a.jpg", 3, 3)
    ds = open_dataset(tmp_path)
    assert ds.format == "folder" and [s.name for s in ds] == ["a", "b"]


@pytest.mark.parametrize("setup, words", [
    (lambda p: p / "missing", "no such file or folder"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "empty"),
    (lambda p: (p / "odd").mkdir() or (p / "odd" / "readme.txt").write_text("x") and p / "odd",
     "unknown dataset layout"),
    (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "not a dataset"),
])
def test_unusable_paths_raise_dataset_error_naming_them(tmp_path, setup, words):
    path = setup(tmp_path)
    with pytest.raises(DatasetError) as err:
        open_dataset(path)
    assert str(err.value).startswith(str(path)) and words in str(err.value)


def test_explicit_format_on_missing_path(tmp_path):
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path / "nowhere", format="voc")
    assert str(tmp_path / "nowhere") in str(err.value)


@pytest.mark.parametrize("layout", ["folder", "voc"])
def test_a_self_referencing_symlink_is_skipped_and_named_not_fatal(tmp_path, layout):
    # One looping link used to refuse the whole dataset ("cannot list the folder").
    images, masks = (("images", "masks") if layout == "folder" else ("JPEGImages", "SegmentationClass"))
    suffix = ".png" if layout == "folder" else ".jpg"
    (tmp_path / images).mkdir()
    (tmp_path / masks).mkdir()
    assert cv2.imwrite(str(tmp_path / images / f"a{suffix}"), np.full((4, 5, 3), 9, np.uint8))
    assert cv2.imwrite(str(tmp_path / masks / "a.png"), np.zeros((4, 5), np.uint8))
    for folder, name in [(images, f"loop{suffix}"), (masks, "loop2.png")]:
        os.symlink(name, tmp_path / folder / name)
    dataset = open_dataset(tmp_path)
    assert [s.name for s in dataset] == ["a"] and dataset[0].load_mask().shape == (4, 5)
    assert len(dataset.warnings) == 1, dataset.warnings
    assert f"loop{suffix}" in dataset.warnings[0] and "loop2.png" in dataset.warnings[0]


def test_cityscapes_without_gtfine_is_refused_unless_only_the_test_split(tmp_path):
    # Passed silently before: every image without ground truth, evaluate scoring nothing.
    import shutil

    make_cityscapes(tmp_path)
    shutil.rmtree(tmp_path / "gtFine")
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path)
    assert err.value.path == str(tmp_path / "gtFine") and "test split" in err.value.reason
    write_rgb(tmp_path / "leftImg8bit" / "test" / "berlin" / "berlin_000000_000019_leftImg8bit.png", 3, 4)
    test_only = open_dataset(tmp_path, split="test")  # Cityscapes publishes no test labels
    assert [s.name for s in test_only] == ["berlin_000000_000019"] and test_only[0].mask_path is None
