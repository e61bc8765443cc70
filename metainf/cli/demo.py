"""`metainf demo`: a local farm end to end, from workers to a Select answer."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    """Register `metainf demo`."""
    p = sub.add_parser("demo", help="coordinator + 2 local workers + a small real campaign")
    p.add_argument("--dir", default="demo-run", help="folder for the database and outputs")
    p.add_argument("--quick", action="store_true", help="4 methods instead of 8")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo in --dir."""
    from metainf.demo import run_demo

    return run_demo(Path(args.dir), quick=args.quick)
