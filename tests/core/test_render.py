"""core.display.render: LUTs, outlines, pyramid downsampling and view modes, against plain numpy references."""
from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.io.classes import ClassTable
from segstudio.core.io.masks import InstanceMask
from segstudio.core.display.render import (
    build_pyramid, class_lut, downsample, downsample_region, fold_instance_ids, heat_lut, instance_lut,
    level_for_zoom, level_shape, max_level, outline_mask, quantize, view_arrays,
)


def test_class_lut_hides_classes_and_colours_ignore():
    table = ClassTable.voc()
    lut = class_lut(table, hidden={3, 15}, ignore_color=(255, 255, 255, 128))
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    assert tuple(lut[1]) == (128, 0, 0, 255)
    assert tuple(lut[3]) == (0, 0, 0, 0) and tuple(lut[15]) == (0, 0, 0, 0)
    assert tuple(lut[255]) == (255, 255, 255, 128)
    assert not lut[21:255].any()  # ids past the table: transparent
    assert class_lut(table, size=65536).shape == (65536, 4)


def test_instance_lut_colours_are_distinct_and_zero_is_clear():
    lut = instance_lut(256)
    assert tuple(lut[0]) == (0, 0, 0, 0)
    assert (lut[1:, 3] == 255).all()
    assert len({tuple(c) for c in lut[1:, :3]}) == 255
    rgb = lut[1:, :3].astype(int)
    neighbours = np.abs(np.diff(rgb, axis=0)).sum(axis=1)
    assert neighbours.min() > 60  # consecutive ids never look alike
    assert (instance_lut(65536)[:256] == lut).all()


def test_fold_instance_ids():
    small = np.array([[0, 3], [255, 1]], np.int32)
    assert fold_instance_ids(small).dtype == np.uint8
    mid = np.array([[0, 300]], np.int32)
    assert fold_instance_ids(mid).dtype == np.uint16 and fold_instance_ids(mid)[0, 1] == 300
    big = np.array([[0, 65535, 65536, 70000]], np.int32)
    folded = fold_instance_ids(big)
    assert folded.dtype == np.uint16
    assert folded.tolist() == [[0, 65535, 1, (70000 - 1) % 65535 + 1]]


def test_heat_luts_match_matplotlib_endpoints():
    viridis, magma = heat_lut("viridis"), heat_lut("magma")
    # matplotlib: viridis(0) = (0.267, 0.005, 0.329), viridis(1) = (0.993, 0.906, 0.144)
    assert np.abs(viridis[0, :3].astype(int) - (68, 1, 84)).max() <= 1
    assert np.abs(viridis[255, :3].astype(int) - (253, 231, 37)).max() <= 1
    # magma(0) = (0.001, 0.000, 0.014), magma(1) = (0.987, 0.991, 0.750)
    assert np.abs(magma[0, :3].astype(int) - (0, 0, 4)).max() <= 1
    assert np.abs(magma[255, :3].astype(int) - (252, 253, 191)).max() <= 1
    assert (heat_lut("gray", alpha=100)[:, 3] == 100).all()
    assert tuple(heat_lut("gray")[77, :3]) == (77, 77, 77)
    with pytest.raises(ValueError):
        heat_lut("jet")


def test_quantize():
    values = np.array([0.0, 0.5, 1.0, 2.0, -1.0, np.nan], np.float32)
    assert quantize(values).tolist() == [0, 128, 255, 255, 0, 0]
    assert quantize(np.array([1.0, 3.0]), vmin=1.0, vmax=3.0).tolist() == [0, 255]


def reference_outline(labels: np.ndarray) -> np.ndarray:
    h, w = labels.shape
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                ny, nx = y + dy, x + dx
                if 0 <= ny < h and 0 <= nx < w and labels[ny, nx] != labels[y, x]:
                    out[y, x] = True
    return out


def test_outline_mask_full_and_sub_rectangles():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (23, 31)).astype(np.uint8)
    labels[5:15, 5:20] = 1
    want = reference_outline(labels)
    assert np.array_equal(outline_mask(labels), want)
    for rect in ((0, 0, 5, 5), (7, 3, 10, 12), (25, 18, 6, 5), (0, 0, 31, 23)):
        x, y, w, h = rect
        assert np.array_equal(outline_mask(labels, rect), want[y:y + h, x:x + w])
    inner = outline_mask(labels, exclude=0)
    assert np.array_equal(inner, want & (labels != 0))


