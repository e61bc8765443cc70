"""`metainf report`: an HTML report with plots of a P (and of an evaluation)."""

from __future__ import annotations

import argparse
from pathlib import Path

from metainf.cli.common import CliError, add_source_flags, p_path


def add_parser(sub) -> None:
    """Register `metainf report`."""
    p = sub.add_parser("report", help="HTML report with plots of a campaign (and an evaluation)")
    add_source_flags(p, "an exported P (.parquet or .csv)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for index.html and plots")
    p.add_argument("--evaluation", metavar="DIR",
                   help="output folder of `metainf evaluate` to include")
    p.add_argument("--metric", default="runtime_s",
                   help="metric to plot: a measured column of P (default runtime_s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report; print the path of its index.html."""
    from metainf.report.html import report_from_file
    from metainf.report.tables import METRICS

    if args.metric not in METRICS:
        raise CliError(f"--metric: unknown {args.metric!r}; known: {', '.join(sorted(METRICS))}")
    data = p_path(args, Path(args.out))
    try:
        index = report_from_file(data, args.out, args.evaluation, metric=args.metric)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(index)
    return 0
