"""Looking at a ``torch.export`` program (.pt2) before torch reads it (ADR 0016, docs/threat-model.md).

A .pt2 archive is mostly data (a JSON graph of ATen ops and raw weight bytes), but reading it with
``torch.export.load(...).module()`` can run code written by whoever made the file, in five ways
(torch 2.14):

1. payloads marked ``use_pickle`` (weights, constants) are read with ``torch.load(weights_only=False)``
   and the sample inputs fall back to it: a full pickle, which runs any callable it names;
2. custom and opaque objects in the constants are unpickled (``pickle.loads``, torchbind);
3. every symbolic-shape expression (``expr_str``) goes through ``sympy.sympify``, which ``eval``s it;
4. the program's ``guards_code`` strings are pasted into Python source and ``exec``'d by ``.module()``;
5. a node's target is resolved by walking attributes from ``torch``, ``operator`` or ``math``, so a
   graph can call ``torch.save`` or anything reachable from ``torch``; and a ``data/aotinductor/``
   folder makes ``load`` dlopen the shared library inside.

So before ``torch.export.load`` runs, the archive's members are listed and its JSON read here: no
AOTInductor payload, no custom/opaque objects, every pickled payload readable with
``weights_only=True``, every expression and guard parsed (``ast``) into a small grammar of names,
numbers, arithmetic, comparisons and a fixed list of shape functions, and every node target an op of
the ``aten``/``prims``/``quantized``/``torchvision`` namespaces outside ``script_guard.DENIED_OPS``
(or one of a few operators and control-flow ops). After loading, the graph is checked again on the
resolved objects. As for TorchScript this is a filter, not a sandbox: the user must still trust the
file (``model_trust``).
"""
from __future__ import annotations

import ast
import io
import json
import re
import warnings
import zipfile
from os import PathLike
from pathlib import Path

from segstudio.core.errors import CheckpointError
from segstudio.inference.script_guard import ALLOWED_NAMESPACES, DENIED_OPS

OP_NAMESPACES = ALLOWED_NAMESPACES - {"prim"} | {"prims"}
HIGHER_ORDER = frozenset({"cond", "while_loop", "map_impl", "scan", "associative_scan",
                          "wrap_with_set_grad_enabled", "wrap_with_autocast"})
OPERATORS = frozenset({"getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos",
                       "abs", "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor", "not_", "invert"})
TORCH_FUNCTIONS = frozenset({"sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "sym_ite",
                             "sym_sqrt", "_sym_sqrt", "sym_sum", "_assert", "sym_fresh_size"})
