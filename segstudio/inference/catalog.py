"""The built-in model names, readable without torch.

The model dock lists what can be run as soon as the window is up, and the command line checks a
``--model`` spec before the window opens; neither may import torch (about half a gigabyte), so the
names, kinds and descriptions of the built-in entries live here. ``architectures`` builds them and
``registry`` resolves them, both with torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["model_file_problem", "SMP_NEEDS_WEIGHTS", "TORCHVISION_SEMANTIC", "TORCHVISION_INSTANCE", "SMP_ARCHS", "ModelListing", "list_available",
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
    unavailable: str | None = None     # why it cannot run here (no weights), in the app's words


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
    listings += [ModelListing(f"smp:{n}", "semantic", smp_description(n), SMP_NEEDS_WEIGHTS) for n in SMP_ARCHS]
    return listings


SMP_NEEDS_WEIGHTS = ("no weights come with it: load your trained model with Model › Load model file… "
                     "(a model card beside the file names the architecture)")
MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".ckpt", ".bin", ".safetensors", ".onnx")


def model_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be a model file, judged from its first bytes (no torch); None when it may be.

    Catches what "Load model file…" should refuse before it asks for classes and normalisation: a
    missing or unreadable file, an empty one, and one that is none of the formats models come in
    (a torch zip archive, a legacy pickle, safetensors, ONNX protobuf, or an SMP ``save_pretrained``
    folder).
    """
    target = Path(path)
    if target.is_dir():
        if any((target / n).is_file() for n in ("config.json", "model.safetensors", "pytorch_model.bin")):
            return None
        return "this folder holds no saved model (config.json with model.safetensors or pytorch_model.bin)"
    try:
        with open(target, "rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return "the file does not exist"
    except OSError as exc:
        return f"the file cannot be read ({exc.strerror or exc})"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":     # torch.save zip, or a legacy pickle
        return None
    if len(head) >= 9 and head[8:9] == b"{":                          # safetensors: u64 length, JSON header
        return None
    if target.suffix.lower() == ".onnx" and head[:1] in (b"\x08", b"\x12", b"\x1a", b"\x22", b"\x3a"):
        return None
    return "not a model file: neither a PyTorch checkpoint, TorchScript, safetensors nor ONNX"


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
