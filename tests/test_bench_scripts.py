"""The benchmark scripts' own logic: synthetic P, flag translation, summaries, a fake campaign."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    """Import scripts/NAME.py as a module (scripts are not installed)."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_scaled_table_has_the_asked_rows_and_a_pivotable_shape():
    from metainf.selector.table import PerfTable

    bench = _script("bench_select")
    df = bench.scaled_table(5000, repetitions=3, seed=0)
    assert len(df) == 5000
    assert set(df["method"]) == {"none", "cb", "pc", "cp", "cb+pc", "cb+cp", "pc+cp", "cb+pc+cp"}
    assert df.groupby(["model", "hardware", "workload", "batch_size", "method"]).size().max() == 3
    table = PerfTable.from_frame(df)
    assert table.n_tasks == df.groupby(["model", "hardware", "workload", "batch_size"]).ngroups
    assert (df["runtime_s"] > 0).all()


def test_the_wide_synthetic_table_has_nine_hardware_and_four_methods():
    make = _script("make_synthetic_table")
    narrow, wide = make.make_table(), make.make_table(wide=True)
    assert (len(narrow), len(wide)) == (4992, 5616)
    assert wide["hardware"].nunique() == 9 and set(wide["method"]) == set(make.WIDE_METHODS)
    tasks = ["model", "hardware", "workload", "batch_size"]
    assert wide.groupby(tasks).ngroups == 1404
    # the four hardware both share are priced alike: the same cost model
    both = wide[wide["hardware"].isin(make.HARDWARE) & (wide["method"] == "none")]
    ratio = (both.groupby("hardware")["runtime_s"].median()
             / narrow[narrow["method"] == "none"].groupby("hardware")["runtime_s"].median())
    assert ratio.between(0.9, 1.1).all()


def test_first_seen_texts_are_unique_per_client_and_call():
    bench = _script("bench_select")
    texts = {bench.first_seen_text(c, k) for c in range(3) for k in range(200)}
    assert len(texts) == 600
    assert bench.first_seen_text(0, 0, "run1/") != bench.first_seen_text(0, 0, "run2/")


def test_select_targets_are_judged_against_the_ping_floor_of_the_same_run():
    bench = _script("bench_select")

    def phase(cpu, p99, qps=500.0, errors=None, **extra):
        return {"server_cpu_ms": cpu, "p50_ms": p99 / 2, "p99_ms": p99, "qps_ok": qps,
                "errors": errors or {}, **extra}

    ping = phase(0.4, 2.0)
    good = {"ping": ping, "known": phase(0.6, 4.0), "first": phase(40.0, 45.0, 20.0),
            "busy": phase(0.6, 5.0, worker_p99_ms=12.0, worker_errors={})}
    line = bench.targets_line(good, 500.0, 2, 20.0)
    assert line.startswith("targets:") and "MISSED" not in line and line.count("met") == 5
    bad = {**good, "known": phase(0.9, 4.0, 480.0, {"CANCELLED": 3}),
           "busy": phase(0.6, 5.0, worker_p99_ms=60.0, worker_errors={})}
    line = bench.targets_line(bad, 500.0, 2, 20.0)
    assert "(2.25x): MISSED" in line and "(3 errors, 480 QPS answered): MISSED" in line
    assert "(60.00 ms): MISSED" in line and "(4.00 ms): met" in line
    assert "coordinator CPU per call 1.50x" in bench.ratio_line(ping, good["known"])


def test_engine_flags_spell_every_option_for_the_vllm_cli():
    fidelity = _script("bench_fidelity")
    flags = fidelity.engine_flags(
        {"enable_prefix_caching": False, "enable_chunked_prefill": True,
         "max_num_batched_tokens": 512},
        {"seed": 0, "enforce_eager": True})
    assert flags == ["--seed", "0", "--enforce-eager", "--no-enable-prefix-caching",
                     "--enable-chunked-prefill", "--max-num-batched-tokens", "512"]


def test_summary_reports_median_spread_and_cv():
    benchlib = _script("benchlib")
    s = benchlib.summarize([1.0, 2.0, 3.0])
    assert (s.n, s.median, s.lo, s.hi) == (3, 2.0, 1.0, 3.0)
    assert s.cv == pytest.approx(0.5)
    assert benchlib.summarize([]).fmt() == "n/a"


def test_worker_cpus_split_or_taken_as_given():
    campaign = _script("bench_campaign")
    assert campaign.worker_cpus(2, "0;1") == ["0", "1"]
    assert len(campaign.worker_cpus(1, "")) == 1
    with pytest.raises(SystemExit):
        campaign.worker_cpus(2, "0")


def test_repeatability_counts_cells_within_the_cv_target():
    campaign = _script("bench_campaign")
    line = campaign.repeatability_line([{"runtimes": "2.0,2.02"}, {"runtimes": "2.0,3.0"},
                                        {"runtimes": "0.5,0.5"}, {"runtimes": None}])
    assert "cells over 1 s: median" in line and "1/2 within 5%" in line
    assert "all cells: " in line and "2/3 within 5%" in line


