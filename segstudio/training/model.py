"""A trainable module from a model spec, with what its model card must say to run it again.

Trainable are models whose architecture segstudio can build: the demo ``CompactUNet``, SMP
architectures, torchvision semantic models and state-dict checkpoints whose architecture a card
names or their keys reveal; ``new:ARCH`` (``new:segstudio.CompactUNet``, ``new:smp.Unet``) starts
one from random weights. TorchScript, ``.pt2`` and ONNX files are programs or graphs without an
architecture to rebuild, so they are refused with ``NotTrainableError``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from segstudio.core.errors import CheckpointError

__all__ = ["NotTrainableError", "TrainableModel", "build_trainable", "model_logits"]

NEW_PREFIX = "new:"
GRAPH_SUFFIXES = (".onnx", ".pt2")


class NotTrainableError(CheckpointError):
    """The model file holds no architecture segstudio can rebuild (TorchScript, .pt2, ONNX)."""


@dataclass
class TrainableModel:
    """A module in train mode plus what a model card needs to rebuild and feed it."""

    module: torch.nn.Module
    architecture: str
    arch_kwargs: dict
    num_classes: int
    mean: tuple[float, float, float] | None       # None: measured on the training images
    std: tuple[float, float, float] | None
    scale: float | None
    channel_order: str
    size_divisor: int
    parent: str | None                            # the spec as given; None for new:ARCH
    parent_file: str | None = None
    parent_sha256: str | None = None
    extra: dict = field(default_factory=dict)


def model_logits(output) -> torch.Tensor:
    """The logits tensor of a model's output (torchvision dict, tuple or tensor)."""
    from segstudio.inference.runner import model_logits as logits  # noqa: PLC0415

    return logits(output)


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse_untrainable(spec: str) -> None:
    """Raise ``NotTrainableError`` for a file that is a program or a graph (no torch load needed)."""
    path = Path(spec)
    if not path.is_file():
        return
    from segstudio.inference.model_trust import is_torchscript  # noqa: PLC0415

    if path.suffix.lower() in GRAPH_SUFFIXES or is_torchscript(path):
        kind = {".onnx": "an ONNX graph", ".pt2": "an exported program (.pt2)"}.get(path.suffix.lower(),
                                                                                    "TorchScript")
        raise NotTrainableError(path, f"not trainable: needs an architecture ({kind} cannot be rebuilt "
                                "for training; use a state-dict checkpoint with a model card)")


def build_trainable(spec: str, num_classes: int, arch_kwargs: dict | None = None) -> TrainableModel:
    """Resolve ``spec`` into a trainable module on the CPU, in train mode.

    Raises
    ------
    NotTrainableError
        TorchScript / .pt2 / ONNX, an instance model, or a fixed-input-size model.
    CheckpointError
        Unknown spec, unreadable checkpoint, or a class count different from ``num_classes``.
    """
    from segstudio.inference import architectures as A  # noqa: PLC0415

    if spec.startswith(NEW_PREFIX):
        arch = A.get_architecture(spec[len(NEW_PREFIX):], spec)
        if arch.kind != "semantic":
            raise NotTrainableError(spec, f"not trainable: {arch.name} is an instance model; training "
                                    "covers semantic models")
        kwargs = dict(arch_kwargs or {})
        try:
            module = arch.build(num_classes, kwargs)
        except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as exc:
            raise CheckpointError(spec, f"cannot build {arch.name} with {kwargs}: {exc}") from None
        return TrainableModel(module.train(), arch.name, kwargs, num_classes, None, None, None, "RGB",
                              32 if arch.family == "smp" else 1, parent=None)
    refuse_untrainable(spec)
    from segstudio.inference.model_card import read_card  # noqa: PLC0415
    from segstudio.inference.registry import resolve_model  # noqa: PLC0415

    entry = resolve_model(spec)
    if entry.architecture is None:
        raise NotTrainableError(spec, "not trainable: needs an architecture")
    if entry.kind != "semantic":
        raise NotTrainableError(spec, "not trainable: instance models (Mask R-CNN) are not covered; "
                                "training fine-tunes semantic models")
    if entry.input_size is not None:
        raise NotTrainableError(spec, "not trainable: the model card fixes an input size; training "
                                "works on native-resolution crops")
    count = entry.class_table.num_classes if entry.class_table is not None else None
    if count != num_classes:
        raise CheckpointError(spec, f"the model has {count} classes but the dataset {num_classes}; "
                              "fine-tuning keeps the model's classes (start a new model with "
                              "--model new:ARCH)")
    arch = A.get_architecture(entry.architecture, spec)
    module = entry.load("cpu")
    state = module.state_dict()
    source = Path(entry.source) if entry.source and not entry.source.startswith(("http:", "https:")) else None
    kwargs = {**arch.kwargs_from(state)}
    if source is not None:
        kwargs.update(read_card(source).arch_kwargs)
    kwargs.pop("num_classes", None)
    if arch.family == "smp" and "encoder_name" not in kwargs:
        kwargs["encoder_name"] = A.guess_smp_encoder(arch, state, kwargs, spec)
    kwargs.update(arch_kwargs or {})
    return TrainableModel(module.train(), arch.name, kwargs, num_classes, tuple(entry.mean), tuple(entry.std),
                          entry.scale, entry.channel_order, max(1, entry.size_divisor), parent=spec,
                          parent_file=str(source) if source is not None else entry.source,
                          parent_sha256=_sha256(source) if source is not None else None)
