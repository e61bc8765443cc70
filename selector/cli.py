"""The `metainf train` and `metainf select` subcommands: parse, validate, call the library."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SELECT_DEADLINE_S = 30.0
"""Deadline of a Select RPC, in seconds."""


class _InputError(Exception):
    """Bad command-line input: one line on stderr naming the field, exit code 2."""


def _fail(message: str) -> int:
    print(f"metainf: {message}", file=sys.stderr)
    return 2


# --------------------------------------------------------------------------- train


def add_mapping_flags(p: argparse.ArgumentParser) -> None:
    """The mapping flags of an external table (DESIGN.md)."""
    g = p.add_argument_group("mapping flags (external tables; a farm P needs none)")
    g.add_argument("--task-cols", metavar="A,B,C",
                   help="columns that identify a task (may include hardware and model)")
    g.add_argument("--method-col", metavar="M", help="column naming the method")
    g.add_argument("--metric-col", metavar="X", help="column holding the metric")
    direction = g.add_mutually_exclusive_group()
    direction.add_argument("--minimize", dest="minimize", action="store_const", const=True,
                           help="lower metric is better (runtime, latency)")
    direction.add_argument("--maximize", dest="minimize", action="store_const", const=False,
                           help="higher metric is better (throughput)")
    g.add_argument("--hardware-col", metavar="H", help="column describing the hardware")
    g.add_argument("--model-col", metavar="M2", help="column naming the model")


def mapping_from_args(args: argparse.Namespace):
    """The TableMapping the flags ask for; None for a farm P with default metric."""
    from metainf.selector.table import FARM_MAPPING, TableMapping

    given = {k: getattr(args, k, None) for k in ("task_cols", "method_col", "metric_col",
                                                 "minimize", "hardware_col", "model_col")}
    if all(v is None for v in given.values()):
        return None
    if given["metric_col"] is not None and given["minimize"] is None:
        raise _InputError("--metric-col: say its direction with --minimize or --maximize")
    if given["task_cols"] is None:
        # A farm P with another metric (e.g. throughput_tok_s --maximize).
        base = FARM_MAPPING
        cols = base.task_cols
    else:
        cols = tuple(c.strip() for c in given["task_cols"].split(",") if c.strip())
        if not cols:
            raise _InputError("--task-cols: name at least one column")
        missing = [f for f in ("method_col", "metric_col") if given[f] is None]
        if missing:
            flags = ", ".join("--" + f.replace("_", "-") for f in missing)
            raise _InputError(f"{flags}: required with --task-cols")
        base = None
    return TableMapping(
        task_cols=cols,
        method_col=given["method_col"] or (base.method_col if base else ""),
        metric_col=given["metric_col"] or (base.metric_col if base else ""),
        minimize=given["minimize"] if given["minimize"] is not None else True,
        hardware_col=given["hardware_col"] if given["task_cols"] is not None
        else (given["hardware_col"] or FARM_MAPPING.hardware_col),
        model_col=given["model_col"] if given["task_cols"] is not None
        else (given["model_col"] or FARM_MAPPING.model_col),
    )


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register `metainf train`."""
    p = subparsers.add_parser(
        "train", help="train MetaInf on a P file, a campaign or an external table",
        description="Train the MetaInf selector and save it as a new version under --out.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="FILE", help="P export or any benchmark .parquet/.csv")
    src.add_argument("--campaign", metavar="ID", help="train on a campaign of the farm")
    p.add_argument("--coordinator", metavar="HOST:PORT", help="coordinator (with --campaign)")
    p.add_argument("--token-file", default=os.environ.get("METAINF_TOKEN_FILE"),
                   help="file holding the farm token (or METAINF_TOKEN_FILE)")
    add_mapping_flags(p)
    p.add_argument("--out", required=True, metavar="MODEL_DIR",
                   help="model directory (versions are kept; LATEST names the newest)")
    p.add_argument("--style", default="rich", choices=("onehot", "basic", "rich", "cot"),
                   help="description style (default rich)")
    p.add_argument("--svd-k", type=int, default=16, help="SVD dimensions per axis (default 16)")
    p.add_argument("--embedder", metavar="DIR",
                   help="local sentence-transformer directory (default: packaged MiniLM)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-estimators", type=int, default=None,
                   help="XGBoost trees (default: the level head 400, the ranking head chosen "
                        "by inner cross-validation)")
    p.add_argument("--no-search", action="store_true",
                   help="fit the ranking head with the XGBoost defaults instead of choosing "
                        "its depth, leaf weight and trees by inner cross-validation (faster)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run_train)
    return p


def run_train(args: argparse.Namespace) -> int:
    """Handler of `metainf train`."""
    from metainf.selector.artifact import train
    from metainf.selector.table import PerfTable, TableError

    try:
        mapping = mapping_from_args(args)
        if args.svd_k < 1:
            raise _InputError(f"--svd-k: must be at least 1 (got {args.svd_k})")
        if args.embedder and not Path(args.embedder).is_dir():
            raise _InputError(f"--embedder: {args.embedder} is not a directory")
        if args.campaign and not args.coordinator:
            raise _InputError("--coordinator: required with --campaign")
    except _InputError as exc:
        return _fail(str(exc))
    xgb: dict[str, Any] = {}
    if args.n_estimators is not None:
        if args.n_estimators < 1:
            return _fail("--n-estimators: must be at least 1")
        xgb["n_estimators"] = args.n_estimators
    if args.no_search:
        xgb["search"] = False
    with tempfile.TemporaryDirectory(prefix="metainf-train-") as tmp:
        if args.campaign:
            from metainf.coordinator.client import export_campaign

            data = export_campaign(args.coordinator, args.campaign,
                                   Path(tmp) / f"{args.campaign}.parquet", args.token_file)
        else:
            data = Path(args.data)
        try:
            table = PerfTable.load(data, mapping)
        except TableError as exc:
            return _fail(f"--data: {exc}")
        except (OSError, ValueError) as exc:
            return _fail(f"--data: cannot read {data}: {exc}")
        try:
            model = train(table, args.out, style=args.style, svd_k=args.svd_k,
                          embedder_path=args.embedder, seed=args.seed, **xgb)
        except (OSError, FileNotFoundError) as exc:
            return _fail(f"--out: {exc}")
    summary = {"model_version": model.version, "path": str(model.path),
               "n_tasks": model.info["n_tasks"], "n_pairs": model.info["n_pairs"],
               "methods": model.methods, "metric": model.metric,
               "lower_is_better": model.minimize, "train_seconds": model.info["train_seconds"]}
    log.info("trained MetaInf %s on %d tasks (%d measured pairs) in %.1f s -> %s",
             model.version, summary["n_tasks"], summary["n_pairs"],
             summary["train_seconds"], model.path)
    print(json.dumps(summary) if args.json else model.version)
    return 0


# --------------------------------------------------------------------------- select


def add_select_parser(subparsers) -> argparse.ArgumentParser:
    """Register `metainf select`."""
    p = subparsers.add_parser(
        "select", help="ask which method (and hardware) to use",
        description="Pick the best method x hardware within a budget from a trained model. "
                    "A price for unseen hardware can be written in its text, e.g. '$3.5/h'.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--coordinator", metavar="HOST:PORT", help="ask a running coordinator")
    where.add_argument("--model-dir", metavar="DIR", help="answer locally from a model dir")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", metavar="NAME", help="model name (catalog or training table)")
    who.add_argument("--model-text", metavar="T", help="free-text description of the model")
    p.add_argument("--hardware", action="append", default=[], metavar="NAME",
                   help="known or catalog hardware name (repeat for several)")
    p.add_argument("--hardware-text", action="append", default=[], metavar="T",
                   help="free-text hardware spec (repeat for several)")
    p.add_argument("--all-farm-hardware", action="store_true",
                   help="choose among every hardware class registered with the farm")
    p.add_argument("--workload", required=True, metavar="JSON",
                   help="workload statistics, spec or label (a JSON object)")
    p.add_argument("--methods", metavar="A,B", help="candidate methods (default: those known "
                                                    "for the hardware)")
    p.add_argument("--budget", type=float, default=None, help="cost budget (price x runtime)")
    p.add_argument("--objective", default="runtime", choices=("runtime", "throughput", "cost"))
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    p.add_argument("--token-file", default=os.environ.get("METAINF_TOKEN_FILE"),
                   help="file holding the farm token (or METAINF_TOKEN_FILE)")
    p.set_defaults(func=run_select)
    return p


def _check_select_args(args: argparse.Namespace) -> dict[str, Any]:
    try:
        workload = json.loads(args.workload)
    except json.JSONDecodeError as exc:
        raise _InputError(f"--workload: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(workload, dict):
        raise _InputError("--workload: must be a JSON object such as "
                          "'{\"workload\": \"...\", \"batch_size\": 8}'")
    if args.budget is not None and (not math.isfinite(args.budget) or args.budget < 0):
        raise _InputError(f"--budget: must be a finite number >= 0 (got {args.budget})")
    if args.model is not None and not args.model.strip():
        raise _InputError("--model: empty")
    if args.model_text is not None and not args.model_text.strip():
        raise _InputError("--model-text: empty")
    if not (args.hardware or args.hardware_text or args.all_farm_hardware):
        raise _InputError("--hardware: give at least one --hardware or --hardware-text")
    if args.all_farm_hardware and not args.coordinator:
        raise _InputError("--all-farm-hardware: needs --coordinator")
    methods = [m.strip() for m in (args.methods or "").split(",") if m.strip()]
    if args.methods is not None and not methods:
        raise _InputError("--methods: name at least one method")
    return {"workload": workload, "methods": methods}


def run_select(args: argparse.Namespace) -> int:
    """Handler of `metainf select`."""
    try:
        checked = _check_select_args(args)
    except _InputError as exc:
        return _fail(str(exc))
    if args.coordinator:
        result = _select_remote(args, checked)
    else:
        result = _select_local(args, checked)
    if isinstance(result, int):
        return result
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_selection(result)
    return 0


def _select_local(args: argparse.Namespace, checked: dict[str, Any]) -> dict | int:
    from metainf.selector.artifact import ModelNotFoundError, load_model
    from metainf.selector.selection import HardwareOption, SelectionError, SelectQuery, select

    try:
        model = load_model(args.model_dir)
    except ModelNotFoundError as exc:
        return _fail(f"--model-dir: {exc}")
    query = SelectQuery(
        model=args.model or "", model_text=args.model_text or "",
        hardware=tuple([HardwareOption(name=h) for h in args.hardware]
                       + [HardwareOption(text=t) for t in args.hardware_text]),
        workload=checked["workload"], methods=tuple(checked["methods"]),
        budget=args.budget, objective=args.objective)
    try:
        return select(model, query).to_dict()
    except SelectionError as exc:
        return _fail(str(exc))


def _select_remote(args: argparse.Namespace, checked: dict[str, Any]) -> dict | int:
    import grpc

    from metainf.coordinator.client import channel
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    request = farm_pb2.SelectRequest(
        model=args.model or "", model_text=args.model_text or "",
        hardware=[farm_pb2.HardwareOption(name=h) for h in args.hardware]
        + [farm_pb2.HardwareOption(text=t) for t in args.hardware_text],
        workload_json=json.dumps(checked["workload"]), methods=checked["methods"],
        objective=args.objective, all_farm_hardware=args.all_farm_hardware)
    if args.budget is not None:
        request.budget = args.budget
    try:
        with channel(args.coordinator, args.token_file) as ch:
            resp = farm_pb2_grpc.SelectorStub(ch).Select(request, timeout=SELECT_DEADLINE_S)
    except grpc.RpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
    return response_to_dict(resp, budget=args.budget, objective=args.objective)


def response_to_dict(resp, budget: float | None = None, objective: str = "runtime") -> dict:
    """A SelectResponse as the `select --json` object (same shape as a local answer)."""
    return {"method": resp.method, "hardware": resp.hardware, "feasible": resp.feasible,
            "model_version": resp.model_version,
            "candidates": [{"method": c.method, "hardware": c.hardware,
                            "predicted": c.predicted, "cost": c.cost if c.cost > 0 else None,
                            "feasible": c.feasible} for c in resp.candidates],
            "nearest_known_hardware": dict(resp.nearest_known_hardware),
            "metric": resp.metric, "lower_is_better": resp.lower_is_better,
            "objective": objective, "budget": budget, "message": resp.message}


def print_selection(result: dict, file=None) -> None:
    """A small table of the candidates, the choice marked, then the message."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=120)
    table = Table(title=f"MetaInf {result['model_version']} ({result['objective']})")
    table.add_column("")
    table.add_column("method")
    table.add_column("hardware")
    table.add_column(f"predicted {result['metric']}", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("within budget")
    for c in result["candidates"]:
        chosen = c["method"] == result["method"] and c["hardware"] == result["hardware"]
        cost = "?" if c["cost"] is None else f"{c['cost']:.4g}"
        table.add_row("*" if chosen else "", c["method"], c["hardware"],
                      f"{c['predicted']:.4g}", cost, "yes" if c["feasible"] else "no")
    console.print(table)
    for label, near in result.get("nearest_known_hardware", {}).items():
        console.print(f"{label}: unseen hardware, nearest known is {near}")
    console.print(result["message"])
