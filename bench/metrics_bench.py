"""Hand-run benchmark of the metrics hot paths, as ratios against baselines measured in the same run.

    python bench/metrics_bench.py [--size 4096] [--repeats 7]

Rows:
  full update      ConfusionMatrix.update vs the torchvision reference formula   (target >= 2x)
                   and vs torchmetrics MulticlassJaccardIndex on CPU             (target >= 3x)
  radius-32 dab    ConfusionMatrix.apply_edit on one brush dab vs a full update  (target >= 200x)
  dataset listing  open_dataset on a 10,000-image folder dataset                  (target <= 1 s)

Every figure is the median of several repeats on the same arrays.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segstudio.core.io.datasets import open_dataset  # noqa: E402
from segstudio.core.evaluation.metrics import ConfusionMatrix  # noqa: E402

NUM_CLASSES = 21
IGNORE = 255


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_pair(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Blocky labels with noise look more like real masks than i.i.d. pixels (and are no easier:
    # every path here is data-independent).
    coarse = rng.integers(0, NUM_CLASSES, (size // 16, size // 16), dtype=np.uint8)
    gt = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_NEAREST)
    pred = gt.copy()
    noise = rng.random((size, size)) < 0.2
    pred[noise] = rng.integers(0, NUM_CLASSES, int(noise.sum()), dtype=np.uint8)
    gt[rng.random((size, size)) < 0.05] = IGNORE
    return gt, pred


def torchvision_formula(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """The confusion matrix of torchvision's segmentation reference scripts (utils.ConfusionMatrix)."""
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(np.int64) + b[k], minlength=n * n).reshape(n, n)


def bench_full(gt, pred, repeats):
    cm = ConfusionMatrix(NUM_CLASSES, IGNORE)

    def ours():
        cm.reset()
        cm.update(gt, pred)

    ours()
    reference = torchvision_formula(gt, pred, NUM_CLASSES)
    assert np.array_equal(cm.matrix, reference), "fast path disagrees with the reference formula"
    t_ours = median_time(ours, repeats)
    t_tv = median_time(lambda: torchvision_formula(gt, pred, NUM_CLASSES), repeats)
    rows = [("full update vs torchvision formula", t_ours, t_tv, 2.0)]
    try:
        import torch
        from torchmetrics.classification import MulticlassJaccardIndex
    except ImportError:
        print("torchmetrics not installed: torchmetrics row skipped")
        return rows, t_ours
    metric = MulticlassJaccardIndex(num_classes=NUM_CLASSES, ignore_index=IGNORE, average=None)
    t_gt, t_pred = torch.from_numpy(gt), torch.from_numpy(pred)  # zero-copy; uint8 is its fastest input

    def tm():
        metric.reset()
        metric.update(t_pred, t_gt)
        return metric.compute()

    iou = tm().numpy()
    present = cm.present()
    assert np.allclose(iou[present], cm.iou()[present], atol=1e-6), "torchmetrics disagrees"
    t_tm = median_time(tm, max(3, repeats // 2))
    rows.append(("full update vs torchmetrics Jaccard", t_ours, t_tm, 3.0))
    return rows, t_ours


def bench_dab(gt, pred, t_full, repeats, radius=32, dabs=200):
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = yy * yy + xx * xx <= radius * radius
    d = 2 * radius + 1
    rng = np.random.default_rng(1)
    origins = rng.integers(0, gt.shape[0] - d, (dabs, 2))
    values = rng.integers(0, NUM_CLASSES, dabs).astype(np.uint8)
    cm = ConfusionMatrix(NUM_CLASSES, IGNORE)
    cm.update(gt, pred)
    work = gt.copy()

    def paint():
        # What the editor does per dab: gather old values under the footprint, write, update metrics.
        for (y, x), v in zip(origins, values):
            box = (slice(y, y + d), slice(x, x + d))
            old = work[box][disk]
            p = pred[box][disk]
            work[box][disk] = v
            cm.apply_edit(old, work[box][disk], p, p)

    t = median_time(paint, repeats) / dabs
    check = ConfusionMatrix(NUM_CLASSES, IGNORE)
    check.update(work, pred)
    assert check == cm, "incremental matrix drifted from a full recompute"
    return [(f"radius-{radius} dab ({int(disk.sum())} px) vs full update", t, t_full, 200.0)]


def bench_listing(n=10_000):
    ok, png = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    data = png.tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "masks").mkdir()
        for i in range(n):
            (root / "images" / f"{i:05d}.png").write_bytes(data)
            (root / "masks" / f"{i:05d}.png").write_bytes(data)
        count = len(open_dataset(root))
        t = median_time(lambda: open_dataset(root), 3)
    return count, t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-listing", action="store_true")
    args = parser.parse_args(argv)

    gt, pred = make_pair(args.size)
    print(f"{args.size}x{args.size} uint8, {NUM_CLASSES} classes, "
          f"{np.mean(gt == IGNORE):.1%} ignored; OpenCV threads: {cv2.getNumThreads()}; "
          f"median of {args.repeats}\n")
    rows, t_full = bench_full(gt, pred, args.repeats)
    rows += bench_dab(gt, pred, t_full, args.repeats)

    print(f"{'case':46s} {'ours':>10s} {'baseline':>10s} {'ratio':>8s} {'target':>8s}  ok")
    failed = False
    for name, ours, base, target in rows:
        ratio = base / ours
        passed = ratio >= target
        failed |= not passed
        print(f"{name:46s} {fmt(ours):>10s} {fmt(base):>10s} {ratio:7.1f}x {target:7.0f}x  "
              f"{'yes' if passed else 'NO'}")
    if not args.skip_listing:
        count, t = bench_listing()
        passed = t <= 1.0 and count == 10_000
        failed |= not passed
        print(f"{'open_dataset, 10,000-image folder (' + str(count) + ' samples)':46s} {fmt(t):>10s} "
              f"{'':>10s} {'':>8s} {'<= 1 s':>8s}  {'yes' if passed else 'NO'}")
    return 1 if failed else 0


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


if __name__ == "__main__":
    sys.exit(main())
