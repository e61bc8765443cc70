"""Answers you can trust, over the wire: intervals, confidence, out-of-distribution axes and
risk through a real Selector server, and `select --coordinator` printing the local object."""

from __future__ import annotations

import json
import math
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from synthetic_tables import shared_embedder

from metainf.cli import main as cli_main
from metainf.selector.service import SelectorServicer
from metainf.selector.table import PerfTable
from metainf.selector.training import train
from metainf.v1 import farm_pb2, farm_pb2_grpc

REFERENCE_P = Path(__file__).resolve().parents[2] / "examples" / "reference-p" / "p.parquet"
WORKLOAD = {"dataset": "synthetic-shared-prefix", "num_prompts": 24, "max_output_tokens": 16,
            "batch_size": 8}
H200 = "NVIDIA H200 141GB HBM3e, 4.8 TB/s"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A Selector server on port 0 answering from MetaInf trained on a CPU-only P, and the
    answers it reported to its on_answer hook."""
    d = tmp_path_factory.mktemp("wire")
    model = train(PerfTable.load(REFERENCE_P), d / "models", embedder=shared_embedder())
    answers: list[dict] = []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    farm_pb2_grpc.add_SelectorServicer_to_server(
        SelectorServicer(d / "models", warm_up=False, on_answer=answers.append), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield {"stub": farm_pb2_grpc.SelectorStub(channel), "address": f"127.0.0.1:{port}",
           "model_dir": d / "models", "known": sorted(model.known["hardware"])[0],
           "answers": answers}
    channel.close()
    server.stop(0)


def ask(served, hardware: farm_pb2.HardwareOption, **fields) -> farm_pb2.SelectResponse:
    return served["stub"].Select(farm_pb2.SelectRequest(
        model="llama-tiny", hardware=[hardware], workload_json=json.dumps(WORKLOAD),
        **fields), timeout=60)


def test_an_unseen_gpu_says_out_of_distribution_on_the_wire(served):
    gpu = ask(served, farm_pb2.HardwareOption(text=H200))
    cpu = ask(served, farm_pb2.HardwareOption(name=served["known"]))
    assert gpu.out_of_distribution and list(gpu.ood_axes) == ["hardware"]
    hardware = [d for d in gpu.distances if d.axis == "hardware"][0]
    assert hardware.out_of_distribution and hardware.distance > hardware.threshold
    assert hardware.nearest.startswith("cpu-")
    assert {d.axis for d in gpu.distances} == {"workload", "model", "hardware"}
    assert "out of distribution on hardware" in gpu.message
    assert not cpu.out_of_distribution and not cpu.ood_axes
    for answer in (gpu, cpu):
        assert answer.HasField("confidence") and 0.0 <= answer.confidence <= 1.0
        for c in answer.candidates:
            assert c.HasField("interval")
            assert c.interval.low < c.predicted < c.interval.high

    def ratio(answer):
        best = answer.candidates[0]
        return best.interval.high / best.interval.low

    # symmetric in log cost: the unseen GPU's interval at least twice as wide there
    assert math.log(ratio(gpu)) >= 2 * math.log(ratio(cpu))
    latest = served["answers"][-2:]
    assert [a["out_of_distribution"] for a in latest] == [True, False]
    assert latest[0]["ood_axes"] == ["hardware"] and latest[0]["hardware"] == [H200]
    assert latest[1]["confidence"] == pytest.approx(cpu.confidence)


def test_risk_decides_whether_the_upper_end_must_fit_the_budget(served):
    option = farm_pb2.HardwareOption(name=served["known"], price_per_hour=1.0)
    best = ask(served, option).candidates[0]
    # a budget between the point cost and the cost at the upper end of the interval
    budget = best.cost * (1 + (best.interval.high / best.predicted - 1) / 2)
    upper = {c.method: c for c in ask(served, option, budget=budget).candidates}
    expected = {c.method: c for c in ask(served, option, budget=budget,
                                         risk="expected").candidates}
    assert not upper[best.method].feasible
    assert "upper end of its interval" in upper[best.method].reason
    assert expected[best.method].feasible and not expected[best.method].reason
    with pytest.raises(grpc.RpcError) as err:
        ask(served, option, risk="optimistic")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "risk" in err.value.details()


@pytest.mark.parametrize("extra", [[], ["--budget", "0.0000001", "--risk", "expected"]])
def test_select_coordinator_json_is_the_local_object(served, capsys, extra):
    question = ["--model", "llama-tiny", "--hardware-text", H200, "--hardware",
                served["known"], "--workload", json.dumps(WORKLOAD), *extra, "--json"]
    assert cli_main(["select", "--model-dir", str(served["model_dir"]), *question]) == 0
    local = json.loads(capsys.readouterr().out)
    assert cli_main(["select", "--coordinator", served["address"], *question]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote == local
    assert local["out_of_distribution"] == (local["hardware"] == H200)
    assert all(c["interval"] for c in local["candidates"])


def test_human_table_shows_intervals_confidence_and_the_ood_note(served, capsys):
    rc = cli_main(["select", "--coordinator", served["address"], "--model", "llama-tiny",
                   "--hardware-text", H200, "--workload", json.dumps(WORKLOAD)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "80 % interval" in out and " - " in out
    assert "confidence" in out and "out of distribution on hardware" in out
