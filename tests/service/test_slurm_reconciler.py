"""The reconciler driving a real Slurm: a grid event suspends a tier-3 job and its end resumes it; a
``kill -9`` of the service in the middle of dispatching loses no job and submits none twice."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridshift.model.events import GridEvent
from gridshift.model.scenario import Scenario
from gridshift.service.db import upgrade
from gridshift.service.executors.base import ExecutorError
from gridshift.service.executors.slurm import SlurmExecutor
from gridshift.service.reconciler import Reconciler
from gridshift.service.store import Principal, Store
from polling import wait_for
from slurm_fixture import start_cluster
from slurm_reconciler_proc import FLEET

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Slurm runs on Linux")
SYSTEM = Principal.system()
PROC = Path(__file__).resolve().parents[1] / "support" / "slurm_reconciler_proc.py"
T0 = datetime(2023, 6, 6, 9, tzinfo=UTC)  # inside the bundled 2023 grid data
COUNTER = "import sys, time\nfor i in range(int(sys.argv[2])):\n    time.sleep(0.1)\n    open(sys.argv[1], 'w').write(str(i + 1))\n"


@pytest.fixture(scope="module")
def cluster():
    yield from start_cluster(sites=("frankfurt",), cpus=16, gpus=16, gpu_type="h100")


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        yield s


def squeue(cluster) -> dict[str, dict]:
    out = subprocess.run(["squeue", "--json", "--all"], env=cluster.env(), capture_output=True, text=True,
                         check=True).stdout
    return {j["name"]: j for j in json.loads(out)["jobs"]}


def counted(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def test_a_grid_event_suspends_a_tier_3_job_in_slurm_and_its_end_resumes_it(cluster, store, tmp_path):
    ex = SlurmExecutor(tmp_path / "executor", slurm_conf=cluster.conf, python=sys.executable, pause_grace_s=1.0,
                       stop_grace_s=2.0)
    now = [T0]
    rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", clock=lambda: now[0])
    out = tmp_path / "count"
    job, _ = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 8.0, "gang_min": 4, "gang_max": 4,
                                       "tier": 3, "command": shlex.join([sys.executable, "-c", COUNTER, str(out),
                                                                         "3000"])})
    assert rec.tick()["actions"] == {"start": 1}
    name = ex.record(job.id)["slurm_id"] and next(n for n in squeue(cluster) if job.id in n)
    wait_for(lambda: counted(out) >= 2, 30, "the job to run in Slurm")
    assert "gpu:h100:4" in squeue(cluster)[name]["tres_per_node"]
    store.add_grid_event(GridEvent(id="shed", kind="limit", sites=["frankfurt"], start=T0 + timedelta(hours=1),
                                   end=T0 + timedelta(hours=2), notice_s=0, limit_mw=0.0), source="test")
    now[0] = T0 + timedelta(hours=1)
    rec.notify("grid event")
    assert rec.tick()["actions"] == {"pause": 1}
    assert store.get_job(SYSTEM, job.id).status == "paused"
    assert squeue(cluster)[name]["job_state"] == "SUSPENDED"
    frozen = counted(out)
    time.sleep(0.8)
    assert counted(out) == frozen
    now[0] = T0 + timedelta(hours=2)
    assert rec.tick()["actions"] == {"resume": 1}
    assert squeue(cluster)[name]["job_state"] == "RUNNING"
    wait_for(lambda: counted(out) > frozen + 2, 30, "progress after the event")
    store.cancel_job(SYSTEM, job.id)
    rec.tick()
    assert ex.status(job.id).state == "failed"
    assert [d.action for d in store.dispatches(job.id)] == ["start", "pause", "resume", "stop"]
    assert squeue(cluster)[name]["job_state"] in ("CANCELLED", "FAILED", "COMPLETED")


def test_kill_9_of_the_service_mid_dispatch(cluster, store, tmp_path):
    out, state = tmp_path / "out", tmp_path / "executor"
    out.mkdir()
    ids = [store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 1.0, "gang_max": 1,
                                     "command": shlex.join([sys.executable, str(PROC), "job", "--out", str(out)])}
                            )[0].id for _ in range(3)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, str(PROC), "serve", "--db", str(store.engine.url), "--state", str(state),
           "--slurm-conf", str(cluster.conf), "--timeout", "60"]
    first = subprocess.Popen(cmd, env={**env, "GRIDSHIFT_TEST_SLOW_SBATCH_S": "30"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        # killed after sbatch took the first job, before its Slurm id was recorded
        wait_for(lambda: any(i in n for n in squeue(cluster) for i in ids) or first.poll() is not None, 30,
                 "the first submission")
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(10)
    pending = store.pending_dispatches()
    assert len(pending) == 1 and pending[0].action == "start"
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    queue = squeue(cluster)
    for jid in ids:
        job = store.get_job(SYSTEM, jid)
        assert job.status == "succeeded" and job.attempts == 1, (job.status, job.failure_reason)
        assert [(d.action, d.attempt, d.state) for d in store.dispatches(jid)] == [("start", 1, "done")]
        assert len([n for n in queue if f".{jid}." in n]) == 1  # one Slurm job per job and attempt
        assert len((out / f"{jid}.lines").read_text().splitlines()) == 1  # and one run
    assert store.pending_dispatches() == []


def test_controller_down_fails_the_pass_with_a_clear_error_and_the_next_pass_recovers(cluster, store, tmp_path):
    ex = SlurmExecutor(tmp_path / "executor", slurm_conf=cluster.conf, python=sys.executable, timeout_s=20.0)
    rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", clock=lambda: T0)
    out, later = tmp_path / "count", tmp_path / "later"
    job, _ = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 1.0, "gang_max": 1,
                                       "command": shlex.join([sys.executable, "-c", COUNTER, str(out), "40"])})
    assert rec.tick()["actions"] == {"start": 1}
    wait_for(lambda: counted(out) >= 1, 30, "the job to run")
    cluster.stop_controller()
    try:
        second, _ = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 1.0, "gang_max": 1,
                                              "command": shlex.join([sys.executable, "-c", COUNTER, str(later),
                                                                     "3"])})
        with pytest.raises(ExecutorError, match="(?i)slurm controller") as e:
            rec.tick()
        assert e.value.retryable and "controller" in rec.status()["last_error"]
        assert store.get_job(SYSTEM, job.id).status == "running"  # nothing failed for the outage
        assert store.get_job(SYSTEM, second.id).status == "queued" and not store.dispatches(second.id)
    finally:
        cluster.start_controller()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and {store.get_job(SYSTEM, j).status for j in (job.id, second.id)} != {
            "succeeded"}:
        rec.tick()
        time.sleep(0.3)
    for jid in (job.id, second.id):
        row = store.get_job(SYSTEM, jid)
        assert row.status == "succeeded" and row.attempts == 1, (row.status, row.failure_reason)
    assert counted(out) == 40 and counted(later) == 3
