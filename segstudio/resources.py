"""Locate files shipped under ``resources/``.

The same lookup serves a source checkout, an editable install, a wheel and a
PyInstaller bundle:

1. ``$SEGSTUDIO_RESOURCES`` when set (tests, custom deployments);
2. ``<sys._MEIPASS>/resources`` inside a frozen bundle;
3. ``segstudio/_resources`` inside an installed wheel (copied there at build time
   by ``setup.py``);
4. ``<repo>/resources`` for a source checkout or an editable install.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


class ResourceNotFound(FileNotFoundError):
    """A file expected under ``resources/`` is missing from this installation."""


@lru_cache(maxsize=1)
def resources_root() -> Path:
    """Return the directory that holds the shipped resources."""
    candidates = []
    env = os.environ.get("SEGSTUDIO_RESOURCES")
    if env:
        candidates.append(Path(env))
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        candidates.append(Path(meipass) / "resources")
    candidates.append(_PACKAGE_DIR / "_resources")
    candidates.append(_PACKAGE_DIR.parent / "resources")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise ResourceNotFound(
        "segstudio resources not found; looked in: " + ", ".join(str(c) for c in candidates)
    )


def resource_path(*parts: str) -> Path:
    """Return the path of a shipped resource, raising ``ResourceNotFound`` if absent."""
    path = resources_root().joinpath(*parts)
    if not path.exists():
        raise ResourceNotFound(f"{path}: resource missing from this installation")
    return path
