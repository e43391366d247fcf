"""Proxy headers are believed only from configured proxies: without ``--trusted-proxy`` a local client cannot
forge its address with X-Forwarded-For to escape the failed-login limit or to write other addresses into the
authentication log (a real ``gridshift serve`` under uvicorn)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from gridshift.service.db import upgrade
from gridshift.testing.serve_process import ServeProcess

FLEET = """
name: proxy
time_range: {start: 2023-06-05T00:00:00Z, end: 2023-06-06T00:00:00Z}
zones: [{id: ZA, carbon_g_per_kwh: 300, price_usd_per_mwh: 80}]
sites: [{name: a, zone: ZA, pue: 1.2, power_cap_mw: 0.05, pools: [{accelerator: H100, count: 8}]}]
workloads:
  jobs: [{job_id: unused, kind: fine-tuning, arrival: 2023-06-05T00:00:00Z, work_acc_h: 1.0}]
"""


def _failed_logins(base: str, n: int) -> list[int]:
    codes = []
    for i in range(n):
        req = urllib.request.Request(f"{base}/api/v1/jobs", headers={
            "Authorization": "Bearer gs_nobody_wrong", "X-Forwarded-For": f"203.0.113.{i + 1}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                codes.append(r.status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    return codes


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_for_is_believed_only_from_a_trusted_proxy(tmp_path, trusted):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    (tmp_path / "fleet.yaml").write_text(FLEET)
    args = ["--db", url, "--fleet", str(tmp_path / "fleet.yaml"), "--executor", "local", "--no-access-log"]
    args += ["--trusted-proxy", "127.0.0.1"] if trusted else []
    srv = ServeProcess(args, cwd=tmp_path, log_path=tmp_path / "serve.log")
    try:
        codes = _failed_logins(srv.base, 25)  # the failed-login burst is 20 per client address
    finally:
        srv.stop()
    log = (tmp_path / "serve.log").read_text()
    if trusted:  # each forwarded address is its own client: none reaches the limit
        assert set(codes) == {401}, codes
        assert "client 203.0.113.7" in log
    else:  # one client, 127.0.0.1, whatever the header says
        assert codes[:20] == [401] * 20 and 429 in codes[20:], codes
        assert "203.0.113." not in log and "client 127.0.0.1" in log
