#!/usr/bin/env python3
"""Make the README's dashboard screenshot (``docs/img/dashboard.png``) from a real ``gridshift serve``.

Starts the service on a free port with a two-site fleet (Frankfurt on DE-LU, London on GB; 2023 grid data
replayed as the present through the registry), the local executor and the ``threshold`` policy, submits a
mix of jobs and an evening grid event through the API, waits for the reconciler to place them, and takes a
full-page screenshot in Debian's headless Chromium through playwright (no browser download).

    python scripts/dashboard_screenshot.py [--out docs/img/dashboard.png] [--wait-s 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from gridshift.service.db import upgrade
from gridshift.service.store import Store
from gridshift.testing.serve_process import ServeProcess

ROOT = Path(__file__).resolve().parents[1]
API = "/api/v1"
FLEET_YAML = """\
name: dashboard
time_range: {start: 2023-06-01T00:00:00Z, end: 2023-07-01T00:00:00Z}
slot_duration_s: 3600
zones:
  - {id: DE-LU}
  - {id: GB, price_usd_per_mwh: 110}
sites:
  - name: frankfurt
    zone: DE-LU
    pue: 1.2
    power_cap_mw: 0.06
    pools: [{accelerator: H100, count: 48}, {accelerator: MI300X, count: 32}]
  - name: london
    zone: GB
    pue: 1.3
    power_cap_mw: 0.05
    pools: [{accelerator: A100, count: 64}]
workloads:
  jobs: [{job_id: unused, kind: fine-tuning, arrival: 2023-06-01T00:00:00Z, work_acc_h: 1.0}]
"""
JOBS = [("pre-training", 400, 8, 8), ("fine-tuning", 64, 4, 4), ("fine-tuning", 48, 8, 8),
        ("batch-inference", 12, 2, 2), ("batch-inference", 30, 4, 4), ("fine-tuning", 96, 8, 8),
        ("batch-inference", 8, 1, 1), ("pre-training", 320, 16, 16), ("fine-tuning", 40, 4, 4),
        ("pre-training", 256, 8, 8), ("batch-inference", 20, 2, 2), ("fine-tuning", 72, 8, 8),
        ("fine-tuning", 24, 4, 4), ("batch-inference", 16, 2, 4)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs/img/dashboard.png")
    ap.add_argument("--wait-s", type=float, default=15.0)
    ap.add_argument("--replay-from", default="2023-06-06T00:00:00Z")
    a = ap.parse_args()
    chromium = os.environ.get("GRIDSHIFT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        url = f"sqlite:///{tmp / 'state.db'}"
        upgrade(url)
        with Store(url) as store:
            secret = store.create_token("screenshot", "operator")[1]
        (tmp / "fleet.yaml").write_text(FLEET_YAML)
        srv = ServeProcess(["--db", url, "--fleet", str(tmp / "fleet.yaml"), "--executor", "local", "--policy",
                            "threshold", "--pull-interval-s", "900", "--replay-from", a.replay_from, "--no-access-log"],
                           cwd=tmp, log_path=tmp / "serve.log")
        base = srv.base
        auth = {"Authorization": f"Bearer {secret}"}
        try:
            with httpx.Client(base_url=base + API, headers=auth, timeout=10) as c:
                for i, (kind, work, gmin, gmax) in enumerate(JOBS):
                    # the local executor simulates a job without a command at 1 s per hour of run time
                    r = c.post("/jobs", headers={"Idempotency-Key": f"shot-{i}"},
                               json={"kind": kind, "work_acc_h": 20 * work, "gang_min": gmin, "gang_max": gmax})
                    r.raise_for_status()
                    time.sleep(0.4)
                now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
                c.post("/events", json={"id": "dr-evening", "kind": "limit", "sites": ["frankfurt"],
                                        "start": (now + timedelta(hours=11)).isoformat(),
                                        "end": (now + timedelta(hours=14)).isoformat(),
                                        "limit_mw": 0.02}).raise_for_status()
            time.sleep(a.wait_s)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1300})
                page.goto(base + "/")
                page.fill("#token", secret)
                page.click("#save-token")
                page.wait_for_function("document.getElementById('conn').textContent.startsWith('updated')",
                                       timeout=60_000)
                page.wait_for_timeout(3000)
                a.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(a.out), full_page=True)
                browser.close()
            print(f"wrote {a.out}")
        finally:
            srv.stop(cancel_jobs_token=secret)


if __name__ == "__main__":
    main()
