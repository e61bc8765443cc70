"""Unsure -> measure on a real coordinator: a low-confidence Select queues the cells that
would settle it on a registered class, a worker (fake engine) runs them, and once the
model is retrained on them the same Select answers from the measurement."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import grpc
import pandas as pd
import pytest
from farm_models import GPU_PROFILE, farm_frame, farm_workloads, label_of, train_farm

from metainf.cli import main as cli_main
from metainf.client import channel, export_campaign
from metainf.coordinator.retrain import RetrainConfig
from metainf.coordinator.server import ServerConfig, create_server
from metainf.coordinator.unsure import UnsureConfig
from metainf.p import read_p
from metainf.v1 import farm_pb2, farm_pb2_grpc
from metainf.worker.agent import WorkerAgent, WorkerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))  # fake_engines

pytestmark = pytest.mark.integration

TIED = {"none": 1.0, "cb": 0.99, "pc": 0.985, "cb+pc": 0.98}
"""P says the methods hardly differ: every answer is unsure."""
BELOW = 0.9
SPEC = {k: v for k, v in next(iter(farm_workloads().values()))["spec"].items()
        if k in ("dataset", "num_prompts", "max_output_tokens", "seed", "options")}
QUESTION = {"model": "llama-tiny", "workload_json": json.dumps({**SPEC, "batch_size": 16})}
"""Never measured: P has batch sizes 4 and 8 only."""


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A coordinator serving MetaInf trained on P of this machine's hardware class (the
    worker agent's) and an L4 class; a worker agent with the method-sensitive fake engine."""
    tmp = tmp_path_factory.mktemp("unsure")
    # P lives outside this farm's store, so the test retrains on P plus the measurement
    # itself (what the coordinator's retrainer does with the farm's own P) rather than
    # racing the retrainer.
    coord = create_server(ServerConfig(db=tmp / "farm.db", port=0, model_dir=tmp / "models",
                                       unsure=UnsureConfig(below=BELOW),
                                       retrain=RetrainConfig(on_campaign_done=False)))
    address = f"127.0.0.1:{coord.port}"
    agent = WorkerAgent(WorkerConfig(coordinator=address, name="measurer",
                                     engine="fake_engines:MethodEngine", exit_when_idle_s=0.5))
    here = label_of(agent.profile)
    frame, meta = farm_frame({here: agent.profile, label_of(GPU_PROFILE): GPU_PROFILE}, TIED)
    train_farm(frame, meta, tmp / "models")
    ch = channel(address)
    farm_pb2_grpc.SelectorStub(ch).ReloadModel(farm_pb2.ReloadModelRequest(), timeout=120)
    yield coord, agent, here, frame, meta, tmp
    ch.close()
    agent.channel.close()
    coord.stop(grace=0)


def _select(stub, hardware: str, **kw) -> farm_pb2.SelectResponse:
    return stub.Select(farm_pb2.SelectRequest(
        **{**QUESTION, **kw}, hardware=[farm_pb2.HardwareOption(name=hardware)]), timeout=60)


