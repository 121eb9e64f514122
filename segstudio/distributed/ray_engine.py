"""``--engine ray``: evaluate and predict on a Ray Data pipeline, with results equal to the local engine's.

The pipeline::

    sample names (listed once by the driver, as the local engine lists them)
      -> Ray Data blocks of names
      -> worker actors (ActorPoolStrategy): each holds the dataset (segstudio's own readers decode
         the images and masks on the worker) and, with --model, ONE loaded Runner (loaded once,
         batching and tiling as locally)
      -> per-image rows: confusion counts, instance counts with the exact matched-IoU sum, or a
         failure (image + reason)
      -> the driver adds the rows in a ReportBuilder, which sorts every list by name.

Every per-image figure is computed by the same functions as the local engine (``score_sample``,
``ReportBuilder``) from the same integers, so the report is the same bit for bit whatever the number
of workers or the way Ray splits the blocks. Predictions are written by the workers into ``--out``
(a filesystem all nodes share), each file atomically.

Faults: actors are restarted (``max_restarts``) and their unfinished batches retried
(``max_task_retries``), so a worker process that dies costs time, not results. Ctrl+C cancels the
job (the Ray started for the run is shut down, which kills its actors); the report is written only
after the job has finished, and atomically.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

try:
    import resource
except ImportError:   # Windows: no peak-memory figure
    resource = None

from segstudio.core.errors import SegStudioError

__all__ = ["evaluate_on_ray", "predict_on_ray", "RemoteError"]

# Test hook: "N:MARKER" makes a worker exit hard on its N-th image unless MARKER exists (it creates
# it first), i.e. exactly one worker death per run. Read by the driver and shipped in the job spec.
FAULT_ENV = "SEGSTUDIO_RAY_FAULT"
MAX_RESTARTS = 4
# Images per Ray Data batch: enough to amortise a call, small enough to spread over the workers
# (reading and scoring files is ~100x cheaper per image than running a model).
BATCH_IMAGES_MODEL = 16
BATCH_IMAGES_FILES = 128

log = logging.getLogger(__name__)


class RemoteError(SegStudioError):
    """Bad input met on a worker (the same message the local engine prints)."""

    def __init__(self, message: str):
        super().__init__(None, message)


# ------------------------------------------------------------------------------------------ driver
@contextmanager
def ray_session(args):
    """Join ``--ray-address`` or start a Ray on this machine; shut down what this run started."""
    import ray  # noqa: PLC0415

    started = False
    if not ray.is_initialized():
        package_parent = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
        # Ray's own INFO/WARNING lines (token auth, executor plans) would bury the progress lines.
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                  "log_to_driver": False,
                                  "runtime_env": {"env_vars": {"PYTHONPATH": path}}}
        if args.ray_address is not None:
            kwargs["address"] = args.ray_address
        elif args.workers is not None:
            kwargs["num_cpus"] = max(os.cpu_count() or 1, int(args.workers * args.cpus_per_worker + 0.999))
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SegStudioError(None, f"--ray-address {args.ray_address}: cannot join Ray: {exc}") from exc
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _worker_count(ray, args) -> int:
    if args.workers is not None:
        return args.workers
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, int(cpus // args.cpus_per_worker))


def _fault_spec() -> tuple[int, str] | None:
    value = os.environ.get(FAULT_ENV)
    if not value:
        return None
    count, _, marker = value.partition(":")
    return int(count), marker


def _model_spec(args, *, evaluate: bool) -> dict | None:
    """What a worker needs to build the same Runner as the local command."""
    if getattr(args, "model", None) is None:
        return None
    keys = ("mean", "std", "channel_order", "weights", "encoder", "input_size")
    if not evaluate:
        keys = ("classes",) + keys
    overrides = {k: getattr(args, k, None) for k in keys}
    if overrides.get("input_size"):
        overrides["input_size"] = tuple(overrides["input_size"])
    overrides = {k: v for k, v in overrides.items() if v is not None}
    spec = {"model": args.model, "overrides": overrides, "device": args.device, "tile": args.tile,
            "batch_size": args.batch_size}
    if not evaluate:
        from segstudio.commands.predict import DEFAULT_OVERLAP  # noqa: PLC0415
        spec["overlap"] = DEFAULT_OVERLAP if args.overlap is None else args.overlap
        spec["score_threshold"] = args.score_threshold
    return spec


def _run_pipeline(ray, args, dataset, worker_cls, job: dict, on_row: Callable[[dict], None],
                  progress, info: dict | None = None) -> None:
    """Stream the dataset's names through ``worker_cls`` actors; ``on_row`` for each result row.
    ``info`` (optional) receives ``workers`` and ``worker_peak_rss_mib``."""
    names = [s.name for s in dataset]
    if not names:
        return
    workers = min(_worker_count(ray, args), len(names))
    if info is not None:
        info.update(workers=workers, worker_peak_rss_mib=0.0)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.execution_options.preserve_order
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False   # the driver sorts; no head-of-line waits
    try:
        _stream(ray, args, dataset, names, workers, worker_cls, job, on_row, progress, info)
    finally:
        # The context is the process's: a caller that runs its own Ray Data jobs gets its settings back.
        context.enable_progress_bars, context.execution_options.preserve_order = saved


def _stream(ray, args, dataset, names, workers, worker_cls, job, on_row, progress, info) -> None:
    job = dict(job, dataset=ray.put(dataset), cpus=args.cpus_per_worker)   # one copy, shared
    blocks = max(1, min(len(names), workers * 4, -(-len(names) // 2)))
    ds = ray.data.from_items([{"name": n} for n in names], override_num_blocks=blocks)
    with warnings.catch_warnings():
        # Ray Data would restart a dying actor and retry its batch forever by default; bounded
        # here (an image that kills every worker must end the run), through the remote args that
        # Ray 2.60 flags as deprecated in favour of parameters it does not have yet.
        warnings.simplefilter("ignore", DeprecationWarning)
        per_batch = BATCH_IMAGES_MODEL if job.get("model") is not None else BATCH_IMAGES_FILES
        ds = ds.map_batches(worker_cls, batch_size=min(per_batch, max(1, -(-len(names) // workers))),
                            batch_format="numpy", fn_constructor_kwargs={"job": job},
                            compute=ray.data.ActorPoolStrategy(size=workers),
                            num_cpus=args.cpus_per_worker, num_gpus=args.gpus_per_worker or None,
                            max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)
    done = 0
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if info is not None:
                # Steady-state throughput for the bench: from the first batch back (workers up,
                # model loaded) to the last.
                now = time.perf_counter()
                info.setdefault("first_batch", (now, len(batch["name"])))
                info["last_batch_at"] = now
            for i in range(len(batch["name"])):
                row = {key: values[i] for key, values in batch.items()}
                if row["fatal"]:
                    raise RemoteError(str(row["fatal"]))
                if info is not None:
                    info["worker_peak_rss_mib"] = max(info["worker_peak_rss_mib"], float(row["rss_mib"]))
                on_row(row)
                done += 1
                if progress is not None:
                    progress(done, len(names))
    except ray.exceptions.RayError as exc:
        # A worker that cannot start (a model that does not load there) or a job Ray gave up on.
        cause = getattr(exc, "cause", None)
        if isinstance(cause, SegStudioError):
            raise RemoteError(str(cause)) from exc
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise SegStudioError(None, f"the Ray job failed: {first}") from exc


def _check_model(spec: dict | None, dataset=None, warn: Callable[[str], None] | None = None) -> None:
    """Resolve the model on the driver too, so that a bad --model is one error line before any
    worker starts (the local engine's message)."""
    if spec is None:
        return
    from segstudio.inference.registry import resolve_model  # noqa: PLC0415

    entry = resolve_model(spec["model"], **spec["overrides"])
    if dataset is not None and warn is not None and entry.class_table.num_classes != dataset.class_table.num_classes:
        warn(f"the model has {entry.class_table.num_classes} classes, the dataset "
             f"{dataset.class_table.num_classes}")


def evaluate_on_ray(args, dataset, *, progress=None, failures: list[str] | None = None,
                    warn: Callable[[str], None] | None = None, info: dict | None = None) -> dict:
    """``segstudio evaluate --engine ray``: the report the local engine would write.

    Raises
    ------
    SegStudioError
        Bad input (on the driver or a worker), or Ray cannot be joined.
    """
    from segstudio.core.evaluation.report import ReportBuilder, SampleScore  # noqa: PLC0415

    table = dataset.class_table
    builder = ReportBuilder(table, iou_threshold=args.iou_threshold,
                            per_image_confusion=args.per_image_confusion)
    job = {"model": _model_spec(args, evaluate=True), "predictions": args.predictions,
           "pred_binary_mapping": getattr(args, "pred_binary_mapping", None),
           "instance_predictions": args.instance_predictions,
           "instance_score_threshold": args.instance_score_threshold,
           "iou_threshold": args.iou_threshold, "fault": _fault_spec()}
    if job["model"] is None and args.predictions is not None:
        from segstudio.core.evaluation.report import PredictionFolder  # noqa: PLC0415
        # A missing folder is bad input before Ray starts.
        PredictionFolder(args.predictions, table, binary_mapping=job["pred_binary_mapping"])
    if job["model"] is not None:
        from segstudio.commands._common import trust_if_asked  # noqa: PLC0415
        trust_if_asked(args)
    _check_model(job["model"], dataset, warn)
    devices: set[str] = set()

    def on_row(row: dict) -> None:
        if row["device"]:
            devices.add(str(row["device"]))
        if row["error_line"]:
            if failures is not None:
                failures.append(str(row["error_line"]))
            builder.add_failure(str(row["name"]), str(row["error_reason"]))
            return
        instances = None
        if row["iou_sum"]:
            instances = (int(row["tp"]), int(row["fp"]), int(row["fn"]), Fraction(str(row["iou_sum"])))
        confusion = np.asarray(row["confusion"], dtype=np.int64) if row["status"] == "scored" else None
        builder.add(SampleScore(str(row["name"]), str(row["status"]), confusion, instances))

    with ray_session(args) as ray:
        _run_pipeline(ray, args, dataset, EvaluateWorker, job, on_row, progress, info)
    if args.model is not None:
        source = f"{args.model} ({', '.join(sorted(devices)) or args.device})"
    else:
        source = args.predictions if args.predictions is not None else args.instance_predictions
    return builder.report(str(dataset.root), source)


def predict_on_ray(args, dataset, out_dir: Path, *, progress=None, failures: list[str] | None = None,
                   info: dict | None = None) -> tuple[int, str]:
    """``segstudio predict --engine ray``: masks written by the workers; ``(written, device)``."""
    job = {"model": _model_spec(args, evaluate=False), "out": str(out_dir), "fault": _fault_spec()}
    from segstudio.commands._common import trust_if_asked  # noqa: PLC0415
    trust_if_asked(args)
    _check_model(job["model"])
    written = 0
    devices: set[str] = set()
    errors: list[tuple[str, str]] = []

    def on_row(row: dict) -> None:
        nonlocal written
        if row["device"]:
            devices.add(str(row["device"]))
        if row["error_line"]:
            errors.append((str(row["name"]), str(row["error_line"])))
        else:
            written += 1

    with ray_session(args) as ray:
        _run_pipeline(ray, args, dataset, PredictWorker, job, on_row, progress, info)
    if failures is not None:
        # In dataset order, as the local engine reports them.
        order = {s.name: i for i, s in enumerate(dataset)}
        failures.extend(line for _, line in sorted(errors, key=lambda e: order[e[0]]))
    return written, ", ".join(sorted(devices)) or args.device


# ------------------------------------------------------------------------------------------ workers
class _Worker:
    """What both workers share: the dataset, the runner (loaded once) and the fault hook."""

    def __init__(self, job: dict):
        import ray  # noqa: PLC0415

        dataset = job["dataset"]
        self.dataset = ray.get(dataset) if isinstance(dataset, ray.ObjectRef) else dataset
        self.job = job
        self.seen = 0
        self.runner = None
        self.device = ""
        if job["model"] is not None:
            self.runner = self._runner(job["model"], job["cpus"])
            self.device = self.runner.device_name

    @staticmethod
    def _runner(spec: dict, cpus: float):
        import torch  # noqa: PLC0415

        from segstudio.inference.registry import resolve_model  # noqa: PLC0415
        from segstudio.inference.runner import Runner  # noqa: PLC0415

        # One torch thread per reserved CPU: workers side by side must not oversubscribe the cores.
        torch.set_num_threads(max(1, int(cpus)))
        entry = resolve_model(spec["model"], **spec["overrides"])
        kwargs = {"device": spec["device"], "tile_size": spec["tile"], "batch_size": spec["batch_size"]}
        if "overlap" in spec:
            kwargs.update(overlap=spec["overlap"], score_threshold=spec["score_threshold"])
        return Runner(entry, **kwargs)

    def _tick(self) -> None:
        self.seen += 1
        fault = self.job.get("fault")
        if fault and self.seen == fault[0] and not os.path.exists(fault[1]):
            Path(fault[1]).touch()
            os._exit(1)

    def _predictions(self, indices: list[int], rows: dict[int, dict]):
        """``(index, prediction)`` from the runner; a failing image becomes an error row."""
        from segstudio.commands.evaluate import _failure_line  # noqa: PLC0415

        def on_error(index: int, exc: BaseException) -> None:
            rows[index].update(error_line=_failure_line(self.dataset, index, exc),
                               error_reason=getattr(exc, "reason", None) or str(exc))

        return self.runner.predict_dataset(self.dataset, indices=indices, on_error=on_error)


def _row(name: str, device: str) -> dict:
    return {"name": name, "status": "", "confusion": None, "tp": 0, "fp": 0, "fn": 0, "iou_sum": "",
            "error_line": "", "error_reason": "", "fatal": "", "device": device, "rss_mib": 0.0}


def _columns(rows: list[dict], num_classes: int) -> dict[str, np.ndarray]:
    out = {key: np.array([r[key] for r in rows], dtype=object)
           for key in ("name", "status", "iou_sum", "error_line", "error_reason", "fatal", "device")}
    for key in ("tp", "fp", "fn"):
        out[key] = np.array([r[key] for r in rows], dtype=np.int64)
    # This worker process's peak memory so far (KiB on Linux), for the bench and capacity planning.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 if resource is not None else 0.0
    out["rss_mib"] = np.full(len(rows), peak)
    out["confusion"] = np.stack([r["confusion"] if r["confusion"] is not None
                                 else np.zeros((num_classes, num_classes), np.int64) for r in rows])
    return out


class EvaluateWorker(_Worker):
    """Scores a batch of sample names: the local engine's ``score_sample`` on each."""

    def __init__(self, job: dict):
        super().__init__(job)
        from segstudio.core.evaluation.report import PredictionFolder  # noqa: PLC0415

        table = self.dataset.class_table
        self.folder = (PredictionFolder(job["predictions"], table, binary_mapping=job["pred_binary_mapping"])
                       if job["predictions"] is not None else None)
        self.instances = None
        if job["instance_predictions"] is not None:
            from segstudio.core.evaluation.instance_predictions import open_instance_predictions  # noqa: PLC0415
            self.instances = open_instance_predictions(job["instance_predictions"], self.dataset,
                                                       job["instance_score_threshold"])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from segstudio.core.evaluation.report import _split_prediction, score_sample  # noqa: PLC0415

        names = [str(n) for n in batch["name"]]
        indices = [self.dataset.index_of(n) for n in names]
        rows = {i: _row(n, self.device) for i, n in zip(indices, names)}
        values: dict[int, Any] = {}
        if self.runner is not None:
            # As the local engine: the model runs on the samples with ground truth only.
            wanted = [i for i in indices if self.dataset[i].mask_path or self.dataset[i].instance_path]
            for index, prediction in self._predictions(wanted, rows):
                values[index] = prediction
        for index in indices:
            row = rows[index]
            if row["error_line"]:
                self._tick()
                continue
            sample = self.dataset[index]
            try:
                value = values.get(index) if self.runner is not None else (
                    self.folder(sample) if self.folder is not None else None)
                pred, pred_instances = _split_prediction(value)
                if self.instances is not None:
                    pred_instances = self.instances(sample)
                score = score_sample(sample, pred, pred_instances, self.dataset.class_table,
                                     self.job["iou_threshold"])
            except SegStudioError as exc:
                row["fatal"] = str(exc)
                continue
            row["status"] = score.status
            row["confusion"] = score.confusion
            if score.instances is not None:
                tp, fp, fn, iou_sum = score.instances
                row.update(tp=tp, fp=fp, fn=fn, iou_sum=f"{iou_sum.numerator}/{iou_sum.denominator}")
            self._tick()
        return _columns([rows[i] for i in indices], self.dataset.class_table.num_classes)


class PredictWorker(_Worker):
    """Predicts a batch of sample names and writes their masks into the job's ``out`` folder."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from segstudio.commands.predict import write_prediction  # noqa: PLC0415

        names = [str(n) for n in batch["name"]]
        indices = [self.dataset.index_of(n) for n in names]
        rows = {i: _row(n, self.device) for i, n in zip(indices, names)}
        out = Path(self.job["out"])
        for index, prediction in self._predictions(indices, rows):
            try:
                write_prediction(out, self.dataset[index].name, prediction, self.runner.entry.class_table)
            except SegStudioError as exc:
                rows[index]["fatal"] = str(exc)
            except OSError as exc:
                rows[index]["fatal"] = f"{exc.filename or out}: {exc.strerror or exc}"
            self._tick()
        return _columns([rows[i] for i in indices], 1)
