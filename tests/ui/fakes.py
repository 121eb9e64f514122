"""Stand-ins for the inference package: a runner the test can hold mid-job and release, and a
controller that runs such runners."""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from segstudio.core.evaluation.prediction import Prediction
from segstudio.ui.worker import InferenceController


@dataclass
class FakeEntry:
    name: str = "fake"
    kind: str = "semantic"
    class_table: object = None


class GatedRunner:
    """Predicts ``(image.sum(-1) % 3)`` in ``steps`` steps; each step waits until the gate is open.

    A test closes the gate to keep a job "running" for as long as it needs, then opens it; nothing
    depends on timing. ``predict_dataset`` follows ``Runner.predict_dataset``'s contract.
    """

    device_name = "cpu"

    def __init__(self, steps: int = 4, fail_with: Exception | None = None):
        self.entry = FakeEntry()
        self.steps = steps
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_with = fail_with
        self.calls = 0

    def predict(self, image, cancel=None, progress=None):
        self.calls += 1
        self.entered.set()
        if self.fail_with is not None:
            raise self.fail_with
        for step in range(self.steps):
            while not self.gate.wait(0.01):
                if cancel is not None and cancel.cancelled:
                    break
            if cancel is not None:
                cancel.raise_if_cancelled()
            if progress is not None:
                progress(step + 1, self.steps)
        return replace(self.expected(image), source=self.entry.name)

    def predict_dataset(self, dataset, indices=None, cancel=None, progress=None, on_error=None):
        """``(index, prediction)`` per image in order; a sample that fails to load goes to ``on_error``."""
        indices = list(range(len(dataset))) if indices is None else list(indices)
        self.dataset_indices = indices
        for done, index in enumerate(indices, start=1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                image = dataset[index].load_image()
            except Exception as exc:  # noqa: BLE001 - like the runner: the caller decides
                if on_error is None:
                    raise
                on_error(index, exc)
                continue
            yield index, self.predict(image, cancel)
            if progress is not None:
                progress(done, len(indices))

    @staticmethod
    def expected(image) -> Prediction:
        image = np.asarray(image)
        flat = image.astype(np.int64) if image.ndim == 2 else image.astype(np.int64).sum(-1)
        mask = (flat % 3).astype(np.uint8)
        return Prediction(mask, np.ones(mask.shape, np.float32), np.zeros(mask.shape, np.float32))


def fake_controller(runner_factory) -> InferenceController:
    """An ``InferenceController`` whose runners come from ``runner_factory(request)``; no CUDA reported."""
    return InferenceController(runner_factory=runner_factory, gpu_check=lambda: {"cuda_available": False})
