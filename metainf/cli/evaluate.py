"""`metainf evaluate`: parse, validate, run the evaluation, write the report."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from metainf.cli.common import CliError, add_mapping_flags, add_source_flags, load_table

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    """Register `metainf evaluate`."""
    p = sub.add_parser(
        "evaluate", help="compare MetaInf with the baselines under a protocol",
        description="Evaluate MetaInf and the baselines on a performance table: writes "
                    "metrics.csv, summary.md, ablation.csv and plots under --out.")
    add_source_flags(p, "performance table: a farm P export or any .csv/.parquet")
    add_mapping_flags(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--protocol", default=None,
                   help="random|loho|lomo|kfold, or several joined by ',' (default: random)")
    p.add_argument("--holdout-col", help="also leave out one value of this column at a time")
    p.add_argument("--selectors", default="all", help="all, or names joined by ','")
    p.add_argument("--styles", default="rich",
                   help="description styles (onehot,basic,rich,cot); the main comparison "
                        "uses rich if listed, else the first; more than one value of "
                        "--styles or --svd-k also runs the MetaInf ablation grid")
    p.add_argument("--svd-k", default="16",
                   help="SVD sizes, e.g. 16,64 (the main comparison uses the first)")
    p.add_argument("--embedder", metavar="DIR",
                   help="local sentence-transformer directory (default: all-MiniLM-L6-v2)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: local)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray")
    p.add_argument("--serial", action="store_true", help="run in-process without Ray")
    p.add_argument("--n-test", type=int, default=1000,
                   help="random protocol: number of held-out tasks (capped by the table)")
    p.add_argument("--n-splits", type=int, default=5,
                   help="random protocol: splits the test tasks spread over; kfold: k")
    p.add_argument("--seed", type=int, default=0, help="seed of splits and models")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _ints(flag: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CliError(f"{flag}: give integers joined by ',' (got {text!r})") from None
    if not values or min(values) < 1:
        raise CliError(f"{flag}: give integers >= 1 (got {text!r})")
    return values


def config_from_args(args: argparse.Namespace):
    """Validate the flags into an EvaluationConfig."""
    from metainf.selector.baselines.registry import UnknownSelectorError, parse_selectors
    from metainf.selector.descriptions import STYLES
    from metainf.selector.evaluation.fold_data import FeatureConfig
    from metainf.selector.evaluation.protocols import PROTOCOLS
    from metainf.selector.evaluation.runner import EvaluationConfig, ProtocolSpec

    try:
        selectors = tuple(parse_selectors(args.selectors))
    except UnknownSelectorError as exc:
        raise CliError(f"--selectors: {exc}") from None
    protocols = []
    if args.protocol:
        for name in (s.strip() for s in args.protocol.split(",") if s.strip()):
            if name not in PROTOCOLS:
                raise CliError(
                    f"--protocol: unknown {name!r}; known: {', '.join(PROTOCOLS)}")
            protocols.append(ProtocolSpec(name))
    if args.holdout_col:
        protocols.append(ProtocolSpec("holdout", args.holdout_col))
    if not protocols:
        protocols.append(ProtocolSpec("random"))
    styles = tuple(s.strip() for s in args.styles.split(",") if s.strip())
    bad = [s for s in styles if s not in STYLES]
    if bad or not styles:
        raise CliError(f"--styles: unknown {bad or args.styles!r}; known: "
                                 f"{', '.join(STYLES)}")
    ks = _ints("--svd-k", args.svd_k)
    for flag, value in (("--n-test", args.n_test), ("--n-splits", args.n_splits)):
        if value < 1:
            raise CliError(f"{flag}: must be >= 1 (got {value})")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise CliError(f"--num-cpus: must be >= 1 (got {args.num_cpus})")
    main = FeatureConfig("rich" if "rich" in styles else styles[0], ks[0])
    grid = tuple(FeatureConfig(s, k) for s in styles for k in ks)
    return EvaluationConfig(
        selectors=selectors, protocols=tuple(protocols), features=main,
        ablation=grid if len(grid) > 1 else (), n_test=args.n_test, n_splits=args.n_splits,
        k=args.n_splits, seed=args.seed, serial=args.serial, ray_address=args.ray_address,
        num_cpus=args.num_cpus, progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation and write the report; print the path of summary.md."""
    from metainf.selector.evaluation.protocols import ProtocolError
    from metainf.selector.evaluation.report import write_report
    from metainf.selector.evaluation.runner import run_evaluation

    config = config_from_args(args)
    with tempfile.TemporaryDirectory(prefix="metainf-eval-") as tmp:
        table = load_table(args, Path(tmp))
    source = str(args.data or f"campaign {args.campaign}")
    log.info("table %s: %d tasks x %d methods", source, table.n_tasks, len(table.methods))
    embedder = None
    if args.embedder:
        if not Path(args.embedder).is_dir():
            raise CliError(f"--embedder: {args.embedder} is not a directory")
        from metainf.selector.embeddings import Embedder

        embedder = Embedder(model_path=args.embedder)
    try:
        result = run_evaluation(table, config, embedder=embedder)
    except ProtocolError as exc:
        raise CliError(f"{exc.flag}: {exc}") from None
    paths = write_report(result, args.out, source)
    if "digest" in paths:  # the figures for the person at the terminal; stdout is the path
        sys.stderr.write(paths["digest"].read_text(encoding="utf-8"))
    print(paths["summary"])
    return 0
