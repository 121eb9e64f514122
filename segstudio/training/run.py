"""One training run from start to finish: dataset, labels, split, model, loop, outputs.

``run_training(options, emit, cancelled)`` is what ``segstudio train`` calls (and the bench, in
process); it raises the usual typed errors for bad input (the CLI turns them into exit 2).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from segstudio.core.errors import CheckpointError, DatasetError
from segstudio.training.augment import AUGMENTATION_DESCRIPTION
from segstudio.training.data import class_pixel_counts, load_images, measure_normalisation
from segstudio.training.labels import Fingerprint, read_name_list, select_labelled, split_names
from segstudio.training.losses import LossSpec, inverse_frequency_weights
from segstudio.training.loop import TrainConfig, Trainer, TrainResult, resolve_precision
from segstudio.training.model import NEW_PREFIX, build_trainable
from segstudio.training.output import (checkpoint_path_for, versioned_path, write_card, write_model)

__all__ = ["TrainOptions", "run_training", "pick_device"]


@dataclass
class TrainOptions:
    dataset: str
    model: str
    out: str | None = None
    format: str = "auto"
    split: str | None = None
    classes: str | None = None
    labels: str = "corrected"
    corrections: str | None = None
    val_split: float | None = 0.2
    val_images: str | None = None
    loss: str = "ce+dice"
    focal_gamma: float = 2.0
    focal_alpha: float = 1.0
    dice_weight: float = 0.5
    class_weights: str = "none"
    epochs: int = 50
    max_minutes: float | None = None
    lr: float = 1e-3
    batch_size: int = 4
    crop: int = 512
    device: str = "auto"
    seed: int = 0
    patience: int = 10
    steps_per_epoch: int | None = None
    arch_kwargs: dict = field(default_factory=dict)
    resume: bool = False
    threads: int | None = None
    precision: str = "auto"


def pick_device(name: str) -> tuple[torch.device, str]:
    """``auto``: CUDA when the GPU check passes (a real convolution), else CPU; explicit names as asked."""
    from segstudio.inference.devices import check_cuda_usable, select_device  # noqa: PLC0415

    if (name or "auto") == "auto":
        if torch.cuda.is_available():
            ok, message = check_cuda_usable()
            if ok:
                return torch.device("cuda"), message
            return torch.device("cpu"), message
        return select_device("auto"), "no CUDA"
    return select_device(name), name


def _output_path(options: TrainOptions, dataset, parent_base: str) -> Path:
    if options.out:
        out = Path(options.out)
        return out if out.suffix == ".pth" else out.with_name(out.name + ".pth")
    from segstudio.core.io.workspace import working_dir  # noqa: PLC0415

    return versioned_path(working_dir(dataset.root) / "models", parent_base)


def _parent_base(spec: str) -> str:
    if spec.startswith(NEW_PREFIX):
        return spec[len(NEW_PREFIX):].split(".")[-1]
    if spec.startswith(("torchvision:", "smp:")):
        return spec.split(":", 1)[1]
    path = Path(spec)
    base = path.stem if path.suffix else path.name
    return re.sub(r"-v\d{3}$", "", base)


def run_training(options: TrainOptions, emit: Callable[[dict], None] = lambda e: None,
                 cancelled: Callable[[], bool] = lambda: False) -> tuple[TrainResult, Path]:
    """Train as ``options`` say; returns the result and the weights path (written once validation ran).

    Raises
    ------
    DatasetError, ClassTableError, ImageReadError, MaskReadError
        Bad dataset or labels.
    CheckpointError (NotTrainableError)
        Bad or untrainable model, or a resume checkpoint that does not match this run.
    ValueError
        Bad split or options.
    """
    # Process-wide torch settings are put back afterwards: the bench and the tests train in process.
    threads = torch.get_num_threads()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.set_num_threads(options.threads or os.cpu_count() or 1)
        return _run(options, emit, cancelled)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def _run(options: TrainOptions, emit, cancelled) -> tuple[TrainResult, Path]:
    from segstudio.core.io.datasets import open_dataset  # noqa: PLC0415

    torch.manual_seed(options.seed)
    device, device_note = pick_device(options.device)
    resolve_precision(options.precision, device)        # a precision the device cannot run fails here, first
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    dataset = open_dataset(options.dataset, options.format, class_table=options.classes, split=options.split)
    table = dataset.class_table
    chosen = select_labelled(dataset, options.labels, options.corrections)
    if not chosen:
        raise DatasetError(dataset.root, f"no labelled images to train on (--labels {options.labels})")
    val_names = read_name_list(options.val_images) if options.val_images else None
    train_names, val_list = split_names([c.name for c in chosen], options.val_split, val_names, options.seed)
    model = build_trainable(options.model, table.num_classes, options.arch_kwargs)
    emit({"event": "loading", "images": len(chosen), "corrected": sum(c.source == "corrected" for c in chosen)})
    fingerprint = Fingerprint()
    by_name = {c.name: c for c in chosen}
    train_images = load_images([by_name[n] for n in train_names], model.channel_order, fingerprint=fingerprint)
    val_images = load_images([by_name[n] for n in val_list], model.channel_order, fingerprint=fingerprint)
    assert not {i.name for i in train_images} & {i.name for i in val_images}
    mean, std = (model.mean, model.std) if model.mean is not None else measure_normalisation(train_images)
    counts = class_pixel_counts(train_images, table.num_classes)
    weights = inverse_frequency_weights(counts) if options.class_weights == "auto" else None
    loss = LossSpec(options.loss, options.focal_gamma, options.focal_alpha, options.dice_weight, weights)
    config = TrainConfig(epochs=options.epochs, max_minutes=options.max_minutes, lr=options.lr,
                         batch_size=options.batch_size, crop=options.crop, seed=options.seed,
                         patience=options.patience, steps_per_epoch=options.steps_per_epoch, loss=loss,
                         ignore_index=table.ignore_index, precision=options.precision)
    out = _output_path(options, dataset, _parent_base(options.model))
    checkpoint = checkpoint_path_for(out)
    corrected = sum(c.source == "corrected" for c in chosen)

    def card(result_metrics: dict | None, epoch: int | None, status: str, trainer: Trainer | None) -> dict:
        lineage = {
            "parent": model.parent, "parent_file": model.parent_file, "parent_sha256": model.parent_sha256,
            "dataset": str(Path(dataset.root).resolve()), "dataset_format": dataset.format,
            "dataset_fingerprint": fingerprint.hexdigest(),
            "labels": {"policy": options.labels, "images": len(chosen), "corrected": corrected,
                       "original": len(chosen) - corrected,
                       "corrected_images": [c.name for c in chosen if c.source == "corrected"]},
            "train_images": train_names, "validation_images": val_list,
            "loss": loss.describe(), "augmentation": AUGMENTATION_DESCRIPTION,
            "class_pixel_counts": [int(c) for c in counts],
            "epochs_planned": options.epochs, "best_epoch": epoch,
            "epochs_done": trainer.epoch if trainer else 0, "steps": trainer.step if trainer else 0,
            "steps_per_epoch": trainer.steps_per_epoch if trainer else None,
            "seed": options.seed, "lr": options.lr, "batch_size": options.batch_size,
            "crop": trainer.sampler.crop if trainer else options.crop, "max_minutes": options.max_minutes,
            "device": str(device), "precision": trainer.precision if trainer else options.precision,
            "mixed_precision": bool(trainer and trainer.amp), "status": status,
            "minutes": round(trainer.elapsed() / 60.0, 2) if trainer else 0.0,
            "parent_validation": None if trainer is None or trainer.baseline is None else {
                "mean_iou": trainer.baseline["miou"], "pixel_accuracy": trainer.baseline.get("pixel_accuracy"),
                "class_iou": {info.name: v for info, v in zip(table.classes, trainer.baseline["class_iou"])}},
            "validation": None if result_metrics is None else {
                "mean_iou": result_metrics["miou"], "pixel_accuracy": result_metrics.get("pixel_accuracy"),
                "class_iou": {info.name: v for info, v in zip(table.classes, result_metrics["class_iou"])}},
        }
        return {
            "name": out.stem, "architecture": model.architecture, "arch_kwargs": model.arch_kwargs,
            "classes": [{"name": c.name, "color": list(c.color)} for c in table.classes],
            "mean": list(mean), "std": list(std), "channel_order": model.channel_order,
            **({"scale": model.scale} if model.scale is not None else {}),
            "input_size": None, "kind": "semantic", "trained_by": "segstudio train", "lineage": lineage,
        }

    holder: dict = {}

    def save_best(module, epoch: int, metrics: dict) -> None:
        write_model(out, module, card(metrics, epoch, "training", holder.get("trainer")))
        emit({"event": "checkpoint", "path": str(out), "epoch": epoch, "val_miou": metrics["miou"]})

    trainer = Trainer(model, train_images, val_images, config, device, mean=mean, std=std,
                      save_best=save_best, checkpoint_path=checkpoint, emit=emit, cancelled=cancelled)
    holder["trainer"] = trainer
    emit({"event": "output", "out": str(out), "card": str(out.with_suffix(".json")), "checkpoint": str(checkpoint),
          "validation_images": val_list, "parent": model.parent})
    if options.resume:
        _resume(trainer, checkpoint, out, fingerprint.hexdigest(), train_names, val_list)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
    result = trainer.run()
    if result.best_epoch is not None and out.is_file():
        write_card(out, card(trainer.best_metrics, result.best_epoch, result.status, trainer))
    emit({"event": "done", "status": result.status, "out": str(out) if out.is_file() else None,
          "card": str(out.with_suffix(".json")) if out.is_file() else None, "checkpoint": str(checkpoint),
          "best_miou": result.best_miou, "best_epoch": result.best_epoch, "epochs_done": result.epochs_done,
          "steps": result.steps_done, "elapsed": result.seconds, "device_note": device_note})
    return result, out


def _resume(trainer: Trainer, checkpoint: Path, out: Path, fingerprint: str, train_names, val_names) -> None:
    from segstudio.inference.checkpoints import safe_load  # noqa: PLC0415

    if not checkpoint.is_file():
        raise CheckpointError(checkpoint, "nothing to resume: no checkpoint from an earlier run "
                              "(give the same --out as that run)")
    state = safe_load(checkpoint)
    if not isinstance(state, dict) or state.get("format") != "segstudio.train.checkpoint/1":
        raise CheckpointError(checkpoint, "not a segstudio training checkpoint")
    card_path = out.with_suffix(".json")
    if card_path.is_file():
        try:
            lineage = json.loads(card_path.read_text(encoding="utf-8")).get("lineage", {})
        except (OSError, ValueError):
            lineage = {}
        if lineage.get("dataset_fingerprint") not in (None, fingerprint):
            raise CheckpointError(checkpoint, "the dataset or its labels changed since this run started; "
                                  "resuming would mix two datasets (start a new run)")
        if lineage.get("validation_images") not in (None, list(val_names)):
            raise CheckpointError(checkpoint, "the validation split differs from the run being resumed "
                                  "(use the same --seed and --val-split / --val-images)")
    try:
        trainer.load_state(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(checkpoint, f"does not fit this run: {str(exc).splitlines()[0][:200]}") from None
