"""Raster helpers against references written here with plain numpy distance formulas."""
from __future__ import annotations

import math
from fractions import Fraction

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstudio.core.editing import tools


def ref_disk(shape, cx, cy, r):
    """Pixels (x, y) with (x - floor(cx))^2 + (y - floor(cy))^2 <= r^2, on the whole image.

    The left side is an integer, so comparing it with the float ``r * r`` is exact: no tolerance.
    """
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (xx - math.floor(cx)) ** 2 + (yy - math.floor(cy)) ** 2 <= r * r


def exact_distance2(px, py, vx, vy):
    """Squared distance from integer point p to the segment 0-v, as an exact fraction."""
    len2 = vx * vx + vy * vy
    t = Fraction(0) if len2 == 0 else min(max(Fraction(px * vx + py * vy, len2), Fraction(0)), Fraction(1))
    dx, dy = px - t * vx, py - t * vy
    return dx * dx + dy * dy


def ref_capsule(shape, x0, y0, x1, y1, r):
    """Pixels within r of the segment between the anchor pixels, by projecting onto the segment.

    The radius squared is ``r * r`` as a float, the same value ``disk_mask`` compares with, so dabs
    and segment ends agree. A pixel's distance is first found in floats (error ~1e-12); the few
    pixels within 1e-6 of the rim are then decided in exact fractions, so the rim has no tolerance.
    """
    ax, ay, bx, by = math.floor(x0), math.floor(y0), math.floor(x1), math.floor(y1)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    vx, vy = bx - ax, by - ay
    len2 = vx * vx + vy * vy
    if len2 == 0:
        t = np.zeros_like(xx)
    else:
        t = np.clip(((xx - ax) * vx + (yy - ay) * vy) / len2, 0.0, 1.0)
    dx = xx - (ax + t * vx)
    dy = yy - (ay + t * vy)
    d2 = dx * dx + dy * dy
    r2 = r * r
    inside = d2 <= r2
    for y, x in zip(*np.nonzero(np.abs(d2 - r2) <= 1e-6)):
        inside[y, x] = exact_distance2(int(x) - ax, int(y) - ay, vx, vy) <= Fraction(r2)
    return inside


def paste(shape, pieces):
    out = np.zeros(shape, dtype=bool)
    for (x, y, w, h), m in pieces:
        out[y:y + h, x:x + w] |= m
    return out


@pytest.mark.parametrize("r", [0, 1, 2.5, 5, 32])
def test_disk_offsets_match_distance_formula(r):
    dy, dx = tools.disk_offsets(r)
    e = int(math.floor(r))
    grid = np.mgrid[-e:e + 1, -e:e + 1]
    expected = set(zip(*np.nonzero((grid[0] ** 2 + grid[1] ** 2) <= r * r)))
    got = {(int(a) + e, int(b) + e) for a, b in zip(dy, dx)}
    assert got == expected
    assert len(dy) == {0: 1, 1: 5, 2.5: 21, 5: 81, 32: 3209}[r]
    assert tools.disk_offsets(r) is tools.disk_offsets(r)  # cached


@pytest.mark.parametrize("cx, cy, r", [(20.0, 15.0, 5), (0.3, 0.9, 6), (39.9, 29.5, 4), (-3.0, 10.0, 5),
                                       (12.7, 28.2, 0), (20, 15, 32)])
def test_dab_mask_clipped_matches_reference(cx, cy, r):
    shape = (30, 40)
    hit = tools.dab_mask(cx, cy, r, shape)
    assert np.array_equal(paste(shape, [hit]), ref_disk(shape, cx, cy, r))
    (x, y, w, h), m = hit
    assert m.shape == (h, w) and 0 <= x and 0 <= y and x + w <= 40 and y + h <= 30


def test_dab_outside_image_is_none():
    assert tools.dab_mask(-20, 5, 5, (30, 40)) is None
    assert tools.dab_mask(5, 100, 5, (30, 40)) is None


