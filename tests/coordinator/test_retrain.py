"""Retraining without a person: a real coordinator (gRPC on port 0, SQLite) and fake workers
reporting over gRPC train, score and promote MetaInf versions by themselves."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import numpy as np
import pytest
from farm_reports import report_for

from metainf.cli import main as cli_main
from metainf.client import channel
from metainf.coordinator.retrain import RetrainConfig, verdict
from metainf.coordinator.scheduler import SchedulerConfig
from metainf.coordinator.server import ServerConfig, create_server
from metainf.v1 import farm_pb2, farm_pb2_grpc

pytestmark = pytest.mark.timeout(600)

RETRAIN = RetrainConfig(holdout_share=0.15, poll_s=0.2,
                        train_options={"n_estimators": 40, "search": False})
"""Small trees, no search: a training on a dozen tasks takes seconds."""

METHODS = ["none", "cb", "pc"]
PREFIX = {"dataset": "synthetic-shared-prefix", "num_prompts": 4, "max_output_tokens": 4,
          "batch_size": [2, 4], "options": {"prefix_tokens": 64, "suffix_tokens": 8}}
SHAREGPT = {"dataset": "synthetic-sharegpt", "num_prompts": 4, "max_output_tokens": 8,
            "batch_size": [2, 4]}
GRID_A = {"name": "first", "models": ["llama-tiny"], "methods": METHODS,
          "workloads": [PREFIX, SHAREGPT], "repetitions": 1}
GRID_B = {"name": "second", "models": ["llama-tiny"], "methods": METHODS,
          "workloads": [{**PREFIX, "options": {"prefix_tokens": 256, "suffix_tokens": 8}}],
          "repetitions": 1}
"""Campaign A: 2 workloads x 2 batch sizes on 2 hardware classes = 8 tasks of 3 methods.
Campaign B: a third workload, 4 more tasks."""

SPEEDUP = {"synthetic-shared-prefix": {"none": 1.0, "cb": 0.8, "pc": 0.5},
           "synthetic-sharegpt": {"none": 1.0, "cb": 0.6, "pc": 1.05}}
"""What each method does to runtime, by dataset: prefix caching wins on shared prefixes,
continuous batching elsewhere."""


def true_runtime(cell: farm_pb2.CellSpec, slow: float) -> float:
    """The fake engine: a runtime set by hardware speed, workload, batch size and method."""
    workload = json.loads(cell.workload_json)
    prefix = workload.get("options", {}).get("prefix_tokens", 0)
    base = slow * (1.0 + prefix / 256) * (8.0 / cell.batch_size) ** 0.5
    return base * SPEEDUP[workload["dataset"]][cell.method]


class FakeWorker:
    """A worker over real gRPC whose engine is true_runtime (or a lie)."""

    def __init__(self, stub, name: str, cores: int, slow: float):
        self.stub, self.slow = stub, slow
        self.worker_id = stub.RegisterWorker(farm_pb2.RegisterWorkerRequest(
            name=name, hardware=farm_pb2.HardwareProfile(
                kind="cpu", cpu_model=f"Test CPU {cores}", cpu_cores=cores, ram_gb=cores * 4,
                isa_flags=["avx2"]), price_per_hour=0.1, engines=["vllm"]),
            timeout=10).worker_id

    def lease(self) -> farm_pb2.CellSpec | None:
        """The next cell of this worker's class (binding the class to open campaigns)."""
        resp = self.stub.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=self.worker_id),
                                   timeout=10)
        return resp.cell if resp.HasField("cell") else None

    def run_all(self, held: farm_pb2.CellSpec | None = None,
                corrupt: np.random.Generator | None = None) -> int:
        """Report a held cell, then lease and report until no cell is left; with
        `corrupt`, runtimes multiplied by a random factor of 5 to 20 (a broken machine)."""
        n = 0
        cell = held or self.lease()
        while cell is not None:
            runtime = true_runtime(cell, self.slow)
            if corrupt is not None:
                runtime *= corrupt.uniform(5.0, 20.0)
            resp = self.stub.ReportResult(report_for(self.worker_id, cell, runtime),
                                          timeout=10)
            assert resp.stored == 1, resp.flagged
            n += 1
            cell = self.lease()
        return n


