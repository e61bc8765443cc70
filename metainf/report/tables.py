"""The numbers behind a campaign report: medians, % change vs baselines, best methods, variation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metainf.methods import DEFAULT_CP_TOKEN_BUDGET, PAPER8

TASK = ("model", "workload", "hardware", "batch_size")
"""Columns that name a task of the farm's P (one hardware class included)."""

REQUIRED_COLUMNS = ("model", "method", "hardware", "batch_size")


@dataclass(frozen=True)
class MetricInfo:
    """How a metric of P is named, what unit it has and which direction is better."""

    label: str
    unit: str
    lower_is_better: bool


METRICS: dict[str, MetricInfo] = {
    "runtime_s": MetricInfo("runtime", "s", True),
    "throughput_tok_s": MetricInfo("output throughput", "tokens/s", False),
    "request_throughput": MetricInfo("request throughput", "requests/s", False),
    "ttft_p50_s": MetricInfo("median time to first token", "s", True),
    "ttft_p99_s": MetricInfo("p99 time to first token", "s", True),
    "itl_p50_s": MetricInfo("median inter-token latency", "s", True),
    "itl_p99_s": MetricInfo("p99 inter-token latency", "s", True),
    "peak_mem_gb": MetricInfo("peak memory", "GB", True),
    "energy_j": MetricInfo("energy", "J", True),
}
"""Metrics a report can be drawn for."""


def metric_info(metric: str) -> MetricInfo:
    """The MetricInfo of a metric; ValueError naming the known ones otherwise."""
    if metric not in METRICS:
        raise ValueError(f"metric: unknown {metric!r}; known: {', '.join(METRICS)}")
    return METRICS[metric]


def method_order(methods) -> list[str]:
    """Methods in the paper's order (none, cb, pc, cp, ...), then any others by name."""
    present = set(methods)
    return [m for m in PAPER8 if m in present] + sorted(present - set(PAPER8))


