"""The review session: which dataset is open, which image is shown, what the models predicted.

Qt-free on purpose: the main window binds widgets to a :class:`ReviewSession`, and tests drive it
without a display. The session owns

* the per-image prediction cache for the session (results for an image the user has left are stored
  for *that* image and shown when it comes back),
* the job bookkeeping that drops stale results (a newer request for the same image wins),
* the per-image statistics behind the dataset browser (confusion matrix, mean IoU, error pixels) and
  their sum, the dataset-level confusion matrix,
* the documents of images with unsaved edits, so switching images never loses work.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from segstudio.core.errors import MaskReadError, SegStudioError
from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.core.evaluation.prediction import Prediction
from segstudio.core.tasks import Cancelled, Task, TaskKind, TaskRunner

__all__ = ["ImageStats", "ReviewSession", "compute_stats", "decode_sample", "load_document", "describe_pixel", "instance_marks", "match_prediction_files",
           "load_prediction_file"]

PREDICTION_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")


@dataclass
class ImageStats:
    """What the dataset browser shows for one image with a prediction."""

    confusion: np.ndarray          # (C, C) int64, rows gt, cols pred
    classes_present: frozenset[int] = field(default_factory=frozenset)

    @property
    def mean_iou(self) -> float | None:
        return _matrix_metrics(self.confusion).mean_iou()

    @property
    def error_pixels(self) -> int:
        return int(self.confusion.sum() - np.trace(self.confusion))


def _matrix_metrics(matrix: np.ndarray) -> ConfusionMatrix:
    cm = ConfusionMatrix(matrix.shape[0])
    cm.matrix = matrix.astype(np.int64, copy=True)
    return cm


def gt_classes(gt: np.ndarray, num_classes: int) -> frozenset[int]:
    """Class ids present in a ground-truth mask (the ignore index and out-of-range ids excluded)."""
    from segstudio.core.editing.document import class_counts

    return frozenset(int(i) for i in np.flatnonzero(class_counts(gt, num_classes)))


def compute_stats(gt: np.ndarray | None, pred: np.ndarray, num_classes: int,
                  ignore_index: int = 255) -> ImageStats | None:
    """Confusion matrix and classes present for one image; None without ground truth."""
    if gt is None or gt.shape != pred.shape:
        return None
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(gt, pred)
    return ImageStats(cm.matrix.copy(), gt_classes(gt, num_classes))


def decode_sample(sample) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """Decode a sample's image, ground truth and instances (safe to run on a worker thread).

    Raises the core's typed errors (``ImageReadError``, ``MaskReadError`` ...) for bad files.
    """
    image = sample.load_image()
    gt = sample.load_mask()
    instances = sample.load_instances() if getattr(sample, "instance_path", None) else None
    return image, gt, instances


def load_document(sample, class_table, error_class: int | None = None, decoded=None, *, journal=None,
                  selection=None):
    """A new ``ImageDocument`` for ``sample`` (from ``decoded`` when it was decoded ahead), recording
    into ``journal`` and scoring the class of ``selection`` (see ``ImageDocument``)."""
    from segstudio.core.editing.document import ImageDocument

    image, gt, instances = decoded if decoded is not None else decode_sample(sample)
    return ImageDocument(sample.name, image, class_table, gt, gt_instances=instances,
                         error_class=error_class, journal=journal, selection=selection)


def _decoded_ahead(task: Task | None):
    """What a decode-ahead task produced, or None: there was none, it was cancelled, or it had not
    started (waiting behind other tasks is no quicker than decoding now). Re-raises its decode error."""
    if task is None or task.withdraw():
        return None
    try:
        return task.result()
    except Cancelled:
        return None


def describe_pixel(document, x: int, y: int) -> str:
    """Status-bar text for image pixel (x, y): coordinates, image value, gt and predicted class."""
    if document is None:
        return ""
    height, width = document.shape
    if not (0 <= x < width and 0 <= y < height):
        return f"x {x}  y {y}"
    value = document.image[y, x]
    value_text = (", ".join(str(int(v)) for v in np.atleast_1d(value)) if np.ndim(value)
                  else str(value.item() if hasattr(value, "item") else value))
    parts = [f"x {x}  y {y}", f"value ({value_text})" if np.ndim(value) else f"value {value_text}"]
    names = document.class_table.names
    for title, layer in (("gt", "gt"), ("pred", "pred")):
        class_id = document.class_at(x, y, layer)
        if class_id is None:
            parts.append(f"{title}: no {'prediction' if layer == 'pred' else 'ground truth'}")
            continue
        if class_id == document.class_table.ignore_index:
            label = "ignore"
        else:
            label = names[class_id] if 0 <= class_id < len(names) else f"id {class_id}"
        parts.append(f"{title}: {label}")
    return "   ".join(parts)


def instance_marks(document, iou_threshold: float = 0.5) -> list:
    """Missed / spurious / split / merged instance marks for a document with a prediction.

    Instances come from the instance masks when present, else from connected components of the
    semantic masks (per class).
    """
    if document is None or document.gt is None or document.pred is None:
        return []
    from segstudio.core.evaluation.errormap import instance_error_marks
    from segstudio.core.io.masks import semantic_to_instances

    ignore = document.class_table.ignore_index
    gt = document.gt_instances or semantic_to_instances(document.gt, ignore_index=ignore)
    pred = document.pred_instances or semantic_to_instances(document.pred, ignore_index=ignore)
    return instance_error_marks(gt, pred, iou_threshold)


def match_prediction_files(dataset, folder: str | Path) -> dict[int, Path]:
    """Map dataset indices to the mask files in ``folder`` that share the image's name (stem)."""
    by_stem = {p.stem: p for p in sorted(Path(folder).iterdir())
               if p.is_file() and p.suffix.lower() in PREDICTION_SUFFIXES}
    return {i: by_stem[s.name] for i, s in enumerate(dataset.samples) if s.name in by_stem}


