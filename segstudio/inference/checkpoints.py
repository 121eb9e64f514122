"""Reading model files safely.

Every pickle goes through ``torch.load(weights_only=True)``: a file whose unpickling would need
arbitrary code (a whole pickled ``nn.Module``, a crafted ``__reduce__``) is refused with a
``CheckpointError`` before anything in it runs. TorchScript archives, recognised by their
``constants.pkl`` / ``code/`` members whatever the file is called, are programs: their source and
graph are inspected (``script_guard``) and they run only once the user trusts the file
(``model_trust``, ADR 0016).
"""
from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import torch

from segstudio.core.errors import CheckpointError
from segstudio.inference import model_format, script_guard
from segstudio.inference.model_file import read_model_bytes, reading_model_file, unreadable
from segstudio.inference.model_trust import TrustStore, UntrustedModelError, is_torchscript, sha256_of

__all__ = ["is_torchscript", "safe_load", "load_state_dict_file", "extract_state_dict", "strip_prefixes",
           "load_into", "state_dict_mismatch", "load_torchscript"]

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights", "params")
PREFIXES = ("module.", "_orig_mod.")


def safe_load(path: str | PathLike, map_location="cpu") -> object:
    """``torch.load(path, weights_only=True)`` with every failure turned into ``CheckpointError``.

    Raises
    ------
    CheckpointError
        Missing/unreadable file, a pickle that needs arbitrary code (refused, nothing runs), or a
        file that is not a PyTorch checkpoint at all.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "model file not found" if not path.exists() else "not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", message)
        if found:
            raise CheckpointError(path, f"refused to load: unpickling needs {found.group(1)}, i.e. "
                                  "running code from the file, not just reading weights. Save "
                                  "model.state_dict() or a TorchScript file instead") from None
        detail = re.search(r"(Unsupported operand \d+|invalid load key[^\n]*)", message)
        raise model_format.unsupported(path, detail="not a weights-only pickle"
                                       + (f": {detail.group(1)}" if detail else "")) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, UnicodeDecodeError,
            OSError, AttributeError, ImportError, TypeError, KeyError) as exc:
        raise model_format.unsupported(path, detail=f"{type(exc).__name__}: {_one_line(str(exc))}") from None
    except Exception as exc:  # noqa: BLE001 - zipfile/struct/zlib/assertions on a damaged file
        raise unreadable(path, exc) from None


def load_state_dict_file(path: str | PathLike) -> dict[str, torch.Tensor]:
    """Read a state-dict checkpoint: plain, or wrapped in ``{"state_dict"|"model"|...: ...}``.

    ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes are stripped. Non-tensor entries of the wrapper (epoch, optimiser state ...) are ignored.

    Raises
    ------
    CheckpointError
        Unsafe or corrupt file, or no tensor mapping found inside.
    """
    obj = safe_load(path)
    return extract_state_dict(obj, path)


def extract_state_dict(obj: object, path: str | PathLike | None = None) -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside a loaded checkpoint object and normalise its keys."""
    for _ in range(3):  # wrappers nest at most a couple of levels
        if isinstance(obj, Mapping) and not _is_tensor_mapping(obj):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_tensor_mapping(obj):
        if isinstance(obj, Mapping):
            keys = ", ".join(repr(k) for k in list(obj)[:8])
            raise CheckpointError(path, f"no state dict found in the checkpoint (top-level keys: {keys})")
        raise CheckpointError(path, f"not a state dict: the file holds a {type(obj).__name__}")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return strip_prefixes(state)


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a prefix shared by every key (``module.``, ``_orig_mod.``), repeatedly."""
    state = dict(state)
    changed = True
    while changed and state:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def load_into(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path, arch_name: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with mismatches reported as ``CheckpointError``."""
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        raise CheckpointError(path, f"does not fit {arch_name}: {problems}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(path, f"does not fit {arch_name}: {_one_line(str(exc))}") from None


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], actual: Mapping[str, torch.Tensor]) -> str:
    """A short description of missing / unexpected keys and shape mismatches ('' when they fit)."""
    missing = [k for k in expected if k not in actual]
    unexpected = [k for k in actual if k not in expected]
    shapes = [f"{k} {tuple(actual[k].shape)} vs expected {tuple(expected[k].shape)}"
              for k in expected if k in actual and tuple(actual[k].shape) != tuple(expected[k].shape)]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes[:4])
                     + (" ..." if len(shapes) > 4 else ""))
    if missing:
        parts.append(f"{len(missing)} missing key(s): " + ", ".join(missing[:4])
                     + (" ..." if len(missing) > 4 else ""))
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(unexpected[:4])
                     + (" ..." if len(unexpected) > 4 else ""))
    return "; ".join(parts)


def load_torchscript(path: str | PathLike, device="cpu", store: TrustStore | None = None
                     ) -> torch.jit.ScriptModule:
    """Load a TorchScript file that passes inspection and that the user trusts.

    Inspection comes first, so a file that reaches for files or the process is refused by name
    whether or not it was trusted; the hash checked is that of the very bytes loaded.

    Raises
    ------
    CheckpointError
        Unreadable or not TorchScript, or refused by ``script_guard``.
    UntrustedModelError
        The file passed inspection but the user has not agreed to run it.
    """
    path = Path(path)
    data = read_model_bytes(path)
    with reading_model_file(path):
        module = script_guard.load_inspected(data, path, device)
    if not (store or TrustStore()).is_trusted(sha256_of(data)):
        raise UntrustedModelError(path)
    return module


def _is_tensor_mapping(obj: Mapping) -> bool:
    values = list(obj.values())
    return bool(values) and sum(isinstance(v, torch.Tensor) for v in values) >= max(1, len(values) // 2) \
        and all(isinstance(k, str) for k in obj)


def _one_line(text: str) -> str:
    """The message on one line, whole: a reason cut mid-sentence explains nothing."""
    return " ".join(text.split())
