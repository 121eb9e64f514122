"""Inference benchmark (run by hand): ``python bench/inference_bench.py [--parts throughput,memory,cancel,cuda]``.

Every figure is printed next to a baseline measured in the same run:

* **throughput** — ``Runner.predict_dataset`` over the demo dataset (decoding PNGs on the loader
  thread, normalising, softmax statistics, numpy outputs), and the same feeding
  ``core.evaluation.evaluate``, against a bare ``model(batch)`` loop over the same images already
  decoded and normalised into tensors. Target: >= 0.85x the bare loop. Same model (the demo
  CompactUNet, or a stand-in of the same shape when the demo is not built), same images.
* **memory** — an 8192x8192 image through a tiny 21-class model with 512 px tiles, in a fresh
  subprocess; peak RSS (``VmHWM``, else ``resource.getrusage``, whose ``ru_maxrss`` can carry the
  forking parent's size across exec). Target: < 2 GiB (the full-size float32 logits
  alone would be 5.25 GiB).
* **cancel** — ``CancelToken.cancel()`` to ``Cancelled`` raised, demo model on the CPU, for a tiled
  2048x2048 image and for a dataset run with batches of 4. Target: <= 1 s. Baseline: the time of
  one tile / one batch forward.
* **cuda** (only with a CUDA device) — images/s of ``deeplabv3_resnet50`` (random weights) on
  520x520 images through ``predict_dataset``, float16 and float32, against the bare loop in the
  same precision.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from segstudio.core.io.classes import ClassTable  # noqa: E402
from segstudio.inference.registry import ModelEntry, resolve_model  # noqa: E402
from segstudio.inference.runner import Cancelled, CancelToken, Runner  # noqa: E402

GIB = 1 << 30


# -- shared helpers -------------------------------------------------------------------------------
def demo_entry() -> tuple[ModelEntry, str]:
    """The demo model, or a CompactUNet stand-in of the same size with random weights."""
    try:
        return resolve_model("demo"), "demo CompactUNet"
    except Exception:  # noqa: BLE001 - any reason the demo is absent: use the stand-in
        from segstudio.inference.unet import CompactUNet

        def loader(device, progress=None):
            torch.manual_seed(0)
            return CompactUNet(num_classes=4, base=16, depth=3).to(device).eval()

        entry = ModelEntry("stand-in", "semantic", ClassTable.generic(4), (0.05, 0.1, 0.12),
                           (0.05, 0.11, 0.16), "RGB", None, None, loader)
        return entry, "CompactUNet stand-in (random weights)"


def demo_dataset():
    from segstudio.core.io.datasets import open_dataset

    return open_dataset(REPO / "resources" / "demo")


class MemoryDataset(list):
    """A list of samples whose images are already decoded (for synthetic images)."""


class _ArraySample:
    def __init__(self, name, image):
        self.name, self.image, self.mask_path, self.instance_path = name, image, None, None

    def load_image(self):
        return self.image


def bare_tensors(runner: Runner, images, batch_size: int) -> list[torch.Tensor]:
    """Decoded images -> normalised input tensors on the device, grouped like the runner groups them."""
    from segstudio.inference import preprocess

    arrays = [preprocess.prepare(img, runner.entry) for img in images]
    batches, group = [], []
    for arr, img in zip(arrays, images):
        if group and (arr.shape != group[0][0].shape or len(group) == batch_size):
            batches.append(group)
            group = []
        group.append((arr, img))
    batches.append(group)
    return [runner._to_input([a for a, _ in g], g[0][1].dtype) for g in batches]


def bare_loop(model, tensors, half: bool) -> float:
    """Seconds for ``model(batch)`` over pre-loaded tensors (inference_mode, autocast when asked)."""
    context = torch.autocast("cuda", dtype=torch.float16) if half else torch.autocast("cpu", enabled=False)
    sync = torch.cuda.synchronize if tensors[0].is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.inference_mode(), context:
        for batch in tensors:
            out = model(batch)
            if isinstance(out, dict):
                out = out["out"]
    sync()
    return time.perf_counter() - start


def timed_dataset(runner: Runner, dataset, indices=None) -> float:
    start = time.perf_counter()
    for _ in runner.predict_dataset(dataset, indices=indices):
        pass
    if runner.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _wall_and_cpu(run) -> tuple[float, float]:
    """(wall seconds, process CPU seconds of all threads) of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


