"""Logits -> (mask, confidence, entropy) without ever holding C x H x W at full image size.

Two streaming paths share the same per-band statistics:

* ``write_resized``: a model ran on a resized image; its logits are upsampled bilinearly to the
  image size one band of rows at a time (the same sampling as
  ``F.interpolate(mode="bilinear", align_corners=False)``).
* ``TileBlender``: sliding-window tiles are blended with raised-cosine ramps over the overlap into a
  buffer one tile-row high; rows no later tile can touch are finished and written out, the rest
  is shifted up. Peak extra memory is ``C x tile x W`` floats, whatever the image height.
"""
from __future__ import annotations

import math

import numpy as np
import torch

BAND_BYTES = 16 << 20  # budget for one band of logits being turned into statistics


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``, evenly spread, overlapping by ``>= overlap``.

    As few tiles as a stride of ``tile - overlap`` needs; the first starts at 0 and the last ends
    at ``length``, with the slack shared out evenly instead of piling up in the last step.

    Raises
    ------
    ValueError
        ``length`` needs several tiles and ``overlap`` is negative or not below ``tile``: the stride
        would be zero or negative.
    """
    if length <= tile:
        return [0]  # one tile: no stride, so any overlap will do
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be at least 0 and below the tile size {tile}")
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    span = length - tile
    return [round(i * span / (count - 1)) for i in range(count)]


def ramp(size: int, overlap: int, lead: bool, trail: bool) -> torch.Tensor:
    """1-D blending weights: a raised-cosine rise over ``overlap`` pixels on sides with a neighbour.

    The cosine starts near zero (about ``(pi / overlap)**2 / 4``), so a tile's outermost pixels,
    whose receptive field ran into the tile's zero padding, barely count where another tile saw
    them from inside. Weights stay > 0 everywhere, so every pixel has a positive weight sum.
    """
    weights = torch.ones(size, dtype=torch.float64)
    width = min(overlap, size // 2)
    if width > 0:
        steps = torch.arange(1, width + 1, dtype=torch.float64) / (width + 1)
        rising = 0.5 - 0.5 * torch.cos(math.pi * steps)
        if lead:
            weights[:width] = rising
        if trail:
            weights[size - width:] = rising.flip(0)
    return weights.float()


def two_class_logits(logits: torch.Tensor) -> torch.Tensor:
    """A 1-channel (sigmoid) output as 2-class logits ``[0, x]``: softmax of those is sigmoid(x)."""
    if logits.shape[-3] != 1:
        return logits
    return torch.cat([torch.zeros_like(logits), logits], dim=-3)


def logit_stats(logits: torch.Tensor, inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(argmax, max softmax, entropy / log C) over dim -3 of float logits (..., C, H, W).

    ``inplace=True`` lets a float32 temporary be overwritten (one C-sized buffer fewer).
    """
    if logits.dtype != torch.float32:
        logits, inplace = logits.float(), True
    num_classes = logits.shape[-3]
    top, index = logits.max(dim=-3, keepdim=True)
    shifted = logits.sub_(top) if inplace else logits - top
    exp = shifted.exp()
    total = exp.sum(dim=-3)
    confidence = total.reciprocal()
    # H = log(sum e^z) - sum(e^z * z) / sum(e^z), with z = logits - max (so log-sum-exp >= 0).
    entropy = total.log_().sub_(exp.mul_(shifted).sum(dim=-3).mul_(confidence))
    del exp, shifted
    if num_classes > 1:
        entropy = entropy.mul_(1.0 / math.log(num_classes)).clamp_(0.0, 1.0)
    else:
        entropy = entropy.zero_()
    return index.squeeze(-3), confidence, entropy


class Outputs:
    """The full-size result arrays, filled band by band.

    With ``probabilities=True`` the softmax over classes is kept too, as ``(C, H, W)`` float16
    (2·C bytes a pixel: opt-in, for label-error detection); else ``probabilities`` is None.
    """

    def __init__(self, height: int, width: int, num_classes: int, probabilities: bool = False):
        self.mask = np.empty((height, width), np.uint8 if num_classes <= 256 else np.uint16)
        self.confidence = np.empty((height, width), np.float32)
        self.entropy = np.empty((height, width), np.float32)
        self.probabilities = (np.empty((num_classes, height, width), np.float16) if probabilities else None)

    def write(self, top: int, left: int, logits: torch.Tensor, inplace: bool = False) -> None:
        """Write the statistics of ``logits`` (C, h, w) at row ``top``, column ``left``."""
        if self.probabilities is not None:  # before logit_stats, which may overwrite the logits
            h, w = logits.shape[-2:]
            self.probabilities[:, top:top + h, left:left + w] = (
                torch.softmax(logits.float(), dim=-3).cpu().numpy())
        index, confidence, entropy = logit_stats(logits, inplace)
        h, w = index.shape
        self.mask[top:top + h, left:left + w] = index.cpu().numpy()
        self.confidence[top:top + h, left:left + w] = confidence.cpu().numpy()
        self.entropy[top:top + h, left:left + w] = entropy.cpu().numpy()