def test_downsample_labels_take_block_corners():
    labels = np.arange(37 * 53, dtype=np.int32).reshape(37, 53) % 251
    labels = labels.astype(np.uint8)
    for level in range(4):
        f = 1 << level
        whole = downsample(labels, f, labels=True)
        assert np.array_equal(whole, labels[::f, ::f])
        assert whole.shape == level_shape(labels.shape, level)
        h, w = whole.shape
        assert np.array_equal(downsample_region(labels, level, 1, 2, w - 1, h, labels=True), whole[2:h, 1:w - 1])


def test_downsample_image_level_one_is_the_block_mean():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (41, 30, 3), dtype=np.uint8)
    got = downsample(image, 2).astype(float)
    padded = np.pad(image.astype(float), ((0, 1), (0, 0), (0, 0)), mode="edge")  # odd height: edge repeat
    want = padded.reshape(21, 2, 15, 2, 3).mean(axis=(1, 3))
    assert got.shape == (21, 15, 3)
    assert np.abs(got - want).max() <= 1
    # deeper levels: sub-rectangles equal the same window of the whole level
    for level in (2, 3):
        whole = downsample(image, 1 << level)
        h, w = whole.shape[:2]
        assert np.array_equal(downsample_region(image, level, 1, 1, w, h), whole[1:, 1:])
    gray = image[..., 0]
    assert downsample(gray, 4).shape == level_shape(gray.shape, 2)
    with pytest.raises(ValueError):
        downsample(image, 3)


def test_pyramid_and_level_choice():
    levels = build_pyramid(np.zeros((1000, 700), np.uint8), labels=True, min_size=256)
    assert [lv.shape for lv in levels] == [(1000, 700), (500, 350), (250, 175)]
    assert max_level((20000, 20000), 256) == 7
    assert max_level((200, 100), 256) == 0
    assert level_for_zoom(2.0, 5) == 0
    assert level_for_zoom(0.8, 5) == 0  # nearer to level 0 (scale 0.8) than level 1 (1.6)
    assert level_for_zoom(0.6, 5) == 1
    assert level_for_zoom(0.26, 5) == 2
    assert level_for_zoom(0.001, 5) == 5


def test_view_arrays_modes():
    table = ClassTable.generic(4)
    semantic = np.zeros((10, 12), np.uint8)
    semantic[2:5, 2:6] = 1
    semantic[6:9, 1:4] = 1
    semantic[5:9, 7:11] = 2
    array, lut = view_arrays("semantic", semantic, table, hidden={2})
    assert array is semantic
    assert tuple(lut[1]) == table.classes[1].color and lut[2, 3] == 0

    ids, colours = view_arrays("instance", semantic, table)
    assert ids.dtype == np.uint8
    assert len(np.unique(ids[semantic == 1])) == 2  # two separate class-1 blobs
    assert ids[semantic == 0].max() == 0 and colours.shape == (256, 4)
    ids_hidden, _ = view_arrays("instance", semantic, table, hidden={1})
    assert ids_hidden[semantic == 1].max() == 0 and ids_hidden[semantic == 2].min() > 0

    outlines, olut = view_arrays("outlines", semantic, table)
    shown = olut[outlines][..., 3] > 0
    edge = outline_mask(semantic) & (semantic != 0)
    assert np.array_equal(shown, edge)
    assert np.array_equal(outlines[edge], semantic[edge])

    inst_ids = np.zeros((10, 12), np.int32)
    inst_ids[5:9, 7:9], inst_ids[5:9, 9:11] = 1, 2  # two touching instances of class 2
    inst = InstanceMask(ids=inst_ids, classes={1: 2, 2: 2})
    outlines, olut = view_arrays("outlines", semantic, table, instances=inst)
    assert olut[outlines[6, 8], 3] > 0 and olut[outlines[6, 9], 3] > 0  # the shared border shows
    assert olut[outlines[2, 2], 3] == 0  # class-1 blobs are not in this instance mask
    assert view_arrays("semantic", None, table) == (None, None)
    with pytest.raises(ValueError):
        view_arrays("heat", semantic, table)
