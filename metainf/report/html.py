"""A campaign report: one self-contained HTML page with PNG plots, tables and provenance."""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metainf.methods import MethodError, method_from_dict
from metainf.p import read_p
from metainf.report.plots import report_figures
from metainf.report.tables import (
    TASK,
    best_methods,
    change_table,
    cp_token_budgets,
    failures,
    method_order,
    metric_info,
    prepare,
    value_counts,
    variation_table,
)

log = logging.getLogger(__name__)

BASELINES = ("none", "cb")
"""Methods every other method is compared against (the paper's Table 1)."""

EVALUATION_FILES = ("summary.md", "metrics.csv", "pooled.csv", "tasks.csv", "ablation.csv")
"""Files of an evaluation output folder that the report links or shows."""

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:78rem;color:#222;
padding:0 1rem;line-height:1.4}
h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2.4rem;border-bottom:1px solid #ddd}
h3{font-size:1.05rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.pos{color:#1a7f37}td.neg{color:#b42318}td.best{font-weight:bold}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}
figcaption,.muted{color:#666;font-size:.85rem}code,pre{font-size:.82rem}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto}
nav li{margin:.15rem 0}.err{font-family:monospace;white-space:pre-wrap;max-width:40rem}
"""


def _e(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape("" if value is None else str(value), quote=True)


def _slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts).lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:80] or "plot"


def _num(value: Any, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _e(value)
    return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"


def _gain_cell(value: float) -> str:
    if not np.isfinite(value):
        return '<td class="num muted">n/a</td>'
    css = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<td class="num {css}">{value:+.1f} %</td>'


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless `raw` (then they are ready <td> elements)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(row) if raw else "".join(f"<td>{_e(c)}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(src: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{_e(src)}" alt="{_e(alt)}"><figcaption>{_e(caption)}'
            f"</figcaption></figure>")


# -- sections ---------------------------------------------------------------------------


def _change_section(change: pd.DataFrame, model: str, workload: str, metric: str) -> str:
    """The paper's Table 1 shape: median per method and batch size, gain vs none and cb."""
    info = metric_info(metric)
    part = change[(change["model"] == model) & (change["workload"] == workload)]
    out = []
    for hw in sorted(part["hardware"].unique()):
        p = part[part["hardware"] == hw]
        batches = sorted(p["batch_size"].unique())
        head1 = "<th rowspan=2>method</th>" + "".join(
            f'<th colspan="{1 + len(BASELINES)}">batch size {b}</th>' for b in batches)
        head2 = "".join(f"<th>median {_e(info.label)} ({_e(info.unit)})</th>"
                        + "".join(f"<th>vs {_e(base)}</th>" for base in BASELINES)
                        for _ in batches)
        best = p.groupby("batch_size")["median"].agg(
            "min" if info.lower_is_better else "max").to_dict()
        rows = []
        for method in method_order(p["method"].unique()):
            m = p[p["method"] == method].set_index("batch_size")
            cells = [f"<td>{_e(method)}</td>"]
            for b in batches:
                if b not in m.index:
                    cells.append('<td class="num muted">-</td>' * (1 + len(BASELINES)))
                    continue
                r = m.loc[b]
                css = "num best" if r["median"] == best.get(b) else "num"
                cells.append(f'<td class="{css}">{_num(r["median"])}</td>')
                cells += ['<td class="num muted">baseline</td>' if method == base
                          else _gain_cell(r[f"gain_vs_{base}_pct"]) for base in BASELINES]
            rows.append("<tr>" + "".join(cells) + "</tr>")
        out.append(f"<h4>{_e(hw)}</h4><table><thead><tr>{head1}</tr><tr>{head2}</tr></thead>"
                   f"<tbody>{''.join(rows)}</tbody></table>")
    return "".join(out)


def _best_table(best: pd.DataFrame, metric: str) -> str:
    info = metric_info(metric)
    rows = []
    for r in best.sort_values(list(TASK), kind="stable").itertuples():
        rows.append([f"<td>{_e(getattr(r, c))}</td>" for c in TASK] + [
            f"<td><b>{_e(r.best_method)}</b></td>", f'<td class="num">{_num(r.median)}</td>',
            f"<td>{_e(r.runner_up or '-')}</td>",
            f'<td class="num">{_num(r.margin_pct, 1)} %</td>'
            if np.isfinite(r.margin_pct) else '<td class="num muted">-</td>',
            f'<td class="num">{r.n_methods}</td>'])
    return _table([*TASK, "best method", f"median {info.label} ({info.unit})", "runner-up",
                   "margin over runner-up", "methods measured"], rows, raw=True)


def _variation_html(table: pd.DataFrame, metric: str) -> str:
    info = metric_info(metric)
    rows = [[f"<td>{_e(r.method)}</td>", f'<td class="num">{r.cells}</td>',
             f'<td class="num">{_num(r.mean_cv_pct, 2)}</td>',
             f'<td class="num">{_num(r.median_cv_pct, 2)}</td>',
             f'<td class="num">{_num(r.max_cv_pct, 2)}</td>',
             f'<td class="num">{_num(r.mean_std, 4)}</td>'] for r in table.itertuples()]
    return _table(["method", "cells with ≥ 2 repetitions", "mean CV (%)", "median CV (%)",
                   "max CV (%)", f"mean std ({info.unit})"], rows, raw=True)


def _failures_html(fails: pd.DataFrame) -> str:
    if fails.empty:
        return '<p class="muted">Every measured repetition finished (status done).</p>'
    rows = [[f"<td>{_e(r.cell_id)}</td>", f"<td>{_e(r.model)}</td>", f"<td>{_e(r.method)}</td>",
             f"<td>{_e(r.workload)}</td>", f'<td class="num">{_e(r.batch_size)}</td>',
             f"<td>{_e(r.hardware)}</td>", f"<td>{_e(r.status)}</td>",
             f'<td class="num">{r.repetitions}</td>',
             f'<td class="err">{_e(r.error or "-")}</td>'] for r in fails.itertuples()]
    return _table(["cell", "model", "method", "workload", "batch", "hardware", "status",
                   "repetitions", "error"], rows, raw=True)


def _compact(obj: Any) -> str:
    if isinstance(obj, dict):
        return ", ".join(f"{k}={_compact(v)}" for k, v in obj.items() if v not in (None, "", []))
    if isinstance(obj, list):
        return "[" + ", ".join(_compact(v) for v in obj) + "]"
    if isinstance(obj, float):
        return f"{obj:g}"
    return str(obj)


def _hardware_rows(frame: pd.DataFrame, meta: dict[str, Any]) -> list[list[str]]:
    known = meta.get("hardware", {}) or {}
    rows = []
    for label in sorted(set(frame["hardware"].astype(str)) | set(known)):
        entry = known.get(label)
        if entry is None:
            rows.append([label, "(no profile in the meta file)"] + [""] * 8)
            continue
        p = entry.get("profile", {})
        accel = (f"{p.get('accelerator_count', 0)} x {p.get('accelerator')}"
                 if p.get("accelerator") else "-")
        mem = f"{p['accelerator_memory_gb']:g}" if p.get("accelerator_memory_gb") else "-"
        rows.append([label, p.get("kind", ""), accel, mem, p.get("cpu_model", ""),
                     p.get("cpu_cores", ""), f"{p.get('ram_gb', 0):g}",
                     " ".join(p.get("isa_flags", []) or []),
                     f"{entry.get('price_per_hour', 0):g}", entry.get("class_id", "")])
    return rows


def _method_rows(frame: pd.DataFrame, meta: dict[str, Any]) -> list[list[str]]:
    known = meta.get("methods", {}) or {}
    rows = []
    for name in method_order(set(frame["method"]) | set(known)):
        obj = known.get(name)
        if obj is None:
            rows.append([name, "", "", "(not described in the meta file)"])
            continue
        try:
            words = method_from_dict(obj).describe()
        except MethodError as exc:
            words = f"(cannot parse: {exc})"
        rows.append([name, "+".join(obj.get("flags", [])) or "none",
                     json.dumps(obj.get("engine_args", {}), sort_keys=True), words])
    return rows


def _provenance(frame: pd.DataFrame, meta: dict[str, Any], metric: str) -> str:
    campaigns = sorted(set(frame["campaign_id"].astype(str))) if "campaign_id" in frame else []
    campaign = meta.get("campaign_id") or ", ".join(campaigns) or "unknown"
    created = meta.get("created_at")
    created_text = (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(created)))
                    if isinstance(created, (int, float)) else "not recorded")
    statuses = ", ".join(f"{k} {v}" for k, v in frame["status"].value_counts().items())
    facts = [
        ("campaign", f"{campaign}" + (f" ({meta['name']})" if meta.get("name") else "")),
        ("campaign submitted", created_text),
        ("report written", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())),
        ("rows of P", f"{len(frame)} ({statuses or 'none'})"),
        ("metric", f"{metric}: {metric_info(metric).label} in {metric_info(metric).unit}, "
                   f"{'lower' if metric_info(metric).lower_is_better else 'higher'} is better"),
        ("engine and version", "; ".join(f"{k} ({n} rows)" for k, n in
                                         value_counts(frame, ["engine", "engine_version"]))
         or "not recorded"),
        ("weights", "; ".join(f"{k} ({n} rows)" for k, n in value_counts(frame, ["weights"]))
         or "not recorded"),
        ("chunked-prefill token budget (max_num_batched_tokens)",
         ", ".join(cp_token_budgets(frame, meta)) or "no method with chunked prefill"),
    ]
    parts = ["<h3>Campaign</h3>", _table(["fact", "value"], facts)]
    parts += ["<h3>Hardware classes</h3>", _table(
        ["label", "kind", "accelerators", "accelerator memory (GiB)", "CPU model", "CPU cores",
         "RAM (GiB)", "ISA flags", "price per hour", "class id"], _hardware_rows(frame, meta))]
    parts += ["<h3>Methods</h3>", _table(["method", "flags", "extra engine options",
                                          "in words"], _method_rows(frame, meta))]
    models = meta.get("models", {}) or {}
    model_rows = [[m, _compact(models.get(m, {}).get("summary", {})) or "-"]
                  for m in sorted(set(frame["model"].astype(str)) | set(models))]
    parts += ["<h3>Models</h3>", _table(["model", "config summary"], model_rows)]
    workloads = meta.get("workloads", {}) or {}
    wl_rows = [[w, _compact(workloads.get(w, {}).get("spec", {})) or "-",
                _compact(workloads.get(w, {}).get("stats", {})) or "-"]
               for w in sorted(set(frame["workload"].astype(str)) | set(workloads))]
    parts += ["<h3>Workloads</h3>", _table(["workload", "spec", "statistics (tokens)"], wl_rows)]
    return "".join(parts)


