"""The reconciler driving the Kubernetes executor against the fake API server: a job starts as a Job on its
site's nodes with its GPUs, a grid event suspends it and its end resumes it (with Kueue: through the grid gate
and Kueue's protocol); a cluster without Kueue fails the job with a clear reason instead of stalling the
reconciler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridshift.model.events import GridEvent
from gridshift.model.scenario import Scenario
from gridshift.service.db import upgrade
from gridshift.service.executors import kube_manifest as km
from gridshift.service.executors.registry import make_executor
from gridshift.service.reconciler import Reconciler
from gridshift.service.store import Principal, Store
from kube_fixture import start_server
from slurm_reconciler_proc import FLEET

SYSTEM = Principal.system()
T0 = datetime(2023, 6, 6, 9, tzinfo=UTC)  # inside the bundled 2023 grid data
POOLS = {"frankfurt": {"nodeSelector": {"topology.kubernetes.io/region": "eu-central-1"}}}


@pytest.fixture
def kube():
    yield from start_server()


@pytest.fixture
def kube_no_kueue():
    yield from start_server(kueue=False)


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        yield s


def test_a_grid_event_suspends_the_job_and_its_end_resumes_it(kube, store):
    srv = kube
    ex = make_executor("kubernetes", api_url=srv.url, pools=POOLS, image="busybox:1.37", timeout_s=5)
    now = [T0]
    rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", clock=lambda: now[0])
    job, _ = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 8.0, "gang_min": 4, "gang_max": 4,
                                       "tier": 3, "command": "python3 train.py --epochs 3"})
    assert rec.tick()["actions"] == {"start": 1}
    name = km.job_name(job.id, 1, 1)
    obj = srv.api.get("jobs", "default", name)
    pod = obj["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == POOLS["frankfurt"]["nodeSelector"]
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert pod["containers"][0]["command"] == ["python3", "train.py", "--epochs", "3"]
    store.add_grid_event(GridEvent(id="shed", kind="limit", sites=["frankfurt"], start=T0 + timedelta(hours=1),
                                   end=T0 + timedelta(hours=2), notice_s=0, limit_mw=0.0), source="test")
    now[0] = T0 + timedelta(hours=1)
    rec.notify("grid event")
    assert rec.tick()["actions"] == {"pause": 1}
    assert store.get_job(SYSTEM, job.id).status == "paused"
    assert srv.api.get("jobs", "default", name)["spec"]["suspend"] is True
    now[0] = T0 + timedelta(hours=2)
    assert rec.tick()["actions"] == {"resume": 1}
    assert srv.api.get("jobs", "default", name)["spec"]["suspend"] is False
    store.cancel_job(SYSTEM, job.id)
    rec.tick()
    assert ex.status(job.id).reason == "stopped on request"
    assert [d.action for d in store.dispatches(job.id)] == ["start", "pause", "resume", "stop"]
    assert len(srv.api.list("jobs", "default", None)[0]) == 1


def test_missing_kueue_fails_the_job_with_a_clear_reason(kube_no_kueue, store):
    srv = kube_no_kueue
    ex = make_executor("kubernetes", api_url=srv.url, pools=POOLS, queue_name="team-a", timeout_s=5)
    rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", clock=lambda: T0,
                     max_attempts=1)
    job, _ = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 1.0, "gang_max": 1})
    rec.tick()
    row = store.get_job(SYSTEM, job.id)
    assert row.status == "failed" and "Kueue is not installed" in row.failure_reason
    (d,) = store.dispatches(job.id)
    assert "workloads.kueue.x-k8s.io" in d.error
    assert rec.tick()["actions"] == {}  # the reconciler goes on


def test_with_kueue_the_gate_gives_capacity_back_on_a_grid_event(kube, store):
    from gridshift.service.executors.kueue_gate import GridGate
    from gridshift.testing.fake_kube import KUEUE, KUEUE_VERSION
    from gridshift.testing.fake_kueue import MiniKueue

    kube.api.create(KUEUE, KUEUE_VERSION, "localqueues", "default", {
        "apiVersion": f"{KUEUE}/{KUEUE_VERSION}", "kind": "LocalQueue", "metadata": {"name": "team-a"},
        "spec": {"clusterQueue": "cluster-queue"}})
    ex = make_executor("kubernetes", api_url=kube.url, pools=POOLS, queue_name="team-a", timeout_s=5)
    gate = GridGate(api_url=kube.url, pools=POOLS, timeout_s=5)
    gate.ensure_admission_check("gridshift-grid-gate")
    kueue = MiniKueue(kube.api, ["gridshift-grid-gate"])
    now = [T0]
    rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", clock=lambda: now[0])

    def cluster_pass():
        kueue.step()
        gate.sync_once()
        kueue.step()

    job, _ = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 8.0, "gang_min": 2, "gang_max": 2,
                                       "tier": 3})
    assert rec.tick()["actions"] == {"start": 1}
    name = km.job_name(job.id, 1, 1)
    cluster_pass()
    obj = kube.api.get("jobs", "default", name)
    assert obj["spec"]["suspend"] is False
    assert obj["spec"]["template"]["spec"]["nodeSelector"] == POOLS["frankfurt"]["nodeSelector"]
    store.add_grid_event(GridEvent(id="shed", kind="limit", sites=["frankfurt"], start=T0 + timedelta(hours=1),
                                   end=T0 + timedelta(hours=2), notice_s=0, limit_mw=0.0), source="test")
    now[0] = T0 + timedelta(hours=1)
    rec.notify("grid event")
    assert rec.tick()["actions"] == {"pause": 1}
    cluster_pass()  # the check answers Retry; Kueue evicts: the Job suspended
    assert kube.api.get("jobs", "default", name)["spec"]["suspend"] is True and kueue.evictions == 1
    assert rec.tick()["actions"] == {}  # still paused: nothing to do
    assert store.get_job(SYSTEM, job.id).status == "paused"
    now[0] = T0 + timedelta(hours=2)
    assert rec.tick()["actions"] == {"resume": 1}
    cluster_pass()
    assert kube.api.get("jobs", "default", name)["spec"]["suspend"] is False and kueue.admissions == 2
    assert len(kube.api.list("jobs", "default", None)[0]) == 1  # one Job throughout
