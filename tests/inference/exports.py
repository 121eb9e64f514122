"""Writing tiny models as torch.export programs and ONNX files, and editing archives, for the tests."""
from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from segstudio.inference.model_trust import trust_file


def save_pt2(net: nn.Module, path: Path, size: tuple[int, int] = (32, 32), batch: int = 1,
             dynamic: bool = False, trusted: bool = True) -> Path:
    """``torch.export`` ``net`` on a ``batch x 3 x H x W`` example (``size`` is (W, H)) and save it.

    ``dynamic``: batch, height and width exported as ``Dim.AUTO`` (symbolic where the model allows).
    """
    example = torch.zeros(batch, 3, size[1], size[0])
    shapes = None
    if dynamic:
        auto = torch.export.Dim.AUTO
        shapes = {"x": {0: auto, 2: auto, 3: auto}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(net.eval(), (example,), dynamic_shapes=shapes)
        torch.export.save(program, path)
    if trusted:
        trust_file(path)
    return path


def save_onnx(net: nn.Module, path: Path, size: tuple[int, int] = (32, 32), dynamic: bool = True) -> Path:
    """Export ``net`` to ONNX with the TorchScript-based exporter (no onnxscript needed).

    ``dynamic``: batch, height and width are named (symbolic) axes; else the graph is fixed at
    ``1 x 3 x H x W``.
    """
    axes = {"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(1, 3, size[1], size[0]),), str(path), dynamo=False,
                          input_names=["image"], output_names=["logits"], dynamic_axes=axes)
    return path


def rewrite_member(path: Path, suffix: str, change: Callable[[bytes], bytes], add: dict | None = None) -> None:
    """Rewrite the zip at ``path`` with ``change`` applied to the member ending in ``suffix``
    (and members ``add`` added), as someone crafting a file would."""
    members = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            members[name] = change(data) if name.endswith(suffix) else data
    root = next(iter(members)).split("/")[0]
    for name, data in (add or {}).items():
        members[f"{root}/{name}"] = data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def edit_program_json(path: Path, edit: Callable[[dict], None]) -> None:
    """Apply ``edit`` to the program's models/model.json inside the .pt2 at ``path``."""
    def change(raw: bytes) -> bytes:
        data = json.loads(raw)
        edit(data)
        return json.dumps(data).encode()

    rewrite_member(path, "models/model.json", change)
