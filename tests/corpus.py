"""A reusable corpus of bad (and awkward but valid) inputs.

``make_bad_inputs(tmp_path)`` writes every case under ``tmp_path`` and returns a list of ``BadCase``.
``open_case(case)`` opens one through the core API exactly as the app does; it raises
``case.expected`` for a bad case and returns the loaded array (or dataset) for a valid one. The core
tests (``tests/core/test_bad_inputs.py``) run every case; the UI tests open the same files through
the GUI and check the message shown names ``case.path.name``.

Kinds:

* ``'image'``: ``path`` is an image file, opened with ``read_image`` (the GUI: as a one-image dataset).
* ``'mask'``: ``path`` is a mask file inside the folder dataset ``root`` (``images/`` + ``masks/``,
  the VOC class table), loaded with ``Sample.load_mask``.
* ``'dataset'``: ``path`` is a folder or a COCO JSON opened with ``open_dataset``; every sample's
  image and mask is then loaded.
* ``'classes'``: ``path`` is a class table (``.json``) or a ``class_names.txt``, read with
  ``load_class_table``.

Decisions recorded here:

* A 1x1 image is valid: it loads as a 1x1x3 array.
* File names that are not valid UTF-8 (Linux bytes names, seen by Python as lone surrogates) and
  non-ASCII names must work, for images and for the stems that pair images with masks.
* COCO cases whose segmentation once crashed pycocotools (polygons with NaN, infinity or huge
  coordinates: a segfault, or tens of GB allocated) are marked ``isolate``: the tests open them in a
  child process, so a regression fails one test instead of killing pytest.
* A FIFO (it would block ``open`` forever) and ``/dev/zero`` (read forever) are isolated as well.
* A file without read permission cannot be made under root (root reads anything): that case is
  skipped there, and a folder named like an image (``folder.png``) stands in as the always-runnable
  unreadable file.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segstudio.core.io.classes import voc_colormap
from segstudio.core.errors import (
    ClassIdOutOfRange,
    ClassTableError,
    DatasetError,
    ImageReadError,
    ImageTooLargeError,
    MaskReadError,
    MaskSizeMismatch,
    OutsideRootError,
    UnknownColoursError,
)

__all__ = ["BadCase", "make_bad_inputs", "open_case"]


@dataclass
class BadCase:
    """One input and what opening it must do.

    Attributes
    ----------
    name : str
        Short identifier (used as the pytest id).
    path : Path
        The file, folder or JSON to open; error messages must contain ``path.name``.
    kind : str
        ``'image'``, ``'mask'``, ``'dataset'`` or ``'classes'``.
    expected : type or None
        The exception opening must raise; ``None`` when the input is valid and must load.
    root : Path or None
        For ``'mask'`` cases: the folder dataset holding the mask.
    shape : tuple or None
        For valid cases: the shape of the loaded image / mask (dataset: the first sample's image).
    skip : str or None
        Why the case cannot run in this environment.
    """

    name: str
    path: Path
    kind: str
    expected: type[BaseException] | None
    root: Path | None = None
    shape: tuple[int, ...] | None = None
    skip: str | None = None
    isolate: bool = False


def open_case(case: BadCase):
    """Open ``case`` through the core API; return the image, mask or (fully loaded) dataset."""
    from segstudio.core.io.datasets import open_dataset
    from segstudio.core.io.images import read_image

    if case.kind == "image":
        return read_image(case.path)
    if case.kind == "classes":
        from segstudio.core.io.datasets.base import load_class_table

        return load_class_table(case.path)
    if case.kind == "mask":
        dataset = open_dataset(case.root)
        return dataset[dataset.index_of(os.path.splitext(case.path.name)[0])].load_mask()
    dataset = open_dataset(case.path)
    for sample in dataset:
        sample.load_image()
        sample.load_mask()
    return dataset


# --------------------------------------------------------------------------- file makers
def _png_bytes(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    assert ok
    return data.tobytes()


def _jpeg_bytes(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def _photo(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colour image: truncating its compressed form always loses real content."""
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([x * 4 % 256, y * 5 % 256, (x + y) * 3 % 256]).astype(np.uint8)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` RGB pixels, with one tiny IDAT: a bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _mask_dataset(base: Path, name: str, mask_file: str, mask_bytes: bytes,
                  image_shape: tuple[int, int] = (16, 20)) -> tuple[Path, Path]:
    """A folder dataset with one image ``a.png`` and the given mask bytes; returns (root, mask)."""
    root = base / name
    _write(root / "images" / "a.png", _png_bytes(_photo(*image_shape)))
    return root, _write(root / "masks" / mask_file, mask_bytes)


def coco_one_annotation(folder: Path, name: str, segmentation) -> Path:
    """A COCO JSON with one 2x2 image ``a.png`` and one annotation (id 7) of ``segmentation``."""
    _write(folder / "a.png", _png_bytes(np.zeros((2, 2, 3), np.uint8)))
    # json.dumps writes NaN and Infinity as bare words, which Python's (and pycocotools') reader accept.
    return _write(folder / name, json.dumps(
        {"images": [{"id": 1, "file_name": "a.png", "width": 2, "height": 2}],
         "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0,
                          "segmentation": segmentation}],
         "categories": [{"id": 1, "name": "cat"}]}).encode())


# --------------------------------------------------------------------------- the corpus
def make_bad_inputs(tmp_path: Path) -> list[BadCase]:
    """Write the corpus under ``tmp_path`` and describe each case."""
    base = Path(tmp_path)
    img = base / "images"
    photo_png = _png_bytes(_photo())
    photo_jpg = _jpeg_bytes(_photo())
    cases = [
        BadCase("zero_byte_png", _write(img / "zero.png", b""), "image", ImageReadError),
        BadCase("truncated_png", _write(img / "truncated.png", photo_png[: len(photo_png) // 2]),
                "image", ImageReadError),
        BadCase("zero_byte_jpeg", _write(img / "zero.jpg", b""), "image", ImageReadError),
        BadCase("truncated_jpeg", _write(img / "truncated.jpg", photo_jpg[: len(photo_jpg) * 6 // 10]),
                "image", ImageReadError),
        BadCase("garbage_named_png", _write(img / "garbage.png", bytes(range(256)) * 8), "image",
                ImageReadError),
        BadCase("png_named_jpg_is_fine", _write(img / "actually_png.jpg", photo_png), "image", None,
                shape=(48, 64, 3)),
        BadCase("one_pixel_image", _write(img / "one.png", _png_bytes(np.full((1, 1, 3), 7, np.uint8))),
                "image", None, shape=(1, 1, 3)),
        BadCase("oversized_header", _write(img / "bomb.png", _png_header_only(100_000, 100_000)),
                "image", ImageTooLargeError),
        BadCase("folder_named_like_image", img / "folder.png", "image", ImageReadError),
        BadCase("non_ascii_name", _write(img / "caf\u00e9 \u65e5\u672c \u00fc.png", photo_png), "image",
                None, shape=(48, 64, 3)),
    ]
    (img / "folder.png").mkdir()
    non_utf8 = img / os.fsdecode(b"latin1_caf\xe9.png")
    cases.append(BadCase("non_utf8_name", _write(non_utf8, photo_png), "image", None,
                         shape=(48, 64, 3)))
    locked = _write(img / "locked.png", photo_png)
    os.chmod(locked, 0)
    cases.append(BadCase("unreadable_file", locked, "image", ImageReadError,
                         skip="root can read a chmod 000 file" if os.geteuid() == 0 else None))

    masks = base / "masks"
    wrong = np.zeros((15, 20), np.uint8)
    root, path = _mask_dataset(masks, "wrong_size", "a.png", _png_bytes(wrong))
    cases.append(BadCase("mask_wrong_size", path, "mask", MaskSizeMismatch, root=root))
    colours = np.zeros((16, 20, 3), np.uint8)
    colours[:4] = (3, 2, 1)       # BGR on disk: RGB (1, 2, 3)
    colours[4:6] = (50, 100, 200)
    root, path = _mask_dataset(masks, "unknown_colours", "a.png", _png_bytes(colours))
    cases.append(BadCase("mask_unknown_colours", path, "mask", UnknownColoursError, root=root))
    beyond = np.zeros((16, 20), np.uint8)
    beyond[3, 3] = 40             # VOC has ids 0..20
    root, path = _mask_dataset(masks, "ids_beyond", "a.png", _png_bytes(beyond))
    cases.append(BadCase("mask_ids_beyond_table", path, "mask", ClassIdOutOfRange, root=root))
    deep = np.zeros((16, 20, 3), np.uint16)
    deep[:5] = (0, 0, 32768)
    root, path = _mask_dataset(masks, "colour16", "a.png", _png_bytes(deep))
    cases.append(BadCase("mask_16bit_colour", path, "mask", MaskReadError, root=root))
    deep_ids = np.zeros((16, 20), np.uint16)
    deep_ids[2:4, 2:4] = 300      # a 16-bit id mask is fine, but 300 is not a VOC class
    root, path = _mask_dataset(masks, "ids16", "a.png", _png_bytes(deep_ids))
    cases.append(BadCase("mask_16bit_ids_beyond_table", path, "mask", ClassIdOutOfRange, root=root))
    binary = np.zeros((16, 20), np.uint8)
    binary[5:9, 5:9] = 255
    root, path = _mask_dataset(masks, "binary", "a.png", _png_bytes(binary))
    cases.append(BadCase("mask_binary_0_255_without_mapping", path, "mask", MaskReadError, root=root))
    lossy = np.zeros((16, 20), np.uint8)
    lossy[4:8, 4:8] = 15
    root, path = _mask_dataset(masks, "jpeg_mask", "a.jpg", _jpeg_bytes(lossy))
    cases.append(BadCase("mask_saved_as_jpeg", path, "mask", MaskReadError, root=root))
    root, path = _mask_dataset(masks, "zero_mask", "a.png", b"")
    cases.append(BadCase("mask_zero_bytes", path, "mask", MaskReadError, root=root))
    valid = np.zeros((16, 20), np.uint8)
    valid[2:6, 3:9] = 15
    palette = Image.fromarray(valid, mode="P")
    palette.putpalette(voc_colormap(256).ravel().tolist())
    root = base / "masks" / "unicode_pair"
    _write(root / "images" / "\u00e9t\u00e9 \u2116 1.png", _png_bytes(_photo(16, 20)))
    (root / "masks").mkdir(parents=True)
    palette.save(root / "masks" / "\u00e9t\u00e9 \u2116 1.png")
    cases.append(BadCase("mask_non_ascii_name_pairs", root / "masks" / "\u00e9t\u00e9 \u2116 1.png",
                         "mask", None, root=root, shape=(16, 20)))

    sets = base / "datasets"
    broken = _write(sets / "broken_coco.json", b'{"images": [{"id": 1, "file_name": "a.png",')
    cases.append(BadCase("coco_broken_json", broken, "dataset", DatasetError))
    missing_keys = _write(sets / "coco_missing_keys.json", json.dumps(
        {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [],
         "categories": [{"id": 1, "name": "cat"}]}).encode())
    cases.append(BadCase("coco_missing_keys", missing_keys, "dataset", DatasetError))
    no_seg = _write(sets / "coco_no_segmentation.json", json.dumps(
        {"images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
         "annotations": [{"id": 9, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]}],
         "categories": [{"id": 1, "name": "cat"}]}).encode())
    cases.append(BadCase("coco_annotation_without_segmentation", no_seg, "dataset", DatasetError))
    cases.append(BadCase("missing_folder", sets / "no_such_dataset", "dataset", DatasetError))
    (sets / "empty_dataset").mkdir(parents=True)
    cases.append(BadCase("empty_folder", sets / "empty_dataset", "dataset", DatasetError))
    _write(sets / "unknown_layout" / "notes.txt", b"not a dataset")
    cases.append(BadCase("unknown_layout", sets / "unknown_layout", "dataset", DatasetError))
    (sets / "images_without_images" / "images").mkdir(parents=True)
    _write(sets / "images_without_images" / "images" / "readme.txt", b"x")
    cases.append(BadCase("images_folder_without_images", sets / "images_without_images", "dataset",
                         DatasetError))
    _write(sets / "not_a_dataset.txt", b"hello")
    cases.append(BadCase("plain_text_file", sets / "not_a_dataset.txt", "dataset", DatasetError))
    coco = sets / "coco_segmentations"
    rle = {"size": [2, 2]}
    # Counts that do not add up to height x width: too few left pixels uninitialised (a different mask
    # on every load), too many wrote past the buffer. "12" is the compressed form of [1, 2].
    # Too many wrote past the buffer (a negative count is a huge unsigned one): those are isolated.
    for case, counts, isolate in [("short_rle", [1], False), ("short_string_rle", "12", False),
                                  ("long_rle", [1, 5], True), ("garbled_string_rle", "1~~", True),
                                  ("negative_rle", [3, -1, 2], True)]:
        cases.append(BadCase(f"coco_{case}", coco_one_annotation(coco, f"{case}.json",
                                                                  {**rle, "counts": counts}),
                             "dataset", DatasetError, isolate=isolate))
    cases.append(BadCase("coco_full_string_rle_is_fine", coco_one_annotation(
        coco, "full_string_rle.json", {**rle, "counts": "13"}), "dataset", None, shape=(2, 2, 3)))
    for case, polygon in [("nan", [0, 0, 1, float("nan"), 1, 1]),
                          ("infinite", [0, 0, 1, float("inf"), 1, 1]),
                          ("huge", [0, 0, 1e8, 0, 1e8, 1e8]),
                          ("two_points", [0, 0, 1, 1]), ("odd_length", [0, 0, 1, 0, 1, 1, 0]),
                          ("not_numbers", [0, 0, "1", 0, 1, 1]), ("booleans", [0, 0, True, 0, 1, 1])]:
        cases.append(BadCase(f"coco_polygon_{case}", coco_one_annotation(
            coco, f"polygon_{case}.json", [polygon]), "dataset", DatasetError, isolate=True))
    cases.append(BadCase("coco_polygon_slightly_outside_is_fine", coco_one_annotation(
        coco, "polygon_outside.json", [[-1, -1, 3, -1, 3, 3, -1, 3]]), "dataset", None,
        shape=(2, 2, 3)))

    for case, crowd in [("string", "no"), ("two", 2), ("null", None)]:
        path = coco_one_annotation(coco, f"iscrowd_{case}.json", [[0, 0, 1, 0, 1, 1]])
        data = json.loads(path.read_bytes())
        data["annotations"][0]["iscrowd"] = crowd
        path.write_text(json.dumps(data))
        cases.append(BadCase(f"coco_iscrowd_{case}", path, "dataset", DatasetError))
    # file_names leading out of the dataset: refused although the file is there (issue 10, item 7)
    escape = sets / "coco_escape"
    secret = _write(base / "outside_secret.png", _png_bytes(np.zeros((2, 2, 3), np.uint8)))
    for case, file_name in [("dotdot", os.path.relpath(secret, escape)), ("absolute", str(secret))]:
        path = coco_one_annotation(escape, f"{case}.json", [[0, 0, 1, 0, 1, 1]])
        data = json.loads(path.read_text())
        data["images"][0]["file_name"] = file_name
        path.write_text(json.dumps(data))
        cases.append(BadCase(f"coco_file_name_{case}_outside_root", path, "dataset", OutsideRootError))

    tables = base / "class_tables"
    cases.append(BadCase("class_table_duplicate_names", _write(tables / "duplicates.json", json.dumps(
        {"classes": ["background", "car", "road", "car"]}).encode()), "classes", ClassTableError))
    depth = 100_000  # far beyond the parser's recursion limit
    cases.append(BadCase("class_table_nested_too_deeply", _write(
        tables / "nested.json", b'{"classes": ' + b"[" * depth + b"]" * depth + b"}"), "classes",
        ClassTableError))
    cases.append(BadCase("class_names_from_dev_zero", Path("/dev/zero"), "classes", ClassTableError,
                         isolate=True))
    for name, kind in [("fifo_classes.json", "classes"), ("fifo_class_names.txt", "classes"),
                       ("fifo_coco.json", "dataset")]:
        os.mkfifo(tables / name)
        cases.append(BadCase(name.replace(".", "_"), tables / name, kind,
                             ClassTableError if kind == "classes" else DatasetError, isolate=True))
    return cases
