"""Figures of a campaign report: the metric by method, best method per task, variation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from metainf.report.tables import (
    best_methods,
    cell_stats,
    cell_variation,
    method_order,
    metric_info,
)

DPI = 110


def method_colors(methods) -> dict[str, tuple[float, float, float]]:
    """A stable colour per method (paper order first), the same in every figure."""
    ordered = method_order(methods)
    palette = colormaps["tab10" if len(ordered) <= 10 else "tab20"]
    return {m: to_rgb(palette(i % palette.N)) for i, m in enumerate(ordered)}


def _axis_label(metric: str, prefix: str = "median ") -> str:
    info = metric_info(metric)
    return f"{prefix}{info.label} ({info.unit})"


def runtime_figure(frame: pd.DataFrame, model: str, workload: str,
                   metric: str = "runtime_s") -> Figure:
    """The paper's Figure 1 shape for one model and workload: the metric by method across
    batch sizes, one panel per hardware class; bars are medians over repetitions, error bars
    span min to max."""
    stats = cell_stats(frame, metric)
    stats = stats[(stats["model"] == model) & (stats["workload"] == workload)]
    hardware = sorted(stats["hardware"].unique())
    colors = method_colors(cell_stats(frame, metric)["method"].unique())
    ncols = min(3, max(1, len(hardware)))
    nrows = max(1, math.ceil(len(hardware) / ncols))
    fig = Figure(figsize=(5.2 * ncols + 1.6, 3.8 * nrows), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    direction = "lower" if metric_info(metric).lower_is_better else "higher"
    for ax, hw in zip(axes, hardware, strict=False):
        part = stats[stats["hardware"] == hw]
        batches = sorted(part["batch_size"].unique())
        methods = method_order(part["method"].unique())
        width = 0.8 / max(1, len(methods))
        x = np.arange(len(batches))
        for i, method in enumerate(methods):
            m = part[part["method"] == method].set_index("batch_size").reindex(batches)
            err = np.vstack([(m["median"] - m["min"]).to_numpy(),
                             (m["max"] - m["median"]).to_numpy()])
            ax.bar(x - 0.4 + width * (i + 0.5), m["median"], width, yerr=err, capsize=2,
                   color=colors[method], label=method, error_kw={"linewidth": 0.8})
        ax.set_xticks(x, [str(b) for b in batches])
        ax.set_xlabel("batch size (requests in flight or per static group)")
        ax.set_ylabel(_axis_label(metric))
        ax.set_title(f"{hw}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(hardware):]:
        ax.set_visible(False)
    handles = [Patch(color=colors[m], label=m)
               for m in method_order(stats["method"].unique())]
    fig.legend(handles=handles, title="method", loc="center right", fontsize=8)
    fig.suptitle(f"{model} · {workload}: {_axis_label(metric)} by method ({direction} is "
                 f"better; error bars: min-max over repetitions)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 1.3 / fig.get_figwidth(), 0.95))
    return fig


def best_method_figure(frame: pd.DataFrame, metric: str = "runtime_s") -> Figure:
    """Heatmap of the best method per (model, workload, batch size) row and hardware column."""
    best = best_methods(frame, metric)
    info = metric_info(metric)
    rows = sorted({(r.model, r.workload, r.batch_size) for r in best.itertuples()})
    hardware = sorted(best["hardware"].unique())
    methods = method_order(cell_stats(frame, metric)["method"].unique())
    colors = method_colors(methods)
    index = {m: i for i, m in enumerate(methods)}
    grid = np.full((len(rows), len(hardware)), np.nan)
    names = [["" for _ in hardware] for _ in rows]
    ri = {r: i for i, r in enumerate(rows)}
    hi = {h: j for j, h in enumerate(hardware)}
    for r in best.itertuples():
        i, j = ri[(r.model, r.workload, r.batch_size)], hi[r.hardware]
        grid[i, j] = index[r.best_method]
        names[i][j] = r.best_method
    labels = [f"{m} · {w} · b={b}" for m, w, b in rows]
    longest = max((len(s) for s in labels), default=10)
    fig = Figure(figsize=(max(6.0, 0.075 * longest + 1.9 * max(1, len(hardware)) + 2.5),
                          max(3.0, 0.34 * len(rows) + 1.9)), dpi=DPI)
    ax = fig.subplots()
    cmap = ListedColormap([colors[m] for m in methods] or [(1, 1, 1)]).with_extremes(
        bad=(1, 1, 1))
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-0.5,
              vmax=max(len(methods), 1) - 0.5, aspect="auto", interpolation="nearest")
    for i in range(len(rows)):
        for j in range(len(hardware)):
            name = names[i][j]
            if not name:
                ax.text(j, i, "not measured", ha="center", va="center", fontsize=7, color="0.5")
                continue
            r, g, b = colors[name]
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"
            ax.text(j, i, name, ha="center", va="center", fontsize=8, color=ink)
    ax.set_xticks(np.arange(len(hardware) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xticks(range(len(hardware)), hardware, rotation=20, ha="right")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlabel("hardware class")
    ax.set_ylabel("task: model · workload · batch size")
    ax.set_title(f"Best method per task ({'lowest' if info.lower_is_better else 'highest'} "
                 f"{_axis_label(metric)})", fontsize=10)
    present = [m for m in methods if any(m in row for row in names)]
    ax.legend(handles=[Patch(color=colors[m], label=m) for m in present], title="method",
              bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def variation_figure(frame: pd.DataFrame, metric: str = "runtime_s") -> Figure:
    """Box plot of the coefficient of variation (%) over repetitions of each cell, per method."""
    cells = cell_variation(frame, metric)
    methods = method_order(cells["method"].unique())
    colors = method_colors(methods)
    fig = Figure(figsize=(max(6.0, 0.9 * len(methods) + 2), 4.2), dpi=DPI)
    ax = fig.subplots()
    data = [cells.loc[cells["method"] == m, "cv_pct"].to_numpy() for m in methods]
    if methods:
        box = ax.boxplot(data, patch_artist=True, widths=0.6)
        ax.set_xticks(range(1, len(methods) + 1), methods)
        for patch, method in zip(box["boxes"], methods, strict=True):
            patch.set_facecolor(colors[method])
            patch.set_alpha(0.6)
        rng = np.random.default_rng(0)  # fixed jitter: the same picture every time
        for k, values in enumerate(data, start=1):
            ax.scatter(k + rng.uniform(-0.15, 0.15, len(values)), values, s=8, color="0.25",
                       zorder=3)
    else:
        ax.text(0.5, 0.5, "no cell has two or more done repetitions", ha="center",
                va="center", transform=ax.transAxes)
    ax.set_xlabel("method")
    ax.set_ylabel(f"coefficient of variation of {metric_info(metric).label} (%)")
    ax.set_title("Variation across repetitions per method (one point per cell: std / mean)",
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def report_figures(frame: pd.DataFrame, metric: str = "runtime_s") -> dict[str, Figure]:
    """Every figure of a report, keyed by a name: runtime:<model>:<workload>, best, variation."""
    stats = cell_stats(frame, metric)
    figures: dict[str, Figure] = {}
    for model, workload in sorted({(m, w) for m, w in zip(stats["model"], stats["workload"],
                                                          strict=True)}):
        figures[f"runtime:{model}:{workload}"] = runtime_figure(frame, model, workload, metric)
    if not stats.empty:
        figures["best"] = best_method_figure(frame, metric)
        figures["variation"] = variation_figure(frame, metric)
    return figures

