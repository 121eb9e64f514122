"""``segstudio merge-reports``: sum the JSON reports of sharded or separate evaluate runs exactly.

Prints the merged summary on stdout and writes ``--report`` (``.json`` or ``.csv``) atomically.
Reports that cannot be merged (different classes or settings, an image in two reports, a CSV or
an older report without raw counts) end the run with one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse

from segstudio.commands._common import print_error, print_stdout, write_report

PROG = "segstudio merge-reports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``segstudio merge-reports``."""
    parser.add_argument("reports", nargs="+", metavar="REPORT.json",
                        help="JSON reports written by 'segstudio evaluate --report'")
    parser.add_argument("--report", metavar="FILE", default=None,
                        help="write the merged report to FILE.json or FILE.csv")
    parser.add_argument("--stats", metavar="FILE.parquet", default=None,
                        help="also write the per-image statistics of the merged report as Parquet")


def run(args: argparse.Namespace) -> int:
    """Merge; return 0, or 2 for reports that cannot be merged or a report that cannot be written."""
    from segstudio.core.evaluation.merge import load_report, merge_reports  # noqa: PLC0415
    from segstudio.core.evaluation.report import format_summary, write_report as write_json_or_csv  # noqa: PLC0415
    from segstudio.core.errors import SegStudioError  # noqa: PLC0415

    if args.report and not args.report.lower().endswith((".json", ".csv")):
        return print_error(PROG, f"{args.report}: the report must be a .json or .csv file")
    if args.stats and not args.stats.lower().endswith(".parquet"):
        return print_error(PROG, f"{args.stats}: --stats writes a .parquet file")
    try:
        merged = merge_reports([load_report(p) for p in args.reports], list(args.reports))
    except SegStudioError as exc:
        return print_error(PROG, str(exc))
    print_stdout(format_summary(merged))
    code = write_report(PROG, merged, args.report, write_json_or_csv)
    if code is not None:
        return code
    if args.stats:
        from segstudio.commands.engines.options import write_stats_or_error  # noqa: PLC0415
        return write_stats_or_error(PROG, merged, args.stats)
    return 0
