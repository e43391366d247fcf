"""Benchmark: what one dashboard poll costs the server at 100,000 jobs.

A fresh SQLite database is migrated and filled with ``--jobs`` jobs in bulk (two tenants; 1 % queued,
0.5 % running, 0.1 % paused, 0.4 % planned, the rest finished, one second apart), a plan with an item per
live job, and one grid event. The API app runs in-process (FastAPI's TestClient: the full middleware stack,
authentication and JSON encoding, no network), and each request the dashboard makes on one poll is timed
``--repeat`` times with an operator token and with a tenant token: ``/health``, ``/sites``, ``/power``,
``/plan``, ``/events``, ``/queue`` (the counts and the newest and running jobs), and the page itself (``/``).
For comparison, the way the page fetched jobs before: up to 5 pages of ``/jobs?limit=1000``, oldest first.

Target: a whole poll (the requests above, one after the other) <= 250 ms at 100,000 jobs, and the job part
(``/queue``) not growing with the number of jobs (the same at 1,000 and 100,000).

    python benchmarks/bench_dashboard.py [--jobs 100000 1000] [--repeat 20] [--json benchmarks/results/dashboard.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
FLEET = {"sites": [{"name": f"site-{i}", "zone": "ZZ", "pue": 1.2, "power_cap_mw": 5.0,
                    "pools": [{"accelerator": "H100", "count": 512}]} for i in range(4)],
         "zones": [{"id": "ZZ"}]}
MIX = [("queued", 0.010), ("running", 0.005), ("paused", 0.001), ("planned", 0.004), ("failed", 0.02),
       ("cancelled", 0.01)]  # the rest succeeded


def fill(store, n: int) -> list[str]:
    """``n`` jobs in bulk; returns the live job ids."""
    from sqlalchemy import insert

    from gridshift.service.store import PlanItem
    from gridshift.service.store.base import JOBS

    rng = np.random.default_rng(0)
    statuses = np.full(n, "succeeded", dtype=object)
    u = rng.random(n)
    edge = 0.0
    for status, frac in MIX:
        statuses[(u >= edge) & (u < edge + frac)] = status
        edge += frac
    t0 = datetime.now(UTC) - timedelta(seconds=n)
    live, rows = [], []
    for i in range(n):
        st = str(statuses[i])
        placed = st in ("running", "paused")
        jid = str(uuid.UUID(int=i + 1))
        rows.append({"id": jid, "tenant": ("alice", "bob")[i % 2], "status": st,
                     "spec": {"kind": "fine-tuning", "work_acc_h": 8.0, "gang_min": 1, "gang_max": 4,
                              "command": "python train.py"},
                     "idempotency_key": None, "submitted_at": t0 + timedelta(seconds=i),
                     "updated_at": t0 + timedelta(seconds=i), "site": f"site-{i % 4}" if placed else None,
                     "accelerator": "H100" if placed else None, "gang": 2 if placed else None,
                     "power_cap_frac": None, "attempts": 1 if placed else 0, "max_attempts": 3,
                     "next_attempt_at": None, "failure_reason": None, "version": 1, "client_id": None})
        if st in ("queued", "planned", "running", "paused"):
            live.append(jid)
    with store.engine.begin() as c:
        for k in range(0, n, 10_000):
            c.execute(insert(JOBS), rows[k:k + 10_000])
    items = [PlanItem(j, "site-0", "H100", 2, None, None, {"action": "start"}) for j in live]
    store.save_plan("asap", items, {"site_power_mw": {s["name"]: 0.5 for s in FLEET["sites"]}})
    return live


def timed(client, path: str, headers: dict, repeat: int) -> dict:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(path, headers=headers)
        out.append(time.perf_counter() - t)
        assert r.status_code in (200, 403), (path, r.status_code, r.text[:200])
    ms = np.array(out) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "max_ms": round(float(ms.max()), 2), "status": r.status_code, "bytes": len(r.content)}


def old_job_fetch(client, headers: dict) -> None:
    cursor = None
    for _ in range(5):
        r = client.get("/api/v1/jobs", params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
                       headers=headers).json()
        cursor = r["next_cursor"]
        if not cursor:
            break


def run(n: int, repeat: int) -> dict:
    from fastapi.testclient import TestClient

    from gridshift.model.events import GridEvent
    from gridshift.service.app import ApiSettings, create_app
    from gridshift.service.db import upgrade
    from gridshift.service.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/state.db"
        upgrade(url)
        with Store(url) as store:
            t = time.perf_counter()
            live = fill(store, n)
            fill_s = time.perf_counter() - t
            now = datetime.now(UTC)
            store.add_grid_event(GridEvent(id="dr", kind="limit", sites=["site-0"], start=now + timedelta(hours=1),
                                           end=now + timedelta(hours=3), limit_mw=1.0), source="bench")
            settings = ApiSettings(rate_per_s=1e6, burst=1e6)
            since = (now - timedelta(hours=24)).isoformat().replace("+00:00", "Z")
            paths = ["/api/v1/health", "/api/v1/sites", "/api/v1/power", "/api/v1/plan",
                     f"/api/v1/events?end_after={since}", "/api/v1/queue?newest=25&active=500", "/"]
            out = {"jobs": n, "live_jobs": len(live), "fill_s": round(fill_s, 2), "routes": {}}
            with TestClient(create_app(store, fleet=FLEET, settings=settings)) as client:
                for role, secret in (("operator", store.create_token("ops", "operator")[1]),
                                     ("tenant", store.create_token("t", "tenant", "alice")[1])):
                    h = {"Authorization": f"Bearer {secret}"}
                    got = {p.split("?")[0]: timed(client, p, h, repeat) for p in paths}
                    t = time.perf_counter()
                    for _ in range(repeat):
                        for p in paths:
                            client.get(p, headers=h)
                    poll_ms = (time.perf_counter() - t) / repeat * 1e3
                    t = time.perf_counter()
                    for _ in range(max(3, repeat // 4)):
                        old_job_fetch(client, h)
                    old_ms = (time.perf_counter() - t) / max(3, repeat // 4) * 1e3
                    out["routes"][role] = {"per_route": got, "poll_ms": round(poll_ms, 1),
                                           "old_jobs_fetch_ms": round(old_ms, 1)}
            return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[100_000, 1_000])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "dashboard.json")
    a = ap.parse_args()
    git = git_state()
    load_before = os.getloadavg()
    runs = []
    for n in a.jobs:
        r = run(n, a.repeat)
        runs.append(r)
        op = r["routes"]["operator"]
        print(f"{n:>7} jobs: poll {op['poll_ms']:.1f} ms (operator), /queue p50 "
              f"{op['per_route']['/api/v1/queue']['p50_ms']} ms, old 5x1000 fetch {op['old_jobs_fetch_ms']:.1f} ms",
              flush=True)
    res = {"benchmark": "dashboard", "git": git, "machine": platform.machine(), "cpus": os.cpu_count(),
           "python": sys.version.split()[0], "backend": "sqlite", "repeat": a.repeat,
           "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
           "runs": runs}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
