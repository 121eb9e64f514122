"""Every case of the bad-input corpus raises its typed error naming the file; valid oddities load."""
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.errors import SegStudioError
from tests.corpus import BadCase, make_bad_inputs, open_case


def _case_names():
    # Parametrising needs the names at collection time; each test rebuilds the files in tmp_path.
    with tempfile.TemporaryDirectory() as tmp:
        return [c.name for c in make_bad_inputs(Path(tmp))]


CASE_NAMES = _case_names()


@pytest.fixture
def corpus(tmp_path):
    return {c.name: c for c in make_bad_inputs(tmp_path)}


def test_corpus_is_large_enough_and_covers_every_kind(corpus):
    assert len(corpus) >= 15 and len(corpus) == len(CASE_NAMES)
    assert {c.kind for c in corpus.values()} == {"image", "mask", "dataset"}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(corpus, name):
    case: BadCase = corpus[name]
    if case.skip:
        pytest.skip(case.skip)
    if case.expected is None:
        result = open_case(case)
        if case.kind == "dataset":
            result = result[0].load_image()
        assert isinstance(result, np.ndarray) and result.shape == case.shape
        return
    with pytest.raises(case.expected) as err:
        open_case(case)
    assert isinstance(err.value, SegStudioError)
    assert case.path.name in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_one_pixel_and_non_utf8_images_keep_their_pixels(corpus):
    one = open_case(corpus["one_pixel_image"])
    assert one.tolist() == [[[7, 7, 7]]]
    non_utf8 = corpus["non_utf8_name"]
    assert os.fsencode(non_utf8.path.name) == b"latin1_caf\xe9.png"
    np.testing.assert_array_equal(open_case(non_utf8), open_case(corpus["non_ascii_name"]))


def test_non_ascii_stems_pair_image_and_mask(corpus):
    mask = open_case(corpus["mask_non_ascii_name_pairs"])
    assert int((mask == 15).sum()) == 24 and int((mask == 0).sum()) == 16 * 20 - 24
