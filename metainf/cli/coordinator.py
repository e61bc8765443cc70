"""`metainf coordinator`: run the coordinator (gRPC + SQLite, optionally the dashboard)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from metainf.cli.common import CliError


def add_parser(sub) -> None:
    """Register `metainf coordinator`."""
    p = sub.add_parser("coordinator", help="run the coordinator (gRPC + SQLite)")
    p.add_argument("--db", required=True, help="SQLite file holding the farm's state")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--model-dir", help="trained MetaInf models to answer Select from")
    p.add_argument("--retrain-every-rows", type=int, default=0, metavar="N",
                   help="with --model-dir, also retrain MetaInf after every N new accepted rows "
                        "of P (0 = off, the default: only when a campaign finishes)")
    p.add_argument("--no-retrain", action="store_true",
                   help="never retrain MetaInf by itself (train with `metainf train` instead)")
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
    p.add_argument("--drift-margin", type=float, default=0.10,
                   help="flag a hardware class for drift when the median error of its latest "
                        "results against the serving model's predictions exceeds the model's "
                        "held-out error by more than this (a fraction; default 0.10 = 10 "
                        "points)")
    p.add_argument("--unsure-below", type=float, default=0.6,
                   help="a Select with measure_if_unsure whose confidence is below this queues "
                        "the cells that would settle it (0 to 1; default 0.6)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the flags, then serve until SIGTERM."""
    from metainf.client import TokenFileError
    from metainf.coordinator.auth import load_tokens
    from metainf.coordinator.drift import DriftConfig
    from metainf.coordinator.retrain import RetrainConfig
    from metainf.coordinator.scheduler import SchedulerConfig
    from metainf.coordinator.server import ServerConfig, serve
    from metainf.coordinator.unsure import UnsureConfig

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
    if not math.isfinite(args.drift_margin) or args.drift_margin < 0:
        raise CliError(f"--drift-margin: must be a finite number >= 0 (got {args.drift_margin})")
    if not 0 <= args.unsure_below <= 1:
        raise CliError(f"--unsure-below: must be between 0 and 1 (got {args.unsure_below})")
    if args.retrain_every_rows < 0:
        raise CliError(f"--retrain-every-rows: must be >= 0 (0 = off), got "
                       f"{args.retrain_every_rows}")
    retrain = RetrainConfig(on_campaign_done=not args.no_retrain,
                            every_rows=0 if args.no_retrain else args.retrain_every_rows)
    serve(ServerConfig(db=Path(args.db), host=args.host, port=args.port,
                       model_dir=path(args.model_dir), reflection=not args.no_reflection,
                       token_file=path(args.token_file), tls_cert=path(args.tls_cert),
                       tls_key=path(args.tls_key), tls_client_ca=path(args.tls_client_ca),
                       http_port=args.http_port, retrain=retrain,
                       drift=DriftConfig(margin=args.drift_margin),
                       unsure=UnsureConfig(below=args.unsure_below),
                       scheduler=SchedulerConfig(lease_s=args.lease_s,
                                                 heartbeat_interval_s=args.heartbeat_s,
                                                 max_attempts=args.max_attempts)))
    return 0
