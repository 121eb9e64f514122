"""What kind of file a model file is, judged by its content (no torch, no onnx import).

``detect(path)`` reads a zip listing or the first bytes and names the format: a PyTorch checkpoint,
a TorchScript archive, a ``torch.export`` program, an AOTInductor package, ONNX, safetensors,
HDF5/Keras, TFLite, GGUF, NumPy, a plain pickle, text ... A file segstudio cannot read is then
refused with what it is and what would work (``unsupported``), instead of the parser error of
whichever reader was tried first.
"""
from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from segstudio.core.errors import CheckpointError

SUPPORTED = ("segstudio reads PyTorch state dicts (.pth/.pt, with a model card or a recognised "
             "architecture), TorchScript (.pt/.ts), torch.export programs (.pt2), ONNX (.onnx), "
             "safetensors state dicts and SMP save_pretrained folders; see docs/model-formats.md")

TORCH_CHECKPOINT = "torch-checkpoint"
TORCHSCRIPT = "torchscript"
EXPORT_PROGRAM = "export-program"
AOTI_PACKAGE = "aoti-package"
ONNX = "onnx"
SAFETENSORS = "safetensors"
LEGACY_TORCH = "legacy-torch"
PICKLE = "pickle"
DAMAGED_ZIP = "damaged-zip"
# Formats with a reader; a damaged zip goes to torch's, whose error says what is broken.
READABLE = frozenset({TORCH_CHECKPOINT, TORCHSCRIPT, EXPORT_PROGRAM, ONNX, SAFETENSORS, LEGACY_TORCH, PICKLE,
                      DAMAGED_ZIP})

_IMAGES = ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
           (b"BM", "BMP"))
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}  # ModelProto


@dataclass(frozen=True)
class Detected:
    """``kind`` is one of the constants above or another short name; ``description`` reads in a
    sentence ("a TorchScript archive")."""

    kind: str
    description: str

    @property
    def readable(self) -> bool:
        return self.kind in READABLE


def detect(path: str | PathLike) -> Detected:
    """Name the format of the file at ``path`` from its content (the suffix is not trusted)."""
    path = Path(path)
    if path.is_dir():
        return Detected("folder", "a folder")
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
            size = handle.seek(0, 2)
    except OSError as exc:
        return Detected("unreadable", f"a file that cannot be read ({exc.strerror or exc})")
    if not head:
        return Detected("empty", "an empty file")
    if head.startswith(b"PK"):
        return _detect_zip(path)
    for magic, name in _IMAGES:
        if head.startswith(magic):
            return Detected("image", f"a {name} image, not a model")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return Detected("hdf5", "an HDF5 file (a Keras .h5 model or weights)")
    if head[4:8] == b"TFL3":
        return Detected("tflite", "a TensorFlow Lite model")
    if head.startswith(b"GGUF"):
        return Detected("gguf", "a GGUF file (llama.cpp weights)")
    if head.startswith(b"\x93NUMPY"):
        return Detected("numpy", "a NumPy array file (.npy)")
    if _is_safetensors(head, size):
        return Detected(SAFETENSORS, "a safetensors file")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        if _is_legacy_torch(head):
            return Detected(LEGACY_TORCH, "a PyTorch checkpoint in the legacy (pre-1.6) format")
        return Detected(PICKLE, "a Python pickle")
    if _is_onnx(path, size):
        return Detected(ONNX, "an ONNX model")
    if _is_text(head):
        try:
            json.loads(path.read_text(encoding="utf-8"))
            return Detected("json", "a JSON text file (a model card or config, not a model)")
        except (ValueError, OSError, UnicodeDecodeError):
            return Detected("text", "a text file")
    return Detected("unknown", "a file of unknown format")


def unsupported(path: str | PathLike, detected: Detected | None = None, detail: str = "") -> CheckpointError:
    """The error for a model file segstudio cannot read: what it is, and what is supported."""
    detected = detected or detect(path)
    reason = f"cannot read this model file: it is {detected.description}"
    if detail:
        reason += f" ({' '.join(detail.split())})"
    return CheckpointError(path, f"{reason}. {SUPPORTED}")


def _detect_zip(path: Path) -> Detected:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception:  # noqa: BLE001 - zipfile raises many types on a damaged archive
        return Detected(DAMAGED_ZIP, "a damaged zip archive")
    if any("/aotinductor/" in n or n.startswith("data/aotinductor/") for n in names):
        return Detected(AOTI_PACKAGE, "an AOTInductor package (compiled native code, which segstudio "
                        "does not run; save the torch.export program with torch.export.save instead)")
    if any(n.endswith("/models/model.json") or n == "models/model.json" for n in names) and \
            any(n.endswith("archive_format") for n in names):
        return Detected(EXPORT_PROGRAM, "a torch.export program (.pt2)")
    if any(n.endswith("/constants.pkl") or "/code/" in n or n.startswith("code/") for n in names):
        return Detected(TORCHSCRIPT, "a TorchScript archive")
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return Detected(TORCH_CHECKPOINT, "a PyTorch checkpoint (torch.save)")
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return Detected("keras", "a Keras 3 model (.keras)")
    if any(n.endswith("saved_model.pb") for n in names):
        return Detected("tf-savedmodel", "a zipped TensorFlow SavedModel")
    return Detected("zip", "a zip archive with no model layout segstudio knows")


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def _is_legacy_torch(head: bytes) -> bool:
    # torch.save's pre-zip format begins with a pickled magic number, 0x1950a86a20f9469cfc6c.
    return b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19" in head[:32]


def _is_onnx(path: Path, size: int) -> bool:
    """Walk the top-level protobuf fields: only ModelProto's numbers with their wire types, an
    ``ir_version`` first-ish and a ``graph``, each length staying inside the file."""
    seen: set[int] = set()
    try:
        with open(path, "rb") as handle:
            position = 0
            for _ in range(64):
                if position >= size:
                    break
                handle.seek(position)
                key, position = _varint(handle, position)
                number, wire = key >> 3, key & 7
                if _ONNX_FIELDS.get(number) != wire:
                    return False
                value, position = _varint(handle, position)
                if wire == 2:
                    position += value
                    if position > size:
                        return False
                seen.add(number)
    except (OSError, ValueError):
        return False
    return 1 in seen and 7 in seen


def _varint(handle, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = handle.read(1)
        if not byte:
            raise ValueError("truncated varint")
        position += 1
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _is_text(head: bytes) -> bool:
    for cut in range(4):  # the 4 KiB read may end inside a multi-byte character
        try:
            text = head[:len(head) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)
