"""The `metainf` command: one module per command, each a thin parser over one library call.

Entry points sit on top of every package: a command module imports what it runs only
when it runs, so `metainf worker` loads nothing of the coordinator and the reverse.
One error mechanism: a command raises `CliError` for bad input (exit 2, one line naming
the field); a refused gRPC call prints its status code (exit 2 for INVALID_ARGUMENT,
1 otherwise).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from metainf.cli import (
    campaign,
    coordinator,
    demo,
    evaluate,
    model,
    place,
    report,
    select,
    train,
    worker,
)
from metainf.cli.common import CliError

COMMANDS = (coordinator, worker, campaign, train, select, model, evaluate, report, place, demo)
"""Command modules in the order `metainf --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The full `metainf` argument parser."""
    parser = argparse.ArgumentParser(prog="metainf", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `metainf` console script."""
    import grpc

    from metainf.client import TokenFileError

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
        return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
