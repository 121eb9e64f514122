"""Which labels each image trains on, the train/validation split and the dataset fingerprint.

No torch here. The label policy follows the editor's: an image's saved correction (where the
dataset's format writes it, ``DatasetFormat.saved_labels``) wins over its original annotation, as
``ReviewSession.sample_to_load`` does for documents.

``--labels``:

* ``corrected`` — the saved correction where there is one, the original annotation elsewhere;
* ``original``  — the dataset's own annotations only;
* ``reviewed``  — only images whose review status is ``accepted`` or ``fixed``, on their corrected labels.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Sequence

import numpy as np

from segstudio.core.errors import DatasetError

__all__ = ["LABEL_POLICIES", "REVIEWED_STATUSES", "LabelledSample", "select_labelled", "split_names",
           "read_name_list", "Fingerprint"]

LABEL_POLICIES = ("corrected", "original", "reviewed")
REVIEWED_STATUSES = ("accepted", "fixed")


@dataclass(frozen=True)
class LabelledSample:
    """One training image and the label file it trains on.

    ``sample`` decodes the chosen labels (its ``mask_path`` is the saved correction when
    ``source == 'corrected'``); ``original`` is the dataset's own sample.
    """

    name: str
    sample: object
    original: object
    source: str            # 'corrected' or 'original'


def _corrected_sample(dataset, sample, corrections: str | PathLike | None, overwrite: bool):
    """``sample`` reading its saved correction, or None when none was saved."""
    try:
        saved = dataset.kind.saved_labels(dataset, sample, corrections, overwrite=overwrite)
    except DatasetError:
        return None
    except OSError:
        return None
    if saved is None or not Path(saved).is_file():
        return None
    if sample.mask_path is not None and Path(saved).resolve() == Path(sample.mask_path).resolve() \
            and not Path(f"{saved}.bak").is_file():
        return None   # overwrite mode and nothing written yet: this is the original
    decoder = sample.decoder
    if decoder is None:
        from segstudio.core.io.datasets import MaskDecoder  # noqa: PLC0415

        decoder = MaskDecoder(dataset.class_table)
    return replace(sample, mask_path=Path(saved), decoder=decoder)


def select_labelled(dataset, policy: str = "corrected", corrections: str | PathLike | None = None,
                    overwrite: bool = False, statuses: dict[str, str] | None = None) -> list[LabelledSample]:
    """The images to learn from under ``policy`` (see the module docstring), in dataset order.

    Images with neither a correction nor an annotation are left out. ``statuses`` (name -> review
    status) is read from the dataset's project store when not given.

    Raises
    ------
    ValueError
        Unknown policy.
    """
    if policy not in LABEL_POLICIES:
        raise ValueError(f"unknown labels policy {policy!r}; choose one of {', '.join(LABEL_POLICIES)}")
    if policy == "reviewed" and statuses is None:
        from segstudio.core.editing.store import read_review_statuses  # noqa: PLC0415

        statuses = read_review_statuses(dataset.root)
    chosen = []
    for sample in dataset:
        if policy == "reviewed" and (statuses or {}).get(sample.name) not in REVIEWED_STATUSES:
            continue
        corrected = None if policy == "original" else _corrected_sample(dataset, sample, corrections, overwrite)
        if corrected is not None:
            chosen.append(LabelledSample(sample.name, corrected, sample, "corrected"))
        elif sample.decoder is not None and sample.mask_path is not None:
            chosen.append(LabelledSample(sample.name, sample, sample, "original"))
    return chosen


def read_name_list(path: str | PathLike) -> list[str]:
    """Image names from a text file, one a line (file names work too: the extension is dropped;
    blank lines and ``#`` comments are skipped).

    Raises
    ------
    DatasetError
        The file cannot be read.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read the validation list: {exc}") from None
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(Path(line).stem if Path(line).suffix else line)
    return names


def split_names(names: Sequence[str], val_fraction: float | None = None, val_names: Sequence[str] | None = None,
                seed: int = 0) -> tuple[list[str], list[str]]:
    """(training names, validation names), disjoint by construction and checked.

    ``val_names`` (from ``--val-images``) wins; names not among ``names`` are an error. Otherwise a
    seeded shuffle puts ``round(val_fraction * n)`` images (at least one, at most n - 1) aside.

    Raises
    ------
    ValueError
        Fewer than two images, unknown validation names, or nothing left to train on.
    """
    names = list(names)
    if len(names) < 2:
        raise ValueError(f"training needs at least 2 labelled images (one to validate on); found {len(names)}")
    if val_names is not None:
        unknown = [n for n in val_names if n not in set(names)]
        if unknown:
            raise ValueError(f"validation image(s) not among the labelled images: {', '.join(unknown[:5])}")
        wanted = set(val_names)
        val = [n for n in names if n in wanted]
    else:
        fraction = 0.2 if val_fraction is None else float(val_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"--val-split must be between 0 and 1, got {fraction}")
        count = min(len(names) - 1, max(1, round(fraction * len(names))))
        order = list(names)
        random.Random(seed).shuffle(order)
        chosen = set(order[:count])
        val = [n for n in names if n in chosen]
    train = [n for n in names if n not in set(val)]
    if not train:
        raise ValueError("every labelled image is in the validation set; nothing is left to train on")
    assert not set(train) & set(val), "validation images overlap the training images"
    return train, val


class Fingerprint:
    """A SHA-256 over the image names, pixels and labels a run sees, in order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, name: str, image: np.ndarray, labels: np.ndarray) -> None:
        for part in (name.encode("utf-8", "surrogateescape"), str(image.shape).encode(), str(image.dtype).encode(),
                     np.ascontiguousarray(image).tobytes(), np.ascontiguousarray(labels).tobytes()):
            self._hash.update(len(part).to_bytes(8, "little"))
            self._hash.update(part)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
