"""Looking at a TorchScript program before any of it runs (ADR 0016).

Two things run code from a TorchScript archive: ``torch.jit.load`` calls every scripted
``__setstate__`` while it rebuilds the objects, and every forward pass runs ``forward``. So:

1. before loading, the archive's source (``code/**.py``) is searched for a ``__setstate__``
   definition; an archive with one is refused, since nothing can be inspected before it runs;
2. after loading, the graph of every method of every submodule, with the functions and methods it
   calls inlined and every nested block walked, must use only ops of the ``aten``, ``prim``,
   ``quantized`` and ``torchvision`` namespaces and none of ``DENIED_OPS``.

This is a filter against a model file reaching outside the tensors it is given (files, network,
process state); it is not a sandbox, which is why running code also needs the user's trust
(``model_trust``).
"""
from __future__ import annotations

import io
import re
import warnings
import zipfile
from os import PathLike
from pathlib import Path

import torch

from segstudio.core.errors import CheckpointError
from segstudio.inference.model_file import reading_model_file, unreadable

ALLOWED_NAMESPACES = frozenset({"aten", "prim", "quantized", "torchvision"})
# Ops of the allowed namespaces that reach beyond the tensors: found by listing every schema
# (torch._C._jit_get_all_schemas()) with a file name or path argument, a network or Python call,
# or a name that says the op skips its bounds checks.
DENIED_OPS = frozenset({
    "aten::from_file",        # maps any file into a tensor; shared=True writes to it
    "aten::save",             # writes a file
    "prim::rpc_async", "prim::rpc_sync", "prim::rpc_remote",   # torch.distributed.rpc: network
    "prim::PythonOp", "prim::IgnoredPythonOp",                 # calls back into Python
    "aten::_unsafe_index", "aten::_unsafe_index_put", "aten::_unsafe_masked_index",
    "aten::_unsafe_masked_index_put_accumulate",               # no bounds checks: read/write memory
    "aten::_sparse_coo_tensor_unsafe", "aten::_sparse_compressed_tensor_unsafe",
    "aten::_sparse_csr_tensor_unsafe", "aten::_sparse_csc_tensor_unsafe",
    "aten::_sparse_bsr_tensor_unsafe", "aten::_sparse_bsc_tensor_unsafe",
    "aten::set_",             # points a tensor at another storage/offset/stride without checks
    "aten::_cufft_set_plan_cache_max_size",                    # process-wide setting
})
SETSTATE = re.compile(rb"\bdef\s+__setstate__\b")


def load_inspected(data: bytes, path: str | PathLike, device="cpu") -> torch.jit.ScriptModule:
    """Load TorchScript ``data`` (the bytes of ``path``) after checking its source, then its graph.

    Loading from the bytes already read (and hashed by the caller) means the program inspected is
    the one trusted, even if the file changes meanwhile.

    Raises
    ------
    CheckpointError
        Not a loadable archive, a scripted ``__setstate__``, or an op outside the rule, named.
    """
    check_source(data, path)
    try:
        with warnings.catch_warnings():
            # TorchScript is deprecated upstream but remains how many models are shipped.
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            module = torch.jit.load(io.BytesIO(data), map_location=device)
    except (RuntimeError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(path, f"cannot load TorchScript file: {message}") from None
    except Exception as exc:  # noqa: BLE001 - the C++ deserialiser raises IndexError and more
        raise unreadable(path, exc) from None
    with reading_model_file(path):
        check_ops(module, path)
    return module.eval()


def check_source(data: bytes, path: str | PathLike) -> None:
    """Refuse an archive whose code defines ``__setstate__`` (it would run inside ``torch.jit.load``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                if name.endswith(".py") and SETSTATE.search(archive.read(name)):
                    raise CheckpointError(path, f"refused: {name} defines __setstate__, code that "
                                          "TorchScript runs while loading, before it can be inspected")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(path, f"cannot read TorchScript archive: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - zlib.error, struct.error, NotImplementedError ...
        raise unreadable(path, exc) from None


def used_ops(module: torch.jit.ScriptModule) -> dict[str, str]:
    """Every op kind the module's code uses -> the first ``submodule.method`` found using it."""
    found: dict[str, str] = {}
    for name, submodule in module.named_modules():
        script = getattr(submodule, "_c", None)
        if script is None:
            continue
        for method in script._method_names():
            graph = script._get_method(method).graph.copy()
            torch._C._jit_pass_inline(graph)   # called functions and methods become nodes here
            where = f"{name}.{method}" if name else method
            for kind in _kinds(graph.nodes()):
                found.setdefault(kind, where)
    return found


def check_ops(module: torch.jit.ScriptModule, path: str | PathLike) -> None:
    """Raise ``CheckpointError`` naming the first op (sorted) outside the rule and where it is used."""
    ops = used_ops(module)
    refused = sorted(kind for kind in ops
                     if kind in DENIED_OPS or kind.split("::")[0] not in ALLOWED_NAMESPACES)
    if refused:
        where = ops[refused[0]]
        more = f" (and {len(refused) - 1} more: {', '.join(refused[1:4])})" if len(refused) > 1 else ""
        raise CheckpointError(Path(path), f"refused: the TorchScript code calls {refused[0]} in {where}"
                              f"{more}, an op that reaches outside the tensors it is given (files, "
                              "network or process); see docs/adr/0016-untrusted-model-code.md")


def _kinds(nodes) -> set[str]:
    kinds: set[str] = set()
    for node in nodes:
        kinds.add(node.kind())
        for block in node.blocks():      # if / loop bodies hold their own nodes
            kinds |= _kinds(block.nodes())
    return kinds
