"""What a training run writes: the state dict at ``PATH.pth`` and its model card ``PATH.json``.

The card is the one segstudio reads back (``inference.model_card``: architecture, arch_kwargs,
classes, mean/std, channel order), plus a ``"lineage"`` object: parent model, dataset and its
fingerprint, which labels (how many corrected), the train/validation split, loss, augmentation,
epochs, seed, validation metrics per class and the segstudio and torch versions.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path

import torch

from segstudio import __version__
from segstudio.core.io._atomic import atomic_write_bytes

__all__ = ["checkpoint_path_for", "card_path_for_weights", "versioned_path", "write_model", "CHECKPOINT_SUFFIX"]

CHECKPOINT_SUFFIX = ".last.ckpt"


def checkpoint_path_for(out: Path) -> Path:
    """The resumable checkpoint beside the weights: ``PATH.last.ckpt``."""
    return out.with_name(out.stem + CHECKPOINT_SUFFIX)


def card_path_for_weights(out: Path) -> Path:
    return out.with_suffix(".json")


def versioned_path(models_dir: Path, base: str) -> Path:
    """``<models_dir>/<base>-vNNN.pth`` with the next free number (weights, card or checkpoint)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("._") or "model"
    used = set()
    if models_dir.is_dir():
        pattern = re.compile(re.escape(base) + r"-v(\d+)(\.pth|\.json|" + re.escape(CHECKPOINT_SUFFIX) + ")$")
        for entry in models_dir.iterdir():
            found = pattern.match(entry.name)
            if found:
                used.add(int(found.group(1)))
    return models_dir / f"{base}-v{(max(used) + 1) if used else 1:03d}.pth"


def write_model(out: Path, module: torch.nn.Module, card: dict) -> None:
    """Write the state dict (atomically) and then its card."""
    from segstudio.training.loop import save_atomic  # noqa: PLC0415

    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    save_atomic(state, out)
    write_card(out, card)


def write_card(out: Path, card: dict) -> None:
    card = dict(card)
    card.setdefault("lineage", {})["written"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    card["lineage"]["segstudio_version"] = __version__
    card["lineage"]["torch_version"] = torch.__version__
    atomic_write_bytes(card_path_for_weights(out), (json.dumps(card, indent=2) + "\n").encode("utf-8"))
