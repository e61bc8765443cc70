"""Campaign throughput: engine starts, wall time against its lower bound, coordinator overhead.

Two phases, each a real campaign on local worker processes (`metainf worker`, each
pinned to its own cores) against a coordinator run in this process, whose RPC handlers
are timed (LeaseCell, ReportResult, Heartbeat):

1. overhead: a pure-overhead campaign of --overhead-cells cells on a fake engine that
   answers at once (tests/worker/fake_engines.py:QuickEngine): milliseconds of
   coordinator time per cell (lease + report + store) and the whole farm cycle per cell;
2. campaign: a small real grid (default llama-tiny x 4 methods x 2 workloads x 2 batch
   sizes x 2 repetitions on vLLM): engine starts counted from the stored rows
   (engine_start_s > 0) and the workers' logs, against the naive one engine per cell and
   the minimum (distinct (model, engine configuration) per hardware class, and per
   worker); wall time against the lower bound (minimum engine starts x median start
   time + the cells' own time, divided over the workers); the coordinator's share.

Targets: wall <= 1.15 x lower bound; overhead < 20 ms per cell and < 1 % of campaign time.

    python scripts/bench_campaign.py                           # both phases, ~5 min, 2 cores
    python scripts/bench_campaign.py --skip-campaign           # overhead only, ~1 min
    python scripts/bench_campaign.py --workers 1 --methods none,cb --batch-sizes 4
    python scripts/bench_campaign.py --engine fake_engines:SlowEngine --skip-overhead
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

log = logging.getLogger("bench_campaign")

QUICK_ENGINE = "fake_engines:QuickEngine"
TARGET_WALL_RATIO = 1.15
TARGET_OVERHEAD_MS = 20.0
TARGET_OVERHEAD_SHARE = 0.01
TARGET_CV = 0.05
ENGINE_START_LINE = re.compile(r"Initializing a V1 LLM engine")
"""What vLLM logs once per engine start (the workers' logs are searched for it)."""

TIMED_RPCS = ("LeaseCell", "ReportResult", "Heartbeat", "RegisterWorker")


# --------------------------------------------------------------------------- timed coordinator


@dataclass
class RpcTimes:
    """Server-side handler seconds per RPC (a LeaseCell with no cell counts apart)."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, seconds: float) -> None:
        """Record one handled call."""
        with self.lock:
            self.seconds[name].append(seconds)

    def total(self, name: str) -> float:
        """Seconds spent in one RPC's handler."""
        return sum(self.seconds.get(name, []))

    def count(self, name: str) -> int:
        """Calls of one RPC."""
        return len(self.seconds.get(name, []))


def timed_servicer_class(times: RpcTimes):
    """A CoordinatorServicer whose worker RPC handlers record their wall time."""
    from metainf.coordinator.service import CoordinatorServicer

    class TimedCoordinatorServicer(CoordinatorServicer):
        """Times LeaseCell, ReportResult, Heartbeat and RegisterWorker."""

    def wrap(name: str):
        plain = getattr(CoordinatorServicer, name)

        def handler(self, request, context):
            t = time.perf_counter()
            resp = plain(self, request, context)
            label = name
            if name == "LeaseCell" and not resp.HasField("cell"):
                label = "LeaseCell(idle)"
            times.add(label, time.perf_counter() - t)
            return resp

        handler.__doc__ = plain.__doc__
        return handler

    for name in TIMED_RPCS:
        setattr(TimedCoordinatorServicer, name, wrap(name))
    return TimedCoordinatorServicer


def start_timed_coordinator(workdir: Path, times: RpcTimes):
    """create_server with the timed servicer; returns the Coordinator."""
    import metainf.coordinator.server as server_mod
    from metainf.coordinator.server import ServerConfig, create_server

    plain = server_mod.CoordinatorServicer
    server_mod.CoordinatorServicer = timed_servicer_class(times)
    try:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{workdir / 'farm.db'}{suffix}").unlink(missing_ok=True)
        return create_server(ServerConfig(db=workdir / "farm.db", port=0))
    finally:
        server_mod.CoordinatorServicer = plain


# --------------------------------------------------------------------------- workers


def worker_cpus(n: int, spec: str) -> list[str]:
    """Each worker's --cpus: given as 'A;B;...' or the usable cores split evenly."""
    if spec:
        parts = [p.strip() for p in spec.split(";") if p.strip()]
        if len(parts) != n:
            raise SystemExit(f"--cpus: give {n} core lists separated by ';', got {spec!r}")
        return parts
    cores = sorted(os.sched_getaffinity(0))
    per = max(1, len(cores) // n)
    return [",".join(str(c) for c in cores[i * per:(i + 1) * per] or cores[-1:])
            for i in range(n)]


def start_workers(address: str, engine: str, cpus: list[str], workdir: Path,
                  tag: str) -> list[subprocess.Popen]:
    """Start `metainf worker` processes, one per core list."""
    pythonpath = [str(benchlib.ROOT / "tests" / "worker")] if ":" in engine else []
    procs = []
    for i, c in enumerate(cpus):
        cmd = [sys.executable, "-m", "metainf.cli", "worker", "--coordinator", address,
               "--name", f"bench-{tag}-w{i}", "--cpus", c, "--engine", engine]
        logf = open(workdir / f"{tag}-worker-{i}.log", "w")
        procs.append(subprocess.Popen(cmd, env=benchlib.child_env(pythonpath),
                                      stdout=subprocess.DEVNULL, stderr=logf))
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every worker (it finishes its cell and shuts its engine down), then wait."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        benchlib.stop_process(p, timeout_s=90)


def wait_registered(store, n: int, procs: list[subprocess.Popen], timeout_s: float = 180
                    ) -> None:
    """Wait until n workers have registered with the coordinator."""
    t0 = time.monotonic()
    while len(store.workers()) < n:
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a worker exited before registering: {dead[0]}")
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"only {len(store.workers())}/{n} workers registered after "
                               f"{timeout_s:.0f} s")
        time.sleep(0.2)


# --------------------------------------------------------------------------- one campaign


@dataclass
class CampaignRun:
    """What one campaign did, read back from the coordinator's store."""

    campaign_id: str
    cells: list[dict]
    wall_s: float
    first_lease_s: float
    workers: int
    times: RpcTimes
    log_starts: int
    engine_version: str = ""
    engine_config: str = ""


def run_campaign(grid: dict, engine: str, cpus: list[str], workdir: Path, tag: str,
                 timeout_s: float) -> CampaignRun:
    """Coordinator + workers + one campaign until every cell has a final outcome."""
    from metainf.coordinator.campaigns import create
    from metainf.coordinator.scheduler import campaign_done

    times = RpcTimes()
    sub = workdir / tag
    sub.mkdir(parents=True, exist_ok=True)
    coord = start_timed_coordinator(sub, times)
    address = f"127.0.0.1:{coord.port}"
    procs = start_workers(address, engine, cpus, sub, tag)
    try:
        wait_registered(coord.store, len(cpus), procs)
        # Submit as SubmitCampaign does (validated and stored), then start the clock.
        campaign_id, n_cells = create(coord.store, grid)
        t0 = time.time()
        log.info("%s: campaign %s, %d cells, %d worker(s) on cores %s", tag, campaign_id,
                 n_cells, len(cpus), " | ".join(cpus))
        last = -1
        while not campaign_done(coord.store, campaign_id):
            if time.time() - t0 > timeout_s:
                raise RuntimeError(f"{tag}: campaign not done after {timeout_s:.0f} s: "
                                   f"{coord.store.cell_counts(campaign_id)}")
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{tag}: a worker exited (code {dead[0].returncode}); "
                                   f"see {sub}")
            counts = coord.store.cell_counts(campaign_id)
            final = sum(v for k, v in counts.items() if k not in ("pending", "leased"))
            if final != last and final % max(1, n_cells // 10) == 0:
                log.info("%s: %d/%d cells final", tag, final, n_cells)
                last = final
            time.sleep(0.1)
        wall = time.time() - t0
        cells = coord.store.query(
            "SELECT c.cell_id, c.engine_key, c.worker_id, c.status, c.started_at, "
            "c.finished_at, c.epoch, MAX(r.engine_start_s) AS engine_start_s, "
            "SUM(r.runtime_s) AS runtime_s, GROUP_CONCAT(r.runtime_s) AS runtimes, "
            "MAX(r.engine_version) AS engine_version, "
            "MAX(r.engine_config_json) AS engine_config FROM cells c "
            "LEFT JOIN results r USING (cell_id) WHERE c.campaign_id=? GROUP BY c.cell_id",
            (campaign_id,))
        first = min(c["started_at"] for c in cells if c["started_at"]) - t0
    finally:
        stop_workers(procs)
        coord.stop(grace=2)
    log_starts = sum(len(ENGINE_START_LINE.findall(p.read_text(errors="replace")))
                     for p in sub.glob(f"{tag}-worker-*.log"))
    version = next((c["engine_version"] for c in cells if c["engine_version"]), "")
    config = next((c["engine_config"] for c in cells if c["engine_config"]), "")
    return CampaignRun(campaign_id, cells, wall, first, len(cpus), times, log_starts,
                       version, config)


def runner_bookkeeping(repetitions: int = 2, n: int = 20) -> tuple[float, float]:
    """Median ms of one no-op cell through CellRunner (fake engine), and of its MemoryMeters.

    What a worker spends per cell besides the engine and the RPCs: workload build,
    warm-up call, one MemoryMeter + EnergyMeter per repetition, metrics.
    """
    sys.path.insert(0, str(benchlib.ROOT / "tests" / "worker"))
    from fake_engines import QuickEngine

    from metainf.methods import method_from_name
    from metainf.worker.engines.base import EngineOptions
    from metainf.worker.metrics import MemoryMeter
    from metainf.worker.runner import Cell, CellRunner

    grid = overhead_grid(4)["workloads"][0]
    workload = {k: v for k, v in grid.items() if k != "batch_size"}
    runner = CellRunner(QuickEngine, EngineOptions(cpus=(0,)))
    cell = Cell("bench", "llama-tiny", method_from_name("none"), workload, 1, repetitions, "k")
    runner.run(cell)
    cells, meters = [], []
    for _ in range(n):
        t = time.perf_counter()
        runner.run(cell)
        cells.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(repetitions):
            with MemoryMeter(os.getpid()):
                pass
        meters.append(time.perf_counter() - t)
    return 1e3 * benchlib.pct(cells, 50), 1e3 * benchlib.pct(meters, 50)


def overhead_lines(run: CampaignRun) -> tuple[list[str], float]:
    """Figures of the pure-overhead phase; returns them and the ms per cell."""
    t, n = run.times, len(run.cells)
    lease, report, beat = t.total("LeaseCell"), t.total("ReportResult"), t.total("Heartbeat")
    idle = t.total("LeaseCell(idle)")
    per_cell_ms = 1e3 * (lease + report + beat + idle) / n
    span = max(c["finished_at"] for c in run.cells) - min(c["started_at"] for c in run.cells)
    by_worker = defaultdict(list)
    for c in run.cells:
        by_worker[c["worker_id"]].append(c)
    gaps, busy = [], []
    for cells in by_worker.values():
        cells.sort(key=lambda c: c["started_at"])
        # The first cell of a worker also spawns its engine host: a one-off, left out.
        gaps += [b["started_at"] - a["started_at"] for a, b in zip(cells, cells[1:])]
        busy += [c["finished_at"] - c["started_at"] for c in cells[1:]]
    cycle = benchlib.summarize(gaps)
    lease_p = [1e3 * x for x in t.seconds.get("LeaseCell", [])]
    report_p = [1e3 * x for x in t.seconds.get("ReportResult", [])]
    lines = [
        f"overhead phase: {n} cells on {run.workers} worker(s), fake engine {QUICK_ENGINE} "
        f"(answers at once): {span:.1f} s from first lease to last report",
        f"  coordinator time per cell: {per_cell_ms:.2f} ms = lease {1e3 * lease / n:.2f} + "
        f"report+store {1e3 * report / n:.2f} + heartbeats {1e3 * beat / n:.2f} + idle lease "
        f"polls {1e3 * idle / n:.2f} ms (LeaseCell p50 {benchlib.pct(lease_p, 50):.2f} / p99 "
        f"{benchlib.pct(lease_p, 99):.2f} ms; ReportResult p50 {benchlib.pct(report_p, 50):.2f}"
        f" / p99 {benchlib.pct(report_p, 99):.2f} ms; handler time, server side)",
        f"  whole farm cycle per cell (lease to next lease of a worker: worker + engine host + "
        f"RPCs + coordinator): p50 {1e3 * cycle.median:.1f} ms, mean "
        f"{1e3 * sum(gaps) / max(len(gaps), 1):.1f} ms (lease-to-report p50 "
        f"{1e3 * benchlib.pct(busy, 50):.1f} ms of it); first cell per worker left out "
        f"(it spawns the engine host)",
    ]
    cell_ms, meter_ms = runner_bookkeeping()
    lines.append(f"  of which the runner's own bookkeeping (in-process CellRunner + fake engine, "
                 f"2 repetitions): {cell_ms:.1f} ms per cell, {meter_ms:.1f} ms of it in "
                 f"MemoryMeter's process-tree scans (psutil children(recursive=True) reads "
                 f"every /proc/*/stat)")
    return lines, per_cell_ms


def repeatability_line(cells: list[dict]) -> str:
    """Coefficient of variation across each cell's repetitions, for cells over 1 s."""
    def cvs(min_runtime_s: float) -> list[float]:
        out = []
        for c in cells:
            runs = [float(v) for v in (c["runtimes"] or "").split(",") if v]
            if len(runs) > 1 and statistics.median(runs) > min_runtime_s:
                out.append(benchlib.summarize(runs).cv)
        return out

    def describe(values: list[float]) -> str:
        within = sum(cv <= TARGET_CV for cv in values)
        return (f"median {100 * statistics.median(values):.1f}%, max {100 * max(values):.1f}%, "
                f"{within}/{len(values)} within {100 * TARGET_CV:.0f}%")

    long_cells, every_cell = cvs(1.0), cvs(0.0)
    if not every_cell:
        return "  repeatability: no cell with 2+ repetitions"
    target = (f"cells over 1 s: {describe(long_cells)} (target on a quiet machine)"
              if long_cells else "no cell over 1 s (the target's cells; try --num-prompts 64)")
    return (f"  repeatability (CV across each cell's repetitions): {target}; all cells: "
            f"{describe(every_cell)}")


def campaign_lines(run: CampaignRun, overhead_ms: float | None) -> list[str]:
    """Figures of the real campaign: engine starts, wall vs lower bound, overhead share."""
    cells = run.cells
    n = len(cells)
    started = [c for c in cells if (c["engine_start_s"] or 0) > 0]
    starts = len(started)
    keys = {c["engine_key"] for c in cells}
    groups = {(c["engine_key"], c["worker_id"]) for c in cells}
    start_s = benchlib.summarize([c["engine_start_s"] for c in started])
    busy = [(c["finished_at"] - c["started_at"]) - (c["engine_start_s"] or 0) for c in cells
            if c["finished_at"] and c["started_at"]]
    measured = sum(c["runtime_s"] or 0 for c in cells)
    median_start = start_s.median if starts else 0.0
    lower = (len(keys) * median_start + sum(busy)) / run.workers
    ratio = run.wall_s / lower if lower > 0 else float("nan")
    t = run.times
    coord_s = sum(t.total(k) for k in ("LeaseCell", "ReportResult", "Heartbeat",
                                       "LeaseCell(idle)"))
    share = coord_s / (run.wall_s * run.workers)
    statuses = defaultdict(int)
    for c in cells:
        statuses[c["status"]] += 1
    parts = ", ".join(
        f"{k} {1e3 * t.total(k):.0f} ms/{t.count(k)} calls (p50 "
        f"{benchlib.pct([1e3 * x for x in t.seconds.get(k, [])], 50):.1f}, max "
        f"{1e3 * max(t.seconds.get(k, [0.0])):.1f} ms)"
        for k in ("LeaseCell", "ReportResult", "Heartbeat", "LeaseCell(idle)"))
    lines = [
        f"campaign phase: {n} cells ({dict(statuses)}) on {run.workers} worker(s); wall "
        f"{run.wall_s:.1f} s from submit to the last outcome (first lease after "
        f"{run.first_lease_s:.1f} s)",
        f"  engine: vllm {run.engine_version or '?'}; engine config of a row: "
        f"{run.engine_config or '?'}",
        f"  engine starts: {starts} (rows with engine_start_s > 0; vLLM start lines in worker "
        f"logs: {run.log_starts}) vs naive one per cell {n}, minimum per hardware class "
        f"{len(keys)} (distinct model + engine configuration), distinct (engine, worker) "
        f"groups {len(groups)} -> starts <= groups: {'yes' if starts <= len(groups) else 'NO'}",
        f"  engine start time: {start_s.fmt(' s')}",
        f"  lower bound: ({len(keys)} starts x {median_start:.1f} s + cells' own time "
        f"{sum(busy):.1f} s) / {run.workers} worker(s) = {lower:.1f} s (measured runs alone "
        f"{measured:.1f} s; cells' own time adds warm-up runs and per-cell bookkeeping)",
        f"  wall / lower bound = {ratio:.3f} (target <= {TARGET_WALL_RATIO}): "
        f"{'met' if ratio <= TARGET_WALL_RATIO else 'MISSED'}",
        f"  coordinator handler time: {coord_s:.2f} s = {1e3 * coord_s / n:.1f} ms per cell = "
        f"{100 * share:.3f}% of worker time (target < {TARGET_OVERHEAD_MS:.0f} ms and "
        f"< {100 * TARGET_OVERHEAD_SHARE:.0f}%): "
        f"{'met' if 1e3 * coord_s / n < TARGET_OVERHEAD_MS and share < TARGET_OVERHEAD_SHARE else 'MISSED'}",  # noqa: E501
        f"    ({parts}; the first LeaseCell also binds the campaign to the hardware class)",
    ]
    lines.append(repeatability_line(cells))
    if overhead_ms is not None:
        lines.append(f"  with the overhead phase's {overhead_ms:.2f} ms per cell: "
                     f"{100 * overhead_ms * n / 1e3 / (run.wall_s * run.workers):.3f}% of this "
                     f"campaign's worker time")
    return lines


# --------------------------------------------------------------------------- grids


def overhead_grid(cells: int) -> dict:
    """About `cells` cells: 4 methods x cells/4 batch sizes of a 2-prompt workload."""
    per = max(1, cells // 4)
    return {"name": "bench-overhead", "models": ["llama-tiny"],
            "methods": ["none", "cb", "pc", "cb+pc"],
            "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 2,
                           "batch_size": list(range(1, per + 1)), "max_output_tokens": 1,
                           "options": {"prefix_tokens": 4, "suffix_tokens": 1}}],
            "repetitions": 2, "timeout_s": 300}