def _source_index(out_size: int, in_size: int, start: int, stop: int, device) -> tuple:
    """Bilinear taps (lo, hi, weight of hi) for output positions [start, stop) (align_corners=False)."""
    scale = in_size / out_size
    pos = (torch.arange(start, stop, device=device, dtype=torch.float64) + 0.5) * scale - 0.5
    pos = pos.clamp_(min=0.0)
    lo = pos.floor().long().clamp_(max=in_size - 1)
    hi = (lo + 1).clamp_(max=in_size - 1)
    return lo, hi, (pos - lo).float()


def write_resized(logits: torch.Tensor, outputs: Outputs, top: int = 0, left: int = 0,
                  size: tuple[int, int] | None = None) -> None:
    """Upsample ``logits`` (C, h, w) bilinearly to ``size`` (width, height) band by band and write."""
    num_classes, in_h, in_w = logits.shape
    width, height = size if size is not None else outputs.mask.shape[::-1]
    if (in_h, in_w) == (height, width):
        band = max(1, BAND_BYTES // max(1, 4 * num_classes * width))
        for y in range(0, height, band):
            outputs.write(top + y, left, logits[:, y:y + band])
        return
    logits = logits.float()
    x_lo, x_hi, x_w = _source_index(width, in_w, 0, width, logits.device)
    band = max(1, BAND_BYTES // max(1, 4 * num_classes * (width + in_w)))
    for y in range(0, height, band):
        y_lo, y_hi, y_w = _source_index(height, in_h, y, min(y + band, height), logits.device)
        rows = torch.lerp(logits[:, y_lo], logits[:, y_hi], y_w[None, :, None])
        cols = torch.lerp(rows[:, :, x_lo], rows[:, :, x_hi], x_w[None, None, :])
        del rows
        outputs.write(top + y, left, cols, inplace=True)


class TileBlender:
    """Streaming weighted blend of sliding-window tile logits into ``Outputs``.

    Feed tiles row by row (``add`` for each tile of a tile row, then ``end_row``).
    """

    def __init__(self, outputs: Outputs, num_classes: int, tile_h: int, tile_w: int, overlap: int,
                 device):
        self.outputs = outputs
        height, width = outputs.mask.shape
        self.height, self.width = height, width
        self.tile_h, self.tile_w, self.overlap = tile_h, tile_w, overlap
        self.ys = tile_starts(height, tile_h, overlap)
        self.xs = tile_starts(width, tile_w, overlap)
        self.acc = torch.zeros((num_classes, tile_h, width), dtype=torch.float32, device=device)
        self.weight = torch.zeros((tile_h, width), dtype=torch.float32, device=device)
        self.row = 0  # index into ys of the tile row being accumulated

    def weights(self, y: int, x: int) -> torch.Tensor:
        wy = ramp(self.tile_h, self.overlap, y > 0, y + self.tile_h < self.height)
        wx = ramp(self.tile_w, self.overlap, x > 0, x + self.tile_w < self.width)
        return (wy[:, None] * wx[None, :]).to(self.acc.device)

    def add(self, x: int, logits: torch.Tensor) -> None:
        """Blend one tile's logits (C, tile_h, tile_w) at column ``x`` of the current tile row."""
        weight = self.weights(self.ys[self.row], x)
        self.acc[:, :, x:x + self.tile_w].addcmul_(logits.float(), weight[None])
        self.weight[:, x:x + self.tile_w] += weight

    def end_row(self) -> None:
        """Finish the rows no later tile reaches, write them, and shift the buffer up."""
        y = self.ys[self.row]
        last = self.row == len(self.ys) - 1
        done = self.tile_h if last else self.ys[self.row + 1] - y
        band = max(1, BAND_BYTES // max(1, 4 * self.acc.shape[0] * self.width))
        for r in range(0, done, band):
            stop = min(r + band, done)
            blended = self.acc[:, r:stop] / self.weight[None, r:stop]
            self.outputs.write(y + r, 0, blended, inplace=True)
        if not last:
            keep = self.tile_h - done
            for buffer in (self.acc, self.weight):
                # Shift up in chunks of at most `done` rows: source and target never overlap, so
                # no temporary copy of the carried rows is needed.
                for start in range(0, keep, done):
                    count = min(done, keep - start)
                    buffer.narrow(-2, start, count).copy_(buffer.narrow(-2, done + start, count))
                buffer.narrow(-2, keep, done).zero_()
        self.row += 1
