"""`gridshift serve --providers` end to end in a real process: each provider pulls on its own clock from a
loopback server, a failing one turns stale in /health, /metrics and on the dashboard (headless Chromium),
the good one's signals and issued forecasts are stored, and the API key appears in no log line.

Bodies follow the GB Carbon Intensity API's documented shapes (https://carbon-intensity.github.io/api-definitions/).
Needs Debian's ``chromium`` and the ``playwright`` package, as tests/service/test_dashboard.py does."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest

from gridshift.service.db import upgrade
from gridshift.service.store import Store
from gridshift.testing.serve_process import ServeProcess
from loopback import Loopback, Reply

CHROMIUM = os.environ.get("GRIDSHIFT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
KEY = "em-key-never-logged-4711"


def gb_route(seen):
    parts = seen.path.split("/")
    lo = pd.Timestamp(parts[2])
    n = 96 if parts[3] == "fw48h" else int((pd.Timestamp(parts[3]) - lo) / pd.Timedelta("30min"))
    rows = [{"from": (lo + i * pd.Timedelta("30min")).strftime("%Y-%m-%dT%H:%MZ"),
             "to": (lo + (i + 1) * pd.Timedelta("30min")).strftime("%Y-%m-%dT%H:%MZ"),
             "intensity": {"forecast": 150 + i % 7, "actual": None if parts[3] == "fw48h" else 140 + i % 5,
                           "index": "low"}} for i in range(n)]
    return Reply({"data": rows})


class Prefix(dict):
    def get(self, path, default=None):
        if path.startswith("/intensity/"):
            return gb_route
        if path.startswith("/carbon-intensity/"):
            return Reply({"error": "unavailable"}, 503)
        return default


@pytest.mark.slow
def test_serve_pulls_providers_and_shows_staleness(tmp_path, monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's 'chromium' package")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("ELECTRICITYMAPS_API_KEY", KEY)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as store:
        secret = store.create_token("ops", "operator")[1]
    with Loopback() as server:
        server.routes = Prefix()
        (tmp_path / "providers.yaml").write_text(
            f"providers:\n"
            f"  - name: gb-carbon-intensity\n    base_url: {server.url}\n    zones: {{GB: national}}\n"
            f"    interval_s: 3600\n"
            f"  - name: electricitymaps\n    base_url: {server.url}\n    zones: {{DE-LU: DE}}\n    retries: 0\n"
            f"    signals: [carbon_lifecycle_g_per_kwh]\n    interval_s: 3600\n"
            f"planning:\n  GB: gb-carbon-intensity/carbon_direct_g_per_kwh\n")
        srv = ServeProcess(["--db", url, "--providers", str(tmp_path / "providers.yaml"), "--no-access-log"],
                           cwd=tmp_path, log_path=tmp_path / "serve.log")
        try:
            h = {"Authorization": f"Bearer {secret}"}
            deadline = time.monotonic() + 30
            while True:
                health = httpx.get(f"{srv.base}/api/v1/health", headers=h, timeout=5).json()
                done = {p["provider"]: p for p in health["providers"] if p["last_ok_at"] or p["last_error"]}
                if len(done) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert done["gb-carbon-intensity"]["stale"] is False, done["gb-carbon-intensity"]["last_error"]
            assert done["electricitymaps"]["stale"] is True and "HTTP 503" in done["electricitymaps"]["last_error"]
            metrics = httpx.get(f"{srv.base}/metrics", headers=h, timeout=5).text
            assert 'gridshift_provider_stale{provider="electricitymaps",zone="DE-LU"} 1.0' in metrics
            now = datetime.now(UTC)
            got = httpx.get(f"{srv.base}/api/v1/signals", headers=h, timeout=5, params={
                "zone": "GB", "signal": "carbon_g_per_kwh", "start": (now - timedelta(hours=8)).isoformat(),
                "end": now.isoformat()}).json()
            assert got and {g["source"] for g in got} == {"gb-carbon-intensity/carbon_direct_g_per_kwh"}
            assert (tmp_path / "issued-forecasts" / "gb-carbon-intensity" / "GB" / "carbon_direct_g_per_kwh.csv").is_file()

            errors: list[str] = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                try:
                    page = browser.new_page()
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(srv.base + "/")
                    page.fill("#token", secret)
                    page.click("#save-token")
                    page.wait_for_selector("[data-card='providers']", timeout=30_000)
                    text = page.inner_text("[data-card='providers']")
                finally:
                    browser.close()
            assert "1 of 2 stale" in text and "electricitymaps/DE-LU" in text, text
            assert not errors, errors
        finally:
            srv.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "electricitymaps: zone DE-LU" in log and "HTTP 503" in log  # the failure is logged, in one line …
    assert KEY not in log  # … and the key is not
    assert any(s.headers.get("auth-token") == KEY for s in server.seen)  # though it was sent
