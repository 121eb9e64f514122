"""A compact U-Net, the architecture of the bundled demo model.

This is the textbook U-Net (Ronneberger et al., 2015) scaled down: each level is
two 3x3 convolution + batch-norm + ReLU blocks, max-pooling goes down, a 2x2
transposed convolution goes up and is concatenated with the skip connection of
the same level, and a 1x1 convolution gives per-class logits. ``base=16,
depth=3`` has about 0.47 M parameters (under 2 MB as float32).

Inputs of any height and width work: the forward pass pads the bottom and right
edges up to a multiple of ``2 ** depth`` (reflecting the image so the padding
looks like more of the same field) and crops the logits back.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _DoubleConv(nn.Sequential):
    """(3x3 conv -> BN -> ReLU) x 2; the convolutions have no bias because BN follows."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class _Up(nn.Module):
    """Upsample x2 with a transposed convolution, concatenate the skip, double conv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = _DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class CompactUNet(nn.Module):
    """Compact U-Net for semantic segmentation.

    Parameters
    ----------
    in_channels : int
        Input channels (3 for RGB).
    num_classes : int
        Output channels: one logit per class.
    base : int
        Feature channels at full resolution; level ``i`` has ``base * 2**i``.
    depth : int
        Number of down-sampling steps (the bottleneck is at 1 / 2**depth scale).

    The forward pass takes ``(N, in_channels, H, W)`` for any ``H, W >= 1`` and
    returns logits of shape ``(N, num_classes, H, W)``.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 4, base: int = 16, depth: int = 3):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = depth
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.stem = _DoubleConv(in_channels, widths[0])
        self.down = nn.ModuleList(_DoubleConv(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(_Up(widths[i + 1], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2 ** self.depth
        pad_h, pad_w = -height % multiple, -width % multiple
        if pad_h or pad_w:
            # Reflection needs the pad to be smaller than the side; tiny inputs replicate instead.
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        return self.head(y)[..., :height, :width]
