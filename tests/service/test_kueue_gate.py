"""The GridShift Kueue admission check (``gridshift.io/grid-gate``) with the Kubernetes executor, against the
fake API server and ``MiniKueue`` (Kueue's admission protocol); every Workload, AdmissionCheck and Job written is
validated against Kueue's CRD schemas and the Kubernetes schema (tests/support/kube_fixture.py)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from gridshift.service.executors import kube_manifest as km
from gridshift.service.executors.base import ExecutorError, JobLaunch, Placement, utc_now
from gridshift.testing.fake_kube import KUEUE, KUEUE_VERSION
from gridshift.testing.fake_kueue import MiniKueue, set_job_status
from kube_fixture import start_server

POOLS = {"site-a": {"nodeSelector": {"topology.kubernetes.io/region": "eu-north-1"},
                    "tolerations": [{"key": "gridshift.io/grid", "operator": "Exists", "effect": "NoSchedule"}]},
         "site-b": {"nodeSelector": {"topology.kubernetes.io/region": "us-east-1"}}}
CHECK = "gridshift-grid-gate"


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self):
        return self.now


@pytest.fixture
def kube():
    yield from start_server()


@pytest.fixture
def cluster(kube):
    """(server, executor, gate, mini-kueue, clock) with a LocalQueue and the gate's AdmissionCheck."""
    from gridshift.service.executors.kube import KubernetesExecutor
    from gridshift.service.executors.kueue_gate import GridGate

    kube.api.create(KUEUE, KUEUE_VERSION, "localqueues", "default", {
        "apiVersion": f"{KUEUE}/{KUEUE_VERSION}", "kind": "LocalQueue", "metadata": {"name": "team-a"},
        "spec": {"clusterQueue": "cluster-queue"}})
    clock = Clock()
    ex = KubernetesExecutor(api_url=kube.url, pools=POOLS, queue_name="team-a", image="busybox:1.37", timeout_s=5)
    gate = GridGate(api_url=kube.url, pools=POOLS, clock=clock, timeout_s=5)
    ac = gate.ensure_admission_check(CHECK)
    assert ac["spec"]["controllerName"] == "gridshift.io/grid-gate"
    assert ac["status"]["conditions"][0]["type"] == "Active"
    return kube, ex, gate, MiniKueue(kube.api, [CHECK], flavor="eu-gpu"), clock


def launch(job_id="job-1", site="site-a", cap=0.7, attempt=1):
    return JobLaunch(job_id, None, placement=Placement(site, "H100", 1, cap), work_acc_h=1.0, attempt=attempt)


def workload(kube, job_id="job-1", run=1):
    return kube.api.get("workloads", "default", f"job-{km.job_name(job_id, 1, run)}")


def check_of(wl):
    (e,) = wl["status"]["admissionChecks"]
    return e


def job(kube, job_id="job-1", run=1):
    return kube.api.get("jobs", "default", km.job_name(job_id, 1, run))


def test_hold_until_planned_start_then_pin_site_and_power(cluster):
    kube, ex, gate, kueue, clock = cluster
    ex.stage(launch(), clock.now + timedelta(minutes=30))
    j = job(kube)
    assert j["spec"]["suspend"] is True and j["metadata"]["labels"][km.KUEUE_QUEUE_LABEL] == "team-a"
    assert "nodeSelector" not in j["spec"]["template"]["spec"]  # Kueue and the check place it
    kueue.step()
    assert gate.sync_once() == {"workloads": 1, "written": 1}
    e = check_of(workload(kube))
    assert e["state"] == "Pending" and "planned start" in e["message"]
    kueue.step()
    assert job(kube)["spec"]["suspend"] is True and kueue.admissions == 0
    st = ex.status("job-1")  # what the API shows: Kueue's and the check's word
    assert st.state == "running" and "Kueue: gridshift-grid-gate Pending: held until its planned start" in st.reason
    assert gate.sync_once()["written"] == 0  # nothing changed: no write
    clock.now += timedelta(minutes=31)
    gate.sync_once()
    e = check_of(workload(kube))
    assert e["state"] == "Ready"
    (u,) = e["podSetUpdates"]
    assert u["name"] == "main" and u["nodeSelector"] == POOLS["site-a"]["nodeSelector"]
    assert u["tolerations"] == POOLS["site-a"]["tolerations"]
    assert u["annotations"] == {km.A_POWER_CAP: "0.7", km.A_POWER_PROFILE: "cap-0.70"}
    kueue.step()
    pod = job(kube)["spec"]["template"]
    assert job(kube)["spec"]["suspend"] is False and kueue.admissions == 1
    assert pod["spec"]["nodeSelector"] == POOLS["site-a"]["nodeSelector"]
    assert pod["metadata"]["annotations"][km.A_POWER_PROFILE] == "cap-0.70"
    assert ex.status("job-1").state == "running"
    assert kube.api.validator.checked["workloads"] >= 3 and kube.api.validator.checked["admissionchecks"] >= 2


