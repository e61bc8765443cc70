"""Tokens with roles and TLS, through real servers and real clients."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import grpc
import pytest
from farm_reports import report_for
from grpc_health.v1 import health_pb2, health_pb2_grpc

from metainf.client import TokenFileError, channel
from metainf.coordinator.auth import METHOD_ROLES, load_tokens
from metainf.coordinator.server import ServerConfig, create_server
from metainf.v1 import farm_pb2, farm_pb2_grpc

TOKENS = {
    "admin": "admin-token-0123456789 admin ops",
    "client": "client-token-0123456789 client alice",
    "worker_a": "worker-token-aaaaaaaaaa worker acme",
    "worker_b": "worker-token-bbbbbbbbbb worker bolt",
}
GRID = {"models": ["llama-tiny"], "methods": ["none"], "repetitions": 1,
        "workloads": [{"dataset": "synthetic-shared-prefix", "num_prompts": 2, "batch_size": 2,
                       "max_output_tokens": 1}]}


@pytest.fixture
def secured(tmp_path):
    server_tokens = tmp_path / "tokens.txt"
    server_tokens.write_text("# farm tokens\n" + "\n".join(TOKENS.values()) + "\n")
    files = {}
    for name, line in TOKENS.items():
        files[name] = tmp_path / f"{name}.token"
        files[name].write_text(line.split()[0] + "\n")
    coord = create_server(ServerConfig(db=tmp_path / "farm.db", port=0,
                                       token_file=server_tokens))
    yield f"127.0.0.1:{coord.port}", files
    coord.stop(grace=0)


def stub(address, token_file=None):
    return farm_pb2_grpc.CoordinatorStub(channel(address, str(token_file) if token_file else None))


def register(s):
    return s.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name="w", hardware=farm_pb2.HardwareProfile(kind="cpu", cpu_model="x", cpu_cores=1)),
        timeout=10)


def test_without_a_token_nothing_but_health(secured):
    address, _ = secured
    with pytest.raises(grpc.RpcError) as info:
        register(stub(address))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        stub(address).ListWorkers(farm_pb2.ListWorkersRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    health = health_pb2_grpc.HealthStub(channel(address)).Check(
        health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_wrong_token_is_unauthenticated(secured, tmp_path):
    address, _ = secured
    bad = tmp_path / "bad.token"
    bad.write_text("admin-token-0123456788\n")
    with pytest.raises(grpc.RpcError) as info:
        register(stub(address, bad))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_roles_limit_what_each_caller_may_do(secured):
    address, files = secured
    request = farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(GRID))
    for role in ("client", "worker_a"):
        with pytest.raises(grpc.RpcError) as info:
            stub(address, files[role]).SubmitCampaign(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stub(address, files["admin"]).SubmitCampaign(request, timeout=30).campaign_id
    with pytest.raises(grpc.RpcError) as info:
        register(stub(address, files["client"]))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stub(address, files["client"]).ListWorkers(farm_pb2.ListWorkersRequest(),
                                                      timeout=10) is not None


def test_every_rpc_needs_a_token_with_a_role():
    # A method missing from METHOD_ROLES would be served without any token.
    rpcs = {f"/{s.full_name}/{m.name}" for s in farm_pb2.DESCRIPTOR.services_by_name.values()
            for m in s.methods}
    assert rpcs == set(METHOD_ROLES)


def test_ping_checks_any_roles_token(secured, tmp_path):
    address, files = secured
    bad = tmp_path / "bad.token"
    bad.write_text("client-token-0123456780\n")
    for role in ("worker_a", "client", "admin"):
        selector = farm_pb2_grpc.SelectorStub(channel(address, str(files[role])))
        assert selector.Ping(farm_pb2.PingRequest(), timeout=10) == farm_pb2.PingResponse()
    for token in (None, str(bad)):
        with pytest.raises(grpc.RpcError) as info:
            farm_pb2_grpc.SelectorStub(channel(address, token)).Ping(farm_pb2.PingRequest(),
                                                                     timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_place_is_for_clients_and_admins(secured):
    address, files = secured
    request = farm_pb2.PlaceRequest(
        model=farm_pb2.PlaceModel(catalog="llama-tiny"),
        servers=[farm_pb2.PlaceServer(name="s", memory_gb=1.0, tau_ms=1.0)],
        rtt=farm_pb2.PlaceRTT(regions=[farm_pb2.RegionRTT(a="coordinator", b="coordinator",
                                                          ms=5.0)]),
        load=farm_pb2.PlaceLoad(sessions=1, l_in=8, l_out=8), petals_join_orders=1)
    for role, code in (("worker_a", grpc.StatusCode.PERMISSION_DENIED),
                       (None, grpc.StatusCode.UNAUTHENTICATED)):
        with pytest.raises(grpc.RpcError) as info:
            farm_pb2_grpc.PlacementStub(channel(address, files.get(role))).Place(request,
                                                                                 timeout=30)
        assert info.value.code() == code
    for role in ("client", "admin"):
        answer = farm_pb2_grpc.PlacementStub(channel(address, str(files[role]))).Place(
            request, timeout=30)
        assert answer.plan.status == "ok" and answer.blocks == 4


def test_a_worker_cannot_act_for_another_operators_worker(secured):
    address, files = secured
    admin = stub(address, files["admin"])
    admin.SubmitCampaign(farm_pb2.SubmitCampaignRequest(grid_json=json.dumps(GRID)), timeout=30)
    a, b = stub(address, files["worker_a"]), stub(address, files["worker_b"])
    wid = register(a).worker_id
    cell = a.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=wid), timeout=10).cell
    report = report_for(wid, cell)
    with pytest.raises(grpc.RpcError) as info:
        b.ReportResult(report, timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as info:
        b.LeaseCell(farm_pb2.LeaseCellRequest(worker_id=wid), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert a.ReportResult(report, timeout=10).stored == 1


def test_a_refused_worker_exits_with_one_line(secured):
    address, _ = secured
    proc = subprocess.run(
        [sys.executable, "-m", "metainf.cli", "worker", "--coordinator", address],
        capture_output=True, text=True, timeout=120, env={"PATH": "", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("UNAUTHENTICATED")


@pytest.mark.parametrize("content, text", [
    ("short admin ops", "too short"),
    ("abcdefghijklmnopqrst boss ops", "ROLE"),
    ("# nothing\n", "no tokens"),
])
def test_bad_token_files(tmp_path, content, text):
    path = tmp_path / "t"
    path.write_text(content)
    with pytest.raises(TokenFileError, match=text):
        load_tokens(path)


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls(tmp_path):
    cert, key = _self_signed(tmp_path)
    coord = create_server(ServerConfig(db=tmp_path / "farm.db", host="localhost", port=0,
                                       tls_cert=cert, tls_key=key))
    try:
        address = f"localhost:{coord.port}"
        ok = farm_pb2_grpc.CoordinatorStub(channel(address, tls_ca=str(cert)))
        assert ok.ListWorkers(farm_pb2.ListWorkersRequest(), timeout=10).workers == []
        plain = farm_pb2_grpc.CoordinatorStub(channel(address))
        with pytest.raises(grpc.RpcError) as info:
            plain.ListWorkers(farm_pb2.ListWorkersRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        coord.stop(grace=0)


def test_promoting_a_model_is_for_admins_listing_for_clients(secured):
    address, files = secured  # a coordinator without --model-dir

    def call(role: str, rpc: str, request) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as info:
            getattr(farm_pb2_grpc.SelectorStub(channel(address, str(files[role]))), rpc)(
                request, timeout=10)
        return info.value.code()

    promote = farm_pb2.PromoteModelRequest(version="0123456789ab")
    assert call("worker_a", "PromoteModel", promote) == grpc.StatusCode.PERMISSION_DENIED
    assert call("client", "PromoteModel", promote) == grpc.StatusCode.PERMISSION_DENIED
    # past the token check, the missing model directory answers
    assert call("admin", "PromoteModel", promote) == grpc.StatusCode.FAILED_PRECONDITION
    listing = farm_pb2.ListModelsRequest()
    assert call("worker_a", "ListModels", listing) == grpc.StatusCode.PERMISSION_DENIED
    assert call("client", "ListModels", listing) == grpc.StatusCode.FAILED_PRECONDITION
