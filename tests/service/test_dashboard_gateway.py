"""The model gateway's accounting in the service: ``GET /api/v1/gateway/usage`` (per site, model and tenant;
a tenant sees its own) and the dashboard's gateway section, in headless Chromium against a real
``gridshift serve`` whose database holds the rows the gateway's accounting wrote."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from gridshift.service.app import create_app
from gridshift.service.db import upgrade
from gridshift.service.gateway.accounting import Accounting, UsageRecord, usage_of
from gridshift.service.store import Store
from gridshift.testing.serve_process import ServeProcess

CHROMIUM = os.environ.get("GRIDSHIFT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLEET_YAML = """\
name: dashboard-gateway-test
time_range: {start: 2023-06-05T00:00:00Z, end: 2023-06-06T00:00:00Z}
slot_duration_s: 3600
zones: [{id: ZA, carbon_g_per_kwh: 300, price_usd_per_mwh: 80}]
sites: [{name: alpha, zone: ZA, pue: 1.2, power_cap_mw: 0.05, pools: [{accelerator: H100, count: 16}]}]
workloads:
  jobs: [{job_id: unused, kind: fine-tuning, arrival: 2023-06-05T00:00:00Z, work_acc_h: 1.0}]
"""
# (tenant, model, site, status, tokens in, tokens out, carbon g/kWh)
ROWS = [("acme", "llama-8b", "stockholm", "ok", 100, 400, 30.0), ("acme", "llama-8b", "stockholm", "ok", 50, 200, 30.0),
        ("acme", "llama-8b", "warsaw", "error", 20, 0, 700.0), ("bob", "qwen-7b", "warsaw", "ok", 300, 900, 700.0)]
J_PER_TOKEN = 0.5


def write_usage(url: str) -> None:
    with Store(url) as store:
        acc = Accounting(store.engine, CollectorRegistry())
        for tenant, model, site, status, tin, tout, ci in ROWS:
            e, c, cost = usage_of(tin, tout, J_PER_TOKEN, ci, 90.0)
            acc.record(UsageRecord(datetime.now(UTC), tenant, model, site, f"{site}-1", "H100", "interactive", "chat",
                                   status, tin, tout, e, c, cost, 20.0, 0, "europe-west3"))
        acc.flush()


def expected(pred) -> dict:
    rows = [r for r in ROWS if pred(r)]
    carbon = sum(usage_of(r[4], r[5], J_PER_TOKEN, r[6], 90.0)[1] for r in rows)
    energy = sum(usage_of(r[4], r[5], J_PER_TOKEN, r[6], 90.0)[0] for r in rows)
    return {"requests": len(rows), "errors": sum(r[3] != "ok" for r in rows), "prompt_tokens": sum(r[4] for r in rows),
            "completion_tokens": sum(r[5] for r in rows), "carbon_g": carbon, "energy_j": energy}


def check(row: dict, want: dict) -> None:
    for k, v in want.items():
        assert row[k] == pytest.approx(v), (k, row)


def test_gateway_usage_per_site_model_and_tenant(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    write_usage(url)
    with Store(url) as store:
        op = store.create_token("ops", "operator")[1]
        acme = store.create_token("acme-app", "tenant", "acme")[1]
        grid = store.create_token("utility", "grid")[1]
        with TestClient(create_app(store)) as client:
            r = client.get("/api/v1/gateway/usage", headers={"Authorization": f"Bearer {op}"})
            assert r.status_code == 200
            u = r.json()
            by_site = {x["key"]: x for x in u["site"]}
            check(by_site["stockholm"], expected(lambda x: x[2] == "stockholm"))
            check(by_site["warsaw"], expected(lambda x: x[2] == "warsaw"))
            check({x["key"]: x for x in u["tenant"]}["bob"], expected(lambda x: x[0] == "bob"))
            check({x["key"]: x for x in u["model"]}["llama-8b"], expected(lambda x: x[1] == "llama-8b"))
            check(u["total"], expected(lambda x: True))
            t = u["total"]
            assert t["energy_kwh"] == pytest.approx(t["energy_j"] / 3.6e6)
            assert t["carbon_g_per_1k_tokens"] == pytest.approx(1000 * t["carbon_g"] / (470 + 1500))
            mine = client.get("/api/v1/gateway/usage", headers={"Authorization": f"Bearer {acme}"}).json()
            assert [x["key"] for x in mine["tenant"]] == ["acme"]
            check(mine["total"], expected(lambda x: x[0] == "acme"))
            assert client.get("/api/v1/gateway/usage", headers={"Authorization": f"Bearer {grid}"}).status_code == 403
            later = client.get("/api/v1/gateway/usage", params={"since": "2100-01-01T00:00:00Z"},
                               headers={"Authorization": f"Bearer {op}"}).json()
            assert later["total"]["requests"] == 0 and later["site"] == []


def test_dashboard_shows_the_gateway_accounting(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's 'chromium' package "
                    "(or set GRIDSHIFT_CHROMIUM to a Chromium binary)")
    from playwright.sync_api import expect, sync_playwright

    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as store:
        secret = store.create_token("dashboard test", "operator")[1]
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET_YAML)
    srv = ServeProcess(["--db", url, "--fleet", str(fleet), "--executor", "local", "--no-access-log"],
                       cwd=tmp_path, log_path=tmp_path / "serve.log")
    errors: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1500})  # under the page's own CSP
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(srv.base + "/")
                page.fill("#token", secret)
                page.click("#save-token")
                expect(page.locator("#conn")).to_have_text(re.compile("^updated"), timeout=60_000)
                assert "no requests through the model gateway yet" in page.inner_text("#gateway")
                write_usage(url)  # the gateway (another process) writes its rows: the next poll shows them
                expect(page.locator("[data-gw='requests'] b")).to_have_text("4", timeout=30_000)
                total = expected(lambda x: True)
                assert page.inner_text("[data-gw='tokens'] b") == f"{total['prompt_tokens']} / {total['completion_tokens']:,}"
                assert page.inner_text("[data-gw='energy'] b") == f"{total['energy_j'] / 3.6e6:.4f} kWh"
                sites = page.inner_text("[data-gw-by='site']")
                assert "stockholm" in sites and "warsaw" in sites
                tenants = page.inner_text("[data-gw-by='tenant']")
                bob = next(line for line in tenants.splitlines() if line.startswith("bob"))
                assert bob.split("\t")[1:5] == ["1", "0", "300", "900"], bob
                assert "qwen-7b" in page.inner_text("[data-gw-by='model']")
                page.screenshot(path=str(tmp_path / "dashboard-gateway.png"), full_page=True)
            finally:
                browser.close()
    finally:
        srv.stop(cancel_jobs_token=secret)
    assert not errors, f"JavaScript errors on the page: {errors}"
