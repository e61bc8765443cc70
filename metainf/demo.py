"""`metainf demo`: a local farm end to end — coordinator, workers, campaign, P, selector, Select."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

log = logging.getLogger(__name__)

DEMO_GRID = {
    "name": "demo",
    "models": ["llama-tiny"],
    "methods": "paper8",
    "workloads": [
        {"dataset": "synthetic-shared-prefix", "num_prompts": 32, "batch_size": [8, 32],
         "max_output_tokens": 16, "seed": 0, "options": {"prefix_tokens": 512}},
        {"dataset": "synthetic-sharegpt", "num_prompts": 64, "batch_size": [8, 32],
         "max_output_tokens": 64, "seed": 0},
    ],
    "hardware": "all",
    "repetitions": 3,
}
"""The demo campaign: a tiny model x 8 methods x 2 workloads x 2 batch sizes, 3 repetitions."""

UNSEEN_GPU = "NVIDIA H200 141GB HBM3e, 4.8 TB/s, 989 TFLOPS bf16"

RETRAIN_WAIT_S = 900.0
"""How long the demo waits for the coordinator's own retraining after the campaign ends."""


def runtime_table(frame: pd.DataFrame) -> list[tuple[str, Table]]:
    """Median runtime by method per (model, workload, batch size), with speed-up vs none."""
    done = frame[frame["status"] == "done"]
    tables = []
    for (model, dataset, hw), part in done.groupby(["model", "dataset", "hardware"]):
        med = part.groupby(["batch_size", "method"])["runtime_s"].median().unstack("method")
        methods = list(med.columns)
        table = Table("batch", *methods, title=f"{model} · {dataset} · {hw}: median runtime (s)")
        for batch, row in med.iterrows():
            best = row.min()
            cells = [f"[bold green]{v:.3f}[/]" if v == best else f"{v:.3f}" for v in row]
            table.add_row(str(batch), *cells)
        tables.append((f"{model}/{dataset}", table))
    return tables


def _spawn_workers(address: str, out: Path, n: int) -> list[subprocess.Popen]:
    procs = []
    cores = sorted(os.sched_getaffinity(0))
    per = max(1, len(cores) // n)
    for i in range(n):
        cpus = ",".join(str(c) for c in cores[i * per:(i + 1) * per])
        cmd = [sys.executable, "-m", "metainf.cli", "worker", "--coordinator", address,
               "--name", f"demo-w{i}", "--cpus", cpus, "--price-per-hour", "0.05"]
        logf = open(out / f"worker-{i}.log", "w")
        procs.append(subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT))
    return procs


def fresh_state(out: Path) -> tuple[Path, Path]:
    """The demo's database and model folder in `out`, emptied of an earlier demo's.

    Both go: a model version trained on the earlier run's cells would serve on, and the
    coordinator, scoring its new version on cells that version has in effect already
    seen, would keep it and the demo would not show the loop. Other outputs are
    overwritten as the demo writes them."""
    out.mkdir(parents=True, exist_ok=True)
    db = out / "farm.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    model_dir = out / "models"
    shutil.rmtree(model_dir, ignore_errors=True)
    return db, model_dir


