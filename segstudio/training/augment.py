"""Joint image/mask augmentation with ``torchvision.transforms.v2`` and ``tv_tensors.Mask``.

One training crop is drawn as: a random resized crop (``crop`` x ``crop`` pixels, covering 0.7-1.4 x
the crop's area of the image, so the pixel scale changes by at most about 20 %: microscopy and
aerial images have a meaningful scale), a horizontal and a vertical flip each with probability 0.5,
a rotation by a random multiple of 90 degrees, then photometric jitter of the image only: colour
jitter for 8-bit RGB, intensity scaling (x 0.8-1.25, clipped at full scale) for 16-bit and float
images. After the crop the image is float32 in 0-1 units, so the later steps touch only the crop. Masks are
resampled with nearest neighbour (``tv_tensors.Mask``), so class ids and the ignore index survive.

Every random draw comes from torch's global generator, which the training loop seeds (and saves
in its checkpoint), so a run with the same seed sees the same crops.
"""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["RandomRot90", "IntensityScale", "ToUnitFloat", "augmentation", "AUGMENTATION_DESCRIPTION"]

ZOOM = (0.7, 1.4)            # crop area / (crop x crop) range of the random resized crop
INTENSITY = (0.8, 1.25)
AUGMENTATION_DESCRIPTION = {
    "random_resized_crop": {"area_vs_crop": list(ZOOM), "ratio": [0.75, 1.3333]},
    "flips": "horizontal and vertical, p=0.5 each",
    "rotation": "multiples of 90 degrees",
    "color_jitter_rgb8": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.1, "hue": 0.0},
    "intensity_scale_16bit": list(INTENSITY),
}


class RandomRot90(v2.Transform):
    """Rotate image and mask together by k x 90 degrees, k uniform in 0..3."""

    def make_params(self, flat_inputs):
        return {"k": int(torch.randint(4, ()))}

    def transform(self, inpt, params):
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)) and params["k"]:
            return tv_tensors.wrap(torch.rot90(inpt.as_subclass(torch.Tensor), params["k"], dims=(-2, -1)),
                                   like=inpt)
        return inpt


class ToUnitFloat(v2.Transform):
    """Raw image values -> float32 in 0-1 units (``x * scale``); masks untouched.

    Done right after the crop, so the later steps work on the crop only and in float (colour jitter
    on uint8 would convert to float and back at each of its steps)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = float(scale)

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.Image):
            return tv_tensors.wrap(inpt.as_subclass(torch.Tensor).to(torch.float32) * self.scale, like=inpt)
        return inpt


class IntensityScale(v2.Transform):
    """Multiply a float image (0-1 units) by a random factor, clipped at ``maximum``; masks untouched."""

    def __init__(self, low: float = INTENSITY[0], high: float = INTENSITY[1], maximum: float | None = 1.0):
        super().__init__()
        self.low, self.high, self.maximum = float(low), float(high), maximum

    def make_params(self, flat_inputs):
        return {"factor": float(torch.empty(()).uniform_(self.low, self.high))}

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.Image) and inpt.is_floating_point():
            out = inpt.as_subclass(torch.Tensor) * params["factor"]
            if self.maximum is not None:
                out = out.clamp(0.0, self.maximum)
            return tv_tensors.wrap(out, like=inpt)
        return inpt


def augmentation(height: int, width: int, crop: int, eight_bit: bool, scale: float = 1.0 / 255.0) -> v2.Compose:
    """The transform for one image of ``height`` x ``width`` (``crop`` must fit in it); the image comes
    out as float32 in 0-1 units (raw values times ``scale``), the mask as it went in."""
    area = float(height * width)
    low = min(1.0, ZOOM[0] * crop * crop / area)
    high = min(1.0, ZOOM[1] * crop * crop / area)
    photometric = (v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1) if eight_bit
                   else IntensityScale(maximum=1.0 if scale != 1.0 else None))
    return v2.Compose([
        v2.RandomResizedCrop(crop, scale=(low, max(low, high)), ratio=(0.75, 4 / 3), antialias=True),
        ToUnitFloat(scale),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        RandomRot90(),
        photometric,
    ])
