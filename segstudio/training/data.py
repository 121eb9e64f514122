"""Decoded training and validation images, ready for crops: tensors, normalisation and sampling.

Images are decoded once, kept in their own dtype (uint8 stays uint8, a quarter of float32's bytes)
and normalised on the compute device: ``x * mul + add == (x * scale - mean) / std`` per channel, the
same arithmetic as inference (``inference.preprocess.normaliser``).
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torchvision import tv_tensors

from segstudio.core.io.images import to_three_channels
from segstudio.inference.preprocess import default_scale
from segstudio.training.augment import augmentation
from segstudio.training.labels import Fingerprint, LabelledSample

__all__ = ["LoadedImage", "load_images", "measure_normalisation", "CropSampler", "Prefetcher", "class_pixel_counts"]


@dataclass
class LoadedImage:
    name: str
    image: torch.Tensor        # 3 x H x W, uint8 or float32 raw values, in the model's channel order
    labels: torch.Tensor       # H x W int64 class ids (the ignore index kept)
    scale: float               # raw -> 0-1
    corrected: bool

    @property
    def eight_bit(self) -> bool:
        return self.image.dtype == torch.uint8


def load_images(chosen: Sequence[LabelledSample], channel_order: str = "RGB",
                progress: Callable[[int, int], None] | None = None,
                fingerprint: Fingerprint | None = None) -> list[LoadedImage]:
    """Decode every chosen image and its labels (``ImageReadError`` / ``MaskReadError`` propagate)."""
    out = []
    for i, item in enumerate(chosen):
        raw = item.sample.load_image()
        labels = item.sample.load_mask()
        if fingerprint is not None:
            fingerprint.add(item.name, raw, labels)
        rgb = to_three_channels(raw)
        scale = default_scale(rgb.dtype)
        if rgb.dtype != np.uint8:
            rgb = rgb.astype(np.float32)
        if channel_order == "BGR":
            rgb = rgb[:, :, ::-1]
        out.append(LoadedImage(item.name, torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
                               torch.from_numpy(labels.astype(np.int64)), scale, item.source == "corrected"))
        if progress is not None:
            progress(i + 1, len(chosen))
    return out


def measure_normalisation(images: Sequence[LoadedImage]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in 0-1 units over the images (for a model started from scratch)."""
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for item in images:
        x = item.image.double().reshape(3, -1) * item.scale
        total += x.sum(1).numpy()
        squares += (x * x).sum(1).numpy()
        count += x.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 1e-12))
    return tuple(round(float(v), 4) for v in mean), tuple(round(max(float(v), 1e-3), 4) for v in std)


def class_pixel_counts(images: Sequence[LoadedImage], num_classes: int) -> np.ndarray:
    """Labelled pixels per class (the ignore index and out-of-range ids left out)."""
    counts = np.zeros(num_classes, np.int64)
    for item in images:
        flat = item.labels.reshape(-1)
        flat = flat[(flat >= 0) & (flat < num_classes)]
        counts += np.bincount(flat.numpy(), minlength=num_classes)[:num_classes]
    return counts


class CropSampler:
    """Draws batches of augmented crops; images are picked with probability proportional to area."""

    def __init__(self, images: Sequence[LoadedImage], crop: int, mean, std):
        self.images = list(images)
        self.crop = int(min([crop] + [min(i.image.shape[-2:]) for i in self.images]))
        self.transforms = [augmentation(i.image.shape[-2], i.image.shape[-1], self.crop, i.eight_bit, i.scale)
                           for i in self.images]
        self.weights = torch.tensor([float(i.image.shape[-2] * i.image.shape[-1]) for i in self.images])
        mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        # the augmentation hands out 0-1 units already: (x - mean) / std
        self.mul = 1.0 / std_t
        self.add = -mean_t / std_t

    def crops_per_epoch(self) -> int:
        """Crops that cover the training images' area once."""
        return max(1, int(round(float(self.weights.sum()) / (self.crop * self.crop))))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images N x 3 x c x c in 0-1 units, labels N x c x c int64, mul 1 x 3 x 1 x 1, add 1 x 3 x 1 x 1);
        ``x * mul + add`` is the normalised input."""
        picks = torch.multinomial(self.weights, size, replacement=True).tolist()
        xs, ys = [], []
        for index in picks:
            item = self.images[index]
            image, mask = self.transforms[index](tv_tensors.Image(item.image), tv_tensors.Mask(item.labels))
            xs.append(image.as_subclass(torch.Tensor))
            ys.append(mask.as_subclass(torch.Tensor))
        return torch.stack(xs), torch.stack(ys), self.mul[None], self.add[None]


class Prefetcher:
    """Draws the next batches on a background thread while the model works on the current one.

    The thread is the only consumer of torch's global generator during training (the model draws
    nothing), so the crop sequence stays the same from run to run with the same seed.
    """

    def __init__(self, sampler: CropSampler, size: int, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(sampler, size), name="train-prefetch", daemon=True)
        self._thread.start()

    def _work(self, sampler: CropSampler, size: int) -> None:
        while not self._stop.is_set():
            try:
                item = sampler.batch(size)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def next(self):
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
