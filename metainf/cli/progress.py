"""Showing a campaign's progress: a live bar on stderr and a status table."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metainf.client import campaign_status
from metainf.grid import REPLICA_VERDICTS
from metainf.p import FINAL_STATUSES
from metainf.v1 import farm_pb2


def _finished(status: farm_pb2.CampaignStatus) -> int:
    return sum(status.cells.get(s, 0) for s in FINAL_STATUSES)


def _describe(status: farm_pb2.CampaignStatus) -> str:
    c = status.cells
    eta = f"ETA {status.eta_s:.0f}s" if status.eta_s > 0 else "ETA ?"
    workers = " ".join(f"{w.name}:{w.cells_done}" for w in status.workers)
    return (f"{status.state} | queued {c.get('pending', 0)} running {c.get('leased', 0)} "
            f"done {c.get('done', 0)} failed {sum(c.get(s, 0) for s in FINAL_STATUSES[1:])} | {eta}"
            f"{' | ' + workers if workers else ''}")


def watch(address: str, campaign_id: str, token_file: str | None = None,
          interval_s: float = 2.0, console: Console | None = None) -> farm_pb2.CampaignStatus:
    """Follow a campaign with a progress bar on stderr until it is done; return the last status."""
    console = console or Console(stderr=True)
    status = campaign_status(address, campaign_id, token_file)
    with Progress(TextColumn("[bold]{task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"),
                  console=console, transient=False) as bar:
        task = bar.add_task(_describe(status), total=status.total_cells or None,
                            name=status.name or campaign_id)
        while status.state != "done":
            time.sleep(interval_s)
            status = campaign_status(address, campaign_id, token_file)
            bar.update(task, total=status.total_cells or None, completed=_finished(status),
                       description=_describe(status))
        bar.update(task, total=status.total_cells, completed=_finished(status),
                   description=_describe(status))
    return status


def print_status(status: farm_pb2.CampaignStatus, console: Console | None = None) -> None:
    """A readable status table (to stdout: it is the command's answer)."""
    console = console or Console()
    console.print(f"campaign {status.campaign_id} {status.name!r}: [bold]{status.state}[/], "
                  f"{_finished(status)}/{status.total_cells} cells final, "
                  f"hardware: {', '.join(status.hardware_classes) or 'none yet'}")
    table = Table("status", "cells")
    for key in ("pending", "leased", *FINAL_STATUSES):
        table.add_row(key, str(status.cells.get(key, 0)))
    if status.cells.get("skipped"):
        table.add_row("skipped", str(status.cells["skipped"]))
    console.print(table)
    if status.strategy_note:
        console.print(status.strategy_note, soft_wrap=True)
    if status.replica_groups:
        groups = ", ".join(f"{status.replica_groups.get(v, 0)} {v}" for v in REPLICA_VERDICTS)
        console.print(f"replicated cells: {groups} (waiting copies run only on a worker of "
                      f"an operator that ran no other copy)")
    if status.workers:
        wt = Table("worker", "hardware", "cells done", "current cell")
        for w in status.workers:
            wt.add_row(w.name, w.hardware_label, str(w.cells_done), w.current_cell or "-")
        console.print(wt)
    print_drift(status, console)


def print_drift(status: farm_pb2.CampaignStatus, console: Console) -> None:
    """The serving model's drift on the campaign's hardware classes (or why none)."""
    if status.drift_note:
        console.print(status.drift_note, soft_wrap=True)
    if not status.drift:
        return
    dt = Table("hardware", "results", "MdAPE vs prediction", "held-out MdAPE", "drift")
    for d in status.drift:
        dt.add_row(d.hardware_label, str(d.results), f"{100 * d.mdape:.1f} %",
                   f"{100 * d.held_out_mdape:.1f} %",
                   "[bold red]FLAGGED: retrain[/]" if d.flagged else "ok")
    console.print(dt)
