"""The evaluation harness end to end: runner (serial and Ray), report files and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metainf.cli import main as cli_main
from metainf.selector.base import TaskMethodSelector
from metainf.selector.baselines.registry import SELECTORS, selector_names
from metainf.selector.evaluation.fold_data import FeatureConfig
from metainf.selector.evaluation.report import CSV_COLUMNS, write_report
from metainf.selector.evaluation.runner import (
    EvaluationConfig,
    Job,
    ProtocolSpec,
    heaviest_first,
    run_evaluation,
)
from metainf.selector.table import PerfTable, TableMapping

MAPPING = TableMapping(("model", "hardware", "workload", "batch_size"), "method", "runtime_s",
                       True, "hardware", "model")
WORKLOADS = {  # workload -> the method that wins on it
    "sharegpt chat with varied output lengths": "cb",
    "shared system prompt of 1024 tokens": "pc",
    "shared prompt and varied outputs": "cb+pc",
    "short fixed prompts and outputs": "none",
}
WORKLOADS_FIRST = next(iter(WORKLOADS))
METHODS = ("none", "cb", "pc", "cb+pc")


def small_frame(seed: int = 0, hardware=("T4 16GB", "A100 80GB", "L4 24GB"),
                models=("Llama-3.1-8B", "Qwen2.5-7B")) -> pd.DataFrame:
    """3 hardware x 2 models x 4 workloads x 2 batch sizes x 4 methods, winner by workload."""
    rng = np.random.default_rng(seed)
    rows = []
    for h, hw in enumerate(hardware):
        for m, model in enumerate(models):
            for workload, win in WORKLOADS.items():
                for batch in (8, 32):
                    base = (1 + h) * (1 + m) * (1 + batch / 32)
                    for method in METHODS:
                        factor = 1.0 if method == win else 1.3 + 0.1 * METHODS.index(method)
                        rows.append({"model": model, "hardware": hw, "workload": workload,
                                     "batch_size": batch, "method": method,
                                     "runtime_s": base * factor * rng.uniform(0.98, 1.02),
                                     "status": "done"})
    return pd.DataFrame(rows)


def small_table(seed: int = 0) -> PerfTable:
    """small_frame as a PerfTable."""
    return PerfTable.from_frame(small_frame(seed), MAPPING)


def _config(**kw) -> EvaluationConfig:
    base = {"protocols": (ProtocolSpec("loho"),), "features": FeatureConfig("onehot", 4),
            "serial": True, "progress": False}
    base.update(kw)
    return EvaluationConfig(**base)


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in ("predict_ms", "fit_s") if c in df.columns])


def test_every_selector_has_finite_metrics_and_global_best_closes_no_gap():
    result = run_evaluation(small_table(), _config())
    m = result.metrics
    assert list(dict.fromkeys(m["selector"])) == selector_names() + ["oracle"]
    assert (m["error"] == "").all(), m.loc[m["error"] != "", ["selector", "error"]]
    assert len(m) == 3 * (len(selector_names()) + 1)  # 3 hardware folds
    for col in ("accuracy", "f1_macro", "accel_ratio", "mean_rank", "regret", "predict_ms"):
        assert np.isfinite(m[col]).all(), col
    gb = m[m["selector"] == "global_best"]["closed_gap"]
    assert ((gb == 0.0) | gb.isna()).all()
    oracle = m[m["selector"] == "oracle"]
    assert (oracle["accuracy"] == 1.0).all()
    assert (oracle["accel_ratio"].to_numpy() >= m.groupby("fold")["accel_ratio"].max()
            .reindex(oracle["fold"]).to_numpy() - 1e-12).all()
    # the winner depends only on the workload, which every fold has seen
    assert m[m["selector"] == "argosmart"]["accuracy"].min() == 1.0


def test_ray_and_serial_runs_agree(ray_session):
    table = small_table()
    cfg = {"selectors": ("metainf", "global_best", "isac", "alors", "lightgbm", "mlp"),
           "protocols": (ProtocolSpec("loho"), ProtocolSpec("random")), "n_test": 30,
           "n_splits": 3,
           "ablation": (FeatureConfig("onehot", 4), FeatureConfig("onehot", 8))}
    serial = run_evaluation(table, _config(**cfg))
    ray_run = run_evaluation(table, _config(serial=False, **cfg))
    assert (ray_run.metrics["error"] == "").all()
    pd.testing.assert_frame_equal(_numeric(serial.outcomes), _numeric(ray_run.outcomes))
    pd.testing.assert_frame_equal(_numeric(serial.metrics), _numeric(ray_run.metrics))
    pd.testing.assert_frame_equal(_numeric(serial.ablation), _numeric(ray_run.ablation))
    assert ray_session.is_initialized()  # the runner leaves a Ray it did not start running


def test_the_heaviest_jobs_start_first_and_keep_their_places_in_the_results():
    feats = FeatureConfig("rich", 16)
    jobs = [Job(name, "loho", fold, feats) for fold in ("a", "b", "c")
            for name in ("global_best", "metainf", "ridge")]
    order = heaviest_first(jobs)
    assert [i for i, _ in order] == [1, 4, 7, 0, 2, 3, 5, 6, 8]
    assert all(jobs[i] is job for i, job in order)


class BrokenSelector(TaskMethodSelector):
    """A fake selector whose fit always fails."""

    def fit(self, X, C, M=None):
        """Fail the way a real estimator might."""
        raise ValueError("cannot fit on this fold")


def test_a_failing_selector_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setitem(SELECTORS, "broken", f"{__name__}:BrokenSelector")
    result = run_evaluation(small_table(), _config(selectors=("global_best", "broken")))
    m = result.metrics
    broken = m[m["selector"] == "broken"]
    assert len(broken) == 3
    assert (broken["error"] == "ValueError: cannot fit on this fold").all()
    assert (m[m["selector"] == "global_best"]["error"] == "").all()
    summary = write_report(result, tmp_path)["summary"].read_text(encoding="utf-8")
    assert "broken failed on fold hardware=A100 80GB: ValueError" in summary


def test_report_files(tmp_path):
    result = run_evaluation(small_table(), _config(
        selectors=("metainf", "global_best", "argosmart"),
        protocols=(ProtocolSpec("loho"), ProtocolSpec("holdout", "model")),
        ablation=(FeatureConfig("onehot", 4), FeatureConfig("onehot", 8))))
    paths = write_report(result, tmp_path)
    metrics = pd.read_csv(paths["metrics"])
    assert tuple(metrics.columns[:11]) == CSV_COLUMNS[:11]
    assert set(metrics["protocol"]) == {"loho", "holdout:model"}
    assert "oracle" in set(metrics["selector"])
    ablation = pd.read_csv(paths["ablation"])
    assert set(ablation["svd_k"]) == {4, 8} and set(ablation["style"]) == {"onehot"}
    summary = paths["summary"].read_text(encoding="utf-8")
    assert "## Protocol `loho`" in summary and "| oracle |" in summary and "**" in summary
    import matplotlib.image

    for key in ("mean_rank_plot", "accuracy_time_plot", "ablation_plot"):
        img = matplotlib.image.imread(paths[key])
        assert img.shape[0] > 100 and img.shape[1] > 100


def _evaluate(argv):
    return cli_main(["evaluate", *argv])


MAPPING_FLAGS = ["--task-cols", "model,hardware,workload,batch_size", "--method-col", "method",
                 "--metric-col", "runtime_s", "--minimize", "--hardware-col", "hardware",
                 "--model-col", "model"]


def test_cli_on_an_external_csv_with_rich_descriptions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAINF_EMBEDDING_CACHE", str(tmp_path / "emb"))
    data = tmp_path / "bench.csv"
    small_frame().drop(columns="status").to_csv(data, index=False)
    out = tmp_path / "out"
    assert _evaluate(["--data", str(data), *MAPPING_FLAGS, "--out", str(out), "--protocol", "loho",
                   "--selectors", "metainf,global_best,alors", "--styles", "onehot,rich",
                   "--svd-k", "4", "--serial", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "summary.md")
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["selector"]) == {"metainf", "global_best", "alors", "oracle"}
    assert np.isfinite(metrics["accuracy"]).all()
    ablation = pd.read_csv(out / "ablation.csv")
    assert set(ablation["style"]) == {"onehot", "rich"}
    for name in ("summary.md", "mean_rank.png", "accuracy_vs_time.png", "ablation.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize("extra, field", [
    (["--selectors", "metainf,bogus"], "--selectors"),
    (["--protocol", "lolo"], "--protocol"),
    (["--holdout-col", "colour"], "--holdout-col"),
    (["--styles", "poetry"], "--styles"),
    (["--svd-k", "0"], "--svd-k"),
])
def test_cli_bad_input_exits_2_naming_the_field(tmp_path, capsys, extra, field):
    data = tmp_path / "bench.csv"
    small_frame().to_csv(data, index=False)
    assert _evaluate(["--data", str(data), *MAPPING_FLAGS, "--out", str(tmp_path / "o"),
                   "--serial", "--no-progress", "--styles", "onehot", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0], err


def test_cli_mapping_errors(tmp_path, capsys):
    data = tmp_path / "bench.csv"
    small_frame().rename(columns={"method": "framework"}).to_csv(data, index=False)
    assert _evaluate(["--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "--data" in capsys.readouterr().err
    assert _evaluate(["--data", str(data), "--task-cols", "model", "--method-col", "framework",
                   "--metric-col", "runtime_s", "--out", str(tmp_path / "o")]) == 2
    assert "--metric-col" in capsys.readouterr().err
    assert _evaluate(["--out", str(tmp_path / "o")]) == 2
    assert "--data/--campaign" in capsys.readouterr().err


def test_cli_on_a_farm_p_export_counts_single_candidate_tasks(tmp_path, capsys):
    df = small_frame()
    df["campaign_id"] = "c1"
    df["repetition"] = 0
    # every method but 'none' failed on one task: it has a single candidate left
    lone = ((df["hardware"] == "T4 16GB") & (df["workload"] == WORKLOADS_FIRST)
            & (df["model"] == "Llama-3.1-8B") & (df["batch_size"] == 8))
    df.loc[lone & (df["method"] != "none"), "status"] = "failed"
    df.loc[df["status"] == "failed", "runtime_s"] = np.nan
    repeat = df.assign(repetition=1, runtime_s=df["runtime_s"] * 1.01)
    data = tmp_path / "p.parquet"
    pd.concat([df, repeat], ignore_index=True).to_parquet(data, index=False)
    out = tmp_path / "out"
    assert _evaluate(["--data", str(data), "--out", str(out), "--protocol", "loho",
                   "--styles", "onehot", "--serial", "--no-progress"]) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    t4 = metrics[metrics["fold"] == "hardware=T4 16GB"]
    assert (t4["n_single"] == 1).all() and (t4["n_tasks"] == 15).all()
    assert set(metrics["selector"]) == set(selector_names()) | {"oracle"}
    assert "1 single-candidate task(s) left out" in (out / "summary.md").read_text(encoding="utf-8")


def test_cli_campaign_without_results_names_the_campaign(address, tmp_path, capsys):
    from metainf.client import submit_grid

    grid = tmp_path / "grid.json"
    grid.write_text('{"models": ["llama-tiny"], "methods": ["none", "pc"], "workloads": '
                    '[{"dataset": "synthetic-sharegpt", "num_prompts": 4, "batch_size": 2}]}')
    campaign_id = submit_grid(address, grid).campaign_id
    assert _evaluate(["--campaign", campaign_id, "--coordinator", address,
                   "--out", str(tmp_path / "o"), "--serial", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metainf: --campaign:"), err
    assert _evaluate(["--campaign", campaign_id, "--out", str(tmp_path / "o")]) == 2
    assert "--coordinator" in capsys.readouterr().err


def _pooled(**columns) -> pd.DataFrame:
    """A pooled frame of one protocol: every metric column NaN except those given."""
    from metainf.selector.evaluation.metrics import METRIC_COLUMNS

    names = ["metainf", "ridge", "mlp"]
    frame = pd.DataFrame({"selector": names, "protocol": "loho", "n_tasks": 10})
    for m in METRIC_COLUMNS:
        frame[m] = columns.get(m, [np.nan] * len(names))
    return frame


def test_coverage_is_won_by_the_interval_nearest_its_nominal_level():
    from metainf.selector.evaluation.report import markdown_table, winners

    pooled = _pooled(coverage_80=[0.99, 0.78, 0.60], regret=[1.1, 1.2, 1.3])
    won = winners(pooled)
    assert won["coverage_80"] == "ridge"  # 0.99 is too wide, not better
    assert won["regret"] == "metainf"
    row = [line for line in markdown_table(pooled).splitlines() if line.startswith("| ridge")]
    assert "**0.780**" in row[0]


def test_the_digest_keeps_columns_apart_when_a_figure_explodes():
    from metainf.selector.evaluation.report import DIGEST_COLUMNS, digest

    pooled = _pooled(level_mdape=[0.2, 9.1e71, np.nan], accuracy=[0.5, 0.25, 0.125])
    folds = pd.DataFrame(columns=["protocol", "selector", "fold", "n_tasks", "regret",
                                  "accuracy"])
    lines = digest(pooled, folds).splitlines()
    ridge = next(line for line in lines if line.strip().startswith("ridge"))
    cells = ridge.split()[1:]
    assert len(cells) == len(DIGEST_COLUMNS)  # one figure per column, none run together
    assert cells[DIGEST_COLUMNS.index("level_mdape")] == "9.1e+71"
    mlp = next(line for line in lines if line.strip().startswith("mlp")).split()[1:]
    assert mlp[DIGEST_COLUMNS.index("level_mdape")] == "n/a"


def test_the_digest_names_the_selectors_whose_picks_were_ties():
    from metainf.selector.evaluation.report import digest

    folds = pd.DataFrame(columns=["protocol", "selector", "fold", "n_tasks", "regret",
                                  "accuracy"])
    pooled = _pooled(accuracy=[0.5, 0.3, 0.2]).assign(n_tied=[0, 10, 3])
    last = digest(pooled, folds).splitlines()[-1]
    assert last == ("  tied picks (scored as the mean over the tied methods): ridge 10 of 10, "
                    "mlp 3 of 10")
    untied = digest(pooled.assign(n_tied=0), folds)
    assert "tied picks" not in untied
