"""`metainf place` and `metainf place simulate`: split a large model's blocks over a fleet.

`metainf place (--fleet FILE | --coordinator HOST:PORT) --model NAME` plans one
algorithm with PETALS' rule beside it, from a fleet file here or from the farm's
registered workers (the coordinator's `Place` RPC). `metainf place simulate --fleet
FILE` plans with every algorithm the file allows and scores each plan with the
discrete-event simulator. Bad input exits 2 with one line naming the field.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from metainf.cli.common import CliError, add_client_flags

PLACE_DEADLINE_S = 60.0
"""Deadline of a Place RPC without the MILP, in seconds (the MILP adds its time limit)."""


def add_parser(sub) -> None:
    """Register `metainf place` and its `simulate` subcommand."""
    p = sub.add_parser(
        "place", help="split a model too large for one server over a fleet, and route clients",
        description="Plan which blocks each server holds and which chain of servers each "
                    "client takes (greedy by default), with PETALS' own rule side by side. "
                    "`metainf place simulate --fleet FILE` simulates every algorithm.")
    p.add_argument("--fleet", metavar="FILE", help="fleet file (YAML or JSON, docs/placement.md)")
    add_client_flags(p, coordinator_required=False)
    p.add_argument("--model", metavar="NAME", help="catalog model to place (e.g. bloom-176b)")
    p.add_argument("--algorithm", default="greedy", metavar="A",
                   help="greedy (default), online, milp or petals")
    p.add_argument("--workers", metavar="A,B",
                   help="with --coordinator: registered workers to place over (default: all "
                        "alive)")
    p.add_argument("--sessions", type=int, metavar="N",
                   help="planned concurrent sessions |R| (coordinator default 3)")
    p.add_argument("--l-in", type=int, metavar="N", help="input tokens per request "
                                                         "(coordinator default 20)")
    p.add_argument("--l-out", type=int, metavar="N", help="output tokens per request "
                                                          "(coordinator default 80)")
    p.add_argument("--arrival-rate", type=float, metavar="R",
                   help="Poisson arrivals per client, requests/s (default 0.1)")
    p.add_argument("--join-orders", type=int, metavar="N",
                   help="PETALS' seeded join orders (default: the file's, or 100)")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    p.set_defaults(func=run_place)
    psub = p.add_subparsers(dest="place_command", metavar="simulate")
    s = psub.add_parser("simulate", help="plan with each algorithm and simulate every plan",
                        description="Plan with each algorithm (all by default) and score "
                                    "each plan with the seeded discrete-event simulator; "
                                    "PETALS' figures are medians over its join orders.")
    s.add_argument("--fleet", metavar="FILE", required=True, help="fleet file (YAML or JSON)")
    s.add_argument("--algorithms", metavar="A,B",
                   help="algorithms to run (default: all; petals, greedy, online, milp)")
    s.add_argument("--join-orders", type=int, metavar="N",
                   help="PETALS' seeded join orders (default: the file's)")
    s.add_argument("--json", action="store_true", help="print the result as one JSON object")
    s.set_defaults(func=run_simulate)


def _positive(flag: str, value: float | None, allow_zero: bool = False) -> None:
    """Refuse a flag value that is not > 0 (or >= 0), naming the flag."""
    if value is None:
        return
    if value != value or value < 0 or (value == 0 and not allow_zero):
        raise CliError(f"{flag}: must be {'>= 0' if allow_zero else '> 0'} (got {value})")


def _names(flag: str, value: str | None) -> list[str] | None:
    """A comma-separated list of names, or None when the flag is absent."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise CliError(f"{flag}: name at least one")
    return names


