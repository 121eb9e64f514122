"""Feeding a program with a declared input shape (torch.export, ONNX) whatever size the runner sends.

An exported program or ONNX graph states what it accepts: a fixed batch, height and width, or
symbolic ones with a range and a divisor. The runner sends batches of any size (tiles, resized
images, the class-count probe). ``ShapeAdapter`` makes each call fit: it cuts a batch into chunks
the program takes (repeating the last image up to a minimum), resizes to a fixed height and width
(bilinear, and the logits back) and pads a dynamic one up to its minimum and divisor (edge
replication, the logits cropped back).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Dim:
    """One input dimension: ``fixed`` size, or a range ``[low, high]`` of multiples of ``multiple``."""

    fixed: int | None = None
    low: int = 1
    high: int | None = None
    multiple: int = 1

    def fit(self, size: int) -> int:
        """The size to feed for an input of ``size`` (dynamic dims only)."""
        size = max(size, self.low)
        return -(-size // self.multiple) * self.multiple

    def describe(self) -> str:
        if self.fixed is not None:
            return str(self.fixed)
        text = f"{self.low}.." + (str(self.high) if self.high is not None else "")
        return text + (f" (multiples of {self.multiple})" if self.multiple > 1 else "")


@dataclass(frozen=True)
class ShapeSpec:
    """The N x C x H x W input a program declares."""

    batch: Dim
    channels: Dim
    height: Dim
    width: Dim

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """``(width, height)`` when both are fixed, else None."""
        if self.height.fixed is not None and self.width.fixed is not None:
            return self.width.fixed, self.height.fixed
        return None

    def describe(self) -> str:
        return " x ".join(d.describe() for d in (self.batch, self.channels, self.height, self.width))


def first_tensor(output) -> torch.Tensor:
    """The logits tensor of a model output (tensor, dict with ``out``, tuple or list)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) and output:
        return first_tensor(output["out"] if "out" in output else next(iter(output.values())))
    if isinstance(output, (tuple, list)) and output:
        return first_tensor(output[0])
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


class ShapeAdapter(nn.Module):
    """Runs ``program`` on N x 3 x H x W input of any size, as ``spec`` allows; returns logits."""

    def __init__(self, program: nn.Module, spec: ShapeSpec):
        super().__init__()
        self.program = program
        self.spec = spec

    @property
    def load_notice(self) -> str | None:
        """What the program had to settle for when loaded (the runner shows it), if anything."""
        return getattr(self.program, "load_notice", None)

    def to(self, *args, **kwargs):  # noqa: D102 - the program may hold a session to move (ONNX)
        self.program = self.program.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = self.spec.batch
        step = batch.fixed or batch.high or x.shape[0]
        chunks = [self._spatial(x[start:start + step]) for start in range(0, x.shape[0], step)]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        fixed = self.spec.fixed_size
        if fixed is not None:
            if (width, height) == fixed:
                return self._batch(x)
            logits = self._batch(F.interpolate(x, size=(fixed[1], fixed[0]), mode="bilinear",
                                               align_corners=False))
            return F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
        fit_h = self.spec.height.fit(height) if self.spec.height.fixed is None else self.spec.height.fixed
        fit_w = self.spec.width.fit(width) if self.spec.width.fixed is None else self.spec.width.fixed
        if (fit_h, fit_w) == (height, width):
            return self._batch(x)
        if fit_h >= height and fit_w >= width:
            padded = F.pad(x, (0, fit_w - width, 0, fit_h - height), mode="replicate")
            return self._batch(padded)[..., :height, :width]
        # One side fixed and smaller than the input: resize that side, as for a fixed-size model.
        logits = self._batch(F.interpolate(x, size=(fit_h, fit_w), mode="bilinear", align_corners=False))
        return F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        count = x.shape[0]
        need = self.spec.batch.fixed or self.spec.batch.low
        if count < need:
            x = torch.cat([x, x[-1:].expand(need - count, *x.shape[1:])])
        return first_tensor(self.program(x.contiguous()))[:count]
