"""Fixtures of the selector tests: one local Ray for the whole session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """A local two-CPU Ray, started once and shut down at the end of the session."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    if started:
        ray.shutdown()
