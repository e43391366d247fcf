"""The Kubernetes executor against a fake API server (tests/support/kube_fixture.py): every Job it writes is
validated against the Kubernetes 1.37 schema; submit, idempotent restarts, pause/resume/move, stop, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gridshift.service.executors import kube_manifest as km
from gridshift.service.executors.base import ExecutorError, JobLaunch, Placement
from gridshift.testing.fake_kueue import set_job_status
from kube_fixture import start_server

POOLS = {
    "site-a": {"nodeSelector": {"topology.kubernetes.io/region": "eu-north-1", "gridshift.io/pool": "a"},
               "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    "site-b": {"nodeSelector": {"topology.kubernetes.io/region": "us-east-1"}},
}
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def kube():
    yield from start_server()


@pytest.fixture
def kube_no_kueue():
    yield from start_server(kueue=False)


def make(srv, **kw):
    from gridshift.service.executors.kube import KubernetesExecutor

    return KubernetesExecutor(api_url=srv.url, pools=POOLS, image="busybox:1.37", timeout_s=5, **kw)


def launch(job_id: str = "job-1", site: str = "site-a", acc: str = "H100", gang: int = 2, attempt: int = 1,
           cap: float = 1.0, command: list[str] | None = None) -> JobLaunch:
    return JobLaunch(job_id, command, env={"USER_VAR": "x"}, placement=Placement(site, acc, gang, cap),
                     work_acc_h=4.0, attempt=attempt)


def jobs(srv) -> dict[str, dict]:
    items, _ = srv.api.list("jobs", "default", None)
    return {o["metadata"]["name"]: o for o in items}


def posts(srv) -> int:
    return sum(1 for verb, path in srv.api.requests if verb == "POST" and "/jobs" in path)


@pytest.mark.parametrize(("acc", "resource"), [
    ("H100", "nvidia.com/gpu"), ("MI300X", "amd.com/gpu"), ("Trainium2", "aws.amazon.com/neuron"),
    ("Inferentia2", "aws.amazon.com/neuron"), ("TPU-v5e", "google.com/tpu"), ("Ascend-910B", "huawei.com/Ascend910"),
    ("cpu", None)])
def test_accelerator_resource_by_vendor(acc, resource):
    assert km.accelerator_resource(acc) == resource


def test_unknown_accelerator_and_overrides():
    with pytest.raises(ExecutorError, match="not in the catalog"):
        km.accelerator_resource("warp-drive-9000")
    assert km.accelerator_resource("warp-drive-9000", {"warp-drive-9000": "example.com/warp"}) == "example.com/warp"


def test_job_names_are_dns_labels_and_distinct():
    a = km.job_name("Team_A/Very.Long.Job-Name " * 4, 12, 3)
    b = km.job_name("team-a/very.long.job-name " * 4, 12, 3)
    assert a != b and len(a) <= 63 and a.endswith("-a12-r3")
    assert all(c.isalnum() and c.islower() or c.isdigit() or c == "-" for c in a)


def test_submit_creates_one_validated_job_per_attempt(kube):
    ex = make(kube)
    ref = ex.start(launch())
    assert ref == f"k8s:default/{km.job_name('job-1', 1, 1)}"
    (job,) = jobs(kube).values()
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["suspend"] is False and job["spec"]["backoffLimit"] == 0
    assert pod["nodeSelector"] == POOLS["site-a"]["nodeSelector"]
    assert pod["tolerations"] == POOLS["site-a"]["tolerations"]
    res = pod["containers"][0]["resources"]
    assert res["limits"] == {"nvidia.com/gpu": "2"} and res["requests"]["nvidia.com/gpu"] == "2"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["GRIDSHIFT_JOB_ID"] == "job-1" and env["USER_VAR"] == "x" and env["GRIDSHIFT_GANG"] == "2"
    assert pod["containers"][0]["command"] == ["sleep", "2.000"]  # simulated: 4 acc-h over 2 accelerators
    assert job["metadata"]["annotations"][km.A_JOB_ID] == "job-1"
    assert kube.api.validator.checked["jobs"] >= 1
    # the same attempt again (a retried dispatch): nothing new is created
    assert ex.start(launch()) == ref
    assert posts(kube) == 1 and len(jobs(kube)) == 1
    assert ex.status("job-1").state == "running"
    set_job_status(kube.api, "default", job["metadata"]["name"], outcome="started")
    set_job_status(kube.api, "default", job["metadata"]["name"], outcome="complete")
    st = ex.status("job-1")
    assert (st.state, st.exit_code, st.attempt) == ("succeeded", 0, 1) and st.started_at is not None


def test_failed_job_and_next_attempt(kube):
    ex = make(kube)
    ex.start(launch(command=["python3", "-c", "raise SystemExit(3)"]))
    name = km.job_name("job-1", 1, 1)
    with pytest.raises(ExecutorError, match="still running"):
        ex.start(launch(attempt=2))
    set_job_status(kube.api, "default", name, outcome="failed")
    st = ex.status("job-1")
    assert st.state == "failed" and "BackoffLimitExceeded" in st.reason
    ex.start(launch(attempt=2))
    assert ex.status("job-1").attempt == 2 and len(jobs(kube)) == 2
    with pytest.raises(ExecutorError, match="older than attempt 2"):
        ex.start(launch(attempt=1))


def test_pause_resume_and_move(kube):
    ex = make(kube)
    ex.start(launch())
    name = km.job_name("job-1", 1, 1)
    st = ex.pause("job-1")
    assert st.state == "paused" and jobs(kube)[name]["spec"]["suspend"] is True
    assert ex.pause("job-1").state == "paused"  # idempotent
    st = ex.resume("job-1")
    assert st.state == "running" and jobs(kube)[name]["spec"]["suspend"] is False
    with pytest.raises(ExecutorError, match="pause it before moving"):
        ex.resume("job-1", Placement("site-b", "H100", 2))
    ex.pause("job-1")
    st = ex.resume("job-1", Placement("site-b", "H100", 2, 0.7))
    assert st.state == "running" and st.ref.endswith("-a1-r2")
    new = jobs(kube)[km.job_name("job-1", 1, 2)]
    pod = new["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == POOLS["site-b"]["nodeSelector"] and "tolerations" not in pod
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["GRIDSHIFT_RESUMED"] == "1" and env["GRIDSHIFT_POWER_CAP_FRAC"] == "0.7" and env["USER_VAR"] == "x"
    assert jobs(kube)[name]["metadata"]["annotations"][km.A_STOP] == "moved"
    assert [s.ref for s in ex.report()] == [st.ref]


def test_power_cap_and_stop(kube):
    ex = make(kube)
    ex.start(launch())
    st = ex.set_power_cap("job-1", 0.6)
    ann = jobs(kube)[km.job_name("job-1", 1, 1)]["metadata"]["annotations"]
    assert st.power_cap_frac == 0.6 and ann[km.A_POWER_PROFILE] == "cap-0.60"
    with pytest.raises(ExecutorError, match="power cap"):
        ex.set_power_cap("job-1", 1.5)
    st = ex.stop("job-1")
    assert st.state == "failed" and st.reason == "stopped on request"
    assert jobs(kube)[km.job_name("job-1", 1, 1)]["spec"]["suspend"] is True
    assert ex.stop("job-1").state == "failed"


def test_stage_holds_until_start(kube):
    from datetime import timedelta

    from gridshift.service.executors.base import utc_now

    ex = make(kube)
    at = utc_now() + timedelta(hours=2)
    ex.stage(launch("job-0"), at)  # staged, then started in its slot
    assert jobs(kube)[km.job_name("job-0", 1, 1)]["spec"]["suspend"] is True
    ex.start(launch("job-0"))
    job0 = jobs(kube)[km.job_name("job-0", 1, 1)]
    assert job0["spec"]["suspend"] is False and km.A_START_AT not in job0["metadata"]["annotations"]
    ex.stage(launch(), at)
    job = jobs(kube)[km.job_name("job-1", 1, 1)]
    assert job["spec"]["suspend"] is True and job["metadata"]["annotations"][km.A_START_AT] == at.isoformat()
    assert "staged until" in ex.status("job-1").reason
    assert ex.pause("job-1").state == "paused"  # a staged job paused and resumed runs now
    st = ex.resume("job-1")
    assert st.state == "running" and st.reason is None and jobs(kube)[job["metadata"]["name"]]["spec"]["suspend"] is False
    assert km.A_START_AT not in jobs(kube)[job["metadata"]["name"]]["metadata"]["annotations"]
    assert ex.start(launch()).endswith(km.job_name("job-1", 1, 1))
    assert posts(kube) == 2


def test_deleted_job_is_lost_and_unknown_job(kube):
    ex = make(kube)
    ex.start(launch())
    kube.api.delete("jobs", "default", km.job_name("job-1", 1, 1))
    st = ex.status("job-1")
    assert st.state == "lost" and "deleted" in st.reason
    assert ex.status("nope").state == "unknown"
    with pytest.raises(ExecutorError, match="unknown to this executor"):
        ex.pause("nope")


def test_invalid_manifest_is_a_clear_error(kube):
    from gridshift.service.executors.kube import KubernetesExecutor

    bad = {"site-a": {"tolerations": [{"key": "k", "operatr": "Exists"}]}}  # a typo the schema rejects
    ex = KubernetesExecutor(api_url=kube.url, pools=bad, timeout_s=5)
    with pytest.raises(ExecutorError, match="manifest is invalid.*operatr") as e:
        ex.start(launch())
    assert e.value.retryable is False and jobs(kube) == {}
    # the server checks what the client lets through: the schema (strict) and the API server's name rules
    validator = kube.api.validator
    job = km.job_manifest(launch(), Placement("site-a", "H100", 2), run=1, pool=km.default_pool("site-a"),
                          image="busybox", command=["true"], env={}, resource="nvidia.com/gpu", instance="gs",
                          suspend=False)
    assert validator("jobs", job) is None
    assert "suspnd" in validator("jobs", {**job, "spec": {**job["spec"], "suspnd": True}})
    assert "metadata.name" in validator("jobs", {**job, "metadata": {**job["metadata"], "name": "Bad_Name"}})
    with pytest.raises(ExecutorError, match="HTTP 422.*metadata.name") as e:
        ex._raw(ex.batch.create_namespaced_job, "default", {**job, "metadata": {**job["metadata"], "name": "x_y"}},
                what="creating")
    assert e.value.retryable is False
    with pytest.raises(ExecutorError, match="unknown field"):
        KubernetesExecutor(api_url=kube.url, pools={"s": {"nodeselector": {}}})


def test_unreachable_api_is_retryable():
    pytest.importorskip("kubernetes")
    from gridshift.service.executors.kube import KubernetesExecutor
    from gridshift.testing.slurm_cluster import free_ports

    ex = KubernetesExecutor(api_url=f"http://127.0.0.1:{free_ports(1)[0]}", timeout_s=2)
    with pytest.raises(ExecutorError, match="unreachable") as e:
        ex.start(launch())
    assert e.value.retryable is True


def test_missing_kueue_crd_is_a_clear_job_error(kube_no_kueue):
    ex = make(kube_no_kueue, queue_name="team-a")
    with pytest.raises(ExecutorError, match="Kueue is not installed") as e:
        ex.start(launch())
    assert e.value.retryable is False and "job 'job-1'" in str(e.value) and jobs(kube_no_kueue) == {}


def test_missing_local_queue(kube):
    ex = make(kube, queue_name="team-a")
    with pytest.raises(ExecutorError, match="LocalQueue 'team-a' not found"):
        ex.start(launch())


_CHILD = textwrap.dedent("""
    import sys
    from gridshift.service.executors.kube import KubernetesExecutor
    from gridshift.service.executors.base import JobLaunch, Placement
    ex = KubernetesExecutor(api_url=sys.argv[1], timeout_s=5)
    for i in range(int(sys.argv[2])):
        ex.start(JobLaunch(f"job-{i}", None, placement=Placement("site-a", "H100", 1), attempt=1))
        print(i, flush=True)
