"""The scale-out options of ``evaluate`` and ``predict`` and their checks (no Ray, no torch here).

``--engine local|ray`` with ``--ray-address``, ``--workers``, ``--gpus-per-worker`` and
``--cpus-per-worker``; ``--shard i/N`` (0-based ``i``) keeps every N-th sample of the dataset sorted
by name, so N jobs of a Slurm array cover it exactly once and ``merge-reports`` adds them up.
"""
from __future__ import annotations

import argparse
import importlib.util

from segstudio.commands._common import print_error

__all__ = ["RAY_HINT", "add_engine_arguments", "check_engine_arguments", "parse_shard", "shard_dataset",
           "write_stats_or_error"]

RAY_HINT = "--engine ray needs `pip install segstudio[ray]`"


def add_engine_arguments(parser: argparse.ArgumentParser, *, stats: bool = True, shard_help: str | None = None) -> None:
    """Declare ``--engine``, the Ray options, ``--shard`` (``shard_help`` replaces its help) and (for
    evaluate) ``--stats``."""
    group = parser.add_argument_group("scaling out")
    group.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="run here (local, default) or on Ray workers (ray)")
    group.add_argument("--ray-address", metavar="auto|ADDRESS", default=None,
                       help="Ray cluster to join: 'auto' (the one `ray start` runs here) or host:port; "
                       "default: start a Ray for this run on this machine")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="Ray workers, each holding one loaded model (default: CPUs / --cpus-per-worker)")
    group.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="F",
                       help="GPUs each Ray worker reserves (e.g. 1, or 0.5 to share a GPU; default 0)")
    group.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="F",
                       help="CPUs each Ray worker reserves; its torch threads follow (default 1)")
    group.add_argument("--shard", metavar="i/N", default=None,
                       help=shard_help or "only the i-th of N parts of the dataset sorted by name (i from 0), "
                       "for job arrays; merge the reports with 'segstudio merge-reports'")
    if stats:
        group.add_argument("--stats", metavar="FILE.parquet", default=None,
                           help="write per-image statistics as Parquet (the GUI's review queue loads them)")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` -> ``(i, N)``; ``None`` -> ``None``.

    Raises
    ------
    ValueError
        With the message to print.
    """
    if text is None:
        return None
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text}: expected i/N, e.g. 0/8") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: needs N >= 1 and 0 <= i < N (shards count from 0)")
    return i, n


def check_engine_arguments(args: argparse.Namespace) -> str | None:
    """The problem with the scaling options, or ``None``; Ray's absence included."""
    try:
        parse_shard(getattr(args, "shard", None))
    except ValueError as exc:
        return str(exc)
    if args.workers is not None and args.workers < 1:
        return f"--workers: {args.workers}: must be at least 1"
    if args.gpus_per_worker < 0:
        return f"--gpus-per-worker: {args.gpus_per_worker}: must not be negative"
    if args.cpus_per_worker <= 0:
        return f"--cpus-per-worker: {args.cpus_per_worker}: must be positive"
    if args.engine == "local" and (args.ray_address is not None or args.workers is not None):
        return "--ray-address and --workers need --engine ray"
    if args.engine == "ray" and getattr(args, "device", None) == "cuda" and not args.gpus_per_worker:
        return "--device cuda with --engine ray needs --gpus-per-worker F (Ray hides GPUs from workers that reserve none)"
    if args.engine == "ray" and not ray_available():
        return RAY_HINT
    stats = getattr(args, "stats", None)
    if stats and not stats.lower().endswith(".parquet"):
        return f"{stats}: --stats writes a .parquet file"
    if stats and importlib.util.find_spec("pyarrow") is None:
        from segstudio.core.evaluation.stats import PARQUET_HINT  # noqa: PLC0415
        return PARQUET_HINT
    return None


def ray_available() -> bool:
    """Whether Ray with Ray Data imports (the run needs both right after this check)."""
    try:
        import ray  # noqa: F401, PLC0415
        import ray.data  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def shard_dataset(dataset, shard: tuple[int, int] | None):
    """The samples of shard ``(i, N)``: every N-th one of the samples sorted by name, from the i-th;
    the dataset itself when ``shard`` is None. Sorting by name (not listing order) makes the split the
    same on every node whatever the filesystem lists first."""
    if shard is None:
        return dataset
    from segstudio.core.io.datasets import Dataset  # noqa: PLC0415

    i, n = shard
    names = sorted(s.name for s in dataset)[i::n]
    keep = set(names)
    part = Dataset(dataset.root, dataset.kind, dataset.class_table,
                   [s for s in dataset if s.name in keep], split=dataset.split)
    part.warnings = list(dataset.warnings)
    return part


def write_stats_or_error(prog: str, report: dict, path: str) -> int:
    """Write ``--stats``; 0, or 2 with one line when it cannot be written."""
    from segstudio.core.evaluation.stats import write_stats  # noqa: PLC0415
    from segstudio.core.errors import SegStudioError  # noqa: PLC0415

    try:
        write_stats(report, path)
    except SegStudioError as exc:
        return print_error(prog, str(exc))
    except OSError as exc:
        return print_error(prog, f"{path}: cannot write the statistics: {exc.strerror or exc}")
    return 0
