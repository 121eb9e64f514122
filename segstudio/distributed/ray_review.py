"""``--engine ray`` for ``segstudio compare`` and ``segstudio label-errors``: the local engine's report, bit for bit.

The pipeline is ``ray_engine``'s (sample names -> Ray Data blocks -> worker actors holding the
dataset and, for model sources, one loaded ``Runner`` each -> per-image rows -> the driver). Each
worker runs the local engine's own per-image step and ships its integer (or float64) result back
pickled; the driver puts the rows back in dataset order before adding anything up, so every sum,
every float and the bootstrap's resampling (which follows the image order) are the local engine's.

* compare: ``pair_scores`` / ``label_version_scores`` per image -> two confusion matrices and the
  pixel kinds -> ``CompareTotals`` on the driver.
* label-errors, two Ray jobs in one Ray session: pass 1 returns each image's float64 probability
  sums and label counts (``ThresholdAccumulator.image_sums``), which the driver adds image by image
  in dataset order -- the same additions in the same order as locally, hence the same thresholds;
  pass 2 sends those thresholds to the workers and gets each image's regions back
  (``image_label_errors``).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from segstudio.core.errors import PredictionError, SegStudioError
from segstudio.distributed.ray_engine import _fault_spec, _run_pipeline, _Worker, ray_session, resource

__all__ = ["compare_on_ray", "label_errors_on_ray"]


def _model_spec(args, spec: str) -> dict:
    return {"model": spec, "device": args.device, "tile": args.tile, "batch_size": args.batch_size}


def _runner(spec: dict, cpus: float, probabilities: bool = False):
    """The Runner the local command builds for ``spec`` (no overrides), one torch thread per CPU."""
    import torch  # noqa: PLC0415

    from segstudio.inference.registry import resolve_model  # noqa: PLC0415
    from segstudio.inference.runner import Runner  # noqa: PLC0415

    torch.set_num_threads(max(1, int(cpus)))
    return Runner(resolve_model(spec["model"]), device=spec["device"], tile_size=spec["tile"],
                  batch_size=spec["batch_size"], probabilities=probabilities)


def _columns(rows: list[dict]) -> dict[str, np.ndarray]:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 if resource is not None else 0.0
    return {"name": np.array([r["name"] for r in rows], dtype=object),
            "fatal": np.array([r["fatal"] for r in rows], dtype=object),
            "payload": np.array([r["payload"] for r in rows], dtype=object),
            "rss_mib": np.full(len(rows), peak)}


class _ReviewWorker(_Worker):
    """A worker whose model sources are its own runners (``_Worker`` loads none: job ``model`` is None)."""

    def _batch(self, batch) -> tuple[list[int], dict[int, dict]]:
        names = [str(n) for n in batch["name"]]
        indices = [self.dataset.index_of(n) for n in names]
        rows = {i: {"name": n, "fatal": "", "payload": b"", "errors": [], "result": None}
                for i, n in zip(indices, names)}
        return indices, rows

    def _predict(self, runner, label: str, indices: list[int], rows: dict[int, dict]) -> dict[int, Any]:
        """``{index: prediction}`` over the batch's labelled samples; a failure is noted on its row."""
        from segstudio.commands.compare import _failure_line  # noqa: PLC0415

        wanted = [i for i in indices if self.dataset[i].mask_path]

        def on_error(index: int, exc: BaseException) -> None:
            rows[index]["errors"].append(_failure_line(self.dataset, label, index, exc))

        return dict(runner.predict_dataset(self.dataset, indices=wanted, on_error=on_error))

    def _score(self, index: int, row: dict, step: Callable[[], Any]) -> None:
        try:
            row["result"] = step()
        except SegStudioError as exc:
            row["fatal"] = str(exc)
            return
        except OSError as exc:
            row["fatal"] = f"{exc.filename or self.job['dataset_arg']}: {exc.strerror or exc}"
            return
        self._tick()

    def _finish(self, indices: list[int], rows: dict[int, dict], devices: list[str]) -> dict[str, np.ndarray]:
        for row in rows.values():
            row["payload"] = pickle.dumps({"result": row["result"], "errors": row["errors"], "devices": devices})
        return _columns([rows[i] for i in indices])