""")


def test_restart_after_kill9_neither_loses_nor_duplicates(kube):
    n = 12
    child = subprocess.Popen([sys.executable, "-c", _CHILD, kube.url, str(n)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(SRC)})
    done = 0
    deadline = time.monotonic() + 60
    while done < 4 and time.monotonic() < deadline:
        if child.stdout.readline():
            done += 1
    child.send_signal(signal.SIGKILL)  # mid-dispatch: some Jobs created, one maybe in flight
    child.wait(10)
    created = {name: o["metadata"]["uid"] for name, o in jobs(kube).items()}
    assert 4 <= len(created) < n
    ex = make(kube)
    recovered = ex.recover()
    assert {s.job_id for s in recovered} == {f"job-{i}" for i in range(len(created))}
    for i in range(n):  # the reconciler re-issues every dispatch it has no record of finishing
        ex.start(JobLaunch(f"job-{i}", None, placement=Placement("site-a", "H100", 1), attempt=1))
    after = jobs(kube)
    assert len(after) == n and {km.job_name(f"job-{i}", 1, 1) for i in range(n)} == set(after)
    assert all(after[name]["metadata"]["uid"] == uid for name, uid in created.items())  # none recreated
    assert sorted(s.job_id for s in ex.report()) == sorted(f"job-{i}" for i in range(n))
    refs = [s.ref for s in ex.adopt([f"k8s:default/{km.job_name('job-0', 1, 1)}", "k8s:default/gone"])]
    assert refs[0].endswith("-a1-r1") and json.dumps(refs)


def test_serve_reads_the_kubernetes_options_file(tmp_path, kube):
    from gridshift.cli.serve import _executor_options
    from gridshift.errors import GridShiftError
    from gridshift.service.executors.registry import make_executor

    cfg = tmp_path / "kube.yaml"
    cfg.write_text(f"api_url: {kube.url}\nnamespace: gridshift\nimage: busybox:1.37\n"
                   "pools:\n  site-a: {nodeSelector: {topology.kubernetes.io/region: eu-north-1}}\n")
    opts = _executor_options("kubernetes", None, [], None, [], [], cfg)
    ex = make_executor("kubernetes", **opts, state_dir=tmp_path / "executor")
    assert ex.namespace == "gridshift" and ex.pool("site-a").node_selector == {"topology.kubernetes.io/region":
                                                                              "eu-north-1"}
    cfg.write_text("namespace: x\nimgae: busybox\n")
    with pytest.raises(GridShiftError, match="unknown option.*imgae"):
        _executor_options("kubernetes", None, [], None, [], [], cfg)
    with pytest.raises(GridShiftError, match="applies to the kubernetes executor"):
        _executor_options("local", None, [], None, [], [], cfg)
    with pytest.raises(GridShiftError, match="apply to the local executor"):
        _executor_options("kubernetes", "nobody", [], None, [], [], None)


def test_after_a_listing_a_new_job_is_one_request_and_a_race_is_adopted(kube):
    ex = make(kube)
    ex.recover()
    before = len(kube.api.requests)
    ex.start(launch("job-1"))
    assert [v for v, _ in kube.api.requests[before:]] == ["POST"]
    other = make(kube)  # another instance (or the one before a crash) creates job-2 after our listing
    other.start(launch("job-2"))
    ref = ex.start(launch("job-2"))
    assert ref.endswith(km.job_name("job-2", 1, 1)) and len(jobs(kube)) == 2
    assert ex.status("job-2").state == "running"


def test_a_pod_that_cannot_run_says_why(kube):
    from gridshift.testing.fake_kueue import add_pod

    ex = make(kube)
    ex.start(launch("job-1"))
    ex.start(launch("job-2", site="site-b"))
    assert ex.status("job-1").reason is None
    msg = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    add_pod(kube.api, "default", km.job_name("job-1", 1, 1), unschedulable=msg)
    add_pod(kube.api, "default", km.job_name("job-2", 1, 1),
            waiting=("ImagePullBackOff", 'Back-off pulling image "busybox:1.37"'))
    st = ex.status("job-1")
    assert st.state == "running" and st.reason == f"pending: Unschedulable: {msg}"
    by_id = {s.job_id: s for s in ex.report()}
    assert by_id["job-1"].reason == st.reason
    assert by_id["job-2"].reason.startswith("pending: ImagePullBackOff: Back-off pulling image")
    set_job_status(kube.api, "default", km.job_name("job-1", 1, 1), outcome="failed")
    assert "BackoffLimitExceeded" in ex.status("job-1").reason  # the Job's own verdict comes first


def test_the_documented_rbac_objects_are_valid():
    import yaml

    from kube_fixture import K8S_VERSION, require_kube

    require_kube()
    import kubernetes_validate

    text = (SRC.parent / "docs" / "service" / "executors.md").read_text()
    block = text[text.index("# rbac.yaml\n"):]
    block = block[:block.index("```")]
    docs = list(yaml.safe_load_all(block))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
                                         "ClusterRole", "ClusterRoleBinding"]
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    # every verb the code uses on a resource is granted
    rules: dict[tuple[str, str, str], set[str]] = {}
    for d in docs:
        for rule in d.get("rules") or []:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    rules.setdefault((d["kind"], g, r), set()).update(rule["verbs"])
    assert {"create", "patch", "list", "get"} <= rules[("Role", "batch", "jobs")]
    assert {"list"} <= rules[("Role", "", "pods")] and {"get"} <= rules[("ClusterRole", "batch", "jobs")]
    assert {"list", "patch"} <= rules[("Role", "kueue.x-k8s.io", "workloads")]
    assert {"get", "list", "patch"} <= rules[("ClusterRole", "", "nodes")]
    assert {"watch", "list"} <= rules[("ClusterRole", "kueue.x-k8s.io", "workloads")]
    assert "update" in rules[("ClusterRole", "kueue.x-k8s.io", "workloads/status")]


def test_drain_cordons_the_site_pools_nodes(kube):
    def node(name, region, ready=True):
        kube.api.create("", "v1", "nodes", "", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": {"topology.kubernetes.io/region": region, "gridshift.io/pool": "a"}}})
        kube.api.update("nodes", "", name, {"status": {"conditions": [
            {"type": "Ready", "status": "True" if ready else "False"}]}}, status=True, patch=True)

    node("gpu-1", "eu-north-1")
    node("gpu-2", "eu-north-1", ready=False)
    node("gpu-3", "us-east-1")
    ex = make(kube)
    assert [(n["name"], n["ready"]) for n in ex.nodes("site-a")] == [("gpu-1", True), ("gpu-2", False)]
    assert [n["name"] for n in ex.nodes("site-b")] == ["gpu-3"]
    with pytest.raises(ExecutorError, match="needs a reason"):
        ex.drain(["gpu-1"], " ")
    ex.drain(["gpu-1"], "grid event shed-7")
    (n1,) = [n for n in ex.nodes() if n["name"] == "gpu-1"]
    assert n1["cordoned"] and n1["reason"] == "grid event shed-7"
    kube.api.update("nodes", "", "gpu-3", {"spec": {"unschedulable": True}}, patch=True)  # an admin's cordon
    ex.undrain(["gpu-1", "gpu-3"])
    state = {n["name"]: n["cordoned"] for n in ex.nodes()}
    assert state == {"gpu-1": False, "gpu-2": False, "gpu-3": True}  # only GridShift's own cordon is lifted
    with pytest.raises(ExecutorError, match="HTTP 404"):
        ex.drain(["no-such-node"], "x")


def test_a_gang_larger_than_a_node_runs_as_an_indexed_job_of_whole_nodes(kube):
    """With ``acceleratorsPerNode`` 8, a gang of 16 is one Indexed Job of 2 pods of 8 accelerators (all at
    once), validated by the server like every manifest; a gang of 12 does not fill whole nodes: a clear
    error, nothing created; a gang that fits one node stays one pod."""
    from gridshift.service.executors.kube import KubernetesExecutor

    pools = {**POOLS, "site-a": {**POOLS["site-a"], "acceleratorsPerNode": 8}}
    ex = KubernetesExecutor(api_url=kube.url, pools=pools, image="busybox:1.37", timeout_s=5)
    ex.start(launch("big", gang=16))
    (job,) = jobs(kube).values()
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert pod["subdomain"] == job["metadata"]["name"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert (env["GRIDSHIFT_GANG"], env["GRIDSHIFT_NODES"], env["GRIDSHIFT_ACCELERATORS_PER_NODE"]) == ("16", "2", "8")
    assert kube.api.validator.checked["jobs"] >= 1
    with pytest.raises(ExecutorError, match="gang of 12 does not fill whole nodes of 8"):
        ex.start(launch("odd", gang=12))
    assert len(jobs(kube)) == 1
    ex.start(launch("small", gang=4))
    small = next(j for n, j in jobs(kube).items() if n != job["metadata"]["name"])
    assert "completionMode" not in small["spec"]
    assert small["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    with pytest.raises(ExecutorError, match="acceleratorsPerNode must be a whole number"):
        KubernetesExecutor(api_url=kube.url, pools={"site-a": {"acceleratorsPerNode": 0}}, image="busybox:1.37")
