"""``torch.export`` programs (.pt2): inspected, trusted, loaded and fed through a ``ShapeAdapter``.

``torch.export.load(...).module()`` gives an ``nn.Module`` whose input shape is what the program
declares: dimensions exported static are fixed (an image is resized to them), dynamic ones have a
range and often a divisor (an image is padded to them). ``input_spec`` reads that declaration from
the program; ``load_export`` wraps the module so the runner can send any batch of any size.
"""
from __future__ import annotations

import io
import warnings
from os import PathLike
from pathlib import Path

import torch

from segstudio.core.errors import CheckpointError
from segstudio.inference import export_guard
from segstudio.inference.model_file import read_model_bytes, reading_model_file
from segstudio.inference.model_trust import TrustStore, UntrustedModelError, sha256_of
from segstudio.inference.shapes import Dim, ShapeAdapter, ShapeSpec


def load_program(path: str | PathLike, store: TrustStore | None = None):
    """The inspected ``ExportedProgram`` in ``path``, if the user trusts the file.

    Raises
    ------
    CheckpointError
        Unreadable, refused by ``export_guard``, or not a program of one image input.
    UntrustedModelError
        It passed inspection but the user has not agreed to run it.
    """
    path = Path(path)
    data = read_model_bytes(path)
    with reading_model_file(path):
        export_guard.check_archive(data, path)
    if not (store or TrustStore()).is_trusted(sha256_of(data)):
        raise UntrustedModelError(path, "torch.export program")
    with reading_model_file(path), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.export.load(io.BytesIO(data))
        except (RuntimeError, ValueError, KeyError, AssertionError) as exc:
            raise CheckpointError(path, "cannot load the torch.export program: "
                                  f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
        export_guard.check_loaded_graph(program.graph_module, path)
    return program


def input_spec(program, path: str | PathLike) -> ShapeSpec:
    """The N x C x H x W input the program declares (static sizes fixed, symbolic ones ranged)."""
    names = [spec.arg.name for spec in program.graph_signature.input_specs
             if spec.kind.name == "USER_INPUT" and hasattr(spec.arg, "name")]
    if len(names) != 1:
        raise CheckpointError(path, f"the exported program takes {len(names)} inputs; segstudio feeds one "
                              "N x 3 x H x W image batch")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == names[0])
    value = node.meta.get("val")
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 4:
        raise CheckpointError(path, f"the exported program's input has shape {tuple(shape or ())}; "
                              "segstudio feeds N x 3 x H x W images")
    dims = [_dim(size, program.range_constraints) for size in shape]
    if dims[1].fixed not in (None, 3):
        raise CheckpointError(path, f"the exported program takes {dims[1].fixed} channels; segstudio "
                              "feeds 3 (RGB or BGR)")
    return ShapeSpec(*dims)


def _dim(size, ranges) -> Dim:
    if isinstance(size, int):
        return Dim(fixed=size)
    expr = size.node.expr
    if expr.is_number:
        return Dim(fixed=int(expr))
    coefficient, rest = expr.as_coeff_Mul()
    multiple = int(coefficient) if coefficient.is_Integer and coefficient > 0 else 1
    bounds = ranges.get(rest) if multiple > 1 else ranges.get(expr)
    low, high = 1, None
    if bounds is not None:
        lower, upper = _finite(bounds.lower), _finite(bounds.upper)
        low = max(1, lower or 1) * multiple
        high = upper * multiple if upper is not None else None
    return Dim(low=max(low, multiple), high=high, multiple=multiple)


def _finite(value) -> int | None:
    """``value`` as an int, None for the infinities of a range (sympy's oo and torch's int_oo)."""
    try:
        number = int(value)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    return number if abs(number) < 2 ** 62 else None


def load_export(path: str | PathLike, device="cpu", store: TrustStore | None = None) -> ShapeAdapter:
    """The program's module on ``device``, wrapped to take any N x 3 x H x W batch."""
    program = load_program(path, store)
    spec = input_spec(program, path)
    with reading_model_file(path):
        if torch.device(device).type != "cpu":
            from torch.export.passes import move_to_device_pass  # noqa: PLC0415

            program = move_to_device_pass(program, torch.device(device))
        module = program.module()
    return ShapeAdapter(module, spec).to(device)


def output_classes(program) -> int | None:
    """The channel count of the program's first output when the program states it, else None."""
    output = next((n for n in program.graph.nodes if n.op == "output"), None)
    if output is None:
        return None
    value = output.args[0]
    while isinstance(value, (tuple, list)) and value:
        value = value[0]
    if isinstance(value, dict) and value:
        value = value.get("out", next(iter(value.values())))
    shape = getattr(getattr(value, "meta", {}).get("val"), "shape", None)
    if shape is None or len(shape) != 4 or not isinstance(shape[1], int):
        return None
    return int(shape[1])
