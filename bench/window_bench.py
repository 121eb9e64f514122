"""Brush latency through the real assembled window, with napari as the baseline measured in the same run.

How to run (by hand; ~3 min per platform for 2048/4096/8192 on 2 cores)::

    python bench/window_bench.py                          # offscreen, sizes 2048 4096 8192
    python bench/window_bench.py --platform xcb           # the same under Xvfb (started here if needed)
    python bench/window_bench.py --quick                  # 1024 and 2048, 20 dabs: a smoke run
    python bench/window_bench.py --sizes 4096 --zoom 1:1 --json out.json

napari runs from its own venv (PyQt5 cannot share a process with PySide6): ``NAPARI_PYTHON``
(default ``/work/napari-venv/bin/python``; make it with ``python3 -m venv /work/napari-venv &&
/work/napari-venv/bin/pip install "napari[pyqt5]"``). Without it the napari columns are skipped.
``--platform xcb`` needs ``apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0
libxkbcommon-x11-0 libxcb-xinerama0`` (the last one for PyQt5's xcb plugin). napari draws with OpenGL,
and Qt's offscreen platform gets a GL context only through an X display (GLX), so when ``DISPLAY`` is
unset this script starts ``Xvfb`` for both platforms and stops it afterwards; segstudio draws with the
raster engine and never uses the display under ``offscreen``.

For each size a dataset (``images/img.png`` RGB, ``masks/img.png`` 21-class index mask,
``classes.json``) and a predictions folder (``img.png``, a different mask) are written, then a fresh
segstudio process builds the window as ``segstudio PATH`` does (``build_main_window()``,
shown, then ``finish_startup(PATH)`` once exposed, which also imports torch in the worker; no model
is loaded), and a fresh napari process loads the same files. Per size:

* **dab + repaint**: one mouse press, then moves with the left button held sent to the canvas
  viewport, each followed by a synchronous ``viewport().repaint()``; the pair is timed (5 warm-ups,
  50 timed, 16 image px apart, brush radius 32). napari: ``layer.paint(..., refresh=True)`` with
  ``brush_size`` 64 and a synchronously rendered GL frame (see ``napari_baseline.py`` for why not
  ``repaint()``);
* **60 Hz stroke**: 60 moves driven by a timer at 16.67 ms, wall time from press to release over
  the ideal 1 s; a 5 ms heartbeat timer gives the longest GUI-thread block from the press to 1 s
  after the release (panel refreshes included);
* **a prediction arriving**: ``open_predictions`` with the heartbeat running, until the prediction
  is on the document and 1 s more;
* **peak RSS** (``ru_maxrss``) with image + ground truth + the prediction shown (napari: image +
  labels shown), each in its own fresh process.

The review and dataset docks are made visible side by side (they are tabs by default) so their
refreshes are part of the cost. Targets are the issue's; ratios are napari over segstudio.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_measure import Heartbeat, peak_rss_mb, stats

ROOT = Path(__file__).resolve().parents[1]
NAPARI_SCRIPT = Path(__file__).with_name("napari_baseline.py")
NAPARI_DEFAULT = "/work/napari-venv/bin/python"
CLASSES, RADIUS, STEP_PX, STROKE_MOVES, STROKE_HZ = 21, 32, 16, 60, 60.0
SETTLE_MS = 1000


# --- data ---------------------------------------------------------------------------------------
def write_dataset(root: Path, size: int) -> tuple[Path, Path]:
    """Image, 21-class ground truth and a different prediction, drawn with OpenCV (seconds at 8192²)
    and written with PNG compression 1 (the bench measures the window, not the encoder)."""
    import cv2

    from segstudio.core.io.classes import ClassTable

    rng = np.random.default_rng(size)
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    dataset, preds = root / "data", root / "preds"
    for folder in (dataset / "images", dataset / "masks", preds):
        folder.mkdir(parents=True)
    image = cv2.resize(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (size, size),
                       interpolation=cv2.INTER_LINEAR)
    image += rng.integers(0, 24, (size, size, 1), dtype=np.uint8)   # texture, so nothing is flat
    cv2.imwrite(str(dataset / "images" / "img.png"), image, png)
    del image
    gt = cv2.resize(rng.integers(0, CLASSES, (48, 48)).astype(np.uint8), (size, size),
                    interpolation=cv2.INTER_NEAREST)
    for _ in range(400):
        cv2.circle(gt, tuple(int(v) for v in rng.integers(0, size, 2)), int(rng.integers(8, size // 30)),
                   int(rng.integers(0, CLASSES)), -1)
    cv2.imwrite(str(dataset / "masks" / "img.png"), gt, png)
    for _ in range(600):
        cv2.circle(gt, tuple(int(v) for v in rng.integers(0, size, 2)), int(rng.integers(8, size // 40)),
                   int(rng.integers(0, CLASSES)), -1)
    cv2.imwrite(str(preds / "img.png"), gt, png)
    ClassTable.voc().save(dataset / "classes.json")
    return dataset, preds


def brush_path(size: int, warmup: int, dabs: int) -> dict:
    """Image points (x, y): a press point, the warm-up moves, the timed moves along one row; the
    stroke's press + 60 moves along another row, so it paints fresh pixels."""
    count = 1 + warmup + dabs
    x0 = size // 2 - count * STEP_PX // 2
    stroke_x0 = size // 2 - STROKE_MOVES * STEP_PX // 2
    return {"dabs": [[x0 + i * STEP_PX, size // 2] for i in range(count)],
            "stroke": [[stroke_x0 + i * STEP_PX, size // 2 + 4 * RADIUS] for i in range(STROKE_MOVES + 1)],
            "warmup": 1 + warmup}


# --- segstudio side: one fresh process per size (--worker) ---------------------------------------
def wait_until(condition, timeout_ms: int = 120_000) -> None:
    """Run the event loop until ``condition()`` holds, checking every 5 ms."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, deadline = QEventLoop(), time.perf_counter() + timeout_ms / 1000
    poll = QTimer(interval=5)
    poll.timeout.connect(lambda: (condition() or time.perf_counter() > deadline) and loop.quit())
    poll.start()
    if not condition():
        loop.exec()
    poll.stop()
    if not condition():
        raise SystemExit(f"timed out after {timeout_ms} ms waiting for {condition.__doc__ or 'a condition'}")


def wait_ms(ms: int) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def show_side_by_side(window) -> None:
    """The review dock is tabbed with the dataset browser: put it beside it so both are on screen."""
    from PySide6.QtCore import Qt

    review, dataset = window.dock("review"), window.dock("dataset")
    window.removeDockWidget(review)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, review)
    review.show()
    dataset.show()
    dataset.raise_()
    wait_ms(100)
    hidden = [d.objectName() for d in (review, dataset) if d.widget().visibleRegion().isEmpty()]
    if hidden:
        raise SystemExit(f"docks not visible: {hidden}")


def measure_segstudio(dataset: str, preds: str, path: dict, zoom: str) -> dict:
    from PySide6.QtCore import QEvent, QEventLoop, QPointF, Qt, QTimer
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("segstudio")    # as segstudio.commands.gui.run does
    app.setOrganizationName("segstudio")
    from segstudio.core.editing.service import UnsavedChoice
    from segstudio.ui.compose import build_main_window

    # As gui.run: the same builder, shown, then finish_startup once exposed (gui.run defers that call
    # to the event loop; here it follows the wait).
    window = build_main_window()
    # The bench's strokes are not worth keeping: closing discards them instead of asking in a dialog.
    window.saving.answer_unsaved_with(UnsavedChoice.DISCARD)
    window.show()
    if not QTest.qWaitForWindowExposed(window, 10_000):
        raise SystemExit("the window was never exposed")
    window.finish_startup(dataset)

    def warmed_up():
        """the worker's start-up job (torch import) to finish"""
        return not window.controller.busy

    # torch imports in the worker thread for seconds and holds the GIL; measured apart from it.
    wait_until(warmed_up)
    show_side_by_side(window)
    canvas, viewport = window.canvas, window.canvas.viewport()

    from PySide6 import QtCore

    heartbeat = Heartbeat(QtCore)
    start = heartbeat.start()
    window.open_predictions(preds)

    def prediction_shown():
        """the prediction to be on the document"""
        return window.document is not None and window.document.pred is not None

    wait_until(prediction_shown)
    out = {"pred_shown_s": time.perf_counter() - start}
    wait_ms(SETTLE_MS)
    out["pred_block_ms"] = heartbeat.stop()
    out["rss_mb"] = peak_rss_mb()
    out["torch_imported"] = "torch" in sys.modules   # by the start-up warm-up; no model is loaded

    window.editor.set_tool("brush")
    window.editor.set_brush_radius(RADIUS)
    dabs, stroke = path["dabs"], path["stroke"]
    if zoom == "fit":
        canvas.fit_to_window()
    else:
        xs, ys = zip(*dabs)
        canvas.center_on_rect(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        canvas.zoom_actual()
    wait_ms(300)
    out.update(canvas=f"{viewport.width()}x{viewport.height()}", zoom=canvas.zoom())
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind, xy, button, buttons) -> None:
        # viewportTransform keeps the sub-pixel position; mapFromScene rounds to whole screen pixels,
        # which at fit zoom on 8192² moves the brush in steps of ~10 image pixels.
        pos = canvas.viewportTransform().map(QPointF(xy[0] + 0.5, xy[1] + 0.5))
        event = QMouseEvent(kind, pos, viewport.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(viewport, event)

    send(QEvent.Type.MouseButtonPress, dabs[0], left, left)
    viewport.repaint()
    times = []
    for i, xy in enumerate(dabs[1:], start=1):
        app.processEvents()     # what would run between two moves (panel timers) stays outside the timing
        t0 = time.perf_counter()
        send(QEvent.Type.MouseMove, xy, none, left)
        viewport.repaint()
        if i >= path["warmup"]:
            times.append((time.perf_counter() - t0) * 1000)
    send(QEvent.Type.MouseButtonRelease, dabs[-1], left, none)
    gt = window.document.gt
    out["painted"] = all(int(gt[y, x]) == window.selection.class_id for x, y in dabs)
    out["dab"] = {**stats(times), "dabs": len(times)}
    wait_ms(SETTLE_MS)

    # The stroke: each move re-arms a one-shot timer for its own deadline, so a late move does not
    # push back the ones after it; repaints happen in the event loop, as with a real mouse.
    period = 1.0 / STROKE_HZ
    timer = QTimer(singleShot=True)
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    loop, step, done = QEventLoop(), [0], {}

    def move() -> None:
        step[0] += 1
        send(QEvent.Type.MouseMove, stroke[step[0]], none, left)
        if step[0] == len(stroke) - 1:
            send(QEvent.Type.MouseButtonRelease, stroke[-1], left, none)
            done["t"] = time.perf_counter()
            loop.quit()
            return
        deadline = begin + (step[0] + 1) * period
        timer.start(max(0, round((deadline - time.perf_counter()) * 1000)))

    timer.timeout.connect(move)
    begin = heartbeat.start()
    send(QEvent.Type.MouseButtonPress, stroke[0], left, left)
    timer.start(max(0, round((begin + period - time.perf_counter()) * 1000)))
    loop.exec()
    wait_ms(SETTLE_MS)
    ideal = (len(stroke) - 1) * period
    out.update(stroke_s=done["t"] - begin, stroke_ideal_s=ideal, stroke_ratio=(done["t"] - begin) / ideal,
               block_ms=heartbeat.stop(), rss_after_mb=peak_rss_mb(),
               stroke_painted=bool(window.document.gt[stroke[-1][1], stroke[-1][0]] == window.selection.class_id))
    return out, window


def worker_main(args) -> None:
    out, window = measure_segstudio(args.dataset, args.preds, json.loads(args.path), args.zoom)
    print(json.dumps(out), flush=True)
    window.close()          # discards the strokes (see measure_segstudio), joins the worker and tasks


# --- orchestration ------------------------------------------------------------------------------
def start_xvfb() -> tuple[subprocess.Popen | None, str | None]:
    """An Xvfb display when none is set (see the module docstring for why offscreen wants one too)."""
    if os.environ.get("DISPLAY"):
        return None, os.environ["DISPLAY"]
    if shutil.which("Xvfb") is None:
        print("note: no DISPLAY and no Xvfb: napari gets no OpenGL context and xcb cannot start")
        return None, None
    number = next(n for n in range(99, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    process = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket, deadline = Path(f"/tmp/.X11-unix/X{number}"), time.monotonic() + 20
    while not socket.exists():    # waiting for a server process, not for the GUI
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("Xvfb did not start")
        time.sleep(0.05)
    return process, f":{number}"


def torch_rss_mb() -> float:
    code = "import resource, torch; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def run_json(command: list[str], env: dict, label: str, timeout: int = 600) -> dict | None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(f"  {label} failed (exit {result.returncode}):\n    " +
              "\n    ".join((result.stdout + result.stderr).strip().splitlines()[-15:]))
        return None
    return json.loads(lines[-1])


def measure_size(size: int, args, env: dict, napari_python: str | None) -> dict:
    path = brush_path(size, args.warmup, args.dabs)
    with tempfile.TemporaryDirectory(prefix=f"window-bench-{size}-") as tmp:
        t0 = time.perf_counter()
        dataset, preds = write_dataset(Path(tmp), size)
        print(f"{size}²: dataset written in {time.perf_counter() - t0:.1f} s", flush=True)
        seg_env = dict(env, SEGSTUDIO_SETTINGS_DIR=str(Path(tmp) / "settings"),
                       PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        seg = run_json([sys.executable, __file__, "--worker", "--dataset", str(dataset), "--preds", str(preds),
                        "--path", json.dumps(path), "--zoom", args.zoom], seg_env, f"segstudio {size}²")
        nap = None
        if napari_python:
            command = [napari_python, str(NAPARI_SCRIPT), "--image", str(dataset / "images" / "img.png"),
                       "--labels", str(dataset / "masks" / "img.png"), "--zoom", args.zoom,
                       "--path", json.dumps(path)]
            if seg:
                command += ["--canvas", seg["canvas"]]
            nap = run_json(command, dict(env, QT_API="pyqt5"), f"napari {size}²")
        print(f"{size}²: measured in {time.perf_counter() - t0:.1f} s", flush=True)
    return {"segstudio": seg, "napari": nap}


def table(results: dict) -> list[dict]:
    """One row per figure: value, napari's, napari/segstudio, target and verdict."""
    rows = []

    def row(figure, value, napari=None, target=None, ok=None, unit="ms", ratio=True):
        fmt = (lambda v: f"{v:.1f} {unit}") if unit else (lambda v: f"{v:.2f}×")
        rows.append({"figure": figure, "segstudio": value, "napari": napari,
                     "ratio": napari / value if ratio and napari and value else None,
                     "target": target, "status": "info" if ok is None else "PASS" if ok else "FAIL",
                     "text": (figure, fmt(value) if value is not None else "n/a",
                              fmt(napari) if napari is not None else "n/a")})

    for size, res in results.items():
        seg, nap = res["segstudio"] or {}, res["napari"] or {}
        nap_ok = nap.get("gl_ok", False)
        if "dab" in seg:
            med, p95 = seg["dab"]["median"], seg["dab"]["p95"]
            nmed = nap["dab"]["median"] if nap_ok else None
            row(f"dab+repaint median {size}²", med, nmed, "≤ 8 ms" if size == 4096 else None,
                med <= 8 if size == 4096 else None)
            row(f"dab+repaint p95 {size}²", p95, nap["dab"]["p95"] if nap_ok else None,
                "≤ 16 ms" if size == 4096 else None, p95 <= 16 if size == 4096 else None)
            if nmed:
                row(f"napari/segstudio median {size}²", nmed / med, None, "≥ 3×", nmed / med >= 3, unit="",
                    ratio=False)
        if "stroke_ratio" in seg:
            row(f"60 Hz stroke / ideal {size}²", seg["stroke_ratio"], nap.get("stroke_ratio") if nap_ok else None,
                "≤ 1.1×" if size == 8192 else None, seg["stroke_ratio"] <= 1.1 if size == 8192 else None,
                unit="", ratio=False)
            limit = {4096: 50, 8192: 100}.get(size)
            row(f"GUI block stroke→+1 s {size}²", seg["block_ms"], nap.get("block_ms") if nap_ok else None,
                f"≤ {limit} ms" if limit else None, seg["block_ms"] <= limit if limit else None)
        if "pred_block_ms" in seg:
            row(f"GUI block prediction arrives {size}²", seg["pred_block_ms"], None,
                "≤ 50 ms" if size == 4096 else None, seg["pred_block_ms"] <= 50 if size == 4096 else None)
            row(f"peak RSS, pred shown {size}²", seg["rss_mb"], nap.get("rss_mb"),
                "≤ 600 MB" if size == 4096 else None, seg["rss_mb"] <= 600 if size == 4096 else None, unit="MB")
    small, large = (results.get(s, {}).get("segstudio") or {} for s in (2048, 8192))
    if "dab" in small and "dab" in large:
        growth = large["dab"]["median"] / small["dab"]["median"]
        row("median 8192² / median 2048²", growth, None, "≤ 1.5×", growth <= 1.5, unit="", ratio=False)
    return rows


def print_table(rows: list[dict]) -> None:
    header = ("figure", "segstudio", "napari", "napari/seg", "target", "status")
    lines = [(*r["text"], f"{r['ratio']:.2f}×" if r["ratio"] else "", r["target"] or "—", r["status"])
             for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    for line in (header, *lines):
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="image sides (default 2048 4096 8192)")
    parser.add_argument("--quick", action="store_true", help="sizes 1024 2048 (unless --sizes), 20 dabs")
    parser.add_argument("--platform", choices=("offscreen", "xcb"), default="offscreen")
    parser.add_argument("--zoom", choices=("fit", "1:1"), default="fit",
                        help="fit: whole image in view; 1:1: one image pixel per screen pixel, on the dabs")
    parser.add_argument("--dabs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--preds", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    if args.quick:
        args.dabs = 20
    args.sizes = args.sizes or ([1024, 2048] if args.quick else [2048, 4096, 8192])
    sys.path.insert(0, str(ROOT))

    napari_python = os.environ.get("NAPARI_PYTHON", NAPARI_DEFAULT)
    if not Path(napari_python).exists():
        print(f"napari baseline skipped: {napari_python} not found (set NAPARI_PYTHON)")
        napari_python = None
    xvfb, display = start_xvfb()
    runtime = Path(tempfile.mkdtemp(prefix="window-bench-xdg-"))   # Qt wants a private XDG_RUNTIME_DIR
    runtime.chmod(0o700)
    env = dict(os.environ, QT_QPA_PLATFORM=args.platform, XDG_RUNTIME_DIR=str(runtime))
    if display:
        env["DISPLAY"] = display
    try:
        results = {size: measure_size(size, args, env, napari_python) for size in args.sizes}
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()
        shutil.rmtree(runtime, ignore_errors=True)

    nap = next((r["napari"] for r in results.values() if r["napari"]), None)
    seg = next((r["segstudio"] for r in results.values() if r["segstudio"]), None)
    print(f"\nplatform {args.platform}, zoom {args.zoom}, brush radius {RADIUS} (napari brush_size 64), "
          f"{args.dabs} dabs after {args.warmup} warm-ups, {STEP_PX} image px apart")
    if seg:
        print(f"segstudio canvas {seg['canvas']}")
    if nap:
        print(f"napari {nap['napari']} on {nap.get('renderer', 'no GL')}, canvas {nap['canvas']}"
              + ("" if nap["gl_ok"] else " — no GL context: napari cannot draw here, its figures are skipped"))
    if seg and seg["torch_imported"]:
        print(f"segstudio's RSS includes torch, imported at start-up: `import torch` alone peaks at "
              f"{torch_rss_mb():.0f} MB")
    rows = table(results)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"platform": args.platform, "zoom": args.zoom, "results": results,
                                               "rows": [{k: v for k, v in r.items() if k != "text"} for r in rows]},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