def run_demo(out: Path, quick: bool = False) -> int:
    """Run the whole demo in `out`; return an exit code."""
    from metainf.cli.progress import watch
    from metainf.client import export_campaign, submit_grid
    from metainf.coordinator.server import ServerConfig, create_server
    from metainf.p import read_p
    from metainf.report.html import write_report

    console = Console()
    err = Console(stderr=True)
    db, model_dir = fresh_state(out)
    grid = dict(DEMO_GRID)
    if quick:
        grid.update(methods=["none", "cb", "pc", "cb+pc+cp"])
    # the progress bar is the demo's voice; the coordinator's per-cell log lines would drown it
    for name in ("metainf.coordinator", "metainf.selector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    grid_path = out / "grid.yaml"
    grid_path.write_text(yaml.safe_dump(grid, sort_keys=False))

    coord = create_server(ServerConfig(db=db, port=0, model_dir=model_dir, http_port=0))
    address = f"127.0.0.1:{coord.port}"
    err.print(f"[bold]coordinator[/] on {address}, state in {db}")
    err.print(f"[bold]dashboard[/] http://127.0.0.1:{coord.dashboard.port}/ "
              f"(metrics on /metrics)")
    n_workers = 2 if len(os.sched_getaffinity(0)) >= 2 else 1
    workers = _spawn_workers(address, out, n_workers)
    err.print(f"[bold]{n_workers} worker(s)[/] started (logs in {out}/worker-*.log)")
    t0 = time.time()
    try:
        resp = submit_grid(address, grid_path)
        err.print(f"campaign [bold]{resp.campaign_id}[/]: {resp.cells_per_hardware_class} "
                  f"cells per hardware class")
        status = watch(address, resp.campaign_id, console=err)
        err.print(f"campaign done in {time.time() - t0:.0f} s: {dict(status.cells)}")
        p_path = export_campaign(address, resp.campaign_id, out / "p.parquet")
        frame, meta = read_p(p_path)
        frame.to_csv(out / "p.csv", index=False)
        err.print(f"P: {len(frame)} rows -> {p_path} (+ p.csv, p.parquet.meta.json)")
        for _, table in runtime_table(frame):
            console.print(table)
        index = write_report(frame, meta, out / "report")
        err.print(f"[bold]report[/] {index} (open it in a browser)")
        if not select_from_retrained(coord, address, resp.campaign_id, console, err):
            return 1
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
        coord.stop(grace=2)
    err.print(f"demo finished in {time.time() - t0:.0f} s; outputs in {out}/")
    return 0


def select_from_retrained(coord, address: str, campaign_id: str, console: Console,
                         err: Console, wait_s: float = RETRAIN_WAIT_S) -> bool:
    """Wait (bounded) for the version the coordinator trains itself when the campaign
    ends, then ask Select; False (and why) when no such version serves."""
    from google.protobuf.json_format import MessageToDict

    from metainf.client import channel
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    retrainer = coord.retrainer
    if retrainer is None:
        err.print("[red]the coordinator does not retrain (no --model-dir?)[/]")
        return False
    err.print(f"waiting for the coordinator to train MetaInf on campaign {campaign_id} "
              f"(at most {wait_s:.0f} s)...")
    trigger = f"campaign {campaign_id} done"
    deadline = time.monotonic() + wait_s
    outcome = None
    while time.monotonic() < deadline:
        outcome = next((r for r in retrainer.history if trigger in r["trigger"]), None)
        if outcome is not None and not retrainer.busy:
            break
        time.sleep(0.5)
    if outcome is None or outcome["outcome"] != "promoted":
        why = outcome["reason"] if outcome else f"no retraining finished in {wait_s:.0f} s"
        err.print(f"[red]no version promoted by the coordinator[/]: {why}")
        return False
    record = outcome["record"]
    held = record["heldout"]
    err.print(f"[bold]MetaInf {outcome['version']} trained by the coordinator itself[/] when "
              f"campaign {campaign_id} ended ({outcome['seconds']:.0f} s, no train command): "
              f"{record['rows']} rows, {record['tasks']} tasks; on {held['n_tasks']} "
              f"held-out task(s) regret {held['regret']:.3f}, level error "
              f"{held['level_mdape']:.2f}; promoted: {outcome['reason']}")
    stub = farm_pb2_grpc.SelectorStub(channel(address))
    workload = {"dataset": "synthetic-shared-prefix", "num_prompts": 32, "batch_size": 8,
                "max_output_tokens": 16}
    request = farm_pb2.SelectRequest(
        model="llama-tiny", hardware=[farm_pb2.HardwareOption(text=UNSEEN_GPU)],
        workload_json=json.dumps(workload), objective="runtime")
    stub.Select(request, timeout=60)  # the first answer loads the embedding model
    t1 = time.perf_counter()
    answer = stub.Select(request, timeout=60)
    ms = (time.perf_counter() - t1) * 1e3
    err.print(f"[bold]Select[/] for an unseen GPU ({UNSEEN_GPU!r}) answered in {ms:.1f} ms "
              f"by version {answer.model_version}:")
    console.print_json(json.dumps(MessageToDict(answer, preserving_proto_field_name=True)))
    return answer.model_version == outcome["version"]
