"""Helper processes for tests/test_reconciler.py.

    python reconciler_proc.py job --out DIR [--sleep S]
        a job: appends "<job id> <attempt> <pid>" to DIR/<job id>.lines, sleeps, exits 0
    python reconciler_proc.py serve --db URL --state DIR [--timeout S]
        a reconciler on a local executor that runs passes until every job is final (exit 0) or the
        timeout (exit 3). With GRIDSHIFT_TEST_SLOW_START_S set, every executor start waits that long
        before launching the job (GRIDSHIFT_TEST_SLOW_START_AT=before: the intent is logged, the executor
        not yet called) or after it (=after, the default: launched, the outcome not yet recorded), a
        window to kill the process in.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

FLEET = {
    "name": "kill-test",
    "time_range": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
    "zones": [{"id": "ZZ", "carbon_g_per_kwh": 300.0, "price_usd_per_mwh": 80.0}],
    "sites": [{"name": "site-a", "zone": "ZZ", "pue": 1.2, "power_cap_mw": 10.0,
               "pools": [{"accelerator": "H100", "count": 16}]}],
    "workloads": {"jobs": [{"job_id": "unused", "kind": "fine-tuning", "arrival": "2024-01-01T00:00:00Z",
                            "work_acc_h": 1.0}]},
}


def run_job(out: Path, sleep_s: float) -> int:
    job_id, attempt = os.environ["GRIDSHIFT_JOB_ID"], os.environ["GRIDSHIFT_ATTEMPT"]
    with open(out / f"{job_id}.lines", "a") as f:
        f.write(f"{job_id} {attempt} {os.getpid()}\n")
    time.sleep(sleep_s)
    return 0


def serve(db: str, state: Path, timeout_s: float) -> int:
    from gridshift.model.scenario import Scenario
    from gridshift.service.executors.local import LocalExecutor
    from gridshift.service.reconciler import Reconciler
    from gridshift.service.store import Store

    slow_s = float(os.environ.get("GRIDSHIFT_TEST_SLOW_START_S", "0") or 0)
    before = os.environ.get("GRIDSHIFT_TEST_SLOW_START_AT", "after") == "before"

    class SlowStart(LocalExecutor):
        def start(self, launch):
            time.sleep(slow_s if before else 0.0)
            ref = super().start(launch)
            time.sleep(0.0 if before else slow_s)
            return ref

    store = Store(db)
    ex = SlowStart(state, stop_grace_s=2.0, pause_grace_s=1.0)
    rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", interval_s=0.2, backoff_s=0.2)
    return run_until_final(store, rec, timeout_s)


def run_until_final(store, rec, timeout_s: float) -> int:
    """Reconciler passes until every job is final (0) or ``timeout_s`` has passed (3)."""
    from gridshift.service.store import Principal

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rec.tick()
        live = store.list_jobs(Principal.system(), status=["queued", "planned", "running", "paused"])[0]
        if not live:
            return 0
        time.sleep(0.2)
    return 3


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("job")
    j.add_argument("--out", type=Path, required=True)
    j.add_argument("--sleep", type=float, default=0.5)
    s = sub.add_parser("serve")
    s.add_argument("--db", required=True)
    s.add_argument("--state", type=Path, required=True)
    s.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args(argv)
    if a.cmd == "job":
        return run_job(a.out, a.sleep)
    return serve(a.db, a.state, a.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
