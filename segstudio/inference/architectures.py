"""Network architectures a checkpoint can be loaded into, and matching a state dict to one.

Three families:

* ``torchvision.<name>``: the six torchvision semantic models and the two Mask R-CNNs, built with
  ``weights=None, weights_backbone=None`` (nothing is downloaded);
* ``smp.<Arch>``: segmentation_models_pytorch architectures, always with ``encoder_weights=None``;
* custom names registered with ``register_architecture`` (``segstudio.CompactUNet`` is built in).

Shapes are checked against a skeleton built on the ``meta`` device, so matching a checkpoint
against every candidate costs milliseconds and no memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from segstudio.core.errors import CheckpointError
from segstudio.inference.catalog import SMP_ARCHS, TORCHVISION_INSTANCE, TORCHVISION_SEMANTIC  # noqa: F401
from segstudio.inference.checkpoints import state_dict_mismatch

# Tried in this order when an SMP state dict comes without its encoder's name.
SMP_ENCODER_GUESSES = ("resnet34", "resnet18", "resnet50", "resnet101", "mobilenet_v2",
                       "efficientnet-b0", "efficientnet-b4", "mit_b0", "mit_b2", "timm-regnetx_002")
KEY_PREFIXES = ("model.", "net.", "network.", "segmenter.")


@dataclass(frozen=True)
class Architecture:
    """A buildable network family member.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"torchvision.deeplabv3_resnet50"``, ``"smp.Unet"``.
    kind : str
        ``"semantic"`` or ``"instance"``.
    factory : callable
        ``factory(num_classes, **kwargs) -> nn.Module`` with random weights; never downloads.
    head_key : str or None
        The state-dict key whose ``shape[0]`` is the number of classes.
    defaults : dict
        Keyword arguments passed to ``factory`` unless overridden.
    """

    name: str
    kind: str
    factory: Callable[..., torch.nn.Module]
    head_key: str | None = None
    defaults: dict = field(default_factory=dict)
    description: str = ""

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0] if self.name.startswith(("torchvision.", "smp.")) else "custom"

    def num_classes_from(self, state: Mapping[str, torch.Tensor]) -> int | None:
        """The class count the state dict's head was trained for (None when unknown)."""
        tensor = state.get(self.head_key) if self.head_key else None
        return int(tensor.shape[0]) if tensor is not None and tensor.ndim >= 1 else None

    def kwargs_from(self, state: Mapping[str, torch.Tensor]) -> dict:
        """Constructor arguments read off the state dict (torchvision's ``aux_loss``)."""
        if self.family == "torchvision" and self.kind == "semantic" and not self.name.endswith("lraspp_mobilenet_v3_large"):
            return {"aux_loss": any(k.startswith("aux_classifier.") for k in state)}
        return {}

    def build(self, num_classes: int, kwargs: Mapping | None = None, device=None) -> torch.nn.Module:
        """Instantiate with random weights (on ``device``; ``"meta"`` allocates nothing)."""
        merged = {**self.defaults, **(kwargs or {})}
        with torch.device(device or "cpu"):
            return self.factory(num_classes, **merged)

    def expected_state(self, num_classes: int, kwargs: Mapping | None = None) -> dict[str, torch.Tensor]:
        """The state dict a model with these arguments has, as meta tensors (shapes only)."""
        return self.build(num_classes, kwargs, device="meta").state_dict()


_REGISTRY: dict[str, Architecture] = {}


def register_architecture(name: str, factory: Callable[..., torch.nn.Module], *, kind: str = "semantic",
                          head_key: str | None = None, defaults: Mapping | None = None,
                          description: str = "") -> Architecture:
    """Make ``name`` usable as a model card's ``"architecture"``.

    ``factory(num_classes, **kwargs)`` must build the network with random weights and download
    nothing. ``head_key`` names the state-dict entry whose ``shape[0]`` is the class count.
    """
    arch = Architecture(name, kind, factory, head_key, dict(defaults or {}), description)
    _REGISTRY[name] = arch
    return arch


