"""Binary ({0, 255}) masks: the mapping's text form, the probe, and the typed refusal."""
import numpy as np
import pytest
from PIL import Image

from segstudio.core.errors import BinaryMaskError, MaskReadError
from segstudio.core.io.binary_masks import format_binary_mapping, is_binary_mask, parse_binary_mapping
from segstudio.core.io.classes import ClassTable
from segstudio.core.io.masks import read_semantic_mask


@pytest.mark.parametrize("text, expected", [
    ("255:1", {0: 0, 255: 1}),
    ("255:255", {0: 0, 255: 255}),
    ("0:1, 255:0", {0: 1, 255: 0}),
    ("0:0,128:2,255:1", {0: 0, 128: 2, 255: 1}),
])
def test_parse_binary_mapping(text, expected):
    assert parse_binary_mapping(text) == expected
    assert parse_binary_mapping(format_binary_mapping(expected)) == expected


@pytest.mark.parametrize("text", ["255", "255=1", "a:1", "255:-1", "255:1,255:2", "70000:1", ""])
def test_parse_binary_mapping_refuses_bad_text(text):
    with pytest.raises(ValueError):
        parse_binary_mapping(text)


def test_is_binary_mask(tmp_path):
    binary = np.zeros((4, 5), np.uint8)
    binary[1:3, 1:4] = 255
    Image.fromarray(binary).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "zeros.png")
    Image.fromarray((binary // 255).astype(np.uint8)).save(tmp_path / "ids.png")
    palette = Image.fromarray(binary, "P")
    palette.putpalette([0, 0, 0] * 256)
    palette.save(tmp_path / "pal.png")
    assert is_binary_mask(tmp_path / "b.png")
    assert not is_binary_mask(tmp_path / "zeros.png")
    assert not is_binary_mask(tmp_path / "ids.png")
    assert not is_binary_mask(tmp_path / "pal.png")     # palette 255 is VOC's void border


def test_refusal_is_typed_and_names_the_option(tmp_path):
    mask = np.array([[0, 255], [255, 0]], np.uint8)
    Image.fromarray(mask).save(tmp_path / "m.png")
    with pytest.raises(BinaryMaskError) as info:
        read_semantic_mask(tmp_path / "m.png", ClassTable.voc())
    assert isinstance(info.value, MaskReadError) and info.value.option == "--binary-mapping"
    assert "--pred-binary-mapping 255:1" in str(BinaryMaskError("x.png", "--pred-binary-mapping"))


def test_find_binary_mask_probes_only_the_first_mask_files(tmp_path):
    from segstudio.core.io.binary_masks import find_binary_mask

    ids = np.zeros((4, 4), np.uint8)
    ids[1, 1] = 1
    binary = ids * 255
    for name, mask in (("a", ids), ("b", ids), ("c", binary), ("d", ids), ("e", binary)):
        Image.fromarray(mask).save(tmp_path / f"{name}.png")
    (tmp_path / "ann.json").write_text("{}")
    paths = [tmp_path / "ann.json", None, *(tmp_path / f"{n}.png" for n in "abcde")]
    assert find_binary_mask(paths) == tmp_path / "c.png"          # JSON and None are not masks
    assert find_binary_mask(paths, probe=2) is None
    assert find_binary_mask([tmp_path / "ann.json"] * 1000) is None
