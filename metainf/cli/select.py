"""`metainf select`: which method (and hardware) to use, from a coordinator or a model dir."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from metainf.cli.common import CliError

SELECT_DEADLINE_S = 30.0
"""Deadline of a Select RPC, in seconds."""


def add_parser(sub) -> None:
    """Register `metainf select`."""
    p = sub.add_parser(
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
                   help="known or catalog hardware name, a leading 'Nx' for N of it "
                        "(repeat for several)")
    p.add_argument("--hardware-text", action="append", default=[], metavar="T",
                   help="free-text hardware spec, a leading 'Nx' for N of it, e.g. "
                        "'4x NVIDIA H100 80GB' (repeat for several)")
    p.add_argument("--all-farm-hardware", action="store_true",
                   help="choose among every hardware class registered with the farm")
    p.add_argument("--workload", required=True, metavar="JSON",
                   help="workload statistics, spec or label (a JSON object)")
    p.add_argument("--methods", metavar="A,B", help="candidate methods (default: those known "
                                                    "for the hardware)")
    p.add_argument("--budget", type=float, default=None, help="cost budget (price x runtime)")
    p.add_argument("--objective", default="runtime", choices=("runtime", "throughput", "cost"))
    p.add_argument("--risk", default="upper", choices=("upper", "expected"),
                   help="how a budget reads a predicted cost: at the upper end of its 80 %% "
                        "interval (default) or at the point estimate")
    p.add_argument("--measure-if-unsure", action="store_true",
                   help="with --coordinator: when the answer's confidence is below the "
                        "coordinator's --unsure-below and its hardware is a farm class, queue "
                        "the cells that would settle it as a small campaign and print its id "
                        "(needs a role that may submit campaigns)")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    p.add_argument("--token-file", default=os.environ.get("METAINF_TOKEN_FILE"),
                   help="file holding the farm token (or METAINF_TOKEN_FILE)")
    p.add_argument("--tls-ca", default=os.environ.get("METAINF_TLS_CA"),
                   help="CA certificate (PEM) of a TLS coordinator (or METAINF_TLS_CA)")
    p.set_defaults(func=run)


def _check_select_args(args: argparse.Namespace) -> dict[str, Any]:
    try:
        workload = json.loads(args.workload)
    except json.JSONDecodeError as exc:
        raise CliError(f"--workload: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(workload, dict):
        raise CliError("--workload: must be a JSON object such as "
                          "'{\"workload\": \"...\", \"batch_size\": 8}'")
    if args.budget is not None and (not math.isfinite(args.budget) or args.budget < 0):
        raise CliError(f"--budget: must be a finite number >= 0 (got {args.budget})")
    if args.model is not None and not args.model.strip():
        raise CliError("--model: empty")
    if args.model_text is not None and not args.model_text.strip():
        raise CliError("--model-text: empty")
    if not (args.hardware or args.hardware_text or args.all_farm_hardware):
        raise CliError("--hardware: give at least one --hardware or --hardware-text")
    if args.all_farm_hardware and not args.coordinator:
        raise CliError("--all-farm-hardware: needs --coordinator")
    if args.measure_if_unsure and not args.coordinator:
        raise CliError("--measure-if-unsure: needs --coordinator (the farm measures)")
    if args.measure_if_unsure and args.model is None:
        raise CliError("--measure-if-unsure: needs --model (the farm cannot run --model-text)")
    methods = [m.strip() for m in (args.methods or "").split(",") if m.strip()]
    if args.methods is not None and not methods:
        raise CliError("--methods: name at least one method")
    hardware = [("name", *_counted("--hardware", h)) for h in args.hardware] + \
        [("text", *_counted("--hardware-text", t)) for t in args.hardware_text]
    return {"workload": workload, "methods": methods, "hardware": hardware}


def _counted(flag: str, value: str) -> tuple[int | None, str]:
    """(count, rest) of a hardware argument with a leading 'Nx', checked (1..64)."""
    from metainf.hardware_catalog import MAX_COUNT, split_count

    count, rest = split_count(value)
    if count is not None and not 1 <= count <= MAX_COUNT:
        raise CliError(f"{flag}: count must be between 1 and {MAX_COUNT} (got {count} in "
                       f"{value!r})")
    return count, rest


def run(args: argparse.Namespace) -> int:
    """Answer from a coordinator or a local model directory; print a table or JSON."""
    checked = _check_select_args(args)
    result = (_select_remote if args.coordinator else _select_local)(args, checked)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_selection(result)
    return 0


def _select_local(args: argparse.Namespace, checked: dict[str, Any]) -> dict:
    from metainf.selector.artifact import ModelNotFoundError, load_model
    from metainf.selector.query import HardwareOption, SelectQuery
    from metainf.selector.selection import SelectionError, select

    try:
        model = load_model(args.model_dir)
    except ModelNotFoundError as exc:
        raise CliError(f"--model-dir: {exc}") from None
    query = SelectQuery(
        model=args.model or "", model_text=args.model_text or "",
        hardware=tuple(HardwareOption(**{kind: value}, count=count)
                       for kind, count, value in checked["hardware"]),
        workload=checked["workload"], methods=tuple(checked["methods"]),
        budget=args.budget, objective=args.objective, risk=args.risk)
    try:
        return select(model, query).to_dict()
    except SelectionError as exc:
        raise CliError(str(exc)) from None


def _select_remote(args: argparse.Namespace, checked: dict[str, Any]) -> dict:
    from metainf.client import channel
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    request = farm_pb2.SelectRequest(
        model=args.model or "", model_text=args.model_text or "",
        hardware=[farm_pb2.HardwareOption(**{kind: value}, count=count)
                  for kind, count, value in checked["hardware"]],
        workload_json=json.dumps(checked["workload"]), methods=checked["methods"],
        objective=args.objective, all_farm_hardware=args.all_farm_hardware, risk=args.risk,
        measure_if_unsure=args.measure_if_unsure)
    if args.budget is not None:
        request.budget = args.budget
    with channel(args.coordinator, args.token_file) as ch:
        resp = farm_pb2_grpc.SelectorStub(ch).Select(request, timeout=SELECT_DEADLINE_S)
    result = response_to_dict(resp, budget=args.budget, objective=args.objective)
    if args.measure_if_unsure:
        result["measure_campaign_id"] = resp.measure_campaign_id or None
        result["measure_note"] = resp.measure_note
    return result


def response_to_dict(resp, budget: float | None = None, objective: str = "runtime") -> dict:
    """A SelectResponse as the `select --json` object (the same as a local answer's)."""
    def interval(c) -> list[float] | None:
        return [c.interval.low, c.interval.high] if c.HasField("interval") else None

    def candidate(c) -> dict:
        out = {"method": c.method, "hardware": c.hardware,
               "predicted": c.predicted,
               "cost": c.cost if c.cost > 0 else None, "feasible": c.feasible,
               "reason": c.reason, "interval": interval(c)}
        if c.count > 1:
            out["count"] = c.count
        return out

    return {"method": resp.method, "hardware": resp.hardware, "feasible": resp.feasible,
            "model_version": resp.model_version,
            "confidence": resp.confidence if resp.HasField("confidence") else None,
            "out_of_distribution": resp.out_of_distribution,
            "ood_axes": list(resp.ood_axes),
            "distances": [{"axis": d.axis, "nearest": d.nearest, "distance": d.distance,
                           "threshold": d.threshold,
                           "out_of_distribution": d.out_of_distribution}
                          for d in resp.distances],
            "candidates": [candidate(c) for c in resp.candidates],
            "nearest_known_hardware": dict(resp.nearest_known_hardware),
            "metric": resp.metric, "lower_is_better": resp.lower_is_better,
            "objective": objective, "budget": budget, "message": resp.message,
            "memory_margin": resp.memory_margin or None}


def print_selection(result: dict, file=None) -> None:
    """A small table of the candidates (80 % interval beside each prediction), the choice
    marked, then the confidence and the message (which says when the answer is out of
    distribution)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=120)
    table = Table(title=f"MetaInf {result['model_version']} ({result['objective']})")
    table.add_column("")
    table.add_column("method")
    table.add_column("hardware")
    table.add_column(f"predicted {result['metric']}", justify="right")
    intervals = any(c.get("interval") for c in result["candidates"])
    if intervals:
        table.add_column("80 % interval", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("feasible")
    reasons = any(c.get("reason") for c in result["candidates"])
    if reasons:
        table.add_column("why not")
    for c in result["candidates"]:
        chosen = c["method"] == result["method"] and c["hardware"] == result["hardware"]
        cost = "?" if c["cost"] is None else f"{c['cost']:.4g}"
        row = ["*" if chosen else "", c["method"], c["hardware"], f"{c['predicted']:.4g}"]
        if intervals:
            low, high = c.get("interval") or (None, None)
            row.append("?" if low is None or high is None else f"{low:.4g} - {high:.4g}")
        row += [cost, "yes" if c["feasible"] else "no"]
        table.add_row(*row, *([c.get("reason", "")] if reasons else []))
    console.print(table)
    for label, near in result.get("nearest_known_hardware", {}).items():
        console.print(f"{label}: unseen hardware, nearest known is {near}")
    if result.get("confidence") is not None:
        console.print(f"confidence {result['confidence']:.2f} that the choice is the best "
                      "or within 1 % of it", soft_wrap=True)
    console.print(result["message"], soft_wrap=True)
    if "measure_note" in result:
        console.print(f"measure: {result['measure_note']}", soft_wrap=True)
        if result["measure_campaign_id"]:
            console.print(f"measure campaign: {result['measure_campaign_id']}",
                          soft_wrap=True)
