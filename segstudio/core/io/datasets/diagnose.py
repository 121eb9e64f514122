"""Why an evaluation found nothing to score: what the dataset's format looked for and what was there.

An evaluation that scores no image is not a success with empty figures: a COCO file read as a VOC
tree without masks, or ``instances/`` without ``masks/``, used to end with "0 evaluated" and exit 0.
These functions turn that into one line naming what was looked for (the format's
``ground_truth_layout``) and what was found (images, semantic and instance masks, the folders at
the root), which the CLI prints as an error.
"""
from __future__ import annotations

import os
from typing import Iterable

from segstudio.core.io.datasets.base import Dataset, subfolders

__all__ = ["describe_found", "missing_ground_truth", "nothing_evaluated"]


def describe_found(dataset: Dataset) -> str:
    """What the dataset holds, in words: images, semantic and instance masks, the root's folders."""
    images = len(dataset)
    semantic = sum(1 for s in dataset if s.mask_path is not None)
    instances = sum(1 for s in dataset if s.instance_path is not None)
    found = (f"{images} image(s), {semantic} with a semantic mask, {instances} with an instance mask "
             f"({dataset.format} layout)")
    root = dataset.root
    if root.is_dir():
        folders = subfolders(root)
        shown = ", ".join(f"{name}/" for name in folders[:8]) + (" …" if len(folders) > 8 else "")
        found += f"; folders in {root}: {shown or 'none'}"
        jsons = _json_files(root)
        if jsons:
            found += f"; JSON files: {', '.join(jsons[:4])}"
    return found


def _json_files(folder) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if e.name.lower().endswith(".json") and e.is_file())
    except OSError:
        return []


def missing_ground_truth(dataset: Dataset) -> str | None:
    """The error line when no sample has any ground truth (so nothing can be evaluated), else ``None``."""
    if dataset.has_ground_truth:
        return None
    return (f"{dataset.root}: nothing to evaluate: no ground truth found; looked for "
            f"{dataset.kind.ground_truth_layout}; found {describe_found(dataset)}")


def nothing_evaluated(dataset: Dataset, report: dict, prediction_names: Iterable[str] | None = None,
                      predictions: str = "") -> str | None:
    """The error line when ``report`` (``evaluate``'s) scored no image at all, else ``None``.

    Parameters
    ----------
    prediction_names : iterable of str, optional
        The names the predictions go by (a folder's file stems), to show beside the images' names
        when none of them matched.
    predictions : str
        What the predictions were (a folder, a model), for the message.
    """
    if report.get("images") or "instances" in report:
        return None
    with_semantic = [s.name for s in dataset if s.mask_path is not None]
    if not with_semantic:
        line = (f"{dataset.root}: nothing evaluated: no image has a semantic ground-truth mask; "
                f"looked for {dataset.kind.ground_truth_layout}; found {describe_found(dataset)}")
        if any(s.instance_path is not None for s in dataset):
            line += " (instance masks are scored only against instance predictions)"
        return line
    names = sorted(prediction_names or [])
    where = f" in {predictions}" if predictions else ""
    line = (f"{dataset.root}: nothing evaluated: none of the {len(with_semantic)} image(s) with ground "
            f"truth has a prediction{where}; images are named like '{with_semantic[0]}'")
    if names:
        line += f", the {len(names)} prediction file(s) like '{names[0]}'"
    elif prediction_names is not None:
        line += ", and there are no prediction files"
    return line
