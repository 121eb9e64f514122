import os
import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from segstudio.core.io.classes import CITYSCAPES_LABEL_TO_TRAIN, ClassInfo, ClassTable
from segstudio.core.errors import (
    ClassIdOutOfRange,
    MaskReadError,
    MaskSizeMismatch,
    UnknownColoursError,
)
from segstudio.core.io.masks import (
    InstanceMask,
    atomic_write_bytes,
    instances_to_semantic,
    read_instance_mask,
    read_palette,
    read_semantic_mask,
    semantic_to_instances,
    write_index_png,
    write_palette_png,
)

VOC = ClassTable.voc()


def save_gray(path, arr):
    Image.fromarray(arr).save(path)


def save_palette(path, arr, palette_rgb):
    im = Image.fromarray(arr.astype(np.uint8), "P")
    im.putpalette(np.asarray(palette_rgb, np.uint8).ravel().tolist())
    im.save(path)


def png_chunks(path):
    """(type, data) of every chunk, parsed by hand so tests do not trust the code under test."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def random_ids(shape, high, seed=0):
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(np.uint8)


# -- semantic: palette ----------------------------------------------------------------------------

def test_palette_round_trip_with_voc_border(tmp_path):
    mask = random_ids((13, 17), 21)
    mask[0, :] = 255  # VOC's ignore border
    path = tmp_path / "m.png"
    write_palette_png(path, mask, VOC)
    with Image.open(path) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), mask)
        pal = np.array(im.getpalette()[:768], np.uint8).reshape(-1, 3)
    assert tuple(pal[1]) == (128, 0, 0) and tuple(pal[15]) == (192, 128, 128)
    assert tuple(pal[255]) == (224, 224, 192)
    out = read_semantic_mask(path, VOC)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, mask)


def test_palette_mask_with_only_0_and_255_is_legitimate(tmp_path):
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 255
    path = tmp_path / "border_only.png"
    write_palette_png(path, mask, VOC)
    np.testing.assert_array_equal(read_semantic_mask(path, VOC), mask)


def test_exact_palette_is_preserved(tmp_path):
    custom = [(1, 2, 3), (250, 0, 7), (9, 99, 199), (40, 50, 60), (70, 80, 90)]
    src = tmp_path / "src.png"
    save_palette(src, random_ids((6, 5), 5, seed=2), custom)
    palette = read_palette(src)
    mask = read_semantic_mask(src)
    dst = tmp_path / "dst.png"
    write_palette_png(dst, mask, VOC, palette=palette)
    plte = lambda p: [d for t, d in png_chunks(p) if t == b"PLTE"][0]
    assert plte(dst) == plte(src)
    assert plte(dst)[:6] == bytes([1, 2, 3, 250, 0, 7])
    np.testing.assert_array_equal(read_semantic_mask(dst), mask)
    assert read_palette(tmp_path / "src.png") is not None
    gray = tmp_path / "gray.png"
    save_gray(gray, random_ids((3, 3), 5))
    assert read_palette(gray) is None


# -- semantic: index ------------------------------------------------------------------------------

def test_index_png_8bit_round_trip(tmp_path):
    mask = random_ids((20, 30), 21, seed=3)
    path = tmp_path / "idx.png"
    write_index_png(path, mask)
    with Image.open(path) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), mask)
    np.testing.assert_array_equal(read_semantic_mask(path, VOC), mask)


def test_index_png_16bit_round_trip(tmp_path):
    mask = np.random.default_rng(4).integers(0, 300, size=(9, 7)).astype(np.uint16)
    path = tmp_path / "idx16.png"
    write_index_png(path, mask)
    ihdr = [d for t, d in png_chunks(path) if t == b"IHDR"][0]
    assert ihdr[8] == 16 and ihdr[9] == 0  # bit depth 16, colour type gray
    out = read_semantic_mask(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, mask)
    table = ClassTable.generic(300)
    np.testing.assert_array_equal(read_semantic_mask(path, table), mask)


def test_16bit_mask_with_small_ids_returns_uint8_for_small_table(tmp_path):
    mask = random_ids((5, 5), 21).astype(np.uint16)
    path = tmp_path / "small16.png"
    write_index_png(path, mask)
    out = read_semantic_mask(path, VOC)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, mask)


def test_write_index_png_converts_other_int_types(tmp_path):
    path = tmp_path / "i64.png"
    write_index_png(path, np.array([[0, 3], [2, 1]], np.int64))
    with Image.open(path) as im:
        assert im.mode == "L"
    with pytest.raises(ValueError):
        write_index_png(path, np.array([[-1, 0]], np.int32))


def test_binary_gray_mask_refused_without_mapping(tmp_path):
    mask = np.zeros((6, 6), np.uint8)
    mask[2:4, 1:5] = 255
    path = tmp_path / "binary.png"
    save_gray(path, mask)
    with pytest.raises(MaskReadError) as info:
        read_semantic_mask(path, VOC)
    # The refusal names the CLI flag, with both readings, not a Python argument.
    assert str(path) in str(info.value) and "--binary-mapping 255:1" in str(info.value)
    assert "--binary-mapping 255:255" in str(info.value) and "binary_mapping=" not in str(info.value)
    out = read_semantic_mask(path, VOC, binary_mapping={0: 0, 255: 1})
    np.testing.assert_array_equal(out, (mask == 255).astype(np.uint8))
    kept = read_semantic_mask(path, VOC, binary_mapping={0: 0, 255: 255})
    np.testing.assert_array_equal(kept, mask)


def test_binary_mapping_must_cover_every_value(tmp_path):
    mask = np.array([[0, 128, 255, 255]], np.uint8)
    path = tmp_path / "aa.png"
    save_gray(path, mask)
    with pytest.raises(MaskReadError) as info:
        read_semantic_mask(path, VOC, binary_mapping={0: 0, 255: 1})
    assert str(path) in str(info.value) and "128 x1" in str(info.value)


def test_ids_out_of_range_listed_with_counts(tmp_path):
    mask = random_ids((10, 10), 21, seed=5)
    mask[0, :3] = 30
    mask[1, :2] = 40
    mask[2, 0] = 255  # ignore is fine
    path = tmp_path / "oor.png"
    save_gray(path, mask)
    with pytest.raises(ClassIdOutOfRange) as info:
        read_semantic_mask(path, VOC)
    message = str(info.value)
    assert str(path) in message and "30 x3" in message and "40 x2" in message
    assert "255" not in message.split(":")[-1].replace("ignore 255", "")


def test_16bit_ids_out_of_range_listed_exactly(tmp_path):
    mask = np.zeros((4, 5), np.uint16)
    mask[0, 0] = 299  # the last class: fine
    mask[1, :2] = 300
    mask[2, :3] = 65534
    mask[3, 0] = 65535  # the ignore index of a >255-class table
    path = tmp_path / "oor16.png"
    write_index_png(path, mask)
    with pytest.raises(ClassIdOutOfRange) as info:
        read_semantic_mask(path, ClassTable.generic(300))
    assert str(path) in str(info.value)
    assert str(info.value).endswith(": 300 x2, 65534 x3")


def test_size_mismatch_checked_from_header(tmp_path):
    path = tmp_path / "m.png"
    write_index_png(path, np.zeros((4, 6), np.uint8))
    assert read_semantic_mask(path, VOC, expected_shape=(4, 6, 3)).shape == (4, 6)
    with pytest.raises(MaskSizeMismatch) as info:
        read_semantic_mask(path, VOC, expected_shape=(6, 4))
    assert str(path) in str(info.value) and "6 x 4" in str(info.value)


def test_cityscapes_label_ids_remapped(tmp_path):
    label_ids = np.array([[7, 26, 0], [33, 24, 1]], np.uint8)
    path = tmp_path / "x_gtFine_labelIds.png"
    save_gray(path, label_ids)
    out = read_semantic_mask(path, ClassTable.cityscapes(), label_map=CITYSCAPES_LABEL_TO_TRAIN)
    np.testing.assert_array_equal(out, [[0, 13, 255], [18, 11, 255]])


# -- semantic: colour -----------------------------------------------------------------------------

def test_colour_mask_maps_through_table(tmp_path):
    ids = random_ids((8, 9), 21, seed=6)
    ids[0, 0] = 255
    colours = np.vstack([VOC.colors[:, :3], np.zeros((235, 3), np.uint8)])
    colours[255] = (224, 224, 192)
    path = tmp_path / "colour.png"
    Image.fromarray(colours[ids]).save(path)
    out = read_semantic_mask(path, VOC)
    np.testing.assert_array_equal(out, ids)


def test_colour_mask_unknown_colours_listed_with_counts(tmp_path):
    rgb = np.zeros((5, 5, 3), np.uint8)
    rgb[0, :3] = (1, 2, 3)
    rgb[1, :] = (9, 9, 9)
    rgb[2, 2] = (128, 0, 0)  # a VOC colour, known
    path = tmp_path / "unknown.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(UnknownColoursError) as info:
        read_semantic_mask(path, VOC)
    err = info.value
    assert err.colours == [((9, 9, 9, 255), 5), ((1, 2, 3, 255), 3)]
    assert str(path) in str(err) and "(9, 9, 9, 255) x5" in str(err)


def test_rgba_colour_mask_transparent_is_ignore(tmp_path):
    table = ClassTable([ClassInfo(0, "bg", (0, 0, 0, 255)), ClassInfo(1, "fg", (255, 0, 0, 128))])
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 1] = (255, 0, 0, 255)
    rgba[2, 3] = (50, 60, 70, 0)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    expected = np.zeros((3, 4), np.uint8)
    expected[0, 1] = 1
    expected[2, 3] = 255
    np.testing.assert_array_equal(read_semantic_mask(path, table), expected)


def test_colour_mask_errors(tmp_path):
    path = tmp_path / "c.png"
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(path)
    with pytest.raises(MaskReadError) as info:
        read_semantic_mask(path)
    assert str(path) in str(info.value) and "class table" in str(info.value)
    with pytest.raises(MaskReadError) as info:
        read_semantic_mask(path, VOC, label_map=CITYSCAPES_LABEL_TO_TRAIN)
    assert str(path) in str(info.value)
    path16 = tmp_path / "c16.png"
    ok, buf = cv2.imencode(".png", np.zeros((2, 2, 3), np.uint16))
    path16.write_bytes(buf.tobytes())
    with pytest.raises(MaskReadError) as info:
        read_semantic_mask(path16, VOC)
    assert str(path16) in str(info.value) and "8 bits" in str(info.value)


# -- bad files ------------------------------------------------------------------------------------

def test_jpeg_mask_refused(tmp_path):
    path = tmp_path / "m.jpg"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    with pytest.raises(MaskReadError) as info:
        read_semantic_mask(path, VOC)
    assert str(path) in str(info.value) and "JPEG" in str(info.value)


@pytest.mark.parametrize("kind", ["empty", "garbage", "truncated", "missing"])
def test_bad_mask_files(tmp_path, kind):
    path = tmp_path / f"{kind}.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(64) + b"not a png")
    elif kind == "truncated":
        write_index_png(path, random_ids((64, 64), 21, seed=7))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MaskReadError) as info:
        read_semantic_mask(path, VOC)
    assert str(path) in str(info.value)
    with pytest.raises(MaskReadError):
        read_instance_mask(path)


def test_non_ascii_mask_path(tmp_path):
    folder = tmp_path / "masques_标注"
    folder.mkdir()
    path = folder / "máscara.png"
    mask = random_ids((5, 4), 21, seed=8)
    write_index_png(path, mask)
    np.testing.assert_array_equal(read_semantic_mask(path, VOC), mask)
    write_palette_png(path, mask, VOC)
    np.testing.assert_array_equal(read_semantic_mask(path, VOC), mask)


# -- instances ------------------------------------------------------------------------------------

def test_voc_instance_mask_with_class_mask(tmp_path):
    obj = np.zeros((6, 8), np.uint8)
    obj[1:3, 1:4] = 1
    obj[4:6, 5:8] = 2
    obj[0, :] = 255  # boundary
    cls = np.zeros_like(obj)
    cls[obj == 1] = 15  # person
    cls[obj == 2] = 7   # car
    cls[1, 1] = 255     # a boundary pixel inside the object must not vote
    cls[0, :] = 255
    obj_path, cls_path = tmp_path / "obj.png", tmp_path / "cls.png"
    write_palette_png(obj_path, obj, VOC)
    write_palette_png(cls_path, cls, VOC)
    inst = read_instance_mask(obj_path, cls_path)
    assert inst.ids.dtype == np.int32
    np.testing.assert_array_equal(inst.ids, np.where(obj == 255, 0, obj))
    assert inst.classes == {1: 15, 2: 7}
    assert inst.num_instances == 2
    no_classes = read_instance_mask(obj_path, default_class=3)
    assert no_classes.classes == {1: 3, 2: 3}


def test_cityscapes_instance_ids(tmp_path):
    raw = np.array([[26001, 26001, 26002, 7],
                    [24000, 24000, 29000, 0],
                    [26002, 0, 0, 26]], np.uint16)
    path = tmp_path / "a_gtFine_instanceIds.png"
    write_index_png(path, raw)
    inst = read_instance_mask(path)
    assert inst.classes == {1: 24, 2: 26, 3: 26, 4: 29}
    expected = np.array([[2, 2, 3, 0], [1, 1, 4, 0], [3, 0, 0, 0]], np.int32)
    np.testing.assert_array_equal(inst.ids, expected)
    train = read_instance_mask(path, label_map=CITYSCAPES_LABEL_TO_TRAIN)
    assert train.classes == {1: 11, 2: 13, 3: 13}  # caravan (29) is ignored in training
    assert int((train.ids > 0).sum()) == 6
    sem = instances_to_semantic(train, background=255)
    np.testing.assert_array_equal(sem, [[13, 13, 13, 255], [11, 11, 255, 255], [13, 255, 255, 255]])


def test_16bit_instance_ids_generic(tmp_path):
    raw = np.zeros((4, 4), np.uint16)
    raw[0, 0] = 1000
    raw[3, 3] = 2
    path = tmp_path / "inst.png"
    write_index_png(path, raw)
    inst = read_instance_mask(path)
    assert inst.classes == {2: 1, 1000: 1}
    np.testing.assert_array_equal(inst.ids, raw.astype(np.int32))
    with pytest.raises(MaskSizeMismatch) as info:
        read_instance_mask(path, np.zeros((3, 3), np.uint8))
    assert str(path) in str(info.value)


HAND_MASK = np.array([
    [0, 1, 1, 0, 0, 2, 2],
    [0, 1, 0, 0, 0, 2, 0],
    [0, 0, 1, 0, 255, 255, 0],
    [3, 0, 0, 0, 0, 0, 1],
    [3, 3, 0, 1, 1, 0, 1],
], np.uint8)


def test_semantic_to_instances_counts_components():
    inst8 = semantic_to_instances(HAND_MASK)
    # class 1: the top blob plus its diagonal neighbour at (2,2) join under 8-connectivity,
    # (3,6)+(4,6) is one blob and (4,3)+(4,4) another; class 2 one blob; class 3 one blob.
    assert sorted(inst8.classes.values()) == [1, 1, 1, 2, 3]
    sizes = {i: int((inst8.ids == i).sum()) for i in inst8.classes}
    by_class = sorted((inst8.classes[i], sizes[i]) for i in sizes)
    assert by_class == [(1, 2), (1, 2), (1, 4), (2, 3), (3, 3)]
    inst4 = semantic_to_instances(HAND_MASK, connectivity=4)
    assert sorted(inst4.classes.values()) == [1, 1, 1, 1, 2, 3]
    # ignore and background never belong to an instance
    assert (inst8.ids[HAND_MASK == 255] == 0).all() and (inst8.ids[HAND_MASK == 0] == 0).all()
    # every instance is a single class
    for i, c in inst8.classes.items():
        assert (HAND_MASK[inst8.ids == i] == c).all()
    # background as instances: (1,6)-(2,6) touches the rest only diagonally
    assert list(semantic_to_instances(HAND_MASK, background=None).classes.values()).count(0) == 1
    bg4 = semantic_to_instances(HAND_MASK, background=None, connectivity=4)
    assert list(bg4.classes.values()).count(0) == 2


def test_instances_to_semantic_round_trip():
    inst = semantic_to_instances(HAND_MASK)
    back = instances_to_semantic(inst, shape=HAND_MASK.shape)
    np.testing.assert_array_equal(back, np.where(HAND_MASK == 255, 0, HAND_MASK))
    with pytest.raises(ValueError):
        instances_to_semantic(InstanceMask(np.ones((2, 2), np.int32), {}))
    with pytest.raises(ValueError):
        instances_to_semantic(inst, shape=(3, 3))
    wide = instances_to_semantic(InstanceMask(np.ones((1, 2), np.int32), {1: 300}))
    assert wide.dtype == np.uint16 and wide.tolist() == [[300, 300]]


# -- atomic writes --------------------------------------------------------------------------------

def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"new content"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "no_such_dir" / "f.bin", b"x")


def test_atomic_write_cleans_leftovers_of_an_interrupted_save_of_that_file(tmp_path):
    # A kill between mkstemp and os.replace leaves the hidden temporary file behind.
    path = tmp_path / "a.png"
    leftovers = [tmp_path / ".a.png.k3j_9x2q.tmp", tmp_path / ".a.png.00000000.tmp"]
    others = [tmp_path / ".b.png.k3j_9x2q.tmp", tmp_path / ".a.png.notes.txt", tmp_path / "a.png.x.tmp"]
    for p in leftovers + others:
        p.write_bytes(b"half")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.png"] + [p.name for p in others])


@pytest.mark.parametrize("folder", ["missing", "a_file"])
def test_atomic_write_failure_names_the_destination_not_the_temporary_file(tmp_path, folder):
    (tmp_path / "a_file").write_bytes(b"")
    target = tmp_path / folder / "report.json"
    with pytest.raises(OSError) as err:
        atomic_write_bytes(target, b"{}")
    assert err.value.filename == str(target) and ".tmp" not in str(err.value)
