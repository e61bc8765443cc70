"""`metainf model list|promote`: the MetaInf versions kept, and which one serves Select."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from metainf.cli.common import CliError, add_client_flags


def add_parser(sub) -> None:
    """Register `metainf model` and its two subcommands."""
    model = sub.add_parser("model", help="list the kept MetaInf versions, promote one")
    msub = model.add_subparsers(dest="model_command", required=True)
    p = msub.add_parser("list", help="versions kept: when trained, on what, held-out scores, "
                                     "promoted or why not, which one serves")
    p.add_argument("--model-dir", metavar="DIR", help="read a model directory here")
    add_client_flags(p, coordinator_required=False)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=list_models)
    p = msub.add_parser("promote", help="make a kept version serve Select (admin; a roll back)")
    p.add_argument("version", help="a version listed by `metainf model list`")
    add_client_flags(p)
    p.set_defaults(func=promote_model)


def _scores(msg, present: bool) -> dict[str, Any] | None:
    if not present:
        return None
    return {"n_tasks": msg.n_tasks, "regret": msg.regret, "level_mdape": msg.level_mdape,
            "accuracy": msg.accuracy}


def version_dict(v) -> dict[str, Any]:
    """A ModelVersion message in the shape of selector.artifact.list_versions."""
    retrain = None
    if v.HasField("retrain"):
        r = v.retrain
        retrain = {"trigger": r.trigger, "rows": r.rows, "tasks": r.tasks,
                   "heldout": _scores(r.heldout, r.HasField("heldout")),
                   "serving_heldout": _scores(r.serving_heldout, r.HasField("serving_heldout")),
                   "serving_version": r.serving_version or None, "promoted": r.promoted,
                   "reason": r.reason}
    return {"version": v.version, "trained_at": v.trained_at or None, "n_tasks": v.n_tasks,
            "n_pairs": v.n_pairs, "serving": v.serving, "retrain": retrain, "error": v.error}


def _fetch(args: argparse.Namespace) -> list[dict[str, Any]]:
    if bool(args.model_dir) == bool(args.coordinator):
        raise CliError("--model-dir/--coordinator: give exactly one of them")
    if args.model_dir:
        from metainf.selector.artifact import ModelNotFoundError, list_versions

        try:
            return list_versions(args.model_dir)
        except ModelNotFoundError:
            raise CliError(f"--model-dir: {args.model_dir} is not a model directory") from None
    from metainf.client import DEFAULT_DEADLINE_S, channel
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    stub = farm_pb2_grpc.SelectorStub(channel(args.coordinator, args.token_file))
    resp = stub.ListModels(farm_pb2.ListModelsRequest(), timeout=DEFAULT_DEADLINE_S,
                           wait_for_ready=True)
    return [version_dict(v) for v in resp.versions]


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None or x != x else format(x, fmt)


def _row(v: dict[str, Any]) -> list[str]:
    r = v["retrain"] or {}
    held = r.get("heldout") or {}
    if v["error"]:
        decision = f"cannot load: {v['error']}"
    elif not r:
        decision = "trained by hand"
    else:
        decision = ("promoted: " if r["promoted"] else "kept: ") + r["reason"]
    when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v["trained_at"]))
            if v["trained_at"] else "-")
    return [v["version"], "*" if v["serving"] else "", when, str(v["n_tasks"] or "-"),
            str(r.get("rows", "-")), _num(held.get("regret"), ".4f"),
            _num(held.get("level_mdape"), ".3f"), decision]


def list_models(args: argparse.Namespace) -> int:
    """Print the versions (oldest first) as a table, or one JSON object with --json."""
    versions = _fetch(args)
    serving = next((v["version"] for v in versions if v["serving"]), None)
    if args.json:
        print(json.dumps({"serving_version": serving, "versions": versions}))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("version", "serving", "trained", "tasks", "rows", "held-out regret",
                  "level error", "decision", title="MetaInf versions (oldest first)")
    for v in versions:
        table.add_row(*_row(v))
    Console(width=160).print(table)
    return 0


def promote_model(args: argparse.Namespace) -> int:
    """Ask the coordinator to serve a kept version; print the version now serving."""
    import grpc

    from metainf.client import DEFAULT_DEADLINE_S, channel
    from metainf.selector.artifact import check_version_name
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    problem = check_version_name(args.version)
    if problem:
        raise CliError(problem)
    stub = farm_pb2_grpc.SelectorStub(channel(args.coordinator, args.token_file))
    try:
        resp = stub.PromoteModel(farm_pb2.PromoteModelRequest(version=args.version),
                                 timeout=DEFAULT_DEADLINE_S, wait_for_ready=True)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise CliError(exc.details()) from None
        raise
    print(resp.model_version)
    return 0
