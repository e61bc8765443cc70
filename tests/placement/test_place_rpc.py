"""The Place RPC on a real coordinator: registered workers, inline servers, errors, the CLI."""

from __future__ import annotations

import json

import grpc
import pytest
import yaml
from placement_fleets import ANCHOR

from metainf.cli import main
from metainf.client import channel
from metainf.placement.cli_entry import place
from metainf.placement.fleet import load_fleet
from metainf.placement.service import response_to_result
from metainf.v1 import farm_pb2, farm_pb2_grpc

GIB_IN_GB = 1024**3 / 1e9
WORKERS = [("a100-near", "NVIDIA A100-SXM4-80GB", 80.0, 0.004),
           ("a100-far", "NVIDIA A100-SXM4-80GB", 80.0, 0.120),
           ("l4", "NVIDIA L4", 24.0, 0.010)]
LOAD = farm_pb2.PlaceLoad(sessions=4, l_in=128, l_out=128)


@pytest.fixture
def stubs(address):
    ch = channel(address)
    yield farm_pb2_grpc.CoordinatorStub(ch), farm_pb2_grpc.PlacementStub(ch)
    ch.close()


def register(coordinator, name, accelerator, memory_gib, rtt_s=None):
    """Register a GPU worker and send one heartbeat carrying its RTT."""
    worker_id = coordinator.RegisterWorker(farm_pb2.RegisterWorkerRequest(
        name=name, hardware=farm_pb2.HardwareProfile(
            kind="gpu", accelerator=accelerator, accelerator_count=1,
            accelerator_memory_gb=memory_gib)), timeout=10).worker_id
    if rtt_s is not None:
        coordinator.Heartbeat(farm_pb2.HeartbeatRequest(worker_id=worker_id, rtt_s=rtt_s),
                              timeout=10)
    return worker_id


@pytest.fixture
def farm(stubs):
    coordinator, placement = stubs
    ids = {name: register(coordinator, name, acc, mem, rtt) for name, acc, mem, rtt in WORKERS}
    return coordinator, placement, ids


def per_token(route, servers, rtt, l_out):
    """The performance model by hand: prefill once, then l_out - 1 decode steps."""
    def step(tau_key):
        return sum(rtt[h["server"]] + (h["last_block"] - h["first_block"] + 1)
                   * servers[h["server"]][tau_key] / 1e3 for h in route["hops"])
    return (step("tau_prefill_ms") + (l_out - 1) * step("tau_ms")) / l_out


def test_place_over_registered_workers_uses_their_memory_rtt_and_estimated_tau(
        farm, coordinator):
    stub, placement, ids = farm
    assert {w.name: w.rtt_s for w in stub.ListWorkers(
        farm_pb2.ListWorkersRequest(), timeout=10).workers} == {n: r for n, *_, r in WORKERS}
    resp = placement.Place(farm_pb2.PlaceRequest(
        model=farm_pb2.PlaceModel(catalog="llama-3.1-70b"), load=LOAD, petals_join_orders=10),
        timeout=60)
    result = response_to_result(resp)
    servers = {s["name"]: s for s in result["servers"]}
    assert {n: s["worker_id"] for n, s in servers.items()} == ids
    assert servers["l4"]["memory_gb"] == pytest.approx(24 * GIB_IN_GB)
    assert all(s["tau_estimated"] for s in servers.values())
    # the same block reads at each device's bandwidth: the L4 (0.3 TB/s) slower than an A100
    assert servers["l4"]["tau_ms"] > 5 * servers["a100-near"]["tau_ms"]
    assert any("tau estimated" in n for n in result["notes"])
    rtt = {n: r for n, *_, r in WORKERS}
    for entry in (result["plan"], result["petals"]):
        assert entry["status"] == "ok"
        route = entry["routes"][0]
        assert route["hops"][0]["first_block"] == 1 and route["hops"][-1]["last_block"] == 80
        assert route["predicted_s_per_token"] == pytest.approx(
            per_token(route, servers, rtt, LOAD.l_out))
    assert result["petals"]["join_orders"] == 10
    stored = coordinator.store.latest_plan()
    assert stored["model"] == "llama-3.1-70b" and stored["plan"]["algorithm"] == "greedy"