def get_architecture(name: str, path=None) -> Architecture:
    """Look an architecture up by canonical or short name.

    ``"torchvision.fcn_resnet50"``, ``"torchvision:fcn_resnet50"`` and ``"fcn_resnet50"`` are the
    same; SMP names are case-insensitive (``"smp.unet"``).

    Raises
    ------
    CheckpointError
        Unknown name; the message lists the known ones.
    """
    _ensure_builtins()
    key = name.strip().replace(":", ".", 1)
    if key in _REGISTRY:
        return _REGISTRY[key]
    lowered = {n.lower(): a for n, a in _REGISTRY.items()}
    for candidate in (key.lower(), f"torchvision.{key.lower()}", f"smp.{key.lower()}"):
        if candidate in lowered:
            return lowered[candidate]
    raise CheckpointError(path, f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}")


def all_architectures() -> list[Architecture]:
    _ensure_builtins()
    return list(_REGISTRY.values())


def align_keys(expected: Mapping[str, torch.Tensor], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix (``model.``, ``net.`` ...) when that makes the keys fit ``expected``."""
    if all(k in expected for k in state):
        return state
    for prefix in KEY_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix):]: v for k, v in state.items()}
            if sum(k in expected for k in stripped) > sum(k in expected for k in state):
                return stripped
    return state


def fit_state(arch: Architecture, state: dict[str, torch.Tensor], num_classes: int | None,
              kwargs: Mapping | None, path) -> tuple[dict[str, torch.Tensor], int, dict]:
    """Check that ``state`` loads into ``arch``; returns (aligned state, num_classes, kwargs).

    The class count comes from the head weights when the architecture knows its head key; a
    different ``num_classes`` (from a model card or the user) is an error.

    Raises
    ------
    CheckpointError
        Wrong class count, missing/unexpected keys or shape mismatches, naming the file.
    """
    kwargs = {**arch.kwargs_from(state), **(kwargs or {})}
    stated = kwargs.pop("num_classes", None)  # cards may repeat the count in arch_kwargs
    if num_classes is None:
        num_classes = stated
    elif stated is not None and stated != num_classes:
        raise CheckpointError(path, f"arch_kwargs say num_classes={stated} but {num_classes} classes "
                              "are listed")
    from_head = arch.num_classes_from(state)
    if from_head is None:
        stripped = align_keys({arch.head_key: None} if arch.head_key else {}, state)
        from_head = arch.num_classes_from(stripped)
    if num_classes == 2 and from_head == 1:
        num_classes = 1  # a one-logit (sigmoid) head serves a background/foreground table
    if num_classes is not None and from_head is not None and num_classes != from_head:
        raise CheckpointError(path, f"the classes given list {num_classes} classes but the checkpoint's "
                              f"head ({arch.head_key}) has {from_head}")
    count = num_classes if num_classes is not None else from_head
    if count is None:
        raise CheckpointError(path, f"cannot tell how many classes this {arch.name} checkpoint has; "
                              "give the classes in a model card or in the Classes field when loading "
                              "the file (on the command line: --classes)")
    try:
        expected = arch.expected_state(count, kwargs)
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(path, f"cannot build {arch.name} with {kwargs}: {exc}") from None
    state = align_keys(expected, state)
    problems = state_dict_mismatch(expected, state)
    if problems:
        raise CheckpointError(path, f"does not fit {arch.name} ({count} classes): {problems}")
    return state, count, kwargs


def match_state_dict(state: dict[str, torch.Tensor], path,
                     candidates: list[Architecture] | None = None) -> tuple[Architecture, dict, int, dict]:
    """Find the torchvision architecture whose keys and shapes fit ``state``.

    Returns
    -------
    (architecture, aligned state, num_classes, kwargs)

    Raises
    ------
    CheckpointError
        No candidate fits; names the closest one and what differs.
    """
    if candidates is None:
        candidates = [a for a in all_architectures() if a.family == "torchvision"]
    best: tuple[float, Architecture | None, str] = (-1.0, None, "")
    for arch in candidates:
        try:
            return (arch, *fit_state(arch, state, None, None, path))
        except CheckpointError as exc:
            try:
                count = arch.num_classes_from(state) or 1
                expected = arch.expected_state(count, arch.kwargs_from(state))
            except (TypeError, ValueError, RuntimeError):
                continue
            overlap = len(set(expected) & set(state)) / max(1, len(set(expected) | set(state)))
            if overlap > best[0]:
                best = (overlap, arch, exc.reason)
    if best[1] is None or best[0] < 0.5:
        names = ", ".join(a.name.split(".", 1)[1] for a in candidates)
        sample = ", ".join(list(state)[:3])
        raise CheckpointError(path, f"the state dict fits no known architecture ({names}); its keys "
                              f"begin {sample}. Name the architecture in a model card "
                              "(\"architecture\": \"smp.Unet\", ...; on the command line: --model smp:ARCH)")
    raise CheckpointError(path, f"closest architecture is {best[1].name}, but the checkpoint "
                          f"{best[2]}")


def guess_smp_encoder(arch: Architecture, state: dict[str, torch.Tensor], kwargs: Mapping, path) -> str:
    """Try common encoders until one fits ``state``; raises ``CheckpointError`` naming the tried ones."""
    count = arch.num_classes_from(state) or 1
    for encoder in SMP_ENCODER_GUESSES:
        try:
            expected = arch.expected_state(count, {**kwargs, "encoder_name": encoder})
        except Exception:  # noqa: BLE001 - an encoder that cannot build here is simply not it
            continue
        if set(expected) == set(align_keys(expected, state)):
            return encoder
    raise CheckpointError(path, f"cannot tell the encoder of this {arch.name} checkpoint (tried "
                          f"{', '.join(SMP_ENCODER_GUESSES)}); give it in the model card "
                          "(\"arch_kwargs\": {\"encoder_name\": ...}; on the command line: --encoder NAME)")


def _torchvision_semantic(name: str) -> Callable[..., torch.nn.Module]:
    def factory(num_classes: int, **kwargs) -> torch.nn.Module:
        from torchvision.models import segmentation  # noqa: PLC0415

        return getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=num_classes,
                                           **kwargs)
    return factory


def _torchvision_instance(name: str) -> Callable[..., torch.nn.Module]:
    def factory(num_classes: int, **kwargs) -> torch.nn.Module:
        from torchvision.models import detection  # noqa: PLC0415

        return getattr(detection, name)(weights=None, weights_backbone=None, num_classes=num_classes,
                                        **kwargs)
    return factory


def _smp(arch_name: str) -> Callable[..., torch.nn.Module]:
    def factory(num_classes: int, **kwargs) -> torch.nn.Module:
        try:
            import segmentation_models_pytorch as smp  # noqa: PLC0415
        except ImportError as exc:
            raise CheckpointError(None, "segmentation-models-pytorch is not installed "
                                  "(pip install segmentation-models-pytorch)") from exc
        kwargs = {k: v for k, v in kwargs.items()
                  if not k.startswith("_") and k not in ("classes", "encoder_weights")}
        return smp.create_model(arch_name, encoder_weights=None, classes=num_classes, **kwargs)
    return factory


def _compact_unet(num_classes: int, **kwargs) -> torch.nn.Module:
    from segstudio.inference.unet import CompactUNet  # noqa: PLC0415 - written with the demo model

    return CompactUNet(num_classes=num_classes, **kwargs)


def _ensure_builtins() -> None:
    if any(n.startswith("torchvision.") for n in _REGISTRY):
        return
    for name in TORCHVISION_SEMANTIC:
        head = "classifier.low_classifier.weight" if name.startswith("lraspp") else "classifier.4.weight"
        register_architecture(f"torchvision.{name}", _torchvision_semantic(name), head_key=head,
                              description=f"torchvision {name}")
    for name in TORCHVISION_INSTANCE:
        register_architecture(f"torchvision.{name}", _torchvision_instance(name), kind="instance",
                              head_key="roi_heads.box_predictor.cls_score.weight",
                              description=f"torchvision {name} (Mask R-CNN)")
    for name in SMP_ARCHS:
        register_architecture(f"smp.{name}", _smp(name), head_key="segmentation_head.0.weight",
                              description=f"segmentation_models_pytorch {name}")
    register_architecture("segstudio.CompactUNet", _compact_unet, head_key="head.weight",
                          description="segstudio CompactUNet")
