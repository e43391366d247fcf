"""Benchmark: the Kubernetes executor's dispatch rate and report pass, and the Kueue admission check's pass,
against the fake API server (gridshift.testing.fake_kube) in a child process on loopback.

No Kubernetes API server runs on this machine, so what is measured is GridShift's side: the official client
(37.0.3) building, sending and parsing each request, plus a Python HTTP server that stores objects in memory
(no etcd, no admission webhooks, no schema validation, no authentication). A real API server adds its own
latency per write (typically milliseconds, more under load); read the figures as an upper bound on the rate
and a lower bound on the pass time.

Executor: after ``recover()`` (one listing, as the reconciler's first pass does), ``start`` of ``--jobs``
jobs one after the other (each: one list by label for the job's runs, one create); starts per second over
the first and the last 500. Then ``report()`` with every Job in the namespace (one list, a status per job),
``--repeats`` times, and the list alone.

Gate: ``--workloads`` Workloads with quota reserved and the check ``Pending`` (their Jobs' annotations: a
planned start in the past), then ``GridGate.sync_once()``: the first pass reads each owner Job and writes
each Workload's status (Ready with podSetUpdates); the second pass writes nothing.

    python benchmarks/bench_kube.py [--jobs 2000] [--workloads 1000] [--repeats 5]
                                    [--json benchmarks/results/bench_kube.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data import files
from gridshift.service.executors import JobLaunch, Placement
from gridshift.service.executors import kube_manifest as km
from gridshift.service.executors.kube import KubernetesExecutor
from gridshift.service.executors.kueue_gate import GridGate

ROOT = Path(__file__).resolve().parents[1]
KUEUE, VERSION = "kueue.x-k8s.io", "v1beta2"


def summary(xs: list[float]) -> dict:
    return {"mean_s": round(statistics.fmean(xs), 4), "median_s": round(statistics.median(xs), 4),
            "min_s": round(min(xs), 4), "max_s": round(max(xs), 4), "n": len(xs)}


def server() -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "gridshift.testing.fake_kube"], stdout=subprocess.PIPE, text=True,
                            env=env)
    return proc, proc.stdout.readline().strip()


def bench_executor(url: str, n: int, repeats: int) -> dict:
    ex = KubernetesExecutor(api_url=url, image="busybox:1.37", pools={"site-a": {"nodeSelector": {"r": "a"}}})
    ex.recover()
    times = []
    for i in range(n):
        t = time.perf_counter()
        ex.start(JobLaunch(f"bench-{i}", ["sleep", "3600"], placement=Placement("site-a", "H100", 1), attempt=1))
        times.append(time.perf_counter() - t)
    k = min(500, n)
    reports, lists = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        st = ex.report()
        reports.append(time.perf_counter() - t)
        t = time.perf_counter()
        ex._list(ex._selector())
        lists.append(time.perf_counter() - t)
    assert len(st) == n
    return {"jobs": n, "start_jobs_per_s_first_500": round(k / sum(times[:k]), 1),
            "start_jobs_per_s_last_500": round(k / sum(times[-k:]), 1), "start_median_s": round(statistics.median(times), 5),
            "report": summary(reports), "list_jobs": summary(lists)}


def bench_gate(url: str, n: int) -> dict:
    gate = GridGate(api_url=url, pools={"site-a": {"nodeSelector": {"r": "a"}}})
    gate.ensure_admission_check("gridshift-grid-gate")
    batch, custom = gate.batch, gate.custom
    for i in range(n):
        launch = JobLaunch(f"gate-{i}", ["true"], placement=Placement("site-a", "cpu", 1, 0.8), attempt=1)
        job = km.job_manifest(launch, launch.placement, run=1, pool=km.default_pool("site-a"), image="busybox",
                              command=["true"], env={}, resource=None, instance="bench", suspend=True,
                              queue_name="q", start_at=None)
        made = json.loads(batch.create_namespaced_job("default", job, _preload_content=False).data)
        wl = custom.create_namespaced_custom_object(KUEUE, VERSION, "default", "workloads", {
            "apiVersion": f"{KUEUE}/{VERSION}", "kind": "Workload",
            "metadata": {"name": f"job-{job['metadata']['name']}", "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                "uid": made["metadata"]["uid"], "controller": True}]},
            "spec": {"queueName": "q", "podSets": [{"name": "main", "count": 1, "template": job["spec"]["template"]}]}})
        wl["status"] = {"admission": {"clusterQueue": "cq", "podSetAssignments": [{"name": "main", "count": 1,
                                                                                "flavors": {"cpu": "f"}}]},
                        "admissionChecks": [{"name": "gridshift-grid-gate", "state": "Pending", "message": "",
                                             "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        custom.replace_namespaced_custom_object_status(KUEUE, VERSION, "default", "workloads",
                                                       wl["metadata"]["name"], wl)
    t = time.perf_counter()
    first = gate.sync_once()
    t1 = time.perf_counter() - t
    t = time.perf_counter()
    second = gate.sync_once()
    t2 = time.perf_counter() - t
    assert first["written"] == n and second["written"] == 0
    return {"workloads": n, "first_pass_s": round(t1, 3), "first_pass_writes": first["written"],
            "second_pass_s": round(t2, 3), "second_pass_writes": second["written"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--workloads", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "bench_kube.json")
    a = ap.parse_args()
    proc, url = server()
    try:
        ex = bench_executor(url, a.jobs, a.repeats)
        print(json.dumps(ex, indent=1), flush=True)
        gate = bench_gate(url, a.workloads)
        print(json.dumps(gate, indent=1), flush=True)
    finally:
        proc.kill()
        proc.wait()
    import kubernetes

    out = {"benchmark": "kube", "code": git_state(),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
           "client": f"kubernetes {kubernetes.__version__}",
           "api_server": "gridshift.testing.fake_kube in a child process on loopback (in memory, no validation)",
           "executor": ex, "gate": gate}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    files.write_json_atomic(a.json, out, indent=1)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