@pytest.mark.integration
def test_overhead_campaign_runs_every_cell_and_times_the_coordinator(tmp_path):
    campaign = _script("bench_campaign")
    run = campaign.run_campaign(campaign.overhead_grid(8), campaign.QUICK_ENGINE, ["0"],
                                tmp_path, "overhead", timeout_s=300)
    assert len(run.cells) == 8
    assert {c["status"] for c in run.cells} == {"done"}
    assert run.times.count("LeaseCell") == 8
    assert run.times.count("ReportResult") == 8
    lines, per_cell_ms = campaign.overhead_lines(run)
    assert per_cell_ms > 0
    assert any("coordinator time per cell" in line for line in lines)
    text = "\n".join(campaign.campaign_lines(run, per_cell_ms))
    # 4 methods share 2 engine configurations: one worker starts each once.
    assert "engine starts: 2 " in text
    assert "starts <= groups: yes" in text


def test_fidelity_lines_up_both_engines_and_names_every_difference():
    fidelity = _script("bench_fidelity")
    farm = {"max_num_batched_tokens": 4096, "skip_tokenizer_init": True, "seed": 0,
            "process_cores": {"VLLM::Worker": "0-1"}, "core_load": [{"repetition": 0}],
            "disable_log_stats": True}
    ref = {"max_num_batched_tokens": 2048, "skip_tokenizer_init": False, "seed": 0,
           "process_cores": {"VLLM::Worker": "0-1"}}
    lines = fidelity.side_by_side(farm, ref)
    text = "\n".join(lines)
    row = next(line for line in lines if "max_num_batched_tokens" in line)
    assert "4096" in row and "2048" in row and "UNEXPLAINED" in row
    assert "differs: farm: token ids in" in text
    assert next(line for line in lines if "process_cores.VLLM::Worker" in line).endswith("=")
    # Only the engines' resolved facts are lined up: not the run records or given flags.
    assert "core_load" not in text and "disable_log_stats" not in text
    assert lines[-1].strip() == ("2 of 4 equal; 1 differ for a named reason; 1 unexplained "
                                 "(max_num_batched_tokens)")
    assert fidelity.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {
        "a.b": 1, "a.c.d": 2, "e": 3}


def test_fidelity_load_lines_show_waits_and_busy_runs():
    fidelity = _script("bench_fidelity")
    farm = [{"core_load": {"other_load_before": 0.02, "other_load_during": 0.01,
                           "waited_s": 0.0, "quiet": True}}]
    ref = [{"core_load": {"other_load_before": 0.4, "other_load_during": 0.3,
                          "waited_s": 3.0, "quiet": False}}, {"core_load": {}}]
    lines = fidelity.load_lines(farm, ref)
    assert lines[1] == "  farm: 2%/1%"
    assert lines[2] == "  vLLM: 40%/30% waited 3.0 s BUSY, n/a"
    assert fidelity.engine_flags({}, {"disable_log_stats": True}) == ["--disable-log-stats"]


def test_a_pair_is_disturbed_when_either_sides_cores_were_busy():
    fidelity = _script("bench_fidelity")

    def run(before, during, quiet=True):
        return {"core_load": {"other_load_before": before, "other_load_during": during,
                              "waited_s": 0.0, "quiet": quiet}}

    assert fidelity.disturbed(run(0.02, 0.0), run(0.1, 0.05), threshold=0.15) == ""
    assert fidelity.disturbed(run(0.02, 0.0), run(0.8, 0.05, quiet=False),
                              threshold=0.15) == "vLLM 80%/5%"
    assert fidelity.disturbed(run(0.02, 0.3), run(0.0, 0.0), threshold=0.15) == "farm 2%/30%"
    # A side without a record (an older engine host) does not count as disturbed.
    assert fidelity.disturbed({"core_load": {}}, run(0.0, 0.0), threshold=0.15) == ""


def test_bench_active_json_has_one_entry_per_table_with_its_curves(tmp_path, capsys):
    import json

    import numpy as np
    import pandas as pd

    bench = _script("bench_active")
    rng = np.random.default_rng(0)
    speed = {"none": 1.0, "cb": 0.7, "pc": 0.8, "cb+pc": 0.5}
    rows = [{"model": m, "hardware": h, "workload": w, "batch_size": 8, "method": meth,
             "runtime_s": base * speed[meth] * (0.6 if (meth == "pc") == (w == "w1") else 1.0)
             * rng.uniform(0.97, 1.03), "status": "done"}
            for m, base in (("m1", 1.0), ("m2", 2.0)) for h in ("h1", "h2")
            for w in ("w0", "w1") for meth in speed]
    path = tmp_path / "tiny.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    rc = bench.main(["--data", str(path), "--style", "onehot", "--repeats", "1",
                     "--seed-pct", "10", "--step-pct", "25", "--json", "--out",
                     str(tmp_path / "out")])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (table,) = report["tables"]
    assert table["name"] == "tiny" and table["n_cells"] == 32
    assert 0.0 <= table["full_grid_accuracy"] <= 1.0
    pct = table["active_cells_pct_to_full_accuracy"]
    assert pct is None or 0.0 < pct <= 100.0
    for order in ("active", "random", "grid"):
        curve = table["curves"][order]
        assert [p["cells"] for p in curve] == [4, 12, 20, 28, 32]
        assert curve[-1]["pct"] == 100.0
    # With every cell measured, every order trains the full-grid model.
    assert {table["curves"][o][-1]["accuracy"] for o in ("active", "random", "grid")} == {
        table["full_grid_accuracy"]}
    assert (tmp_path / "out" / "active.png").stat().st_size > 0