@pytest.fixture
def farm(tmp_path):
    """A coordinator that retrains by itself, with its dashboard."""
    coord = create_server(ServerConfig(
        db=tmp_path / "farm.db", port=0, model_dir=tmp_path / "models", http_port=0,
        retrain=RETRAIN,
        scheduler=SchedulerConfig(lease_s=30.0, heartbeat_interval_s=1.0, idle_retry_s=0.2)))
    yield coord
    coord.stop(grace=0)


def _select(selector, **extra) -> farm_pb2.SelectResponse:
    return selector.Select(farm_pb2.SelectRequest(
        model="llama-tiny", hardware=[farm_pb2.HardwareOption(text="a 16-core x86 CPU")],
        workload_json=json.dumps({"dataset": "synthetic-sharegpt", "num_prompts": 4,
                                  "max_output_tokens": 8, "batch_size": 2}), **extra),
        timeout=60)


def _wait_version(selector, version: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got = _select(selector).model_version
        if got == version or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def _submit(stub, grid: dict) -> str:
    return stub.SubmitCampaign(farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(grid)),
                               timeout=30).campaign_id


def test_campaigns_retrain_promote_and_refuse_a_worse_version(farm, tmp_path, capsys):
    address = f"127.0.0.1:{farm.port}"
    stub = farm_pb2_grpc.CoordinatorStub(channel(address))
    selector = farm_pb2_grpc.SelectorStub(channel(address))
    fast = FakeWorker(stub, "fast", cores=32, slow=0.5)
    slow = FakeWorker(stub, "slow", cores=4, slow=2.0)
    with pytest.raises(grpc.RpcError) as exc:
        _select(selector)
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # nothing trained yet

    # Campaign A finishes: the coordinator trains and promotes v1, nobody asks it to.
    first = _submit(stub, GRID_A)
    held = fast.lease()  # both classes take part before the campaign can finish
    assert slow.run_all() + fast.run_all(held) == 2 * 4 * 3
    assert farm.retrainer.wait_idle(240), "retraining did not finish in 4 minutes"
    outcome = farm.retrainer.history[-1]
    assert outcome["outcome"] == "promoted", outcome
    assert outcome["trigger"] == f"campaign {first} done"
    v1 = outcome["version"]
    assert _wait_version(selector, v1) == v1
    record = outcome["record"]
    # validated with 2 of 8 tasks held out, then promoted as the same fit on all 8
    assert record["validated_on_tasks"] == 6 and record["heldout"]["n_tasks"] == 2
    assert record["rows"] == 24 and record["tasks"] == 8
    assert record["validated_version"] != v1 and record["serving_version"] is None
    manifest = json.loads((tmp_path / "models" / v1 / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["info"]["retrain"]["promoted"] is True
    assert manifest["info"]["retrain"]["trained_at"] == manifest["info"]["created_at"]
    assert (tmp_path / "models" / "LATEST").read_text(encoding="utf-8").strip() == v1

    # Campaign B: a new workload; the slow machine's rows are lies, the fast one's (the
    # newest, reported last, held out) are true. The version trained on the lies predicts
    # the new workload far off: it is kept, not promoted, and says why.
    _submit(stub, GRID_B)
    held = fast.lease()
    assert slow.run_all(corrupt=np.random.default_rng(0)) == 2 * 3
    assert fast.run_all(held) == 2 * 3
    assert farm.retrainer.wait_idle(240), "retraining did not finish in 4 minutes"
    outcome = farm.retrainer.history[-1]
    assert outcome["outcome"] == "kept", outcome
    v2 = outcome["version"]
    assert v2 != v1
    record = json.loads((tmp_path / "models" / v2 / "manifest.json").read_text(encoding="utf-8"))[
        "info"]["retrain"]
    assert record["promoted"] is False and record["serving_version"] == v1
    assert record["reason"].startswith(f"worse than the serving version {v1}")
    assert "level error" in record["reason"]
    assert record["heldout"]["level_mdape"] > record["serving_heldout"]["level_mdape"]
    assert (tmp_path / "models" / "LATEST").read_text(encoding="utf-8").strip() == v1
    assert _select(selector).model_version == v1

    # The dashboard and /metrics show the serving version and the outcomes.
    base = f"http://127.0.0.1:{farm.dashboard.port}"
    page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
    assert v1 in page and "held-out task" in page and "kept" in page
    metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    assert f'metainf_model_trained_timestamp_seconds{{version="{v1}"}}' in metrics
    assert 'metainf_retrains_total{outcome="promoted"} 1.0' in metrics
    assert 'metainf_retrains_total{outcome="kept"} 1.0' in metrics

    # model list / promote round trip: roll forward to v2 by hand, then a bad version.
    capsys.readouterr()
    assert cli_main(["model", "list", "--model-dir", str(tmp_path / "models"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in listed["versions"]] == [v1, v2]
    assert listed["serving_version"] == v1
    assert listed["versions"][1]["retrain"]["promoted"] is False
    assert cli_main(["model", "list", "--coordinator", address, "--json"]) == 0
    over_rpc = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in over_rpc["versions"]] == [v1, v2]
    assert over_rpc["versions"][1]["retrain"]["reason"] == record["reason"]
    assert cli_main(["model", "list", "--model-dir", str(tmp_path / "models")]) == 0
    table = capsys.readouterr().out
    assert v1 in table and v2 in table and "kept: worse" in table

    assert cli_main(["model", "promote", v2, "--coordinator", address]) == 0
    assert capsys.readouterr().out.strip() == v2
    assert _select(selector).model_version == v2  # at once: the answer cache was reset

    assert cli_main(["model", "promote", "0123456789ab", "--coordinator", address]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "metainf:" in line]
    assert len(err) == 1 and err[0].startswith("metainf: version: no model 0123456789ab")
    assert cli_main(["model", "promote", "../LATEST", "--coordinator", address]) == 2
    assert "version:" in capsys.readouterr().err
    assert cli_main(["model", "list", "--coordinator", address,
                     "--model-dir", str(tmp_path)]) == 2
    with pytest.raises(grpc.RpcError) as exc:
        selector.PromoteModel(farm_pb2.PromoteModelRequest(version="a/b"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "version:" in exc.value.details()
    with pytest.raises(grpc.RpcError) as exc:
        selector.PromoteModel(farm_pb2.PromoteModelRequest(version="0123456789ab"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert v1 in exc.value.details() and v2 in exc.value.details()
    assert _select(selector).model_version == v2


def test_verdict_tolerances_and_first_version():
    new = {"n_tasks": 3, "regret": 1.05, "level_mdape": 0.30, "accuracy": 0.5}
    assert verdict(new, None, None) == (True, "first version: none was serving")
    ok, why = verdict(new, {"n_tasks": 3, "regret": 1.045, "level_mdape": 0.29}, "old")
    assert ok, why  # within 0.01 regret and 0.02 level error
    ok, why = verdict(new, {"n_tasks": 3, "regret": 1.02, "level_mdape": 0.30}, "old")
    assert not ok and "regret 1.0500 > 1.0200" in why
    ok, why = verdict({**new, "n_tasks": 0}, {"n_tasks": 0, "regret": 1.0}, "old")
    assert not ok and "no held-out task" in why


def test_retrain_flags_are_checked():
    with pytest.raises(ValueError, match="--retrain-every-rows"):
        RetrainConfig(every_rows=-1).check()
    assert cli_main(["coordinator", "--db", "x.db", "--retrain-every-rows", "-3"]) == 2


def test_demo_answers_from_the_version_the_coordinator_trained(farm):
    import io

    from rich.console import Console

    from metainf.demo import select_from_retrained

    address = f"127.0.0.1:{farm.port}"
    stub = farm_pb2_grpc.CoordinatorStub(channel(address))
    fast = FakeWorker(stub, "fast", cores=32, slow=0.5)
    slow = FakeWorker(stub, "slow", cores=4, slow=2.0)
    campaign = _submit(stub, GRID_A)
    held = fast.lease()
    slow.run_all()
    fast.run_all(held)
    out, err = io.StringIO(), io.StringIO()
    assert select_from_retrained(farm, address, campaign, Console(file=out),
                                 Console(file=err, width=400), wait_s=240)
    version = farm.retrainer.history[-1]["version"]
    said = err.getvalue()
    assert f"MetaInf {version} trained by the coordinator itself" in said
    assert f"campaign {campaign} ended" in said and f"by version {version}" in said
    assert json.loads(out.getvalue())["model_version"] == version


def test_a_second_demo_starts_without_the_first_ones_farm_and_models(tmp_path):
    from metainf.demo import fresh_state

    out = tmp_path / "demo-run"
    (out / "models" / "50ef1d6b92e4").mkdir(parents=True)
    (out / "models" / "LATEST").write_text("50ef1d6b92e4")
    for name in ("farm.db", "farm.db-wal", "p.csv"):
        (out / name).write_text("earlier run")
    db, model_dir = fresh_state(out)
    assert db == out / "farm.db" and model_dir == out / "models"
    assert not db.exists() and not (out / "farm.db-wal").exists() and not model_dir.exists()
    assert (out / "p.csv").exists()  # overwritten when the demo exports P
    assert fresh_state(tmp_path / "new") == (tmp_path / "new" / "farm.db",
                                              tmp_path / "new" / "models")


def _coordinator(tmp_path, retrain: RetrainConfig):
    """A coordinator on the test's database and model folder, retraining as configured."""
    return create_server(ServerConfig(
        db=tmp_path / "farm.db", port=0, model_dir=tmp_path / "models", retrain=retrain,
        scheduler=SchedulerConfig(lease_s=30.0, heartbeat_interval_s=1.0, idle_retry_s=0.2)))


def _run_campaign_a(coord) -> None:
    """Campaign A run to its end by a fast and a slow fake worker (24 accepted rows)."""
    stub = farm_pb2_grpc.CoordinatorStub(channel(f"127.0.0.1:{coord.port}"))
    fast = FakeWorker(stub, "fast", cores=32, slow=0.5)
    slow = FakeWorker(stub, "slow", cores=4, slow=2.0)
    _submit(stub, GRID_A)
    held = fast.lease()
    slow.run_all()
    fast.run_all(held)


def test_every_n_rows_retrains_one_at_a_time_and_coalesces(tmp_path):
    config = RetrainConfig(on_campaign_done=False, every_rows=6, holdout_share=0.15,
                           poll_s=0.2, train_options={"n_estimators": 40, "search": False})
    coord = _coordinator(tmp_path, config)
    try:
        _run_campaign_a(coord)
        assert coord.retrainer.wait_idle(240)
        runs = list(coord.retrainer.history)
    finally:
        coord.stop(grace=0)
    assert runs and all("new accepted rows" in r["trigger"] for r in runs), runs
    assert runs[-1]["rows_seen"] == 24  # the rows that came during a training are not lost
    seen = [r["rows_seen"] for r in runs]
    assert seen == sorted(set(seen))  # each run saw more rows than the one before
    for before, after in zip(runs, runs[1:]):  # one at a time: started after the last ended
        assert after["at"] - after["seconds"] >= before["at"] - 0.5
    assert len(runs) < 24 // 6  # requests made while one trained were coalesced


def test_a_restarted_coordinator_trains_on_what_its_serving_version_never_saw(tmp_path):
    # a campaign ends while nothing retrains (as if the coordinator stopped before)
    coord = _coordinator(tmp_path, RetrainConfig(on_campaign_done=False, every_rows=0))
    try:
        assert coord.retrainer is None
        _run_campaign_a(coord)
    finally:
        coord.stop(grace=0)
    # started again: it catches up at once, with no campaign finishing meanwhile
    coord = _coordinator(tmp_path, RETRAIN)
    try:
        assert coord.retrainer.wait_idle(240)
        runs = list(coord.retrainer.history)
    finally:
        coord.stop(grace=0)
    assert [r["trigger"] for r in runs] == [
        "started with 24 accepted rows and no version serving"], runs
    assert runs[0]["outcome"] == "promoted"
    # and again: the serving version saw every row, so nothing trains
    coord = _coordinator(tmp_path, RETRAIN)
    try:
        time.sleep(1.0)
        assert coord.retrainer.wait_idle(60)
        assert list(coord.retrainer.history) == []
    finally:
        coord.stop(grace=0)
