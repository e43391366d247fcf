"""Helper processes for tests/service/test_slurm_reconciler.py.

    python slurm_reconciler_proc.py job --out DIR
        a job: appends "<job id> <attempt> <Slurm job id>" to DIR/<job id>.lines, sleeps 0.5 s, exits 0
    python slurm_reconciler_proc.py serve --db URL --state DIR --slurm-conf FILE [--timeout S]
        a reconciler on a Slurm executor that runs passes until every job is final (exit 0) or the timeout
        (exit 3). With GRIDSHIFT_TEST_SLOW_SBATCH_S set, every submission waits that long after ``sbatch``
        returned, before the Slurm job id is recorded: a window to kill the process in.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from reconciler_proc import run_until_final  # beside this file (sys.path[0] when run as a script)

T0 = datetime(2023, 6, 6, 9, tzinfo=UTC)  # inside the bundled 2023 grid data

FLEET = {
    "name": "slurm-test",
    "time_range": {"start": "2023-06-05T00:00:00Z", "end": "2023-06-07T00:00:00Z"},
    "zones": [{"id": "DE-LU"}],
    "sites": [{"name": "frankfurt", "zone": "DE-LU", "pue": 1.2, "power_cap_mw": 1.0,
               "pools": [{"accelerator": "H100", "count": 16}]}],
    "workloads": {"jobs": [{"job_id": "unused", "kind": "fine-tuning", "arrival": "2023-06-05T00:00:00Z",
                            "work_acc_h": 1.0}]},
}


def run_job(out: Path) -> int:
    job_id, attempt = os.environ["GRIDSHIFT_JOB_ID"], os.environ["GRIDSHIFT_ATTEMPT"]
    with open(out / f"{job_id}.lines", "a") as f:
        f.write(f"{job_id} {attempt} {os.environ.get('SLURM_JOB_ID')}\n")
    time.sleep(0.5)
    return 0


def serve(db: str, state: Path, slurm_conf: str, timeout_s: float) -> int:
    from gridshift.model.scenario import Scenario
    from gridshift.service.executors.slurm import SlurmExecutor
    from gridshift.service.reconciler import Reconciler
    from gridshift.service.store import Store

    slow_s = float(os.environ.get("GRIDSHIFT_TEST_SLOW_SBATCH_S", "0") or 0)

    class SlowSbatch(SlurmExecutor):
        def _sbatch(self, args, script, job_id):
            sid = super()._sbatch(args, script, job_id)
            time.sleep(slow_s)
            return sid

    store = Store(db)
    ex = SlowSbatch(state, slurm_conf=slurm_conf, python=sys.executable, stop_grace_s=2.0, pause_grace_s=1.0)
    rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", interval_s=0.2, backoff_s=0.2,
                     clock=lambda: T0)
    return run_until_final(store, rec, timeout_s)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("job")
    j.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("serve")
    s.add_argument("--db", required=True)
    s.add_argument("--state", type=Path, required=True)
    s.add_argument("--slurm-conf", required=True)
    s.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args(argv)
    if a.cmd == "job":
        return run_job(a.out)
    return serve(a.db, a.state, a.slurm_conf, a.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