# -- the evaluation of selectors --------------------------------------------------------


def _inline_markdown(text: str) -> str:
    text = _e(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def markdown_to_html(text: str) -> str:
    """The markdown that the evaluation writes (headings, paragraphs, lists, pipe tables)."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)  # under the report's h2
            out.append(f"<h{level}>{_inline_markdown(line.lstrip('#').strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            body = [r for r in block[1:] if not all(set(c) <= set(":-") for c in r)]
            head = "".join(f"<th>{_inline_markdown(c)}</th>" for c in block[0])
            rows = "".join("<tr>" + "".join(f"<td>{_inline_markdown(c)}</td>" for c in r)
                           + "</tr>" for r in body)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif line.lstrip().startswith("- "):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                items.append(f"<li>{_inline_markdown(lines[i].lstrip()[2:])}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|")) \
                    and not lines[i].lstrip().startswith("- "):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline_markdown(' '.join(para))}</p>")
    return "\n".join(out)


def _evaluation_section(evaluation_dir: Path, out: Path) -> str:
    """Copy the evaluation's files beside the report and show its tables and plots."""
    target = out / "evaluation"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    found = [p for p in sorted(evaluation_dir.iterdir())
             if p.is_file() and (p.suffix == ".png" or p.name in EVALUATION_FILES)]
    if not found:
        log.warning("no evaluation outputs (metrics.csv, summary.md, *.png) in %s",
                    evaluation_dir)
        return (f'<p class="muted">No evaluation outputs (metrics.csv, summary.md, PNG plots) '
                f"found in {_e(evaluation_dir)}.</p>")
    for p in found:
        shutil.copy2(p, target / p.name)
    parts = []
    summary = target / "summary.md"
    if summary.exists():
        parts.append(markdown_to_html(summary.read_text(encoding="utf-8")))
    elif (target / "metrics.csv").exists():
        metrics = pd.read_csv(target / "metrics.csv")
        numeric = [c for c in metrics.columns if c not in ("fold", "n_tasks")
                   and pd.api.types.is_numeric_dtype(metrics[c])]
        if "selector" in metrics.columns and numeric:
            keys = [c for c in ("protocol", "selector") if c in metrics.columns]
            mean = metrics.groupby(keys, sort=False)[numeric].mean().reset_index()
            parts.append("<p>Mean over folds of metrics.csv (no summary.md found).</p>")
            parts.append(_table(mean.columns, [[_num(v) if isinstance(v, float) else v
                                                for v in row] for row in mean.values]))
    for png in (p for p in found if p.suffix == ".png"):
        parts.append(_figure(f"evaluation/{png.name}", png.stem.replace("_", " "),
                             f"{png.name} from the evaluation"))
    links = " · ".join(f'<a href="evaluation/{_e(p.name)}">{_e(p.name)}</a>'
                       for p in found if p.suffix != ".png")
    if links:
        parts.append(f"<p>Files: {links}</p>")
    return "".join(parts)


# -- the page ---------------------------------------------------------------------------


def _save_figures(frame: pd.DataFrame, metric: str, plots: Path) -> dict[str, str]:
    """Draw every figure into `plots`; return {figure name: path relative to the report}."""
    if plots.exists():
        shutil.rmtree(plots)
    plots.mkdir(parents=True)
    saved: dict[str, str] = {}
    used: set[str] = set()
    for name, fig in report_figures(frame, metric).items():
        stem = _slug(*name.split(":"))
        while stem in used:
            stem += "-x"
        used.add(stem)
        fig.savefig(plots / f"{stem}.png", bbox_inches="tight")
        saved[name] = f"{plots.name}/{stem}.png"
    return saved


def _write_tables(out: Path, tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
    return {name: f"tables/{name}.csv" for name in tables}


def write_report(frame: pd.DataFrame, meta: dict[str, Any], out_dir: str | Path,
                 evaluation_dir: str | Path | None = None, metric: str = "runtime_s") -> Path:
    """Write `out_dir/index.html` with its plots (plots/), tables (tables/) and, when an
    evaluation folder is given, the selector evaluation (evaluation/); return the page's path.

    The page refers to its files relatively, so the folder can be moved and opened from disk.
    """
    frame = prepare(frame, metric)
    info = metric_info(metric)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if evaluation_dir is not None and not Path(evaluation_dir).is_dir():
        raise ValueError(f"evaluation_dir: {evaluation_dir} is not a folder; pass the --out "
                         f"folder of `metainf evaluate`")
    figures = _save_figures(frame, metric, out / "plots")
    change = change_table(frame, metric, BASELINES)
    best = best_methods(frame, metric)
    variation = variation_table(frame, metric)
    fails = failures(frame)
    csvs = _write_tables(out, {"change": change, "best_method": best, "variation": variation,
                               "failures": fails})
    title = f"Campaign report: {meta.get('name') or meta.get('campaign_id') or 'P'}"
    toc = [("performance", "Performance by method"), ("best", "Best method per task"),
           ("variation", "Variation across repetitions"), ("failures", "Failures")]
    if evaluation_dir is not None:
        toc.append(("evaluation", "Selector evaluation"))
    toc.append(("provenance", "Provenance"))
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="muted">Metric: {_e(info.label)} ({_e(info.unit)}, '
            f"{'lower' if info.lower_is_better else 'higher'} is better), the median over "
            f"done repetitions. {len(frame)} rows of P. Tables as CSV: "
            + " · ".join(f'<a href="{_e(p)}">{_e(n)}</a>' for n, p in csvs.items()) + "</p>",
            "<nav><ul>" + "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in toc)
            + "</ul></nav>"]
    body.append('<h2 id="performance">Performance by method</h2>')
    body.append(
        f"<p>Per model and workload: the median {_e(info.label)} of each method across batch "
        f"sizes (error bars span min to max over repetitions), then per hardware class the "
        f"gain of each method against <code>none</code> and <code>cb</code>: "
        + ("(baseline − method) / baseline × 100" if info.lower_is_better
           else "(method − baseline) / baseline × 100")
        + ", positive = better than the baseline. Best median per batch size in bold.</p>")
    pairs = sorted({(m, w) for m, w in zip(change["model"], change["workload"], strict=True)})
    if not pairs:
        body.append('<p class="muted">No done measurement to show.</p>')
    for model, workload in pairs:
        body.append(f"<h3>{_e(model)} · {_e(workload)}</h3>")
        body.append(_figure(figures[f"runtime:{model}:{workload}"],
                            f"{info.label} by method for {model} on {workload}",
                            f"Median {info.label} ({info.unit}) by method and batch size; "
                            f"error bars: min-max over repetitions."))
        body.append(_change_section(change, model, workload, metric))
    body.append('<h2 id="best">Best method per task</h2>')
    if "best" in figures:
        body.append(_figure(figures["best"], "best method heatmap",
                            "Best method (by median) per model, workload, batch size (rows) "
                            "and hardware class (columns)."))
    body.append(_best_table(best, metric))
    body.append('<h2 id="variation">Variation across repetitions</h2>')
    body.append(f"<p>Coefficient of variation (CV = standard deviation / mean over the "
                f"repetitions of one cell) of the {_e(info.label)}, summarised per method.</p>")
    body.append(_variation_html(variation, metric))
    if "variation" in figures:
        body.append(_figure(figures["variation"], "variation per method",
                            "CV (%) of each cell's repetitions, per method."))
    body.append('<h2 id="failures">Failures</h2>')
    body.append(_failures_html(fails))
    if evaluation_dir is not None:
        body.append('<h2 id="evaluation">Selector evaluation</h2>')
        body.append(_evaluation_section(Path(evaluation_dir), out))
    body.append('<h2 id="provenance">Provenance</h2>')
    body.append(_provenance(frame, meta, metric))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    log.info("report: %s (%d plots)", index, len(figures))
    return index


def report_from_file(path: str | Path, out_dir: str | Path,
                     evaluation_dir: str | Path | None = None,
                     metric: str = "runtime_s") -> Path:
    """Write the report of an exported P file (.parquet or .csv, with its .meta.json)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--data: {path} not found; export a campaign first "
                         f"(metainf campaign export ID --out FILE.parquet)")
    frame, meta = read_p(path)
    return write_report(frame, meta, out_dir, evaluation_dir, metric=metric)
