"""`metainf train` / `metainf select` handlers: mapping flags, JSON output, field errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic_tables import external_frame, winner

from metainf.cli import main as cli_main


def run(argv: list[str]) -> int:
    return cli_main(argv)


MAPPING = ["--task-cols", "Model,GPU,Input Output Length,Batch Size", "--method-col",
           "Framework", "--metric-col", "Latency", "--minimize", "--hardware-col", "GPU",
           "--model-col", "Model"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    data = d / "bench.csv"
    external_frame().to_csv(data, index=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("METAINF_EMBEDDING_CACHE", str(d / "emb"))
    rc = run(["train", "--data", str(data), *MAPPING, "--out", str(d / "models"),
              "--n-estimators", "150", "--json"])
    mp.undo()
    assert rc == 0
    return d


def test_train_prints_version_and_writes_latest(trained):
    version = (trained / "models" / "LATEST").read_text(encoding="utf-8").strip()
    assert (trained / "models" / version / "manifest.json").exists()


def test_train_no_search_keeps_the_given_options(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("METAINF_EMBEDDING_CACHE", str(tmp_path / "emb"))
    data = tmp_path / "bench.csv"
    external_frame().to_csv(data, index=False)
    rc = run(["train", "--data", str(data), *MAPPING, "--out", str(tmp_path / "m"),
              "--n-estimators", "30", "--no-search"])
    version = capsys.readouterr().out.strip()
    assert rc == 0
    manifest = json.loads((tmp_path / "m" / version / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["selector_params"]["search"] is False
    assert manifest["selector_params"]["n_estimators"] == 30
    # no search: the one given point is only validated (for the ranking error)
    assert manifest["info"]["best_params"] == {"n_estimators": 30}
    assert (tmp_path / "m" / version / "xgboost-ranker.ubj").exists()


def test_train_records_the_question_its_inner_validation_asked(tmp_path, capsys,
                                                              monkeypatch):
    monkeypatch.setenv("METAINF_EMBEDDING_CACHE", str(tmp_path / "emb"))
    data = tmp_path / "bench.csv"
    external_frame().to_csv(data, index=False)
    for unseen, grouped in (("model", True), ("task", False)):
        rc = run(["train", "--data", str(data), *MAPPING, "--out", str(tmp_path / unseen),
                  "--n-estimators", "30", "--unseen", unseen, "--json"])
        summary = json.loads(capsys.readouterr().out)
        assert rc == 0 and summary["unseen"] == unseen
        manifest = json.loads((tmp_path / unseen / summary["model_version"] /
                               "manifest.json").read_text(encoding="utf-8"))
        assert manifest["config"]["unseen"] == unseen
        assert manifest["info"]["inner_folds"]["grouped"] is grouped
    with pytest.raises(SystemExit) as exit_:
        run(["train", "--data", str(data), *MAPPING, "--out", str(tmp_path / "x"),
             "--unseen", "gpu"])
    assert exit_.value.code == 2 and "--unseen" in capsys.readouterr().err


def test_select_json_for_unseen_gpu(trained, capsys):
    rc = run(["select", "--model-dir", str(trained / "models"), "--model", "Llama-2-7b",
              "--hardware-text", "NVIDIA H200 141GB HBM3e", "--hardware", "L4",
              "--workload", '{"Input Output Length": 512, "Batch Size": 16}',
              "--budget", "1.0", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert {"method", "hardware", "feasible", "model_version", "candidates"} <= set(out)
    assert len(out["candidates"]) == 6
    assert out["nearest_known_hardware"] == {"NVIDIA H200 141GB HBM3e": "H100 SXM"}
    h200 = min((c for c in out["candidates"] if c["hardware"].startswith("NVIDIA H200")),
               key=lambda c: c["predicted"])
    assert h200["method"] == winner("H100 SXM")


def test_select_human_output_is_a_table(trained, capsys):
    rc = run(["select", "--model-dir", str(trained / "models"), "--model", "Llama-2-7b",
              "--hardware", "T4", "--workload",
              '{"Input Output Length": 128, "Batch Size": 1}'])
    out = capsys.readouterr().out
    assert rc == 0 and "vllm" in out and "best by runtime" in out


@pytest.mark.parametrize("extra, needle", [
    (["--budget", "-1"], "--budget"),
    (["--budget", "nan"], "--budget"),
    (["--methods", "warp-drive"], "warp-drive"),
    (["--workload", "[1]"], "--workload"),
])
def test_select_bad_input_exits_2_naming_the_field(trained, capsys, extra, needle):
    argv = ["select", "--model-dir", str(trained / "models"), "--model", "Llama-2-7b",
            "--hardware", "T4", "--workload", '{"Input Output Length": 128, "Batch Size": 1}']
    argv += extra
    rc = run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0]


def test_select_without_model_says_how_to_train(tmp_path, capsys):
    rc = run(["select", "--model-dir", str(tmp_path), "--model", "m", "--hardware", "T4",
              "--workload", "{}"])
    assert rc == 2 and "metainf train" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["--task-cols", "Model,Nope", "--method-col", "Framework", "--metric-col", "Latency",
      "--minimize"], "Nope"),
    (["--task-cols", "Model,GPU", "--metric-col", "Latency", "--minimize"], "--method-col"),
    (["--task-cols", "Model,GPU", "--method-col", "Framework", "--metric-col", "Latency"],
     "--minimize or --maximize"),
    ([], "mapping flags"),
])
def test_train_bad_mapping_exits_2(tmp_path, capsys, argv, needle):
    data = tmp_path / "bench.csv"
    external_frame().to_csv(data, index=False)
    rc = run(["train", "--data", str(data), *argv, "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0]


def big_external_csv(path, n_target: int = 5000, seed: int = 0) -> int:
    """A ~5,000-row external benchmark CSV (throughput, higher is better)."""
    rng = np.random.default_rng(seed)
    gpus = {"T4": 0.32, "L4": 0.3, "A10G": 0.6, "L40S": 0.86, "A100 80GB": 2.0, "H100 SXM": 3.35}
    models = {"Llama-2-7b": 7, "Llama-2-13b": 13, "Mistral-7B": 7, "Qwen2.5-14B": 14,
              "Phi-2": 2.7}
    rows = []
    while len(rows) < n_target:
        for model, p in models.items():
            for gpu, bw in gpus.items():
                for length in (128, 256, 512, 1024, 2048, 4096, 8192):
                    for batch in (1, 8, 32, 64):
                        for fw in ("vllm", "tgi", "trtllm"):
                            boost = {"vllm": 1.0, "tgi": 0.8, "trtllm": 1.2 if bw > 1 else 0.7}
                            rows.append({"model_name": model, "gpu": gpu, "io_len": length,
                                         "batch": batch, "framework": fw,
                                         "tokens_per_s": bw / p * batch ** 0.7 * 1e3
                                         / np.log2(length) * boost[fw]
                                         * rng.uniform(0.9, 1.1)})
    pd.DataFrame(rows[:n_target]).to_csv(path, index=False)
    return n_target


@pytest.mark.integration
def test_train_on_5000_row_external_csv(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("METAINF_EMBEDDING_CACHE", str(tmp_path / "emb"))
    data = tmp_path / "bench5k.csv"
    assert big_external_csv(data) == 5000
    rc = run(["train", "--data", str(data), "--task-cols", "model_name,gpu,io_len,batch",
              "--method-col", "framework", "--metric-col", "tokens_per_s", "--maximize",
              "--hardware-col", "gpu", "--model-col", "model_name", "--out",
              str(tmp_path / "m"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["lower_is_better"] is False
    assert summary["n_pairs"] > 1500
    rc = run(["select", "--model-dir", str(tmp_path / "m"), "--model", "Llama-2-7b",
              "--hardware-text", "NVIDIA H200 141GB HBM3e", "--workload",
              '{"io_len": 1024, "batch": 32}', "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["nearest_known_hardware"] == {"NVIDIA H200 141GB HBM3e": "H100 SXM"}
    assert out["method"] == "trtllm" and out["lower_is_better"] is False
