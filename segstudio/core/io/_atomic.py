"""Crash-safe file writes shared by the core modules.

Lives apart from ``masks`` so that ``classes`` can save tables atomically without importing the mask
reader (which itself imports ``classes``). The public name is re-exported as
``segstudio.core.io.masks.atomic_write_bytes``.
"""
from __future__ import annotations

import os
import tempfile
from os import PathLike


def atomic_write_bytes(path: str | PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the new one, never half.

    Parameters
    ----------
    path : str or PathLike
        Destination file. Its folder must exist.
    data : bytes
        The complete new content.

    Notes
    -----
    The temporary file is created in the destination folder because ``os.replace`` is atomic only
    within one filesystem; it is fsynced before the rename so a power cut cannot leave an empty file
    under the final name.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    # A hidden name near the target keeps leftovers recognisable; truncated so long names stay legal.
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path)[:64] + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); keep the mode of the file being replaced, or use the
        # usual 0644, so a saved mask does not become unreadable to other users or tools.
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
