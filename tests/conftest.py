"""Shared test fixtures: offline hub, a real coordinator on port 0."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture
def coordinator(tmp_path):
    """A real coordinator (gRPC server + SQLite file) on a free port."""
    from metainf.coordinator.scheduler import SchedulerConfig
    from metainf.coordinator.server import ServerConfig, create_server

    coord = create_server(ServerConfig(
        db=tmp_path / "farm.db", port=0, model_dir=tmp_path / "models",
        scheduler=SchedulerConfig(lease_s=30.0, heartbeat_interval_s=1.0, idle_retry_s=0.2)))
    yield coord
    coord.stop(grace=0)


@pytest.fixture
def address(coordinator):
    """host:port of the coordinator fixture."""
    return f"127.0.0.1:{coordinator.port}"
