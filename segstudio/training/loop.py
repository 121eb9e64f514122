"""The training loop: schedule, mixed precision, validation, early stopping, checkpoints, resume.

Events go to ``emit(dict)`` (``segstudio train --progress jsonl`` prints them one JSON object a
line): ``start``, ``step`` (at most a few a second), ``epoch`` (with the validation figures),
``checkpoint`` (a better model was written) and ``done``. ``cancel()`` returning True stops the
run after the current step; the best model written so far stays, and the last checkpoint
(``<out>.last.ckpt``: weights, optimiser, step, random state; ``torch.load(weights_only=True)``
reads it) lets ``--resume`` carry on from there.

Learning rate: AdamW, a linear warm-up over the first 5 % of the run, then a cosine decay to 1 %
of ``lr``. With ``max_minutes`` the run's progress is the larger of steps done / steps planned and
time used / time allowed, so the schedule ends when the time does.

Precision (``resolve_precision``): ``auto`` trains in float16 with loss scaling on CUDA and in
bfloat16 on a CPU with native bfloat16 arithmetic (AMX or AVX512-BF16), with float32 weights,
optimiser and loss in both cases; float32 elsewhere. On the CPU the model and its inputs are kept
channels-last (oneDNN's fast convolution layout). Validation always runs in float32 on the CPU, as
segstudio's inference does, so the best epoch is chosen on the figures users will see.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from segstudio.core.evaluation.metrics import ConfusionMatrix
from segstudio.training.data import CropSampler, LoadedImage, Prefetcher
from segstudio.training.losses import LossSpec, make_loss
from segstudio.training.model import TrainableModel, model_logits

__all__ = ["PRECISIONS", "TrainConfig", "TrainResult", "Trainer", "resolve_precision", "validate", "save_atomic"]

WARMUP = 0.05
FINAL_LR = 0.01
STEP_EVENT_SECONDS = 0.5
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    capabilities = getattr(torch.cpu, "get_capabilities", lambda: {})()
    return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))


def resolve_precision(requested: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16``: what a run on ``device`` computes its forward pass in (see the
    module docstring). An explicit ``fp16`` needs CUDA; an explicit ``bf16`` is honoured anywhere."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r} (one of {', '.join(PRECISIONS)})")
    if requested == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if requested == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA device (use bf16 or fp32 on this one)")
    return requested


@dataclass
class TrainConfig:
    epochs: int = 50
    max_minutes: float | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 4
    crop: int = 512
    seed: int = 0
    patience: int = 10
    steps_per_epoch: int | None = None     # None: enough crops to cover the training images once (>= 8 steps)
    loss: LossSpec = LossSpec()
    ignore_index: int = 255
    precision: str = "auto"


@dataclass
class TrainResult:
    status: str                 # complete, early_stopped, time_budget, cancelled
    epochs_done: int
    steps_done: int
    best_epoch: int | None
    best_miou: float | None
    best_class_iou: list | None
    best_pixel_accuracy: float | None
    seconds: float
    history: list


def save_atomic(obj, path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace`` (a kill never leaves half a file)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


@torch.no_grad()
def validate(module: torch.nn.Module, images: Sequence[LoadedImage], mean, std, num_classes: int,
             ignore_index: int, device: torch.device, size_divisor: int = 1, amp: bool = False) -> ConfusionMatrix:
    """One confusion matrix over the whole validation images (native size, no augmentation)."""
    was_training = module.training
    module.eval()
    total = ConfusionMatrix(num_classes, ignore_index)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    for item in images:
        x = item.image.to(device).float().unsqueeze(0) * item.scale
        x = (x - mean_t) / std_t
        height, width = x.shape[-2:]
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model_logits(module(_pad_to(x, size_divisor)))[..., :height, :width]
        pred = logits.argmax(1)[0].to("cpu", torch.int64).numpy()
        total.update(item.labels.numpy(), pred)
    module.train(was_training)
    return total


class Trainer:
    """Trains ``model`` on ``train_images`` and validates on ``val_images`` after every epoch.

    ``save_best(module, epoch, metrics)`` is called when validation mIoU improves; ``checkpoint_path``
    receives the resumable state after every epoch and when cancelled.
    """

    def __init__(self, model: TrainableModel, train_images: Sequence[LoadedImage], val_images: Sequence[LoadedImage],
                 config: TrainConfig, device: torch.device, *, mean, std,
                 save_best: Callable[[torch.nn.Module, int, dict], None],
                 checkpoint_path, emit: Callable[[dict], None] = lambda event: None,
                 cancelled: Callable[[], bool] = lambda: False):
        names_train = {i.name for i in train_images}
        overlap = names_train & {i.name for i in val_images}
        assert not overlap, f"validation images overlap the training images: {sorted(overlap)[:5]}"
        self.model = model
        self.train_images, self.val_images = list(train_images), list(val_images)
        self.config = config
        self.device = device
        self.mean, self.std = tuple(mean), tuple(std)
        self.save_best = save_best
        self.checkpoint_path = checkpoint_path
        self.emit = emit
        self.cancelled = cancelled
        self.precision = resolve_precision(config.precision, device)
        self.amp = self.precision != "fp32"
        self.amp_dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        self.channels_last = device.type == "cpu"
        self.sampler = CropSampler(self.train_images, config.crop, self.mean, self.std)
        self.steps_per_epoch = config.steps_per_epoch or max(8, math.ceil(self.sampler.crops_per_epoch()
                                                                             / config.batch_size))
        self.total_steps = self.steps_per_epoch * config.epochs
        self.module = model.module.to(device).train()
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.optimiser = torch.optim.AdamW(self.module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.loss_fn = make_loss(config.loss, config.ignore_index, device)
        self.step = 0
        self.epoch = 0                  # epochs completed
        self.epoch_first_step = 0       # the step the current epoch began at
        self.best_miou: float | None = None
        self.best_epoch: int | None = None
        self.best_metrics: dict | None = None
        self.history: list[dict] = []
        self.elapsed_before = 0.0       # seconds spent in earlier (resumed) runs
        self.baseline: dict | None = None   # validation of the starting (parent) model
        self._started = time.monotonic()
        self._prefetch: Prefetcher | None = None

    # --- schedule -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self._started

    def progress(self) -> float:
        done = self.step / max(1, self.total_steps)
        if self.config.max_minutes:
            done = max(done, self.elapsed() / (60.0 * self.config.max_minutes))
        return min(1.0, done)

    def out_of_time(self) -> bool:
        return bool(self.config.max_minutes) and self.elapsed() >= 60.0 * self.config.max_minutes

    def lr_at(self, progress: float) -> float:
        lr = self.config.lr
        if progress < WARMUP:
            return lr * max(progress / WARMUP, 0.02)
        t = (progress - WARMUP) / (1.0 - WARMUP)
        return lr * (FINAL_LR + (1.0 - FINAL_LR) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))

    def eta(self) -> float | None:
        """Seconds left, from the pace so far and the steps or minutes still allowed."""
        elapsed = self.elapsed()
        if self.step == 0:
            return None
        by_steps = elapsed / self.step * (self.total_steps - self.step)
        if self.config.max_minutes:
            return max(0.0, min(by_steps, 60.0 * self.config.max_minutes - elapsed))
        return max(0.0, by_steps)

    # --- checkpoint -------------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything ``--resume`` needs; only tensors and plain values (``weights_only`` loads it)."""
        state = {
            "format": "segstudio.train.checkpoint/1",
            "model": self.module.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "epoch_first_step": self.epoch_first_step,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "history": self.history,
            "baseline": self.baseline,
            "elapsed": self.elapsed(),
            "rng_cpu": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.epoch_first_step = int(state.get("epoch_first_step", self.epoch * self.steps_per_epoch))
        self.best_miou, self.best_epoch = state["best_miou"], state["best_epoch"]
        self.best_metrics = state.get("best_metrics")
        self.history = list(state.get("history") or [])
        self.baseline = state.get("baseline")
        self.elapsed_before = float(state.get("elapsed") or 0.0)
        self._started = time.monotonic()
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)

    def write_checkpoint(self) -> None:
        save_atomic(self.state(), self.checkpoint_path)

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        config = self.config
        self.emit({"event": "start", "epochs": config.epochs, "steps_per_epoch": self.steps_per_epoch,
                   "train_images": len(self.train_images), "val_images": len(self.val_images),
                   "crop": self.sampler.crop, "batch_size": config.batch_size, "device": str(self.device),
                   "mixed_precision": self.amp, "precision": self.precision, "resumed_at_step": self.step,
                   "max_minutes": config.max_minutes})
        if self.step == 0 and self.baseline is None:
            self.baseline = self.validate()
            self.emit({"event": "baseline", "val_miou": self.baseline["miou"],
                       "val_class_iou": self.baseline["class_iou"]})
        with self.prefetching():
            return self._run(config)

    @contextmanager
    def prefetching(self):
        """Within: ``train_step`` takes batches a background thread prepared during the previous step."""
        self._prefetch = Prefetcher(self.sampler, self.config.batch_size)
        try:
            yield self
        finally:
            self._prefetch.close()
            self._prefetch = None

    def _run(self, config: TrainConfig) -> TrainResult:
        status = "complete"
        last_event = 0.0
        loss_sum, loss_count = 0.0, 0
        while self.epoch < config.epochs:
            if self.cancelled():
                status = "cancelled"
                break
            in_epoch = self.step - self.epoch_first_step
            while in_epoch < self.steps_per_epoch:
                loss_value = self.train_step()
                loss_sum += loss_value
                loss_count += 1
                in_epoch += 1
                now = time.monotonic()
                if now - last_event >= STEP_EVENT_SECONDS or in_epoch == self.steps_per_epoch:
                    last_event = now
                    self.emit({"event": "step", "epoch": self.epoch + 1, "step": self.step,
                               "step_in_epoch": in_epoch, "steps_per_epoch": self.steps_per_epoch,
                               "loss": loss_value, "lr": self.optimiser.param_groups[0]["lr"],
                               "elapsed": self.elapsed(), "eta": self.eta()})
                if self.cancelled():
                    status = "cancelled"
                    break
                if self.out_of_time():
                    status = "time_budget"      # the partial epoch still gets its validation
                    break
            if status == "cancelled":
                break
            self.epoch += 1
            self.epoch_first_step = self.step
            metrics = self.validate()
            metrics["train_loss"] = loss_sum / max(1, loss_count)
            loss_sum, loss_count = 0.0, 0
            improved = self.best_miou is None or (metrics["miou"] is not None and metrics["miou"] > self.best_miou)
            if improved and metrics["miou"] is not None:
                self.best_miou, self.best_epoch, self.best_metrics = metrics["miou"], self.epoch, metrics
                self.save_best(self.module, self.epoch, metrics)
            self.history.append({"epoch": self.epoch, "train_loss": metrics["train_loss"], "val_miou": metrics["miou"]})
            self.write_checkpoint()
            self.emit({"event": "epoch", "epoch": self.epoch, "epochs": config.epochs, "step": self.step,
                       "train_loss": metrics["train_loss"], "val_miou": metrics["miou"],
                       "val_class_iou": metrics["class_iou"], "best_miou": self.best_miou,
                       "best_epoch": self.best_epoch, "improved": bool(improved), "elapsed": self.elapsed(),
                       "eta": self.eta()})
            if self.best_epoch is not None and self.epoch - self.best_epoch >= config.patience:
                status = "early_stopped"
                break
            if status == "time_budget" or self.out_of_time():
                status = "time_budget"
                break
        if status == "cancelled":
            self.write_checkpoint()
        return TrainResult(status, self.epoch, self.step, self.best_epoch, self.best_miou,
                           (self.best_metrics or {}).get("class_iou"),
                           (self.best_metrics or {}).get("pixel_accuracy"), self.elapsed(), self.history)

    def train_step(self) -> float:
        prefetch = self._prefetch
        x, y, mul, add = prefetch.next() if prefetch is not None else self.sampler.batch(self.config.batch_size)
        non_blocking = self.device.type == "cuda"
        x = x.to(self.device, non_blocking=non_blocking) * mul.to(self.device) + add.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(self.device, non_blocking=non_blocking)
        lr = self.lr_at(self.progress())
        for group in self.optimiser.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            logits = model_logits(self.module(x))
        loss = self.loss_fn(logits.float(), y)
        self.optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimiser)
        self.scaler.update()
        self.step += 1
        return float(loss.detach())

    def validate(self) -> dict:
        confusion = validate(self.module, self.val_images, self.mean, self.std, self.model.num_classes,
                             self.config.ignore_index, self.device, self.model.size_divisor,
                             self.precision == "fp16")
        iou = confusion.iou()
        return {"miou": confusion.mean_iou(), "class_iou": [None if np.isnan(v) else float(v) for v in iou],
                "pixel_accuracy": confusion.pixel_accuracy()}
