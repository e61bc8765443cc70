"""docs/grpcurl.md covers every RPC, and its requests run, in order, against a real coordinator."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2

from metainf.coordinator.server import ServerConfig, create_server
from metainf.v1 import farm_pb2

DOC = Path(__file__).resolve().parents[2] / "docs" / "grpcurl.md"
TOKEN = "admin-token-0123456789"
CALL = re.compile(r"\b((?:metainf\.v1\.\w+|grpc\.health\.v1\.Health)/\w+)")


def doc_calls(text: str) -> list[tuple[str, str | None]]:
    """(service/method, JSON body or None) of every grpcurl call in the doc, in order."""
    calls = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.lstrip().startswith(("grpcurl", "jq")) or not CALL.search(line):
                continue
            method = CALL.search(line).group(1)
            heredoc = re.search(r"<<'?EOF'?", line)
            if heredoc:
                end = lines.index("EOF", i)
                body = "\n".join(lines[i:end])
                i = end + 1
            elif m := re.search(r"-d '([^']*)'", line):
                body = m.group(1)
            elif m := re.search(r'-d "((?:[^"\\]|\\.)*)"', line):
                body = m.group(1).replace('\\"', '"')
            else:
                body = None  # -d @ from a pipe
            calls.append((method, body))
    return calls


def proto_rpcs() -> set[str]:
    """Every RPC of the farm's services as service/method."""
    return {f"{s.full_name}/{m.name}" for s in farm_pb2.DESCRIPTOR.services_by_name.values()
            for m in s.methods}


def test_doc_has_an_example_for_every_rpc():
    documented = {m for m, _ in doc_calls(DOC.read_text(encoding="utf-8"))}
    assert proto_rpcs() <= documented, proto_rpcs() - documented


@pytest.fixture
def secured(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{TOKEN} admin ops\n")
    coord = create_server(ServerConfig(db=tmp_path / "farm.db", port=0, token_file=tokens,
                                       model_dir=tmp_path / "models"))
    yield grpc.insecure_channel(f"127.0.0.1:{coord.port}")
    coord.stop(grace=0)


def _types(method: str):
    if method.startswith("grpc.health"):
        return health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    service, name = method.split("/")
    m = farm_pb2.DESCRIPTOR.services_by_name[service.split(".")[-1]].methods_by_name[name]
    return (getattr(farm_pb2, m.input_type.name), getattr(farm_pb2, m.output_type.name),
            m.server_streaming)


def test_doc_requests_run_in_order(secured):
    env: dict[str, str] = {}
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    outcomes: dict[str, str] = {}
    places = []
    for method, body in doc_calls(DOC.read_text(encoding="utf-8")):
        if body is None:
            continue
        for key in sorted(env, key=len, reverse=True):
            body = body.replace(f"${key}", env[key])
        types = _types(method)
        request = json_format.Parse(body, types[0]())  # field names as the doc writes them
        streaming = len(types) == 3 and types[2]
        call = (secured.unary_stream if streaming else secured.unary_unary)(
            f"/{method}", request_serializer=types[0].SerializeToString,
            response_deserializer=types[1].FromString)
        try:
            answer = call(request, metadata=metadata, timeout=30)
            answer = list(answer) if streaming else answer
            outcomes.setdefault(method, "OK")  # a method called twice keeps a failure
        except grpc.RpcError as exc:
            outcomes[method] = exc.code().name
            continue
        if method.endswith("/SubmitCampaign"):
            env["C"] = answer.campaign_id
        elif method.endswith("/RegisterWorker"):
            env["W"] = answer.worker_id
            assert answer.hardware_label == "cpu-amd-epyc-7b13-2c-69b2"  # as the doc shows
        elif method.endswith("/LeaseCell") and answer.HasField("block_timing"):
            env["T"] = answer.block_timing.timing_id  # queued by the Place before it
        elif method.endswith("/LeaseCell"):
            env.update(CELL=answer.cell.cell_id, EPOCH=str(answer.cell.epoch))
        elif method.endswith("/ReportBlockTiming"):
            assert answer.stored
        elif method.endswith("/ReportResult"):
            assert answer.stored == 1 and not answer.flagged
        elif method.endswith("/ExportResults"):
            assert answer[0].rows and answer[0].meta_json
        elif method.endswith("/Place"):
            assert answer.plan.status == answer.petals.status == "ok"
            assert answer.plan.routes[0].hops[-1].last_block == answer.blocks
            places.append(answer)
    # without a trained model the selector says how to train one; everything else works
    assert outcomes.pop("metainf.v1.Selector/ReloadModel") == "FAILED_PRECONDITION"
    assert outcomes.pop("metainf.v1.Selector/Select") == "FAILED_PRECONDITION"
    assert outcomes.pop("metainf.v1.Selector/PromoteModel") == "NOT_FOUND"
    assert set(outcomes.values()) == {"OK"}, outcomes
    # the registered worker's plan (its reported RTT, tau estimated), then the anchor's
    assert [p.model for p in places] == ["llama-tiny", "bloom-176b", "llama-tiny"]
    assert places[0].servers[0].tau_estimated and places[0].servers[0].name == "by-hand"
    # after the block timing the doc reports (tau_s 0.0004): measured, not estimated
    assert not places[2].servers[0].tau_estimated
    assert places[2].servers[0].tau_ms == pytest.approx(0.4)
    assert [(h.server, h.first_block, h.last_block) for h in places[1].plan.routes[0].hops] == [
        ("a100-2", 1, 59), ("mig-3", 60, 63), ("mig-4", 64, 70)]  # as the doc shows
    assert len(outcomes) >= 9
