"""Prompt-model specs and the registry of promptable models (torch-free).

A spec names a backend and, for the SAM family, the weights file the user picked:

``grabcut``                 the offline default (OpenCV, no weights)
``sam:PATH``                Segment Anything (ViT-B / L / H checkpoint, architecture read from the file)
``sam2:PATH[:CONFIG]``      SAM 2 / 2.1 (Hiera tiny … large); CONFIG is a package config name
                            (``sam2.1_hiera_t``, ``configs/sam2.1/sam2.1_hiera_t.yaml``) or a YAML file,
                            by default chosen from the file name or the weights' shapes

``sam:vit_b`` / ``sam2:tiny`` … name a :data:`PROMPT_MODELS` entry instead of a file: the file is looked
up in the weights folder (preferences), and when it is not there the error says which file to fetch
and where from. Nothing is ever downloaded.
"""
from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

from segstudio.core.errors import CheckpointError

__all__ = ["DeferredBackend", "MissingPackageError", "installed", "PROMPT_MODELS", "PromptModel", "PromptSpec", "open_backend", "parse_spec",
           "require"]


class MissingPackageError(CheckpointError):
    """An optional package the chosen backend needs is not installed."""


@dataclass(frozen=True)
class PromptModel:
    """A promptable model users can fetch: the file expected and where it is published."""

    key: str            # "sam:vit_b", "sam2:tiny" ...
    family: str         # "sam" | "sam2"
    filename: str
    url: str
    config: str | None = None     # sam2: the package config
    size_mb: int = 0


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
PROMPT_MODELS: dict[str, PromptModel] = {m.key: m for m in (
    PromptModel("sam:vit_b", "sam", "sam_vit_b_01ec64.pth", _SAM_URL + "sam_vit_b_01ec64.pth", size_mb=375),
    PromptModel("sam:vit_l", "sam", "sam_vit_l_0b3195.pth", _SAM_URL + "sam_vit_l_0b3195.pth", size_mb=1250),
    PromptModel("sam:vit_h", "sam", "sam_vit_h_4b8939.pth", _SAM_URL + "sam_vit_h_4b8939.pth", size_mb=2560),
    PromptModel("sam2:tiny", "sam2", "sam2.1_hiera_tiny.pt", _SAM2_URL + "sam2.1_hiera_tiny.pt",
                "configs/sam2.1/sam2.1_hiera_t.yaml", 156),
    PromptModel("sam2:small", "sam2", "sam2.1_hiera_small.pt", _SAM2_URL + "sam2.1_hiera_small.pt",
                "configs/sam2.1/sam2.1_hiera_s.yaml", 184),
    PromptModel("sam2:base_plus", "sam2", "sam2.1_hiera_base_plus.pt", _SAM2_URL + "sam2.1_hiera_base_plus.pt",
                "configs/sam2.1/sam2.1_hiera_b+.yaml", 323),
    PromptModel("sam2:large", "sam2", "sam2.1_hiera_large.pt", _SAM2_URL + "sam2.1_hiera_large.pt",
                "configs/sam2.1/sam2.1_hiera_l.yaml", 898),
)}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (no torch on the GUI thread)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str = "sam"):
    """Import an optional package, or raise :class:`MissingPackageError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingPackageError(None, f"the prompt model needs the '{module}' package: "
                                  f"pip install segstudio[{extra}] ({exc})") from None


@dataclass(frozen=True)
class PromptSpec:
    """A parsed spec: the backend family, the weights file, an optional config."""

    family: str                   # "grabcut" | "sam" | "sam2"
    path: Path | None = None
    config: str | None = None

    def __str__(self) -> str:
        if self.family == "grabcut":
            return "grabcut"
        return f"{self.family}:{self.path}" + (f":{self.config}" if self.config else "")


def _split_config(rest: str) -> tuple[str, str | None]:
    """``PATH[:CONFIG]`` where PATH itself may hold a colon (a Windows drive)."""
    if ":" in rest:
        head, tail = rest.rsplit(":", 1)
        if head and not (len(head) == 1 and head.isalpha()) and (tail.endswith((".yaml", ".yml"))
                                                                  or "hiera" in tail or "/" in tail or tail in
                                                                  ("t", "s", "b+", "l")):
            return head, tail
    return rest, None


def parse_spec(spec: str, weights_dir: str | Path | None = None) -> PromptSpec:
    """Parse ``grabcut`` / ``sam:PATH`` / ``sam2:PATH[:CONFIG]`` (or ``sam:vit_b`` … from the registry).

    Raises
    ------
    CheckpointError
        Unknown family, a file that is not there, or a registry entry whose file is not in
        ``weights_dir`` (the message names the file and its download address).
    """
    spec = str(spec).strip()
    if spec.lower() == "grabcut":
        return PromptSpec("grabcut")
    family, _, rest = spec.partition(":")
    family = family.lower()
    if family not in ("sam", "sam2") or not rest:
        raise CheckpointError(spec, "prompt model must be 'grabcut', 'sam:PATH' or 'sam2:PATH[:CONFIG]'")
    entry = PROMPT_MODELS.get(f"{family}:{rest.lower()}")
    if entry is not None:
        return _from_registry(entry, weights_dir)
    path, config = _split_config(rest) if family == "sam2" else (rest, None)
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(path, "model file not found" if not path.exists() else "not a file")
    return PromptSpec(family, path, config)


def _from_registry(entry: PromptModel, weights_dir) -> PromptSpec:
    found = Path(weights_dir).expanduser() / entry.filename if weights_dir else None
    if found is None or not found.is_file():
        where = f"in {weights_dir}" if weights_dir else "(no weights folder set in the preferences)"
        raise CheckpointError(entry.filename, f"{entry.key} needs the file {entry.filename} ({entry.size_mb} MB) "
                              f"{where}; nothing is downloaded: fetch it from {entry.url} and put it there, "
                              f"or pick the file")
    return PromptSpec(entry.family, found, entry.config)


def open_backend(spec: str | PromptSpec, device: str = "cpu", weights_dir: str | Path | None = None):
    """The backend for ``spec``. A missing package raises :class:`MissingPackageError` at once; for the
    SAM family nothing else is imported here: torch, the package and the weights load on first use
    (``set_image``), on the thread that runs it (the inference lane), never on the GUI thread."""
    parsed = spec if isinstance(spec, PromptSpec) else parse_spec(spec, weights_dir)
    if parsed.family == "grabcut":
        from segstudio.core.prompting.grabcut import GrabCutBackend
        return GrabCutBackend()
    package = "segment_anything" if parsed.family == "sam" else "sam2"
    if not installed(package):
        raise MissingPackageError(None, f"the prompt model needs the '{package}' package: pip install segstudio[sam]")
    return DeferredBackend(parsed, device)


class DeferredBackend:
    """A SAM-family backend that imports its module and builds the model on first use.

    ``model_id`` and ``supports_mask_input`` are known without torch, so the GUI can key caches and
    build prompts before anything heavy is loaded.
    """

    supports_mask_input = True

    def __init__(self, spec: PromptSpec, device: str = "cpu"):
        self.spec = spec
        self.device = device
        self.model_id = f"{spec.family}:{Path(spec.path).resolve()}" + (
            f":{spec.config or ''}" if spec.family == "sam2" else "")
        self._lock = threading.Lock()
        self._backend = None

    @property
    def backend(self):
        with self._lock:
            if self._backend is None:
                if self.spec.family == "sam":
                    from segstudio.inference.prompting.sam import SamBackend
                    self._backend = SamBackend(self.spec.path, device=self.device)
                else:
                    from segstudio.inference.prompting.sam2 import Sam2Backend
                    self._backend = Sam2Backend(self.spec.path, self.spec.config, device=self.device)
            return self._backend

    def load(self) -> None:
        self.backend.load()

    def set_image(self, image):
        return self.backend.set_image(image)

    def predict(self, embedding, prompt):
        return self.backend.predict(embedding, prompt)
