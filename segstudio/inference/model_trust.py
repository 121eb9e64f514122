"""Which model files the user has agreed to run: a per-user list of SHA-256 hashes (ADR 0016).

A state dict is data: reading it (``torch.load(weights_only=True)``) runs nothing from the file. A
TorchScript archive is a program: its forward pass, and its ``__setstate__`` while loading, run code
written by whoever made the file. Before the first such run the user is asked once per file
content, and the answer is kept by hash, so a renamed copy is still trusted and an edited file is
asked about again.

This module does not import torch: the window asks on the GUI thread before any model job starts.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import zipfile
from os import PathLike
from pathlib import Path
from typing import Callable

from segstudio.core.errors import CheckpointError

TRUST_FILE_NAME = "trusted_models.json"

# Asked with the model file's path; True means run it (and remember the answer).
TrustAsker = Callable[[Path], bool]


class UntrustedModelError(CheckpointError):
    """A model file holds code that the user has not agreed to run."""

    def __init__(self, path: str | PathLike, kind: str = "TorchScript"):
        super().__init__(path, f"this model file contains code ({kind}), which runs with your "
                         "permissions; run it only if you trust where it came from: pass --trust-model "
                         "on the command line, or confirm when the window asks")


def is_torchscript(path: str | PathLike) -> bool:
    """True when ``path`` is a TorchScript archive (a zip holding ``constants.pkl`` or ``code/``).

    Judged by content, not by name: the same archive renamed ``.pth`` is still code.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # noqa: BLE001 - a damaged zip is not TorchScript; reading it says why
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n or n.startswith("code/") for n in names)


def is_code_model(path: str | PathLike) -> bool:
    """True for the model files that are programs: TorchScript and ``torch.export`` (.pt2) archives.

    A .pt2 is a graph of ATen ops, but reading it evaluates expressions and unpickles payloads
    from the file (``export_guard``), so it is trusted like TorchScript.
    """
    from segstudio.inference.model_format import EXPORT_PROGRAM, TORCHSCRIPT, detect  # noqa: PLC0415

    return is_torchscript(path) or detect(path).kind in (TORCHSCRIPT, EXPORT_PROGRAM)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_trust_file() -> Path:
    import platformdirs  # noqa: PLC0415 - only when a code model is opened

    return Path(platformdirs.user_data_dir("segstudio", appauthor=False)) / TRUST_FILE_NAME


class TrustStore:
    """The hashes the user trusted, in a JSON file: ``{"trusted": {sha256: {"name", "trusted_at"}}}``.

    An unreadable or malformed file counts as empty (the user is asked again) rather than as
    trusting anything.
    """

    def __init__(self, path: str | PathLike | None = None):
        self.path = Path(path) if path is not None else default_trust_file()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        trusted = data.get("trusted") if isinstance(data, dict) else None
        return trusted if isinstance(trusted, dict) else {}

    def is_trusted(self, sha256: str) -> bool:
        return sha256 in self._read()

    def trust(self, sha256: str, name: str = "") -> None:
        """Record ``sha256``; written to a temporary file and renamed, so a crash leaves the old list."""
        trusted = self._read()
        trusted[sha256] = {"name": name, "trusted_at": _dt.datetime.now(_dt.timezone.utc).isoformat()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps({"trusted": trusted}, indent=1), encoding="utf-8")
        os.replace(temporary, self.path)


def trust_file(path: str | PathLike, store: TrustStore | None = None) -> None:
    """Remember that the user agreed to run the model file at ``path`` (its current content)."""
    (store or TrustStore()).trust(file_sha256(path), Path(path).name)


def needs_trust(spec: str | PathLike, store: TrustStore | None = None) -> Path | None:
    """The model file behind ``spec`` when it is code the user has not trusted yet, else None.

    Cheap enough for the GUI thread: a zip listing, and a hash only for code archives.
    """
    path = Path(spec)
    if not path.is_file() or not is_code_model(path):
        return None
    return None if (store or TrustStore()).is_trusted(file_sha256(path)) else path