def test_unsure_select_queues_cells_a_worker_runs_and_the_next_select_answers_from_them(farm,
                                                                                        capsys):
    coord, agent, here, frame, meta, tmp = farm
    address = f"127.0.0.1:{coord.port}"
    ch = channel(address)
    selector = farm_pb2_grpc.SelectorStub(ch)
    # Not registered yet: an answer, and nothing queued.
    before = _select(selector, here, measure_if_unsure=True)
    assert before.method and before.confidence < BELOW
    assert before.measure_campaign_id == "" and before.measure_note.startswith("not on the farm")
    agent.register()  # the class now has a worker

    first = _select(selector, here, measure_if_unsure=True)
    assert first.method == before.method and first.confidence < BELOW
    campaign_id = first.measure_campaign_id
    assert campaign_id and first.measure_note.startswith("queued: confidence")
    measured_methods = [c.method for c in first.candidates if c.feasible][:3]
    assert all(m in first.measure_note for m in measured_methods)
    # Asked again while pending: the same campaign, never a cached "queued".
    again = _select(selector, here, measure_if_unsure=True)
    assert again.measure_campaign_id == campaign_id
    assert again.measure_note.startswith(f"pending: campaign {campaign_id}")
    assert len(coord.store.campaigns()) == 1
    # The CLI prints the campaign id (last line of its table; a key of its JSON).
    argv = ["select", "--coordinator", address, "--model", "llama-tiny", "--hardware", here,
            "--workload", QUESTION["workload_json"], "--measure-if-unsure"]
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"measure campaign: {campaign_id}"
    assert cli_main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["measure_campaign_id"] == campaign_id and printed["method"] == first.method
    # A plain Select is untouched by it.
    plain = _select(selector, here)
    assert plain.measure_campaign_id == "" and plain.measure_note == ""
    assert plain.method == first.method

    assert agent.run() == 3  # leases the three cells, runs them, idles out
    status = farm_pb2_grpc.CoordinatorStub(ch).GetCampaignStatus(
        farm_pb2.GetCampaignStatusRequest(campaign_id=campaign_id), timeout=10)
    assert status.state == "done" and status.cells["done"] == 3
    assert list(status.hardware_classes) == [here]
    measured, _ = read_p(export_campaign(address, campaign_id, tmp / "measured.csv"))
    assert sorted(set(measured["method"])) == sorted(measured_methods)
    assert set(measured["batch_size"]) == {16} and set(measured["hardware"]) == {here}
    runtimes = measured.groupby("method")["runtime_s"].median()
    best = runtimes.idxmin()
    assert runtimes.max() / runtimes.min() > 1.4  # the fake engine tells them apart

    done = _select(selector, here, measure_if_unsure=True)
    assert done.measure_campaign_id == campaign_id
    assert done.measure_note.endswith("once the model is retrained on it")

    # Retrain on P plus the measurement (what the coordinator's retrainer does when a
    # campaign finishes), and serve it.
    retrained = train_farm(pd.concat([frame, measured], ignore_index=True), meta,
                           tmp / "models")
    selector.ReloadModel(farm_pb2.ReloadModelRequest(), timeout=120)
    after = _select(selector, here, measure_if_unsure=True)
    assert after.model_version == retrained.version != first.model_version
    assert after.method == best
    assert after.confidence > first.confidence
    assert after.measure_campaign_id == campaign_id
    assert after.measure_note == (f"measured: campaign {campaign_id} is done and model "
                                  f"{retrained.version} was trained after it")
    assert len(coord.store.campaigns()) == 1  # answered, not queued again
    ch.close()


@pytest.fixture
def secured(tmp_path, farm):
    """A coordinator with tokens, serving the same model."""
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("client-token-0123456789 client alice\n"
                      "admin-token-0123456789 admin ops\n")
    files = {}
    for role in ("client", "admin"):
        files[role] = tmp_path / f"{role}.token"
        files[role].write_text(f"{role}-token-0123456789\n")
    coord = create_server(ServerConfig(db=tmp_path / "farm.db", port=0,
                                       model_dir=farm[5] / "models", token_file=tokens,
                                       unsure=UnsureConfig(below=BELOW)))
    with channel(f"127.0.0.1:{coord.port}", str(files["admin"])) as ch:  # warm before use
        farm_pb2_grpc.SelectorStub(ch).ReloadModel(farm_pb2.ReloadModelRequest(), timeout=120)
    yield coord, files
    coord.stop(grace=0)


def test_only_roles_that_may_submit_campaigns_may_ask_to_measure(secured, farm):
    coord, files = secured
    here = farm[2]
    address = f"127.0.0.1:{coord.port}"
    client = farm_pb2_grpc.SelectorStub(channel(address, str(files["client"])))
    with pytest.raises(grpc.RpcError) as err:
        _select(client, here, measure_if_unsure=True)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "measure_if_unsure" in err.value.details() and "client" in err.value.details()
    assert _select(client, here).method  # a plain Select is the client's to ask
    admin = farm_pb2_grpc.SelectorStub(channel(address, str(files["admin"])))
    answer = _select(admin, here, measure_if_unsure=True)
    assert answer.measure_note.startswith("not on the farm")  # no worker on this farm


@pytest.mark.parametrize("kw, needle", [
    ({"model": "", "model_text": "a small llama"}, "model_text"),
    ({"workload_json": json.dumps({**SPEC})}, "batch_size"),
    ({"workload_json": json.dumps({"input_len_p50": 100, "batch_size": 16})}, "statistics"),
    ({"workload_json": json.dumps({"workload": "no-such-label", "batch_size": 16})},
     "workload"),
    ({"workload_json": "{oops"}, "workload"),
])
def test_bad_measure_requests_are_invalid_argument(farm, kw, needle):
    coord, _, here, *_ = farm
    stub = farm_pb2_grpc.SelectorStub(channel(f"127.0.0.1:{coord.port}"))
    before = len(coord.store.campaigns())
    with pytest.raises(grpc.RpcError) as err:
        _select(stub, here, measure_if_unsure=True, **kw)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    assert len(coord.store.campaigns()) == before
