"""Dataset formats as strategy objects: detection, ``dataset.kind``, where corrections go, and no code
left that switches on a format's name."""
import ast
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import segstudio
from segstudio.core.errors import DatasetError
from segstudio.core.io.classes import ClassTable
from segstudio.core.io.datasets import (
    CITYSCAPES,
    COCO,
    DATASET_FORMATS,
    FOLDER,
    FORMATS,
    IMAGE,
    VOC,
    Dataset,
    DatasetFormat,
    FolderFormat,
    Sample,
    detect_dataset_format,
    detect_format,
    find_format,
    open_dataset,
)
from segstudio.core.io.saving import destination_for, save_ground_truth
from tests.core.test_datasets import make_cityscapes, make_coco, make_folder, make_voc, write_index, write_rgb


def fixture_paths(tmp_path):
    """One dataset of every layout, built by the dataset tests' own writers: name -> (path, format)."""
    make_folder(tmp_path / "folder")
    make_voc(tmp_path / "voc")
    json_path, *_ = make_coco(tmp_path / "coco")
    make_cityscapes(tmp_path / "cityscapes")
    write_index(tmp_path / "folder_annotations" / "annotations" / "a.png", np.zeros((3, 3), np.uint8))
    write_rgb(tmp_path / "folder_annotations" / "images" / "a.png", 3, 3)
    return {
        "folder": (tmp_path / "folder", FOLDER),
        "folder with annotations/ masks": (tmp_path / "folder_annotations", FOLDER),
        "voc": (tmp_path / "voc", VOC),
        "coco folder": (tmp_path / "coco", COCO),
        "coco json": (json_path, COCO),
        "cityscapes": (tmp_path / "cityscapes", CITYSCAPES),
        "image": (write_rgb(tmp_path / "photo.png", 6, 7), IMAGE),
    }


def test_registry_lists_one_object_per_format():
    assert all(isinstance(f, DatasetFormat) for f in DATASET_FORMATS)
    assert sorted(FORMATS) == ["cityscapes", "coco", "folder", "image", "voc"]
    assert len(set(FORMATS)) == len(DATASET_FORMATS)
    for fmt in DATASET_FORMATS:
        assert find_format(fmt.name) is fmt
    assert find_format("auto") is None and find_format("COCO") is None


def test_each_format_detects_its_own_fixture_and_not_the_others(tmp_path):
    for label, (path, expected) in fixture_paths(tmp_path).items():
        detected = {f for f in DATASET_FORMATS if f.detect(path)}
        # The plain folder is the catch-all for any folder with images/, so it also accepts a COCO
        # folder; detection asks COCO first.
        allowed = {expected, FOLDER} if label == "coco folder" else {expected}
        assert detected == allowed, label
        assert detect_dataset_format(path) is expected, label
        assert detect_format(path) == expected.name, label


def test_open_dataset_gives_the_format_object_as_kind(tmp_path):
    for label, (path, expected) in fixture_paths(tmp_path).items():
        split = "val" if expected in (VOC, CITYSCAPES) else None
        for requested in ("auto", expected.name, expected):
            ds = open_dataset(path, format=requested, split=split)
            assert ds.kind is expected, (label, requested)
            assert ds.format == expected.name                     # the name stays for reports
            assert f"format={expected.name!r}" in repr(ds)


def test_open_dataset_refuses_unknown_names_and_masks_with_other_formats(tmp_path):
    paths = fixture_paths(tmp_path)
    voc_path = paths["voc"][0]
    with pytest.raises(DatasetError, match="unknown dataset format 'pascal'"):
        open_dataset(voc_path, format="pascal")
    with pytest.raises(DatasetError, match="only works with the folder format, not 'voc'"):
        open_dataset(voc_path, format=VOC, masks=voc_path)
    ds = open_dataset(paths["folder"][0] / "images", format=FOLDER, masks=paths["folder"][0] / "masks")
    assert ds.kind is FOLDER and all(s.mask_path is not None for s in ds if s.name != "photo")


def test_dataset_accepts_a_format_name_for_compatibility(tmp_path):
    sample = Sample("a", tmp_path / "a.png")
    assert Dataset(tmp_path, "voc", ClassTable.voc(), [sample]).kind is VOC
    assert Dataset(tmp_path, COCO, ClassTable.voc(), [sample]).kind is COCO
    with pytest.raises(DatasetError, match="unknown dataset format 'pascal'"):
        Dataset(tmp_path, "pascal", ClassTable.voc(), [sample])


# --------------------------------------------------------------------------- where corrections go
def where(ds, name, out=None, overwrite=False):
    sample = ds[ds.index_of(name)]
    return (ds.kind.destination(ds, sample, out, overwrite=overwrite),
            ds.kind.saved_labels(ds, sample, out, overwrite=overwrite),
            ds.kind.output_kind(ds, sample))


def test_folder_corrections_mirror_the_mask_folder(tmp_path):
    make_folder(tmp_path)
    ds = open_dataset(tmp_path)
    assert where(ds, "img2") == (tmp_path / "corrected" / "masks" / "img2.png",) * 2 + ("index",)
    assert where(ds, "photo") == (tmp_path / "corrected" / "photo.png",) * 2 + ("palette",)
    mask = tmp_path / "masks" / "img2.png"
    assert where(ds, "img2", overwrite=True)[:2] == (mask, mask)
    # an output folder that is the dataset itself would overwrite: refused, and nothing to reload
    with pytest.raises(ValueError, match="overwrite the original"):
        where(ds, "img2", out=tmp_path)
    assert ds.kind.saved_labels(ds, ds[ds.index_of("img2")], tmp_path) is None


