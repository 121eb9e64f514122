"""Tiny models and checkpoint writers shared by the inference tests."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segstudio.inference.architectures import register_architecture
from segstudio.inference.model_trust import trust_file

TINY = "tests.TinyNet"


class TinyNet(nn.Module):
    """3x3 conv -> ReLU -> 1x1 conv: a 3-pixel receptive field, so tiles see what the whole image sees."""

    def __init__(self, num_classes: int = 3, width: int = 8):
        super().__init__()
        self.body = nn.Conv2d(3, width, 3, padding=1)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def tiny_net(num_classes: int = 3, seed: int = 0, width: int = 8) -> TinyNet:
    """A TinyNet with strong, spatially varying outputs (so argmax and confidence mean something)."""
    torch.manual_seed(seed)
    net = TinyNet(num_classes, width)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0)
    return net.eval()


register_architecture(TINY, lambda num_classes, **kw: TinyNet(num_classes, **kw), head_key="head.weight",
                      description="test network")


def save_torchscript(net: nn.Module, path: Path, trusted: bool = True) -> None:
    """Trace ``net`` (3 input channels) into TorchScript and save it (silencing torch's deprecation
    notice); by default also record it as trusted, as a user who made the file would.

    Traced, not scripted: once a test has had ``torch.jit.load`` fail on a damaged archive, later
    ``torch.jit.script`` calls in the same process can fail to compile ``nn.Conv2d`` ("builtin cannot be
    used as a value"); tracing does not run the TorchScript compiler on the module's source.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(net.eval(), torch.zeros(1, 3, 16, 16)).save(str(path))
    if trusted:
        trust_file(path)


def write_card(model_path: Path, **fields) -> Path:
    card_path = model_path / "segstudio.json" if model_path.is_dir() else model_path.with_suffix(".json")
    card_path.write_text(json.dumps(fields))
    return card_path


def save_tiny(path: Path, num_classes: int = 3, wrap: str | None = None, prefix: str = "",
              card: bool = True, seed: int = 0) -> TinyNet:
    """Save a TinyNet state dict (optionally wrapped / prefixed) plus its model card."""
    net = tiny_net(num_classes, seed)
    state = {prefix + k: v for k, v in net.state_dict().items()}
    torch.save({wrap: state, "epoch": 7} if wrap else state, path)
    if card:
        write_card(path, architecture=TINY, classes=[f"c{i}" for i in range(num_classes)],
                   mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    return net


def reference_logits(net: nn.Module, image: np.ndarray, mean=(0.5,) * 3, std=(0.25,) * 3) -> torch.Tensor:
    """The logits the runner should get, computed the plain way: (x/255 - mean) / std, one forward."""
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        out = net(x)
    return out["out"] if isinstance(out, dict) else out


def random_image(height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """Smooth random blobs (not white noise) so predictions form regions."""
    rng = np.random.default_rng(seed)
    small = rng.random((max(2, height // 8), max(2, width // 8), channels)).astype(np.float32)
    import cv2  # noqa: PLC0415

    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    big = big.reshape(height, width, channels)
    return np.clip(big * 255, 0, 255).astype(np.uint8)


TINY_MASK_RCNN = "tests.TinyMaskRCNN"


def tiny_mask_rcnn(num_classes: int = 3) -> nn.Module:
    """A Mask R-CNN with a one-layer backbone and 64 px internal size: fast enough for tests."""
    from torchvision.models.detection import MaskRCNN  # noqa: PLC0415
    from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: PLC0415
    from torchvision.ops import MultiScaleRoIAlign  # noqa: PLC0415

    class Backbone(nn.Sequential):
        out_channels = 16

    backbone = Backbone(nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.ReLU())
    return MaskRCNN(backbone, num_classes=num_classes, min_size=64, max_size=96,
                    rpn_anchor_generator=AnchorGenerator(((16, 32),), ((0.5, 1.0, 2.0),)),
                    box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
                    mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2)).eval()


register_architecture(TINY_MASK_RCNN, lambda num_classes, **kw: tiny_mask_rcnn(num_classes), kind="instance",
                      head_key="roi_heads.box_predictor.cls_score.weight", description="test Mask R-CNN")
