"""The model registry: what can be run, with which classes and which input normalisation.

``resolve_model(spec, **overrides)`` turns what the user typed or picked into a ``ModelEntry``:

* ``"demo"`` — the bundled CompactUNet (``resources/demo/model/demo_unet.pth`` + its card);
* ``"torchvision:<name>"`` — a torchvision model with its pretrained weights, fetched on first
  use into the torch hub cache (``weights=FILE`` loads a local checkpoint into it instead);
* ``"smp:<Arch>"`` with ``weights=FILE_OR_DIR`` — a segmentation_models_pytorch model;
* a file: TorchScript (``.pt``/``.ts``), a ``torch.export`` program (``.pt2``), an ONNX model
  (``.onnx``, through onnxruntime) or a state-dict checkpoint (``.pth``/``.pt``/``.safetensors``,
  plain or wrapped), its architecture taken from the model card or matched from its keys and
  shapes; the format is told by content, and a file of another format is refused naming it;
* a directory saved with SMP's ``save_pretrained`` (``config.json`` + weights).

Resolving reads the checkpoint (``weights_only``) to check it fits, so a bad file fails here with a
``CheckpointError`` naming the file and the mismatch; ``entry.load(device)`` builds the module.
Importing this module does not import torch; ``catalog.list_available()`` lists the built-in
entries without it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from segstudio.core.io.classes import COCO_CATEGORY_TO_CONTIGUOUS, ClassTable
from segstudio.core.errors import CheckpointError
from segstudio.inference.catalog import DEMO_DESCRIPTION, list_available, smp_description, torchvision_description
from segstudio.inference.model_card import ModelCard, parse_card, read_card
from segstudio.inference.model_file import reading_model_file

if TYPE_CHECKING:  # pragma: no cover
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IDENTITY_MEAN = (0.0, 0.0, 0.0)
IDENTITY_STD = (1.0, 1.0, 1.0)
TORCHVISION_SHORT_SIDE = 520  # torchvision's SemanticSegmentation preset resize_size
OVERRIDE_KEYS = ("classes", "mean", "std", "channel_order", "input_size", "kind", "scale",
                 "short_side", "architecture", "arch_kwargs", "weights", "encoder", "output")


@dataclass
class ModelEntry:
    """A runnable model: how to build it, how to feed it and how to name its classes.

    Attributes
    ----------
    name : str
        Registry name (``"demo"``, ``"torchvision:deeplabv3_resnet50"``) or the file path.
    kind : str
        ``"semantic"`` or ``"instance"``.
    class_table : ClassTable or None
        None only for a listed ``smp:*`` architecture that has no weights yet.
    mean, std : tuple of 3 floats
        Normalisation in 0-1 units, after ``scale``, in the model's channel order.
    channel_order : str
        ``"RGB"`` or ``"BGR"``.
    scale : float or None
        Raw pixel value -> 0-1 multiplier; None scales by the image dtype (1/255, 1/65535).
    input_size : (width, height) or None
        Every image is resized to this before the forward pass (None: native size).
    loader : callable
        ``loader(device, progress=None) -> torch.nn.Module`` in eval mode on ``device``;
        ``progress(bytes_done, bytes_total)`` reports a weights download.
    description : str
    short_side : int or None
        Resize so the shorter side has this length (torchvision semantic models: 520).
    label_map : ndarray or None
        (256,) lookup from the model's label ids to class-table ids (torchvision Mask R-CNN's
        sparse COCO ids -> ``ClassTable.coco_things()``).
    architecture : str or None
        Canonical architecture name, None for TorchScript.
    size_divisor : int
        Inputs are padded (edge-replicated) to a multiple of this and the logits cropped back
        (32 for SMP and TorchScript models, 1 otherwise).
    source : str
        The file, directory or URL the weights come from.
    output : str
        ``"logits"`` or ``"probabilities"``: what a semantic model returns per class.
    """

    name: str
    kind: str
    class_table: ClassTable | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str
    scale: float | None
    input_size: tuple[int, int] | None
    loader: Callable[..., "torch.nn.Module"]
    description: str = ""
    short_side: int | None = None
    label_map: np.ndarray | None = field(default=None, repr=False)
    architecture: str | None = None
    size_divisor: int = 1
    source: str = ""
    output: str = "logits"

    def load(self, device: str = "cpu", progress: Callable[[int, int], None] | None = None) -> "torch.nn.Module":
        """Build the module in eval mode on ``device`` (downloading pretrained weights if needed)."""
        return self.loader(device, progress) if progress is not None else self.loader(device)

    @property
    def num_classes(self) -> int | None:
        return self.class_table.num_classes if self.class_table is not None else None


def list_models() -> list[ModelEntry]:
    """The built-in entries resolved (imports torch): ``demo`` (when shipped), ``torchvision:*``, ``smp:*``.

    ``catalog.list_available()`` lists the same names, kinds and descriptions without torch; use
    it to show what can be run. ``smp:*`` entries have no class table and their loader raises
    ``CheckpointError``: they need a weights file, through ``resolve_model("smp:Unet", weights=...)``.
    """
    entries = []
    for listing in list_available():
        family, _, name = listing.name.partition(":")
        if family == "smp":
            entries.append(_smp_needing_weights(name))
        elif family == "torchvision":
            entries.append(_torchvision_pretrained(name, ModelCard()))
        else:
            try:
                entries.append(resolve_model(listing.name))
            except (CheckpointError, FileNotFoundError):
                pass
    return entries


def resolve_model(spec: str | PathLike, **overrides: Any) -> ModelEntry:
    """Turn a model spec plus user overrides into a ``ModelEntry``.

    Parameters
    ----------
    spec : str or path
        ``"demo"``, ``"torchvision:<name>"`` (or the bare torchvision name), ``"smp:<Arch>"``, a
        model file or an SMP directory.
    **overrides
        Model-card fields that win over the card beside the file: ``classes`` (ClassTable, list
        of names/objects, or a class-table .json / names .txt path), ``mean``, ``std`` (0-1),
        ``channel_order``, ``input_size`` ((w, h)), ``kind``, ``scale``, ``short_side``,
        ``architecture``, ``arch_kwargs``; plus ``weights`` (a checkpoint file or SMP dir for
        ``torchvision:``/``smp:`` specs) and ``encoder`` (SMP encoder name).

    Raises
    ------
    CheckpointError
        Unknown spec, bad file, unsafe pickle, wrong class count, shape mismatch.
    """
    unknown = set(overrides) - set(OVERRIDE_KEYS)
    if unknown:
        raise TypeError(f"resolve_model() got unknown override(s): {', '.join(sorted(unknown))}")
    weights = overrides.pop("weights", None)
    encoder = overrides.pop("encoder", None)
    if encoder:
        overrides["arch_kwargs"] = {**(overrides.get("arch_kwargs") or {}), "encoder_name": encoder}
    user = parse_card({k: v for k, v in overrides.items() if v is not None})
    text = str(spec)
    prefix, _, rest = text.partition(":")
    if text == "demo":
        return _demo(user)
    if prefix == "torchvision" and rest:
        from segstudio.inference.architectures import get_architecture  # noqa: PLC0415

        arch = get_architecture(f"torchvision.{rest}", spec)
        if weights is not None:
            return _from_file(weights, replace(user, architecture=arch.name), name=text)
        return _torchvision_pretrained(arch.name.split(".", 1)[1], user)
    if prefix == "smp" and rest:
        from segstudio.inference.architectures import get_architecture  # noqa: PLC0415

        arch = get_architecture(f"smp.{rest}", spec)
        if weights is None:
            raise CheckpointError(spec, "an SMP architecture needs a weights file or directory "
                                  "(in the app: Model › Load model file…; on the command line: --weights FILE, or "
                                  "--model DIR for a save_pretrained directory)")
        return _from_file(weights, replace(user, architecture=arch.name), name=text)
    path = Path(text)
    if path.exists():
        return _from_file(path, user, name=text)
    from segstudio.inference.architectures import TORCHVISION_INSTANCE, TORCHVISION_SEMANTIC  # noqa: PLC0415

    if text in TORCHVISION_SEMANTIC + TORCHVISION_INSTANCE:
        return resolve_model(f"torchvision:{text}", weights=weights, **overrides)
    raise CheckpointError(spec, "no such file, and not a registry name (demo, torchvision:NAME, "
                          "smp:ARCH)")


# -- entries ---------------------------------------------------------------------------------------
def _entry(name: str, card: ModelCard, kind: str, class_table: ClassTable | None, loader, *,
           description: str, architecture: str | None, source: str, label_map=None,
           default_short_side: int | None = None) -> ModelEntry:
    identity = kind == "instance" and (architecture or "").startswith("torchvision.")
    return ModelEntry(
        name=name,
        kind=kind,
        class_table=class_table,
        mean=card.mean or (IDENTITY_MEAN if identity else IMAGENET_MEAN),
        std=card.std or (IDENTITY_STD if identity else IMAGENET_STD),
        channel_order=card.channel_order or "RGB",
        scale=card.scale,
        input_size=card.input_size,
        loader=loader,
        description=description,
        short_side=card.short_side if card.short_side is not None else (
            None if card.input_size else default_short_side),
        label_map=label_map,
        architecture=architecture,
        size_divisor=32 if architecture is None or architecture.startswith("smp.") else 1,
        source=source,
        output=card.output or "logits",
    )


def _demo(user: ModelCard) -> ModelEntry:
    from segstudio.resources import ResourceNotFound, resource_path  # noqa: PLC0415

    try:
        path = resource_path("demo", "model", "demo_unet.pth")
    except ResourceNotFound as exc:
        raise CheckpointError("demo", f"the demo model is not installed ({exc})") from None
    entry = _from_file(path, user, name="demo")
    entry.description = DEMO_DESCRIPTION
    return entry


def _torchvision_pretrained(name: str, user: ModelCard) -> ModelEntry:
    from torchvision.models import get_model_weights  # noqa: PLC0415

    from segstudio.inference import download  # noqa: PLC0415
    from segstudio.inference.architectures import get_architecture  # noqa: PLC0415

    arch = get_architecture(f"torchvision.{name}")
    url = get_model_weights(name).DEFAULT.url
    instance = arch.kind == "instance"
    expected = 91 if instance else 21
    table = ClassTable.coco_things() if instance else ClassTable.voc()
    label_map = COCO_CATEGORY_TO_CONTIGUOUS if instance else None
    if user.classes is not None:
        # 81 names for Mask R-CNN: coco_things-style, reached through the sparse-id lookup.
        if instance and user.classes.num_classes == table.num_classes:
            table = user.classes
        elif user.classes.num_classes == expected:
            table, label_map = user.classes, None
        else:
            raise CheckpointError(f"torchvision:{name}", f"the pretrained model has {expected} classes "
                                  f"but {user.classes.num_classes} were given")

    def loader(device: str = "cpu", progress=None):
        cached = download.ensure_weights(url, progress, what=f"torchvision:{name}")
        return _load_state_dict_model(cached, arch, None, {}, device)

    return _entry(f"torchvision:{name}", user, arch.kind, table, loader,
                  description=torchvision_description(name),
                  architecture=arch.name, source=url, label_map=label_map,
                  default_short_side=None if instance else TORCHVISION_SHORT_SIDE)


def _smp_needing_weights(name: str) -> ModelEntry:
    def loader(device: str = "cpu", progress=None):
        raise CheckpointError(f"smp:{name}", "needs a weights file: in the app, Model › Load model file…; "
                              "on the command line, --model smp:%s --weights FILE" % name)

    return _entry(f"smp:{name}", ModelCard(), "semantic", None, loader,
                  description=smp_description(name),
                  architecture=f"smp.{name}", source="")


def _from_file(path: str | PathLike, user: ModelCard, name: str) -> ModelEntry:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "model file not found")
    if path.is_dir():
        return _from_smp_dir(path, user, name)
    card = read_card(path).merged(user)
    from segstudio.inference import checkpoints, model_format, program_entries  # noqa: PLC0415

    detected = model_format.detect(path)
    with reading_model_file(path):
        if detected.kind == model_format.EXPORT_PROGRAM:
            return program_entries.from_export(path, card, name, _entry)
        if detected.kind == model_format.ONNX:
            return program_entries.from_onnx(path, card, name, _entry)
        if checkpoints.is_torchscript(path):
            return _from_torchscript(path, card, name)
        if not detected.readable:
            raise model_format.unsupported(path, detected)
        if detected.kind == model_format.SAFETENSORS:
            state = _read_safetensors(path)
        else:
            state = checkpoints.load_state_dict_file(path)
        return _from_state_dict(path, state, card, name)


def _from_state_dict(path: Path, state: dict, card: ModelCard, name: str, smp_config: dict | None = None) -> ModelEntry:
    from segstudio.inference import architectures as A  # noqa: PLC0415

    if card.architecture:
        arch = A.get_architecture(card.architecture, card.path or path)
        kwargs = dict(smp_config or {})
        kwargs.update(card.arch_kwargs)
        if arch.family == "smp" and "encoder_name" not in kwargs:
            kwargs["encoder_name"] = A.guess_smp_encoder(arch, state, kwargs, path)
        count = card.classes.num_classes if card.classes is not None else None
        state, count, kwargs = A.fit_state(arch, state, count, kwargs, path)
    else:
        arch, state, count, kwargs = A.match_state_dict(state, path)
        if card.classes is not None and card.classes.num_classes != count and (count, card.classes.num_classes) != (1, 2):
            raise CheckpointError(path, f"the classes given list {card.classes.num_classes} classes but "
                                  f"the checkpoint's head ({arch.head_key}) has {count}")
    table, label_map = _class_table_for(arch, count, card)
    del state  # re-read by the loader; keeping it would double the memory while the model lives

    def loader(device: str = "cpu", progress=None):
        return _load_state_dict_model(path, arch, count, kwargs, device)

    return _entry(name, card, arch.kind, table, loader, architecture=arch.name, source=str(path),
                  description=f"{arch.name} ({count} classes) from {path.name}", label_map=label_map,
                  default_short_side=TORCHVISION_SHORT_SIDE if arch.family == "torchvision"
                  and arch.kind == "semantic" and card.classes is None and count == 21 else None)


def _class_table_for(arch, count: int, card: ModelCard) -> tuple[ClassTable, np.ndarray | None]:
    if card.classes is not None:
        return card.classes, None
    if arch.family == "torchvision" and arch.kind == "semantic" and count == 21:
        return ClassTable.voc(), None
    if arch.family == "torchvision" and arch.kind == "instance" and count == 91:
        return ClassTable.coco_things(), COCO_CATEGORY_TO_CONTIGUOUS
    return ClassTable.generic(max(count, 2)), None  # one sigmoid logit = background + 1 class


def _from_smp_dir(path: Path, user: ModelCard, name: str) -> ModelEntry:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(path, "not an SMP model directory: no config.json (save it with "
                              "model.save_pretrained(DIR))")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(config_path, f"cannot read SMP config: {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(config_path, "SMP config must be a JSON object")
    card = read_card(path).merged(user)
    arch_name = card.architecture or f"smp.{config.get('_model_class', '')}"
    if arch_name == "smp.":
        raise CheckpointError(config_path, "no '_model_class' in the SMP config; give the architecture "
                              "in segstudio.json (on the command line: --model smp:ARCH)")
    config = {k: v for k, v in config.items() if not k.startswith("_") and k not in ("classes", "encoder_weights")}
    state = _read_smp_weights(path)
    return _from_state_dict(path, state, replace(card, architecture=arch_name), name, smp_config=config)


def _read_smp_weights(path: Path) -> dict:
    from segstudio.inference import checkpoints  # noqa: PLC0415

    safetensors_file = path / "model.safetensors"
    if safetensors_file.is_file():
        return _read_safetensors(safetensors_file)
    for candidate in ("pytorch_model.bin", "model.pth", "model.pt"):
        if (path / candidate).is_file():
            return checkpoints.load_state_dict_file(path / candidate)
    raise CheckpointError(path, "no weights in the SMP directory (model.safetensors or pytorch_model.bin)")


def _read_safetensors(path: Path) -> dict:
    from segstudio.inference import checkpoints  # noqa: PLC0415

    try:
        from safetensors.torch import load_file  # noqa: PLC0415
    except ImportError:
        raise CheckpointError(path, "reading .safetensors needs the safetensors package") from None
    try:
        return checkpoints.strip_prefixes(load_file(str(path)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(path, f"not a valid safetensors file ({' '.join(str(exc).split())})") from None


def _load_state_dict_model(path: Path, arch, count: int | None, kwargs: dict, device: str):
    from segstudio.inference import architectures as A  # noqa: PLC0415
    from segstudio.inference import checkpoints  # noqa: PLC0415

    with reading_model_file(path):
        if Path(path).is_dir():
            state = _read_smp_weights(path)
        elif str(path).endswith(".safetensors"):
            state = _read_safetensors(Path(path))
        else:
            state = checkpoints.load_state_dict_file(path)
        state, count, kwargs = A.fit_state(arch, state, count, kwargs, path)
        model = arch.build(count, kwargs)
        checkpoints.load_into(model, state, path, arch.name)
    if getattr(model, "aux_classifier", None) is not None:
        model.aux_classifier = None  # the auxiliary head only matters for training
    return model.to(device).eval()


def _from_torchscript(path: Path, card: ModelCard, name: str) -> ModelEntry:
    from segstudio.inference import checkpoints  # noqa: PLC0415

    kind = card.kind or "semantic"
    # Loaded now, with a card or without, so that an unsafe or untrusted file fails when picked.
    module = checkpoints.load_torchscript(path, "cpu")
    table = card.classes
    if table is None:
        if kind == "instance":
            raise CheckpointError(path, "a TorchScript instance model needs its classes in a model card")
        table = ClassTable.generic(_probe_num_classes(module, path, card))
    del module  # the loader loads (and checks) it again on the device it runs on

    def loader(device: str = "cpu", progress=None):
        return checkpoints.load_torchscript(path, device)

    return _entry(name, card, kind, table, loader, architecture=None, source=str(path),
                  description=f"TorchScript model ({table.num_classes} classes) from {path.name}")


def _probe_num_classes(module, path: Path, card: ModelCard) -> int:
    """Run the (inspected, trusted) TorchScript module once on a small zero image for its class count."""
    import torch  # noqa: PLC0415

    from segstudio.inference.model_file import InputSizeNeeded  # noqa: PLC0415
    from segstudio.inference.runner import model_logits  # noqa: PLC0415

    width, height = card.input_size or (64, 64)
    try:
        with torch.inference_mode():
            logits = model_logits(module(torch.zeros(1, 3, height, width)))
    except Exception as exc:  # noqa: BLE001 - arbitrary scripted code can raise anything
        message = " ".join(str(exc).split())
        raise InputSizeNeeded(path, f"the TorchScript model failed on a {width}x{height} test input "
                              f"({type(exc).__name__}{': ' + message if message else ''})") from None
    if logits.ndim != 4:
        raise CheckpointError(path, f"expected N x C x H x W logits, got shape {tuple(logits.shape)}")
    return int(logits.shape[1])