MATH_FUNCTIONS = frozenset({"ceil", "floor", "trunc", "sqrt", "isnan", "isinf", "inf"})
# Function names a shape expression may call (torch.utils._sympy.functions and sympy's own).
SHAPE_FUNCTIONS = frozenset({
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt",
    "IntTrueDiv", "FloatTrueDiv", "LShift", "RShift", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "FloatPow", "PowByNatural",
    "Identity", "Max", "Min", "Abs", "floor", "ceiling", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or",
    "Not", "sqrt", "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Equality", "Unequality",
    "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan", "Piecewise", "ExprCondPair",
    "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "cast_symbool_to_symint_guardless"})
SIZE_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPR_NODES = (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name,
               ast.Constant, ast.Load, ast.And, ast.Or, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv,
               ast.Mod, ast.Pow, ast.USub, ast.UAdd, ast.Not, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt,
               ast.GtE, ast.BitAnd, ast.BitOr, ast.Invert, ast.keyword)


def check_archive(data: bytes, path: str | PathLike) -> None:
    """Refuse a .pt2 whose reading would run code from it (see the module docstring), by name.

    Raises
    ------
    CheckpointError
        The reason names the member, expression or op refused.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(path, f"cannot read the torch.export archive: {exc}") from None
    with archive:
        for name in names:
            if "/aotinductor/" in f"/{name}":
                raise CheckpointError(path, f"refused: {name} is AOTInductor compiled code (a shared "
                                      "library that loading would run); save the program with "
                                      "torch.export.save instead")
        programs = [n for n in names if re.search(r"(^|/)models/[^/]+\.json$", n)]
        if not programs:
            raise CheckpointError(path, "no exported program in the archive (models/*.json)")
        for program in programs:
            root = program[:program.index("models/")]
            model = Path(program).stem
            for legacy in (f"{root}data/weights/{model}.pt", f"{root}data/constants/{model}.pt"):
                if legacy in names:
                    raise CheckpointError(path, f"refused: {legacy} is the pre-2.8 pickled layout, "
                                          "read with a full pickle; re-save the program with a "
                                          "current torch.export.save")
            for kind in ("weights", "constants"):
                _check_payloads(archive, names, f"{root}data/{kind}/", f"{model}_{kind}_config.json", path)
            sample = f"{root}data/sample_inputs/{model}.pt"
            if sample in names:
                _weights_only(archive.read(sample), sample, path)
            check_program_json(archive.read(program), path, program)


def _check_payloads(archive: zipfile.ZipFile, names: list[str], folder: str, config_name: str,
                    path: Path) -> None:
    config_file = folder + config_name
    if config_file not in names:
        return
    config = _json(archive.read(config_file), path, config_file).get("config", {})
    for fqn, meta in (config.items() if isinstance(config, dict) else ()):
        member = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
        if member.startswith(("custom_obj", "opaque_obj")):
            raise CheckpointError(path, f"refused: {fqn!r} is a custom object ({member}), which "
                                  "torch.export.load unpickles, running code from the file")
        if isinstance(meta, dict) and meta.get("use_pickle"):
            _weights_only(archive.read(folder + member), folder + member, path)


def _weights_only(payload: bytes, member: str, path: Path) -> None:
    import torch  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch notes pickle protocols it did not write
            torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure means torch would fall back to a full pickle
        message = " ".join(str(exc).split())
        found = re.search(r"GLOBAL ([\w.]+)", message)
        what = f"needs {found.group(1)}" if found else f"is not a weights-only pickle ({type(exc).__name__})"
        raise CheckpointError(path, f"refused: {member} {what}; torch.export.load would unpickle it "
                              "in full, running code from the file") from None


def _json(raw: bytes, path: Path, member: str) -> dict:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"{member} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, f"{member} is not a JSON object")
    return data


def check_program_json(raw: bytes, path: str | PathLike, member: str = "models/model.json") -> None:
    """Check every node target, shape expression and guard of a serialised program."""
    path = Path(path)
    data = _json(raw, path, member)
    targets: set[str] = set()
    expressions: set[str] = set()
    _collect(data, targets, expressions)
    expressions.update(str(k) for k in (data.get("range_constraints") or {}))
    for target in sorted(targets):
        reason = target_refusal(target)
        if reason:
            raise CheckpointError(path, f"refused: the exported graph calls {target} ({reason}); "
                                  "see docs/threat-model.md")
    for expression in sorted(expressions):
        _check_expression(expression, path, guard=False)
    for guard in data.get("guards_code") or []:
        _check_expression(str(guard), path, guard=True)


def _collect(value, targets: set[str], expressions: set[str]) -> None:
    if isinstance(value, dict):
        if "target" in value and "inputs" in value:
            targets.add(str(value["target"]))
        if isinstance(value.get("as_operator"), str):   # an op passed as an argument, resolved the same way
            targets.add(value["as_operator"])
        if isinstance(value.get("expr_str"), str):
            expressions.add(value["expr_str"])
        for item in value.values():
            _collect(item, targets, expressions)
    elif isinstance(value, list):
        for item in value:
            _collect(item, targets, expressions)


def target_refusal(target: str) -> str | None:
    """Why a serialised node target is refused, or None when it is allowed."""
    parts = target.split(".")
    if parts[:2] == ["torch", "ops"] and len(parts) >= 4:
        namespace, op = parts[2], parts[3]
        if namespace == "higher_order":
            return None if op in HIGHER_ORDER else "a higher-order op outside the allowed list"
        if namespace not in OP_NAMESPACES:
            return f"an op of the {namespace!r} namespace"
        if f"{namespace}::{op}" in DENIED_OPS:
            return "an op that reaches outside the tensors it is given"
        return None
    if parts[0] == "_operator" and len(parts) == 2 and parts[1] in OPERATORS:
        return None
    if parts[0] == "torch" and len(parts) == 2 and parts[1] in TORCH_FUNCTIONS:
        return None
    if parts[0] == "math" and len(parts) == 2 and parts[1] in MATH_FUNCTIONS:
        return None
    return "not an ATen op or an allowed operator"


def _check_expression(text: str, path: Path, guard: bool) -> None:
    what = "guard" if guard else "shape expression"
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        raise CheckpointError(path, f"refused: a {what} that is not an expression: {text[:80]!r}") from None
    for node in ast.walk(tree):
        reason = _node_refusal(node, guard)
        if reason:
            raise CheckpointError(path, f"refused: the {what} {text[:80]!r} {reason}; torch would "
                                  "evaluate it as Python code")


def _node_refusal(node: ast.AST, guard: bool) -> str | None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float, bool)):
            return None
        if isinstance(node.value, str) and _IDENTIFIER.match(node.value):
            return None
        return f"holds the constant {node.value!r}"
    if isinstance(node, ast.Name):
        if node.id.startswith("_"):
            return f"names {node.id}"
        return None if _IDENTIFIER.match(node.id) else f"names {node.id!r}"
    if isinstance(node, ast.Call):
        if any(not isinstance(k.value, ast.Constant) or not isinstance(k.value.value, (bool, int))
               or k.arg is None or k.arg.startswith("_") for k in node.keywords):
            return "calls with a keyword argument that is not a number or a flag"
        func = node.func
        if isinstance(func, ast.Name) and func.id in SHAPE_FUNCTIONS:
            return None
        if guard and isinstance(func, ast.Attribute) and _allowed_attribute(func):
            return None
        return f"calls {ast.unparse(func)[:40]}"
    if guard and isinstance(node, ast.Attribute):
        return None if _allowed_attribute(node) else f"reads the attribute {node.attr}"
    if guard and isinstance(node, ast.Subscript):
        if isinstance(node.value, (ast.Name, ast.Subscript, ast.Call)) and isinstance(node.slice, ast.Constant):
            if isinstance(node.value, ast.Name) and node.value.id != "L":
                return f"indexes {node.value.id}"
            return None
        return "indexes something other than an input size"
    if isinstance(node, _EXPR_NODES):
        return None
    return f"uses {type(node).__name__}"


def _allowed_attribute(node: ast.Attribute) -> bool:
    value = node.value
    if isinstance(value, ast.Name):
        return (value.id == "torch" and node.attr in TORCH_FUNCTIONS) or \
            (value.id == "math" and node.attr in MATH_FUNCTIONS)
    return isinstance(value, ast.Subscript) and node.attr in SIZE_METHODS


def check_loaded_graph(graph_module, path: str | PathLike) -> None:
    """The same rule on the loaded program's graphs (every submodule's), on the resolved targets."""
    import math  # noqa: PLC0415
    import operator  # noqa: PLC0415

    import torch  # noqa: PLC0415

    allowed = {getattr(operator, n) for n in OPERATORS} | {getattr(torch, n) for n in TORCH_FUNCTIONS
                                                           if hasattr(torch, n)} | \
        {getattr(math, n) for n in MATH_FUNCTIONS if callable(getattr(math, n, None))}
    for module in graph_module.modules():
        graph = getattr(module, "graph", None)
        if not isinstance(graph, torch.fx.Graph):
            continue
        for node in graph.nodes:
            if node.op != "call_function":
                if node.op in ("call_method", "call_module"):
                    raise CheckpointError(Path(path), f"refused: the exported graph has a {node.op} node "
                                          f"({node.target}), which exported programs do not use")
                continue
            target = node.target
            if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
                namespace, _, op = target.name().partition("::")
                op = op.split(".")[0]
                if namespace not in OP_NAMESPACES or f"{namespace}::{op}" in DENIED_OPS:
                    raise CheckpointError(Path(path), f"refused: the exported graph calls {namespace}::{op}")
            elif isinstance(target, torch._ops.HigherOrderOperator):
                if target.name() not in HIGHER_ORDER:
                    raise CheckpointError(Path(path), f"refused: the exported graph calls {target.name()}")
            elif target not in allowed:
                raise CheckpointError(Path(path), f"refused: the exported graph calls {target!r}")
