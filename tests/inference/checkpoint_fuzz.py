"""Damaging model files deterministically, and loading them (shared by test_checkpoint_fuzz).

Run as ``python -m tests.inference.checkpoint_fuzz FILE FOLDER`` it fuzzes FILE in a process of its
own and prints a JSON report: a damaged TorchScript archive that ``torch.jit.load`` gives up on can
leave half-defined types in TorchScript's process-wide compilation unit, after which scripting
``nn.Conv2d`` fails in that process; the other tests must not inherit that.
"""
from __future__ import annotations

import contextlib
import io
import json
import random
import sys
import warnings
from pathlib import Path

from segstudio.core.errors import CheckpointError

CASES_PER_FILE = 70


def mutations(data: bytes, seed: int, count: int = CASES_PER_FILE) -> list[tuple[str, bytes]]:
    """``count`` damaged copies of ``data``, in turn truncated, bit-flipped and zeroed over a range."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        damaged = bytearray(data)
        if i % 3 == 0:
            cut = rng.randrange(len(data))
            damaged = damaged[:cut]
            what = f"truncated at {cut}"
        elif i % 3 == 1:
            spots = [rng.randrange(len(data)) for _ in range(rng.randint(1, 8))]
            for spot in spots:
                damaged[spot] ^= 1 << rng.randrange(8)
            what = f"bits flipped at {spots}"
        else:
            start, length = rng.randrange(len(data)), rng.randint(1, 256)
            damaged[start:start + length] = bytes(len(damaged[start:start + length]))
            what = f"zeroed {length} bytes at {start}"
        cases.append((what, bytes(damaged)))
    return cases


def load(path: Path) -> None:
    """Resolve and load ``path`` as a 3-class TinyNet (what a user's card would say)."""
    from segstudio.inference.registry import resolve_model  # noqa: PLC0415
    from tests.inference import helpers  # noqa: F401, PLC0415 - registers tests.TinyNet

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch warns about TorchScript-looking zips it dispatches
        resolve_model(path, architecture="tests.TinyNet", classes=["a", "b", "c"]).load("cpu")


def fuzz(original: Path, folder: Path) -> tuple[list[str], list[Path]]:
    """Load every damaged copy of ``original``: (what escaped, files refused as unreadable)."""
    escaped, unreadable = [], []
    for index, (what, data) in enumerate(mutations(original.read_bytes(), seed=len(original.name))):
        target = folder / f"{index:03d}_{original.name}"
        target.write_bytes(data)
        try:
            load(target)
        except CheckpointError as exc:
            if str(target) not in str(exc):
                escaped.append(f"{what}: error without the file name: {exc}")
            elif "cannot read the model file" in str(exc):
                unreadable.append(target)
        except Exception as exc:  # noqa: BLE001 - what the fuzz is looking for
            escaped.append(f"{what}: {type(exc).__name__}: {exc}")
    return escaped, unreadable


def run_command(argv: list[str]) -> tuple[int, list[str]]:
    """``segstudio ARGV``: (exit code, stderr lines)."""
    from segstudio import cli  # noqa: PLC0415

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, err.getvalue().strip().splitlines()


def command_argvs(model: Path, image: Path, out: Path) -> list[list[str]]:
    return [["predict", "--model", str(model), "--images", str(image), "--out", str(out), "--device", "cpu"],
            ["evaluate", "--dataset", str(image), "--model", str(model), "--device", "cpu"]]


def main(original: str, folder: str, image: str) -> None:
    escaped, unreadable = fuzz(Path(original), Path(folder))
    commands = [(str(model), argv[0], *run_command(argv))
                for model in unreadable[:1] for argv in command_argvs(model, Path(image), Path(folder) / "out")]
    print(json.dumps({"escaped": escaped, "unreadable": [str(p) for p in unreadable], "commands": commands}))


if __name__ == "__main__":
    main(*sys.argv[1:])