# -- parts ----------------------------------------------------------------------------------------
def part_throughput(repeats: int, chunk: int = 4) -> None:
    """Alternate short chunks of bare loop and pipeline so that load swings on this shared
    machine hit both alike; sum the times over all chunks."""
    from segstudio.core.evaluation.report import evaluate
    from segstudio.inference import preprocess

    entry, what = demo_entry()
    dataset = demo_dataset()
    images = [s.load_image() for s in dataset]
    print(f"\n[throughput] {what}, {len(images)} demo images "
          f"({len({i.shape for i in images})} sizes), CPU threads {torch.get_num_threads()}")
    # Sorted by size so that batches of 4 really are batches (predict_dataset batches neighbours).
    order = sorted(range(len(images)), key=lambda i: images[i].shape)
    for batch_size in (1, 4):
        runner = Runner(entry, device="cpu", batch_size=batch_size)
        bare_loop(runner.model, bare_tensors(runner, images[:1], 1), False)  # warm-up
        totals = {"bare": [0.0, 0.0], "predict": [0.0, 0.0], "evaluate": [0.0, 0.0]}
        for rep in range(repeats):
            for first in range(0, len(order), chunk):
                part = order[first:first + chunk]
                tensors = bare_tensors(runner, [images[i] for i in part], batch_size)
                jobs = [("bare", lambda: bare_loop(runner.model, tensors, False)),
                        ("predict", lambda: timed_dataset(runner, dataset, part)),
                        ("evaluate", lambda: evaluate(dataset, runner.predict_dataset(dataset, indices=part)))]
                if (rep + first // chunk) % 2:
                    jobs.reverse()  # alternate who goes first, against drift
                for name, job in jobs:
                    wall, cpu = _wall_and_cpu(job)
                    totals[name][0] += wall
                    totals[name][1] += cpu
        n = len(images) * repeats
        (b, bc), (o, oc), (f, fc) = totals["bare"], totals["predict"], totals["evaluate"]
        print(f"  batch {batch_size}: bare model(batch) loop {n / b:6.2f} img/s | predict_dataset "
              f"{n / o:6.2f} img/s = {b / o:.3f}x | evaluate(predict_dataset) {n / f:6.2f} img/s = "
              f"{b / f:.3f}x  (target >= 0.85x)")
        print(f"           process CPU per image: bare {1000 * bc / n:.0f} ms, predict_dataset "
              f"{1000 * oc / n:.0f} ms ({bc / oc:.3f}x), evaluate {1000 * fc / n:.0f} ms ({bc / fc:.3f}x)")
    # The pipeline's own work per image, each step timed alone (best of 5): what the ratio costs.
    runner = Runner(entry, device="cpu")
    img = images[0]
    arr = preprocess.prepare(img, entry)
    with torch.inference_mode():
        x = runner._to_input([arr], img.dtype)
        logits = runner._forward_semantic([arr], img.dtype)
        steps = {"decode PNG": lambda: dataset[0].load_image(),
                 "prepare": lambda: preprocess.prepare(img, entry),
                 "normalise": lambda: runner._to_input([arr], img.dtype),
                 "statistics": lambda: _post(logits[0], img.shape[:2]),
                 "forward (bare)": lambda: runner.model(x)}
        best = {k: min(_wall_and_cpu(f)[0] for _ in range(5)) * 1000 for k, f in steps.items()}
    overhead = sum(v for k, v in best.items() if k != "forward (bare)")
    print("  per image, best of 5: " + ", ".join(f"{k} {v:.1f} ms" for k, v in best.items())
          + f" -> pipeline overhead {overhead:.1f} ms = {overhead / best['forward (bare)']:.1%} of the forward")


def _post(logits, shape):
    from segstudio.inference.tiling import Outputs, write_resized

    out = Outputs(shape[0], shape[1], logits.shape[0])
    write_resized(logits, out, size=(shape[1], shape[0]))


def memory_child(size: int, tile: int) -> None:
    """Runs in a fresh process: predict a size x size image with a 21-class model; print JSON."""
    import resource

    from torch import nn

    def rss_gib() -> float:
        """Peak RSS. ru_maxrss survives exec (it can carry the forking parent's size), so prefer the
        kernel's VmHWM of this address space where /proc has it."""
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
        try:
            with open("/proc/self/status") as fh:
                hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
            return hwm * 1024 / GIB
        except (OSError, StopIteration, ValueError):
            return peak

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 21, 1)).eval()
    entry = ModelEntry("tiny21", "semantic", ClassTable.generic(21), (0.5,) * 3, (0.25,) * 3, "RGB", None, None,
                       lambda device, progress=None: net.to(device))
    runner = Runner(entry, device="cpu", tile_size=tile, overlap=64, batch_size=1)
    ramp = np.linspace(0, 255, size, dtype=np.float32).astype(np.uint8)
    image = np.empty((size, size, 3), np.uint8)
    image[:, :, 0] = ramp[None, :]
    image[:, :, 1] = ramp[:, None]
    image[:, :, 2] = 128
    before = rss_gib()
    start = time.perf_counter()
    tiles = []
    prediction = runner.predict(image, progress=lambda d, t: tiles.append(t))
    seconds = time.perf_counter() - start
    outputs = (prediction.mask.nbytes + prediction.confidence.nbytes + prediction.entropy.nbytes) / GIB
    print(json.dumps({"peak_gib": rss_gib(), "before_gib": before, "seconds": seconds, "tiles": tiles[-1],
                      "outputs_gib": outputs, "classes_seen": int(prediction.mask.max()) + 1}))


