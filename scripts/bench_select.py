"""Select against the gRPC floor: Ping, known questions, first-seen text, worker RPCs.

Starts a coordinator (or uses --coordinator) with a trained model (or trains one on the
synthetic table of make_synthetic_table.py), then drives it over gRPC from --clients
processes at a fixed target rate (open loop: a late answer does not delay the next
request), one phase after another on the same server with the same clients:

1. Ping, the floor: an RPC that does nothing, through the same interceptors as Select;
2. Select for known entities (256 questions drawn from the training table's tasks, each
   asked once before the phases, then over and over);
3. the same Select load while a worker process heartbeats, leases and reports cells;
4. Select with a hardware text never seen before on every call (--first-seen-qps).

Prints p50/p90/p99 latency, achieved QPS and errors of each phase, the coordinator's CPU
per answered call (from /proc, whole phase), and Select's CPU and latency as ratios to
Ping's measured in the same run (ratios hold across machines; milliseconds do not), the
worker RPCs' latency under the Select load, the same Select timed in-process (no gRPC),
and one `targets:` line. Optionally (--train-rows N) the training time and peak memory of
MetaInf on a synthetic farm-like P of N rows.

Targets (2 cores): known questions at 500 QPS from 2 clients: coordinator CPU per call
<= 2x Ping's, p99 <= 10 ms, no errors; first-seen text at 20 QPS: p99 <= 50 ms; worker
RPCs during the Select load: p99 <= 50 ms.

    python scripts/bench_select.py                      # defaults: about 2 minutes
    python scripts/bench_select.py --qps 500 --seconds 20 --train-rows 100000
    python scripts/bench_select.py --coordinator HOST:PORT --model-dir DIR
    python scripts/bench_select.py --profile            # py-spy the coordinator's Select

--profile needs py-spy (`pip install py-spy`, not a dependency of the project); it samples
the coordinator during the known-question phase, whose CPU figure then includes py-spy's
own cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
import make_synthetic_table as synth

log = logging.getLogger("bench_select")

TARGET_KNOWN_P99_MS = 10.0
TARGET_KNOWN_QPS = 500.0
TARGET_CPU_RATIO = 2.0
TARGET_FIRST_SEEN_P99_MS = 50.0
TARGET_WORKER_P99_MS = 50.0
DEADLINE_S = 10.0
WORKER_PROBE_RATE = 10.0
"""Heartbeat + LeaseCell + ReportResult rounds per second of the worker probe."""


# --------------------------------------------------------------------------- tables


def scaled_table(n_rows: int, repetitions: int = 3, seed: int = 0,
                 noise: float = 0.04) -> pd.DataFrame:
    """A farm-like long P of exactly n_rows rows, built with make_synthetic_table's model.

    Keeps its 4 hardware, 6 models, 2 batch sizes and 8 methods, and adds workload
    variants (input/output lengths, spread and shared prefix jittered around the 13
    base workloads) until tasks x methods x repetitions reaches n_rows, so that training
    sees about n_rows / repetitions distinct (task, method) pairs, as a farm P would.
    """
    rng = np.random.default_rng(seed)
    per_workload = len(synth.HARDWARE) * len(synth.MODELS) * len(synth.BATCH_SIZES)
    n_tasks = math.ceil(n_rows / (len(synth.METHODS) * repetitions))
    n_workloads = max(1, math.ceil(n_tasks / per_workload))
    base = list(synth.WORKLOADS.items())
    workloads = {}
    for j in range(n_workloads):
        label, (inp, out, spread, prefix) = base[j % len(base)]
        if j >= len(base):
            inp = max(8, int(inp * 2 ** rng.uniform(-1, 1)))
            out = max(4, int(out * 2 ** rng.uniform(-1, 1)))
            spread = float(np.clip(spread + rng.normal(0, 0.1), 0, 1))
            prefix = float(np.clip(prefix + rng.normal(0, 0.1), 0, 0.99))
            label = (f"{label.split(',')[0]} variant {j}: input ~{inp}, output ~{out}, "
                     f"spread {spread:.2f}, shared prefix {prefix:.2f}")
        workloads[label] = (inp, out, spread, prefix)
    rows = []
    for hw_name, hw in synth.HARDWARE.items():
        for model_name, model in synth.MODELS.items():
            for wl_name, wl in workloads.items():
                for batch in synth.BATCH_SIZES:
                    inp, out, _, _ = wl
                    cost = 256 * (0.2 * inp + out) * model[0] / (hw[0] * 1e3 * np.sqrt(batch))
                    for method in synth.METHODS:
                        mean = np.log(cost) + synth.method_effect(method, hw, model, wl, batch)
                        for rep in range(repetitions):
                            rows.append((model_name, hw_name, wl_name, batch, method, rep,
                                         float(np.exp(mean + rng.normal(0.0, noise)))))
    df = pd.DataFrame(rows[:n_rows], columns=["model", "hardware", "workload", "batch_size",
                                              "method", "repetition", "runtime_s"])
    df["status"] = "done"
    return df


# --------------------------------------------------------------------------- training


def _vm_kib(field: str) -> int:
    """A VmXXX field of /proc/self/status in KiB (0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _train_child(csv: str, cache_dir: str, trace: bool, out: mp.Queue) -> None:
    """Child process: train on csv; report seconds (embedding share apart) and peak memory.

    Peak RSS is VmHWM after resetting it once the imports are done (writing 5 to
    /proc/self/clear_refs): getrusage's ru_maxrss survives exec and would report the
    parent's peak.
    """
    import tracemalloc

    os.environ["METAINF_SEARCH_CACHE"] = os.path.join(cache_dir, "search")  # cold, per run
    from metainf.selector.embeddings import Embedder
    from metainf.selector.table import PerfTable
    from metainf.selector.training import train

    spent = {"s": 0.0}
    plain_encode = Embedder.encode

    def timed_encode(self, texts):
        t = time.perf_counter()
        try:
            return plain_encode(self, texts)
        finally:
            spent["s"] += time.perf_counter() - t

    Embedder.encode = timed_encode  # the featurizer pickles its embedder: no subclass

    import sentence_transformers  # noqa: F401  (imported before the baseline is taken)
    import xgboost  # noqa: F401

    t0 = time.perf_counter()
    table = PerfTable.load(csv)
    t_load = time.perf_counter() - t0
    rss0 = _vm_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if trace:
        tracemalloc.start()
    cpu0 = time.process_time()
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-train-model-") as model_dir:
        model = train(table, model_dir, embedder=Embedder(cache_dir=cache_dir))
    t_train = time.perf_counter() - t1
    py_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    out.put({"load_s": t_load, "train_s": t_train, "cpu_s": time.process_time() - cpu0,
             "embed_s": spent["s"], "n_tasks": table.n_tasks,
             "n_pairs": int(np.isfinite(table.cost).sum()), "rss_before_kb": rss0,
             "rss_peak_kb": _vm_kib("VmHWM"), "py_peak_bytes": py_peak,
             "version": model.version})


def bench_training(n_rows: int, repetitions: int, seed: int, tracemalloc_run: bool,
                   workdir: Path) -> list[str]:
    """Train MetaInf on a synthetic P of n_rows rows in fresh processes; lines to print."""
    t0 = time.perf_counter()
    df = scaled_table(n_rows, repetitions, seed)
    csv = workdir / f"train-{n_rows}.csv"
    df.to_csv(csv, index=False)
    gen_s = time.perf_counter() - t0
    log.info("synthetic P: %d rows in %.1f s -> %s", len(df), gen_s, csv)
    ctx = mp.get_context("spawn")
    lines = [f"training table: {len(df)} rows, {df['workload'].nunique()} workloads x "
             f"{df['model'].nunique()} models x {df['hardware'].nunique()} hardware x "
             f"{df['batch_size'].nunique()} batch sizes x {df['method'].nunique()} methods x "
             f"<= {repetitions} repetitions (generated in {gen_s:.1f} s)"]
    for trace in ([False, True] if tracemalloc_run else [False]):
        cache = tempfile.mkdtemp(prefix="bench-emb-", dir=workdir)  # cold embedding cache
        q = ctx.Queue()
        p = ctx.Process(target=_train_child, args=(str(csv), cache, trace, q))
        p.start()
        res = q.get()
        p.join()
        if trace:
            lines.append(f"train with tracemalloc on: {res['train_s']:.1f} s, Python-heap peak "
                         f"{res['py_peak_bytes'] / 2**20:.0f} MiB (numpy included, XGBoost's "
                         "C++ buffers not)")
        else:
            lines.append(
                f"train (cold embedding and search caches, XGBoost n_jobs=1): "
                f"{res['train_s']:.1f} s wall, "
                f"{res['cpu_s']:.1f} s CPU, for {res['n_tasks']} tasks / {res['n_pairs']} "
                f"(task, method) pairs; of which sentence-transformer load + embedding "
                f"{res['embed_s']:.1f} s, the rest (SVD, facts, XGBoost, save) "
                f"{res['train_s'] - res['embed_s']:.1f} s; reading the table {res['load_s']:.1f}"
                f" s; peak RSS {res['rss_peak_kb'] / 2**10:.0f} MiB (before training: "
                f"{res['rss_before_kb'] / 2**10:.0f} MiB, imports and table)")
    return lines


# --------------------------------------------------------------------------- queries


def known_queries(model_dir: Path, limit: int = 256, seed: int = 0) -> list[dict]:
    """Select queries for tasks the model was trained on (known model, hardware, workload)."""
    from metainf.selector.artifact import load_model

    model = load_model(model_dir)
    cols = list(model.mapping.workload_cols)
    models = list(model.known.get("model", {})) or [""]
    hardware = list(model.hardware_names) or [""]
    workloads = []
    for key in model.known.get("workload", {}):
        values = [_typed(v) for v in json.loads(key)]
        workloads.append(dict(zip(cols, values, strict=True)))
    rng = random.Random(seed)
    out = []
    for _ in range(limit):
        out.append({"model": rng.choice(models), "hardware": rng.choice(hardware),
                    "workload": rng.choice(workloads)})
    return out


def _typed(text: str):
    try:
        x = float(text)
    except ValueError:
        return text
    return int(x) if x.is_integer() else x


def first_seen_text(client: int, k: int, run: str = "") -> str:
    """A hardware description never sent before (numbers vary, so facts differ too).

    `run` tags the texts of one benchmark run, so a coordinator (or an embedding cache)
    that served an earlier run has not seen them either.
    """
    rng = random.Random(client * 1_000_003 + k)
    return (f"NVIDIA H200 {rng.randint(96, 192)} GB HBM3e, {rng.uniform(3.0, 6.0):.2f} TB/s, "
            f"{rng.randint(700, 1200)} TFLOPS bf16, {rng.randint(400, 1000)} W, "
            f"bench unit {run}{client}-{k}")


def _request(q: dict, hardware_text: str = ""):
    from metainf.v1 import farm_pb2

    hw = (farm_pb2.HardwareOption(text=hardware_text) if hardware_text
          else farm_pb2.HardwareOption(name=q["hardware"]))
    return farm_pb2.SelectRequest(model=q["model"], hardware=[hw],
                                  workload_json=json.dumps(q["workload"]), objective="runtime")


KINDS = ("ping", "known", "first")
"""What a client sends: Ping, Select of a known question, Select with a new hardware text."""


# --------------------------------------------------------------------------- load


def _client(address: str, queries: list[dict], kind: str, client: int, rate: float,
            seconds: float, start_at: float, out: mp.Queue, run: str = "") -> None:
    """Child process: send `kind` calls at `rate` per second from start_at for `seconds`
    (open loop).

    Records (send offset s, latency s, status) per call; latency is from the moment the
    call was sent to the moment its answer arrived, as seen by this client.
    """
    from metainf.client import channel
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    stub = farm_pb2_grpc.SelectorStub(channel(address))
    n = max(1, int(rate * seconds))
    if kind == "ping":
        call, reqs = stub.Ping, [farm_pb2.PingRequest()] * n
    else:
        call = stub.Select
        reqs = [_request(queries[(client * 7919 + k) % len(queries)],
                         first_seen_text(client, k, run) if kind == "first" else "")
                for k in range(n)]
    records: list[tuple[float, float, str]] = []
    futures = []  # a grpc future cancels its call when garbage-collected: keep them
    lock = threading.Lock()
    pending = threading.Semaphore(0)
    interval = 1.0 / rate
    while time.time() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.time())))
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    late = 0.0
    for k, req in enumerate(reqs):
        target = t0 + k * interval
        now = time.perf_counter()
        if target > now:
            time.sleep(target - now)
        else:
            late = max(late, now - target)
        sent = time.perf_counter()
        fut = call.future(req, timeout=DEADLINE_S)

        def done(f, sent=sent):
            t = time.perf_counter()
            code = f.code().name if f.code() is not None else "OK"
            with lock:
                records.append((sent - t0, t - sent, code))
            pending.release()

        fut.add_done_callback(done)
        futures.append(fut)
    for _ in reqs:
        pending.acquire(timeout=DEADLINE_S + 5)
    out.put({"client": client, "records": records, "max_late_s": late,
             "sent_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0})


PROBE_GRID = {"name": "bench-select-worker-probe", "models": ["llama-tiny"],
              "methods": "paper8", "hardware": "all", "repetitions": 1,
              "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 4,
                             "max_output_tokens": 2,
                             "batch_size": [1, 2, 4, 8, 16, 32, 64, 128]}]}