def campaign_grid(args: argparse.Namespace) -> dict:
    """The real campaign's grid from the command line."""
    batches = [int(b) for b in args.batch_sizes.split(",")]
    workloads = []
    if args.workloads in ("both", "shared-prefix"):
        workloads.append({"dataset": "synthetic-shared-prefix", "num_prompts": args.num_prompts,
                          "batch_size": batches, "max_output_tokens": 16, "seed": 0,
                          "options": {"prefix_tokens": 256, "suffix_tokens": 32}})
    if args.workloads in ("both", "sharegpt"):
        workloads.append({"dataset": "synthetic-sharegpt", "num_prompts": args.num_prompts,
                          "batch_size": batches, "max_output_tokens": 32, "seed": 0})
    return {"name": "bench-campaign", "models": args.models.split(","),
            "methods": args.methods.split(","), "workloads": workloads,
            "repetitions": args.repetitions, "timeout_s": args.cell_timeout}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the overhead phase and the real campaign; print figures on stdout."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    default_workers = 2 if len(os.sched_getaffinity(0)) >= 2 else 1
    p.add_argument("--workers", type=int, default=default_workers,
                   help=f"worker processes (default {default_workers}: one per core)")
    p.add_argument("--cpus", default="", help="each worker's cores, ';'-separated, e.g. "
                                              "'0;1' (default: usable cores split evenly)")
    p.add_argument("--engine", default="vllm", help="engine of the campaign phase (a name "
                                                    "or module:Class from tests/worker)")
    p.add_argument("--models", default="llama-tiny")
    p.add_argument("--methods", default="none,cb,pc,cb+pc+cp")
    p.add_argument("--workloads", choices=("both", "shared-prefix", "sharegpt"), default="both")
    p.add_argument("--batch-sizes", default="4,16")
    p.add_argument("--num-prompts", type=int, default=16)
    p.add_argument("--repetitions", type=int, default=2)
    p.add_argument("--cell-timeout", type=float, default=900.0)
    p.add_argument("--overhead-cells", type=int, default=200)
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--skip-campaign", action="store_true")
    p.add_argument("--timeout", type=float, default=1800.0, help="per phase, seconds")
    p.add_argument("--workdir", type=Path, help="keep the databases and worker logs here")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    benchlib.setup_logging(args.verbose)
    cpus = worker_cpus(args.workers, args.cpus)
    workdir = benchlib.run_workdir(args.workdir, "bench-campaign")
    print(*benchlib.header_lines(), sep="\n")
    print(f"workers: {args.workers}, cores {' | '.join(cpus)}; coordinator in this process "
          f"(SQLite WAL, synchronous=FULL), RPC handlers timed server side")
    overhead_ms = None
    if not args.skip_overhead:
        run = run_campaign(overhead_grid(args.overhead_cells), QUICK_ENGINE, cpus, workdir,
                           "overhead", args.timeout)
        lines, overhead_ms = overhead_lines(run)
        for line in lines:
            print(line)
    if not args.skip_campaign:
        grid = campaign_grid(args)
        print(f"campaign grid: {json.dumps(grid, separators=(',', ':'))}")
        run = run_campaign(grid, args.engine, cpus, workdir, "campaign", args.timeout)
        for line in campaign_lines(run, overhead_ms):
            print(line)
    print(benchlib.load_line())
    log.info("databases and worker logs in %s", workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
