"""Keep the paths segstudio reads and writes inside the folder they belong to.

A dataset is untrusted input: a symbolic link planted as ``corrected``, ``corrected/masks``,
``.segstudio`` or a saved mask, or a COCO ``file_name`` such as ``../../etc/x`` or ``/tmp/x``, would
otherwise make a save overwrite files elsewhere, create the project store elsewhere, or load labels
from elsewhere. :func:`inside_root` resolves every link (``os.path.realpath``, also through parts that
do not exist yet) and refuses a path whose real location is not under the real root.
"""
from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

from segstudio.core.errors import OutsideRootError

__all__ = ["inside_root", "is_inside_root", "OutsideRootError"]


def _real(path: str | PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _under(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def is_inside_root(root: str | PathLike, path: str | PathLike) -> bool:
    """Whether ``path``, links resolved, lies in ``root`` (links resolved too)."""
    return _under(_real(path), _real(root))


def inside_root(root: str | PathLike, path: str | PathLike) -> Path:
    """``path`` (unchanged) when its real location is inside ``root``'s.

    Parameters
    ----------
    root : path
        The folder ``path`` must stay in (itself may be a link: it is resolved first).
    path : path
        The file or folder to check; a relative path is taken relative to ``root``. Parts that do
        not exist yet are fine (a save creates them).

    Raises
    ------
    OutsideRootError
        The path leads out of ``root``; the error names the first link on the way that does so (or
        the path itself for ``..`` or an absolute name) and where it leads.
    """
    root = Path(root)
    path = Path(path)
    full = path if path.is_absolute() else root / path
    real_root = _real(root)
    real = _real(full)
    if _under(real, real_root):
        return path
    link = None
    # Name the first link on the way out: the thing the user has to remove.
    probe = Path(os.path.abspath(full))
    for part in reversed([probe, *probe.parents]):
        if os.path.islink(part) and not _under(_real(part), real_root) and is_inside_root(root, part.parent):
            link = part
            break
    if link is not None:
        raise OutsideRootError(link, root, f"is a link to {_real(link)}, outside {root}; "
                               "refusing to follow it")
    raise OutsideRootError(path, root, f"leads to {real}, outside {root}; refusing to follow it")
