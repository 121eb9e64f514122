"""Editing benchmark (run by hand): ``python bench/edit_bench.py [--dabs N] [--no-canvas]``.

A 4096x4096 image with 21 classes, ground truth, prediction and error map in an ``ImageDocument``.
Measures, each against its target and, for the dab, as a ratio to the full recompute in the same run:

* one radius-32 dab as a whole stroke: paint + undo atom + incremental confusion matrix + error-map
  update (+ the canvas's ``update_layer_region`` for the gt and error layers when the Qt canvas is
  importable; the forced repaint of the viewport is reported beside it);
* the full recompute it replaces: ``ConfusionMatrix.update`` + ``error_codes`` over the whole image;
* the memory of 1,000 single-dab strokes in the undo history (tracemalloc and the budget's count);
* a flood fill of a quarter-image region;
* saving the 4096x4096 mask: palette PNG (OpenCV + source PLTE) vs Pillow's palette writer, index PNG.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from segstudio.core.evaluation import errormap  # noqa: E402
from segstudio.core.io.classes import ClassTable  # noqa: E402
from segstudio.core.editing.document import ImageDocument  # noqa: E402
from segstudio.core.editing.history import HistoryBudget  # noqa: E402
from segstudio.core.io.masks import write_index_png, write_palette_png  # noqa: E402
from segstudio.core.evaluation.metrics import ConfusionMatrix  # noqa: E402
from segstudio.core.io.saving import write_palette_png_like  # noqa: E402
from segstudio.core.editing.store import ProjectStore  # noqa: E402

SIZE, CLASSES, RADIUS = 4096, 21, 32


def make_masks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    gt = cv2.resize(rng.integers(0, CLASSES, (48, 48)).astype(np.uint8), (SIZE, SIZE),
                    interpolation=cv2.INTER_NEAREST)
    for _ in range(400):
        cv2.circle(gt, (int(rng.integers(0, SIZE)), int(rng.integers(0, SIZE))), int(rng.integers(8, 120)),
                   int(rng.integers(0, CLASSES)), -1)
    gt[rng.random((SIZE, SIZE)) < 0.002] = 255
    gt[: SIZE // 2 + 1, : SIZE // 2 + 1] = 255  # a quarter-image region for the flood fill, fenced
    gt[: SIZE // 2, : SIZE // 2] = 7
    pred = gt.copy()
    for _ in range(600):
        cv2.circle(pred, (int(rng.integers(0, SIZE)), int(rng.integers(0, SIZE))), int(rng.integers(8, 90)),
                   int(rng.integers(0, CLASSES)), -1)
    return gt, pred


def stats(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def dab_strokes(doc: ImageDocument, rng: np.random.Generator, n: int) -> list[float]:
    times = []
    margin = RADIUS + 1
    for i in range(n):
        x, y = rng.uniform(margin, SIZE - margin, 2)
        t0 = time.perf_counter()
        doc.begin_stroke(int(i % CLASSES))
        doc.paint_dab(x, y, RADIUS)
        doc.commit_stroke()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def make_canvas(doc: ImageDocument):
    """An offscreen CanvasView bound to the document, or None when the Qt canvas is unavailable."""
    try:
        from PySide6.QtWidgets import QApplication

        from segstudio.ui.canvas import CanvasView
    except ImportError as exc:
        print(f"canvas: not available ({exc}); dab timed without the canvas update")
        return None, None
    app = QApplication.instance() or QApplication([])
    view = CanvasView()
    view.resize(1920, 1080)
    view.set_image(np.zeros((SIZE, SIZE), np.uint8))
    view.set_layer("gt", doc.gt, doc.class_table.lut(256))
    view.set_layer("errors", doc.error_codes, errormap.ERROR_COLORS)
    view.show()
    app.processEvents()

    def on_event(event):
        if event.kind == "gt" and event.bbox is not None:
            view.update_layer_region("gt", *event.bbox)
            view.update_layer_region("errors", *event.bbox)

    doc.subscribe(on_event)
    return app, view


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dabs", type=int, default=300)
    parser.add_argument("--no-canvas", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    table = ClassTable.generic(CLASSES)
    gt, pred = make_masks(rng)
    doc = ImageDocument("bench", np.zeros((SIZE, SIZE), np.uint8), table, gt.copy(), pred,
                        budget=HistoryBudget())

    # Baseline: what a non-incremental editor redoes after every dab.
    def full_recompute():
        cm = ConfusionMatrix(CLASSES, 255)
        cm.update(doc.gt, doc.pred)
        errormap.error_codes(doc.gt, doc.pred, ignore_index=255)

    full = statistics.median(timed(full_recompute, 5))
    dab_times = dab_strokes(doc, rng, args.dabs)
    med, p95 = stats(dab_times)
    print(f"image {SIZE}x{SIZE}, {CLASSES} classes, radius {RADIUS}")
    print(f"full recompute (confusion + error map)  median {full:8.2f} ms")
    print(f"dab stroke (core only)                  median {med:8.3f} ms  p95 {p95:7.3f} ms  "
          f"-> {full / med:6.1f}x faster   [target <= 8 / 16 ms, >= 20x]")

    app, view = (None, None) if args.no_canvas else make_canvas(doc)
    if view is not None:
        med_c, p95_c = stats(dab_strokes(doc, rng, args.dabs))
        print(f"dab stroke + canvas update_layer_region median {med_c:8.3f} ms  p95 {p95_c:7.3f} ms  "
              f"-> {full / med_c:6.1f}x faster   [target <= 8 / 16 ms, >= 20x]")

        def dab_and_paint():
            x, y = rng.uniform(1700, 2300, 2)
            doc.begin_stroke(int(rng.integers(0, CLASSES)))
            doc.paint_dab(x, y, RADIUS)
            doc.commit_stroke()
            view.viewport().repaint()

        med_f, p95_f = stats(timed(dab_and_paint, 60))
        view.zoom_actual()
        view.centerOn(2000, 2000)
        app.processEvents()
        med_a, p95_a = stats(timed(dab_and_paint, 60))
        print(f"  ... plus a forced synchronous viewport repaint: fit view median {med_f:6.2f} ms "
              f"p95 {p95_f:6.2f} ms; 1:1 median {med_a:6.2f} ms p95 {p95_a:6.2f} ms (1920x1080)")

    # Drag: the cost per mouse-move event of a stroke with 12 px between events.
    doc.begin_stroke(3)
    doc.paint_dab(500, 500, RADIUS)
    pts = [(500 + 12 * i, 500 + 5 * i) for i in range(1, 200)]
    drag = []
    for x, y in pts:
        t0 = time.perf_counter()
        doc.paint_to(x, y, RADIUS)
        drag.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    doc.commit_stroke()
    commit_ms = (time.perf_counter() - t0) * 1000
    dm, dp = stats(drag)
    print(f"drag, per mouse event (12 px apart)     median {dm:8.3f} ms  p95 {dp:7.3f} ms; commit of the "
          f"{len(pts)}-event stroke {commit_ms:.1f} ms")

    # Metrics stay exact.
    check = ConfusionMatrix(CLASSES, 255)
    check.update(doc.gt, doc.pred)
    assert check == doc.confusion, "incremental confusion matrix drifted"
    assert np.array_equal(errormap.error_codes(doc.gt, doc.pred, ignore_index=255), doc.error_codes)
    print("incremental confusion matrix and error map equal the full recompute: yes")

    # Undo history memory of 1,000 dabs.
    mem_doc = ImageDocument("mem", doc.image, table, gt.copy(), pred, budget=HistoryBudget())
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    dab_strokes(mem_doc, rng, 1000)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"1000 dab strokes in the undo history: {used / 2**20:6.2f} MB allocated (tracemalloc), "
          f"{mem_doc.history.nbytes / 2**20:6.2f} MB by the budget's count   [target <= 50 MB]")
    del mem_doc

    # Flood fill of a quarter-image region.
    fill_doc = ImageDocument("fill", doc.image, table, gt.copy(), pred, budget=HistoryBudget())
    fills = []
    for value in (3, 7, 3, 7, 3):
        t0 = time.perf_counter()
        atom = fill_doc.fill(100, 100, value)
        fills.append((time.perf_counter() - t0) * 1000)
        assert atom is not None and atom.count == (SIZE // 2) ** 2
    print(f"flood fill of a {SIZE // 2}x{SIZE // 2} region   median {statistics.median(fills):8.2f} ms   "
          f"[target <= 150 ms]")

    # Saving the 4096x4096 mask.
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "source.png"
        write_palette_png(src, gt[:8, :8], table)
        ours = statistics.median(timed(lambda: write_palette_png_like(Path(tmp) / "a.png", doc.gt, src), 5))
        pillow = statistics.median(timed(lambda: write_palette_png(Path(tmp) / "b.png", doc.gt, table), 5))
        index = statistics.median(timed(lambda: write_index_png(Path(tmp) / "c.png", doc.gt), 5))
        size_ours = (Path(tmp) / "a.png").stat().st_size
        size_pil = (Path(tmp) / "b.png").stat().st_size
        print(f"save palette PNG (OpenCV + source PLTE) median {ours:8.2f} ms ({size_ours / 1024:.0f} kB)"
              f"   [target <= 300 ms]")
        print(f"save palette PNG (Pillow, level 1)      median {pillow:8.2f} ms ({size_pil / 1024:.0f} kB)"
              f"  -> ours {pillow / ours:.1f}x faster")
        print(f"save index PNG (OpenCV)                 median {index:8.2f} ms   [target <= 300 ms]")
        with ProjectStore(Path(tmp) / "p.sqlite") as store:
            jdoc = ImageDocument("j", doc.image, table, gt.copy(), pred, budget=HistoryBudget(), journal=store)
            jt = dab_strokes(jdoc, rng, 100)
            jm, jp = stats(jt)
            print(f"dab stroke with the SQLite journal      median {jm:8.3f} ms  p95 {jp:7.3f} ms")
    if view is not None:
        view.close()
        view.deleteLater()
        app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
