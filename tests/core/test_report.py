"""The campaign report from a small hand-made P: numbers, figures, and the HTML page."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metainf.p import COLUMNS, write_p
from metainf.report.html import markdown_to_html, report_from_file, write_report
from metainf.report.plots import report_figures
from metainf.report.tables import (
    best_methods,
    change_table,
    failures,
    variation_table,
)

RUNTIME = {  # (hardware, method) -> median runtime (s), the same for every task
    ("hw-a", "none"): 10.0, ("hw-a", "cb"): 8.0, ("hw-a", "pc"): 5.0,
    ("hw-b", "none"): 10.0, ("hw-b", "cb"): 8.0, ("hw-b", "pc"): 12.0,
}
SPREAD = (1.0, 1.1, 0.9)  # repetitions around the median: CV = 10 %
ERROR = "CUDA <oom> & co"


def make_p() -> pd.DataFrame:
    """2 workloads x 2 batch sizes x 2 hardware x 3 methods x 3 repetitions, plus a failure."""
    rows = []
    for workload in ("wl-prefix", "wl-chat"):
        for batch in (4, 16):
            for (hw, method), runtime in RUNTIME.items():
                for rep, factor in enumerate(SPREAD):
                    rows.append({
                        "campaign_id": "c-test", "cell_id": f"{workload}{batch}{hw}{method}",
                        "model": "tiny", "method": method,
                        "continuous_batching": int("cb" in method),
                        "prefix_caching": int("pc" in method), "chunked_prefill": 0,
                        "hardware": hw, "worker": "w", "dataset": workload, "workload": workload,
                        "batch_size": batch, "num_prompts": 32, "max_output_tokens": 16,
                        "repetition": rep, "replica": 0, "status": "done",
                        "runtime_s": runtime * factor * (4 / batch),
                        "throughput_tok_s": 512 / (runtime * factor), "engine": "vllm",
                        "engine_version": "0.32.0+cpu", "weights": "dummy",
                        "engine_config": "{}", "error": ""})
    for rep in range(3):
        rows.append({**rows[0], "cell_id": "failed-cell", "method": "cp", "chunked_prefill": 1,
                     "status": "oom", "runtime_s": np.nan, "repetition": rep, "error": ERROR,
                     "engine_config": '{"enable_chunked_prefill": true, '
                                      '"max_num_batched_tokens": 256}'})
    return pd.DataFrame(rows).reindex(columns=[c for c in COLUMNS if c != "error"] + ["error"])


META = {
    "campaign_id": "c-test", "name": "hand-made",
    "hardware": {"hw-a": {"profile": {"kind": "gpu", "accelerator": "NVIDIA L4",
                                      "accelerator_count": 1, "accelerator_memory_gb": 22.5,
                                      "cpu_model": "Xeon", "cpu_cores": 8, "ram_gb": 32.0,
                                      "isa_flags": ["avx2"]}, "price_per_hour": 0.8},
                 "hw-b": {"profile": {"kind": "cpu", "cpu_model": "EPYC", "cpu_cores": 2,
                                      "ram_gb": 8.0, "isa_flags": ["avx2"]},
                          "price_per_hour": 0.05}},
    "methods": {m: {"name": m, "flags": [] if m == "none" else [m], "engine_args": {}}
                for m in ("none", "cb", "pc", "cp")},
    "models": {"tiny": {"summary": {"family": "llama", "num_layers": 4}}},
}


def test_change_against_none_and_cb():
    change = change_table(make_p(), "runtime_s").set_index(
        ["workload", "batch_size", "hardware", "method"])
    pc_a = change.loc[("wl-chat", 4, "hw-a", "pc")]
    assert pc_a["median"] == pytest.approx(5.0)
    assert pc_a["gain_vs_none_pct"] == pytest.approx(50.0)
    assert pc_a["gain_vs_cb_pct"] == pytest.approx(37.5)
    pc_b = change.loc[("wl-chat", 16, "hw-b", "pc")]
    assert pc_b["gain_vs_none_pct"] == pytest.approx(-20.0)
    assert change.loc[("wl-chat", 4, "hw-a", "none"), "gain_vs_none_pct"] == 0
    assert "cp" not in change.index.get_level_values("method")  # never done


def test_change_for_a_higher_is_better_metric():
    change = change_table(make_p(), "throughput_tok_s").set_index(
        ["workload", "batch_size", "hardware", "method"])
    # throughput 512 / runtime: pc on hw-a is 2x none -> +100 %
    assert change.loc[("wl-chat", 4, "hw-a", "pc"), "gain_vs_none_pct"] == pytest.approx(100.0)


def test_best_method_variation_and_failures():
    frame = make_p()
    best = best_methods(frame, "runtime_s")
    assert set(best.loc[best.hardware == "hw-a", "best_method"]) == {"pc"}
    assert set(best.loc[best.hardware == "hw-b", "best_method"]) == {"cb"}
    assert best.loc[best.hardware == "hw-b", "margin_pct"].iloc[0] == pytest.approx(20.0)
    variation = variation_table(frame, "runtime_s").set_index("method")
    assert list(variation.index) == ["none", "cb", "pc"]
    assert variation["mean_cv_pct"].to_numpy() == pytest.approx([10.0] * 3)
    assert (variation["cells"] == 8).all()
    fails = failures(frame)
    assert len(fails) == 1
    assert fails.iloc[0]["status"] == "oom" and fails.iloc[0]["repetitions"] == 3
    assert fails.iloc[0]["error"] == ERROR


def test_every_figure_has_titles_labels_and_units():
    figures = report_figures(make_p(), "runtime_s")
    assert set(figures) == {"runtime:tiny:wl-chat", "runtime:tiny:wl-prefix", "best",
                            "variation"}
    for name, fig in figures.items():
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert axes, name
        for ax in axes:
            assert ax.get_title(), name
            assert ax.get_xlabel() and ax.get_ylabel(), name
        if name.startswith("runtime:"):
            assert len(axes) == 2  # one panel per hardware class
            assert all(ax.get_ylabel() == "median runtime (s)" for ax in axes)
            assert fig._suptitle is not None and "tiny" in fig._suptitle.get_text()
            # 3 methods x 2 batch sizes bars per panel, heights = medians
            heights = sorted(round(p.get_height(), 6) for p in axes[0].patches)
            assert heights == sorted([2.5, 2.0, 1.25, 10.0, 8.0, 5.0])
        if name == "variation":
            assert "%" in axes[0].get_ylabel()
    best_ax = figures["best"].axes[0]
    texts = [t.get_text() for t in best_ax.texts]
    assert texts.count("pc") == 4 and texts.count("cb") == 4  # 4 tasks x 2 hardware


def _img_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_write_report_is_self_contained(tmp_path):
    out = tmp_path / "report"
    index = write_report(make_p(), META, out)
    assert index == out / "index.html"
    page = index.read_text(encoding="utf-8")
    sources = _img_sources(page)
    assert len(sources) == 4
    for src in sources:
        assert not Path(src).is_absolute()
        assert (out / src).is_file() and (out / src).stat().st_size > 1000
    assert "+50.0 %" in page and "+37.5 %" in page and "-20.0 %" in page
    assert "CUDA &lt;oom&gt; &amp; co" in page and ERROR not in page
    assert "NVIDIA L4" in page and "0.8" in page  # provenance: profile and price
    assert "0.32.0+cpu" in page and "dummy" in page
    assert "256" in page  # cp token budget from engine_config
    assert "c-test" in page and "hand-made" in page
    for name in ("change", "best_method", "variation", "failures"):
        assert (out / "tables" / f"{name}.csv").is_file()


def test_report_includes_an_evaluation(tmp_path):
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "metrics.csv").write_text("selector,protocol,fold,n_tasks,accuracy\n"
                                            "metainf,random,0,10,0.8\n", encoding="utf-8")
    (evaluation / "summary.md").write_text(
        "# Selector evaluation\n\nPooled mean, `±` std.\n\n## Protocol `random`\n\n"
        "| selector | n_tasks | accuracy |\n|---|---:|---:|\n| metainf | 10 | **0.800** |\n"
        "| oracle | 10 | 1.000 |\n\n- ridge failed on fold 1: <bad>\n", encoding="utf-8")
    src = tmp_path / "plot.png"
    figures = report_figures(make_p())
    figures["best"].savefig(src)
    (evaluation / "mean_rank.png").write_bytes(src.read_bytes())
    out = tmp_path / "report"
    page = write_report(make_p(), META, out, evaluation_dir=evaluation).read_text(encoding="utf-8")
    assert '<td><strong>0.800</strong></td>' in page
    assert "<code>random</code>" in page and "&lt;bad&gt;" in page
    assert "evaluation/mean_rank.png" in _img_sources(page)
    assert (out / "evaluation" / "mean_rank.png").is_file()
    assert (out / "evaluation" / "metrics.csv").is_file()
    with pytest.raises(ValueError, match="evaluation_dir"):
        write_report(make_p(), META, out, evaluation_dir=tmp_path / "missing")


def test_report_from_an_exported_file(tmp_path):
    frame = make_p()
    path = write_p(frame, META, tmp_path / "p.csv")
    index = report_from_file(path, tmp_path / "rep")
    assert "hand-made" in index.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="--data"):
        report_from_file(tmp_path / "nope.parquet", tmp_path / "rep2")


def test_report_needs_the_task_columns(tmp_path):
    with pytest.raises(ValueError, match="hardware"):
        write_report(make_p().drop(columns=["hardware"]), META, tmp_path / "r")
    with pytest.raises(ValueError, match="metric"):
        write_report(make_p(), META, tmp_path / "r", metric="speed")


def test_a_minimal_frame_without_optional_columns(tmp_path):
    frame = make_p()[["model", "method", "hardware", "workload", "batch_size", "status",
                      "runtime_s"]]
    page = write_report(frame, {}, tmp_path / "r").read_text(encoding="utf-8")
    assert len(_img_sources(page)) == 4
    assert "not recorded" in page


def test_markdown_tables_and_escaping():
    html = markdown_to_html("| a | b |\n|---|---|\n| <x> | **y** |\n")
    assert html == ("<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr>"
                    "<td>&lt;x&gt;</td><td><strong>y</strong></td></tr></tbody></table>")
