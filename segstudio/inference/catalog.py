"""The built-in model names, readable without torch.

The model dock lists what can be run as soon as the window is up, and the command line checks a
``--model`` spec before the window opens; neither may import torch (about half a gigabyte), so the
names, kinds and descriptions of the built-in entries live here. ``architectures`` builds them and
``registry`` resolves them, both with torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["TORCHVISION_SEMANTIC", "TORCHVISION_INSTANCE", "SMP_ARCHS", "ModelListing", "list_available",
           "spec_problem", "torchvision_description", "smp_description", "DEMO_DESCRIPTION"]

TORCHVISION_SEMANTIC = ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                        "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")
TORCHVISION_INSTANCE = ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")
SMP_ARCHS = ("Unet", "UnetPlusPlus", "DeepLabV3", "DeepLabV3Plus", "PSPNet", "PAN", "FPN", "Segformer")
DEMO_DESCRIPTION = "Demo CompactUNet trained on the bundled demo dataset"


@dataclass(frozen=True)
class ModelListing:
    """A registry entry as the model list shows it: no weights read, no torch imported."""

    name: str
    kind: str
    description: str


def torchvision_description(name: str) -> str:
    instance = name in TORCHVISION_INSTANCE
    return (f"torchvision {name}{' (Mask R-CNN)' if instance else ''}, pretrained "
            f"({'COCO' if instance else 'COCO-VOC 21'})")


def smp_description(name: str) -> str:
    return f"segmentation_models_pytorch {name} (bring your own weights)"


def _demo_installed() -> bool:
    from segstudio.resources import ResourceNotFound, resource_path  # noqa: PLC0415

    try:
        resource_path("demo", "model", "demo_unet.pth")
    except ResourceNotFound:
        return False
    return True


def list_available() -> list[ModelListing]:
    """The built-in entries, in the order ``registry.list_models`` resolves them.

    ``demo`` only when its weights are installed; then ``torchvision:*`` and ``smp:*``.
    """
    listings = [ModelListing("demo", "semantic", DEMO_DESCRIPTION)] if _demo_installed() else []
    listings += [ModelListing(f"torchvision:{n}", "instance" if n in TORCHVISION_INSTANCE else "semantic",
                              torchvision_description(n)) for n in TORCHVISION_SEMANTIC + TORCHVISION_INSTANCE]
    listings += [ModelListing(f"smp:{n}", "semantic", smp_description(n)) for n in SMP_ARCHS]
    return listings


def spec_problem(spec: str) -> str | None:
    """Why ``spec`` cannot name a model, as far as that is known without reading weights; else None.

    Catches typos before any window opens: an unknown registry name, an unknown torchvision or SMP
    architecture, a file that does not exist. A file that exists is only judged when it is resolved.
    """
    prefix, _, rest = spec.partition(":")
    if spec == "demo":
        return None if _demo_installed() else "the demo model is not installed"
    for family, known in (("torchvision", TORCHVISION_SEMANTIC + TORCHVISION_INSTANCE), ("smp", SMP_ARCHS)):
        if prefix == family and rest:   # architecture names match case-insensitively
            if rest.lower() in {k.lower() for k in known}:
                return None
            return f"unknown {family} architecture {rest!r} (known: {', '.join(known)})"
    if spec in TORCHVISION_SEMANTIC + TORCHVISION_INSTANCE or Path(spec).exists():
        return None
    return "no such file, and not a registry name (demo, torchvision:NAME, smp:ARCH)"
