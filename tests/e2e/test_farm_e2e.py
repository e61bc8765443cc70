"""End to end: real coordinator + real worker process + real vLLM engine on llama-tiny."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from metainf.client import campaign_status, export_campaign, submit_grid
from metainf.p import read_p

pytestmark = [pytest.mark.integration, pytest.mark.engine]

GRID = {
    "name": "e2e",
    "models": ["llama-tiny"],
    "methods": ["none", "cb", "pc", "cb+pc+cp"],
    "workloads": [
        {"dataset": "synthetic-shared-prefix", "num_prompts": 8, "batch_size": 4,
         "max_output_tokens": 4, "options": {"prefix_tokens": 128, "suffix_tokens": 16}},
        {"dataset": "synthetic-sharegpt", "num_prompts": 8, "batch_size": 4,
         "max_output_tokens": 16},
    ],
    "repetitions": 2,
}
FLAGS = {"none": (0, 0, 0), "cb": (1, 0, 0), "pc": (0, 1, 0), "cb+pc+cp": (1, 1, 1)}


def test_campaign_runs_on_a_real_engine(address, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(GRID))
    campaign_id = submit_grid(address, grid).campaign_id
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "metainf.cli", "worker", "--coordinator", address,
         "--name", "e2e", "--cpus", "0", "--exit-when-idle", "3"],
        stdout=subprocess.PIPE, stderr=log)
    try:
        deadline = time.time() + 600
        while campaign_status(address, campaign_id).state != "done":
            assert worker.poll() is None, (tmp_path / "worker.log").read_text(
                encoding="utf-8")[-3000:]
            assert time.time() < deadline, "campaign did not finish in 10 minutes"
            time.sleep(2)
        stdout, _ = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0
    assert stdout == b""  # engine logs never reach the worker's stdout
    frame, meta = read_p(export_campaign(address, campaign_id, tmp_path / "p.csv"))
    assert len(frame) == 4 * 2 * 2
    assert (frame["status"] == "done").all(), frame[["method", "error"]]
    assert (frame["runtime_s"] > 0).all()
    assert set(frame["engine"]) == {"vllm"} and set(frame["weights"]) == {"dummy"}
    assert frame["engine_version"].str.startswith("0.").all()
    for method, flags in FLAGS.items():
        rows = frame[frame.method == method]
        assert {tuple(r) for r in rows[["continuous_batching", "prefix_caching",
                                        "chunked_prefill"]].values} == {flags}
    cp_config = json.loads(frame.loc[frame.method == "cb+pc+cp", "engine_config"].iloc[0])
    assert cp_config["enable_chunked_prefill"] is True and cp_config["max_num_batched_tokens"] > 0
    none_config = json.loads(frame.loc[frame.method == "none", "engine_config"].iloc[0])
    assert none_config["enable_prefix_caching"] is False
    assert none_config["enable_chunked_prefill"] is False
    # none and cb share one engine: 3 engine starts for 4 methods on one worker
    started = frame.groupby("cell_id")["engine_start_s"].first()
    assert (started > 0).sum() == 3
    # core_load is the measurement's conditions, not the engine's: strip it to compare
    configs = {json.dumps({k: v for k, v in json.loads(c).items() if k != "core_load"},
                          sort_keys=True) for c in frame["engine_config"]}
    assert len(configs) == 3
    assert (frame["ttft_p50_s"] > 0).all() and (frame["throughput_tok_s"] > 0).all()
    assert set(meta["workloads"]) == set(frame["workload"])
