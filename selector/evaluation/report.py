"""Write an evaluation to disk: metrics.csv, summary.md (Table 4), ablation.csv and plots."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from metainf.selector.baselines.registry import selector_names
from metainf.selector.evaluation.metrics import (
    METRIC_COLUMNS,
    merit,
    oracle_outcomes,
    summarise,
)
from metainf.selector.evaluation.runner import EvaluationResult

log = logging.getLogger(__name__)

CSV_COLUMNS = ("selector", "protocol", "fold", "n_tasks") + METRIC_COLUMNS + (
    "n_single", "n_tied", "fit_s", "error")
"""metrics.csv columns: the contract's eleven first, then extras."""

ABLATION_COLUMNS = ("selector", "style", "svd_k", "protocol", "fold", "n_tasks") + \
    METRIC_COLUMNS + ("n_single", "fit_s", "error")
"""ablation.csv columns."""


def _selector_order(names) -> list[str]:
    known = selector_names() + ["oracle"]
    return [n for n in known if n in set(names)] + sorted(set(names) - set(known))


def pooled_metrics(outcomes: pd.DataFrame, fold_metrics: pd.DataFrame,
                   group_cols: tuple[str, ...] = ("protocol", "selector"),
                   with_oracle: bool = True) -> pd.DataFrame:
    """Pooled mean over tasks per group, with each metric's spread (std) over folds.

    The oracle row is the ceiling: the virtual best solver on the same test tasks.
    """
    if outcomes.empty:
        return pd.DataFrame()
    rows = []
    for key, g in outcomes.groupby(list(group_cols), sort=False):
        rows.append(dict(zip(group_cols, key, strict=True)) | summarise(g, fold_col="fold"))
    if with_oracle and "selector" in group_cols:
        others = [c for c in group_cols if c != "selector"]
        first = outcomes["selector"].iloc[0]
        base = outcomes[outcomes["selector"] == first]
        groups = base.groupby(others, sort=False) if others else [((), base)]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            row = dict(zip(others, key, strict=True)) | {"selector": "oracle"}
            rows.append(row | summarise(oracle_outcomes(g), fold_col="fold"))
    pooled = pd.DataFrame(rows)
    fm = fold_metrics[fold_metrics["n_tasks"] > 0] if not fold_metrics.empty else fold_metrics
    spread = fm.groupby(list(group_cols), sort=False)[list(METRIC_COLUMNS)].std(ddof=0)
    spread = spread.add_suffix("_std").reset_index()
    n_folds = fm.groupby(list(group_cols), sort=False).size().rename("n_folds").reset_index()
    pooled = pooled.merge(spread, on=list(group_cols), how="left")
    pooled = pooled.merge(n_folds, on=list(group_cols), how="left")
    if "selector" in group_cols:
        order = {n: i for i, n in enumerate(_selector_order(pooled["selector"]))}
        pooled = pooled.assign(_o=pooled["selector"].map(order)).sort_values(
            [c for c in group_cols if c != "selector"] + ["_o"], kind="stable").drop(columns="_o")
    return pooled.reset_index(drop=True)


def _digits(metric: str) -> int:
    """Decimals a report shows of a metric."""
    return 2 if metric == "predict_ms" else 3


def _shown_merit(metric: str, values) -> np.ndarray:
    """The merit (higher is better) of values as the report shows them, rounded to its
    decimals: what decides a column's best, so ties that print alike are ties."""
    return merit(metric, np.round(np.asarray(values, dtype=float), _digits(metric)))


def _fmt(value: float, std: float | None, metric: str) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    digits = _digits(metric)
    text = f"{value:.{digits}f}"
    if std is not None and np.isfinite(std) and std > 0:
        text += f" ± {std:.{digits}f}"
    return text


