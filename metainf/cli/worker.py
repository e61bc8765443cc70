"""`metainf worker`: register this machine with the coordinator and run cells."""

from __future__ import annotations

import argparse
import logging

from metainf.cli.common import CliError, add_client_flags

log = logging.getLogger("metainf")


def add_parser(sub) -> None:
    """Register `metainf worker`."""
    p = sub.add_parser("worker", help="register this machine and run cells")
    add_client_flags(p)
    p.add_argument("--name", help="label for this worker (not part of its hardware class)")
    p.add_argument("--cpus", help="cores to use, e.g. 0 or 0-3,6 (also pins the engine)")
    p.add_argument("--price-per-hour", type=float, default=0.0)
    p.add_argument("--engine", default="vllm",
                   help="engine plugin: a registered name or package.module:Class")
    p.add_argument("--max-cells", type=int, default=0, help="stop after N cells")
    p.add_argument("--exit-when-idle", type=float, default=0.0, metavar="SECONDS",
                   help="stop after this long without work")
    p.add_argument("--echo-port", type=int, default=0,
                   help="port of the echo service peers time their RTT to (default: any "
                        "free port)")
    p.add_argument("--echo-host", default="",
                   help="host the echo service binds to and peers reach it on (default: "
                        "loopback for a loopback coordinator, else every interface, "
                        "reached where the coordinator sees this worker)")
    p.add_argument("--no-echo", action="store_true",
                   help="serve no echo service (Place then bounds this worker's RTT to "
                        "peers by the sum of both RTTs to the coordinator)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the worker agent until it is stopped (SIGTERM) or its limits are reached."""
    import signal

    from metainf.worker.agent import WorkerAgent, WorkerConfig
    from metainf.worker.hardware import parse_cpu_list

    try:
        cpus = tuple(parse_cpu_list(args.cpus)) if args.cpus else ()
    except ValueError as exc:
        raise CliError(f"--cpus: {exc}") from None
    if args.price_per_hour < 0:
        raise CliError("--price-per-hour: must be >= 0")
    if not 0 <= args.echo_port < 65536:
        raise CliError(f"--echo-port: must be between 0 and 65535 (got {args.echo_port})")
    agent = WorkerAgent(WorkerConfig(
        coordinator=args.coordinator, name=args.name or "", cpus=cpus,
        price_per_hour=args.price_per_hour, token_file=args.token_file, engine=args.engine,
        max_cells=args.max_cells, exit_when_idle_s=args.exit_when_idle,
        echo=not args.no_echo, echo_port=args.echo_port, echo_host=args.echo_host))
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    n = agent.run()
    log.info("worker stopped after %d cell(s)", n)
    return 0
