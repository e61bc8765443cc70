"""The dashboard page as headless Chromium renders it, against a running coordinator."""

from __future__ import annotations

import html
import subprocess
from pathlib import Path

import pytest
from dashboard_farm import WORKER_NAME, start_farm

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium: "
                              "apt-get install -y --no-install-recommends chromium"),
]


def dump_dom(url: str, profile: Path) -> str:
    """The DOM of a page after it loaded, serialised by headless Chromium."""
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.timeout(180)
def test_chromium_sees_worker_and_campaign_progress(coordinator, tmp_path):
    farm = start_farm(coordinator)
    try:
        dom = dump_dom(farm.url("/"), tmp_path / "chromium-profile")
    finally:
        farm.dashboard.stop()
    assert "<title>MetaInf Farm</title>" in dom
    workers = dom[dom.index('id="workers"'):dom.index('id="campaigns"')]
    assert html.escape(WORKER_NAME) in workers and "alive" in workers
    campaigns = dom[dom.index('id="campaigns"'):]
    assert farm.campaign_id in campaigns
    assert '<span class="progress">1/2</span>' in campaigns
