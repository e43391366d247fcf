"""The live dashboard end to end: a real ``gridshift serve`` with a reconciler on the local executor, driven by
headless Chromium through playwright. The page takes a token, a job submitted through its form shows up as
planned or running on a site, in the job list and on the Gantt chart.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``GRIDSHIFT_CHROMIUM``) and the ``playwright`` Python
package; playwright's own browser download is not used. Missing either is a failure, not a skip."""

from __future__ import annotations

import os
import re
import shutil

import httpx
import pytest

from gridshift.service.db import upgrade
from gridshift.service.store import Store
from gridshift.testing.serve_process import ServeProcess

CHROMIUM = os.environ.get("GRIDSHIFT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
API = "/api/v1"
FLEET_YAML = """\
name: dashboard-test
time_range: {start: 2023-06-05T00:00:00Z, end: 2023-06-06T00:00:00Z}
slot_duration_s: 3600
zones:
  - {id: ZA, carbon_g_per_kwh: 300, price_usd_per_mwh: 80}
  - {id: ZB, carbon_g_per_kwh: 120, price_usd_per_mwh: 95}
sites:
  - name: alpha
    zone: ZA
    pue: 1.2
    power_cap_mw: 0.05
    pools: [{accelerator: H100, count: 16}]
  - name: beta
    zone: ZB
    pue: 1.3
    power_cap_mw: 0.05
    pools: [{accelerator: A100, count: 16}]
workloads:
  jobs: [{job_id: unused, kind: fine-tuning, arrival: 2023-06-05T00:00:00Z, work_acc_h: 1.0}]
"""


@pytest.fixture
def service(tmp_path):
    """``gridshift serve`` on a free port: (base URL, operator token)."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as store:
        secret = store.create_token("dashboard test", "operator")[1]
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET_YAML)
    srv = ServeProcess(["--db", url, "--fleet", str(fleet), "--executor", "local", "--no-access-log"],
                       cwd=tmp_path, log_path=tmp_path / "serve.log")
    try:
        yield srv.base, secret
    finally:
        srv.stop(cancel_jobs_token=secret)  # no simulated job outlives the service


def test_dashboard_submits_a_job_and_shows_it_placed(service, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's 'chromium' package "
                    "(or set GRIDSHIFT_CHROMIUM to a Chromium binary)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the 'playwright' Python package is missing: pip install playwright (no browser download needed)")
    base, secret = service
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            # the page's Content-Security-Policy forbids eval, which wait_for_function needs: bypassed here
            # (the next test runs the page under its policy)
            page = browser.new_page(viewport={"width": 1400, "height": 1300}, bypass_csp=True)
            page.on("pageerror", lambda e: errors.append(str(e)))
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            page.goto(base + "/")
            page.fill("#token", secret)
            page.click("#save-token")
            page.wait_for_function("document.getElementById('conn').textContent.startsWith('updated')",
                                   timeout=60_000)
            assert "alpha" in page.inner_text("#power") and "beta" in page.inner_text("#power")

            page.select_option("#f-kind", "fine-tuning")
            page.fill("#f-work", "400")  # a simulated run of minutes: still running when the page looks
            page.fill("#f-gang", "2")
            page.click("#f-submit")
            page.wait_for_selector(".submitted-job[data-job]", timeout=30_000)
            job_id = page.get_attribute(".submitted-job", "data-job")
            placed = (f".submitted-job[data-job='{job_id}'][data-status='running'],"
                      f".submitted-job[data-job='{job_id}'][data-status='planned']")
            page.wait_for_function(
                "sel => { const e = document.querySelector(sel); return e && / on (alpha|beta)\\//.test(e.textContent); }",
                arg=placed, timeout=120_000)
            page.wait_for_selector(f".gantt-bar[data-job='{job_id}']", timeout=30_000)
            text = page.inner_text("#submit-status")
            assert job_id[:8] in text and ("alpha/H100" in text or "beta/A100" in text), text
            assert job_id[:8] in page.inner_text("#jobs")
            # the totals: cost so far and the asap counterfactual are figures the reconciler reports, not n/a
            page.wait_for_function(
                """() => { const b = k => (document.querySelector(`[data-card='${k}'] b`) || {}).textContent || "";
                           return /^\\$\\d+\\.\\d\\d$/.test(b("cost")) && /^\\$\\d+\\.\\d\\d$/.test(b("cf-cost"))
                                  && /^\\d+\\.\\d+ (kg|t)$/.test(b("cf-carbon")); }""", timeout=30_000)
            cards = {k: page.inner_text(f"[data-card='{k}'] b") for k in ("carbon", "cost", "cf-carbon", "cf-cost")}
            assert not any("n/a" in v for v in cards.values()), cards
            rs = httpx.get(f"{base}{API}/health", headers={"Authorization": f"Bearer {secret}"}, timeout=5).json()
            cf = rs["reconciler"]["counterfactual"]
            assert cf["policy"] == "asap" and cf["carbon_t"] >= 0 and cf["cost_usd"] >= 0
            assert rs["reconciler"]["cost_usd"] >= 0
            assert "asap counterfactual carbon" in page.inner_text("#totals")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert not external, f"the dashboard requested other hosts: {external}"
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_a_tenant_sees_hidden_for_your_role_not_missing_figures(service):
    """A tenant's token: the operator's figures say "hidden for your role" (not "not reported" or an error),
    and the queue counts the tenant's own jobs. The page runs under its own Content-Security-Policy."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    base, secret = service
    ops = {"Authorization": f"Bearer {secret}"}
    tenant = httpx.post(f"{base}{API}/tokens", json={"name": "t", "role": "tenant", "tenant": "alice"}, headers=ops,
                        timeout=10).json()["secret"]
    httpx.post(f"{base}{API}/jobs", json={"kind": "fine-tuning", "work_acc_h": 1.0, "tenant": "bob"}, headers=ops,
               timeout=10).raise_for_status()
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.fill("#token", tenant)
            page.click("#save-token")
            expect(page.locator("#conn")).to_have_text(re.compile("^updated"), timeout=60_000)  # the script ran
            totals, power = page.inner_text("#totals"), page.inner_text("#power")
            assert "hidden for your role" in totals and "not reported" not in totals, totals
            assert power.strip() == "hidden for your role", power
            assert "bob" not in page.inner_text("#jobs")
            assert [c.inner_text().split() for c in page.query_selector_all("#queue .card")][0] == ["queued", "0"]
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_the_api_docs_render_from_this_origin_under_their_policy(service):
    """``/docs``: Swagger UI from the package renders the API under the page's Content-Security-Policy, and
    asks no other host for anything."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    base, _ = service
    errors: list[str] = []
    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            page.goto(base + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("GridShift API", timeout=30_000)
            expect(page.locator(".opblock-summary-path").first).to_be_visible()
        finally:
            browser.close()
    assert not external, external
    assert not errors, errors
