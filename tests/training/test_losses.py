"""Each loss against an independent formula written here; ignored pixels get no gradient."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segstudio.training.losses import (LossSpec, cross_entropy_loss, focal_loss, inverse_frequency_weights,
                                       make_loss, soft_dice_loss)

IGNORE = 255


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 5, 6), generator=g)     # class 3 never occurs
    target[0, :2, :3] = IGNORE
    target[1, 4, :] = IGNORE
    return logits, target


def _softmax_np(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_ce_equals_torch_cross_entropy_with_ignore_index(batch):
    logits, target = batch
    expected = F.cross_entropy(logits, target, ignore_index=IGNORE)
    assert torch.allclose(cross_entropy_loss(logits, target, IGNORE), expected.float(), atol=1e-6)


def test_weighted_ce_is_the_weighted_mean_over_labelled_pixels(batch):
    logits, target = batch
    w = np.array([0.5, 2.0, 1.5, 3.0])
    p = _softmax_np(logits.numpy())
    t = target.numpy()
    keep = t != IGNORE
    n, _, h, wd = p.shape
    num = den = 0.0
    for b in range(n):
        for y in range(h):
            for x in range(wd):
                if keep[b, y, x]:
                    c = t[b, y, x]
                    num += -w[c] * np.log(p[b, c, y, x])
                    den += w[c]
    got = cross_entropy_loss(logits, target, IGNORE, torch.tensor(w, dtype=torch.float32))
    assert float(got) == pytest.approx(num / den, rel=1e-5)


@pytest.mark.parametrize("gamma,alpha,weights", [(2.0, 1.0, None), (0.0, 1.0, None), (1.5, 0.25, [1, 2, 3, 4])])
def test_focal_equals_the_formula(batch, gamma, alpha, weights):
    logits, target = batch
    p = _softmax_np(logits.numpy())
    t = target.numpy()
    keep = t != IGNORE
    safe = np.where(keep, t, 0)
    pt = np.take_along_axis(p, safe[:, None], axis=1)[:, 0]
    a = alpha * (np.asarray(weights, float)[safe] if weights is not None else 1.0)
    expected = (-a * (1 - pt) ** gamma * np.log(pt))[keep].mean()
    w = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
    assert float(focal_loss(logits, target, IGNORE, gamma, alpha, w)) == pytest.approx(expected, rel=1e-5)
    if gamma == 0.0 and weights is None:   # gamma 0, alpha 1: plain cross-entropy
        assert float(focal_loss(logits, target, IGNORE, 0.0)) == pytest.approx(
            float(F.cross_entropy(logits, target, ignore_index=IGNORE)), rel=1e-5)


def test_soft_dice_equals_the_seed_formula(batch):
    logits, target = batch
    p = _softmax_np(logits.numpy())
    t = target.numpy()
    keep = t != IGNORE
    dices = []
    for c in range(4):
        g = ((t == c) & keep).astype(float)
        if g.sum() == 0:
            continue          # the seed averages over the classes present in the target
        q = p[:, c] * keep
        dices.append((2 * (q * g).sum() + 1.0) / (q.sum() + g.sum() + 1.0))
    expected = 1.0 - np.mean(dices)
    assert float(soft_dice_loss(logits, target, IGNORE)) == pytest.approx(expected, rel=1e-5)


def test_ce_plus_dice_is_their_weighted_sum(batch):
    logits, target = batch
    loss = make_loss(LossSpec("ce+dice", dice_weight=0.5), IGNORE)
    expected = F.cross_entropy(logits, target, ignore_index=IGNORE) + 0.5 * soft_dice_loss(logits, target, IGNORE)
    assert float(loss(logits, target)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("name", ["ce", "focal", "dice", "ce+dice"])
def test_ignored_pixels_get_zero_gradient(batch, name):
    logits, target = batch
    logits = logits.clone().requires_grad_(True)
    loss = make_loss(LossSpec(name, class_weights=(1.0, 2.0, 0.5, 1.0)), IGNORE)(logits, target)
    loss.backward()
    ignored = (target == IGNORE).unsqueeze(1).expand_as(logits)
    assert torch.count_nonzero(logits.grad[ignored]) == 0
    assert torch.count_nonzero(logits.grad[~ignored]) > 0


@pytest.mark.parametrize("name", ["ce", "focal", "dice", "ce+dice"])
def test_all_ignored_batch_gives_zero_loss_not_nan(name):
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), IGNORE)
    loss = make_loss(LossSpec(name), IGNORE)(logits, target)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.count_nonzero(logits.grad) == 0


def test_inverse_frequency_weights():
    counts = [600, 300, 100, 0]
    w = inverse_frequency_weights(counts)
    # total / (K * n_c) over the K = 3 classes that occur
    assert w == pytest.approx((1000 / 1800, 1000 / 900, 1000 / 300, 1.0))
    # every class that occurs then carries the same total weight
    assert [w[c] * counts[c] for c in range(3)] == pytest.approx([1000 / 3] * 3)
