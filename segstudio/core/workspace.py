"""Where a dataset's working files go: the project store and the corrected masks.

Normally beside the dataset (``<root>/.segstudio/``, ``<root>/corrected/``). Datasets shipped with
segstudio (the bundled demo under ``resources/``) are read-only in a wheel or a frozen bundle and
must stay pristine in a checkout, so their working files go to a per-user folder instead, keyed by
the dataset's path.
"""
from __future__ import annotations

import hashlib
from os import PathLike
from pathlib import Path

from segstudio.resources import ResourceNotFound, resources_root

__all__ = ["dataset_folder", "is_bundled", "user_project_dir"]


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
