"""Frozen-bundle benchmark (run by hand after packaging/build.sh):
``python bench/frozen_bench.py [--bundle dist/segstudio] [--runs N]``.

Two figures, each against the same thing run from source in the same run (runs alternate between
the two so a busy machine slows both alike):

1. **Time to window shown** (and to the first demo image on it): ``SEGSTUDIO_STARTUP_PROBE`` set to
   the launch time makes the app print both and quit (``segstudio/commands/gui.py``). Budget: the
   bundle within 2x the source figure.
2. **``--self-test`` wall time**, launch to exit.

Medians are printed; the first frozen launch after a build (cold file cache) is reported apart.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATIO_BUDGET = 2.0


def _env(settings_dir: str, frozen: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGSTUDIO_", "QT_"))}
    env.update(QT_QPA_PLATFORM="offscreen", SEGSTUDIO_SETTINGS_DIR=settings_dir)
    if not frozen:
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _startup(command: list[str], env: dict) -> tuple[float, float]:
    env = dict(env, SEGSTUDIO_STARTUP_PROBE=repr(time.time()))
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    values = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return float(values["window_shown_s"]), float(values["first_image_shown_s"])


def _self_test(command: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(command + ["--self-test"], env=env, capture_output=True, text=True, timeout=600, check=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "segstudio")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    frozen_cmd = [str(args.bundle / "segstudio")]
    source_cmd = [sys.executable, "-m", "segstudio"]
    if not Path(frozen_cmd[0]).is_file():
        print(f"frozen_bench: skipped, {frozen_cmd[0]} not found (build it with packaging/build.sh)")
        return 0   # `make bench` runs every bench; this one needs a bundle built by hand

    with tempfile.TemporaryDirectory() as settings_dir:
        frozen_env, source_env = _env(settings_dir, True), _env(settings_dir, False)
        cold = _startup(frozen_cmd, frozen_env)
        frozen, source = [], []
        for _ in range(args.runs):
            frozen.append(_startup(frozen_cmd, frozen_env))
            source.append(_startup(source_cmd, source_env))
        frozen_st, source_st = [], []
        for _ in range(max(1, args.runs // 2)):
            frozen_st.append(_self_test(frozen_cmd, frozen_env))
            source_st.append(_self_test(source_cmd, source_env))

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    shown_f, shown_s = med(frozen, 0), med(source, 0)
    image_f, image_s = med(frozen, 1), med(source, 1)
    st_f, st_s = statistics.median(frozen_st), statistics.median(source_st)
    print(f"bundle: {args.bundle}  runs: {args.runs}")
    print(f"first frozen launch (cold-ish): window {cold[0]:.2f} s, first image {cold[1]:.2f} s")
    print(f"time to window shown : frozen {shown_f:.2f} s  source {shown_s:.2f} s  ratio {shown_f / shown_s:.2f}x "
          f"(budget <= {RATIO_BUDGET:.0f}x) {'OK' if shown_f <= RATIO_BUDGET * shown_s else 'OVER'}")
    print(f"time to first image  : frozen {image_f:.2f} s  source {image_s:.2f} s  ratio {image_f / image_s:.2f}x")
    print(f"--self-test wall time: frozen {st_f:.1f} s  source {st_s:.1f} s  ratio {st_f / st_s:.2f}x")
    return 0 if shown_f <= RATIO_BUDGET * shown_s else 1


if __name__ == "__main__":
    sys.exit(main())
