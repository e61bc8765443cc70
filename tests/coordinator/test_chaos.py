"""Kill workers and the coordinator for real during a campaign; nothing is lost or doubled."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _chaos():
    spec = importlib.util.spec_from_file_location("chaos", ROOT / "scripts" / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_campaign_survives_worker_and_coordinator_kills(tmp_path):
    report = _chaos().run_chaos(tmp_path, cells=16, workers=2, worker_kills=2,
                                coordinator_kills=1, repetitions=2, lease_s=3.0, seed=1,
                                timeout_s=300)
    print(report.summary())
    assert report.coordinator_kills == 1
    assert report.worker_kills >= 1
    assert report.lost_cells == 0
    assert report.duplicates == 0
    assert report.rows == report.expected_rows == 16 * 2
    assert all(s < 30 for s in report.recovery_s)