# ----------------------------------------------------------------------------------------- compare
class CompareWorker(_ReviewWorker):
    """One image of a comparison: the local engine's ``pair_scores`` or ``label_version_scores``."""

    def __init__(self, job: dict):
        super().__init__(job)
        from segstudio.core.evaluation.compare_report import corrected_labels, original_labels  # noqa: PLC0415
        from segstudio.core.evaluation.report import PredictionFolder  # noqa: PLC0415

        table = self.dataset.class_table
        self.sources = []   # (label, PredictionFolder or Runner)
        for kind, value in job["sources"]:
            if kind == "model":
                self.sources.append((value, _runner(_model_spec_from_job(job, value), job["cpus"])))
            else:
                self.sources.append((value, PredictionFolder(value, table)))
        self.labels = None
        if job["versions"] is not None:
            versions = {"original": original_labels,
                        "corrected": corrected_labels(self.dataset, job["corrections"])}
            self.labels = [versions[v] for v in job["versions"]]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from segstudio.core.evaluation.compare_report import label_version_scores, pair_scores  # noqa: PLC0415
        from segstudio.core.evaluation.report import PredictionFolder, _split_prediction  # noqa: PLC0415

        indices, rows = self._batch(batch)
        table = self.dataset.class_table
        lookups = []
        for label, source in self.sources:
            if isinstance(source, PredictionFolder):
                lookups.append(lambda index, sample, folder=source: folder(sample))
            else:
                values = self._predict(source, label, indices, rows)
                lookups.append(lambda index, sample, values=values: values.get(index))
        devices = [getattr(source, "device_name", "") for _, source in self.sources]
        for index in indices:
            sample = self.dataset[index]

            def step():
                preds = [_split_prediction(lookup(index, sample))[0] for lookup in lookups]
                if self.labels is not None:
                    return label_version_scores(sample, preds[0], *self.labels, table)
                return pair_scores(sample, preds[0], preds[1], table)
            self._score(index, rows[index], step)
        return self._finish(indices, rows, devices)


def _model_spec_from_job(job: dict, spec: str) -> dict:
    return dict(job["runner"], model=spec)


def compare_on_ray(args, dataset, source_a: tuple[str, str], source_b: tuple[str, str], *, progress=None,
                   warn: Callable[[str], None] | None = None) -> tuple[dict, list[str], int]:
    """``segstudio compare --engine ray``: ``(report, failure lines, labelled images)``, the report
    equal to the local engine's.

    Raises
    ------
    SegStudioError
        Bad input (on the driver or a worker), or Ray cannot be joined.
    """
    from segstudio.core.evaluation.compare_report import CompareTotals  # noqa: PLC0415
    from segstudio.core.evaluation.report import PredictionFolder  # noqa: PLC0415

    labels = source_a[0] == "labels"
    if labels:
        sources = [("model", args.model) if args.model is not None else ("predictions", args.predictions)]
        versions = [source_a[1], source_b[1]]
    else:
        sources, versions = [source_a, source_b], None
    for kind, value in sources:   # bad input is one line before Ray starts, as locally
        if kind == "model":
            _check_compare_model(args, value, dataset, warn)
        else:
            PredictionFolder(value, dataset.class_table)
    job = {"model": None, "sources": sources, "versions": versions, "corrections": args.corrections,
           "runner": _model_spec(args, ""), "dataset_arg": args.dataset, "fault": _fault_spec()}
    results: dict[int, dict] = {}
    with ray_session(args) as ray:
        _run_pipeline(ray, args, dataset, CompareWorker, job,
                      lambda row: results.__setitem__(dataset.index_of(str(row["name"])),
                                                      pickle.loads(row["payload"])), progress)
    totals, missing, failures, changed = CompareTotals(dataset), [], [], 0
    devices: list[set[str]] = [set() for _ in sources]
    for index, sample in enumerate(dataset):   # dataset order: the sums' and the bootstrap's
        result = results[index]
        failures.extend(result["errors"])
        for seen, device in zip(devices, result["devices"]):
            if device:
                seen.add(device)
        scores = result["result"]
        if scores is None:
            missing.append(sample.name)
        else:
            totals.add(sample.name, *scores[:3])
            changed += bool(labels and scores[3])
    names = [f"{value} ({', '.join(sorted(seen)) or args.device})" if kind == "model" else value
             for (kind, value), seen in zip(sources, devices)]
    if labels:
        report = totals.report(dataset, args.a, args.b, missing, args.resamples, args.seed)
        report["predictions"] = names[0]
        report["corrected_images"] = changed
    else:
        report = totals.report(dataset, names[0], names[1], missing, args.resamples, args.seed)
    total = sum(1 for s in dataset if s.mask_path)
    return report, failures, total


