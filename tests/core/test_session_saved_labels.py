"""ReviewSession opens documents on the labels as last saved when it is built with where they are."""
from __future__ import annotations

import numpy as np
from PIL import Image

from segstudio.core.io.datasets import open_dataset
from segstudio.core.io.saving import destination_for, save_ground_truth
from segstudio.core.editing.session import ReviewSession, load_document


def make_folder(root):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    gt = np.zeros((12, 16), np.uint8)
    gt[:, :8] = 1
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(root / "images" / "a.png")
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(root / "images" / "b.png")
    Image.fromarray(gt).save(root / "masks" / "a.png")
    Image.fromarray(gt).save(root / "masks" / "b.png")
    return gt


def test_documents_open_on_saved_corrections(tmp_path):
    original = make_folder(tmp_path / "d")
    dataset = open_dataset(tmp_path / "d")
    corrected = original.copy()
    corrected[2:5, 10:14] = 2
    save_ground_truth(dataset, dataset[0], corrected)
    factory = lambda sample: load_document(sample, dataset.class_table)  # noqa: E731
    np.testing.assert_array_equal(ReviewSession(dataset).open(0, factory).gt, original)   # no label source
    session = ReviewSession(dataset, saved_labels=lambda sample: destination_for(dataset, sample))
    np.testing.assert_array_equal(session.open(0, factory).gt, corrected)   # the first image too
    session.open(1, factory)
    np.testing.assert_array_equal(session.open(0, factory).gt, corrected)
    np.testing.assert_array_equal(session.open(1, factory).gt, original)   # nothing saved for b
    assert session.classes_present("a") == frozenset({0, 1, 2})
    assert session.dataset[0].mask_path == tmp_path / "d" / "masks" / "a.png"   # dataset untouched


def test_a_lone_image_reopens_on_its_saved_labels(tmp_path):
    make_folder(tmp_path / "d")
    dataset = open_dataset(tmp_path / "d" / "images" / "a.png")
    assert dataset.format == "image" and dataset[0].load_mask() is None
    labels = np.zeros((12, 16), np.uint8)
    labels[3:6, 4:9] = 1
    save_ground_truth(dataset, dataset[0], labels)
    session = ReviewSession(dataset, saved_labels=lambda sample: destination_for(dataset, sample))
    doc = session.open(0, lambda sample: load_document(sample, dataset.class_table))
    np.testing.assert_array_equal(doc.gt, labels)
