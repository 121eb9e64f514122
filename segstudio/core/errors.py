"""Typed errors for bad input.

Every error carries the offending ``path`` and a human ``reason``; ``str(err)`` is
``"<path>: <reason>"`` so the CLI can print it on one line and the UI can show it as is.
"""
from __future__ import annotations

from os import PathLike


class SegStudioError(Exception):
    """Base class: bad input that the user can fix, with the file and the reason."""

    def __init__(self, path: str | PathLike | None, reason: str):
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class ImageReadError(SegStudioError):
    """An image file is missing, unreadable, corrupt or in an unsupported layout."""


class ImageTooLargeError(ImageReadError):
    """An image exceeds the configured pixel limit (decompression-bomb guard)."""


class MaskReadError(SegStudioError):
    """A mask file cannot be decoded into class or instance ids."""


class MaskSizeMismatch(MaskReadError):
    """A mask's height and width differ from its image's."""


class UnknownColoursError(MaskReadError):
    """A colour-coded mask holds colours absent from the class table.

    ``colours`` lists ``((r, g, b, a), pixel_count)`` pairs, most frequent first.
    """

    def __init__(self, path, colours):
        self.colours = list(colours)
        shown = ", ".join(f"{c} x{n}" for c, n in self.colours[:10])
        more = f" and {len(self.colours) - 10} more" if len(self.colours) > 10 else ""
        super().__init__(path, f"{len(self.colours)} colour(s) not in the class table: {shown}{more}")


class ClassIdOutOfRange(MaskReadError):
    """A mask holds class ids beyond the class table (other than the ignore index)."""


class ClassTableError(SegStudioError):
    """A class table file is malformed."""


class DatasetError(SegStudioError):
    """A dataset folder or annotation file cannot be opened."""


class CheckpointError(SegStudioError):
    """A model file is unsafe, malformed, or does not fit the architecture."""


class PredictionError(SegStudioError):
    """A prediction file is missing or does not match its image."""


class OutsideRootError(DatasetError):
    """A path inside a dataset leads out of it (a planted symbolic link, ``..`` or an absolute name).

    ``path`` is the offending link or name, ``root`` the folder it had to stay in.
    """

    def __init__(self, path, root, reason: str):
        self.root = str(root)
        super().__init__(path, reason)


class BinaryMaskError(MaskReadError):
    """A gray mask holds only 0 and 255: refused until the user says how to read it.

    ``255`` may mean foreground (class 1) or "ignore"; guessing would silently score the wrong
    thing. ``option`` names how to answer in the place the mask was met (the CLI flag, the GUI's
    dialog); ``str(err)`` tells it.
    """

    def __init__(self, path, option: str = "--binary-mapping"):
        self.option = option
        super().__init__(path, binary_mask_reason(option))


def binary_mask_reason(option: str) -> str:
    """Why a {0, 255} mask is refused and how to answer through ``option`` (``--binary-mapping``,
    ``--pred-binary-mapping`` or a sentence naming the GUI's dialog)."""
    if option.startswith("--"):
        how = (f"pass {option} 255:1 for background/foreground, or {option} 255:255 if 255 "
               "means 'ignore'")
    else:
        how = option
    return f"holds only the values 0 and 255, which reads as a binary mask: {how}"