def _check_compare_model(args, spec: str, dataset, warn) -> None:
    from segstudio.commands.compare import _Models  # noqa: PLC0415
    from segstudio.inference.model_trust import needs_trust, trust_file  # noqa: PLC0415
    from segstudio.inference.registry import resolve_model  # noqa: PLC0415

    _Models(args, dataset).check_spec(spec)
    if args.trust_model:
        path = needs_trust(spec)
        if path is not None:
            trust_file(path)
    entry = resolve_model(spec)
    if warn is not None and entry.class_table.num_classes != dataset.class_table.num_classes:
        warn(f"warning: {spec} has {entry.class_table.num_classes} classes, the dataset "
             f"{dataset.class_table.num_classes}")


# ------------------------------------------------------------------------------------ label errors
class LabelErrorWorker(_ReviewWorker):
    """One image of one pass of label-errors: ``threshold_sums`` (pass 1) or ``image_label_errors`` (pass 2)."""

    def __init__(self, job: dict):
        super().__init__(job)
        from segstudio.core.evaluation.label_error_report import ProbabilityFolder  # noqa: PLC0415

        c = self.dataset.class_table.num_classes
        self.folder = self.runner_ = None
        save_dir = job["save_probabilities"]
        if job["probabilities"] is not None:
            self.folder = ProbabilityFolder(job["probabilities"], c)
        elif job["pass"] == 2 and save_dir is not None:
            self.folder = ProbabilityFolder(save_dir, c)   # written by pass 1, as locally
        else:
            self.runner_ = _runner(dict(job["runner"], model=job["label_model"]), job["cpus"], probabilities=True)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from segstudio.core.evaluation.label_error_report import (ThresholdAccumulator,  # noqa: PLC0415
                                                                  image_label_errors, save_probabilities,
                                                                  threshold_sums)

        indices, rows = self._batch(batch)
        table = self.dataset.class_table
        job = self.job
        if self.folder is not None:
            lookup = self.folder
        else:
            values = self._predict(self.runner_, job["label_model"], indices, rows)
            save_dir = Path(job["save_probabilities"]) if job["save_probabilities"] else None

            def lookup(index, sample, shape):   # the local engine's (commands/label_errors.py)
                prediction = values.get(index)
                if prediction is None:
                    return None
                if prediction.probabilities.shape[1:] != tuple(shape):
                    raise PredictionError(sample.image_path, f"the model's output is "
                                          f"{prediction.probabilities.shape[1:]} but the labels are {tuple(shape)}")
                if save_dir is not None:
                    save_probabilities(save_dir, sample.name, prediction.probabilities)
                return prediction.probabilities
        acc = ThresholdAccumulator(table.num_classes)
        for index in indices:
            sample = self.dataset[index]
            if job["pass"] == 1:
                step = lambda: threshold_sums(acc, index, sample, lookup, table.ignore_index)  # noqa: E731
            else:
                step = lambda: image_label_errors(index, sample, lookup, job["thresholds"],  # noqa: E731
                                                  table.ignore_index, job["min_area"], job["min_width"])
            self._score(index, rows[index], step)
        device = self.runner_.device_name if self.runner_ is not None else ""
        return self._finish(indices, rows, [device])


