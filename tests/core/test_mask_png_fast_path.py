"""The plain-PNG fast path of mask reading gives what the general (Pillow header + OpenCV) path gives,
for good files bit for bit and for damaged files the same error."""
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from segstudio.core.io import masks, png_fast
from segstudio.core.io.classes import ClassInfo, ClassTable
from segstudio.core.io.masks import read_semantic_mask, write_index_png



def _table(n):
    return ClassTable([ClassInfo(i, f"c{i}", (i, 2 * i, 3 * i, 255)) for i in range(n)])


def _general(path, table, **kw):
    """What read_semantic_mask gives without the fast path: the array, or (error type, message)."""
    saved = masks._decode_plain_png
    masks._decode_plain_png = lambda *a, **k: None
    try:
        return _outcome(path, table, **kw)
    finally:
        masks._decode_plain_png = saved


def _outcome(path, table, **kw):
    try:
        return read_semantic_mask(path, table, **kw)
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the error itself
        return type(exc), str(exc)


def _same(a, b):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def _split_idat(data: bytes, parts: int) -> bytes:
    """The same PNG with its pixel data spread over ``parts`` IDAT chunks."""
    out, pos, idat = [data[:8]], 8, b""
    while pos < len(data):
        length, = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        chunk = data[pos:pos + 12 + length]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        else:
            if kind == b"IEND":
                step = -(-len(idat) // parts)
                for i in range(0, len(idat), step):
                    piece = idat[i:i + step]
                    out.append(struct.pack(">I", len(piece)) + b"IDAT" + piece
                               + struct.pack(">I", zlib.crc32(b"IDAT" + piece)))
            out.append(chunk)
        pos += 12 + length
    return b"".join(out)


def _files(tmp_path):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 4, (37, 53)).astype(np.uint8)
    ids[5:20, 10:40] = 2
    wide = rng.integers(0, 300, (29, 31)).astype(np.uint16)
    files = {}
    write_index_png(tmp_path / "index8.png", ids)
    write_index_png(tmp_path / "index16.png", wide)
    cv2.imwrite(str(tmp_path / "opencv_default.png"), ids)
    buf = io.BytesIO()
    Image.fromarray(ids).save(buf, "PNG")
    (tmp_path / "pillow.png").write_bytes(buf.getvalue())
    (tmp_path / "split.png").write_bytes(_split_idat((tmp_path / "index8.png").read_bytes(), 3))
    for name in ("index8", "index16", "opencv_default", "pillow", "split"):
        files[name] = tmp_path / f"{name}.png"
    return files


def test_good_masks_read_as_opencv_decodes_them(tmp_path):
    for name, path in _files(tmp_path).items():
        # Unfiltered files (segstudio's own) skip libpng; filtered ones still decode with OpenCV.
        with Image.open(path) as im:
            size = im.size
        unfiltered = png_fast._unfiltered_gray(np.fromfile(path, np.uint8), 33, *size,
                                            16 if name == "index16" else 8)
        assert (unfiltered is not None) == (name in ("index8", "index16", "split")), name
        fast = read_semantic_mask(path, None)
        reference = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if reference.dtype == np.uint16 and reference.max() <= 255:
            reference = reference.astype(np.uint8)
        assert fast.dtype == reference.dtype and np.array_equal(fast, reference), name
        table = _table(4) if name != "index16" else None
        if table is not None:
            assert _same(_outcome(path, table), _general(path, table)), name
            # The size check and its message are the general path's.
            assert _same(_outcome(path, table, expected_shape=(5, 5)),
                         _general(path, table, expected_shape=(5, 5))), name


def test_damaged_masks_fail_as_before(tmp_path):
    rng = np.random.default_rng(11)
    table = _table(4)
    for name, path in _files(tmp_path).items():
        data = path.read_bytes()
        damaged = tmp_path / f"damaged_{name}.png"
        for _ in range(25):
            b = bytearray(data)
            i = int(rng.integers(8, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
            damaged.write_bytes(bytes(b))
            assert _same(_outcome(damaged, table), _general(damaged, table)), (name, i)
        for cut in (len(data) - 12, len(data) // 2, 40):
            damaged.write_bytes(data[:cut])
            assert _same(_outcome(damaged, table), _general(damaged, table)), (name, cut)


@pytest.mark.parametrize("trailer", [b"junk", struct.pack(">I", 0) + b"IEND" + b"\0\0\0\0"])
def test_bytes_after_iend_take_the_general_path(tmp_path, trailer):
    path = tmp_path / "m.png"
    write_index_png(path, np.eye(8, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + trailer)
    assert masks._decode_plain_png(path) is None or png_fast._unfiltered_gray(
        np.fromfile(path, np.uint8), 33, 8, 8, 8) is None
    table = _table(2)
    assert _same(_outcome(path, table), _general(path, table))


def test_a_fifo_is_not_read_by_the_fast_path(tmp_path):
    import os
    fifo = tmp_path / "mask.png"
    os.mkfifo(fifo)
    assert masks._decode_plain_png(fifo) is None   # returns at once: never opened for reading