def test_voc_corrections_mirror_segmentation_class(tmp_path):
    root, _, _ = make_voc(tmp_path)
    ds = open_dataset(tmp_path, split="val")
    assert ds.root == root
    dest = root / "corrected" / "SegmentationClass" / "2008_000003.png"
    assert where(ds, "2008_000003") == (dest, dest, "palette")
    out = tmp_path / "elsewhere"
    assert where(ds, "2008_000003", out=out)[:2] == (out / "SegmentationClass" / "2008_000003.png",) * 2


def test_cityscapes_corrections_are_label_ids_except_colour_masks(tmp_path):
    make_cityscapes(tmp_path)
    ds = open_dataset(tmp_path)
    gt = tmp_path / "corrected" / "gtFine" / "val" / "frankfurt"
    labelled = gt / "frankfurt_000000_000294_gtFine_labelIds.png"
    assert where(ds, "frankfurt_000000_000294") == (labelled, labelled, "labelIds")
    coloured = gt / "frankfurt_000001_000019_gtFine_color.png"
    assert where(ds, "frankfurt_000001_000019") == (coloured, coloured, "colour")
    fresh = tmp_path / "corrected" / "aachen_000000_000019_gtFine_labelIds.png"   # no ground truth
    assert where(ds, "aachen_000000_000019") == (fresh, fresh, "labelIds")


def test_coco_corrections_go_to_a_copy_of_the_json_that_is_their_label_source(tmp_path):
    json_path, *_ = make_coco(tmp_path)
    ds = open_dataset(tmp_path)
    dest = tmp_path / "corrected" / "annotations" / "instances_val.json"
    assert where(ds, "first") == (dest, dest, "coco")
    assert where(ds, "first", overwrite=True) == (json_path, json_path, "coco")
    sample = ds[ds.index_of("first")]
    result = save_ground_truth(ds, sample, np.zeros((40, 50), np.uint8))
    assert result.path == dest and dest.is_file()
    # the saved JSON is read back for this sample (issue 10): one JSON, decoded per image
    reloaded = replace(sample, mask_path=ds.kind.saved_labels(ds, sample))
    assert not reloaded.load_mask().any() and sample.load_mask().any()


def test_coco_without_annotations_writes_beside_the_json(tmp_path):
    write_rgb(tmp_path / "a.png", 4, 5)
    path = tmp_path / "unlabelled.json"
    path.write_text('{"images": [{"id": 1, "file_name": "a.png", "width": 5, "height": 4}], '
                    '"categories": [{"id": 1, "name": "cat"}]}')
    ds = open_dataset(path)
    assert ds.kind is COCO and ds[0].mask_path is None
    assert where(ds, "a") == (tmp_path / "corrected" / "unlabelled.json",) * 2 + ("coco",)


def test_lone_image_corrections_go_to_corrected_beside_it(tmp_path):
    path = write_rgb(tmp_path / "photo.png", 6, 7)
    ds = open_dataset(path)
    assert where(ds, "photo") == (tmp_path / "corrected" / "photo.png",) * 2 + ("palette",)


def test_saving_asks_the_dataset_format(tmp_path):
    """A format of one's own decides the destination for save_ground_truth and destination_for."""

    class FlatFolder(FolderFormat):
        name = "flat"

        def destination(self, dataset, sample, output_dir=None, *, overwrite=False):
            return Path(output_dir or dataset.root / "flat") / f"{sample.name}.png"

    make_folder(tmp_path)
    listed = open_dataset(tmp_path)
    ds = Dataset(listed.root, FlatFolder(), listed.class_table, listed.samples)
    sample = ds[ds.index_of("img1")]
    labels = sample.load_mask()
    labels[labels == 255] = 0
    assert destination_for(ds, sample) == tmp_path / "flat" / "img1.png"
    result = save_ground_truth(ds, sample, labels)
    assert result.path == tmp_path / "flat" / "img1.png" and result.kind == "index"
    np.testing.assert_array_equal(cv2.imread(str(result.path), cv2.IMREAD_UNCHANGED), labels)


# --------------------------------------------------------------------------- no string switches
# read_instance_mask's ``format`` is how an instance PNG encodes ids ('voc' | 'cityscapes' | 'ids'),
# not a dataset format.
ALLOWED = {("core/io/masks.py", "read_instance_mask")}


def _names_in(node) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_names_in(e) for e in node.elts)) if node.elts else set()
    return set()


def _switches(tree: ast.AST, names: set[str]):
    """(function, line, source) of every comparison or match case against a format name."""
    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        hit = None
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if set().union(*(_names_in(o) for o in operands)) & names:
                hit = node
        elif isinstance(node, ast.MatchValue) and _names_in(node.value) & names:
            hit = node
        if hit is not None:
            yield function, hit.lineno, ast.unparse(hit)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, function)

    yield from visit(tree, None)


def test_no_module_switches_on_a_format_name():
    package = Path(segstudio.__file__).parent
    names = set(FORMATS)
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        for function, line, source in _switches(ast.parse(path.read_text(encoding="utf-8")), names):
            if (rel, function) not in ALLOWED:
                found.append(f"{rel}:{line}: {source}")
    assert not found, "ask dataset.kind instead of comparing format names:\n" + "\n".join(found)


def test_the_switch_finder_finds_switches():
    code = ("def f(dataset, fmt):\n"
            "    if dataset.format == 'coco': pass\n"
            "    if fmt in ('voc', 'folder'): pass\n"
            "    match fmt:\n"
            "        case 'image': pass\n"
            "    if dataset.kind is COCO and fmt == 'auto': pass\n")
    assert [line for _, line, _ in _switches(ast.parse(code), set(FORMATS))] == [2, 3, 5]
