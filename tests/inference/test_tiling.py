"""Streaming statistics, bilinear band resizing and tile blending, against plain torch references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from segstudio.inference import tiling
from segstudio.inference.tiling import Outputs, TileBlender, logit_stats, ramp, tile_starts, write_resized


@given(length=st.integers(1, 3000), tile=st.integers(16, 700), overlap=st.integers(0, 200))
@settings(max_examples=200, deadline=None)
def test_tiles_cover_everything_with_at_least_the_overlap(length, tile, overlap):
    overlap = min(overlap, tile // 2)
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b > a for a, b in zip(starts, starts[1:]))
    assert all(a + size - b >= overlap for a, b in zip(starts, starts[1:]))  # consecutive tiles overlap enough


@pytest.mark.parametrize("tile, overlap", [(32, 32), (32, 40), (32, -1)])
def test_an_overlap_outside_0_to_tile_is_refused(tile, overlap):
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, tile, overlap)


def test_ramp_is_positive_and_flat_where_there_is_no_neighbour():
    w = ramp(10, 4, lead=True, trail=False)
    rising = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, 5) / 5)
    np.testing.assert_allclose(w.numpy(), list(rising) + [1] * 6, rtol=1e-6)
    assert ramp(64, 32, True, True)[0] < 0.01
    assert ramp(10, 4, False, False).min() == 1.0
    assert ramp(3, 10, True, True).min() > 0


def _reference_stats(logits):
    probs = logits.softmax(0)
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(0) / math.log(logits.shape[0])
    return logits.argmax(0), probs.max(0).values, entropy


def test_logit_stats_match_softmax_formulas():
    torch.manual_seed(0)
    logits = torch.randn(7, 20, 30) * 5
    index, confidence, entropy = logit_stats(logits)
    ref_index, ref_conf, ref_entropy = _reference_stats(logits)
    assert torch.equal(index, ref_index)
    torch.testing.assert_close(confidence, ref_conf)
    torch.testing.assert_close(entropy, ref_entropy, atol=1e-5, rtol=1e-4)
    uniform = logit_stats(torch.zeros(4, 2, 2))
    torch.testing.assert_close(uniform[1], torch.full((2, 2), 0.25))
    torch.testing.assert_close(uniform[2], torch.ones(2, 2))


def test_one_logit_becomes_sigmoid_two_class():
    x = torch.tensor([[[-2.0, 0.5]]])
    index, confidence, _ = logit_stats(tiling.two_class_logits(x))
    assert index.tolist() == [[0, 1]]
    torch.testing.assert_close(confidence, torch.tensor([[1 - torch.sigmoid(torch.tensor(-2.0)).item(),
                                                          torch.sigmoid(torch.tensor(0.5)).item()]]))


@pytest.mark.parametrize("src,dst", [((13, 17), (50, 41)), ((40, 30), (11, 9)), ((8, 8), (8, 8)), ((1, 5), (3, 12))])
def test_band_resize_equals_interpolate(monkeypatch, src, dst):
    monkeypatch.setattr(tiling, "BAND_BYTES", 4 * 3 * 7 * (dst[1] + src[1]))  # force several bands
    torch.manual_seed(1)
    logits = torch.randn(3, *src)
    out = Outputs(*dst, 3)
    write_resized(logits, out)
    ref = F.interpolate(logits[None], size=dst, mode="bilinear", align_corners=False)[0]
    index, confidence, entropy = _reference_stats(ref)
    agree = (out.mask == index.numpy()).mean()
    assert agree > 0.999
    np.testing.assert_allclose(out.confidence, confidence.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.entropy, entropy.numpy(), atol=1e-4)


@pytest.mark.parametrize("height,width,tile,overlap", [(150, 170, 64, 16), (64, 300, 64, 20), (97, 40, 32, 8),
                                                      (120, 50, 64, 32)])  # last: carried rows > finished rows
def test_blending_identical_logits_reproduces_them(height, width, tile, overlap):
    """Where every tile sees the same logits, the weighted blend is exactly those logits."""
    torch.manual_seed(2)
    full = torch.randn(5, height, width) * 3
    out = Outputs(height, width, 5)
    th, tw = min(tile, height), min(tile, width)
    blender = TileBlender(out, 5, th, tw, overlap, "cpu")
    for y in blender.ys:
        for x in blender.xs:
            blender.add(x, full[:, y:y + th, x:x + tw])
        blender.end_row()
    index, confidence, entropy = _reference_stats(full)
    np.testing.assert_array_equal(out.mask, index.numpy())
    np.testing.assert_allclose(out.confidence, confidence.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.entropy, entropy.numpy(), atol=1e-4)


def test_blending_weights_favour_tile_centres():
    """Two tiles disagreeing on the overlap: the blend moves linearly from one to the other."""
    out = Outputs(1, 12, 2)
    blender = TileBlender(out, 2, 1, 8, 4, "cpu")
    assert blender.xs == [0, 4]
    blender.add(0, torch.tensor([[[4.0] * 8], [[0.0] * 8]]).view(2, 1, 8))
    blender.add(4, torch.tensor([[[0.0] * 8], [[4.0] * 8]]).view(2, 1, 8))
    acc = blender.acc.clone()
    weight = blender.weight.clone()
    blender.end_row()
    margin = (acc[0] - acc[1]) / weight
    assert margin[0, :4].tolist() == [4.0] * 4 and margin[0, 8:].tolist() == [-4.0] * 4
    assert all(a > b for a, b in zip(margin[0, 3:9].tolist(), margin[0, 4:9].tolist()))