def test_named_workers_only_and_unknown_names_refused(farm):
    _, placement, ids = farm
    resp = placement.Place(farm_pb2.PlaceRequest(
        model=farm_pb2.PlaceModel(catalog="llama-3.1-8b"), load=LOAD,
        workers=["l4", ids["a100-far"]], petals_join_orders=2), timeout=60)
    assert [s.name for s in resp.servers] == ["l4", "a100-far"]
    with pytest.raises(grpc.RpcError) as info:
        placement.Place(farm_pb2.PlaceRequest(
            model=farm_pb2.PlaceModel(catalog="llama-3.1-8b"), load=LOAD,
            workers=["l4", "h100"]), timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("workers.1: unknown worker 'h100'")


def test_a_worker_without_an_rtt_needs_one_given(stubs):
    coordinator, placement = stubs
    register(coordinator, "quiet", "NVIDIA A100-SXM4-80GB", 80.0)
    request = farm_pb2.PlaceRequest(model=farm_pb2.PlaceModel(catalog="llama-3.1-8b"),
                                    load=LOAD, petals_join_orders=2)
    with pytest.raises(grpc.RpcError) as info:
        placement.Place(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("workers.quiet: no RTT reported yet")
    request.rtt.client_server_ms.add(ms=[30.0])
    resp = placement.Place(request, timeout=60)
    assert resp.plan.routes[0].predicted_s_per_token > 0.030


def anchor_request(join_orders: int) -> farm_pb2.PlaceRequest:
    """The anchor fleet file as a PlaceRequest of inline servers (the same fields)."""
    spec = yaml.safe_load(ANCHOR.read_text(encoding="utf-8"))
    regions = [farm_pb2.RegionRTT(a=e["a"], b=e["b"], ms=e["ms"][0], ms_max=e["ms"][1])
               for e in spec["rtt"]["regions"]]
    model = {k: float(v) for k, v in spec["model"].items() if k != "catalog"}  # YAML: "2.466e9"
    return farm_pb2.PlaceRequest(
        model=farm_pb2.PlaceModel(catalog=spec["model"]["catalog"], **model),
        servers=[farm_pb2.PlaceServer(**s) for s in spec["servers"]],
        clients=[farm_pb2.PlaceClient(**c) for c in spec["clients"]],
        rtt=farm_pb2.PlaceRTT(client_server_extra_ms=spec["rtt"]["client_server_extra_ms"],
                              regions=regions),
        load=farm_pb2.PlaceLoad(**{k: spec["load"][k] for k in ("sessions", "l_in", "l_out",
                                                                "arrival_rate")}),
        seed=spec["seed"], petals_join_orders=join_orders)


def test_inline_servers_plan_as_the_same_fleet_file_does(farm):
    _, placement, _ = farm  # registered workers are left out when servers are inline
    remote = response_to_result(placement.Place(anchor_request(5), timeout=60))
    local = place(load_fleet(ANCHOR), "greedy", join_orders=5)
    assert [s["name"] for s in remote["servers"]] == [s["name"] for s in local["servers"]]
    for key in ("plan", "petals"):
        assert remote[key]["ranges"] == local[key]["ranges"]
        assert [r["hops"] for r in remote[key]["routes"]] == [
            r["hops"] for r in local[key]["routes"]]
        assert remote[key]["predicted_s_per_token"] == pytest.approx(
            local[key]["predicted_s_per_token"])


def test_metainf_place_coordinator_calls_place(farm, address, capsys):
    code = main(["place", "--coordinator", address, "--model", "llama-3.1-70b", "--sessions",
                 "4", "--l-in", "128", "--l-out", "128", "--join-orders", "3", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    result = json.loads(out)
    assert result["blocks"] == 80 and result["petals"]["join_orders"] == 3
    assert {s["name"] for s in result["servers"]} == {n for n, *_ in WORKERS}
    code = main(["place", "--coordinator", address, "--model", "llama-3.1-70b",
                 "--workers", "l4"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip().startswith("INVALID_ARGUMENT: servers.memory_gb: the fleet's memory")


def test_the_store_keeps_the_newest_plans(coordinator):
    store = coordinator.store
    assert store.latest_plan() is None
    for k in range(store.PLANS_KEPT + 5):
        store.save_plan({"model": f"m{k}", "plan": {"algorithm": "greedy"}, "created_at": k})
    assert store.latest_plan()["model"] == f"m{store.PLANS_KEPT + 4}"
    assert store.query("SELECT COUNT(*) AS n FROM plans")[0]["n"] == store.PLANS_KEPT
