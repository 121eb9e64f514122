import json

import numpy as np
import pytest

from segstudio.core.io.classes import (
    CITYSCAPES_LABEL_TO_TRAIN,
    COCO_CATEGORY_IDS,
    COCO_CATEGORY_TO_CONTIGUOUS,
    ClassInfo,
    ClassTable,
    voc_colormap,
)
from segstudio.core.errors import ClassTableError


def reference_voc_colormap(n):
    """The loop from the VOC devkit's VOClabelcolormap.m, written out plainly."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return np.array(out, dtype=np.uint8)


def test_voc_colormap_matches_devkit_loop_and_known_entries():
    cmap = voc_colormap(256)
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    np.testing.assert_array_equal(cmap, reference_voc_colormap(256))
    assert tuple(cmap[1]) == (128, 0, 0)
    assert tuple(cmap[15]) == (192, 128, 128)  # person
    assert tuple(cmap[255]) == (224, 224, 192)  # the VOC boundary colour


def test_voc_table():
    t = ClassTable.voc()
    assert t.num_classes == 21 and len(t) == 21
    assert t.names[0] == "background" and t.names[15] == "person" and t.names[20] == "tvmonitor"
    assert t.ignore_index == 255
    np.testing.assert_array_equal(t.colors[:, :3], reference_voc_colormap(21))
    assert (t.colors[:, 3] == 255).all()
    assert t.index_of("cat") == 8


def test_cityscapes_table_and_label_map():
    t = ClassTable.cityscapes()
    assert t.num_classes == 19
    assert t.names[0] == "road" and t.names[13] == "car" and t.names[18] == "bicycle"
    assert tuple(t.colors[0]) == (128, 64, 128, 255)
    assert tuple(t.colors[13]) == (0, 0, 142, 255)
    assert tuple(t.colors[10]) == (70, 130, 180, 255)  # sky
    lut = CITYSCAPES_LABEL_TO_TRAIN
    assert lut.shape == (256,) and lut.dtype == np.uint8
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for label_id in range(256):
        assert lut[label_id] == expected.get(label_id, 255), label_id
    with pytest.raises(ValueError):
        lut[0] = 1  # shared constant must not be mutated by accident


def test_coco_things_and_category_map():
    t = ClassTable.coco_things()
    assert t.num_classes == 81
    assert t.names[0] == "background" and t.names[1] == "person" and t.names[80] == "toothbrush"
    assert len(COCO_CATEGORY_IDS) == 80 and COCO_CATEGORY_IDS[-1] == 90
    unused = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert set(range(1, 91)) - set(COCO_CATEGORY_IDS) == unused
    assert COCO_CATEGORY_TO_CONTIGUOUS[0] == 0
    assert COCO_CATEGORY_TO_CONTIGUOUS[1] == 1
    assert COCO_CATEGORY_TO_CONTIGUOUS[13] == 12  # stop sign, after the gap at 12
    assert t.names[COCO_CATEGORY_TO_CONTIGUOUS[18]] == "dog"
    assert t.names[COCO_CATEGORY_TO_CONTIGUOUS[90]] == "toothbrush"
    for cat in unused:
        assert COCO_CATEGORY_TO_CONTIGUOUS[cat] == 255


def test_generic_table():
    t = ClassTable.generic(3)
    assert t.names == ["class 0", "class 1", "class 2"]
    assert t.ignore_index == 255
    big = ClassTable.generic(300)
    assert big.num_classes == 300 and big.ignore_index == 65535
    with pytest.raises(ValueError):
        ClassTable.generic(0)


def test_lut_colours_ignore_and_out_of_range():
    t = ClassTable.generic(3)
    lut = t.lut()
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    np.testing.assert_array_equal(lut[:3], t.colors)
    assert (lut[3:] == 0).all()  # ids >= C and ignore are transparent by default
    lut2 = t.lut(ignore_color=(255, 255, 255, 128))
    assert tuple(lut2[255]) == (255, 255, 255, 128)
    assert (lut2[3:255] == 0).all()
    small = t.lut(size=2)
    np.testing.assert_array_equal(small, t.colors[:2])
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    assert tuple(lut2[mask][1, 1]) == (255, 255, 255, 128)


def test_with_color_is_immutable():
    t = ClassTable.voc()
    t2 = t.with_color(1, (1, 2, 3))
    assert tuple(t2.colors[1]) == (1, 2, 3, 255)
    assert tuple(t.colors[1]) == (128, 0, 0, 255)
    assert t2.names == t.names and t2 != t
    with pytest.raises(IndexError):
        t.with_color(21, (0, 0, 0))


def test_json_round_trip(tmp_path):
    t = ClassTable([ClassInfo(1, "straße", (1, 2, 3, 4)), ClassInfo(0, "bg", (0, 0, 0, 255))],
                   ignore_index=254, name="mine")
    assert [c.id for c in t.classes] == [0, 1]
    path = tmp_path / "classes.json"
    t.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["classes"][1] == {"id": 1, "name": "straße", "color": [1, 2, 3, 4]}
    assert ClassTable.load(path) == t


def test_from_json_accepts_hex_rgb_and_implicit_ids():
    t = ClassTable.from_json({"classes": [{"name": "a", "color": "#ff8000"},
                                          {"name": "b", "color": [1, 2, 3]},
                                          {"name": "c"}]})
    assert t.colors.tolist() == [[255, 128, 0, 255], [1, 2, 3, 255], [0, 128, 0, 255]]
    assert t.ignore_index == 255


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ('{"foo": 1}', "'classes' list"),
    ('{"classes": []}', "no classes"),
    ('{"classes": [{"id": 0, "name": "a"}, {"id": 2, "name": "b"}]}', "exactly 0..1"),
    ('{"classes": [{"id": 0, "name": "a"}, {"id": 0, "name": "b"}]}', "exactly 0..1"),
    ('{"classes": [{"id": 0, "name": "a", "color": [1, 2]}]}', "3 or 4"),
    ('{"classes": [{"id": 0, "name": "a", "color": [1, 2, 300]}]}', "outside 0..255"),
    ('{"classes": [{"id": 0, "name": "a", "color": "#12"}]}', "#rrggbb"),
    ('{"classes": [{"id": 0, "name": ""}]}', "empty name"),
    ('{"classes": [{"id": "x", "name": "a"}]}', "non-integer id"),
    ('{"classes": [{"id": 0}]}', "'name'"),
    ('{"classes": [{"name": "a"}, {"name": "b"}], "ignore_index": 1}', "collides"),
    ('{"classes": [{"name": "a"}], "ignore_index": "x"}', "integer"),
])
def test_load_rejects_bad_tables_naming_the_file(tmp_path, content, fragment):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ClassTableError) as info:
        ClassTable.load(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_load_missing_file_names_it(tmp_path):
    path = tmp_path / "missing.json"
    with pytest.raises(ClassTableError) as info:
        ClassTable.load(path)
    assert str(path) in str(info.value)


def test_from_names_txt_labelme_convention(tmp_path):
    path = tmp_path / "class_names.txt"
    path.write_text("__ignore__\n_background_\ncat\n\n dog \n", encoding="utf-8")
    t = ClassTable.from_names_txt(path)
    assert t.names == ["background", "cat", "dog"]
    np.testing.assert_array_equal(t.colors[:, :3], reference_voc_colormap(3))


@pytest.mark.parametrize("content, fragment", [
    ("\n__ignore__\n", "no class names"),
    ("a\nb\na\n", "duplicate class names: a"),
])
def test_from_names_txt_rejects_bad_files(tmp_path, content, fragment):
    path = tmp_path / "class_names.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ClassTableError) as info:
        ClassTable.from_names_txt(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_from_names_txt_binary_garbage(tmp_path):
    path = tmp_path / "class_names.txt"
    path.write_bytes(b"\xff\xfe\xfa\x00bad")
    with pytest.raises(ClassTableError) as info:
        ClassTable.from_names_txt(path)
    assert str(path) in str(info.value)


def test_constructor_validation():
    with pytest.raises(ClassTableError, match="collides"):
        ClassTable([ClassInfo(0, "a", (0, 0, 0, 255))], ignore_index=0)
    t = ClassTable([ClassInfo(0, "a", (0, 0, 0))])  # RGB is promoted to opaque RGBA
    assert t.classes[0].color == (0, 0, 0, 255)


@pytest.mark.parametrize("name", ["huge.json", "huge_names.txt"])
def test_a_class_table_over_the_size_limit_is_refused_unread(tmp_path, name):
    from segstudio.core.io.datasets.base import load_class_table
    from segstudio.core.io.jsonfile import MAX_HANDWRITTEN_BYTES

    path = tmp_path / name
    with open(path, "wb") as fh:
        fh.truncate(MAX_HANDWRITTEN_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ClassTableError, match=f"{MAX_HANDWRITTEN_BYTES + 1} bytes, more than"):
        load_class_table(path)