def prepare(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Check the columns a report needs and fill in the optional ones."""
    metric_info(metric)
    missing = [c for c in (*REQUIRED_COLUMNS, metric) if c not in frame.columns]
    if missing:
        raise ValueError(f"P: missing column(s) {missing}; a report needs {list(REQUIRED_COLUMNS)}"
                         f" and the metric column")
    out = frame.copy()
    if "workload" not in out.columns:
        out["workload"] = out["dataset"] if "dataset" in out.columns else "workload"
    if "status" not in out.columns:
        out["status"] = np.where(out[metric].notna(), "done", "failed")
    for col, default in (("error", ""), ("repetition", 0), ("replica", 0), ("cell_id", "")):
        if col not in out.columns:
            out[col] = default
    out["error"] = out["error"].fillna("").astype(str)
    out["method"] = out["method"].astype(str)
    out["batch_size"] = out["batch_size"].astype(int)
    return out


def done_rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows with status done and a finite metric value."""
    done = frame[(frame["status"] == "done") & np.isfinite(frame[metric].astype(float))]
    return done.assign(**{metric: done[metric].astype(float)})


def cell_stats(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per task and method: median, min, max, quartiles, mean, std and n over repetitions."""
    done = done_rows(frame, metric)
    if done.empty:
        return pd.DataFrame(columns=[*TASK, "method", "median", "min", "max", "q1", "q3",
                                     "mean", "std", "n"])
    g = done.groupby([*TASK, "method"])[metric]
    stats = pd.DataFrame({
        "median": g.median(), "min": g.min(), "max": g.max(), "q1": g.quantile(0.25),
        "q3": g.quantile(0.75), "mean": g.mean(), "std": g.std(ddof=1), "n": g.size()})
    return stats.reset_index()


def gain_pct(value: float, base: float, lower_is_better: bool) -> float:
    """How much better `value` is than `base`, in % of base (positive = better)."""
    if not (np.isfinite(value) and np.isfinite(base)) or base == 0:
        return float("nan")
    return (base - value) / base * 100 if lower_is_better else (value - base) / base * 100


def change_table(frame: pd.DataFrame, metric: str,
                 baselines: tuple[str, ...] = ("none", "cb")) -> pd.DataFrame:
    """Median of each method per task and its gain (%) against each baseline method.

    Columns: the task columns, method, median, and ``gain_vs_<baseline>_pct`` (NaN where
    the baseline was not measured for the task). Positive = better than the baseline:
    for a lower-is-better metric (base - method) / base x 100, else (method - base) / base x 100.
    """
    info = metric_info(metric)
    stats = cell_stats(frame, metric)
    out = stats[[*TASK, "method", "median"]].reset_index(drop=True)
    for base in baselines:
        ref = stats.loc[stats["method"] == base, [*TASK, "median"]]
        merged = out[list(TASK)].merge(ref.rename(columns={"median": "base"}), on=list(TASK),
                                       how="left")
        out[f"gain_vs_{base}_pct"] = [gain_pct(v, b, info.lower_is_better)
                                      for v, b in zip(out["median"], merged["base"], strict=True)]
    return out


def best_methods(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The best method per task by median, with its value and its margin over the runner-up (%)."""
    info = metric_info(metric)
    stats = cell_stats(frame, metric)
    rows = []
    for key, g in stats.groupby(list(TASK)):
        g = g.sort_values("median", ascending=info.lower_is_better, kind="stable")
        best, runner = g.iloc[0], g.iloc[1] if len(g) > 1 else None
        margin = float("nan") if runner is None else gain_pct(
            best["median"], runner["median"], info.lower_is_better)
        rows.append(dict(zip(TASK, key, strict=True)) | {
            "best_method": best["method"], "median": best["median"],
            "runner_up": None if runner is None else runner["method"],
            "margin_pct": margin, "n_methods": len(g)})
    return pd.DataFrame(rows, columns=[*TASK, "best_method", "median", "runner_up",
                                       "margin_pct", "n_methods"])


def cell_variation(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Coefficient of variation (%) of the metric over the repetitions of each measured cell."""
    done = done_rows(frame, metric)
    keys = [*TASK, "method", "replica"]
    g = done.groupby(keys)[metric]
    stats = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.size()}).reset_index()
    stats = stats[(stats["n"] >= 2) & (stats["mean"] > 0)]
    return stats.assign(cv_pct=stats["std"] / stats["mean"] * 100)


def variation_table(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per method (the paper's Table 3 shape): cells, mean / median / max CV % and mean std."""
    cells = cell_variation(frame, metric)
    rows = []
    for method in method_order(cells["method"].unique()):
        g = cells[cells["method"] == method]
        rows.append({"method": method, "cells": len(g), "mean_cv_pct": g["cv_pct"].mean(),
                     "median_cv_pct": g["cv_pct"].median(), "max_cv_pct": g["cv_pct"].max(),
                     "mean_std": g["std"].mean()})
    return pd.DataFrame(rows, columns=["method", "cells", "mean_cv_pct", "median_cv_pct",
                                       "max_cv_pct", "mean_std"])


def failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that did not finish (status != done), one line per cell, status and error."""
    bad = frame[frame["status"] != "done"]
    cols = ["cell_id", "model", "method", "workload", "batch_size", "hardware", "status", "error"]
    if bad.empty:
        return pd.DataFrame(columns=[*cols, "repetitions"])
    g = bad.groupby(cols, dropna=False).size().rename("repetitions").reset_index()
    return g.sort_values(["model", "workload", "batch_size", "method"], kind="stable")


def _engine_configs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    if "engine_config" not in frame.columns:
        return []
    out = []
    for text in frame["engine_config"].dropna().unique():
        try:
            value = json.loads(text) if isinstance(text, str) and text else {}
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def cp_token_budgets(frame: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """Chunked-prefill token budgets the rows ran with (from engine_config, else the methods)."""
    budgets = {str(c["max_num_batched_tokens"]) for c in _engine_configs(frame)
               if c.get("enable_chunked_prefill") and "max_num_batched_tokens" in c}
    if budgets:
        return sorted(budgets, key=lambda b: (len(b), b))
    methods = meta.get("methods", {})
    if any("cp" in (m.get("flags") or []) for m in methods.values()):
        named = {str(m.get("engine_args", {}).get("max_num_batched_tokens",
                                                   DEFAULT_CP_TOKEN_BUDGET))
                 for m in methods.values() if "cp" in (m.get("flags") or [])}
        return [f"{b} (from the methods; not recorded in the rows)" for b in sorted(named)]
    return []


def value_counts(frame: pd.DataFrame, columns: list[str]) -> list[tuple[str, int]]:
    """Distinct values of the given columns joined by a space, with their row counts."""
    present = [c for c in columns if c in frame.columns]
    if not present or frame.empty:
        return []
    keys = frame[present].fillna("").astype(str).agg(" ".join, axis=1).str.strip()
    counts = keys.replace("", "(not recorded)").value_counts()
    return [(k, int(v)) for k, v in counts.items()]
