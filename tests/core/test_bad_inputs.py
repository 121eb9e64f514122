"""Every case of the bad-input corpus raises its typed error naming the file; valid oddities load."""
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from segstudio.core.errors import SegStudioError
from tests.corpus import BadCase, make_bad_inputs, open_case

REPO = Path(__file__).resolve().parents[2]

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
    assert {c.kind for c in corpus.values()} == {"image", "mask", "dataset", "classes"}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(corpus, name, tmp_path):
    case: BadCase = corpus[name]
    if case.skip:
        pytest.skip(case.skip)
    if case.isolate:
        _open_in_child(tmp_path, case)
        return
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


def _limit_memory():
    # A regression may allocate tens of GB before failing; fail fast instead of swapping the machine.
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def _open_in_child(tmp_path: Path, case: BadCase) -> None:
    """Open ``case`` in a child process: a segfault there fails this test instead of killing pytest."""
    code = ("import sys\nfrom pathlib import Path\nfrom tests.corpus import make_bad_inputs, open_case\n"
            "case = {c.name: c for c in make_bad_inputs(Path(sys.argv[1]))}[sys.argv[2]]\n"
            "try:\n    open_case(case)\nexcept case.expected as exc:\n    print('raised', exc)\n"
            "else:\n    print('loaded')\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "child"), case.name], cwd=REPO,
                          capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("raised ") and case.path.name in lines[0], done.stdout
