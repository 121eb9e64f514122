"""Damaged model files: every failure to read one is a ``CheckpointError`` naming the file (issue 10, item 10).

A seeded fuzz over a small state-dict checkpoint (zip and legacy format) and a small TorchScript file:
truncations, bit flips and zeroed ranges. Before the fix about a fifth of such files escaped as
``IndexError``, ``zlib.error``, ``NotImplementedError`` ... tracebacks. TorchScript is fuzzed in a
process of its own (see ``checkpoint_fuzz``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segstudio.core.errors import CheckpointError
from tests.inference.checkpoint_fuzz import CASES_PER_FILE, command_argvs, fuzz, load, run_command
from tests.inference.helpers import save_tiny, save_torchscript, tiny_net

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "image.png"
    cv2.imwrite(str(path), np.zeros((16, 16, 3), np.uint8))
    return path


def _assert_one_line_exit_2(model: Path, image: Path, out: Path) -> None:
    for argv in command_argvs(model, image, out):
        code, lines = run_command(argv)
        assert code == 2 and len(lines) == 1, (argv, code, lines)
        assert lines[0].startswith(f"segstudio {argv[0]}: error: {model}: "), lines


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_every_damaged_state_dict_loads_or_raises_checkpoint_error(tmp_path, image, legacy):
    original = tmp_path / "net.pth"
    if legacy:
        torch.save(tiny_net().state_dict(), original, _use_new_zipfile_serialization=False)
    else:
        save_tiny(original, card=False)
    escaped, unreadable = fuzz(original, tmp_path)
    assert not escaped, f"{len(escaped)} of {CASES_PER_FILE} escaped:\n" + "\n".join(escaped[:10])
    for model in unreadable[:1]:
        _assert_one_line_exit_2(model, image, tmp_path / "out")


def test_every_damaged_torchscript_file_loads_or_raises_checkpoint_error(tmp_path, image):
    original = tmp_path / "net.pt"
    save_torchscript(tiny_net(), original, trusted=False)
    done = subprocess.run([sys.executable, "-m", "tests.inference.checkpoint_fuzz", str(original), str(tmp_path),
                           str(image)], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not report["escaped"], f"{len(report['escaped'])} of {CASES_PER_FILE} escaped:\n" + "\n".join(
        report["escaped"][:10])
    assert report["unreadable"], "expected damaged archives that TorchScript's reader chokes on"
    for model, command, code, lines in report["commands"]:
        assert code == 2 and len(lines) == 1, (command, code, lines)
        assert lines[0].startswith(f"segstudio {command}: error: {model}: "), lines


def test_a_text_file_named_pth_is_a_checkpoint_error(tmp_path, image):
    path = tmp_path / "notes.pth"
    path.write_text("these are my notes, not weights\n")
    with pytest.raises(CheckpointError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ")
    _assert_one_line_exit_2(path, image, tmp_path / "out")