def load_prediction_file(path: Path, sample, class_table, binary_mapping: dict[int, int] | None = None
                         ) -> Prediction:
    """Read one prediction mask, decoded with the dataset's class table (and ``binary_mapping`` for
    {0, 255} masks), checked against the image."""
    from segstudio.core.io.masks import read_semantic_mask

    mask = read_semantic_mask(path, class_table, expected_shape=sample.image_shape(),
                              binary_mapping=binary_mapping)
    return Prediction(mask=mask, source=str(Path(path).parent))


class ReviewSession:
    """One open dataset and everything learnt about its images during this session.

    Parameters
    ----------
    dataset : core.io.datasets.Dataset
        The dataset (or single image) under review.
    task_runner : core.tasks.TaskRunner, optional
        Where :meth:`decode_ahead` decodes (the window's runner, or anything with its ``submit``);
        without one the session starts a one-thread runner of its own when first needed.
    saved_labels : callable, optional
        ``sample -> path`` of its saved corrections (``EditingService.labels_source``); documents,
        decoding ahead, the browser's class scan and a dataset run then all read the labels as last
        saved, which is also what the crash journal replays over. Without it, the dataset's own masks.
    """

    def __init__(self, dataset, task_runner=None, saved_labels: Callable[[Any], Path | None] | None = None):
        self.dataset = dataset
        self.index = 0
        self._task_runner = task_runner
        self._own_runner: TaskRunner | None = None
        self._ahead: dict[int, Task] = {}
        self.predictions: dict[str, Prediction] = {}
        self.stats: dict[str, ImageStats] = {}
        self._latest_job: dict[str, int] = {}
        self._documents: dict[str, Any] = {}
        self._table_listeners: list[Callable[[Any], None]] = []
        # Ground-truth classes per image, filled on the GUI thread (stats, documents left) and by the
        # browser's background scan; the lock makes the scan's check-and-store one step.
        self._presence: dict[str, frozenset[int]] = {}
        self._presence_lock = threading.Lock()
        self._saved_labels = saved_labels
        # Images that could not be read (name -> reason): the browser marks them, stepping skips them.
        self.bad: dict[str, str] = {}
        # Images shown without their ground truth because the mask could not be read (name -> reason).
        self.mask_problems: dict[str, str] = {}
        # Unreadable images passed over on the way to the image now shown (see open_readable).
        self.skipped: list[str] = []
        # Per-image figures of an earlier evaluation (``evaluate --stats``), by name; see load_statistics.
        self.loaded_statistics: dict[str, Any] = {}
        self._statistics_listeners: list[Callable[[int], None]] = []

    # --- images -------------------------------------------------------------------------------
    @property
    def class_table(self):
        """The dataset's class table; the session is its one owner (change it with :meth:`set_class_table`)."""
        return self.dataset.class_table

    def set_class_table(self, table) -> None:
        """Swap in a new class table (a recolour): every open document gets it, then the listeners.

        Tables are immutable, so a document still holding the old one would draw old colours; the
        kept documents of images with unsaved edits are updated here too.
        """
        self.dataset.class_table = table
        for document in self._documents.values():
            document.class_table = table
        for callback in list(self._table_listeners):
            callback(table)

    def subscribe_class_table(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(table)`` after every :meth:`set_class_table`; returns the unsubscriber."""
        self._table_listeners.append(callback)
        return lambda: self._table_listeners.remove(callback) if callback in self._table_listeners else None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.dataset.samples]

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def current_name(self) -> str:
        return self.dataset[self.index].name

    @property
    def root(self) -> Path:
        return Path(self.dataset.root)

    def step(self, delta: int) -> int:
        """Index of the image ``delta`` away from the current one, clamped to the dataset."""
        return max(0, min(len(self.dataset) - 1, self.index + delta))

    def sample_to_load(self, index: int):
        """Sample ``index`` as documents load it: its mask is the saved correction when one exists."""
        sample = self.dataset[index]
        saved = self._saved_labels(sample) if self._saved_labels is not None else None
        if saved is not None and Path(saved).is_file():
            decoder = sample.decoder
            if decoder is None:   # a lone image has no mask rules; its saved labels use the class table
                from segstudio.core.io.datasets import MaskDecoder

                decoder = MaskDecoder(self.class_table)
            return replace(sample, mask_path=Path(saved), decoder=decoder)
        return sample

    def open(self, index: int, make_document):
        """Make image ``index`` current and return its document.

        ``make_document(sample)`` builds a fresh document from :meth:`sample_to_load`; when
        :meth:`decode_ahead` prepared the image it is called as ``make_document(sample, decoded)``
        with the ``decode_sample`` result. An image with unsaved edits gets its kept document back instead, history and all.
        The cached prediction for the image, if any, is set on the document. An unreadable mask
        opens the image without ground truth (the reason in :attr:`mask_problems`); an unreadable
        image is recorded in :attr:`bad` and its error propagates, leaving the current image as it was.
        """
        sample = self.dataset[index]
        document = self._documents.get(sample.name)
        self.skipped = []
        if document is None:
            try:
                document = self._make_document(index, make_document)
            except (SegStudioError, OSError) as exc:
                self.record_bad(sample.name, str(exc))
                raise
            self.bad.pop(sample.name, None)   # the file was fixed since
            cached = self.predictions.get(sample.name)
            if cached is not None:
                document.set_prediction(cached.mask, cached.confidence, cached.entropy, cached.instances)
        previous = self._documents.get(self.current_name)
        if previous is not None and previous is not document and not getattr(previous, "modified", False):
            # What the document held is what is on disk now (saved or never edited): it wins over a scan.
            self._store_presence(self.current_name, self._document_classes(previous))
            del self._documents[self.current_name]
            previous.close()
        self._documents[sample.name] = document
        self.index = index
        return document

    def _make_document(self, index: int, make_document):
        to_load = self.sample_to_load(index)
        try:
            decoded = _decoded_ahead(self._ahead.pop(index, None))
            document = make_document(to_load) if decoded is None else make_document(to_load, decoded)
        except MaskReadError as exc:
            # The image is still worth reviewing (and running a model on): show it without labels.
            self.mask_problems[to_load.name] = str(exc)
            return make_document(replace(to_load, decoder=None, instance_path=None))
        self.mask_problems.pop(to_load.name, None)   # the file was fixed since
        return document

    def record_bad(self, name: str, reason: str) -> None:
        """Remember that image ``name`` cannot be read, and why."""
        self.bad[name] = reason

    def open_readable(self, start: int, direction: int, make_document):
        """Open the first image from ``start`` on, stepping by ``direction`` (+1 or -1), that can be read.

        Images already known to be bad are passed over; those that fail now are recorded in :attr:`bad`.

        Raises
        ------
        SegStudioError
            No image in that direction could be read (the last error, or one naming the dataset when
            every candidate was already known to be bad).
        """
        last_error: Exception | None = None
        skipped = []
        index = start
        while 0 <= index < len(self.dataset):
            name = self.dataset[index].name
            if name not in self.bad:
                try:
                    document = self.open(index, make_document)
                except (SegStudioError, OSError) as exc:
                    last_error = exc
                else:
                    self.skipped = skipped
                    return document
            skipped.append(name)
            index += direction
        raise last_error or SegStudioError(self.root, "no readable image in that direction")

    def opening_note(self) -> str:
        """What could not be read on the way to the current image (status-bar text; '' when nothing)."""
        notes = []
        if self.current_name in self.mask_problems:
            notes.append(f"{self.current_name}: ground truth not shown ({self.mask_problems[self.current_name]})")
        if self.skipped:
            notes.append(f"skipped unreadable {', '.join(self.skipped)}")
        return "; ".join(notes)

    def decode_ahead(self, index: int) -> None:
        """Start decoding image ``index`` on a background task, so opening it next is quick."""
        if not 0 <= index < len(self.dataset) or index in self._ahead \
                or self.dataset[index].name in self._documents:
            return
        for stale in [i for i in self._ahead if i != index]:
            self._ahead.pop(stale).cancel()
        runner = self._task_runner
        if runner is None:
            if self._own_runner is None:
                self._own_runner = TaskRunner(max_workers=1, name="segstudio-decode")
            runner = self._own_runner
        # A failure is not reported here: open() raises it if the user goes to that image.
        self._ahead[index] = runner.submit(lambda _context, sample: decode_sample(sample),
                                           self.sample_to_load(index), kind=TaskKind.DECODE_AHEAD,
                                           on_errored=lambda _exc: None)

    def close(self) -> None:
        """Stop decoding ahead (waits for a decode in progress)."""
        ahead, self._ahead = list(self._ahead.values()), {}
        for task in ahead:
            task.cancel()
        for task in ahead:
            task.wait()
        if self._own_runner is not None:
            self._own_runner.shutdown(wait=True)
            self._own_runner = None

    @property
    def document(self):
        return self._documents.get(self.current_name)

    # --- predictions --------------------------------------------------------------------------
    def job_requested(self, job_id: int, names: list[str]) -> None:
        """Remember that ``job_id`` is now the newest request for each image in ``names``."""
        for name in names:
            self._latest_job[name] = job_id

    def accept_prediction(self, job_id: int, name: str, prediction: Prediction) -> bool:
        """Store a finished prediction for image ``name``.

        Returns True when it belongs on the image being shown (the caller then sets it on the
        document); False when it was stored for another image, or dropped as stale because a newer
        job was requested for the same image.
        """
        if job_id < self._latest_job.get(name, job_id):
            return False
        self.predictions[name] = prediction
        document = self._documents.get(name)
        if document is not None and name != self.current_name:
            document.set_prediction(prediction.mask, prediction.confidence, prediction.entropy,
                                    prediction.instances)
        if name == self.current_name or document is not None:
            self.refresh_stats(name)
        elif prediction.stats is not None:
            self.stats[name] = prediction.stats
            self._store_presence(name, prediction.stats.classes_present)
        return name == self.current_name

    def refresh_stats(self, name: str | None = None) -> None:
        """Recompute an open image's statistics from its document (after a prediction or an edit)."""
        name = name or self.current_name
        document = self._documents.get(name)
        if document is None or document.pred is None or document.gt is None:
            self.stats.pop(name, None)
            return
        # O(C²): the document keeps its confusion matrix and class counts up to date per edit.
        self.stats[name] = ImageStats(document.confusion.matrix.copy(), document.classes_present())
        self._store_presence(name, self.stats[name].classes_present)

    def dataset_confusion(self) -> ConfusionMatrix:
        """Confusion matrix summed over every image that has a prediction and ground truth."""
        cm = ConfusionMatrix(self.class_table.num_classes, self.class_table.ignore_index)
        for stats in self.stats.values():
            cm.matrix += stats.confusion
        return cm

    # --- statistics of an earlier evaluation ---------------------------------------------------
    def load_statistics(self, statistics: dict[str, Any]) -> int:
        """Keep the per-image figures of an earlier evaluation (``read_stats`` of an
        ``evaluate --stats`` file) for the images of this dataset, so that the browser and the
        review queue rank them without decoding anything; then tell the subscribers.

        Live figures (an image predicted or edited in this session) take precedence over them.
        Returns the number of images the file had figures for.
        """
        names = set(self.names)
        self.loaded_statistics = {n: s for n, s in statistics.items() if n in names}
        for callback in list(self._statistics_listeners):
            callback(len(self.loaded_statistics))
        return len(self.loaded_statistics)

    def statistics_of(self, name: str):
        """The live ``ImageStats`` of ``name``, else its loaded statistics, else ``None``; both have
        ``mean_iou`` and ``error_pixels``."""
        live = self.stats.get(name)
        return live if live is not None else self.loaded_statistics.get(name)

    def subscribe_statistics(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(count)`` after every :meth:`load_statistics`; returns the unsubscriber."""
        self._statistics_listeners.append(callback)
        return lambda: (self._statistics_listeners.remove(callback)
                        if callback in self._statistics_listeners else None)

    # --- dataset browser ----------------------------------------------------------------------
    def classes_present(self, name: str) -> frozenset[int]:
        """Classes in an image's ground truth, decoding its mask once if it is not known yet.

        Blocks on the decode: the GUI reads :meth:`known_classes` and lets :meth:`learn_classes` run
        on a worker thread instead.
        """
        known = self.known_classes(name)
        return known if known is not None else self.learn_classes(name, swallow_errors=False)

    def known_classes(self, name: str) -> frozenset[int] | None:
        """Classes in an image's ground truth when already known, else None; never decodes a file.

        An open document answers from its labels as they are now (unsaved edits included).
        """
        document = self._documents.get(name)
        if document is not None:
            return self._document_classes(document)
        return self._presence.get(name)

    def unknown_presence(self) -> list[str]:
        """Names of the images whose ground-truth classes nobody has looked at yet, in dataset order."""
        return [n for n in self.names if n not in self._presence]

    def learn_classes(self, name: str, swallow_errors: bool = True) -> frozenset[int]:
        """Decode image ``name``'s ground truth and remember its classes (safe on a worker thread).

        A value stored meanwhile (an open document, fresh statistics) wins over the decoded one. With
        ``swallow_errors`` a mask that fails to decode counts as having no classes.

        Raises
        ------
        SegStudioError
            Without ``swallow_errors``: the mask is missing, corrupt or does not fit the image.
        """
        try:
            mask = self.sample_to_load(self.dataset.index_of(name)).load_mask()
        except SegStudioError:
            if not swallow_errors:
                raise
            mask = None
        classes = frozenset() if mask is None else gt_classes(mask, self.class_table.num_classes)
        with self._presence_lock:
            if name in self._documents:   # opened meanwhile: do not cache what the document may have changed
                return classes
            return self._presence.setdefault(name, classes)

    def _store_presence(self, name: str, classes: frozenset[int]) -> None:
        with self._presence_lock:
            self._presence[name] = classes

    def _document_classes(self, document) -> frozenset[int]:
        return document.classes_present()

    def kept_document(self, name: str):
        """The open document of image ``name`` (the shown one, or one kept for its unsaved edits), or None."""
        return self._documents.get(name)

    def corrected_names(self) -> list[str]:
        """Images whose labels differ from the dataset's own: a saved correction or unsaved edits."""
        modified = set(self.modified_names())
        return [s.name for i, s in enumerate(self.dataset.samples)
                if s.name in modified or self.sample_to_load(i).mask_path != s.mask_path]

    def modified_names(self) -> list[str]:
        return [n for n, d in self._documents.items() if getattr(d, "modified", False)]
