"""``segstudio --self-test``: prove that this installation works, end to end, without a screen.

The same run serves a source checkout, a wheel and the frozen bundle (``dist/segstudio/segstudio
--self-test``), so a lab machine can check a build before anyone opens the window. It:

1. prints the versions (segstudio, Python, PySide6/Qt, OpenCV, numpy, later torch and CUDA);
2. finds the shipped resources and decodes one demo field and its ground truth;
3. starts Qt (offscreen unless ``QT_QPA_PLATFORM`` says otherwise) and the GUI's own inference
   worker (``ui.worker.InferenceController``): the GPU check job imports torch, resolves the model
   registry and runs the GPU check, then an image job loads the demo model and predicts the field, waited for with a
   ``QEventLoop`` on the job's signals and a timeout;
4. scores the prediction with ``core.evaluation.metrics`` and checks the mean IoU lies in
   ``core.demo.DEMO_MEAN_IOU_RANGE``.

Exit status: 0 on success, else one ``self-test FAILED: <reason>`` line on stderr and
``EXIT_RESOURCES`` (2), ``EXIT_MODEL`` (3), ``EXIT_IOU`` (4), ``EXIT_TIMEOUT`` (5) or 1 for anything
else. ``--device cuda`` makes a working GPU a requirement; ``auto`` (the default) falls back to the
CPU when CUDA is expected but unusable and says so. ``SEGSTUDIO_SELFTEST_TIMEOUT`` (seconds, default
300) bounds the whole run.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from segstudio import __version__

__all__ = ["add_arguments", "run", "EXIT_RESOURCES", "EXIT_MODEL", "EXIT_IOU", "EXIT_TIMEOUT",
           "TIMEOUT_ENV"]

EXIT_FAILED = 1
EXIT_RESOURCES = 2
EXIT_MODEL = 3
EXIT_IOU = 4
EXIT_TIMEOUT = 5
TIMEOUT_ENV = "SEGSTUDIO_SELFTEST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0


class SelfTestFailure(Exception):
    """A failed check: ``code`` is the exit status, ``reason`` the one line shown."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def add_arguments(parser) -> None:
    """The self-test uses the top-level parser's ``--device`` (``segstudio.cli``); nothing to add."""


