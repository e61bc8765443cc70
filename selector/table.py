"""Performance tables: a long benchmark table read into tasks x methods (the paper's P)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metainf.methods import PAPER8
from metainf.p import with_oom_cells

log = logging.getLogger(__name__)


class TableError(ValueError):
    """A table that cannot be read as a performance table under its mapping."""


@dataclass(frozen=True)
class TableMapping:
    """Which columns of a long table are the task, the method and the metric."""

    task_cols: tuple[str, ...]
    method_col: str
    metric_col: str
    minimize: bool
    hardware_col: str | None = None
    model_col: str | None = None
    input_tokens_col: str | None = None
    output_tokens_col: str | None = None
    batch_col: str | None = None
    """Optional workload columns a roofline needs (tokens in and out per request, requests
    per batch); a table without them has its level learned alone."""

    def token_roles(self) -> dict[str, str]:
        """Workload column -> the fact it gives a roofline (for the columns named)."""
        roles = {self.input_tokens_col: "input_len_mean", self.output_tokens_col:
                 "output_len_mean", self.batch_col: "batch_size"}
        return {c: r for c, r in roles.items() if c}

    @property
    def workload_cols(self) -> tuple[str, ...]:
        """Task columns that describe the workload (all but hardware and model)."""
        return tuple(c for c in self.task_cols if c not in (self.hardware_col, self.model_col))

    def normalized(self) -> TableMapping:
        """The same mapping with hardware and model columns added to the task columns."""
        extra = tuple(c for c in (self.model_col, self.hardware_col)
                      if c is not None and c not in self.task_cols)
        return replace(self, task_cols=extra + tuple(self.task_cols))

    def validate(self) -> None:
        """Raise TableError when the mapping contradicts itself."""
        if not self.task_cols:
            raise TableError("task columns are empty: name them with --task-cols a,b,c")
        if len(set(self.task_cols)) != len(self.task_cols):
            raise TableError(f"task columns repeat a column: {list(self.task_cols)}")
        for role, col in (("method", self.method_col), ("metric", self.metric_col)):
            if not col:
                raise TableError(f"the {role} column is empty: name it with --{role}-col")
            if col in self.task_cols:
                raise TableError(f"the {role} column {col!r} cannot also be a task column")
        if self.method_col == self.metric_col:
            raise TableError(f"method and metric column are the same ({self.method_col!r})")
        for flag, col in (("--input-tokens-col", self.input_tokens_col),
                          ("--output-tokens-col", self.output_tokens_col),
                          ("--batch-col", self.batch_col)):
            if col and col not in self.workload_cols:
                raise TableError(f"{flag}: {col!r} is not a workload task column (those are "
                                 f"{list(self.workload_cols)})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the mapping."""
        return {"task_cols": list(self.task_cols), "method_col": self.method_col,
                "metric_col": self.metric_col, "minimize": self.minimize,
                "hardware_col": self.hardware_col, "model_col": self.model_col,
                "input_tokens_col": self.input_tokens_col,
                "output_tokens_col": self.output_tokens_col, "batch_col": self.batch_col}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> TableMapping:
        """Inverse of to_dict."""
        return cls(task_cols=tuple(obj["task_cols"]), method_col=obj["method_col"],
                   metric_col=obj["metric_col"], minimize=bool(obj["minimize"]),
                   hardware_col=obj.get("hardware_col"), model_col=obj.get("model_col"),
                   input_tokens_col=obj.get("input_tokens_col"),
                   output_tokens_col=obj.get("output_tokens_col"),
                   batch_col=obj.get("batch_col"))


FARM_MAPPING = TableMapping(
    task_cols=("model", "hardware", "workload", "batch_size"),
    method_col="method",
    metric_col="runtime_s",
    minimize=True,
    hardware_col="hardware",
    model_col="model",
)
"""The farm's P: a task is (model, hardware, workload, batch size); runtime, lower is better."""

MAPPING_FLAGS_HINT = (
    "--task-cols a,b,c --method-col M --metric-col X --minimize|--maximize "
    "[--hardware-col H] [--model-col M2]"
)


