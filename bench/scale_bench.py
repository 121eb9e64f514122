"""Scaling bench (issue 15): the local engine against Ray with 1, 2, ... workers, in one run.

    python bench/scale_bench.py            # 2,000 generated 256x256 images, demo model (the issue's figures)
    python bench/scale_bench.py --quick    # 40 images: a smoke run of the same steps (~1 min)
    python bench/scale_bench.py --images 500 --max-workers 4

Every run uses one torch thread per worker (and the local engine one thread too), so 1 Ray worker
does exactly the local engine's compute and the ratio between them is Ray's overhead; K workers use
K cores. Ray is started once before the timings (a cluster is normally already up) and its start is
reported apart, with a first small job (Ray Data's executor warming up). Each timing includes
starting the workers and loading the model in each.

Figures, as ratios against the local engine measured in the same run:
  model evaluate: ray(1 worker) / local        (target <= 1.3)
                  efficiency(K) = t(1) / (K * t(K))  (target >= 0.8 for K = 2 with 2 free cores)
  folder evaluate (no model): images/s per worker (target >= 2,000 for 256x256 masks); also the
                  per-image path alone, in this process on one thread (ground truth written by
                  OpenCV with its default PNG filters, predictions as ``segstudio predict`` writes them)
  peak memory per worker (MiB)
Every Ray report is also checked equal, byte for byte, to the local engine's.

On two cores the full run takes ~8 min on a quiet machine (3 x 2,000 single-thread forward passes of
the demo model at ~70-90 ms, plus the folder runs).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_measure import peak_rss_mb  # noqa: E402
from segstudio.core.io.masks import write_index_png  # noqa: E402


def make_dataset(root: Path, count: int, size: int, seed: int = 0) -> tuple[Path, Path]:
    """``count`` nuclei-like images with ground truth (the demo's 4 classes) and a predictions folder."""
    rng = np.random.default_rng(seed)
    ds, pred = root / "ds", root / "pred"
    for folder in (ds / "images", ds / "masks", pred):
        folder.mkdir(parents=True)
    shutil.copy(REPO / "resources" / "demo" / "classes.json", ds / "classes.json")
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        gt = np.zeros((size, size), np.uint8)
        image = rng.normal(12, 4, (size, size, 3)).clip(0, 255)
        for _ in range(int(rng.integers(4, 12))):
            cy, cx = rng.integers(0, size, 2)
            r = int(rng.integers(6, max(8, size // 10)))
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            cls = int(rng.integers(1, 4))
            gt[disc] = cls
            image[disc] = (40 + 30 * cls, 60 + 20 * cls, 90)
        predicted = gt.copy()
        predicted[rng.random(gt.shape) < 0.02] = 0
        name = f"img{i:05d}"
        cv2.imwrite(str(ds / "images" / f"{name}.png"), image.astype(np.uint8)[:, :, ::-1])
        cv2.imwrite(str(ds / "masks" / f"{name}.png"), gt)
        write_index_png(pred / f"{name}.png", predicted)  # as ``segstudio predict`` writes them
    return ds, pred


def folder_path_rate(ds: Path, pred: Path) -> tuple[float, float]:
    """Images/s of the local folder-evaluate path in this process, one thread: (CPU time, wall)."""
    from segstudio.core.evaluation.report import evaluate
    from segstudio.core.io.datasets import open_dataset

    cv2.setNumThreads(1)
    dataset = open_dataset(ds)
    evaluate(dataset, pred)  # warm the page cache and the imports
    best_cpu = best_wall = float("inf")
    for _ in range(3):
        cpu, wall = time.process_time(), time.perf_counter()
        report = evaluate(dataset, pred)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    n = len(report["images"])
    return n / best_cpu, n / best_wall


def run_cli(argv: list[str]) -> tuple[float, int]:
    """``segstudio`` in this process, output swallowed; (seconds, exit code)."""
    from segstudio.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    return time.perf_counter() - start, code


def run_ray(argv: list[str], workers: int, report: Path, local: Path) -> tuple[float, float, float]:
    """One Ray run (1 CPU, hence 1 torch thread, per worker); (seconds, peak MiB per worker, images/s
    per worker once the workers are up: first result batch to last)."""
    import segstudio.distributed.ray_engine as engine

    info: dict = {}
    original = engine.evaluate_on_ray

    def with_info(*args, **kwargs):
        return original(*args, **kwargs, info=info)

    engine.evaluate_on_ray = with_info
    try:
        seconds, code = run_cli(argv + ["--engine", "ray", "--workers", str(workers),
                                        "--cpus-per-worker", "1", "--report", str(report)])
    finally:
        engine.evaluate_on_ray = original
    assert code == 0, f"ray run exited {code}"
    if report.read_bytes() != local.read_bytes():
        raise SystemExit(f"{report.name}: the Ray report differs from the local engine's")
    first_at, first_rows = info.get("first_batch", (0.0, 0))
    span = info.get("last_batch_at", 0.0) - first_at
    count = json.loads(report.read_text())
    count = len(count["images"])
    steady = (count - first_rows) / (workers * span) if span > 0 and count > first_rows else float("nan")
    return seconds, info.get("worker_peak_rss_mib", 0.0), steady


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 images: a smoke run")
    parser.add_argument("--images", type=int, default=None, help="number of images (default 2000)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1,
                        help="most Ray workers (default: the machine's cores)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    count = args.images or (40 if args.quick else 2000)
    cores = os.cpu_count() or 1
    workers_list = list(range(1, max(1, args.max_workers) + 1))

    import ray
    import torch

    torch.set_num_threads(1)      # the local engine: one thread, as each Ray worker
    root = Path(tempfile.mkdtemp(prefix="scale_bench_"))
    figures: dict = {"images": count, "size": args.size, "cores": cores}
    try:
        start = time.perf_counter()
        ds, pred = make_dataset(root, count, args.size)
        print(f"generated {count} images of {args.size}x{args.size} in {time.perf_counter() - start:.1f} s")
        cpu_rate, wall_rate = folder_path_rate(ds, pred)
        figures["folder_path"] = {"img_s_cpu": cpu_rate, "img_s_wall": wall_rate}
        print(f"folder evaluate path in-process, 1 thread: {cpu_rate:.0f} img/s of CPU time "
              f"({wall_rate:.0f} img/s wall)")
        start = time.perf_counter()
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=max(cores, args.max_workers), include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
        # Ray Data's first job in a process pays for its executor and imports: a warm-up job on the
        # folder, not timed, as on a cluster that already ran one.
        run_cli(["evaluate", "--dataset", str(ds), "--predictions", str(pred), "--engine", "ray",
                 "--workers", "1", "--shard", f"0/{max(1, count // 8)}"])
        figures["ray_start_s"] = time.perf_counter() - start
        print(f"Ray started and warmed up in {figures['ray_start_s']:.1f} s (not counted below)")

        model = ["evaluate", "--dataset", str(ds), "--model", "demo", "--device", "cpu"]
        local_report = root / "local_model.json"
        t_local, code = run_cli(model + ["--report", str(local_report)])
        assert code == 0, f"local run exited {code}"
        print(f"model evaluate, local engine (1 thread): {t_local:.1f} s ({count / t_local:.1f} img/s); "
              f"driver peak RSS {peak_rss_mb():.0f} MiB")
        times, peaks = {}, {}
        for k in workers_list:
            times[k], peaks[k], _ = run_ray(model, k, root / f"ray{k}_model.json", local_report)
            print(f"model evaluate, ray {k} worker(s): {times[k]:.1f} s ({count / times[k]:.1f} img/s), "
                  f"peak memory per worker {peaks[k]:.0f} MiB")
        figures["model"] = {"local_s": t_local, "ray_s": times, "peak_mib_per_worker": peaks,
                            "ray1_over_local": times[1] / t_local,
                            "efficiency": {k: times[1] / (k * times[k]) for k in workers_list}}

        folder = ["evaluate", "--dataset", str(ds), "--predictions", str(pred)]
        local_folder = root / "local_folder.json"
        t_folder, code = run_cli(folder + ["--report", str(local_folder)])
        assert code == 0
        runs = {k: run_ray(folder, k, root / f"ray{k}_folder.json", local_folder) for k in workers_list}
        folder_times = {k: r[0] for k, r in runs.items()}
        figures["folder"] = {"local_s": t_folder, "local_img_s": count / t_folder, "ray_s": folder_times,
                             "img_s_per_worker": {k: count / (k * t) for k, t in folder_times.items()},
                             "steady_img_s_per_worker": {k: r[2] for k, r in runs.items()}}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    m, f = figures["model"], figures["folder"]
    print()
    print(f"ratios ({count} images of {args.size}^2, demo model, CPU, {cores} cores)")
    print(f"  ray 1 worker / local engine            {m['ray1_over_local']:.2f}x   (target <= 1.3)")
    for k in workers_list[1:]:
        target = "   (target >= 0.8)" if k == 2 and cores >= 2 else ""
        print(f"  scaling efficiency, {k} workers          {m['efficiency'][k]:.2f}{target}")
    fp = figures["folder_path"]
    print(f"  folder evaluate path, 1 process/thread  {fp['img_s_cpu']:.0f} img/s of CPU time "
          f"({fp['img_s_cpu'] / 2000:.2f}x the 2,000 target), {fp['img_s_wall']:.0f} wall")
    print(f"  folder evaluate, local engine           {f['local_img_s']:.0f} img/s (CLI, with start-up)")
    for k in workers_list:
        print(f"  folder evaluate, ray {k} worker(s)       {f['img_s_per_worker'][k]:.0f} img/s per worker "
              f"with start-up ({f['img_s_per_worker'][k] / f['local_img_s']:.2f}x local), "
              f"{f['steady_img_s_per_worker'][k]:.0f} once up   (target >= 2000)")
    for k in workers_list:
        print(f"  peak memory per worker, {k} worker(s)    {m['peak_mib_per_worker'][k]:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
