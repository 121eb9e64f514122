"""A crafted .pt2 cannot run code while it is read (docs/threat-model.md, export_guard).

Each test takes a genuine program, edits one thing the way an attacker would, and checks that
resolving it is refused by name, that the payload did not run (no marker file), and, for the
unedited program, that it loads: the guard refuses the crafted part, not the format.
"""
from __future__ import annotations

import json
import pickle

import pytest

from segstudio.core.errors import CheckpointError
from segstudio.inference import model_trust
from segstudio.inference.model_trust import trust_file
from segstudio.inference.registry import resolve_model
from tests.inference.exports import edit_program_json, rewrite_member, save_pt2
from tests.inference.helpers import tiny_net


@pytest.fixture(autouse=True)
def own_trust_store(tmp_path, monkeypatch):
    monkeypatch.setattr(model_trust, "default_trust_file", lambda: tmp_path / "trusted_models.json")


@pytest.fixture
def program(tmp_path):
    return save_pt2(tiny_net(3), tmp_path / "net.pt2", size=(32, 32), batch=2, dynamic=True)


def refused(path, marker=None) -> str:
    trust_file(path)   # trusted or not, inspection comes first; trusted, nothing else stops it
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    if marker is not None:
        assert not marker.exists(), "the crafted code ran"
    assert "refused" in err.value.reason
    return err.value.reason


def test_the_genuine_program_loads(program):
    trust_file(program)
    assert resolve_model(program).class_table.num_classes == 3


def test_python_in_a_guard_is_refused(program, tmp_path):
    marker = tmp_path / "guard-ran"
    # Without the guard, torch pastes this into the module's input check and runs it on every call.
    payload = f"L['x'].size()[0] >= 0 and __import__('pathlib').Path({str(marker)!r}).touch() is None"
    edit_program_json(program, lambda data: data["guards_code"].append(payload))
    assert "guard" in refused(program, marker)


def test_python_in_a_shape_expression_is_refused(program, tmp_path):
    marker = tmp_path / "sympify-ran"
    # Without the guard, sympy.sympify evaluates this inside torch.export.load.
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"

    def edit(data):
        def first_expression(value):
            if isinstance(value, dict):
                if isinstance(value.get("expr_str"), str):
                    return value
                value = list(value.values())
            if isinstance(value, list):
                return next((found for item in value if (found := first_expression(item))), None)
            return None

        first_expression(data)["expr_str"] = payload   # a symbolic input size, say

    edit_program_json(program, edit)
    assert "shape expression" in refused(program, marker)


@pytest.mark.parametrize(("target", "named"), [
    ("torch.save", "torch.save"),                                  # resolved by getattr from torch
    ("torch.ops.aten.from_file.default", "torch.ops.aten.from_file"),  # an ATen op that opens files
    ("torch.ops.myns.evil.default", "'myns' namespace"),
    ("builtins.exec", "builtins.exec"),
])
def test_node_targets_outside_the_rule_are_refused(program, target, named):
    def edit(data):
        data["graph_module"]["graph"]["nodes"][-1]["target"] = target

    edit_program_json(program, edit)
    assert named in refused(program)


def test_an_operator_passed_as_an_argument_is_checked_too(program):
    def edit(data):
        node = data["graph_module"]["graph"]["nodes"][-1]
        node["inputs"].append({"name": "fn", "arg": {"as_operator": "torch.hub.load"}, "kind": 1})

    edit_program_json(program, edit)
    assert "torch.hub.load" in refused(program)


def test_a_full_pickle_payload_is_refused_before_torch_unpickles_it(program, tmp_path):
    marker = tmp_path / "pickle-ran"

    class Touch:
        def __reduce__(self):
            import pathlib

            return (pathlib.Path.touch, (pathlib.Path(marker),))

    def mark_pickled(raw: bytes) -> bytes:
        config = json.loads(raw)
        first = next(iter(config["config"].values()))
        first["use_pickle"] = True
        return json.dumps(config).encode()

    with __import__("zipfile").ZipFile(program) as archive:
        config = json.loads(archive.read(next(n for n in archive.namelist()
                                              if n.endswith("model_weights_config.json"))))
    member = next(iter(config["config"].values()))["path_name"]
    rewrite_member(program, "model_weights_config.json", mark_pickled)
    rewrite_member(program, f"data/weights/{member}", lambda raw: pickle.dumps(Touch(), protocol=2))
    reason = refused(program, marker)
    assert "needs getattr" in reason and "in full" in reason


def test_custom_objects_and_compiled_code_are_refused(program, tmp_path):
    rewrite_member(program, "model_constants_config.json", lambda raw: json.dumps(
        {"config": {"obj": {"path_name": "custom_obj_0", "is_param": False, "use_pickle": False,
                            "tensor_meta": None}}}).encode())
    assert "custom object" in refused(program)
    compiled = save_pt2(tiny_net(3), tmp_path / "compiled.pt2")
    rewrite_member(compiled, "archive_format", lambda raw: raw,
                   add={"data/aotinductor/model/model.so": b"\x7fELF"})
    with pytest.raises(CheckpointError, match="AOTInductor"):
        resolve_model(compiled)
