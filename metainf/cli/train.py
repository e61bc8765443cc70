"""`metainf train`: train MetaInf on a P file, a campaign or an external table."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from metainf.cli.common import CliError, add_mapping_flags, add_source_flags, load_table

log = logging.getLogger("metainf")


def add_parser(sub) -> None:
    """Register `metainf train`."""
    p = sub.add_parser(
        "train", help="train MetaInf on a P file, a campaign or an external table",
        description="Train the MetaInf selector and save it as a new version under --out.")
    add_source_flags(p, "P export or any benchmark .parquet/.csv")
    add_mapping_flags(p)
    p.add_argument("--out", required=True, metavar="MODEL_DIR",
                   help="model directory (versions are kept; LATEST names the newest)")
    p.add_argument("--style", default="rich", choices=("onehot", "basic", "rich", "cot"),
                   help="description style (default rich)")
    p.add_argument("--svd-k", type=int, default=16, help="SVD dimensions per axis (default 16)")
    p.add_argument("--embedder", metavar="DIR",
                   help="local sentence-transformer directory (default: packaged MiniLM)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unseen", default="hardware", choices=("hardware", "model", "task"),
                   help="what the model will be asked about that it never measured; its "
                        "inner validation holds out whole hardware (default), whole models, "
                        "or tasks")
    p.add_argument("--n-estimators", type=int, default=None,
                   help="XGBoost trees (default: the level head 400, the ranking head chosen "
                        "by inner cross-validation)")
    p.add_argument("--no-search", action="store_true",
                   help="fit the ranking head with the XGBoost defaults instead of choosing "
                        "its depth, leaf weight and trees by inner cross-validation (faster)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    if args.svd_k < 1:
        raise CliError(f"--svd-k: must be at least 1 (got {args.svd_k})")
    if args.embedder and not Path(args.embedder).is_dir():
        raise CliError(f"--embedder: {args.embedder} is not a directory")
    xgb: dict[str, Any] = {}
    if args.n_estimators is not None:
        if args.n_estimators < 1:
            raise CliError("--n-estimators: must be at least 1")
        xgb["n_estimators"] = args.n_estimators
    if args.no_search:
        xgb["search"] = False
    return xgb


def run(args: argparse.Namespace) -> int:
    """Train a new model version; print its version (or a JSON summary)."""
    from metainf.selector.training import train

    xgb = _options(args)
    with tempfile.TemporaryDirectory(prefix="metainf-train-") as tmp:
        table = load_table(args, Path(tmp))
        try:
            model = train(table, args.out, style=args.style, svd_k=args.svd_k,
                          embedder_path=args.embedder, seed=args.seed, unseen=args.unseen,
                          **xgb)
        except OSError as exc:
            raise CliError(f"--out: {exc}") from None
    summary = {"model_version": model.version, "path": str(model.path),
               "n_tasks": model.info["n_tasks"], "n_pairs": model.info["n_pairs"],
               "methods": model.methods, "metric": model.metric,
               "lower_is_better": model.minimize, "train_seconds": model.info["train_seconds"],
               "unseen": args.unseen}
    log.info("trained MetaInf %s on %d tasks (%d measured pairs) in %.1f s -> %s",
             model.version, summary["n_tasks"], summary["n_pairs"],
             summary["train_seconds"], model.path)
    print(json.dumps(summary) if args.json else model.version)
    return 0
