"""Crash-safe file writes shared by the core modules.

Lives apart from ``masks`` so that ``classes`` can save tables atomically without importing the mask
reader (which itself imports ``classes``). The public name is re-exported as
``segstudio.core.io.masks.atomic_write_bytes``.
"""
from __future__ import annotations

import os
import re
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
    prefix = "." + os.path.basename(path)[:64] + "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    except OSError as exc:
        # mkstemp names its random file; the caller knows only the destination.
        raise type(exc)(exc.errno, exc.strerror, path) from exc
    _remove_leftovers(folder, prefix, keep=tmp)
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


def _remove_leftovers(folder: str, prefix: str, keep: str) -> None:
    """Delete the temporary files an earlier save of the same file left when it was killed.

    Saves of one file are not run concurrently (the app saves a document from one place), so any
    other temporary file of that name is a dead one. mkstemp's random part is 8 characters.
    """
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}\.tmp")
    try:
        with os.scandir(folder) as entries:
            dead = [e.path for e in entries if pattern.fullmatch(e.name) and e.path != keep]
    except OSError:
        return
    for leftover in dead:
        try:
            os.unlink(leftover)
        except OSError:
            pass  # cleaning up is a courtesy; the save itself goes on
