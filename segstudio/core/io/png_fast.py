"""Plain PNG masks without Pillow or libpng's unfiltering: the common case of a folder evaluation.

Checked from the file's own bytes (IHDR, every chunk before the pixels, CRCs); anything unusual is
left to the general path of :mod:`segstudio.core.io.masks` and its errors. Split out of masks.py.
"""
from __future__ import annotations

import os
import stat
import struct
import zlib

import cv2
import numpy as np

from segstudio.core.errors import ImageReadError
from segstudio.core.io.images import _check_limit, _Header

__all__ = ["read_plain_png"]

# Chunks a plain gray/colour PNG may carry before its pixels without changing how Pillow opens it.
_PLAIN_CHUNKS = frozenset({b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"sBIT", b"bKGD", b"tIME"})
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_plain_png(path, expected_shape=None) -> tuple[np.ndarray, bool] | None:
    """The common case without Pillow: an 8/16-bit gray, RGB or RGBA PNG, checked from its own bytes.

    Opening the header with Pillow costs as much as decoding a 256x256 mask. This reads the file
    once, checks the IHDR and every chunk before the pixels (CRC, type) itself and hands the bytes to
    OpenCV -- exactly what ``_decode`` does for these layouts after Pillow's header read. Anything
    else (palette, gray+alpha, low bit depths, a chunk Pillow might treat specially, a size or
    pixel-limit problem, a file OpenCV refuses) returns ``None`` so that ``_decode`` takes its
    general path and raises its usual errors.

    Returns ``(pixels, is_index)``: ``is_index`` when the file was an unfiltered gray PNG inflated here
    (the ids as stored), else OpenCV's decode of the file.
    """
    try:
        # Regular files only: a FIFO or a device would block or never end (the general path refuses them).
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError):
        return None
    head = data[:33].tobytes()
    if len(head) < 33 or head[:8] != _SIGNATURE or head[8:16] != b"\x00\x00\x00\rIHDR":
        return None
    if zlib.crc32(head[12:29]) != int.from_bytes(head[29:33], "big"):
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if (colour not in (0, 2, 6) or depth not in (8, 16) or compression or filtering or interlace > 1
            or width == 0 or height == 0):
        return None
    if expected_shape is not None and (height, width) != tuple(expected_shape)[:2]:
        return None
    try:
        _check_limit(path, _Header(width, height, "PNG", 1, False), None)
    except ImageReadError:
        return None
    pos, size = 33, data.size
    while True:
        if pos + 8 > size:
            return None
        chunk = data[pos:pos + 8].tobytes()
        length, kind = int.from_bytes(chunk[:4], "big"), chunk[4:]
        if kind == b"IDAT":
            break
        if kind not in _PLAIN_CHUNKS or pos + 12 + length > size:
            return None
        body = data[pos + 4:pos + 8 + length].tobytes()
        if zlib.crc32(body) != int.from_bytes(data[pos + 8 + length:pos + 12 + length].tobytes(), "big"):
            return None
        pos += 12 + length
    if colour == 0:
        unfiltered = _unfiltered_gray(data, pos, width, height, depth)
        if unfiltered is not None:
            return unfiltered, True
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (height, width):
        return None
    return arr, False


def _unfiltered_gray(data: np.ndarray, pos: int, width: int, height: int, depth: int) -> np.ndarray | None:
    """The ids of a gray PNG whose rows carry no filter (what ``write_index_png`` writes), or None.

    Such a file is its zlib stream and nothing else: inflating it is most of what decoding costs,
    and libpng's per-row machinery costs several times more than the inflate. Only a file of
    strictly valid structure qualifies (IDAT chunks with good CRCs, then an empty IEND at the very
    end, one complete zlib stream of exactly the expected size, every row filter 0); anything else
    returns ``None`` and goes to OpenCV.
    """
    parts, size = [], data.size
    while True:
        if pos + 12 > size:
            return None
        length = int.from_bytes(data[pos:pos + 4].tobytes(), "big")
        if pos + 12 + length > size:
            return None
        body = data[pos + 4:pos + 8 + length].tobytes()
        if zlib.crc32(body) != int.from_bytes(data[pos + 8 + length:pos + 12 + length].tobytes(), "big"):
            return None
        kind = body[:4]
        pos += 12 + length
        if kind == b"IEND":
            if length or pos != size:
                return None
            break
        if kind != b"IDAT":
            return None
        parts.append(body[4:])
    row = 1 + width * depth // 8
    expected = row * height
    inflater = zlib.decompressobj()
    try:
        # The first row's filter byte first: a filtered file (OpenCV's and Pillow's defaults) leaves
        # after inflating one byte.
        raw = inflater.decompress(b"".join(parts), 1)
        if raw != b"\x00":
            return None
        raw += inflater.decompress(inflater.unconsumed_tail, expected)
    except zlib.error:
        return None
    if len(raw) != expected or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, row)
    if rows[:, 0].any():
        return None
    if depth == 8:
        return rows[:, 1:].copy()
    return rows[:, 1:].copy().view(">u2").astype(np.uint16)
