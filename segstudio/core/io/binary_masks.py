"""Binary masks: gray masks holding only 0 and 255, which ``read_semantic_mask`` refuses unless told
how to read them (a ``binary_mapping``: stored value -> class id).

255 may mean foreground (ISBI, most medical and matting sets) or "ignore" (a VOC-style void); the
user says which, through ``--binary-mapping 255:1`` in the CLI or the GUI's dialog, never a guess.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

from segstudio.core.io.masks import _decode, _present_values

__all__ = ["is_binary_mask", "parse_binary_mapping", "format_binary_mapping", "find_binary_mask"]


def is_binary_mask(path: str | PathLike) -> bool:
    """Whether ``path`` is a single-channel gray mask holding only 0 and 255 (255 present): the
    masks ``read_semantic_mask`` refuses without a ``binary_mapping``.

    Raises
    ------
    MaskReadError
        The file cannot be decoded.
    """
    decoded = _decode(path)
    if decoded.kind != "index":
        return False
    values = _present_values(decoded.values)
    return 255 in values and set(values.tolist()) <= {0, 255}


def parse_binary_mapping(text: str) -> dict[int, int]:
    """Parse ``"255:1"`` or ``"0:0,255:1"`` (stored value : class id) into a mapping.

    0 maps to 0 unless the text says otherwise, so ``"255:1"`` reads a {0, 255} mask as
    background/foreground and ``"255:255"`` keeps 255 as the ignore index.

    Raises
    ------
    ValueError
        A pair is not two integers in 0..65535 joined by ``:``, or a value is given twice.
    """
    mapping: dict[int, int] = {}
    for part in text.replace(" ", "").split(","):
        stored, sep, class_id = part.partition(":")
        if not sep or not stored.isdigit() or not class_id.isdigit():
            raise ValueError(f"'{part}' is not VALUE:CLASS (e.g. 255:1)")
        stored_v, class_v = int(stored), int(class_id)
        if stored_v > 65535 or class_v > 65535:
            raise ValueError(f"'{part}': values lie in 0..65535")
        if stored_v in mapping:
            raise ValueError(f"the value {stored_v} is mapped twice")
        mapping[stored_v] = class_v
    mapping.setdefault(0, 0)
    return mapping


def format_binary_mapping(mapping: dict[int, int]) -> str:
    """The text ``parse_binary_mapping`` reads back, e.g. ``"0:0,255:1"``."""
    return ",".join(f"{k}:{v}" for k, v in sorted(mapping.items()))


def find_binary_mask(paths, probe: int = 3) -> Path | None:
    """The first of the first ``probe`` mask files (image suffixes) in ``paths`` that is a {0, 255}
    mask, or ``None``. Used when a dataset or a predictions folder is opened, to ask how to read such masks
    before any is refused; unreadable files are left to the error they will raise when loaded."""
    from segstudio.core.errors import MaskReadError  # noqa: PLC0415
    from segstudio.core.io.datasets.base import IMAGE_EXTENSIONS  # noqa: PLC0415

    checked = 0
    for path in paths:
        # Mask files only: a COCO sample's "mask" is its JSON, the same file for every sample.
        if path is None or Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        checked += 1
        try:
            if is_binary_mask(path):
                return Path(path)
        except MaskReadError:
            pass
        if checked >= probe:
            break
    return None