@pytest.mark.parametrize("seg", [(2, 3, 150, 90, 4), (150, 5, 3, 95, 7.5), (10, 50, 10, 50, 6),
                                 (-20, -20, 170, 120, 3), (0, 0, 159, 0, 1), (5, 5, 6, 90, 0)])
def test_capsule_pieces_union_is_exact_capsule(seg):
    shape = (100, 160)
    x0, y0, x1, y1, r = seg
    pieces = list(tools.capsule_pieces(x0, y0, x1, y1, r, shape))
    assert np.array_equal(paste(shape, pieces), ref_capsule(shape, x0, y0, x1, y1, r))
    # Pieces stay O(r^2): a long drag never builds a box around the whole diagonal.
    for (_, _, w, h), m in pieces:
        assert m.shape == (h, w)
        assert max(w, h) <= 4 * max(r, 2) + 2 * r + 3


@settings(max_examples=60, deadline=None)
@given(st.floats(-10, 70), st.floats(-10, 50), st.floats(-10, 70), st.floats(-10, 50), st.floats(0, 9))
def test_capsule_matches_reference_property(x0, y0, x1, y1, r):
    shape = (40, 60)
    hit = tools.capsule_mask(x0, y0, x1, y1, r, shape)
    ref = ref_capsule(shape, x0, y0, x1, y1, r)
    got = paste(shape, [hit]) if hit is not None else np.zeros(shape, bool)
    assert np.array_equal(got, ref)


def test_capsule_rim_is_exact_for_a_non_integer_radius():
    # Pixel (7, 13) lies at squared distance exactly 81/5 from the segment (10, 10)-(11, 12), beside it
    # (not nearer either end). r * r is the float 16.2, a hair below 81/5, so the pixel is outside; a
    # float product r*r * |v|^2 rounds up to exactly 81 and would take it in.
    r = math.sqrt(16.2)
    assert r * r == 16.2 and Fraction(r * r) < Fraction(81, 5) == exact_distance2(-3, 3, 1, 2)
    shape = (30, 30)
    got = paste(shape, [tools.capsule_mask(10.5, 10.5, 11.5, 12.5, r, shape)])
    assert not got[13, 7]
    assert np.array_equal(got, ref_capsule(shape, 10.5, 10.5, 11.5, 12.5, r))


def test_flood_region_matches_connected_component():
    rng = np.random.default_rng(3)
    labels = (rng.random((64, 80)) < 0.45).astype(np.uint8) * 3
    for seed in [(5, 7), (40, 33), (79, 63)]:
        (x, y, w, h), m = tools.flood_region(labels, *seed)
        value = labels[seed[1], seed[0]]
        _, comp = cv2.connectedComponents((labels == value).astype(np.uint8), connectivity=4)
        ref = comp == comp[seed[1], seed[0]]
        assert np.array_equal(paste(labels.shape, [((x, y, w, h), m)]), ref)
        ys, xs = np.nonzero(ref)
        assert (x, y, w, h) == (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)


def test_flood_region_uint16_and_outside():
    labels = np.zeros((20, 20), np.uint16)
    labels[:, 10:] = 300
    labels[5, :] = 301
    (x, y, w, h), m = tools.flood_region(labels, 15, 15)
    assert (x, y, w, h) == (10, 6, 10, 14) and m.all()
    assert tools.flood_region(labels, 25, 3) is None


def test_polygon_mask_matches_full_image_fillpoly():
    shape = (50, 70)
    pts = [(10.2, 5.0), (60.0, 12.4), (35.0, 45.0), (-8.0, 30.0)]
    hit = tools.polygon_mask(pts, shape)
    full = np.zeros(shape, np.uint8)
    cv2.fillPoly(full, [np.rint(np.array(pts)).astype(np.int32)], 1)
    assert np.array_equal(paste(shape, [hit]), full.astype(bool))
    assert hit[0][0] == 0 and hit[0][1] == 5  # clipped on the left, starts at the top vertex
    assert tools.polygon_mask([(100, 100), (120, 100), (110, 120)], shape) is None
    with pytest.raises(ValueError):
        tools.polygon_mask([(1, 1), (2, 2)], shape)