def part_memory(size: int, tile: int) -> None:
    print(f"\n[memory] {size}x{size} image, 21-class 3-layer model, {tile} px tiles, overlap 64 (subprocess)")
    done = subprocess.run([sys.executable, __file__, "--memory-child", str(size), "--tile", str(tile)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print("  child failed:", done.stderr.strip()[-2000:])
        return
    r = json.loads(done.stdout.strip().splitlines()[-1])
    naive = 21 * size * size * 4 / GIB
    print(f"  peak RSS {r['peak_gib']:.2f} GiB (target < 2 GiB; {r['before_gib']:.2f} GiB before predicting, "
          f"{r['outputs_gib']:.2f} GiB of result arrays) in {r['seconds']:.1f} s over {r['tiles']} tiles")
    print(f"  baseline: full-size float32 logits alone would be {naive:.2f} GiB -> peak is "
          f"{r['peak_gib'] / naive:.2f}x that")


def part_cancel(repeats: int) -> None:
    entry, what = demo_entry()
    print(f"\n[cancel] {what} on the CPU")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (2048, 2048, 3), dtype=np.uint8)
    runner = Runner(entry, device="cpu", tile_size=512, overlap=64)
    tile_times, latencies = [], []
    for _ in range(repeats):
        token = CancelToken()
        stamps = []

        def progress(done, total, token=token, stamps=stamps):
            stamps.append(time.perf_counter())
            if done == 2:  # cancel from another thread while tile 3 is in flight
                threading.Timer(0.05, lambda: (stamps.append(("cancel", time.perf_counter())), token.cancel())).start()

        try:
            runner.predict(image, cancel=token, progress=progress)
        except Cancelled:
            stopped = time.perf_counter()
        cancel_at = next(s[1] for s in stamps if isinstance(s, tuple))
        latencies.append(stopped - cancel_at)
        tile_times.append(stamps[1] - stamps[0])
    print(f"  tiled 2048x2048: cancel -> Cancelled max {max(latencies):.3f} s, median "
          f"{statistics.median(latencies):.3f} s (target <= 1 s); one 512 px tile forward "
          f"{statistics.median(tile_times):.3f} s (baseline)")

    dataset = demo_dataset()
    runner = Runner(entry, device="cpu", batch_size=4)
    latencies, batch_times = [], []
    for _ in range(repeats):
        token = CancelToken()
        marks = {}

        def progress(done, total, token=token, marks=marks):
            marks.setdefault("first", time.perf_counter())
            if done >= 4 and "cancel" not in marks:
                def fire():
                    marks["cancel"] = time.perf_counter()
                    token.cancel()
                threading.Timer(0.05, fire).start()
            elif "second" not in marks and done >= 8:
                marks["second"] = time.perf_counter()

        start = time.perf_counter()
        try:
            for _ in runner.predict_dataset(dataset, cancel=token, progress=progress):
                pass
        except Cancelled:
            stopped = time.perf_counter()
        latencies.append(stopped - marks["cancel"])
        batch_times.append(marks["first"] - start)
    print(f"  dataset, batches of 4: cancel -> Cancelled max {max(latencies):.3f} s (target <= 1 s); "
          f"first batch incl. loading {statistics.median(batch_times):.3f} s (baseline)")


def part_cuda(count: int, repeats: int) -> None:
    if not torch.cuda.is_available():
        print("\n[cuda] skipped: no CUDA device")
        return
    from segstudio.inference.architectures import get_architecture
    from segstudio.inference.devices import gpu_report

    print(f"\n[cuda] {gpu_report()['summary']}")
    arch = get_architecture("torchvision.deeplabv3_resnet50")

    def loader(device, progress=None):
        torch.manual_seed(0)
        return arch.build(21, {"aux_loss": False}).to(device).eval()

    entry = ModelEntry("deeplabv3_resnet50 (random)", "semantic", ClassTable.voc(), (0.485, 0.456, 0.406),
                       (0.229, 0.224, 0.225), "RGB", None, None, loader)
    rng = np.random.default_rng(0)
    dataset = MemoryDataset(_ArraySample(f"img{i}", rng.integers(0, 255, (520, 520, 3), dtype=np.uint8))
                            for i in range(count))
    images = [s.image for s in dataset]
    for precision in ("float16", "float32"):
        for batch_size in (1, 8):
            runner = Runner(entry, device="cuda", batch_size=batch_size, precision=precision)
            tensors = bare_tensors(runner, images, batch_size)
            bare_loop(runner.model, tensors[:2], runner.half)
            timed_dataset(runner, MemoryDataset(dataset[:2 * batch_size]))  # warm-up (cudnn autotune)
            bare = min(bare_loop(runner.model, tensors, runner.half) for _ in range(repeats))
            ours = min(timed_dataset(runner, dataset) for _ in range(repeats))
            print(f"  {precision} batch {batch_size}: bare loop {count / bare:7.1f} img/s | predict_dataset "
                  f"{count / ours:7.1f} img/s = {bare / ours:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="throughput,memory,cancel,cuda")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=8192, help="side of the memory test image")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--cuda-images", type=int, default=64)
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.tile)
        return
    parts = set(args.parts.split(","))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    if "throughput" in parts:
        part_throughput(args.repeats)
    if "memory" in parts:
        part_memory(args.size, args.tile)
    if "cancel" in parts:
        part_cancel(args.repeats)
    if "cuda" in parts:
        part_cuda(args.cuda_images, args.repeats)


if __name__ == "__main__":
    main()