"""64 cells for the worker probe to lease (each reported failed goes back to the queue)."""


def _worker_probe(address: str, rate: float, seconds: float, start_at: float,
                  out: mp.Queue) -> None:
    """Child process: a worker that heartbeats, leases a cell and reports it failed,
    `rate` rounds per second (closed loop, paced); records each RPC's latency."""
    import grpc

    from metainf.client import channel
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    stub = farm_pb2_grpc.CoordinatorStub(channel(address))
    lat: dict[str, list[float]] = {"Heartbeat": [], "LeaseCell": [], "ReportResult": []}
    errors: Counter = Counter()
    try:
        stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(PROBE_GRID)),
                            timeout=DEADLINE_S)
        worker = stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
            name="bench-probe", hardware=farm_pb2.HardwareProfile(
                kind="cpu", cpu_model="bench probe CPU", cpu_cores=1, ram_gb=8.0,
                isa_flags=["avx2"]), price_per_hour=0.1, engines=["vllm"]),
            timeout=DEADLINE_S).worker_id
    except grpc.RpcError as exc:  # e.g. a remote farm with tokens: say so, measure nothing
        out.put({"latency": lat, "errors": {f"set-up {exc.code().name}": 1}})
        return

    def timed(name: str, fn, req):
        t = time.perf_counter()
        try:
            answer = fn(req, timeout=DEADLINE_S)
        except grpc.RpcError as exc:
            errors[f"{name} {exc.code().name}"] += 1
            return None
        lat[name].append(time.perf_counter() - t)
        return answer

    while time.time() < start_at:
        time.sleep(0.01)
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < seconds:
        target = t0 + k / rate
        now = time.perf_counter()
        if target > now:
            time.sleep(target - now)
        k += 1
        timed("Heartbeat", stub.Heartbeat, farm_pb2.HeartbeatRequest(worker_id=worker))
        lease = timed("LeaseCell", stub.LeaseCell, farm_pb2.LeaseCellRequest(worker_id=worker))
        if lease is not None and lease.HasField("cell"):
            c = lease.cell
            timed("ReportResult", stub.ReportResult, farm_pb2.ReportResultRequest(
                worker_id=worker, campaign_id=c.campaign_id, cell_id=c.cell_id, epoch=c.epoch,
                status="failed", error="bench_select worker probe", engine="vllm",
                engine_version="bench", weights="dummy", engine_config_json="{}"))
    out.put({"latency": lat, "errors": dict(errors)})


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (NaN if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def drive(address: str, queries: list[dict], kind: str, clients: int, qps: float,
          seconds: float, warmup_s: float, server_pid: int | None = None, run: str = "",
          probe: bool = False) -> dict:
    """Run the clients at qps in total; figures over the calls sent after warmup_s.

    With server_pid (a local coordinator), also the server's CPU time per call over the
    whole phase (warm-up included): unlike latency, it barely moves with other load.
    With probe, a worker process heartbeats, leases and reports during the phase.
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 3.0 + 0.5 * clients  # let every child import first
    procs = [ctx.Process(target=_client, args=(address, queries, kind, c, qps / clients,
                                               seconds + warmup_s, start_at, q, run))
             for c in range(clients)]
    probe_q = ctx.Queue()
    prober = (ctx.Process(target=_worker_probe, args=(address, WORKER_PROBE_RATE,
                                                      seconds + warmup_s, start_at, probe_q))
              if probe else None)
    for p in procs + ([prober] if prober else []):
        p.start()
    cpu0 = process_cpu_s(server_pid) if server_pid else float("nan")
    results = [q.get() for _ in procs]
    server_cpu = process_cpu_s(server_pid) - cpu0 if server_pid else float("nan")
    worker = probe_q.get() if prober else None
    for p in procs + ([prober] if prober else []):
        p.join()
    calls = sum(len(r["records"]) for r in results)
    answered = sum(1 for r in results for rec in r["records"] if rec[2] == "OK")
    lat, codes, sends = [], Counter(), []
    for r in results:
        for sent, latency, code in r["records"]:
            if sent < warmup_s:
                continue
            codes[code] += 1
            sends.append(sent)
            if code == "OK":
                lat.append(latency)
    span = (max(sends) - min(sends)) if len(sends) > 1 else float("nan")
    ok = codes.get("OK", 0)
    out = {"n": sum(codes.values()), "ok": ok, "errors": {k: v for k, v in codes.items()
                                                          if k != "OK"},
           "p50_ms": 1e3 * benchlib.pct(lat, 50), "p90_ms": 1e3 * benchlib.pct(lat, 90),
           "p99_ms": 1e3 * benchlib.pct(lat, 99), "max_ms": 1e3 * max(lat, default=math.nan),
           "qps_sent": len(sends) / span if span > 0 else float("nan"),
           "qps_ok": ok / span if span > 0 else float("nan"),
           "max_late_ms": 1e3 * max(r["max_late_s"] for r in results),
           "server_cpu_ms": 1e3 * server_cpu / max(answered, 1),
           "client_cpu_ms": 1e3 * sum(r["cpu_s"] for r in results) / max(calls, 1)}
    if worker is not None:
        every = [x for v in worker["latency"].values() for x in v]
        out["worker"] = {name: {"n": len(v), "p50_ms": 1e3 * benchlib.pct(v, 50),
                                "p99_ms": 1e3 * benchlib.pct(v, 99),
                                "max_ms": 1e3 * max(v, default=math.nan)}
                         for name, v in worker["latency"].items()}
        out["worker_p99_ms"] = 1e3 * benchlib.pct(every, 99)
        out["worker_errors"] = worker["errors"]
    return out


def in_process(model_dir: Path, queries: list[dict], n_known: int, n_first: int,
               run: str = "") -> dict:
    """The same Select called directly (no gRPC, one thread): compute time alone."""
    import torch

    from metainf.selector.artifact import load_model
    from metainf.selector.query import HardwareOption, SelectQuery
    from metainf.selector.selection import select
    from metainf.selector.service import SERVING_TORCH_THREADS

    torch.set_num_threads(SERVING_TORCH_THREADS)  # as the coordinator serves
    model = load_model(model_dir)

    def one(q: dict, text: str = "") -> float:
        hw = HardwareOption(text=text) if text else HardwareOption(name=q["hardware"])
        t = time.perf_counter()
        select(model, SelectQuery(model=q["model"], hardware=(hw,),
                                  workload=json.dumps(q["workload"])))
        return time.perf_counter() - t

    def cold(q: dict) -> float:
        model.cache.pop("predictions", None)
        return one(q)

    for q in queries[:20]:
        one(q)
    uncached = [cold(queries[k % len(queries)]) for k in range(n_known)]
    for q in queries:  # every question asked once: the prediction cache holds them all
        one(q)
    known = [one(queries[k % len(queries)]) for k in range(n_known)]
    one(queries[0], first_seen_text(999, -1, run))  # loads the sentence-transformer
    first = [one(queries[k % len(queries)], first_seen_text(998, k, run))
             for k in range(n_first)]
    return {"cold_p50_ms": 1e3 * benchlib.pct(uncached, 50),
            "cold_p99_ms": 1e3 * benchlib.pct(uncached, 99),
            "known_p50_ms": 1e3 * benchlib.pct(known, 50),
            "known_p99_ms": 1e3 * benchlib.pct(known, 99),
            "first_p50_ms": 1e3 * benchlib.pct(first, 50),
            "first_p99_ms": 1e3 * benchlib.pct(first, 99)}


# --------------------------------------------------------------------------- profile


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    """py-spy record the coordinator for `seconds` into collapsed stacks at `out`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log.warning("py-spy not found: no profile")
        return None
    cmd = [spy, "record", "-p", str(pid), "-d", str(int(math.ceil(seconds))), "-r", "250",
           "-f", "raw", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_lines(raw: Path, top: int = 12) -> list[str]:
    """Where the coordinator's time went while serving Select: the share of samples inside
    the Select handler, and the top functions (inclusive share) of Select when it holds a
    noticeable share, else of every busy thread (the gRPC server's own loop)."""
    if not raw.exists():
        return ["profile: py-spy wrote nothing (needs ptrace rights)"]
    incl, incl_all, total, select_total = Counter(), Counter(), 0, 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}  # functions
        for f in frames:
            incl_all[f] += n
        if not any(".Select (" in f for f in frames):
            continue
        select_total += n
        for f in frames:
            incl[f] += n
    share = select_total / max(total, 1)
    where, counts, base = (("Select", incl, select_total) if share >= 0.05
                           else ("every busy coordinator thread", incl_all, total))
    lines = [f"profile: {total} samples of busy coordinator threads, {select_total} "
             f"({100 * share:.0f}%) inside the Select handler; top functions by inclusive "
             f"share of {where}:"]
    skip = ("Thread.run", "Thread._bootstrap", "Thread._bootstrap_inner")
    shown = [(f, n) for f, n in counts.most_common() if not f.startswith(skip)][:top]
    for frame, n in shown:
        lines.append(f"  {100 * n / max(base, 1):5.1f}%  {frame[:110]}")
    return lines


# --------------------------------------------------------------------------- main


def _train_small_model(model_dir: Path, workdir: Path) -> float:
    from metainf.selector.table import PerfTable
    from metainf.selector.training import train

    csv = workdir / "select-table.csv"
    synth.make_table(seed=0).to_csv(csv, index=False)
    t0 = time.perf_counter()
    train(PerfTable.load(csv), model_dir)
    return time.perf_counter() - t0


def _fmt(name: str, r: dict, target_qps: float) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"
    return (f"{name}: target {target_qps:.0f} QPS, sent {r['qps_sent']:.0f} QPS, answered "
            f"{r['qps_ok']:.0f} QPS; latency p50 {r['p50_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms; calls {r['n']}, errors "
            f"{errors}; clients fell behind schedule by up to {r['max_late_ms']:.0f} ms; CPU: "
            f"coordinator {r['server_cpu_ms']:.2f} ms per answered call (whole phase), clients "
            f"{r['client_cpu_ms']:.2f} ms per call")


def _worker_line(r: dict) -> str:
    per = "; ".join(f"{name} n={w['n']} p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms, "
                    f"max {w['max_ms']:.1f} ms" for name, w in r["worker"].items())
    errors = ", ".join(f"{k} {v}" for k, v in sorted(r["worker_errors"].items())) or "none"
    return (f"worker RPCs during that Select load ({WORKER_PROBE_RATE:.0f} rounds/s): {per}; "
            f"all p99 {r['worker_p99_ms']:.2f} ms; errors {errors}")


def ratio_line(ping: dict, select: dict) -> str:
    """Select's coordinator CPU per call and latency as ratios to Ping's, same run."""
    return (f"ratios to Ping (same server, same clients, same run): coordinator CPU per call "
            f"{select['server_cpu_ms'] / ping['server_cpu_ms']:.2f}x "
            f"({select['server_cpu_ms']:.3f} vs {ping['server_cpu_ms']:.3f} ms); latency p50 "
            f"{select['p50_ms'] / ping['p50_ms']:.2f}x, p99 "
            f"{select['p99_ms'] / ping['p99_ms']:.2f}x")


def targets_line(phases: dict[str, dict], qps: float, clients: int, first_qps: float) -> str:
    """One line: every target of the issue, met or MISSED."""
    ping, known, busy, first = (phases[k] for k in ("ping", "known", "busy", "first"))

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    cpu = known["server_cpu_ms"] / ping["server_cpu_ms"]
    answered = known["qps_ok"] >= 0.95 * qps
    return (f"targets: known questions at {qps:.0f} QPS from {clients} clients: coordinator "
            f"CPU per call <= {TARGET_CPU_RATIO:.0f}x Ping's ({cpu:.2f}x): "
            f"{mark(cpu <= TARGET_CPU_RATIO)}; p99 <= {TARGET_KNOWN_P99_MS:.0f} ms "
            f"({known['p99_ms']:.2f} ms): {mark(known['p99_ms'] <= TARGET_KNOWN_P99_MS)}; no "
            f"errors, all answered ({sum(known['errors'].values())} errors, "
            f"{known['qps_ok']:.0f} QPS answered): {mark(not known['errors'] and answered)}; "
            f"first-seen text at {first_qps:.0f} QPS: p99 <= {TARGET_FIRST_SEEN_P99_MS:.0f} ms "
            f"({first['p99_ms']:.2f} ms): "
            f"{mark(first['p99_ms'] <= TARGET_FIRST_SEEN_P99_MS and not first['errors'])}; "
            f"worker RPCs during the Select load: p99 <= {TARGET_WORKER_P99_MS:.0f} ms "
            f"({busy['worker_p99_ms']:.2f} ms): "
            f"{mark(busy['worker_p99_ms'] <= TARGET_WORKER_P99_MS and not busy['worker_errors'])}")


def main(argv: list[str] | None = None) -> int:
    """Run the Ping and Select load phases (and optionally the training benchmark); print
    figures on stdout."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--coordinator", help="HOST:PORT of a running coordinator (needs --model-dir,"
                                         " the folder it serves); default: start one here")
    p.add_argument("--model-dir", type=Path, help="trained model folder; default: train one "
                                                  "on make_synthetic_table's table")
    p.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    p.add_argument("--qps", type=float, default=TARGET_KNOWN_QPS,
                   help="target Select rate for known entities, all clients together")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds sent but not counted")
    p.add_argument("--first-seen-qps", type=float, default=20.0,
                   help="target rate of Selects with a never-seen hardware text")
    p.add_argument("--in-process", type=int, default=300,
                   help="direct select() calls timed without gRPC (0: skip)")
    p.add_argument("--train-rows", type=int, default=0,
                   help="rows of a synthetic P to time training on (default 0: skip; the "
                        "Select phases alone finish in about 2 minutes)")
    p.add_argument("--train-repetitions", type=int, default=3,
                   help="repetitions per (task, method) in that P")
    p.add_argument("--no-tracemalloc", action="store_true",
                   help="skip the second training run that measures the Python-heap peak")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the coordinator during the known-entity phase (local only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, help="keep files here (default: a temp folder)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    benchlib.setup_logging(args.verbose)
    if args.coordinator and not args.model_dir:
        p.error("--coordinator needs --model-dir (the model folder that coordinator serves)")
    if args.clients < 1 or args.qps <= 0 or args.seconds <= 0 or args.first_seen_qps <= 0:
        p.error("--clients, --qps, --seconds and --first-seen-qps must be positive")

    workdir = benchlib.run_workdir(args.workdir, "bench-select")
    print(*benchlib.header_lines(), sep="\n")
    print(f"clients: {args.clients} processes, open loop (gRPC futures), deadline "
          f"{DEADLINE_S:.0f} s; one hardware option per Select (8 candidate methods); known "
          f"entities: 256 questions drawn from the training tasks, asked over and over; each phase "
          f"{args.warmup:.0f} s warm-up + {args.seconds:.0f} s measured")
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = workdir / "model"
        t = _train_small_model(model_dir, workdir)
        print(f"selector model: trained here on make_synthetic_table (4,992 rows) in {t:.1f} s")
    else:
        print(f"selector model: {model_dir}")
    queries = known_queries(model_dir, seed=args.seed)
    run = f"{uuid.uuid4().hex[:6]}/"  # this run's first-seen texts: new to any cache

    coord = None
    address = args.coordinator
    phases: dict[str, dict] = {}
    try:
        if address is None:
            os.environ.setdefault("METAINF_EMBEDDING_CACHE",
                                  str(workdir / "coordinator-embeddings"))
            coord, address = benchlib.start_coordinator(workdir, model_dir)
        print(_prime(address, queries, run))
        pid = coord.pid if coord is not None else None
        phases["ping"] = drive(address, queries, "ping", args.clients, args.qps, args.seconds,
                               args.warmup, pid)
        print(_fmt("Ping (the floor: same interceptors, no work)", phases["ping"], args.qps))
        spy = None
        if args.profile and coord is not None:
            spy = start_profile(coord.pid, args.seconds + args.warmup + 6,
                                workdir / "select.pyspy.txt")
        phases["known"] = drive(address, queries, "known", args.clients, args.qps,
                                args.seconds, args.warmup, pid)
        print(_fmt("Select, known entities" + (" (py-spy attached)" if spy else ""),
                   phases["known"], args.qps))
        if spy is not None:
            spy.wait()
            for line in profile_lines(workdir / "select.pyspy.txt"):
                print(line)
        phases["busy"] = drive(address, queries, "known", args.clients, args.qps,
                               args.seconds, args.warmup, pid, probe=True)
        print(_fmt("Select, known entities, with a worker heartbeating, leasing and "
                   "reporting", phases["busy"], args.qps))
        print(_worker_line(phases["busy"]))
        phases["first"] = drive(address, queries, "first", args.clients, args.first_seen_qps,
                                args.seconds, args.warmup, pid, run)
        print(_fmt("Select, first-seen hardware text (a new text on every call)",
                   phases["first"], args.first_seen_qps))
    finally:
        benchlib.stop_process(coord)
    print(ratio_line(phases["ping"], phases["known"]))
    if args.in_process:
        ip = in_process(model_dir, queries, args.in_process, max(20, args.in_process // 10),
                        run)
        print(f"in-process select() (no gRPC, one thread): known, prediction cache cold p50 "
              f"{ip['cold_p50_ms']:.2f} ms, p99 {ip['cold_p99_ms']:.2f} ms; known, repeated "
              f"p50 {ip['known_p50_ms']:.2f} ms, p99 {ip['known_p99_ms']:.2f} ms; first-seen "
              f"text p50 {ip['first_p50_ms']:.2f} ms, p99 {ip['first_p99_ms']:.2f} ms")
    print(targets_line(phases, args.qps, args.clients, args.first_seen_qps))
    if args.train_rows > 0:
        for line in bench_training(args.train_rows, args.train_repetitions, args.seed,
                                   not args.no_tracemalloc, workdir):
            print(line)
    print(benchlib.load_line())
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _prime(address: str, queries: list[dict], run: str = "") -> str:
    """Wait until Select answers and the coordinator has loaded its sentence-transformer,
    then ask every known question once (one at a time), as a serving coordinator would
    have been asked them before; returns a line on what those first answers took."""
    import grpc

    from metainf.client import channel
    from metainf.v1 import farm_pb2_grpc

    stub = farm_pb2_grpc.SelectorStub(channel(address))
    t0 = time.monotonic()
    while True:
        try:
            stub.Select(_request(queries[0]), timeout=DEADLINE_S)
            break
        except grpc.RpcError as exc:
            if time.monotonic() - t0 > 120:
                raise RuntimeError(f"Select does not answer: {exc.code().name}: "
                                   f"{exc.details()}") from None
            time.sleep(0.5)
    for k in range(3):  # blocks until the background warm-up has loaded the embedder
        stub.Select(_request(queries[k % len(queries)], first_seen_text(-1, k, run)),
                    timeout=120)
    log.info("Select answers; embedder loaded (%.1f s)", time.monotonic() - t0)
    first = []
    for q in {json.dumps(q, sort_keys=True): q for q in queries}.values():
        t = time.perf_counter()
        stub.Select(_request(q), timeout=DEADLINE_S)
        first.append(time.perf_counter() - t)
    return (f"known questions: {len(first)} distinct, each asked once before the phases "
            f"(first answers, one at a time: p50 {1e3 * benchlib.pct(first, 50):.2f} ms, p99 "
            f"{1e3 * benchlib.pct(first, 99):.2f} ms); the phases ask them again")


if __name__ == "__main__":
    sys.exit(main())
