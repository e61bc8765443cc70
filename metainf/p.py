"""The schema of P: columns, statuses, the meta file, reading and writing, and the P array."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metainf.v1 import farm_pb2

FINAL_STATUSES = ("done", "failed", "oom", "timeout")
"""Outcomes of a cell repetition; `done` is the only one with metrics."""

METRIC_COLUMNS = ("runtime_s", "request_throughput", "throughput_tok_s", "ttft_p50_s",
                  "ttft_p99_s", "itl_p50_s", "itl_p99_s", "peak_mem_gb", "energy_j")
"""Measured metrics of a row of P; runtime_s (lower is better) is the default."""

COLUMNS = (
    "campaign_id", "cell_id", "model", "method", "continuous_batching", "prefix_caching",
    "chunked_prefill", "hardware", "worker", "dataset", "workload", "batch_size", "num_prompts",
    "max_output_tokens", "repetition", "replica", "status", *METRIC_COLUMNS,
    "engine", "engine_version", "weights", "engine_config", "engine_start_s", "error",
)
"""Columns of an exported P, in order."""


def rows_to_frame(rows: Iterable[farm_pb2.ResultRow], with_accepted: bool = False
                  ) -> pd.DataFrame:
    """ResultRow messages as the long-format DataFrame of P (NaN for missing metrics);
    `with_accepted` adds whether each row is in P (for an export of every replica)."""
    records = []
    for r in rows:
        rec: dict[str, Any] = {
            "campaign_id": r.campaign_id, "cell_id": r.cell_id, "model": r.model,
            "method": r.method, "continuous_batching": int(r.continuous_batching),
            "prefix_caching": int(r.prefix_caching), "chunked_prefill": int(r.chunked_prefill),
            "hardware": r.hardware, "worker": r.worker, "dataset": r.dataset,
            "workload": r.workload, "batch_size": r.batch_size, "num_prompts": r.num_prompts,
            "max_output_tokens": r.max_output_tokens, "repetition": r.run.repetition,
            "replica": r.replica, "status": r.run.status, "engine": r.engine,
            "engine_version": r.engine_version, "weights": r.weights,
            "engine_config": r.engine_config_json, "engine_start_s": r.engine_start_s,
            "error": r.run.error, "accepted": int(r.accepted),
        }
        done = r.run.status == "done"
        for name in METRIC_COLUMNS:
            present = r.run.HasField(name) if name == "energy_j" else done
            rec[name] = getattr(r.run, name) if present else math.nan
        records.append(rec)
    columns = [*COLUMNS, "accepted"] if with_accepted else list(COLUMNS)
    return pd.DataFrame.from_records(records, columns=columns)


OOM_CELLS_KEY = "oom_cells"
"""Meta key under which a table read for training keeps its `oom` cells (see with_oom_cells):
the memory-fit margin of Select is calibrated on them."""


def with_oom_cells(meta: dict[str, Any] | None, frame: pd.DataFrame,
                   columns: Iterable[str]) -> dict[str, Any]:
    """meta plus, under OOM_CELLS_KEY, the distinct `columns` values of the frame's rows whose
    status is `oom` (one object per cell); meta itself when there are none."""
    meta = dict(meta or {})
    if "status" not in frame.columns:
        return meta
    cols = [c for c in dict.fromkeys(columns) if c in frame.columns]
    rows = frame.loc[frame["status"].astype(str) == "oom", cols].drop_duplicates()
    if rows.empty:
        return meta
    meta[OOM_CELLS_KEY] = [{c: (v.item() if hasattr(v, "item") else v)
                            for c, v in zip(cols, r, strict=True)}
                           for r in rows.itertuples(index=False)]
    return meta


def meta_path(path: str | Path) -> Path:
    """Where the meta JSON of a P file lives: FILE.meta.json beside FILE."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def write_p(frame: pd.DataFrame, meta: dict[str, Any], path: str | Path) -> Path:
    """Write P as .parquet or .csv plus FILE.meta.json; return the data path."""
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out: use a .parquet or .csv file name, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    meta_path(path).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return path


def read_p(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a P file and its meta JSON (empty when absent)."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    mp = meta_path(path)
    return frame, (json.loads(mp.read_text(encoding="utf-8")) if mp.exists() else {})


@dataclass(frozen=True)
class PerformanceArray:
    """P as an array: tasks x methods x hardware, medians over repetitions, NaN = missing."""

    values: np.ndarray
    tasks: list[tuple]
    methods: list[str]
    hardware: list[str]
    task_columns: tuple[str, ...]


def performance_array(frame: pd.DataFrame, metric: str = "runtime_s",
                      task_columns: tuple[str, ...] = ("model", "workload", "batch_size"),
                      ) -> PerformanceArray:
    """Turn the long table into the tasks x methods x hardware array of done medians."""
    done = frame[frame["status"] == "done"]
    med = done.groupby([*task_columns, "method", "hardware"])[metric].median()
    tasks = sorted({k[:len(task_columns)] for k in med.index})
    methods = sorted(done["method"].unique())
    hardware = sorted(done["hardware"].unique())
    values = np.full((len(tasks), len(methods), len(hardware)), np.nan)
    ti = {t: i for i, t in enumerate(tasks)}
    mi = {m: i for i, m in enumerate(methods)}
    hi = {h: i for i, h in enumerate(hardware)}
    for key, v in med.items():
        *task, method, hw = key
        values[ti[tuple(task)], mi[method], hi[hw]] = v
    return PerformanceArray(values, tasks, methods, hardware, task_columns)