def markdown_table(pooled: pd.DataFrame, label_col: str = "selector",
                   mark_best_excluding: tuple[str, ...] = ("oracle",)) -> str:
    """The Table 4 layout: one row per selector, metrics as 'mean ± fold std', best in bold."""
    header = [label_col, "n_tasks"] + list(METRIC_COLUMNS)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    contenders = pooled[~pooled[label_col].isin(mark_best_excluding)]
    best = {}
    for m in METRIC_COLUMNS:
        vals = _shown_merit(m, contenders[m])
        vals = vals[np.isfinite(vals)]
        if len(vals):
            best[m] = vals.max()
    for _, row in pooled.iterrows():
        cells = [str(row[label_col]), str(int(row["n_tasks"]))]
        for m in METRIC_COLUMNS:
            text = _fmt(row[m], row.get(f"{m}_std"), m)
            if (row[label_col] not in mark_best_excluding and m in best
                    and np.isfinite(row[m]) and _shown_merit(m, row[m]) == best[m]):
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def winners(pooled: pd.DataFrame, exclude: tuple[str, ...] = ("oracle",)) -> dict[str, str]:
    """Per metric column, the selector(s) with the best pooled value (ties joined by ',')."""
    contenders = pooled[~pooled["selector"].isin(exclude)]
    out = {}
    for m in METRIC_COLUMNS:
        if m not in contenders:
            continue
        vals = _shown_merit(m, contenders[m])
        ok = np.isfinite(vals)
        if not ok.any():
            continue
        out[m] = ",".join(contenders.loc[ok & (vals == vals[ok].max()), "selector"])
    return out


