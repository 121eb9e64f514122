"""Canvas redraw benchmark (run by hand): ``python bench/canvas_bench.py [--frames N]``.

A 1920x1080 viewport over a 4096x4096 RGB image with three overlay layers (class map, error codes,
confidence heat map). Measures the median time of a full viewport redraw, at fit, at 1:1 and while
panning at 1:1, at zooms 0.5-0.9 (drawn from composite tiles, see ``canvas_layers.LayerCompositor``)
and while zooming by a wheel notch per frame (every composite redrawn), and at 3, against a naive
baseline measured in the same run: every frame converts the full resolution layers to ARGB QImages
and draws them scaled (what a non-tiled canvas does).
Timings on a shared machine swing with its load; compare ratios from one run, and the "best" column.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtGui import QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from segstudio.core.display.render import heat_lut, instance_lut  # noqa: E402
from segstudio.ui.canvas import CanvasView  # noqa: E402  (guards the PySide6 None-refcount leak)
from segstudio.ui.canvas_layers import color_table  # noqa: E402

SIZE, VIEW_W, VIEW_H = 4096, 1920, 1080


def make_data(rng: np.random.Generator):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[..., 0] = (xx // 7) % 256
    image[..., 1] = (yy // 5) % 256
    image[..., 2] = rng.integers(0, 64, (SIZE, SIZE), dtype=np.uint8)
    classes = (((xx // 300) + (yy // 230)) % 12).astype(np.uint8)
    errors = np.where(((xx // 64) + (yy // 64)) % 5 == 0, (xx // 64) % 5, 0).astype(np.uint8)
    confidence = ((np.sin(xx / 200.0) * np.cos(yy / 170.0) + 1) * 127).astype(np.uint8)
    overlays = [("gt", classes, instance_lut(256, alpha=255), 0.5),
                ("errors", errors, instance_lut(256, alpha=255), 0.6),
                ("confidence", confidence, heat_lut("viridis"), 0.3)]
    return image, overlays


def time_frames(draw, frames: int) -> list[float]:
    times = []
    for i in range(frames):
        t0 = time.perf_counter()
        draw(i)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def naive_frame(image, overlays, zoom: float, target: QImage) -> None:
    """Full-resolution ARGB conversion of every layer, every frame, drawn with one transform."""
    painter = QPainter(target)
    painter.scale(zoom, zoom)
    rgb = QImage(image, SIZE, SIZE, image.strides[0], QImage.Format.Format_RGB888)
    painter.drawImage(0, 0, rgb.convertToFormat(QImage.Format.Format_RGB32))
    for _, labels, lut, opacity in overlays:
        indexed = QImage(labels, SIZE, SIZE, labels.strides[0], QImage.Format.Format_Indexed8)
        indexed.setColorTable(color_table(lut))
        painter.setOpacity(opacity)
        painter.drawImage(0, 0, indexed.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied))
    painter.end()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    image, overlays = make_data(np.random.default_rng(0))
    canvas = CanvasView()
    canvas.resize(VIEW_W, VIEW_H)
    canvas.show()
    app.processEvents()
    canvas.set_image(image)
    for name, labels, lut, opacity in overlays:
        canvas.set_layer(name, labels, lut, opacity=opacity)
    target = QImage(VIEW_W, VIEW_H, QImage.Format.Format_ARGB32_Premultiplied)

    def redraw(_):
        canvas.viewport().repaint()

    def pan(i):
        canvas.horizontalScrollBar().setValue(canvas.horizontalScrollBar().value() + (40 if i % 40 < 20 else -40))
        canvas.viewport().repaint()

    def zoom_step(i):  # a wheel notch per frame: every frame at a zoom it was not drawn at before
        canvas.zoom_by(1 / 1.25 if i % 2 == 0 else 1.25)
        canvas.viewport().repaint()

    results = {}
    canvas.fit_to_window()
    redraw(0)  # first frame fills the tile cache
    results["fit, cached tiles"] = time_frames(redraw, args.frames)
    canvas.zoom_actual()
    redraw(0)
    results["1:1, cached tiles"] = time_frames(redraw, args.frames)
    results["1:1, panning (40 px/frame)"] = time_frames(pan, args.frames)
    for zoom in (0.5, 0.6, 0.8, 0.9, 3.0):
        canvas.zoom_by(zoom / canvas.zoom())
        redraw(0)
        results[f"zoom {zoom}, cached tiles"] = time_frames(redraw, args.frames)
        if zoom == 0.8:
            results["zoom 0.8, panning (40 px/frame)"] = time_frames(pan, args.frames)
            results["zooming 0.8 <-> 0.64 each frame"] = time_frames(zoom_step, args.frames)
    canvas.zoom_actual()
    canvas.tile_cache.clear()
    canvas.tile_cache.max_bytes = 0  # every frame re-renders its tiles: the worst case
    results["1:1, no cache (cold tiles)"] = time_frames(redraw, max(5, args.frames // 3))
    zoom = canvas.fit_zoom()
    naive = time_frames(lambda _: naive_frame(image, overlays, zoom, target), max(5, args.frames // 3))
    base = statistics.median(naive)
    print(f"viewport {VIEW_W}x{VIEW_H}, image {SIZE}x{SIZE} RGB + 3 uint8 overlays, "
          f"Qt platform {app.platformName()}")
    print(f"{'naive full-res ARGB per frame':32s} median {base:8.2f} ms   1.00x")
    for label, times in results.items():
        med = statistics.median(times)
        print(f"{label:32s} median {med:8.2f} ms  {base / med:5.1f}x faster   (best {min(times):.2f}, p90 "
              f"{sorted(times)[int(0.9 * (len(times) - 1))]:.2f} ms)")
    canvas.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
