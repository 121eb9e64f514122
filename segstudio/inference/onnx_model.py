"""ONNX models through onnxruntime (the optional ``segstudio[onnx]`` extra, imported lazily).

An ``InferenceSession`` is wrapped as an ``nn.Module`` (``OnnxProgram``) so the runner treats it like
any other model: the same preprocessing, tiling, batching, cancellation (a pre-hook runs before each
session call) and OOM fallback. The execution provider follows the device: CUDA when the device is
``cuda`` and onnxruntime has the CUDA provider, else the CPU. The graph's declared input shape
(fixed or symbolic dimensions) becomes a ``ShapeSpec``, and a ``ShapeAdapter`` fits every batch to it.

An ONNX file is data: a graph of standard operators run by onnxruntime's own kernels; operators
of custom domains need a library registered by the application, which segstudio never does. So
it is not asked about like TorchScript (docs/threat-model.md).
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segstudio.core.errors import CheckpointError
from segstudio.inference.shapes import Dim, ShapeAdapter, ShapeSpec

INSTALL_HINT = "ONNX models need `pip install segstudio[onnx]`"
_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def onnxruntime_module(path: str | PathLike):
    """``import onnxruntime``, or a ``CheckpointError`` saying how to install it."""
    try:
        import onnxruntime  # noqa: PLC0415
    except ImportError:
        raise CheckpointError(path, f"{INSTALL_HINT} (onnxruntime is not installed)") from None
    return onnxruntime


def providers_for(device: str | torch.device, available: list[str]) -> list:
    """Execution providers for ``device``: CUDA (that GPU) first when asked and present, then CPU."""
    device = torch.device(device)
    if device.type == "cuda" and "CUDAExecutionProvider" in available:
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxProgram(nn.Module):
    """One ``InferenceSession`` as a module: N x 3 x H x W float tensor in, first output as a tensor out."""

    def __init__(self, path: str | PathLike, device: str | torch.device = "cpu"):
        super().__init__()
        self.path = Path(path)
        self.device = torch.device(device)
        self.session = self._open(self.device)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise CheckpointError(self.path, f"the ONNX model takes {len(inputs)} inputs ({names}); "
                                  "segstudio feeds one N x 3 x H x W image batch")
        self.input_name = inputs[0].name
        if inputs[0].type not in _INPUT_TYPES:
            raise CheckpointError(self.path, f"the ONNX model's input is {inputs[0].type}; segstudio feeds "
                                  "float images (tensor(float))")
        self.input_dtype = _INPUT_TYPES[inputs[0].type]
        self.output_name = self.session.get_outputs()[0].name

    def _open(self, device: torch.device):
        ort = onnxruntime_module(self.path)
        options = ort.SessionOptions()
        options.log_severity_level = 3   # errors only: ORT's warnings are for developers
        providers = providers_for(device, ort.get_available_providers())
        self.load_notice = None
        if device.type != "cpu" and providers == ["CPUExecutionProvider"]:
            self.load_notice = (f"onnxruntime has no {device.type.upper()} execution provider here; the ONNX "
                                "model runs on the CPU (install onnxruntime-gpu for CUDA)")
        try:
            return ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise CheckpointError(self.path, "onnxruntime cannot load this model: "
                                  f"{' '.join(str(exc).split())}") from None

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def input_spec(self) -> ShapeSpec:
        """The declared input shape: ints are fixed, names or None are dynamic."""
        shape = list(self.session.get_inputs()[0].shape)
        if len(shape) != 4:
            raise CheckpointError(self.path, f"the ONNX model's input has shape {shape}; segstudio feeds "
                                  "N x 3 x H x W images")
        dims = [Dim(fixed=int(v)) if isinstance(v, int) and v > 0 else Dim() for v in shape]
        if dims[1].fixed not in (None, 3):
            raise CheckpointError(self.path, f"the ONNX model takes {dims[1].fixed} channels; segstudio "
                                  "feeds 3 (RGB or BGR)")
        return ShapeSpec(*dims)

    def output_classes(self) -> int | None:
        shape = self.session.get_outputs()[0].shape
        return int(shape[1]) if len(shape) == 4 and isinstance(shape[1], int) and shape[1] > 0 else None

    def to(self, *args, **kwargs):  # noqa: D102 - nn.Module.to, which also moves the session
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None and torch.device(device) != self.device:
            self.device = torch.device(device)
            self.session = self._open(self.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().float().cpu().numpy().astype(self.input_dtype, copy=False)
        (output,) = self.session.run([self.output_name], {self.input_name: array})
        return torch.from_numpy(np.asarray(output, dtype=np.float32)).to(x.device)


def load_onnx(path: str | PathLike, device: str | torch.device = "cpu") -> ShapeAdapter:
    """The ONNX model at ``path`` as a module taking any N x 3 x H x W batch on ``device``."""
    program = OnnxProgram(path, device)
    return ShapeAdapter(program, program.input_spec())