def _console():
    """stdout, or where to write when a windowed (Windows) bundle has none."""
    if sys.stdout is not None:
        return sys.stdout
    if os.name == "nt":
        try:
            import ctypes  # noqa: PLC0415

            if ctypes.windll.kernel32.AttachConsole(-1):  # the console the bundle was started from
                return open("CONOUT$", "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        except (OSError, AttributeError):
            pass
    return open(Path(tempfile.gettempdir()) / "segstudio-self-test.txt", "w", encoding="utf-8")  # noqa: SIM115


class _Report:
    def __init__(self, stream):
        self.stream = stream

    def line(self, key: str, value: object = "") -> None:
        print(f"  {key:<12} {value}" if value != "" else key, file=self.stream, flush=True)

    def detail(self, text: str) -> None:
        print(f"  {'':<12}   {text}", file=self.stream, flush=True)


def _versions_before_torch(out: _Report) -> None:
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import PySide6  # noqa: PLC0415
    from PySide6 import QtCore  # noqa: PLC0415

    frozen = getattr(sys, "frozen", False)
    out.line("segstudio self-test")
    out.line("segstudio", f"{__version__} ({'frozen bundle' if frozen else 'from source'}: {sys.executable})")
    out.line("Python", f"{platform.python_version()} ({platform.system()} {platform.machine()})")
    out.line("PySide6", f"{PySide6.__version__} (Qt {QtCore.qVersion()}, platform "
                        f"{os.environ.get('QT_QPA_PLATFORM', 'default')})")
    out.line("OpenCV", cv2.__version__)
    out.line("numpy", np.__version__)


def _versions_after_torch(out: _Report, cuda_usable: bool) -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        out.line("torch", "not imported")
        return
    out.line("torch", torch.__version__)
    cuda = torch.version.cuda
    if not cuda:
        out.line("CUDA", "none (CPU-only torch build)")
        return
    # cuDNN is asked only when the GPU works: the CPU-only bundle leaves out the cuDNN libraries that
    # cudnnGetVersion loads, and a failed lazy load there aborts the process instead of raising.
    cudnn = torch.backends.cudnn.version() if cuda_usable else "not queried without a usable GPU"
    out.line("CUDA", f"{cuda} (cuDNN {cudnn})")


def _load_demo_field(out: _Report):
    """The demo sample the self-test predicts: (dataset, sample, image, ground truth)."""
    from segstudio.core.io.datasets import open_dataset  # noqa: PLC0415
    from segstudio.core.demo import DEMO_DIR, DEMO_MODEL_FILES, SELF_TEST_IMAGE  # noqa: PLC0415
    from segstudio.core.errors import SegStudioError  # noqa: PLC0415
    from segstudio.resources import ResourceNotFound, resource_path, resources_root  # noqa: PLC0415

    try:
        root = resources_root()
        demo = resource_path(DEMO_DIR)
        for part in DEMO_MODEL_FILES + ("classes.json",):
            resource_path(DEMO_DIR, *part.split("/"))
        dataset = open_dataset(demo)
        sample = dataset[dataset.index_of(SELF_TEST_IMAGE)]
        image = sample.load_image()
        gt = sample.load_mask()
    except ResourceNotFound as exc:
        raise SelfTestFailure(EXIT_RESOURCES, f"resources: {exc}") from None
    except KeyError:
        raise SelfTestFailure(EXIT_RESOURCES, f"resources: demo image {SELF_TEST_IMAGE!r} missing "
                                              f"from {demo}") from None
    except SegStudioError as exc:
        raise SelfTestFailure(EXIT_RESOURCES, f"resources: {exc}") from None
    if gt is None:
        raise SelfTestFailure(EXIT_RESOURCES, f"resources: no ground truth for {sample.image_path}")
    out.line("resources", root)
    return dataset, sample, image, gt


class _JobWatcher:
    """Collects what the controller reports per job, and waits for a job with a QEventLoop."""

    def __init__(self, controller, deadline: float):
        self.deadline = deadline
        self.events: dict[int, dict] = {}
        for name in ("finished", "failed", "model_loaded", "gpu_checked"):
            getattr(controller, name).connect(self._recorder(name))
        controller.job_ended.connect(self._on_ended)
        self._loop = None

    def _recorder(self, name: str):
        def record(*args):
            job = args[0] if name != "gpu_checked" else "gpu"
            self.events.setdefault(job, {})[name] = args[1:] if name != "gpu_checked" else args
        return record

    def _on_ended(self, job: int) -> None:
        self.events.setdefault(job, {})["ended"] = True
        if self._loop is not None:
            self._loop.quit()

    def wait(self, job: int, what: str) -> dict:
        from PySide6.QtCore import QEventLoop, QTimer  # noqa: PLC0415

        self._loop = QEventLoop()
        timer = QTimer(singleShot=True)
        timer.timeout.connect(self._loop.quit)
        while not self.events.get(job, {}).get("ended"):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise SelfTestFailure(EXIT_TIMEOUT, f"timed out waiting for {what} "
                                                    f"(limit {os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)} s,"
                                                    f" set {TIMEOUT_ENV} to change it)")
            timer.start(max(1, int(remaining * 1000)))
            self._loop.exec()
        timer.stop()
        self._loop = None
        return self.events.pop(job)


def _gpu_check() -> dict:
    """The worker's GPU check job, after resolving the model list (imports torch): a build must
    carry everything the registry touches."""
    from segstudio.inference.gpu_check import gpu_check  # noqa: PLC0415
    from segstudio.inference.registry import list_models  # noqa: PLC0415

    list_models()
    return gpu_check()


def _self_test(args, out: _Report, controller_holder: list) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    started = time.monotonic()
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        raise SelfTestFailure(EXIT_FAILED, f"{TIMEOUT_ENV} must be a number of seconds") from None
    deadline = started + timeout

    _versions_before_torch(out)
    dataset, sample, image, gt = _load_demo_field(out)

    from PySide6.QtWidgets import QApplication  # noqa: PLC0415

    from segstudio.core.demo import DEMO_MEAN_IOU_RANGE, DEMO_MODEL, iou_in_range  # noqa: PLC0415
    from segstudio.core.evaluation.metrics import ConfusionMatrix  # noqa: PLC0415
    from segstudio.ui.worker import InferenceController, ModelRequest  # noqa: PLC0415

    app = QApplication.instance() or QApplication(sys.argv[:1])
    controller = InferenceController(gpu_check=_gpu_check)
    controller_holder.append(controller)
    watcher = _JobWatcher(controller, deadline)

    t0 = time.monotonic()
    events = watcher.wait(controller.check_gpu(), "torch to import and the GPU check")
    if "failed" in events:
        raise SelfTestFailure(EXIT_MODEL, f"GPU check failed: {events['failed'][0]}")
    (report,) = watcher.events.pop("gpu")["gpu_checked"]
    _versions_after_torch(out, bool(report.get("cuda_usable")))
    out.line("torch start", f"{time.monotonic() - t0:.1f} s (torch import, model list, GPU check)")
    from segstudio.inference.gpu_check import VERDICT_OK, effective_device, format_report  # noqa: PLC0415

    out.line("GPU check", report.get("verdict"))
    for text in format_report(report)[1:]:
        out.detail(text)

    requested = (getattr(args, "device", None) or "auto").lower()
    if requested.startswith("cuda") and report.get("verdict") != VERDICT_OK:
        raise SelfTestFailure(EXIT_MODEL, f"--device {requested} requested but {report.get('verdict')}")
    device = effective_device(requested, report)

    t0 = time.monotonic()
    job = controller.predict_image(ModelRequest(DEMO_MODEL, device), sample.name, image)
    events = watcher.wait(job, f"the demo model to load and predict {sample.name}")
    if "failed" in events:
        raise SelfTestFailure(EXIT_MODEL, f"demo model load or inference failed: {events['failed'][0]}")
    if "finished" not in events:
        raise SelfTestFailure(EXIT_MODEL, "the inference job ended without a prediction (cancelled)")
    info = events["model_loaded"][0]
    _name, prediction = events["finished"]
    out.line("device", f"{info.device_name} (requested {requested})")
    out.line("model", f"{info.name} ({info.kind}, {info.class_table.num_classes} classes): loaded and "
                      f"predicted {sample.name} {image.shape[1]}x{image.shape[0]} in {time.monotonic() - t0:.1f} s")

    table = dataset.class_table
    if info.class_table.num_classes != table.num_classes or prediction.mask.shape != gt.shape:
        raise SelfTestFailure(EXIT_MODEL, f"prediction does not fit the demo: {info.class_table.num_classes} "
                                          f"classes, mask {prediction.mask.shape} vs ground truth {gt.shape}")
    confusion = ConfusionMatrix(table.num_classes, table.ignore_index)
    confusion.update(gt, prediction.mask)
    mean_iou = confusion.mean_iou()
    per_class = ", ".join(f"{name} {iou:.3f}" for name, iou in zip(table.names, confusion.iou()))
    low, high = DEMO_MEAN_IOU_RANGE
    out.line("mean IoU", f"{mean_iou:.4f} (expected {low:.2f}-{high:.2f}; {per_class})"
             if mean_iou is not None else "none (nothing scored)")
    if not iou_in_range(mean_iou):
        shown = "none" if mean_iou is None else f"{mean_iou:.4f}"
        raise SelfTestFailure(EXIT_IOU, f"demo mean IoU {shown} outside the documented range "
                                        f"{low:.2f}-{high:.2f} on {sample.name}")
    app.processEvents()


def run(args) -> int:
    """Run the self-test; print the report; return the exit status (0 = passed)."""
    stream = _console()
    out = _Report(stream)
    started = time.monotonic()
    holder: list = []
    code, reason = 0, ""
    try:
        _self_test(args, out, holder)
    except SelfTestFailure as failure:
        code, reason = failure.code, failure.reason
    except Exception as exc:  # noqa: BLE001 - a self-test reports every failure as one line
        code, reason = EXIT_FAILED, f"{type(exc).__name__}: {exc}"
    stopped = True
    if holder:
        # A worker stuck in torch (timeout) cannot be interrupted; wait briefly, then leave without it.
        stopped = holder[0].shutdown(timeout_ms=5000 if code == EXIT_TIMEOUT else 30000)
    if code:
        print(f"self-test FAILED: {reason}", file=sys.stderr or stream, flush=True)
        if stream is not sys.stdout:
            print(f"self-test FAILED: {reason}", file=stream, flush=True)
    else:
        out.line(f"self-test passed in {time.monotonic() - started:.1f} s")
    if not stopped:
        stream.flush()
        os._exit(code)  # noqa: SLF001 - a running QThread must not be destroyed at interpreter exit
    return code
