"""Edit history: packing round trips, stack semantics, the shared memory budget."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from segstudio.core.editing import tools
from segstudio.core.editing.history import EditAtom, EditHistory, HistoryBudget, default_budget


def make_atom(rng, x=0, y=0, w=13, h=7, uniform=False):
    changed = rng.random((h, w)) < 0.5
    n = int(changed.sum())
    old = rng.integers(0, 21, n).astype(np.uint8)
    new = np.full(n, 4, np.uint8) if uniform else rng.integers(0, 21, n).astype(np.uint8)
    return EditAtom((x, y, w, h), changed, old, new)


def same(a: EditAtom, b: EditAtom) -> bool:
    return (a.bbox == b.bbox and a.layer == b.layer and a.changed.dtype == bool
            and np.array_equal(a.changed, b.changed) and np.array_equal(a.old_values, b.old_values)
            and np.array_equal(a.new_values, b.new_values) and a.new_values.dtype == b.new_values.dtype)


@pytest.mark.parametrize("uniform", [False, True])
def test_push_undo_redo_round_trip(uniform):
    rng = np.random.default_rng(0)
    hist = EditHistory("a", HistoryBudget())
    atoms = [make_atom(rng, x=i, uniform=uniform) for i in range(4)]
    for a in atoms:
        hist.push(a)
    assert hist.undo_depth == 4 and not hist.can_redo
    assert same(hist.undo(), atoms[3])
    assert same(hist.undo(), atoms[2])
    assert same(hist.redo(), atoms[2])
    assert hist.undo_depth == 3 and hist.redo_depth == 1
    hist.push(atoms[0])                     # a new edit drops the redo branch
    assert hist.redo() is None and hist.redo_depth == 0
    for expected in (atoms[0], atoms[2], atoms[1], atoms[0]):
        assert same(hist.undo(), expected)
    assert hist.undo() is None


def test_uint16_values_and_odd_sizes_survive_packing():
    rng = np.random.default_rng(1)
    changed = rng.random((3, 5)) < 0.6   # 15 bits: not a multiple of 8
    n = int(changed.sum())
    atom = EditAtom((7, 9, 5, 3), changed, rng.integers(0, 1000, n).astype(np.uint16),
                    np.full(n, 999, np.uint16))
    hist = EditHistory("x")
    hist.push(atom)
    assert same(hist.undo(), atom)


def test_packed_storage_is_small():
    hist = EditHistory("a", HistoryBudget())
    (box, mask) = tools.dab_mask(100, 100, 32, (512, 512))
    n = int(mask.sum())
    atom = EditAtom(box, mask.copy(), np.zeros(n, np.uint8), np.full(n, 3, np.uint8))
    hist.push(atom)
    # packed mask (65*65 bits = 529 B) + two constant value runs stored as scalars + overhead
    assert hist.nbytes == 529 + 1 + 1 + 400
    assert hist.nbytes < atom.nbytes / 8


def test_budget_evicts_oldest_atoms_of_any_image():
    rng = np.random.default_rng(2)
    one = make_atom(rng)
    hist_probe = EditHistory("probe", HistoryBudget())
    hist_probe.push(one)
    size = hist_probe.nbytes
    budget = HistoryBudget(max_bytes=size * 5)
    a, b = budget.history_for("a"), budget.history_for("b")
    assert budget.history_for("a") is a
    a.push(one); a.push(one); b.push(one); a.push(one); b.push(one)   # exactly at the cap
    assert budget.total_bytes == 5 * size and budget.evicted == 0
    b.push(one)                                   # evicts a's first atom (the oldest overall)
    assert (a.undo_depth, b.undo_depth) == (2, 3)
    b.push(one); b.push(one)                      # evicts a's 2nd atom, then b's 1st
    assert (a.undo_depth, b.undo_depth) == (1, 4)
    assert budget.total_bytes == 5 * size == a.nbytes + b.nbytes
    assert budget.evicted == 3


def test_budget_accounts_for_redo_and_clear():
    rng = np.random.default_rng(3)
    budget = HistoryBudget()
    h = budget.history_for("a")
    for _ in range(3):
        h.push(make_atom(rng))
    total = budget.total_bytes
    h.undo(); h.undo()
    assert budget.total_bytes == total      # undone atoms still held for redo
    h.push(make_atom(rng, w=1, h=1))        # drops the two redo atoms
    assert budget.total_bytes == h.nbytes < total
    budget.discard("a")
    assert budget.total_bytes == 0 and "a" not in budget.names()


def test_oversized_atom_is_dropped_not_kept():
    rng = np.random.default_rng(4)
    budget = HistoryBudget(max_bytes=500)
    h = budget.history_for("a")
    h.push(make_atom(rng, w=100, h=100))
    assert h.undo_depth == 0 and budget.total_bytes == 0


def test_default_budget_is_shared_and_256_mb():
    assert default_budget() is default_budget()
    assert default_budget().max_bytes == 256 * 1024 * 1024


def test_thousand_radius_32_dabs_cost_under_50_mb():
    """1,000 single-dab strokes with varying old values, measured by tracemalloc, not by our own count."""
    rng = np.random.default_rng(5)
    shape = (4096, 4096)
    budget = HistoryBudget()
    hist = budget.history_for("big")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            box, mask = tools.dab_mask(rng.uniform(0, 4096), rng.uniform(0, 4096), 32, shape)
            n = int(mask.sum())
            hist.push(EditAtom(box, mask.copy(), rng.integers(0, 21, n).astype(np.uint8),
                               np.full(n, 7, np.uint8)))
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert hist.undo_depth == 1000
    assert used <= 50 * 1024 * 1024
    assert hist.nbytes <= 50 * 1024 * 1024
    # the budget's own account is within a factor of two of what the allocator really holds
    assert 0.5 * used <= hist.nbytes <= 2 * used
