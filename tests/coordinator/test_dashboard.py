"""The HTTP dashboard and /metrics against a real coordinator fed through real gRPC stubs."""

from __future__ import annotations

import html
import urllib.error
import urllib.request

import pytest
from dashboard_farm import WORKER_NAME, fetch, start_farm
from prometheus_client.parser import text_string_to_metric_families

from metainf.coordinator.auth import load_tokens
from metainf.coordinator.server import ServerConfig, create_server

TOKEN = "dashboard-token-0123456789"


@pytest.fixture
def farm(coordinator):
    farm = start_farm(coordinator)
    yield farm
    farm.dashboard.stop()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_page_shows_worker_and_campaign_progress(farm):
    status, body, headers = fetch(farm.url("/"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert '<meta http-equiv="refresh" content="5">' in body
    assert html.escape(WORKER_NAME) in body and WORKER_NAME not in body  # escaped
    assert "alive" in body and "cpu-" in body  # state and hardware label
    assert farm.campaign_id in body
    assert '<span class="progress">1/2</span>' in body
    assert "running" in body
    assert "width:50.0%" in body


def test_page_shows_failures_escaped(coordinator, farm):
    cell = coordinator.store.query("SELECT cell_id FROM cells WHERE status='pending'")[0]
    with coordinator.store.transaction() as tx:
        tx.execute("UPDATE cells SET status='failed', error=? WHERE cell_id=?",
                   ("CUDA <oom> & friends", cell["cell_id"]))
    _, body, _ = fetch(farm.url("/"))
    assert "CUDA &lt;oom&gt; &amp; friends" in body
    assert cell["cell_id"] in body


def test_metrics_parse_and_count_the_store(farm):
    farm.metrics.observe_select(0.002)
    farm.metrics.rejected("implausible")
    status, body, headers = fetch(farm.url("/metrics"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    got = samples(body)
    assert got[("metainf_cells", (("state", "done"),))] == 1
    assert got[("metainf_cells", (("state", "pending"),))] == 1
    assert got[("metainf_workers", (("state", "alive"),))] == 1
    assert got[("metainf_workers", (("state", "lost"),))] == 0
    assert got[("metainf_select_latency_seconds_count", ())] == 1
    assert got[("metainf_select_latency_seconds_bucket", (("le", "0.0025"),))] == 1
    assert got[("metainf_select_latency_seconds_bucket", (("le", "0.001"),))] == 0
    assert got[("metainf_result_rejections_total", (("reason", "implausible"),))] == 1
    assert got[("metainf_lease_expiries_total", ())] == 0


def test_health_not_found_and_read_only(farm):
    assert fetch(farm.url("/healthz"))[0] == 200
    assert fetch(farm.url("/nope"))[0] == 404
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(farm.url("/"), data=b"x", method="POST"),
                               timeout=10)
    assert info.value.code == 405


def test_token_required_when_the_farm_has_tokens(tmp_path):
    token_file = tmp_path / "tokens.txt"
    token_file.write_text(f"{TOKEN} admin ops\nclient-token-0123456789 client alice\n")
    client_token = tmp_path / "client.token"
    client_token.write_text(f"{TOKEN}\n")
    config = ServerConfig(db=tmp_path / "farm.db", port=0, token_file=token_file)
    coord = create_server(config)
    farm = start_farm(coord, tokens=load_tokens(token_file), token_file=str(client_token))
    try:
        assert fetch(farm.url("/"))[0] == 401
        assert fetch(farm.url("/metrics"))[0] == 401
        assert fetch(farm.url("/"), {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
        assert fetch(farm.url("/?token=nope"))[0] == 401
        status, body, _ = fetch(farm.url("/"), {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and farm.campaign_id in body
        # any role may read: the client token works too, also as a query parameter
        assert fetch(farm.url("/?token=client-token-0123456789"))[0] == 200
        assert fetch(farm.url(f"/metrics?token={TOKEN}"))[0] == 200
        assert fetch(farm.url("/healthz"))[0] == 200  # health never needs a token
    finally:
        farm.dashboard.stop()
        coord.stop(grace=0)


def test_two_dashboards_side_by_side(coordinator):
    first = start_farm(coordinator)
    second = start_farm(coordinator)  # own registries: no duplicate-metric error
    try:
        assert first.dashboard.port != second.dashboard.port
        for farm in (first, second):
            got = samples(fetch(farm.url("/metrics"))[1])
            assert got[("metainf_workers", (("state", "alive"),))] == 2
    finally:
        first.dashboard.stop()
        second.dashboard.stop()


def test_page_shows_the_latest_placement_plan_escaped(coordinator, farm):
    from metainf.client import channel
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    _, body, _ = fetch(farm.url("/"))
    assert "No plan yet" in body
    request = farm_pb2.PlaceRequest(
        model=farm_pb2.PlaceModel(catalog="llama-tiny"),
        servers=[farm_pb2.PlaceServer(name="gpu<a>", memory_gb=1.0, tau_ms=2.0),
                 farm_pb2.PlaceServer(name="gpu-b", memory_gb=1.0, tau_ms=1.0)],
        rtt=farm_pb2.PlaceRTT(regions=[farm_pb2.RegionRTT(a="coordinator", b="coordinator",
                                                          ms=5.0)]),
        load=farm_pb2.PlaceLoad(sessions=1, l_in=8, l_out=8), petals_join_orders=3)
    with channel(f"127.0.0.1:{coordinator.port}") as ch:
        answer = farm_pb2_grpc.PlacementStub(ch).Place(request, timeout=30)
    _, body, _ = fetch(farm.url("/"))
    assert "No plan yet" not in body and 'id="plan-servers"' in body
    assert "gpu&lt;a&gt;" in body and "gpu<a>" not in body
    assert f"greedy: {answer.plan.predicted_s_per_token:.4f} s/token predicted" in body
    assert "petals (median of 3 join orders)" in body
    hop = answer.plan.routes[0].hops[0]
    assert f"[{hop.first_block}-{hop.last_block}]" in body


def test_page_lists_the_latest_select_answers_with_trust(tmp_path):
    from pathlib import Path

    from metainf.client import channel
    from metainf.selector.embeddings import Embedder
    from metainf.selector.table import PerfTable
    from metainf.selector.training import train
    from metainf.v1 import farm_pb2, farm_pb2_grpc

    reference = Path(__file__).resolve().parents[2] / "examples" / "reference-p" / "p.parquet"
    model = train(PerfTable.load(reference), tmp_path / "models", style="basic", svd_k=4,
                  embedder=Embedder(cache_dir=tmp_path / "emb"), n_estimators=20,
                  search=False)
    coord = create_server(ServerConfig(db=tmp_path / "farm.db", port=0, http_port=0,
                                       model_dir=tmp_path / "models"))
    url = f"http://127.0.0.1:{coord.dashboard.port}/"
    try:
        assert "No Select answered yet." in fetch(url)[1]
        workload = ('{"dataset": "synthetic-shared-prefix", "num_prompts": 24, '
                    '"max_output_tokens": 16, "batch_size": 8}')
        with channel(f"127.0.0.1:{coord.port}") as ch:
            stub = farm_pb2_grpc.SelectorStub(ch)
            answers = [stub.Select(farm_pb2.SelectRequest(
                model="llama-tiny", workload_json=workload,
                hardware=[farm_pb2.HardwareOption(**hw)]), timeout=60)
                for hw in ({"name": sorted(model.known["hardware"])[0]},
                           {"text": "NVIDIA <H200> 141GB"})]
        _, body, _ = fetch(url)
        table = body[body.index('id="select-answers"'):]
        table = table[:table.index("</table>")]
        rows = table.split("<tr>")[2:]  # newest first, after the header
        assert len(rows) == 2
        assert "NVIDIA &lt;H200&gt; 141GB" in rows[0] and "<H200>" not in body
        assert "yes: hardware" in rows[0] and f"{answers[1].confidence:.2f}" in rows[0]
        assert "yes:" not in rows[1] and f"{answers[0].method} on cpu-" in rows[1]
        assert answers[1].out_of_distribution and not answers[0].out_of_distribution
    finally:
        coord.stop(grace=0)
