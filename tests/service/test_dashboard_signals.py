"""`gridshift serve --policy mpc --providers` end to end in a real process: the provider clock keeps an
Electricity Maps forecast (loopback server, documented shapes: https://static.electricitymaps.com/api/docs/index.html),
the reconciler plans a job on it, and /health, /metrics and the dashboard (headless Chromium) say which
forecast drove the plan and report the fleet's carbon under both accountings (a WattTime MOER stored beside
the life-cycle average). Needs Debian's ``chromium`` and ``playwright``, as tests/service/test_dashboard.py."""

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
FLEET = """\
name: signals-dashboard
time_range: {start: 2023-06-05T00:00:00Z, end: 2023-06-06T00:00:00Z}
slot_duration_s: 3600
zones:
  - {id: ZA, carbon_g_per_kwh: 300, price_usd_per_mwh: 80}
sites:
  - {name: alpha, zone: ZA, pue: 1.2, power_cap_mw: 1.0, pools: [{accelerator: H100, count: 16}]}
workloads:
  jobs: [{job_id: unused, kind: fine-tuning, arrival: 2023-06-05T00:00:00Z, work_acc_h: 1.0}]
"""


def em_routes(server: Loopback, issued: pd.Timestamp) -> None:
    stamp = (lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000Z"))

    def past_range(seen):
        times = pd.date_range(pd.Timestamp(seen.param("start")), pd.Timestamp(seen.param("end")), freq="h",
                              inclusive="left")
        return Reply({"zone": "DE", "data": [{"zone": "DE", "carbonIntensity": 280, "datetime": stamp(t),
                                              "updatedAt": stamp(issued), "createdAt": stamp(issued),
                                              "emissionFactorType": "lifecycle", "isEstimated": False,
                                              "estimationMethod": None} for t in times]})

    fc = [{"carbonIntensity": 250 + 10 * (i % 5), "datetime": stamp(issued + pd.Timedelta(hours=i + 1))}
          for i in range(24)]
    server.routes["/carbon-intensity/past-range"] = past_range
    server.routes["/carbon-intensity/forecast"] = Reply({"zone": "DE", "forecast": fc, "updatedAt": stamp(issued)})


@pytest.mark.slow
def test_serve_reports_the_forecast_and_both_accountings(tmp_path, monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's 'chromium' package")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("ELECTRICITYMAPS_API_KEY", "em-key")
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    now = datetime.now(UTC)
    with Store(url) as store:
        secret = store.create_token("ops", "operator")[1]
        store.upsert_signals([{"zone": "ZA", "signal": "moer_g_per_kwh", "at": now - timedelta(minutes=m),
                               "value": 600.0, "source": "watttime"} for m in (0, 5)])
    (tmp_path / "fleet.yaml").write_text(FLEET)
    with Loopback() as server:
        em_routes(server, pd.Timestamp(now).floor("h"))
        (tmp_path / "providers.yaml").write_text(
            f"providers:\n  - name: electricitymaps\n    base_url: {server.url}\n    zones: {{ZA: DE}}\n"
            f"    signals: [carbon_lifecycle_g_per_kwh]\n    interval_s: 3600\n    min_interval_s: 0\n"
            f"planning:\n  ZA: electricitymaps/carbon_lifecycle_g_per_kwh\nforecast_use: fresh\n")
        srv = ServeProcess(["--db", url, "--fleet", str(tmp_path / "fleet.yaml"), "--executor", "local",
                            "--policy", "mpc", "--providers", str(tmp_path / "providers.yaml"), "--no-access-log"],
                           cwd=tmp_path, log_path=tmp_path / "serve.log")
        try:
            h = {"Authorization": f"Bearer {secret}"}
            deadline = time.monotonic() + 30
            while not (tmp_path / "issued-forecasts" / "electricitymaps" / "ZA" /
                       "carbon_lifecycle_g_per_kwh.csv").is_file():
                assert time.monotonic() < deadline, "the provider clock kept no forecast"
                time.sleep(0.2)
            r = httpx.post(f"{srv.base}/api/v1/jobs", headers=h, timeout=10, json={
                "kind": "fine-tuning", "work_acc_h": 400.0, "gang_min": 8, "gang_max": 8,
                "deadline": (now + timedelta(hours=30)).isoformat()})
            assert r.status_code in (200, 201), r.text
            deadline = time.monotonic() + 60
            while True:
                rec = httpx.get(f"{srv.base}/api/v1/health", headers=h, timeout=5).json()["reconciler"]
                za = (rec.get("carbon_by_basis") or {}).get("ZA", {})
                plan = httpx.get(f"{srv.base}/api/v1/plan", headers=h, timeout=5)
                if rec.get("forecasts") and "average" in za and "marginal" in za and plan.status_code == 200 \
                        and plan.json()["items"]:
                    break
                assert time.monotonic() < deadline, rec
                time.sleep(0.5)
            fc = rec["forecasts"]["ZA"]["carbon_g_per_kwh"]
            assert fc["source"] == "provider" and fc["forecast"] == "electricitymaps/carbon_lifecycle_g_per_kwh"
            assert za["drives"]["basis"] == "average" and za["drives"]["signal"] == "carbon_lifecycle_g_per_kwh"
            assert za["marginal"]["signal"] == "moer_g_per_kwh"
            plan = plan.json()
            assert all(it["why"]["forecasts"] == {"ZA": "electricitymaps/carbon_lifecycle_g_per_kwh"}
                       for it in plan["items"])
            metrics = httpx.get(f"{srv.base}/metrics", headers=h, timeout=5).text
            assert 'gridshift_carbon_basis_drives{basis="average",signal="carbon_lifecycle_g_per_kwh",zone="ZA"} 1.0' \
                in metrics
            errors: list[str] = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                try:
                    page = browser.new_page()
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(srv.base + "/")
                    page.fill("#token", secret)
                    page.click("#save-token")
                    page.wait_for_selector("[data-card='carbon-bases']", timeout=30_000)
                    bases = page.inner_text("[data-card='carbon-bases']")
                    forecasts = page.inner_text("[data-card='forecasts']")
                finally:
                    browser.close()
            assert "average | marginal" in bases and "ZA: average (carbon_lifecycle_g_per_kwh)" in bases, bases
            assert "1 of 1 zone(s) on a provider's" in forecasts
            assert "ZA: electricitymaps/carbon_lifecycle_g_per_kwh" in forecasts, forecasts
            assert not errors, errors
        finally:
            srv.stop(cancel_jobs_token=secret)
