"""Where a dataset's working files go: the project store, the corrected masks, class colours.

Normally beside the dataset (``<root>/.segstudio/``, ``<root>/corrected/``). Datasets shipped with
segstudio (the bundled demo under ``resources/``) are read-only in a wheel or a frozen bundle and
must stay pristine in a checkout, so their working files go to a per-user folder instead, keyed by
the dataset's path.
"""
from __future__ import annotations

import hashlib
import json
from os import PathLike
from pathlib import Path

from segstudio.core.io._atomic import atomic_write_bytes
from segstudio.core.io.classes import ClassTable
from segstudio.core.io.paths import OutsideRootError, inside_root
from segstudio.resources import ResourceNotFound, resources_root

__all__ = ["dataset_folder", "is_bundled", "user_project_dir", "working_dir", "save_class_colours",
           "with_saved_colours", "COLOURS_FILE"]

WORK_DIR = ".segstudio"
COLOURS_FILE = "class_colours.json"


def dataset_folder(dataset_root: str | PathLike) -> Path:
    """The dataset's folder (the folder of a COCO JSON opened as a file)."""
    root = Path(dataset_root)
    return root.parent if root.is_file() else root


def is_bundled(dataset_root: str | PathLike) -> bool:
    """True for a dataset inside segstudio's own shipped resources."""
    try:
        shipped = resources_root().resolve()
    except ResourceNotFound:
        return False
    return dataset_folder(dataset_root).resolve().is_relative_to(shipped)


def user_project_dir(dataset_root: str | PathLike, base: str | PathLike | None = None) -> Path:
    """A per-user folder for one dataset: ``<base>/<name>-<hash of its path>``.

    ``base`` defaults to ``<platformdirs user data dir>/segstudio/projects``.
    """
    root = dataset_folder(dataset_root).resolve()
    if base is None:
        import platformdirs

        base = Path(platformdirs.user_data_dir("segstudio", appauthor=False)) / "projects"
    key = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    return Path(base) / f"{root.name or 'root'}-{key}"


def working_dir(dataset_root: str | PathLike) -> Path:
    """The folder for segstudio's own files about a dataset (``<root>/.segstudio`` or per-user).

    Raises
    ------
    OutsideRootError
        ``<root>/.segstudio`` is a link leading out of the dataset (the store and colours would be
        written elsewhere).
    """
    if is_bundled(dataset_root):
        return user_project_dir(dataset_root)
    folder = dataset_folder(Path(dataset_root).resolve())
    return inside_root(folder, folder / WORK_DIR)


def save_class_colours(dataset_root: str | PathLike, table: ClassTable) -> Path:
    """Remember the user's class colours for a dataset; returns the file written.

    Only colours are kept (by class name): the dataset's own class file and its masks are never
    rewritten, and decoders keep the table they were opened with.
    """
    folder = working_dir(dataset_root)
    path = inside_root(folder, folder / COLOURS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    colours = {info.name: list(info.color) for info in table.classes}
    atomic_write_bytes(path, json.dumps({"colours": colours}, indent=1).encode("utf-8"))
    return path


def with_saved_colours(dataset_root: str | PathLike, table: ClassTable) -> ClassTable:
    """``table`` with the colours saved by :func:`save_class_colours` (unknown names ignored).

    A missing or unreadable colours file leaves the table as it is: colours are a preference, not data.
    """
    try:
        folder = working_dir(dataset_root)
        path = inside_root(folder, folder / COLOURS_FILE)
    except OutsideRootError:
        return table
    try:
        colours = json.loads(path.read_text(encoding="utf-8"))["colours"]
    except (OSError, ValueError, KeyError, TypeError):
        return table
    for info in table.classes:
        rgba = colours.get(info.name) if isinstance(colours, dict) else None
        if isinstance(rgba, list) and len(rgba) == 4 and all(isinstance(v, int) and 0 <= v <= 255 for v in rgba):
            table = table.with_color(info.id, tuple(rgba))
    return table
