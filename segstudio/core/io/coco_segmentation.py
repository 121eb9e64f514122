"""COCO segmentations checked before pycocotools touches them: polygons and RLE counts (plain or
compressed) from annotation files and from results files alike."""
from __future__ import annotations

__all__ = ["decompress_counts", "polygon_problem", "rle_problem"]

# Polygon vertices may lie a little outside the image (annotation tools allow it), but pycocotools
# rasterises every edge at 5x resolution: huge coordinates allocate gigabytes, NaN segfaults.
_POLYGON_REACH = 4


def polygon_problem(polygons: list, height: int, width: int) -> str | None:
    """Why pycocotools must not rasterise ``polygons``, or ``None`` when it safely can."""
    reach = _POLYGON_REACH * max(height, width, 1)
    for i, polygon in enumerate(polygons):
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            return (f"polygon {i} is not a list of x, y pairs with at least 3 points "
                    f"({len(polygon) if isinstance(polygon, list) else type(polygon).__name__})")
        for value in polygon:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return f"polygon {i} holds a coordinate that is not a number ({value!r})"
            if not -reach <= value <= reach:  # also false for NaN
                return f"polygon {i} holds the coordinate {value}, far outside the {width}x{height} image"
    return None


def rle_problem(counts: list | bytes, pixels: int) -> str | None:
    """Why RLE ``counts`` (a list, or COCO's compressed bytes) do not describe ``pixels`` pixels.

    pycocotools trusts the counts: too few leave pixels uninitialised, too many write past the mask.
    """
    if isinstance(counts, bytes):
        counts = decompress_counts(counts)
        if counts is None:
            return "the compressed RLE counts are garbled"
    elif not isinstance(counts, list):
        return f"the RLE counts are neither a list nor a string ({type(counts).__name__})"
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return "the RLE counts are not all non-negative integers"
    total = sum(counts)
    if total != pixels:
        return f"the RLE counts cover {total} pixels, the image has {pixels}"
    return None


def decompress_counts(data: bytes) -> list[int] | None:
    """COCO's compressed counts (pycocotools' ``rleFrString``): 5 bits per character from '0', a 6th
    bit for "more follows", a sign bit in the last, each count after the second a delta; ``None`` when
    a character is out of range or a count is cut off."""
    counts: list[int] = []
    pos = 0
    while pos < len(data):
        value = shift = 0
        more = True
        while more:
            if pos >= len(data) or not 48 <= data[pos] < 48 + 64:
                return None
            chunk = data[pos] - 48
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            pos += 1
            shift += 5
            if not more and chunk & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts
