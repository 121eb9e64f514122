"""Registry entries for model files that carry their own graph: torch.export programs and ONNX.

Like TorchScript, neither names an architecture: the card (or the program) says how to feed it.
The class count comes from the card, else from the program's declared output shape, else from one
run on a small test input. A program with a fixed input size gets it as the entry's input size
(every image resized to it) unless the card or the user sets another; ``ShapeAdapter`` resizes or
pads whatever still does not fit (tiles, for instance).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from segstudio.core.errors import CheckpointError
from segstudio.core.io.classes import ClassTable
from segstudio.inference.model_card import ModelCard
from segstudio.inference.model_file import InputSizeNeeded


def from_export(path: Path, card: ModelCard, name: str, make_entry):
    """A ``ModelEntry`` for a .pt2 program (loaded now, so an unsafe or untrusted file fails when picked)."""
    from segstudio.inference import exported  # noqa: PLC0415

    program = exported.load_program(path)
    spec = exported.input_spec(program, path)
    count = exported.output_classes(program)
    module = None
    if card.classes is None and count is None:
        module = exported.ShapeAdapter(program.module(), spec)
    del program

    def loader(device: str = "cpu", progress=None):
        return exported.load_export(path, device)

    return _entry(path, card, name, make_entry, spec, count, module, loader, "torch.export program")


def from_onnx(path: Path, card: ModelCard, name: str, make_entry):
    """A ``ModelEntry`` for an ONNX model (a session opened now, so a bad file fails when picked)."""
    from segstudio.inference import onnx_model  # noqa: PLC0415

    program = onnx_model.OnnxProgram(path, "cpu")
    spec = program.input_spec()
    count = program.output_classes()
    module = onnx_model.ShapeAdapter(program, spec) if card.classes is None and count is None else None

    def loader(device: str = "cpu", progress=None):
        return onnx_model.load_onnx(path, device)

    return _entry(path, card, name, make_entry, spec, count, module, loader, "ONNX model")


def _entry(path: Path, card: ModelCard, name: str, make_entry, spec, count, module, loader, what: str):
    kind = card.kind or "semantic"
    if kind == "instance":
        raise CheckpointError(path, f"a {what} is run as a semantic model; instance models are read from "
                              "TorchScript or a torchvision state dict")
    if card.input_size is None and spec.fixed_size is not None:
        card = replace(card, input_size=spec.fixed_size)
    table = card.classes
    if table is None:
        table = ClassTable.generic(count if count is not None else probe_classes(module, path, card, what))
    elif count is not None and count not in (table.num_classes, 1 if table.num_classes == 2 else -1):
        raise CheckpointError(path, f"the classes given list {table.num_classes} classes but the {what} "
                              f"outputs {count} channels")
    entry = make_entry(name, card, kind, table, loader, architecture=None, source=str(path),
                       description=f"{what} ({table.num_classes} classes, input "
                       f"{spec.describe()}) from {path.name}")
    # Fixed-size programs get exactly their size; dynamic ones the usual /32 padding, on top of
    # which the adapter pads to any divisor the program declares.
    entry.size_divisor = 1 if spec.fixed_size is not None else 32
    return entry


def probe_classes(module, path: Path, card: ModelCard, what: str) -> int:
    """Run ``module`` once on a zero image (the card's input size, else 64 x 64) for its class count.

    Raises
    ------
    InputSizeNeeded
        The model failed on that input: it probably needs another size.
    CheckpointError
        Its output is not N x C x H x W.
    """
    import torch  # noqa: PLC0415

    from segstudio.inference.shapes import first_tensor  # noqa: PLC0415

    width, height = card.input_size or (64, 64)
    try:
        with torch.inference_mode():
            logits = first_tensor(module(torch.zeros(1, 3, height, width)))
    except Exception as exc:  # noqa: BLE001 - a model's own code can raise anything
        message = " ".join(str(exc).split())
        raise InputSizeNeeded(path, f"the {what} failed on a {width}x{height} test input "
                              f"({type(exc).__name__}{': ' + message if message else ''})") from None
    if logits.ndim != 4:
        raise CheckpointError(path, f"expected N x C x H x W logits, got shape {tuple(logits.shape)}")
    return int(logits.shape[1])
