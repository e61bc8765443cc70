"""The farm's state as data agrees with what the Coordinator RPCs answer."""

from __future__ import annotations

import pytest
from dashboard_farm import start_farm
from google.protobuf.json_format import MessageToDict

from metainf.client import channel
from metainf.coordinator.scheduler import SchedulerConfig
from metainf.coordinator.status import (
    campaign_progress,
    cells_by_state,
    recent_failures,
    worker_states,
)
from metainf.coordinator.store import NotFound
from metainf.v1 import farm_pb2, farm_pb2_grpc


@pytest.fixture
def farm(coordinator):
    farm = start_farm(coordinator)
    yield farm
    farm.dashboard.stop()


def test_campaign_progress_matches_get_campaign_status(coordinator, address, farm):
    stub = farm_pb2_grpc.CoordinatorStub(channel(address))
    status = stub.GetCampaignStatus(farm_pb2.GetCampaignStatusRequest(
        campaign_id=farm.campaign_id), timeout=10)
    progress = campaign_progress(coordinator.store, farm.campaign_id)
    expected = MessageToDict(status, preserving_proto_field_name=True,
                             always_print_fields_with_no_presence=True)
    got = {k: v for k, v in progress.items() if k != "finished"}
    # Drift is the drift monitor's, beside the campaign's progress (none: no model here).
    assert expected.pop("drift") == [] and expected.pop("drift_note").startswith("no model")
    assert got == expected
    assert progress["state"] == "running" and progress["finished"] == 1
    assert progress["total_cells"] == 2 and progress["eta_s"] >= 0
    with pytest.raises(NotFound):
        campaign_progress(coordinator.store, "c-missing")


def test_worker_states_match_list_workers(coordinator, address, farm):
    stub = farm_pb2_grpc.CoordinatorStub(channel(address))
    listed = {w.worker_id: w.state for w in stub.ListWorkers(farm_pb2.ListWorkersRequest(),
                                                             timeout=10).workers}
    config = SchedulerConfig(lease_s=30.0, heartbeat_interval_s=1.0)  # the fixture's
    states = worker_states(coordinator.store, config)
    assert {w["worker_id"]: w["state"] for w in states} == listed == {farm.worker_id: "alive"}
    later = worker_states(coordinator.store, config, now=states[0]["last_heartbeat"] + 34)
    assert later[0]["state"] == "lost" and later[0]["heartbeat_age_s"] == pytest.approx(34)


def test_cells_by_state_and_failures(coordinator, farm):
    assert cells_by_state(coordinator.store) == {"pending": 1, "leased": 0, "done": 1,
                                                 "failed": 0, "oom": 0, "timeout": 0,
                                                 "skipped": 0}
    assert recent_failures(coordinator.store) == []
    cell_id = coordinator.store.query("SELECT cell_id FROM cells WHERE status='pending'")[0][
        "cell_id"]
    with coordinator.store.transaction() as tx:
        tx.execute("UPDATE cells SET attempts=1, error='engine crashed' WHERE cell_id=?",
                   (cell_id,))
    [failure] = recent_failures(coordinator.store)
    assert failure["cell_id"] == cell_id and failure["status"] == "pending"
    assert failure["error"] == "engine crashed" and failure["method"] in ("none", "pc")
