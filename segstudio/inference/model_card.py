"""Model cards: the JSON sidecar that says how to feed a model and how to read its output.

A card sits beside the model file with the same stem (``model.pt`` -> ``model.json``); an SMP
directory saved with ``save_pretrained`` keeps it inside as ``segstudio.json``. Every field is
optional::

    {
      "architecture": "torchvision.deeplabv3_resnet50",   # or "smp.Unet", "segstudio.CompactUNet"
      "arch_kwargs": {"encoder_name": "resnet18"},
      "classes": [{"name": "background", "color": [0, 0, 0, 255]}, "road", ...],
      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],   # 0-1 units
      "channel_order": "RGB",                                        # or "BGR"
      "input_size": [512, 512],                                      # [W, H] or null
      "kind": "semantic",                                            # or "instance"
      "output": "logits"                                             # or "probabilities"
    }

``resolve_model(spec, **overrides)`` takes the same names as keyword overrides (the CLI flags).
This module does not import torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any, Mapping, Sequence

from segstudio.core.io.classes import ClassTable
from segstudio.core.errors import CheckpointError, ClassTableError
from segstudio.core.io.jsonfile import read_json

SMP_CARD_NAME = "segstudio.json"
CARD_KEYS = ("architecture", "arch_kwargs", "classes", "mean", "std", "channel_order", "input_size",
             "kind", "scale", "short_side", "output")
OUTPUTS = ("logits", "probabilities")


@dataclass(frozen=True)
class ModelCard:
    """What a model card (plus any overrides) says; ``None`` means "not stated".

    Attributes
    ----------
    architecture : str or None
        ``"torchvision.<name>"``, ``"smp.<Arch>"``, ``"segstudio.CompactUNet"`` or another name
        registered with ``segstudio.inference.architectures.register_architecture``.
    arch_kwargs : dict
        Extra constructor arguments for the architecture.
    classes : ClassTable or None
    mean, std : tuple of 3 floats or None
        Normalisation in 0-1 units, applied after ``scale``.
    channel_order : ``"RGB"`` or ``"BGR"`` or None
    input_size : (width, height) or None
        The size every image is resized to before the forward pass.
    kind : ``"semantic"`` or ``"instance"`` or None
    scale : float or None
        Multiplier from raw pixel values to 0-1 (None: by the image dtype, 1/255 or 1/65535).
    short_side : int or None
        Resize so that the shorter image side has this length (torchvision's ``resize_size``).
    output : ``"logits"`` or ``"probabilities"`` or None
        What a semantic model returns per class: raw scores (the default) or probabilities
        (softmax, or sigmoid for a single channel), as exported ONNX models often do.
    """

    architecture: str | None = None
    arch_kwargs: dict = field(default_factory=dict)
    classes: ClassTable | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    channel_order: str | None = None
    input_size: tuple[int, int] | None = None
    kind: str | None = None
    scale: float | None = None
    short_side: int | None = None
    output: str | None = None
    path: str | None = None

    def merged(self, overrides: "ModelCard") -> "ModelCard":
        """Return a card where every field stated in ``overrides`` wins."""
        changes = {}
        for key in CARD_KEYS:
            value = getattr(overrides, key)
            if key == "arch_kwargs":
                if value:
                    changes[key] = {**self.arch_kwargs, **value}
            elif value is not None:
                changes[key] = value
        return replace(self, **changes)


def card_path_for(model_path: str | PathLike) -> Path:
    """Where the card of ``model_path`` lives: ``<dir>/segstudio.json`` or ``<stem>.json``."""
    path = Path(model_path)
    if path.is_dir():
        return path / SMP_CARD_NAME
    return path.with_suffix(".json")


def read_card(model_path: str | PathLike) -> ModelCard:
    """Read the card beside ``model_path``; an absent card gives an empty ``ModelCard``.

    Raises
    ------
    CheckpointError
        The card exists but is not valid JSON or holds a bad value (the message names the card).
    """
    card_path = card_path_for(model_path)
    if not card_path.is_file():
        return ModelCard()
    data = read_json(card_path, CheckpointError, "cannot read model card", "model card is not valid JSON")
    if not isinstance(data, dict):
        raise CheckpointError(card_path, "model card must be a JSON object")
    return parse_card(data, card_path)


def parse_card(data: Mapping[str, Any], path: str | PathLike | None = None) -> ModelCard:
    """Validate a card dict (also used for keyword overrides; unknown keys are ignored).

    ``classes`` may be a ``ClassTable``, a list of names or ``{"name", "color"}`` objects, a
    ``{"classes": [...]}`` object, or a path to a class-table JSON or names.txt: for a card
    (``path`` given) relative to the card's folder and confined to it, for overrides relative to
    the working directory.

    Raises
    ------
    CheckpointError
        A value of the wrong type or out of range; the message names ``path`` and the field.
    """
    where = str(path) if path is not None else "model settings"

    def bad(key, reason):
        return CheckpointError(where, f"'{key}': {reason}")

    out: dict[str, Any] = {"path": str(path) if path is not None else None}
    if data.get("architecture") is not None:
        if not isinstance(data["architecture"], str):
            raise bad("architecture", f"expected a string, got {data['architecture']!r}")
        out["architecture"] = data["architecture"]
    if data.get("arch_kwargs") is not None:
        if not isinstance(data["arch_kwargs"], Mapping):
            raise bad("arch_kwargs", "expected an object")
        out["arch_kwargs"] = dict(data["arch_kwargs"])
    if data.get("classes") is not None:
        out["classes"] = _parse_classes(data["classes"], where, Path(path) if path is not None else None)
    for key in ("mean", "std"):
        if data.get(key) is not None:
            out[key] = _parse_triplet(data[key], key, where, positive=(key == "std"))
    if data.get("channel_order") is not None:
        order = str(data["channel_order"]).upper()
        if order not in ("RGB", "BGR"):
            raise bad("channel_order", f"expected 'RGB' or 'BGR', got {data['channel_order']!r}")
        out["channel_order"] = order
    if data.get("input_size") is not None:
        size = data["input_size"]
        if (not isinstance(size, Sequence) or isinstance(size, str) or len(size) != 2
                or not all(_is_int(v) and v > 0 for v in size)):
            raise bad("input_size", f"expected [width, height] of positive integers, got {size!r}")
        out["input_size"] = (int(size[0]), int(size[1]))
    if data.get("kind") is not None:
        if data["kind"] not in ("semantic", "instance"):
            raise bad("kind", f"expected 'semantic' or 'instance', got {data['kind']!r}")
        out["kind"] = data["kind"]
    if data.get("scale") is not None:
        scale = data["scale"]
        if not _is_number(scale) or not scale > 0:
            raise bad("scale", f"expected a positive number, got {scale!r}")
        out["scale"] = float(scale)
    if data.get("short_side") is not None:
        if not _is_int(data["short_side"]) or data["short_side"] <= 0:
            raise bad("short_side", f"expected a positive integer, got {data['short_side']!r}")
        out["short_side"] = int(data["short_side"])
    if data.get("output") is not None:
        if data["output"] not in OUTPUTS:
            raise bad("output", f"expected 'logits' or 'probabilities', got {data['output']!r}")
        out["output"] = data["output"]
    return ModelCard(**out)


def _parse_classes(value: Any, where: str, card_path: Path | None) -> ClassTable:
    if isinstance(value, ClassTable):
        return value
    try:
        if isinstance(value, (str, PathLike)):
            if card_path is not None:
                value = _beside_card(value, card_path)
            if str(value).lower().endswith(".txt"):
                return ClassTable.from_names_txt(value)
            return ClassTable.load(value)
        if isinstance(value, Mapping):
            return ClassTable.from_json(dict(value), where)
        if isinstance(value, Sequence):
            return ClassTable.from_json({"classes": list(value)}, where)
    except ClassTableError as exc:
        raise CheckpointError(exc.path or where, f"classes: {exc.reason}") from exc
    raise CheckpointError(where, f"'classes': expected a list of classes, got {type(value).__name__}")


def _beside_card(value: str | PathLike, card_path: Path) -> Path:
    """The card's class file, which must lie in the card's folder (or below it).

    A card travels with a downloaded model, so its paths are the sender's: read relative to the
    working directory, or absolute, or through ``..`` or a symlink, they would open any file the
    user can read (``"classes": "/etc/passwd"``) and echo parts of it in error messages.
    """
    relative = Path(value)
    if relative.is_absolute() or relative.drive:
        raise CheckpointError(card_path, f"'classes': {str(value)!r} is an absolute path; a model card "
                              "may only name a file in its own folder")
    folder = card_path.parent.resolve()
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder):
        raise CheckpointError(card_path, f"'classes': {str(value)!r} leads outside the card's folder "
                              f"({folder}); a model card may only name a file in its own folder")
    return target


def _parse_triplet(value: Any, key: str, where: str, positive: bool) -> tuple[float, float, float]:
    if (isinstance(value, str) or not isinstance(value, Sequence) or len(value) not in (1, 3)
            or not all(_is_number(v) and math.isfinite(v) for v in value)):
        raise CheckpointError(where, f"'{key}': expected 3 numbers (0-1 units), got {value!r}")
    values = tuple(float(v) for v in value) * (3 if len(value) == 1 else 1)
    if positive and not all(v > 0 for v in values):
        raise CheckpointError(where, f"'{key}': values must be positive, got {list(value)}")
    if any(abs(v) > 2 for v in values):
        raise CheckpointError(where, f"'{key}': {list(value)} looks like 0-255 units; divide by 255")
    return values  # type: ignore[return-value]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)

