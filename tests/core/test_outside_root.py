"""Planted symbolic links never lead reads or writes out of the dataset (issue 10, item 6)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from segstudio.core.editing.store import ProjectStore, store_path_for
from segstudio.core.errors import DatasetError, OutsideRootError
from segstudio.core.io.classes import ClassTable
from segstudio.core.io.datasets import open_dataset
from segstudio.core.io.paths import inside_root, is_inside_root
from segstudio.core.io.saving import save_ground_truth
from segstudio.core.io.workspace import save_class_colours, with_saved_colours, working_dir

OUTSIDE_BYTES = b"not yours"


@pytest.fixture
def layout(tmp_path):
    """A folder dataset ``ds/`` (images/a.png + masks/a.png) and a folder ``elsewhere/`` beside it."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    cv2.imwrite(str(root / "images" / "a.png"), np.zeros((4, 5, 3), np.uint8))
    cv2.imwrite(str(root / "masks" / "a.png"), np.zeros((4, 5), np.uint8))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "masks").mkdir(parents=True)
    (elsewhere / "masks" / "a.png").write_bytes(OUTSIDE_BYTES)
    (elsewhere / "a.png").write_bytes(OUTSIDE_BYTES)
    return root, elsewhere


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


def _gt():
    gt = np.zeros((4, 5), np.uint8)
    gt[1:3, 1:4] = 1
    return gt


@pytest.mark.parametrize("link, target", [
    ("corrected", "."),                 # corrected -> elsewhere: corrected/masks/a.png is elsewhere's file
    ("corrected/masks", "masks"),       # corrected/masks -> elsewhere/masks
    ("corrected/masks/a.png", "masks/a.png"),   # the saved mask itself -> a file elsewhere
])
def test_save_through_a_planted_link_is_refused(layout, link, target):
    root, elsewhere = layout
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(elsewhere / target, root / link)
    before = _snapshot(elsewhere)
    dataset = open_dataset(root)
    with pytest.raises(OutsideRootError) as info:
        save_ground_truth(dataset, dataset[0], _gt())
    assert info.value.path == str(root / link)
    assert str(root / link) in str(info.value) and "outside" in str(info.value)
    assert _snapshot(elsewhere) == before           # nothing overwritten, nothing created
    # saved corrections are never read back through the link either
    with pytest.raises(OutsideRootError) as info:
        dataset.kind.saved_labels(dataset, dataset[0])
    assert info.value.path == str(root / link)


def test_planted_workspace_link_moves_neither_store_nor_colours(layout):
    root, elsewhere = layout
    os.symlink(elsewhere, root / ".segstudio")
    before = _snapshot(elsewhere)
    for call in (lambda: working_dir(root), lambda: store_path_for(root), lambda: ProjectStore.for_dataset(root),
                 lambda: save_class_colours(root, ClassTable.voc())):
        with pytest.raises(OutsideRootError) as info:
            call()
        assert info.value.path == str(root / ".segstudio")
    assert with_saved_colours(root, ClassTable.voc()) == ClassTable.voc()
    assert _snapshot(elsewhere) == before


def test_saving_without_links_and_into_an_explicit_folder_still_works(layout, tmp_path):
    root, _ = layout
    dataset = open_dataset(root)
    assert save_ground_truth(dataset, dataset[0], _gt()).path == root / "corrected" / "masks" / "a.png"
    assert dataset.kind.saved_labels(dataset, dataset[0]) == root / "corrected" / "masks" / "a.png"
    out = tmp_path / "chosen"
    assert save_ground_truth(dataset, dataset[0], _gt(), out_dir=out).path == out / "masks" / "a.png"
    # links that stay inside the dataset are fine
    os.symlink(root / "corrected", root / "again")
    assert inside_root(root, root / "again" / "masks" / "a.png") == root / "again" / "masks" / "a.png"


def test_inside_root_rules(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    assert inside_root(root, "not/yet/there.png") == Path("not/yet/there.png")
    assert is_inside_root(root, root) and not is_inside_root(root, tmp_path / "r2")
    with pytest.raises(OutsideRootError) as info:
        inside_root(root, root / ".." / "x.png")
    assert isinstance(info.value, DatasetError) and info.value.root == str(root)
    os.symlink(tmp_path, root / "up")
    with pytest.raises(OutsideRootError) as info:
        inside_root(root, root / "up" / "x" / "y.png")
    assert info.value.path == str(root / "up")
