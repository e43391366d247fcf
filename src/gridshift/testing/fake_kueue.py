"""The cluster's controllers for tests, acting on a :class:`~.fake_kube.FakeKubeApi` in process: the Job
controller's outcomes (a pod started, the Job complete or failed) and ``MiniKueue``, Kueue's admission protocol
reduced to what an admission check sees:

- a Job labelled ``kueue.x-k8s.io/queue-name`` gets a Workload ``job-<name>`` owned by it (labelled
  ``kueue.x-k8s.io/job-uid`` with the Job's uid, as Kueue's job framework does), with one pod set
  ``main`` from its template, quota reserved at once in ``flavor`` (``status.admission``), ``QuotaReserved``, and
  every AdmissionCheck the test names ``Pending``;
- once every check is ``Ready``, the Workload is ``Admitted``: the checks' ``podSetUpdates`` are merged into the
  Job's pod template (nodeSelector, labels, annotations, tolerations) and the Job is unsuspended;
- a ``Retry`` evicts it (the Job suspended, its template restored, ``Admitted`` removed) and requeues it with
  every check back to ``Pending``; a ``Rejected`` deactivates it (``spec.active: false``, the Job suspended), and
  so does ``spec.active: false`` set by someone else;
- a finished Job finishes its Workload.

Quotas, cohorts, preemption and the ClusterQueue are not modelled.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from gridshift.testing.fake_kube import KUEUE, KUEUE_VERSION, FakeKubeApi

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cond(kind: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": _now()}


def set_job_status(api: FakeKubeApi, ns: str, name: str, *, outcome: str) -> dict[str, Any]:
    """Play the Job controller: ``outcome`` "started" (a pod running), "complete" or "failed"."""
    job = api.get("jobs", ns, name)
    st = dict(job.get("status") or {})
    if outcome == "started":
        st.update(startTime=_now(), active=1)
    elif outcome == "complete":
        st.update(active=0, succeeded=1, completionTime=_now(),
                  conditions=[_cond("SuccessCriteriaMet", "CompletionsReached"), _cond("Complete", "CompletionsReached")])
    elif outcome == "failed":
        st.update(active=0, failed=1, conditions=[
            _cond("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
            _cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")])
    else:
        raise ValueError(outcome)
    return api.update("jobs", ns, name, {"status": st}, status=True, patch=True)


def add_pod(api: FakeKubeApi, ns: str, job_name: str, *, phase: str = "Pending", unschedulable: str | None = None,
            waiting: tuple[str, str] | None = None) -> dict[str, Any]:
    """Play the Job controller and the scheduler: a pod of Job ``job_name`` (its template's labels), in ``phase``,
    unschedulable with that message, or with its container waiting for (reason, message)."""
    job = api.get("jobs", ns, job_name)
    tmpl = job["spec"]["template"]
    labels = dict((tmpl.get("metadata") or {}).get("labels") or {}, **{"batch.kubernetes.io/job-name": job_name})
    status: dict[str, Any] = {"phase": phase}
    if unschedulable:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": unschedulable, "lastTransitionTime": _now()}]
    if waiting:
        status["containerStatuses"] = [{"name": tmpl["spec"]["containers"][0]["name"], "ready": False,
                                        "restartCount": 0, "image": tmpl["spec"]["containers"][0]["image"],
                                        "imageID": "", "state": {"waiting": {"reason": waiting[0],
                                                                             "message": waiting[1]}}}]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"{job_name}-{len(api.objects):05d}"[-63:], "labels": labels},
           "spec": copy.deepcopy(tmpl["spec"]), "status": status}
    made = api.create("", "v1", "pods", ns, pod)
    return api.update("pods", ns, made["metadata"]["name"], {"status": status}, status=True, patch=True)


class MiniKueue:
    """Kueue's part (see the module docstring); ``step()`` is one reconcile pass over Jobs and Workloads."""

    def __init__(self, api: FakeKubeApi, checks: list[str], flavor: str = "default-flavor",
                 namespace: str = "default") -> None:
        self.api, self.checks, self.flavor, self.ns = api, list(checks), flavor, namespace
        self.evictions = 0
        self.admissions = 0
        self._originals: dict[str, dict[str, Any]] = {}  # Job name -> its pod template before admission

    def _entries(self) -> list[dict[str, Any]]:
        return [{"name": c, "state": "Pending", "message": "", "lastTransitionTime": _now()} for c in self.checks]

    def step(self) -> None:
        jobs, _ = self.api.list("jobs", self.ns, QUEUE_LABEL)
        for job in jobs:
            self._job(job)

    def _job(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        wname = f"job-{name}"[:63]
        try:
            wl = self.api.get("workloads", self.ns, wname)
        except Exception:
            wl = self.api.create(KUEUE, KUEUE_VERSION, "workloads", self.ns, {
                "apiVersion": f"{KUEUE}/{KUEUE_VERSION}", "kind": "Workload",
                "metadata": {"name": wname, "labels": {"kueue.x-k8s.io/job-uid": job["metadata"]["uid"]},
                             "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"],
                    "controller": True, "blockOwnerDeletion": True}]},
                "spec": {"queueName": job["metadata"]["labels"][QUEUE_LABEL], "active": True,
                         "podSets": [{"name": "main", "count": 1, "template": job["spec"]["template"]}]}})
            wl = self.api.update("workloads", self.ns, wname, {"status": {
                "admission": {"clusterQueue": "cluster-queue", "podSetAssignments": [
                    {"name": "main", "count": 1, "flavors": {"cpu": self.flavor}}]},
                "conditions": [_cond("QuotaReserved", "QuotaReserved", f"Quota reserved in {self.flavor}")],
                "admissionChecks": self._entries()}}, status=True, patch=True)
        conds = {c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c["status"] == "True"}
        if conds & {"Complete", "Failed"}:
            if not any(c["type"] == "Finished" for c in wl["status"].get("conditions") or []):
                self._set_status(wl, conditions=[*wl["status"]["conditions"], _cond("Finished", "JobFinished")])
            return
        states = {e["state"] for e in wl["status"].get("admissionChecks") or []}
        admitted = any(c["type"] == "Admitted" for c in wl["status"].get("conditions") or [])
        if "Rejected" in states and wl["spec"].get("active", True):
            self.api.update("workloads", self.ns, wl["metadata"]["name"], {"spec": {"active": False}}, patch=True)
            self._evict(job, wl, requeue=False)
        elif not wl["spec"].get("active", True):
            if admitted:  # deactivated by someone else: evicted, not requeued
                self._evict(job, wl, requeue=False)
        elif "Retry" in states:
            self._evict(job, wl, requeue=True)
        elif states == {"Ready"} and not admitted and wl["spec"].get("active", True):
            self._admit(job, wl)

    def _set_status(self, wl: dict[str, Any], **fields: Any) -> dict[str, Any]:
        st = dict(wl["status"], **fields)
        return self.api.update("workloads", self.ns, wl["metadata"]["name"], {"status": st}, status=True, patch=False)

    def _admit(self, job: dict[str, Any], wl: dict[str, Any]) -> None:
        tmpl = copy.deepcopy(job["spec"]["template"])
        spec = tmpl.setdefault("spec", {})
        meta = tmpl.setdefault("metadata", {})
        for e in wl["status"]["admissionChecks"]:
            for u in e.get("podSetUpdates") or []:
                spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **(u.get("nodeSelector") or {})}
                meta["labels"] = {**(meta.get("labels") or {}), **(u.get("labels") or {})}
                meta["annotations"] = {**(meta.get("annotations") or {}), **(u.get("annotations") or {})}
                if u.get("tolerations"):
                    spec["tolerations"] = [*(spec.get("tolerations") or []), *u["tolerations"]]
        self._originals[job["metadata"]["name"]] = copy.deepcopy(job["spec"]["template"])
        job = copy.deepcopy(job)
        job["spec"].update(suspend=False, template=tmpl)
        self.api.update("jobs", self.ns, job["metadata"]["name"], job)
        conds = [c for c in wl["status"].get("conditions") or [] if c["type"] != "Evicted"]
        self._set_status(wl, conditions=[*conds, _cond("Admitted", "Admitted")])
        self.admissions += 1

    def _evict(self, job: dict[str, Any], wl: dict[str, Any], *, requeue: bool) -> None:
        job = copy.deepcopy(job)
        job["spec"]["suspend"] = True
        job["spec"]["template"] = self._originals.pop(job["metadata"]["name"], job["spec"]["template"])
        self.api.update("jobs", self.ns, job["metadata"]["name"], job)
        conds = [c for c in wl["status"].get("conditions") or [] if c["type"] not in ("Admitted", "Evicted")]
        conds.append(_cond("Evicted", "AdmissionCheck", "at least one admission check is false"))
        self._set_status(wl, conditions=conds, admissionChecks=self._entries() if requeue else
                         wl["status"]["admissionChecks"])
        self.evictions += 1


__all__ = ["MiniKueue", "add_pod", "set_job_status"]
