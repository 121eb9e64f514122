"""napari side of ``bench/window_bench.py``: run by napari's own Python (PyQt5), never by segstudio's.

PyQt5 and PySide6 cannot share a process, so ``window_bench.py`` starts this script once per image size
in a fresh process and reads the JSON it prints on its last line. It measures, on the same image,
ground-truth mask and brush path as the segstudio side:

* **dab + frame**: ``layer.paint((y, x), label, refresh=True)`` with ``brush_size`` 64 (radius 32),
  then the frame rendered synchronously: ``makeCurrent`` + ``paintGL`` + ``glFinish`` on the vispy
  canvas. ``canvas.native.repaint()`` alone is reported beside it (``repaint_only``) because it does
  not draw: vispy's ``QOpenGLWidget`` only redraws from the event loop, so timing it would time
  nothing (its ``draws`` count shows that);
* **peak RSS** (``ru_maxrss``) once the image and labels are on screen and drawn, before painting;
* **a 60-move stroke at 60 Hz** driven by a QTimer, each move one ``paint`` whose redraw happens in
  the event loop as in the app, with a 5 ms heartbeat timer measuring the longest GUI-thread block
  from the first move to 1 s after the last.

Without a GL context (the ``offscreen`` platform with no X display) napari cannot draw, and the
output says so (``gl_ok`` false) instead of reporting figures.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench_measure import Heartbeat, peak_rss_mb, stats

STROKE_HZ, SETTLE_MS = 60.0, 1000


def wait(QtCore, ms: int) -> None:
    """Run the event loop for ``ms`` (timers and redraws keep running, unlike ``time.sleep``)."""
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(ms, loop.quit)
    loop.exec_()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--canvas", default="", help="WxH the canvas widget is resized to (segstudio's viewport)")
    parser.add_argument("--zoom", choices=("fit", "1:1"), default="fit")
    parser.add_argument("--path", required=True, help="JSON: dab points and stroke points, [[x, y], ...]")
    args = parser.parse_args()

    import imageio.v3 as iio
    import napari
    from qtpy import QtCore
    from qtpy.QtWidgets import QApplication
    from vispy.gloo import gl

    path = json.loads(args.path)
    image, labels = iio.imread(args.image), iio.imread(args.labels).astype(np.uint8)
    viewer = napari.Viewer(show=True)
    viewer.add_image(image, rgb=True, name="image")
    layer = viewer.add_labels(labels, name="gt")
    layer.brush_size = 64
    layer.selected_label = 1
    del image, labels
    qt_viewer = viewer.window._qt_viewer   # napari 0.4-0.6 keep the vispy canvas here
    native = qt_viewer.canvas.native
    draws = [0]
    qt_viewer.canvas._scene_canvas.events.draw.connect(lambda _e: draws.__setitem__(0, draws[0] + 1))
    if args.canvas:   # grow the window by what the canvas lacks, so both apps draw the same area
        w, h = (int(v) for v in args.canvas.split("x"))
        wait(QtCore, 200)
        window = viewer.window._qt_window
        window.resize(window.width() + w - native.width(), window.height() + h - native.height())
    wait(QtCore, 500)
    dabs, stroke = path["dabs"], path["stroke"]
    cx, cy = np.mean(dabs, axis=0)
    if args.zoom == "1:1":
        viewer.camera.zoom = 1.0
        viewer.camera.center = (cy, cx)
    else:
        viewer.reset_view()
    wait(QtCore, 300)
    context = native.context()
    gl_ok = context is not None and context.isValid() and draws[0] > 0
    out = {"napari": napari.__version__, "platform": QApplication.platformName(), "gl_ok": gl_ok,
           "canvas": f"{native.width()}x{native.height()}", "rss_mb": peak_rss_mb(),
           "zoom": float(viewer.camera.zoom)}
    if gl_ok:
        out["renderer"] = gl.glGetParameter(gl.GL_RENDERER)

        def frame() -> None:
            native.makeCurrent()
            native.paintGL()
            gl.glFinish()
            native.doneCurrent()

        out["dab"] = time_dabs(layer, dabs, path["warmup"], frame, draws)
        out["repaint_only"] = time_dabs(layer, dabs, path["warmup"], native.repaint, draws)
        out.update(run_stroke(QtCore, layer, stroke))
    out["rss_after_mb"] = peak_rss_mb()
    print(json.dumps(out), flush=True)
    viewer.close()


def time_dabs(layer, points, warmup: int, render, draws) -> dict:
    times, before = [], draws[0]
    for i, (x, y) in enumerate(points):
        t0 = time.perf_counter()
        layer.paint((y, x), 1, refresh=True)
        render()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return {**stats(times), "draws": draws[0] - before, "dabs": len(times)}


def run_stroke(QtCore, layer, points) -> dict:
    """Moves at 60 Hz from a timer re-armed for each move's deadline, so a late move does not shift
    the ones after it; the wall time to the last move, over the ideal, is the figure."""
    period, heartbeat = 1000.0 / STROKE_HZ, Heartbeat(QtCore)
    timer = QtCore.QTimer(singleShot=True)
    timer.setTimerType(QtCore.Qt.PreciseTimer)
    loop, done = QtCore.QEventLoop(), {}
    step = [0]

    def move() -> None:
        x, y = points[step[0]]
        layer.paint((y, x), 1, refresh=True)
        step[0] += 1
        if step[0] == len(points):
            done["t"] = time.perf_counter()
            loop.quit()
            return
        deadline = start + step[0] * period / 1000
        timer.start(max(0, round((deadline - time.perf_counter()) * 1000)))

    timer.timeout.connect(move)
    start = heartbeat.start()
    move()
    loop.exec_()
    wait(QtCore, SETTLE_MS)
    block = heartbeat.stop()
    ideal = (len(points) - 1) * period / 1000
    return {"stroke_s": done["t"] - start, "stroke_ideal_s": ideal, "stroke_ratio": (done["t"] - start) / ideal,
            "block_ms": block}


if __name__ == "__main__":
    main()