def worst_folds(fold_metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (protocol, selector), the scored fold with the highest strict regret."""
    fm = fold_metrics[(fold_metrics["n_tasks"] > 0) & (fold_metrics["selector"] != "oracle")]
    if fm.empty or "regret" not in fm:
        return pd.DataFrame(columns=["protocol", "selector", "fold", "n_tasks", "regret",
                                     "accuracy"])
    idx = fm.groupby(["protocol", "selector"], sort=False)["regret"].idxmax()
    return fm.loc[idx, ["protocol", "selector", "fold", "n_tasks", "regret", "accuracy"]]


DIGEST_COLUMNS = ("accuracy", "regret", "accuracy_noise", "regret_noise",
                  "accuracy_available", "infeasible_pick_rate", "closed_gap", "level_mdape",
                  "coverage_80")
"""Columns of the digest `metainf evaluate` prints: strict first, then noise-aware and
available candidates."""


def _digest_cell(value: float) -> str:
    """One figure of the digest: 4 decimals, or 4 significant digits when that is too wide
    (a baseline's exploding error), so columns never run together."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.4f}" if abs(value) < 1e9 else f"{value:.4g}"


def digest(pooled: pd.DataFrame, fold_metrics: pd.DataFrame) -> str:
    """A plain-text digest per protocol: the figures that judge a selector, each selector's
    worst fold, and the winner of every column."""
    worst = worst_folds(fold_metrics).set_index(["protocol", "selector"])
    lines = []
    for protocol, g in pooled.groupby("protocol", sort=False):
        lines.append(f"protocol {protocol}: {int(g['n_tasks'].max())} scored tasks")
        head = f"  {'selector':<18}" + "".join(f"{c:>21}" for c in DIGEST_COLUMNS) + \
            "  worst fold (regret)"
        lines.append(head)
        for _, row in g.iterrows():
            cells = "".join(f" {_digest_cell(row.get(c, np.nan)):>20}" for c in DIGEST_COLUMNS)
            key = (protocol, row["selector"])
            bad = (f"  {worst.loc[key, 'fold']} ({worst.loc[key, 'regret']:.4f})"
                   if key in worst.index else "")
            lines.append(f"  {row['selector']:<18}{cells}{bad}")
        won = winners(g)
        lines.append("  winners: " + "; ".join(f"{m}={won[m]}" for m in DIGEST_COLUMNS
                                               if m in won))
        tied = tied_picks(g)
        if tied:
            lines.append("  tied picks (scored as the mean over the tied methods): " + tied)
    return "\n".join(lines)


def tied_picks(pooled: pd.DataFrame) -> str:
    """'name k of n, ...' for the selectors that predicted the best cost for more than one
    candidate on some tasks (empty when none did)."""
    if "n_tied" not in pooled:
        return ""
    rows = pooled[(pooled["selector"] != "oracle") & (pooled["n_tied"].fillna(0) > 0)]
    return ", ".join(f"{r.selector} {int(r.n_tied)} of {int(r.n_tasks)}"
                     for r in rows.itertuples())


def summary_markdown(result: EvaluationResult, pooled: pd.DataFrame,
                     ablation_pooled: pd.DataFrame | None = None, source: str = "") -> str:
    """summary.md: one Table 4 per protocol, the ablation table, and how to read them."""
    out = ["# Selector evaluation", ""]
    if source:
        out += [f"Data: `{source}`", ""]
    out += [
        ("Pooled mean over all test tasks of all folds; `±` is the standard deviation of the "
         "per-fold values. Best per column in **bold** (the oracle, the per-task best method, "
         "is the ceiling and is not ranked). Costs: lower is better. Tasks with a single "
         "measured method are left out (`n_single`). closed_gap is averaged over folds where "
         "Global Best (SBS) differs from the oracle (VBS). Ties within 1 % count as hits."),
        "",
    ]
    for protocol, g in pooled.groupby("protocol", sort=False):
        folds = result.folds.get(protocol, [])
        n_single = int(g["n_single"].max()) if "n_single" in g else 0
        out += [f"## Protocol `{protocol}`", "",
                (f"{len(folds)} fold(s); {int(g['n_tasks'].max())} scored test task(s), "
                 f"{n_single} single-candidate task(s) left out."), "",
                markdown_table(g), ""]
        won = winners(g)
        out += ["Winner of each column: " + "; ".join(f"{m} **{won[m]}**" for m in won), ""]
        tied = tied_picks(g)
        if tied:
            out += [f"Tasks where a selector predicted the same best cost for several methods "
                    f"(each scored as the mean over them, not as the first listed): {tied}.", ""]
        worst = worst_folds(result.metrics[result.metrics["protocol"] == protocol])
        if not worst.empty:
            out += ["Worst fold of each selector (highest strict regret):", "",
                    "| selector | fold | n_tasks | regret | accuracy |", "|---|---|---:|---:|---:|"]
            out += [f"| {r.selector} | {r.fold} | {int(r.n_tasks)} | {r.regret:.3f} | "
                    f"{r.accuracy:.3f} |" for r in worst.itertuples()]
            out.append("")
        failed = result.metrics[(result.metrics["protocol"] == protocol)
                                & (result.metrics["error"].astype(str) != "")]
        for _, row in failed.iterrows():
            out.append(f"- {row['selector']} failed on fold {row['fold']}: {row['error']}")
        if len(failed):
            out.append("")
    if ablation_pooled is not None and not ablation_pooled.empty:
        out += ["## Ablation: description style x SVD k (MetaInf)", ""]
        for protocol, g in ablation_pooled.groupby("protocol", sort=False):
            g = g.assign(config=g["style"] + "/k" + g["svd_k"].astype(str))
            out += [f"Protocol `{protocol}`:", "", markdown_table(g, label_col="config"), ""]
    if result.roofline_known is not None:
        known, total = result.roofline_known
        out.append(f"Roofline known for {known} of {total} tasks (the level of the others is "
                   f"learned alone).")
        out.append("")
    out.append(f"Wall time: {result.wall_s:.1f} s.")
    return "\n".join(out) + "\n"


def _axes_figure(width=8.0, height=4.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    return plt, fig, ax


def plot_mean_rank(pooled: pd.DataFrame, path: Path) -> Path:
    """Figure 3: mean rank of the true best method per selector, bars per protocol."""
    plt, fig, ax = _axes_figure(9, 4.5)
    data = pooled[pooled["selector"] != "oracle"]
    selectors = _selector_order(data["selector"].unique())
    protocols = list(dict.fromkeys(data["protocol"]))
    width = 0.8 / max(len(protocols), 1)
    x = np.arange(len(selectors))
    for i, proto in enumerate(protocols):
        g = data[data["protocol"] == proto].set_index("selector").reindex(selectors)
        ax.bar(x + i * width - 0.4 + width / 2, g["mean_rank"], width,
               yerr=g.get("mean_rank_std"), capsize=2, label=proto)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="oracle (1)")
    ax.set_xticks(x, selectors, rotation=35, ha="right")
    ax.set_ylabel("mean rank of the true best method (1 = best)")
    ax.set_xlabel("selector")
    ax.set_title("Mean rank of the true best method in each selector's ranking (lower is better)")
    ax.legend(title="protocol", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_accuracy_vs_time(pooled: pd.DataFrame, path: Path) -> Path:
    """Figure 5: accuracy against prediction time per query (log scale)."""
    plt, fig, ax = _axes_figure(8, 5)
    data = pooled[pooled["selector"] != "oracle"]
    markers = "os^Dvp*"
    for i, (proto, g) in enumerate(data.groupby("protocol", sort=False)):
        t = np.maximum(g["predict_ms"].astype(float), 1e-4)
        ax.scatter(t, g["accuracy"], marker=markers[i % len(markers)], label=proto, s=40)
        for ti, acc, name in zip(t, g["accuracy"], g["selector"], strict=True):
            ax.annotate(name, (ti, acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("prediction time per query (ms, log scale)")
    ax.set_ylabel("accuracy (share of tasks where the pick is best within 1 %)")
    ax.set_title("Accuracy vs prediction time")
    ax.set_ylim(0, 1.05)
    ax.legend(title="protocol", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_fold_regret(fold_metrics: pd.DataFrame, path: Path) -> Path:
    """Per fold, each selector's strict regret against Global Best's (the dashed line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fm = fold_metrics[(fold_metrics["n_tasks"] > 0) & (fold_metrics["selector"] != "oracle")]
    protocols = list(dict.fromkeys(fm["protocol"]))
    fig, axes = plt.subplots(len(protocols), 1, figsize=(10, 3.6 * max(len(protocols), 1)),
                             dpi=110, squeeze=False)
    for row, proto in enumerate(protocols):
        ax = axes[row][0]
        g = fm[fm["protocol"] == proto]
        folds = list(dict.fromkeys(g["fold"]))
        selectors = [s for s in _selector_order(g["selector"].unique()) if s != "global_best"]
        x = np.arange(len(folds))
        width = 0.8 / max(len(selectors), 1)
        for i, sel in enumerate(selectors):
            gs = g[g["selector"] == sel].set_index("fold").reindex(folds)
            ax.bar(x + i * width - 0.4 + width / 2, gs["regret"], width, label=sel,
                   edgecolor="black" if sel == "metainf" else None)
        gb = g[g["selector"] == "global_best"].set_index("fold").reindex(folds)
        ax.hlines(gb["regret"], x - 0.45, x + 0.45, colors="black", linestyles="--",
                  label="global_best")
        ax.set_xticks(x, folds, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("regret (selected / best cost)")
        lo = float(np.nanmin(g["regret"])) if len(g) else 1.0
        ax.set_ylim(max(0.0, lo - 0.02), None)
        ax.set_title(f"Per-fold regret against Global Best ({proto}; lower is better)")
        ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_ablation(ablation_pooled: pd.DataFrame, path: Path) -> Path:
    """Figure 4: MetaInf accuracy and regret per description style, one bar per SVD k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(ablation_pooled["protocol"]))
    fig, axes = plt.subplots(len(protocols), 2, figsize=(10, 3.8 * len(protocols)), dpi=110,
                             squeeze=False)
    for row, proto in enumerate(protocols):
        g = ablation_pooled[ablation_pooled["protocol"] == proto]
        styles = list(dict.fromkeys(g["style"]))
        ks = sorted(set(g["svd_k"]))
        width = 0.8 / max(len(ks), 1)
        x = np.arange(len(styles))
        panels = (("accuracy", "accuracy (higher is better)"),
                  ("regret", "regret, selected cost / best cost (lower is better)"))
        for col, (metric, label) in enumerate(panels):
            ax = axes[row][col]
            for i, k in enumerate(ks):
                gk = g[g["svd_k"] == k].set_index("style").reindex(styles)
                ax.bar(x + i * width - 0.4 + width / 2, gk[metric], width,
                       yerr=gk.get(f"{metric}_std"), capsize=2, label=f"SVD k={k}")
            ax.set_xticks(x, styles)
            ax.set_xlabel("description style")
            ax.set_ylabel(label)
            ax.set_title(f"MetaInf {metric} by description style ({proto})")
            if metric == "regret":
                lo = float(np.nanmin(g["regret"])) if len(g) else 1.0
                ax.set_ylim(max(0.0, lo - 0.05), None)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _sort_styles(df: pd.DataFrame) -> pd.DataFrame:
    """Ablation rows in the order onehot, basic, rich, cot, then by SVD k."""
    from metainf.selector.descriptions import STYLES

    if df.empty:
        return df
    order = {s: i for i, s in enumerate(STYLES)}
    protocols = {p: i for i, p in enumerate(dict.fromkeys(df["protocol"]))}
    return (df.assign(_p=df["protocol"].map(protocols), _s=df["style"].map(order))
            .sort_values(["_p", "_s", "svd_k"], kind="stable")
            .drop(columns=["_p", "_s"]).reset_index(drop=True))


def write_report(result: EvaluationResult, out_dir: str | Path, source: str = "") -> dict:
    """Write every output file under ``out_dir``; return {name: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    metrics = result.metrics.reindex(columns=list(CSV_COLUMNS))
    paths["metrics"] = out / "metrics.csv"
    metrics.to_csv(paths["metrics"], index=False)
    if not result.outcomes.empty:
        paths["tasks"] = out / "tasks.csv"
        result.outcomes.to_csv(paths["tasks"], index=False)
    pooled = pooled_metrics(result.outcomes, result.metrics)
    ablation_pooled = None
    if not result.ablation.empty:
        paths["ablation"] = out / "ablation.csv"
        result.ablation.reindex(columns=list(ABLATION_COLUMNS)).to_csv(paths["ablation"],
                                                                       index=False)
        ablation_pooled = _sort_styles(pooled_metrics(
            result.ablation_outcomes, result.ablation, ("protocol", "style", "svd_k"),
            with_oracle=False))
    if not pooled.empty:
        paths["pooled"] = out / "pooled.csv"
        pooled.to_csv(paths["pooled"], index=False)
        paths["mean_rank_plot"] = plot_mean_rank(pooled, out / "mean_rank.png")
        paths["accuracy_time_plot"] = plot_accuracy_vs_time(pooled, out / "accuracy_vs_time.png")
        paths["fold_regret_plot"] = plot_fold_regret(result.metrics, out / "fold_regret.png")
        paths["digest"] = out / "digest.txt"
        paths["digest"].write_text(digest(pooled, result.metrics) + "\n", encoding="utf-8")
    if ablation_pooled is not None and not ablation_pooled.empty:
        paths["ablation_plot"] = plot_ablation(ablation_pooled, out / "ablation.png")
    paths["summary"] = out / "summary.md"
    paths["summary"].write_text(summary_markdown(result, pooled, ablation_pooled, source),
        encoding="utf-8")
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths
