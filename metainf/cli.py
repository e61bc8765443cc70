"""The `metainf` command: thin parsers that validate input and call one library function."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import grpc

from metainf.coordinator.auth import TokenFileError

log = logging.getLogger("metainf")


class CliError(Exception):
    """Bad input on the command line: printed as one line, exit code 2."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- coordinator and worker -----------------------------------------------------------------


def _run_coordinator(args: argparse.Namespace) -> int:
    from metainf.coordinator.auth import TokenFileError, load_tokens
    from metainf.coordinator.scheduler import SchedulerConfig
    from metainf.coordinator.server import ServerConfig, serve

    def path(value):
        return Path(value) if value else None

    if args.tls_cert and not args.tls_key:
        raise CliError("--tls-key: required with --tls-cert")
    if args.token_file:
        try:
            load_tokens(args.token_file)
        except TokenFileError as exc:
            raise CliError(f"--token-file: {exc}") from None
    if args.lease_s <= 0 or args.heartbeat_s <= 0 or args.heartbeat_s >= args.lease_s:
        raise CliError("--heartbeat-s: must be > 0 and shorter than --lease-s")
    if args.http_port is not None and not 0 <= args.http_port <= 65535:
        raise CliError("--http-port: must be between 0 and 65535")
    serve(ServerConfig(db=Path(args.db), host=args.host, port=args.port,
                       model_dir=path(args.model_dir), reflection=not args.no_reflection,
                       token_file=path(args.token_file), tls_cert=path(args.tls_cert),
                       tls_key=path(args.tls_key), tls_client_ca=path(args.tls_client_ca),
                       http_port=args.http_port,
                       scheduler=SchedulerConfig(lease_s=args.lease_s,
                                                 heartbeat_interval_s=args.heartbeat_s,
                                                 max_attempts=args.max_attempts)))
    return 0


def _run_worker(args: argparse.Namespace) -> int:
    from metainf.worker.agent import WorkerAgent, WorkerConfig
    from metainf.worker.hardware import parse_cpu_list

    try:
        cpus = tuple(parse_cpu_list(args.cpus)) if args.cpus else ()
    except ValueError as exc:
        raise CliError(f"--cpus: {exc}") from None
    if args.price_per_hour < 0:
        raise CliError("--price-per-hour: must be >= 0")
    agent = WorkerAgent(WorkerConfig(
        coordinator=args.coordinator, name=args.name or "", cpus=cpus,
        price_per_hour=args.price_per_hour, token_file=args.token_file, engine=args.engine,
        max_cells=args.max_cells, exit_when_idle_s=args.exit_when_idle))
    import signal
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    n = agent.run()
    log.info("worker stopped after %d cell(s)", n)
    return 0


# -- campaigns -----------------------------------------------------------------------------


def _campaign_submit(args: argparse.Namespace) -> int:
    from metainf.coordinator.client import submit_grid
    from metainf.coordinator.grid import GridError

    try:
        resp = submit_grid(args.coordinator, args.grid, args.token_file)
    except GridError as exc:
        raise CliError(f"{args.grid}: {exc}") from None
    log.info("campaign %s: %d cells per hardware class", resp.campaign_id,
             resp.cells_per_hardware_class)
    print(json.dumps({"campaign_id": resp.campaign_id}) if args.json else resp.campaign_id)
    return 0


def status_dict(status) -> dict:
    """A CampaignStatus message as the JSON object of `campaign status --json`."""
    return {
        "campaign_id": status.campaign_id, "name": status.name, "state": status.state,
        "cells": dict(status.cells), "total_cells": status.total_cells,
        "eta_s": status.eta_s if status.eta_s >= 0 else None,
        "hardware": list(status.hardware_classes),
        "workers": [{"worker_id": w.worker_id, "name": w.name, "hardware": w.hardware_label,
                     "cells_done": w.cells_done, "current_cell": w.current_cell}
                    for w in status.workers],
    }


def _campaign_status(args: argparse.Namespace) -> int:
    from metainf.coordinator.client import campaign_status
    from metainf.coordinator.progress import print_status, watch

    status = (watch(args.coordinator, args.id, args.token_file) if args.watch
              else campaign_status(args.coordinator, args.id, args.token_file))
    if args.json:
        print(json.dumps(status_dict(status)))
    else:
        print_status(status)
    return 0


def _campaign_export(args: argparse.Namespace) -> int:
    from metainf.coordinator.client import export_campaign

    if Path(args.out).suffix not in (".parquet", ".csv"):
        raise CliError(f"--out: use a .parquet or .csv file name, got {args.out!r}")
    path = export_campaign(args.coordinator, args.id, args.out, args.token_file,
                           all_replicas=args.all_replicas)
    print(path)
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from metainf.coordinator.report import report_from_file

    if args.campaign:
        if not args.coordinator:
            raise CliError("--coordinator: required with --campaign (HOST:PORT)")
        from metainf.coordinator.client import export_campaign

        data = export_campaign(args.coordinator, args.campaign, Path(args.out) / "p.parquet",
                               args.token_file)
    else:
        data = Path(args.data)
    try:
        index = report_from_file(data, args.out, args.evaluation, metric=args.metric)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(index)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from metainf.demo import run_demo

    return run_demo(Path(args.dir), quick=args.quick)


# -- parser --------------------------------------------------------------------------------


def _client_flags(p: argparse.ArgumentParser, coordinator_required: bool = True) -> None:
    p.add_argument("--coordinator", required=coordinator_required, metavar="HOST:PORT",
                   help="address of the coordinator")
    p.add_argument("--token-file", default=os.environ.get("METAINF_TOKEN_FILE"),
                   help="file holding the farm token (or METAINF_TOKEN_FILE)")
    p.add_argument("--tls-ca", default=os.environ.get("METAINF_TLS_CA"),
                   help="CA certificate (PEM) of a TLS coordinator (or METAINF_TLS_CA)")


def build_parser() -> argparse.ArgumentParser:
    """The full `metainf` argument parser."""
    parser = argparse.ArgumentParser(prog="metainf", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("coordinator", help="run the coordinator (gRPC + SQLite)")
    p.add_argument("--db", required=True, help="SQLite file holding the farm's state")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--model-dir", help="trained MetaInf models to answer Select from")
    p.add_argument("--no-reflection", action="store_true", help="turn server reflection off")
    p.add_argument("--token-file", help="tokens with roles ('TOKEN ROLE OPERATOR' per line); "
                                        "without it the farm runs open")
    p.add_argument("--tls-cert", help="server certificate (PEM) to serve TLS")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--tls-client-ca", help="CA (PEM) that client certificates must chain to "
                                           "(mutual TLS)")
    p.add_argument("--lease-s", type=float, default=30.0, help="lease deadline in seconds")
    p.add_argument("--heartbeat-s", type=float, default=10.0, help="worker heartbeat interval")
    p.add_argument("--max-attempts", type=int, default=3,
                   help="engine failures before a cell's outcome is final")
    p.add_argument("--http-port", type=int, default=None,
                   help="serve the dashboard, /metrics and /healthz on this port "
                        "(0 = any free port; default: no HTTP server)")
    p.set_defaults(func=_run_coordinator)

    p = sub.add_parser("worker", help="register this machine and run cells")
    _client_flags(p)
    p.add_argument("--name", help="label for this worker (not part of its hardware class)")
    p.add_argument("--cpus", help="cores to use, e.g. 0 or 0-3,6 (also pins the engine)")
    p.add_argument("--price-per-hour", type=float, default=0.0)
    p.add_argument("--engine", default="vllm",
                   help="engine plugin: a registered name or package.module:Class")
    p.add_argument("--max-cells", type=int, default=0, help="stop after N cells")
    p.add_argument("--exit-when-idle", type=float, default=0.0, metavar="SECONDS",
                   help="stop after this long without work")
    p.set_defaults(func=_run_worker)

    campaign = sub.add_parser("campaign", help="submit, watch and export campaigns")
    csub = campaign.add_subparsers(dest="campaign_command", required=True)
    p = csub.add_parser("submit", help="submit a grid file; prints the campaign id")
    p.add_argument("grid", help="grid file (YAML or JSON)")
    _client_flags(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_campaign_submit)
    p = csub.add_parser("status", help="progress of a campaign")
    p.add_argument("id")
    _client_flags(p)
    p.add_argument("--watch", action="store_true", help="follow live until done")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_campaign_status)
    p = csub.add_parser("export", help="write P (long format) to .parquet or .csv")
    p.add_argument("id")
    _client_flags(p)
    p.add_argument("--out", required=True)
    p.add_argument("--all-replicas", action="store_true",
                   help="also write rows of replicated copies not accepted into P, with an "
                        "`accepted` column (for audit)")
    p.set_defaults(func=_campaign_export)

    from metainf.selector.cli import add_select_parser, add_train_parser
    add_train_parser(sub)
    add_select_parser(sub)
    try:
        from metainf.selector.evaluation.cli import add_evaluate_parser
    except ImportError:  # pragma: no cover - harness not installed
        pass
    else:
        add_evaluate_parser(sub)

    from metainf.coordinator.report_tables import METRICS

    p = sub.add_parser("report", help="HTML report with plots of a campaign (and an evaluation)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--campaign", metavar="ID", help="campaign to export from the coordinator")
    src.add_argument("--data", metavar="FILE", help="an exported P (.parquet or .csv)")
    _client_flags(p, coordinator_required=False)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for index.html and plots")
    p.add_argument("--evaluation", metavar="DIR",
                   help="output folder of `metainf evaluate` to include")
    p.add_argument("--metric", default="runtime_s", choices=sorted(METRICS),
                   help="metric to plot (default runtime_s)")
    p.set_defaults(func=_run_report)

    p = sub.add_parser("demo", help="coordinator + 2 local workers + a small real campaign")
    p.add_argument("--dir", default="demo-run", help="folder for the database and outputs")
    p.add_argument("--quick", action="store_true", help="4 methods instead of 8")
    p.set_defaults(func=_run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `metainf` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    if getattr(args, "tls_ca", None):
        os.environ["METAINF_TLS_CA"] = args.tls_ca  # every channel of this process uses it
    try:
        return args.func(args)
    except CliError as exc:
        print(f"metainf: {exc}", file=sys.stderr)
        return 2
    except TokenFileError as exc:
        print(f"metainf: --token-file: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
