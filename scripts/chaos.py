"""Chaos run: a real campaign while workers and the coordinator are killed and restarted.

Runs on loopback only. Workers use an engine plugin given by --engine (default: the
test suite's fake engine, so a run takes a minute; pass `vllm` for real engines).
Checks at the end: cells lost 0, duplicate rows 0, attempts per cell within the cap;
prints kills, re-leases, time from a worker kill to the re-lease of its cell (p50/p99)
and the coordinator's recovery time (kill to SERVING).

    python scripts/chaos.py --cells 40 --worker-kills 3 --coordinator-kills 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from benchlib import wait_serving  # noqa: E402

FAKE_ENGINE = "fake_engines:SlowEngine"


@dataclass
class ChaosReport:
    """What a chaos run did and found."""

    cells: int = 0
    rows: int = 0
    expected_rows: int = 0
    duplicates: int = 0
    lost_cells: int = 0
    max_attempts: int = 0
    worker_kills: int = 0
    coordinator_kills: int = 0
    releases: int = 0
    kill_to_relet_s: list[float] = field(default_factory=list)
    recovery_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def ok(self) -> bool:
        """No cell lost, no row twice, every expected row present."""
        return self.lost_cells == 0 and self.duplicates == 0 and self.rows == self.expected_rows

    def summary(self) -> str:
        """Figures as printed lines."""
        def pct(values, q):
            return f"{np.percentile(values, q):.2f}" if values else "n/a"
        return "\n".join([
            f"cells {self.cells}  rows {self.rows}/{self.expected_rows}  lost cells "
            f"{self.lost_cells}  duplicate rows {self.duplicates}  max epoch {self.max_attempts}",
            f"worker kills {self.worker_kills}  coordinator kills {self.coordinator_kills}  "
            f"re-leases {self.releases}",
            f"kill -> re-lease s: p50 {pct(self.kill_to_relet_s, 50)}  p99 "
            f"{pct(self.kill_to_relet_s, 99)}",
            f"coordinator kill -> SERVING s: p50 {pct(self.recovery_s, 50)}  p99 "
            f"{pct(self.recovery_s, 99)}",
            f"wall {self.wall_s:.1f} s  -> {'OK' if self.ok() else 'FAILED'}",
        ])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Farm:
    """A coordinator and workers as real processes on loopback."""

    def __init__(self, workdir: Path, engine: str, lease_s: float):
        self.workdir, self.engine, self.lease_s = workdir, engine, lease_s
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.db = workdir / "farm.db"
        self.env = dict(os.environ, HF_HUB_OFFLINE="1",
                        PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "worker"),
                                                    os.environ.get("PYTHONPATH", "")]))
        self.coordinator: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}

    def _cli(self, *args: str, log: str) -> subprocess.Popen:
        out = open(self.workdir / log, "a")
        return subprocess.Popen([sys.executable, "-m", "metainf.cli", *args], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=out)

    def start_coordinator(self) -> float:
        """Start (or restart) the coordinator; return seconds until it reports SERVING."""
        t0 = time.monotonic()
        self.coordinator = self._cli(
            "coordinator", "--db", str(self.db), "--port", str(self.port),
            "--lease-s", str(self.lease_s), "--heartbeat-s", str(self.lease_s / 3),
            log="coordinator.log")
        wait_serving(self.address, timeout_s=60, proc=self.coordinator)
        return time.monotonic() - t0

    def start_worker(self, name: str) -> None:
        """Start a worker process (again) under a name."""
        self.workers[name] = self._cli("worker", "--coordinator", self.address, "--name", name,
                                       "--engine", self.engine, log=f"{name}.log")

    def kill(self, proc: subprocess.Popen) -> None:
        """kill -9 a process and its children."""
        import psutil
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
        except psutil.Error:
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """Stop everything."""
        for proc in [*self.workers.values(), self.coordinator]:
            if proc and proc.poll() is None:
                self.kill(proc)


def _grid(cells: int, repetitions: int) -> dict:
    batch_sizes = list(range(1, max(1, cells // 4) + 1))
    return {"name": "chaos", "models": ["llama-tiny"], "methods": ["none", "cb", "pc", "cb+pc"],
            "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 2,
                           "batch_size": batch_sizes, "max_output_tokens": 1,
                           "options": {"prefix_tokens": 4, "suffix_tokens": 1}}],
            "repetitions": repetitions, "timeout_s": 300}


def _state(db: Path) -> tuple[list[dict], list[dict]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    cells = [dict(r) for r in conn.execute("SELECT cell_id, status, epoch, attempts, repetitions "
                                           "FROM cells")]
    rows = [dict(r) for r in conn.execute("SELECT cell_id, repetition, replica FROM results")]
    conn.close()
    return cells, rows


def run_chaos(workdir: Path, cells: int = 40, workers: int = 2, worker_kills: int = 3,
              coordinator_kills: int = 1, repetitions: int = 2, engine: str = FAKE_ENGINE,
              lease_s: float = 3.0, seed: int = 0, timeout_s: float = 600) -> ChaosReport:
    """Run a campaign under kills; return the report (raises if it does not finish)."""
    from metainf.client import campaign_status, submit_grid

    rng = random.Random(seed)
    report = ChaosReport()
    farm = Farm(workdir, engine, lease_s)
    grid_path = workdir / "grid.json"
    grid_path.write_text(json.dumps(_grid(cells, repetitions)))
    t0 = time.monotonic()
    try:
        farm.start_coordinator()
        campaign_id = submit_grid(farm.address, grid_path).campaign_id
        names = [f"chaos-w{i}" for i in range(workers)]
        for name in names:
            farm.start_worker(name)
        kills = ["worker"] * worker_kills + ["coordinator"] * coordinator_kills
        rng.shuffle(kills)
        while True:
            try:
                status = campaign_status(farm.address, campaign_id)
            except grpc.RpcError:
                time.sleep(0.5)
                continue
            report.cells = status.total_cells
            final = sum(status.cells.get(s, 0) for s in ("done", "failed", "oom", "timeout"))
            if status.state == "done":
                break
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"campaign not done after {timeout_s} s: {dict(status.cells)}")
            # spread the kills evenly over the campaign's progress
            done_kills = worker_kills + coordinator_kills - len(kills)
            if kills and final >= report.cells * (done_kills + 1) / (worker_kills +
                                                                     coordinator_kills + 1):
                what = kills.pop()
                if what == "worker":
                    _kill_worker(farm, rng, names, report)
                else:
                    farm.kill(farm.coordinator)
                    report.coordinator_kills += 1
                    report.recovery_s.append(farm.start_coordinator())
            time.sleep(0.3)
        report.wall_s = time.monotonic() - t0
    finally:
        farm.stop()
    cell_rows, rows = _state(farm.db)
    keys = [(r["cell_id"], r["repetition"], r["replica"]) for r in rows]
    report.rows = len(rows)
    report.duplicates = len(keys) - len(set(keys))
    report.expected_rows = sum(c["repetitions"] for c in cell_rows)
    with_rows = {r["cell_id"] for r in rows}
    report.lost_cells = sum(1 for c in cell_rows if c["cell_id"] not in with_rows)
    report.max_attempts = max((c["epoch"] for c in cell_rows), default=0)
    report.releases = sum(c["epoch"] - 1 for c in cell_rows if c["epoch"] > 1)
    return report


def _kill_worker(farm: Farm, rng: random.Random, names: list[str], report: ChaosReport) -> None:
    """Kill a worker that holds a cell, then time how long until that cell is leased again."""
    held: list = []
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:  # wait for a cell in flight to kill
        conn = sqlite3.connect(farm.db)
        held = conn.execute("SELECT c.cell_id, c.epoch, w.name FROM cells c JOIN workers w "
                            "ON w.worker_id = c.worker_id WHERE c.status='leased'").fetchall()
        conn.close()
        if not held:
            time.sleep(0.05)
    if not held:
        return
    cell_id, epoch, name = rng.choice(held)
    if name not in farm.workers:
        return
    farm.kill(farm.workers[name])
    killed_at = time.monotonic()
    report.worker_kills += 1
    farm.start_worker(name)
    while time.monotonic() - killed_at < 120:
        conn = sqlite3.connect(farm.db)
        row = conn.execute("SELECT epoch, status FROM cells WHERE cell_id=?", (cell_id,)).fetchone()
        conn.close()
        if row[0] > epoch or row[1] in ("done", "failed", "oom", "timeout"):
            report.kill_to_relet_s.append(time.monotonic() - killed_at)
            return
        time.sleep(0.1)


def main() -> int:
    """Command line of the chaos run."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-kills", type=int, default=3)
    p.add_argument("--coordinator-kills", type=int, default=1)
    p.add_argument("--repetitions", type=int, default=2)
    p.add_argument("--engine", default=FAKE_ENGINE)
    p.add_argument("--lease-s", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_chaos(Path(tmp), args.cells, args.workers, args.worker_kills,
                           args.coordinator_kills, args.repetitions, args.engine, args.lease_s,
                           args.seed)
    print(report.summary())
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