def label_errors_on_ray(args, dataset, *, progress=None) -> tuple[dict, dict[int, str], int]:
    """``segstudio label-errors --engine ray``: ``(report, {index: failure line}, labelled images)``,
    the report equal to the local engine's.

    Raises
    ------
    SegStudioError
        Bad input (on the driver or a worker), or Ray cannot be joined.
    """
    from segstudio.core.evaluation.label_error_report import (ProbabilityFolder,  # noqa: PLC0415
                                                              ThresholdAccumulator, label_error_report)

    table = dataset.class_table
    count = len(dataset)
    if args.probabilities is not None:
        source = str(ProbabilityFolder(args.probabilities, table.num_classes).path)
    else:
        from segstudio.commands.label_errors import check_label_model  # noqa: PLC0415
        check_label_model(args, dataset)
        if args.save_probabilities:
            Path(args.save_probabilities).mkdir(parents=True, exist_ok=True)
    job = {"model": None, "label_model": args.model, "probabilities": args.probabilities,
           "save_probabilities": args.save_probabilities, "runner": _model_spec(args, ""),
           "min_area": args.min_area, "min_width": args.min_width, "dataset_arg": args.dataset,
           "fault": _fault_spec()}
    failures: dict[int, str] = {}
    devices: set[str] = set()

    def collect(results: dict[int, dict]) -> Callable[[dict], None]:
        def on_row(row: dict) -> None:
            index = dataset.index_of(str(row["name"]))
            result = results[index] = pickle.loads(row["payload"])
            if result["errors"]:
                failures.setdefault(index, result["errors"][0])   # an image failing twice is reported once
            devices.update(d for d in result["devices"] if d)
        return on_row

    first: dict[int, dict] = {}
    second: dict[int, dict] = {}
    with ray_session(args) as ray:
        _run_pipeline(ray, args, dataset, LabelErrorWorker, dict(job, **{"pass": 1}), collect(first),
                      None if progress is None else lambda done, _n: progress(done, 2 * count))
        acc = ThresholdAccumulator(table.num_classes)
        missing = []
        for index, sample in enumerate(dataset):   # dataset order: the local engine's float64 additions
            sums = first[index]["result"]
            if sums is None:
                missing.append(sample.name)
            else:
                acc.add_sums(*sums)
        thresholds = acc.thresholds()
        skip = set(missing)
        scored = _subset(dataset, skip)   # pass 2 skips what pass 1 found missing, as locally
        _run_pipeline(ray, args, scored, LabelErrorWorker, dict(job, **{"pass": 2, "thresholds": thresholds}),
                      collect(second), None if progress is None else lambda done, _n: progress(count + done, 2 * count))
    if progress is not None:
        progress(2 * count, 2 * count)
    regions, images = [], []
    for index in range(count):
        found = second.get(index, {}).get("result")
        if found is not None:
            regions.extend(found[0])
            images.append(found[1])
    if args.probabilities is None:
        source = f"{args.model} ({', '.join(sorted(devices)) or args.device})"
    report = label_error_report(dataset, source, args.min_area, args.min_width, thresholds, regions, images,
                                missing)
    return report, failures, sum(1 for s in dataset if s.mask_path)


def _subset(dataset, skip: set[str]):
    """The dataset without the samples named in ``skip`` (same root, kind, classes)."""
    from segstudio.core.io.datasets import Dataset  # noqa: PLC0415

    part = Dataset(dataset.root, dataset.kind, dataset.class_table, [s for s in dataset if s.name not in skip],
                   split=dataset.split)
    part.warnings = list(dataset.warnings)
    return part