def test_grid_event_retry_evicts_then_resume_moves_site(cluster):
    kube, ex, gate, kueue, _ = cluster
    ex.start(launch())
    kueue.step()
    gate.sync_once()
    kueue.step()
    assert job(kube)["spec"]["suspend"] is False
    set_job_status(kube.api, "default", km.job_name("job-1", 1, 1), outcome="started")
    assert ex.pause("job-1").state == "paused"  # a grid event: the hold annotation
    gate.sync_once()
    e = check_of(workload(kube))
    assert e["state"] == "Retry" and "grid event" in e["message"]
    kueue.step()  # Kueue evicts: the Job suspended, its template restored, the check Pending again
    assert job(kube)["spec"]["suspend"] is True and kueue.evictions == 1
    assert "nodeSelector" not in job(kube)["spec"]["template"]["spec"]
    gate.sync_once()
    e = check_of(workload(kube))
    assert e["state"] == "Pending" and "held by GridShift" in e["message"]
    kueue.step()
    assert job(kube)["spec"]["suspend"] is True and ex.status("job-1").state == "paused"
    assert "held by GridShift for a grid event" in {s.job_id: s for s in ex.report()}["job-1"].reason
    st = ex.resume("job-1", Placement("site-b", "H100", 1, 1.0))  # same Job, new site: the check pins it
    assert st.state == "running" and st.ref.endswith("-a1-r1")
    gate.sync_once()
    e = check_of(workload(kube))
    assert e["state"] == "Ready" and e["podSetUpdates"][0]["nodeSelector"] == POOLS["site-b"]["nodeSelector"]
    assert "tolerations" not in e["podSetUpdates"][0]
    kueue.step()
    assert job(kube)["spec"]["suspend"] is False and kueue.admissions == 2
    assert job(kube)["spec"]["template"]["spec"]["nodeSelector"] == POOLS["site-b"]["nodeSelector"]


def test_stop_rejects_and_failure_finishes(cluster):
    kube, ex, gate, kueue, _ = cluster
    ex.start(launch("job-1"))
    ex.start(launch("job-2"))
    kueue.step()
    gate.sync_once()
    kueue.step()
    assert job(kube, "job-1")["spec"]["suspend"] is False
    ex.stop("job-1")  # the Workload deactivated at once: Kueue stops it even before the gate's next pass
    assert workload(kube, "job-1")["spec"]["active"] is False
    kueue.step()
    assert job(kube, "job-1")["spec"]["suspend"] is True and kueue.evictions == 1
    gate.sync_once()
    assert check_of(workload(kube, "job-1"))["state"] == "Rejected"
    kueue.step()
    assert workload(kube, "job-1")["spec"]["active"] is False and job(kube, "job-1")["spec"]["suspend"] is True
    assert ex.status("job-1").reason == "stopped on request"
    set_job_status(kube.api, "default", km.job_name("job-2", 1, 1), outcome="failed")
    kueue.step()
    assert ex.status("job-2").state == "failed"
    before = check_of(workload(kube, "job-2"))
    gate.sync_once()
    assert check_of(workload(kube, "job-2")) == before  # a finished workload is left alone


def test_conflicts_are_retried(cluster):
    kube, ex, gate, kueue, _ = cluster
    ex.start(launch())
    kueue.step()
    kube.api.fail_next.append(("update", "workloads", 409))
    assert gate.sync_once()["written"] == 1
    assert gate.conflicts == 1 and check_of(workload(kube))["state"] == "Ready"
    # a stale resourceVersion is a real 409 from the server, not only an injected one
    wl = workload(kube)
    kube.api.update("workloads", "default", wl["metadata"]["name"], {"metadata": {"labels": {"x": "1"}}}, patch=True)
    from gridshift.service.executors.kueue_gate import GridGate

    with pytest.raises(ExecutorError, match="HTTP 409"):
        gate._call(gate.custom.replace_namespaced_custom_object_status, KUEUE, KUEUE_VERSION, "default", "workloads",
                   wl["metadata"]["name"], wl, what="stale write")
    assert isinstance(gate, GridGate)


