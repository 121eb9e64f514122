"""The indexed hatch paints exactly what errormap.pair_tint paints, whole or by sub-rectangle."""
from __future__ import annotations

import numpy as np

from segstudio.core.evaluation import errormap
from segstudio.core.io.classes import ClassTable
from segstudio.core.display.overlays import pair_codes, pair_lut


def _masks(seed=0, shape=(37, 53), classes=5):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, classes, shape).astype(np.uint8)
    pred = np.where(rng.random(shape) < 0.5, gt, rng.integers(0, classes, shape)).astype(np.uint8)
    gt[:3] = 255
    return gt, pred


def test_lut_of_codes_equals_pair_tint():
    table = ClassTable.generic(5)
    gt, pred = _masks()
    codes = errormap.error_codes(gt, pred)
    rendered = pair_lut(table)[pair_codes(codes, gt, pred, 5)]
    np.testing.assert_array_equal(rendered, errormap.pair_tint(gt, pred, table))


def test_sub_rectangle_matches_the_whole():
    gt, pred = _masks(1)
    codes = errormap.error_codes(gt, pred)
    whole = pair_codes(codes, gt, pred, 5)
    x, y, w, h = 7, 5, 20, 11
    part = pair_codes(codes[y:y + h, x:x + w], gt[y:y + h, x:x + w], pred[y:y + h, x:x + w], 5,
                      origin=(x, y))
    np.testing.assert_array_equal(part, whole[y:y + h, x:x + w])


def test_banded_computation_matches_one_pass(monkeypatch):
    """Large images are coded in bands of rows (bounded temporaries); the bands must line up."""
    from segstudio.core.display import overlays

    gt, pred = _masks(2, shape=(41, 23))
    codes = errormap.error_codes(gt, pred)
    whole = pair_codes(codes, gt, pred, 5, origin=(3, 1))
    monkeypatch.setattr(overlays, "_CHUNK_PIXELS", 50)   # bands of 2 rows
    np.testing.assert_array_equal(pair_codes(codes, gt, pred, 5, origin=(3, 1)), whole)
    x, y, w, h = 4, 6, 15, 30
    part = pair_codes(codes[y:y + h, x:x + w], gt[y:y + h, x:x + w], pred[y:y + h, x:x + w], 5, origin=(x + 3, y + 1))
    np.testing.assert_array_equal(part, whole[y:y + h, x:x + w])