def _load_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The load flags given, checked, as fleet-file `load` keys."""
    for flag, value in (("--sessions", args.sessions), ("--l-in", args.l_in),
                        ("--l-out", args.l_out)):
        _positive(flag, value)
    _positive("--arrival-rate", args.arrival_rate, allow_zero=True)
    given = {"sessions": args.sessions, "l_in": args.l_in, "l_out": args.l_out,
             "arrival_rate": args.arrival_rate}
    return {k: v for k, v in given.items() if v is not None}


def _where(exc: Exception, flag: str, path: str) -> str:
    """A placement error as one line: an unknown algorithm names the flag, else the file."""
    text = str(exc)
    if text.startswith("algorithm: "):
        return f"{flag}: {text[len('algorithm: '):]}"
    return f"{path}: {text}"


def run_simulate(args: argparse.Namespace) -> int:
    """Plan and simulate every named algorithm on the fleet file; print a table or JSON."""
    from metainf.placement.cli_entry import format_table, place_simulate
    from metainf.placement.errors import PlacementError

    _positive("--join-orders", args.join_orders)
    algorithms = _names("--algorithms", args.algorithms)
    try:
        result = place_simulate(args.fleet, algorithms, args.join_orders)
    except PlacementError as exc:
        raise CliError(_where(exc, "--algorithms", args.fleet)) from None
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def run_place(args: argparse.Namespace) -> int:
    """Plan one algorithm (PETALS' beside it) from a fleet file or the coordinator's workers."""
    if bool(args.fleet) == bool(args.coordinator):
        raise CliError("--fleet/--coordinator: give exactly one of them (or use "
                       "`metainf place simulate --fleet FILE`)")
    if not args.model or not args.model.strip():
        raise CliError("--model: required (a catalog model name, e.g. bloom-176b)")
    _positive("--join-orders", args.join_orders)
    load = _load_flags(args)
    if args.fleet:
        if args.workers:
            raise CliError("--workers: only with --coordinator (a fleet file lists its servers)")
        result = _place_local(args, load)
    else:
        result = _place_remote(args, load)
    from metainf.placement.cli_entry import format_place

    print(json.dumps(result, indent=2) if args.json else format_place(result))
    return 0


def _place_local(args: argparse.Namespace, load: dict[str, Any]) -> dict[str, Any]:
    """`place --fleet FILE`: the file's fleet, with --model and the load flags applied."""
    import yaml

    from metainf.placement.cli_entry import place, with_model
    from metainf.placement.errors import PlacementError
    from metainf.placement.fleet import fleet_from_dict

    try:
        with open(args.fleet, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise CliError(f"--fleet: cannot read {args.fleet}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise CliError(f"--fleet: {args.fleet} is not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise CliError(f"{args.fleet}: fleet: the file must hold a mapping")
    data = with_model(data, args.model.strip())
    if load:
        data = {**data, "load": {**(data.get("load") or {}), **load}}
    try:
        return place(fleet_from_dict(data), args.algorithm, args.join_orders)
    except PlacementError as exc:
        raise CliError(_where(exc, "--algorithm", args.fleet)) from None


def _place_remote(args: argparse.Namespace, load: dict[str, Any]) -> dict[str, Any]:
    """`place --coordinator`: the Place RPC over the farm's registered workers."""
    from metainf.client import channel
    from metainf.placement.service import response_to_result
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    workers = _names("--workers", args.workers) or []
    request = farm_pb2.PlaceRequest(
        model=farm_pb2.PlaceModel(catalog=args.model.strip()), workers=workers,
        load=farm_pb2.PlaceLoad(sessions=load.get("sessions", 3), l_in=load.get("l_in", 20),
                                l_out=load.get("l_out", 80)),
        algorithm=args.algorithm, petals_join_orders=args.join_orders or 0)
    if "arrival_rate" in load:
        request.load.arrival_rate = load["arrival_rate"]
    deadline = PLACE_DEADLINE_S + (120.0 if args.algorithm == "milp" else 0.0)
    with channel(args.coordinator, args.token_file) as ch:
        resp = farm_pb2_grpc.PlacementStub(ch).Place(request, timeout=deadline)
    return response_to_result(resp)
