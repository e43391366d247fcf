"""The local executor reads /proc once per report (indexed by process group) and applies power caps
through an actuator."""

from __future__ import annotations

import sys
import time

import pytest

from gridshift.service.executors import ExecutorError, JobLaunch, Placement, procfs
from gridshift.service.executors.local import LocalExecutor, visible_devices
from gridshift.service.executors.powercap import SimulatedActuator
from polling import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the local executor needs Linux /proc")

SLEEP = [sys.executable, "-c", "import time; time.sleep(30)"]


def launch(job_id: str, command, cap: float = 1.0, **env) -> JobLaunch:
    return JobLaunch(job_id, command, env=env, placement=Placement("site-a", "h100", gang=1, power_cap_frac=cap))


@pytest.fixture
def ex(tmp_path):
    ex = LocalExecutor(tmp_path / "executor", stop_grace_s=1.0, pause_grace_s=0.2)
    yield ex
    for st in ex.report():
        if not st.finished:
            ex.stop(st.job_id)


def test_report_scans_proc_once_and_agrees_with_each_jobs_own_status(ex, monkeypatch):
    for i in range(4):
        ex.start(launch(f"run-{i}", SLEEP))
    ex.start(launch("done", [sys.executable, "-c", "pass"]))
    ex.start(launch("bad", [sys.executable, "-c", "raise SystemExit(4)"]))
    wait_for(lambda: ex.status("done").finished and ex.status("bad").finished, 20, "the short jobs to end")
    ex.pause("run-1")
    scans = []
    real = procfs.os.listdir
    monkeypatch.setattr(procfs.os, "listdir", lambda p: (scans.append(p), real(p))[1])
    report = {st.job_id: (st.state, st.exit_code, st.reason) for st in ex.report()}
    assert scans == ["/proc"]  # one scan for six jobs
    scans.clear()
    each = {jid: (lambda st: (st.state, st.exit_code, st.reason))(ex.status(jid)) for jid in report}
    assert len(scans) >= 4  # status() of one job reads /proc for that job
    assert report == each
    assert report["run-1"][0] == "paused" and report["run-0"][0] == "running"
    assert report["done"][:2] == ("succeeded", 0) and report["bad"][:2] == ("failed", 4)


def test_a_job_killed_after_the_snapshot_is_never_reported_lost(ex):
    ex.start(launch("k", [sys.executable, "-c", "import time; time.sleep(0.3)"]))
    table = procfs.ProcTable()
    time.sleep(1.0)  # the job ends after the snapshot: its exit record decides
    st = ex._status(ex.record("k"), table)
    assert st.state == "succeeded"


def test_visible_devices():
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "0, 2"}) == [0, 2]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "GPU-8f1c"}) is None
    assert visible_devices({}) is None


def test_local_executor_sets_caps_through_the_actuator(tmp_path):
    act = SimulatedActuator([("H100", 200.0, 700.0)] * 4)
    ex = LocalExecutor(tmp_path / "executor", stop_grace_s=1.0, actuator=act)
    try:
        ex.start(launch("capped", SLEEP, cap=0.5, CUDA_VISIBLE_DEVICES="1,3"))
        assert [act.read_w(i) for i in range(4)] == [700.0, 350.0, 700.0, 350.0]
        ex.set_power_cap("capped", 0.8)
        assert act.read_w(1) == act.read_w(3) == 560.0 and act.job_caps()["capped"] == (0.8, [1, 3])
        ex.resume("capped", Placement("site-a", "h100", gang=1, power_cap_frac=0.3))
        assert act.read_w(1) == 210.0
        ex.stop("capped")
    finally:
        act.restore()
    assert [act.read_w(i) for i in range(4)] == [700.0] * 4
    denied = LocalExecutor(tmp_path / "executor2", stop_grace_s=1.0,
                           actuator=SimulatedActuator(privileged=False))
    try:
        denied.start(launch("no-root", SLEEP, cap=0.5))  # the job starts; the cap is a warning
        assert denied.status("no-root").state == "running"
        with pytest.raises(ExecutorError, match="job 'no-root'.*needs root") as e:
            denied.set_power_cap("no-root", 0.6)
        assert not e.value.retryable
    finally:
        denied.stop("no-root")
