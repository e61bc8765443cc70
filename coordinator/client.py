"""Client helpers for the coordinator: channels with limits, submit, status, export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc

from metainf.coordinator.export import rows_to_frame, write_p
from metainf.coordinator.grid import load_grid_file
from metainf.coordinator.server import MAX_MESSAGE_BYTES
from metainf.v1 import farm_pb2, farm_pb2_grpc

DEFAULT_DEADLINE_S = 30.0
"""Deadline of every unary client call, in seconds."""

EXPORT_DEADLINE_S = 300.0


def token_path(token_file: str | None) -> str | None:
    """The token file to use: the flag, else METAINF_TOKEN_FILE, else none."""
    return token_file or os.environ.get("METAINF_TOKEN_FILE") or None


def channel(address: str, token_file: str | None = None) -> grpc.Channel:
    """An insecure channel to the coordinator with the farm's message size limits."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    return grpc.insecure_channel(address, options=options)


def coordinator_stub(address: str, token_file: str | None = None) -> farm_pb2_grpc.CoordinatorStub:
    """A Coordinator stub on a new channel."""
    return farm_pb2_grpc.CoordinatorStub(channel(address, token_file))


def submit_grid(address: str, grid_path: str | Path, token_file: str | None = None
                ) -> farm_pb2.SubmitCampaignResponse:
    """Validate and materialise a grid file locally, then submit it as a campaign."""
    grid = load_grid_file(grid_path)
    stub = coordinator_stub(address, token_file)
    return stub.SubmitCampaign(
        farm_pb2.SubmitCampaignRequest(grid_json=grid.model_dump_json(exclude_none=True)),
        timeout=DEFAULT_DEADLINE_S)


def campaign_status(address: str, campaign_id: str, token_file: str | None = None
                    ) -> farm_pb2.CampaignStatus:
    """One status snapshot of a campaign."""
    return coordinator_stub(address, token_file).GetCampaignStatus(
        farm_pb2.GetCampaignStatusRequest(campaign_id=campaign_id), timeout=DEFAULT_DEADLINE_S)


def export_campaign(address: str, campaign_id: str, out_path: str | Path,
                    token_file: str | None = None) -> Path:
    """Fetch every row of a campaign and write P (+ FILE.meta.json); return the path."""
    stub = coordinator_stub(address, token_file)
    rows, meta = [], {}
    for chunk in stub.ExportResults(farm_pb2.ExportResultsRequest(campaign_id=campaign_id),
                                    timeout=EXPORT_DEADLINE_S):
        if chunk.meta_json:
            meta = json.loads(chunk.meta_json)
        rows.extend(chunk.rows)
    return write_p(rows_to_frame(rows), meta, out_path)