def test_unplanned_workloads_and_flavor_mismatch(cluster):
    from gridshift.service.executors.kueue_gate import gate_decision

    kube, ex, gate, kueue, clock = cluster
    wl = {"metadata": {"name": "w"}, "spec": {"podSets": [{"name": "main", "count": 1}]},
          "status": {"admission": {"clusterQueue": "cq", "podSetAssignments": [{"name": "main",
                                                                               "flavors": {"cpu": "us-gpu"}}]}}}
    assert gate_decision(wl, None, clock.now, {}, current="Pending")[0] == "Ready"
    assert gate_decision(wl, None, clock.now, {}, current="Pending", unplanned="pending")[0] == "Pending"
    ann = {km.A_JOB_ID: "j", km.A_PLACEMENT: '{"site": "site-a", "accelerator": "H100", "gang": 1, '
           '"power_cap_frac": 1.0}'}
    pools = {"site-a": km.SitePool({"r": "eu"}, [], flavor="eu-gpu")}
    state, message, _ = gate_decision(wl, ann, clock.now, pools, current="Pending")
    assert state == "Retry" and "us-gpu" in message and "eu-gpu" in message
    no_quota = {**wl, "status": {}}
    assert gate_decision(no_quota, ann, clock.now, pools, current="Pending") is None


def test_missing_crd_is_a_clear_error():
    from gridshift.service.executors.kueue_gate import GridGate

    for srv in start_server(kueue=False):
        gate = GridGate(api_url=srv.url)
        with pytest.raises(ExecutorError, match="Kueue is not installed") as e:
            gate.sync_once()
        assert e.value.retryable is False
        with pytest.raises(ExecutorError, match="Kueue is not installed"):
            gate.ensure_admission_check()


def test_watch_reacts_to_new_workloads(cluster):
    kube, ex, gate, kueue, _ = cluster
    stop = threading.Event()
    t = threading.Thread(target=gate.run, args=(stop,), kwargs={"resync_s": 30.0}, daemon=True)
    t.start()
    try:
        time.sleep(0.3)  # the first list is done; what follows arrives through the watch
        ex.start(launch())
        kueue.step()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and check_of(workload(kube))["state"] != "Ready":
            time.sleep(0.05)
        assert check_of(workload(kube))["state"] == "Ready"
        assert any("watch=true" in path for verb, path in kube.api.requests if "workloads" in path)
    finally:
        stop.set()
        t.join(35)
    assert not t.is_alive()


def test_an_expired_watch_lists_again(cluster):
    kube, ex, gate, kueue, _ = cluster
    from gridshift.testing import fake_kube

    def lists() -> int:
        return sum(1 for verb, p in kube.api.requests if verb == "GET" and "workloads" in p and "watch" not in p)

    stop = threading.Event()
    t = threading.Thread(target=gate.run, args=(stop,), kwargs={"resync_s": 3600.0, "watch_s": 1.0}, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and lists() < 1:
            time.sleep(0.02)
        first = lists()
        # other objects change so often that the watch's resourceVersion leaves the server's history
        for i in range(fake_kube.HISTORY + 5):
            kube.api.update("localqueues", "default", "team-a", {"metadata": {"labels": {"n": str(i)}}}, patch=True)
        while time.monotonic() < deadline and lists() == first:  # 410 Gone at the next watch: list again
            time.sleep(0.05)
        assert lists() > first
        ex.start(launch("job-2"))
        kueue.step()
        while time.monotonic() < deadline and check_of(workload(kube, "job-2"))["state"] != "Ready":
            time.sleep(0.05)
        assert check_of(workload(kube, "job-2"))["state"] == "Ready"
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()


def test_the_command_line_runs_one_pass(cluster, tmp_path):
    from typer.testing import CliRunner

    from gridshift.cli.main import app

    kube, ex, gate, kueue, _ = cluster
    ex.start(launch())
    kueue.step()
    cfg = tmp_path / "kube.yaml"
    cfg.write_text(f"api_url: {kube.url}\nimage: busybox\npools:\n  site-a: {{nodeSelector: {{r: eu}}}}\n")
    res = CliRunner().invoke(app, ["kueue-gate", "--kube-config", str(cfg), "--once"])
    assert res.exit_code == 0, res.output
    assert "1 workloads, 1 checks updated" in res.output
    assert check_of(workload(kube))["podSetUpdates"][0]["nodeSelector"] == {"r": "eu"}
    res = CliRunner().invoke(app, ["kueue-gate", "--kube-config", str(cfg), "--once", "--unplanned", "maybe"])
    assert res.exit_code == 2 and "ready or pending" in res.output


def test_a_later_planned_start_does_not_take_back_an_admitted_workload(cluster):
    from gridshift.service.executors.kueue_gate import gate_decision

    kube, ex, gate, kueue, clock = cluster
    ex.start(launch())
    kueue.step()
    gate.sync_once()
    kueue.step()
    wl = workload(kube)
    ann = dict(job(kube)["metadata"]["annotations"], **{km.A_START_AT: (clock.now + timedelta(hours=1)).isoformat()})
    assert gate_decision(wl, ann, clock.now, gate.pools, current="Ready") is None
    not_admitted = {**wl, "status": {**wl["status"], "conditions": []}}
    assert gate_decision(not_admitted, ann, clock.now, gate.pools, current="Ready")[0] == "Pending"