NOISE_RESAMPLES = 200
"""Bootstrap resamples of each (task, method)'s repetitions behind the noise-aware truth."""

NOISE_SHARE = 0.05
"""A method is co-best when in at least this share of the resamples its median cost is
within 1 % of the best method's (the one with the lowest observed median): a one-sided
bootstrap test at 5 % that the repetitions cannot tell it from the best."""

TIE_TOLERANCE = 0.01
"""Relative cost difference under which two methods count as tied for best."""


def noise_cobest(task_id: np.ndarray, method_id: np.ndarray, cost: np.ndarray,
                 shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Per (task, method): can the repetitions not tell it from the task's best? [n, m] bool.

    Each measured pair's repetitions are resampled with replacement
    (:data:`NOISE_RESAMPLES` times) and the pair is co-best when its resampled median is
    within :data:`TIE_TOLERANCE` of the best's in at least :data:`NOISE_SHARE` of the
    resamples. A pair measured once counts as its single value (no noise known). The
    best pair itself is always co-best; unmeasured pairs never are.
    """
    rng = np.random.default_rng(seed)
    n, m = shape
    boot = np.full((n, m, NOISE_RESAMPLES), np.nan)
    observed = np.full((n, m), np.nan)
    frame = pd.DataFrame({"t": task_id, "m": method_id, "c": cost})
    for k, part in frame.groupby(frame.groupby(["t", "m"])["c"].transform("size")):
        keys = part.groupby(["t", "m"], sort=True)["c"]
        values = np.stack([g.to_numpy() for _, g in keys])            # [pairs, k]
        pairs = np.array(list(keys.groups.keys()))                    # [pairs, 2]
        draws = rng.integers(0, int(k), size=(len(values), NOISE_RESAMPLES, int(k)))
        medians = np.median(np.take_along_axis(values[:, None, :].repeat(
            NOISE_RESAMPLES, axis=1), draws, axis=2), axis=2)
        boot[pairs[:, 0], pairs[:, 1]] = medians
        observed[pairs[:, 0], pairs[:, 1]] = np.median(values, axis=1)
    cobest = np.zeros((n, m), dtype=bool)
    for i in range(n):
        ok = np.flatnonzero(np.isfinite(observed[i]))
        if not ok.size:
            continue
        best = ok[np.argmin(observed[i, ok])]
        within = boot[i, ok] <= boot[i, best][None, :] * (1 + TIE_TOLERANCE)
        cobest[i, ok] = within.mean(axis=1) >= NOISE_SHARE
        cobest[i, best] = True
    return cobest


def _method_order(names: list[str]) -> list[str]:
    """The paper's 8 methods in their order first, then any other name sorted."""
    known = [m for m in PAPER8 if m in names]
    return known + sorted(n for n in names if n not in PAPER8)


@dataclass
class PerfTable:
    """Tasks x methods: the median metric of each measured pair and its cost.

    ``cobest`` marks, per task, the methods its repetitions cannot tell from the best
    (the noise-aware truth, :func:`noise_cobest`); where a table has no repetitions it
    is the strict truth (within 1 % of the best).
    """

    tasks: pd.DataFrame
    methods: list[str]
    value: np.ndarray
    cost: np.ndarray
    mapping: TableMapping
    meta: dict
    cobest: np.ndarray | None = None

    def available(self) -> np.ndarray:
        """Per task, the methods measured on its hardware for any task [n, m] bool (every
        measured method of the table when it names no hardware)."""
        measured = np.isfinite(self.cost)
        col = self.mapping.hardware_col
        if not col or col not in self.tasks.columns:
            return np.broadcast_to(measured.any(axis=0), measured.shape).copy()
        hw = self.tasks[col].astype(str).to_numpy()
        out = np.zeros_like(measured)
        for h in np.unique(hw):
            rows = hw == h
            out[rows] = measured[rows].any(axis=0)
        return out

    @property
    def n_tasks(self) -> int:
        """Number of tasks (rows)."""
        return len(self.tasks)

    def subset(self, task_idx) -> PerfTable:
        """The table restricted to some tasks (indices or a boolean mask), methods kept."""
        idx = np.asarray(task_idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return PerfTable(
            tasks=self.tasks.iloc[idx].reset_index(drop=True),
            methods=list(self.methods),
            value=self.value[idx],
            cost=self.cost[idx],
            mapping=self.mapping,
            meta=self.meta,
            cobest=None if self.cobest is None else self.cobest[idx],
        )

    @classmethod
    def from_frame(cls, df: pd.DataFrame, mapping: TableMapping = FARM_MAPPING,
                   meta: dict | None = None) -> PerfTable:
        """Pivot a long table: one row per task, one column per method, median of repeats."""
        mapping = mapping.normalized()
        mapping.validate()
        needed = list(mapping.task_cols) + [mapping.method_col, mapping.metric_col]
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise TableError(
                f"table lacks column(s) {missing}; it has {list(df.columns)}. "
                f"Name the right ones with the mapping flags {MAPPING_FLAGS_HINT}"
            )
        if "status" in df.columns:  # oom cells calibrate Select's memory margin
            meta = with_oom_cells(meta, df, [*mapping.task_cols, mapping.method_col])
            df = df[df["status"].astype(str) == "done"]
        task_cols = list(mapping.task_cols)
        d = df[task_cols + [mapping.method_col]].copy()
        d["__metric"] = pd.to_numeric(df[mapping.metric_col], errors="coerce")
        metric = d["__metric"].to_numpy(dtype=float)
        ok = np.isfinite(metric) & (metric > 0)
        dropped = int((~ok).sum())
        if dropped:
            log.info("dropped %d row(s) whose %s is missing, non-finite or <= 0",
                     dropped, mapping.metric_col)
        d = d[ok]
        if d.empty:
            raise TableError(
                f"no usable rows: column {mapping.metric_col!r} has no finite value > 0"
                + (" among rows with status 'done'" if "status" in df.columns else "")
            )
        d[mapping.method_col] = d[mapping.method_col].astype(str)
        groups = d.groupby(task_cols, sort=True, dropna=False)
        task_id = groups.ngroup().to_numpy()
        tasks = groups.size().reset_index()[task_cols].reset_index(drop=True)
        methods = _method_order(sorted(d[mapping.method_col].unique()))
        method_pos = {m: i for i, m in enumerate(methods)}
        method_id = d[mapping.method_col].map(method_pos).to_numpy()
        med = (pd.DataFrame({"t": task_id, "m": method_id, "v": d["__metric"].to_numpy()})
               .groupby(["t", "m"], sort=False)["v"].median())
        value = np.full((len(tasks), len(methods)), np.nan)
        value[med.index.get_level_values("t"), med.index.get_level_values("m")] = med.to_numpy()
        cost = value if mapping.minimize else 1.0 / value
        raw = d["__metric"].to_numpy(dtype=float)
        cobest = noise_cobest(task_id, method_id, raw if mapping.minimize else 1.0 / raw,
                              value.shape)
        return cls(tasks=tasks, methods=methods, value=value, cost=np.array(cost),
                   mapping=mapping, meta=dict(meta or {}), cobest=cobest)

    @classmethod
    def load(cls, path: str | Path, mapping: TableMapping | None = None) -> PerfTable:
        """Read a .parquet or .csv table (and PATH.meta.json beside it when present)."""
        path = Path(path)
        if not path.exists():
            raise TableError(f"data file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise TableError(f"data file {path}: use .parquet or .csv (got {suffix or 'none'})")
        meta_path = path.with_name(path.name + ".meta.json")
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        if mapping is None:
            needed = list(FARM_MAPPING.task_cols) + [FARM_MAPPING.method_col,
                                                     FARM_MAPPING.metric_col]
            missing = [c for c in needed if c not in df.columns]
            if missing:
                raise TableError(
                    f"{path} is not a farm P export (no column(s) {missing}); for an external "
                    f"table give the mapping flags {MAPPING_FLAGS_HINT}. "
                    f"Its columns: {list(df.columns)}"
                )
            mapping = FARM_MAPPING
        return cls.from_frame(df, mapping, meta)
