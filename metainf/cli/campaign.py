"""`metainf campaign submit|status|export`: campaigns on a running coordinator."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from metainf.cli.common import CliError, add_client_flags

log = logging.getLogger("metainf")


def add_parser(sub) -> None:
    """Register `metainf campaign` and its three subcommands."""
    campaign = sub.add_parser("campaign", help="submit, watch and export campaigns")
    csub = campaign.add_subparsers(dest="campaign_command", required=True)
    p = csub.add_parser("submit", help="submit a grid file; prints the campaign id")
    p.add_argument("grid", help="grid file (YAML or JSON)")
    add_client_flags(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=submit)
    p = csub.add_parser("status", help="progress of a campaign")
    p.add_argument("id")
    add_client_flags(p)
    p.add_argument("--watch", action="store_true", help="follow live until done")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=status)
    p = csub.add_parser("export", help="write P (long format) to .parquet or .csv")
    p.add_argument("id")
    add_client_flags(p)
    p.add_argument("--out", required=True)
    p.add_argument("--all-replicas", action="store_true",
                   help="also write rows of replicated copies not accepted into P, with an "
                        "`accepted` column (for audit)")
    p.set_defaults(func=export)


def submit(args: argparse.Namespace) -> int:
    """Validate a grid file here, submit it; print the campaign id on the last line."""
    from metainf.client import submit_grid
    from metainf.grid import GridError

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
        "drift": [{"hardware": d.hardware_label, "hardware_class": d.hardware_class,
                   "results": d.results, "mdape": d.mdape, "held_out_mdape": d.held_out_mdape,
                   "flagged": d.flagged, "model_versions": list(d.model_versions)}
                  for d in status.drift],
        "drift_note": status.drift_note,
        "strategy": status.strategy or "full", "strategy_note": status.strategy_note,
    }


def status(args: argparse.Namespace) -> int:
    """One snapshot of a campaign's progress, or follow it live with --watch."""
    from metainf.cli.progress import print_status, watch
    from metainf.client import campaign_status

    snapshot = (watch(args.coordinator, args.id, args.token_file) if args.watch
                else campaign_status(args.coordinator, args.id, args.token_file))
    if args.json:
        print(json.dumps(status_dict(snapshot)))
    else:
        print_status(snapshot)
    return 0


def export(args: argparse.Namespace) -> int:
    """Write a campaign's P (and its meta file) to --out."""
    from metainf.client import export_campaign

    if Path(args.out).suffix not in (".parquet", ".csv"):
        raise CliError(f"--out: use a .parquet or .csv file name, got {args.out!r}")
    print(export_campaign(args.coordinator, args.id, args.out, args.token_file,
                          all_replicas=args.all_replicas))
    return 0
