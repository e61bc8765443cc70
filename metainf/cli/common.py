"""What every `metainf` command shares: the error it raises, client flags, loading P."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


class CliError(Exception):
    """Bad input on the command line: printed as one line naming the field, exit code 2."""


def add_client_flags(p: argparse.ArgumentParser, coordinator_required: bool = True) -> None:
    """--coordinator, --token-file and --tls-ca: how a command reaches the coordinator."""
    p.add_argument("--coordinator", required=coordinator_required, metavar="HOST:PORT",
                   help="address of the coordinator")
    p.add_argument("--token-file", default=os.environ.get("METAINF_TOKEN_FILE"),
                   help="file holding the farm token (or METAINF_TOKEN_FILE)")
    p.add_argument("--tls-ca", default=os.environ.get("METAINF_TLS_CA"),
                   help="CA certificate (PEM) of a TLS coordinator (or METAINF_TLS_CA)")


def add_source_flags(p: argparse.ArgumentParser, data_help: str) -> None:
    """--data FILE | --campaign ID (with the client flags): where a command reads P from."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="FILE", help=data_help)
    src.add_argument("--campaign", metavar="ID", help="export this campaign from the coordinator")
    add_client_flags(p, coordinator_required=False)


def p_path(args: argparse.Namespace, workdir: Path) -> Path:
    """The P file a command reads: --data as given, or --campaign exported into workdir."""
    if bool(args.data) == bool(args.campaign):
        raise CliError("--data/--campaign: give exactly one of them")
    if args.campaign:
        if not args.coordinator:
            raise CliError("--coordinator: required with --campaign (HOST:PORT)")
        from metainf.client import export_campaign

        return export_campaign(args.coordinator, args.campaign, workdir / "p.parquet",
                               args.token_file)
    return Path(args.data)


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
    g.add_argument("--input-tokens-col", metavar="I",
                   help="workload column of input tokens per request (for the roofline)")
    g.add_argument("--output-tokens-col", metavar="O",
                   help="workload column of output tokens per request (for the roofline)")
    g.add_argument("--batch-col", metavar="B",
                   help="workload column of requests per batch (for the roofline)")


def mapping_from_args(args: argparse.Namespace):
    """The TableMapping the flags ask for; None for a farm P with its default metric."""
    from metainf.selector.table import FARM_MAPPING, TableMapping

    given = {k: getattr(args, k, None) for k in ("task_cols", "method_col", "metric_col",
                                                 "minimize", "hardware_col", "model_col")}
    tokens = {k: getattr(args, k, None) for k in ("input_tokens_col", "output_tokens_col",
                                                  "batch_col")}
    if all(v is None for v in given.values()):
        if any(tokens.values()):
            raise CliError("--task-cols: the roofline column flags are for external tables; "
                           "name the task columns too")
        return None
    if given["metric_col"] is not None and given["minimize"] is None:
        raise CliError("--metric-col: say its direction with --minimize or --maximize")
    if given["task_cols"] is None:
        # A farm P with another metric (e.g. throughput_tok_s --maximize).
        base = FARM_MAPPING
        cols = base.task_cols
    else:
        cols = tuple(c.strip() for c in given["task_cols"].split(",") if c.strip())
        if not cols:
            raise CliError("--task-cols: name at least one column")
        missing = [f for f in ("method_col", "metric_col") if given[f] is None]
        if missing:
            flags = ", ".join("--" + f.replace("_", "-") for f in missing)
            raise CliError(f"{flags}: required with --task-cols")
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
        **tokens,
    )


def load_table(args: argparse.Namespace, workdir: Path):
    """The performance table of --data or --campaign, read through the mapping flags."""
    from metainf.selector.table import PerfTable, TableError

    mapping = mapping_from_args(args)
    path = p_path(args, workdir)
    field = "--campaign" if args.campaign else "--data"
    try:
        return PerfTable.load(path, mapping)
    except TableError as exc:
        raise CliError(f"{field}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"{field}: cannot read {path}: {exc}") from None
