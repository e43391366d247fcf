"""The Kubernetes executor: every run of a job a ``batch/v1`` Job, through the official ``kubernetes`` client.

A run is one Job (:mod:`.kube_manifest`: name, labels, annotations; the site's node selector and tolerations
from ``pools``; the accelerator's device-plugin resource, ``nvidia.com/gpu`` … ``huawei.com/Ascend910``, times the
gang). The cluster is the record: a Job's name is fixed by the job id, attempt and run, so creating it again
answers 409 and is adopted, and a restarted service (after ``kill -9``) finds every job by label. Decisions map as:

- start: create the Job (``spec.suspend: false``); a job staged with :meth:`KubernetesExecutor.stage`
  (``suspend: true`` and the planned start in ``gridshift.io/start-at``) is released instead;
- pause: ``spec.suspend: true`` and the ``gridshift.io/hold`` annotation (the Job controller deletes the pods:
  SIGTERM, the checkpoint signal, then SIGKILL after ``terminationGracePeriodSeconds``); resume clears both; a
  new site, type or gang ends the run and creates the next one there;
- stop: the ``gridshift.io/stop`` annotation and ``suspend: true`` (with Kueue, its Workload's ``spec.active:
  false`` instead): reported ``failed`` ("stopped on request");
- power caps: ``GRIDSHIFT_POWER_CAP_FRAC`` in the container's environment at start, and the
  ``gridshift.io/power-cap-frac`` / ``power-profile`` annotations (changed in place) for a node agent.

With ``queue_name`` the Jobs go to that Kueue LocalQueue (label ``kueue.x-k8s.io/queue-name``, created
suspended as Kueue requires) and Kueue decides when they run: the hold, the planned start, the site and the power
profile are annotations that the GridShift admission check (:mod:`.kueue_gate`) turns into check states and
``podSetUpdates``. A cluster without Kueue's CRDs or without the LocalQueue fails the job with a clear error.
See docs/service/executors.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gridshift.errors import require
from gridshift.service.executors import kube_manifest as km
from gridshift.service.executors.base import (
    ExecStatus,
    Executor,
    ExecutorError,
    JobLaunch,
    Placement,
    check_power_cap_frac,
    utc_now,
)
from gridshift.service.executors.job_contract import parse_time

KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta2"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"  # Kueue's label on a Job's Workload
MERGE = "application/merge-patch+json"


def api_client(api_url: str | None = None, kubeconfig: str | None = None, context: str | None = None,
               token: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient``: for ``api_url`` (plain, or with a bearer ``token``), else from a
    kubeconfig (``kubeconfig``/``context``, or ``~/.kube/config``), else the in-cluster service account."""
    k8s = require("kubernetes", "kubernetes", "the Kubernetes executor")
    cfg = k8s.client.Configuration()
    if api_url:
        cfg.host = api_url.rstrip("/")
        if token:
            cfg.api_key = {"authorization": f"Bearer {token}"}
    else:
        try:
            k8s.config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        except Exception as e:
            try:
                k8s.config.load_incluster_config(client_configuration=cfg)
            except Exception:
                raise ExecutorError(f"no Kubernetes API: kubeconfig failed ({e}) and not running in a cluster",
                                    retryable=False) from None
    cfg.retries = 1
    return k8s.client.ApiClient(cfg)


def api_error(e: Exception, what: str, job_id: str | None = None) -> ExecutorError:
    """An API failure as an ExecutorError: the server's message; retryable unless the request was refused."""
    status = getattr(e, "status", None)
    if type(e).__name__ == "ValidationError":  # the client's own models refused the body (pydantic)
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("For further")]
        return ExecutorError(f"{what}: the manifest is invalid: {' '.join(lines[1:3]) or e}", job_id=job_id,
                             retryable=False)
    if status is None:
        return ExecutorError(f"{what}: the Kubernetes API is unreachable ({type(e).__name__}: {e})", job_id=job_id)
    try:
        message = json.loads(getattr(e, "body", "") or "{}").get("message") or getattr(e, "reason", "")
    except ValueError:
        message = getattr(e, "reason", "") or ""
    return ExecutorError(f"{what}: HTTP {status} {message}", job_id=job_id,
                         retryable=status in (409, 429) or int(status) >= 500)


class KubernetesExecutor(Executor):
    """Jobs as Kubernetes Jobs (see the module docstring and docs/service/executors.md)."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: str = "default",
        image: str = "python:3.11-slim",
        pools: Mapping[str, Mapping[str, Any]] | None = None,
        resources: Mapping[str, str | None] | None = None,
        queue_name: str | None = None,
        instance: str = "gridshift",
        api_url: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        token: str | None = None,
        cpu: str = "1",
        memory: str | None = None,
        termination_grace_s: int = 30,
        service_account: str | None = None,
        sim_wall_s_per_run_h: float = 1.0,
        timeout_s: float = 10.0,
        api: Any = None,
        state_dir: Any = None,  # accepted for the registry's common options; the cluster is the record
    ) -> None:
        k8s = require("kubernetes", "kubernetes", "the Kubernetes executor")
        self.k8s = k8s
        self.api = api or api_client(api_url, kubeconfig, context, token)
        self.batch = k8s.client.BatchV1Api(self.api)
        self.core = k8s.client.CoreV1Api(self.api)
        self.custom = k8s.client.CustomObjectsApi(self.api)
        self.namespace, self.image, self.instance = namespace, image, instance
        self.pools = {site: km.SitePool.parse(site, p) for site, p in (pools or {}).items()}
        self.resources = dict(resources or {})
        self.queue_name = queue_name
        self.cpu, self.memory = cpu, memory
        self.termination_grace_s = int(termination_grace_s)
        self.service_account = service_account
        self.sim_wall_s_per_run_h = float(sim_wall_s_per_run_h)
        self.timeout_s = float(timeout_s)
        self._lock = threading.RLock()
        self._known: dict[str, dict[str, Any]] = {}  # job id -> newest run's Job object seen
        self._kueue_ok = False
        self._listed = False  # True once every Job of this instance was listed (report, recover)

    # ------------------------------------------------------------ API calls (raw JSON)

    def _raw(self, fn: Any, *args: Any, what: str, job_id: str | None = None, **kw: Any) -> dict[str, Any]:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout_s, **kw)
        except self.k8s.client.ApiException as e:
            raise api_error(e, what, job_id) from None
        except Exception as e:  # connection refused, timeouts: urllib3's errors
            raise api_error(e, what, job_id) from None
        return json.loads(resp.data or b"{}")

    def _list(self, selector: str) -> list[dict[str, Any]]:
        return self._raw(self.batch.list_namespaced_job, self.namespace, label_selector=selector,
                         what="listing Jobs")["items"]

    def _patch(self, obj: dict[str, Any], patch: dict[str, Any], job_id: str) -> dict[str, Any]:
        new = self._raw(self.batch.patch_namespaced_job, obj["metadata"]["name"], self.namespace, patch,
                        _content_type=MERGE, what=f"updating Job {obj['metadata']['name']}", job_id=job_id)
        self._known[job_id] = new
        return new

    def _selector(self, job_id: str | None = None) -> str:
        sel = f"{km.MANAGED_BY}=gridshift,{km.L_INSTANCE}={self.instance}"
        return sel + (f",{km.L_JOB}={km.job_hash(job_id)}" if job_id else "")

    # ------------------------------------------------------------ the cluster's view

    @staticmethod
    def _run_of(obj: dict[str, Any]) -> tuple[int, int]:
        labels = obj["metadata"].get("labels") or {}
        return int(labels.get(km.L_ATTEMPT, 0)), int(labels.get(km.L_RUN, 0))

    def _runs(self, job_id: str) -> list[dict[str, Any]]:
        """The job's Jobs in the cluster, oldest run first."""
        objs = [o for o in self._list(self._selector(job_id))
                if (o["metadata"].get("annotations") or {}).get(km.A_JOB_ID) == job_id]
        return sorted(objs, key=self._run_of)

    def _current(self, job_id: str) -> dict[str, Any]:
        runs = self._runs(job_id)
        if runs:
            self._known[job_id] = runs[-1]
            return runs[-1]
        if job_id in self._known:
            return self._known[job_id]
        raise ExecutorError("unknown to this executor (no Job labelled with it in namespace "
                            f"'{self.namespace}')", job_id=job_id, retryable=False)

    def _pod_problems(self, job_id: str | None = None) -> dict[tuple[Any, ...], str]:
        """Why a run's pod is stuck, by (job hash, attempt, run): unschedulable (no node of the pool fits or
        is up), or its container waiting (ImagePullBackOff, CreateContainerConfigError …). One list of this
        instance's pods; without the right to list pods, nothing."""
        sel = f"{km.MANAGED_BY}=gridshift" + (f",{km.L_JOB}={km.job_hash(job_id)}" if job_id else "")
        try:
            pods = self._raw(self.core.list_namespaced_pod, self.namespace, label_selector=sel,
                             what="listing pods")["items"]
        except ExecutorError:
            return {}
        out: dict[tuple[Any, ...], str] = {}
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            st = pod.get("status") or {}
            why = pod_problem(st)
            if why and st.get("phase") in ("Pending", None):
                key = (labels.get(km.L_JOB, ""), int(labels.get(km.L_ATTEMPT, 0)), int(labels.get(km.L_RUN, 0)))
                out.setdefault(key, why)
        return out

    def _problems(self, objs: list[dict[str, Any]], job_id: str | None = None) -> dict[tuple[Any, ...], str]:
        """Pod problems of running Jobs (:meth:`_pod_problems`) and, with Kueue, what Kueue says about suspended
        ones (key ``("kueue", uid)``); each looked up only when some Job needs it."""
        out: dict[tuple[Any, ...], str] = {}
        kueue = bool(self.queue_name)
        if any(job_state(o, kueue=kueue) == ("running", None, None) for o in objs):
            out.update(self._pod_problems(job_id))
        if kueue and any((o.get("spec") or {}).get("suspend") and job_state(o, kueue=True)[0] in ("running", "paused")
                         for o in objs):
            out.update({("kueue", uid): note for uid, note in self._kueue_notes().items()})
        return out

    def _kueue_notes(self) -> dict[str, str]:
        """What Kueue says about each queued Job, by Job uid (Kueue labels a Job's Workload
        ``kueue.x-k8s.io/job-uid``): the admission checks' messages, else why quota is not reserved."""
        try:
            wls = self._raw(self.custom.list_namespaced_custom_object, KUEUE_GROUP, KUEUE_VERSION, self.namespace,
                            "workloads", label_selector=JOB_UID_LABEL, what="listing kueue Workloads")["items"]
        except ExecutorError:
            return {}
        out = {}
        for wl in wls:
            uid = (wl["metadata"].get("labels") or {}).get(JOB_UID_LABEL)
            note = workload_note(wl)
            if uid and note:
                out[uid] = note
        return out

    def _status_of(self, obj: dict[str, Any], *, gone: bool = False,
                   problems: Mapping[tuple[Any, ...], str] | None = None) -> ExecStatus:
        ann = obj["metadata"].get("annotations") or {}
        job_id = ann.get(km.A_JOB_ID, obj["metadata"]["name"])
        attempt, _ = self._run_of(obj)
        state, exit_code, reason = job_state(obj, kueue=bool(self.queue_name))
        labels = obj["metadata"].get("labels") or {}
        stuck = (problems or {}).get((labels.get(km.L_JOB, ""), *self._run_of(obj)))
        if state == "running" and reason is None and stuck:
            reason = f"pending: {stuck}"
        note = (problems or {}).get(("kueue", obj["metadata"].get("uid", "")))
        if note and state in ("running", "paused") and (obj.get("spec") or {}).get("suspend"):
            reason = f"{reason}; Kueue: {note}" if reason else f"Kueue: {note}"
        if gone and state not in ("succeeded", "failed"):
            state, reason = "lost", f"the Job {obj['metadata']['name']} was deleted from the cluster"
        st = obj.get("status") or {}
        return ExecStatus(job_id=job_id, state=state, exit_code=exit_code, reason=reason,
                          started_at=parse_time((st.get("startTime") or "").replace("Z", "+00:00") or None),
                          power_cap_frac=float(ann.get(km.A_POWER_CAP, 1.0)),
                          ref=f"k8s:{self.namespace}/{obj['metadata']['name']}", attempt=attempt)

    def status(self, job_id: str) -> ExecStatus:
        with self._lock:
            runs = self._runs(job_id)
            if runs:
                self._known[job_id] = runs[-1]
                problems = self._problems([runs[-1]], job_id)
                return self._status_of(runs[-1], problems=problems)
            if job_id in self._known:
                return self._status_of(self._known[job_id], gone=True)
            return ExecStatus(job_id=job_id, state="unknown", reason="no Job of this job in the cluster")

    def report(self) -> list[ExecStatus]:
        with self._lock:
            newest: dict[str, dict[str, Any]] = {}
            for obj in self._list(self._selector()):
                job_id = (obj["metadata"].get("annotations") or {}).get(km.A_JOB_ID)
                if job_id and (job_id not in newest or self._run_of(obj) > self._run_of(newest[job_id])):
                    newest[job_id] = obj
            problems = self._problems(list(newest.values()))
            out = [self._status_of(o, problems=problems) for o in newest.values()]
            out += [self._status_of(o, gone=True) for j, o in self._known.items() if j not in newest]
            self._known.update(newest)
            self._listed = True
            return sorted(out, key=lambda s: s.job_id)

    def recover(self) -> list[ExecStatus]:
        """Every job of this instance in the cluster (every call is one API write, so nothing is left half
        done by a crash; a start cut short is re-issued by the reconciler and answered 409, adopted)."""
        return self.report()

    def adopt(self, refs: list[str]) -> list[ExecStatus]:
        out = []
        with self._lock:
            for ref in refs:
                ns, _, name = ref.removeprefix("k8s:").partition("/")
                try:
                    obj = self._raw(self.batch.read_namespaced_job, name, ns or self.namespace, what=f"reading {ref}")
                except ExecutorError as e:
                    out.append(ExecStatus(job_id=ref, state="unknown", ref=ref, reason=e.message))
                    continue
                st = self._status_of(obj)
                self._known[st.job_id] = obj
                out.append(st)
        return out

    # ------------------------------------------------------------ submitting

    def pool(self, site: str) -> km.SitePool:
        return self.pools.get(site) or km.default_pool(site)

    def check_kueue(self, job_id: str | None = None) -> None:
        """Kueue's API is served and the LocalQueue exists, else a non-retryable ExecutorError saying so."""
        if self._kueue_ok or not self.queue_name:
            return
        try:
            self._raw(self.custom.get_api_resources, KUEUE_GROUP, KUEUE_VERSION, what="Kueue discovery")
        except ExecutorError as e:
            if "HTTP 404" in e.message:
                raise ExecutorError(f"Kueue is not installed in this cluster: the API {KUEUE_GROUP}/{KUEUE_VERSION} "
                                    "(CRD workloads.kueue.x-k8s.io) is not served; install Kueue or run without "
                                    "queue_name", job_id=job_id, retryable=False) from None
            raise
        try:
            self._raw(self.custom.get_namespaced_custom_object, KUEUE_GROUP, KUEUE_VERSION, self.namespace,
                      "localqueues", self.queue_name, what="reading the LocalQueue")
        except ExecutorError as e:
            if "HTTP 404" in e.message:
                raise ExecutorError(f"Kueue LocalQueue '{self.queue_name}' not found in namespace "
                                    f"'{self.namespace}'", job_id=job_id, retryable=False) from None
            raise
        self._kueue_ok = True

    def _command(self, launch: JobLaunch, placement: Placement) -> list[str]:
        if launch.command is not None:
            return list(launch.command)
        work_s = launch.work_acc_h / placement.gang * self.sim_wall_s_per_run_h
        return ["sleep", f"{work_s:.3f}"]  # the built-in simulated workload: its run time only

    def _create(self, launch: JobLaunch, placement: Placement, run: int, *, suspend: bool,
                start_at: datetime | None = None) -> dict[str, Any]:
        manifest = km.job_manifest(
            launch, placement, run=run, pool=self.pool(placement.site), image=self.image,
            command=self._command(launch, placement), env=km.contract_env(launch, placement, run, "SIGTERM"),
            resource=km.accelerator_resource(placement.accelerator, self.resources), instance=self.instance,
            suspend=suspend or bool(self.queue_name), queue_name=self.queue_name, start_at=start_at, cpu=self.cpu,
            memory=self.memory, termination_grace_s=self.termination_grace_s, service_account=self.service_account)
        try:
            obj = self._raw(self.batch.create_namespaced_job, self.namespace, manifest,
                            what=f"creating Job {manifest['metadata']['name']}", job_id=launch.job_id)
        except ExecutorError as e:
            if "HTTP 409" not in e.message:
                raise
            obj = self._raw(self.batch.read_namespaced_job, manifest["metadata"]["name"], self.namespace,
                            what="reading the existing Job", job_id=launch.job_id)  # created before a crash
        self._known[launch.job_id] = obj
        return obj

    def _open(self, launch: JobLaunch, start_at: datetime | None) -> tuple[dict[str, Any], bool]:
        """The Job of ``launch``'s attempt: (Job, True) if it existed, else created now. A job the last full
        listing (``report``, ``recover``) did not show is created without asking first (a Job made meanwhile
        answers 409 and is adopted): one request per new job."""
        runs = [] if self._listed and launch.job_id not in self._known else self._runs(launch.job_id)
        if runs and self._run_of(runs[-1])[0] > launch.attempt:
            raise ExecutorError(f"attempt {launch.attempt} is older than attempt {self._run_of(runs[-1])[0]} "
                                "already started", job_id=launch.job_id, retryable=False)
        if runs and self._run_of(runs[-1])[0] == launch.attempt:
            self._known[launch.job_id] = runs[-1]
            return runs[-1], True
        if runs:
            st = self._status_of(runs[-1])
            if not st.finished:
                raise ExecutorError(f"attempt {st.attempt} is still {st.state}; stop it before starting attempt "
                                    f"{launch.attempt}", job_id=launch.job_id)
        self.check_kueue(launch.job_id)
        return self._create(launch, launch.placement, 1, suspend=start_at is not None, start_at=start_at), False

    def start(self, launch: JobLaunch) -> str:
        with self._lock:
            obj, existed = self._open(launch, None)
            ann = obj["metadata"].get("annotations") or {}
            if existed and km.A_START_AT in ann:  # staged: release it
                patch: dict[str, Any] = {"metadata": {"annotations": {km.A_START_AT: None}}}
                if not self.queue_name:
                    patch["spec"] = {"suspend": False}
                obj = self._patch(obj, patch, launch.job_id)
            return self._status_of(obj).ref or ""

    def stage(self, launch: JobLaunch, start_at: datetime) -> str:
        """Create ``launch`` suspended with its planned start (``gridshift.io/start-at``) so the cluster, and
        with Kueue the admission check, hold it until then; ``start`` releases it. Staging again moves it."""
        with self._lock:
            obj, existed = self._open(launch, start_at)
            ann = obj["metadata"].get("annotations") or {}
            if existed and km.A_START_AT in ann and ann[km.A_START_AT] != start_at.isoformat():
                obj = self._patch(obj, {"metadata": {"annotations": {km.A_START_AT: start_at.isoformat()}}},
                                  launch.job_id)
            return self._status_of(obj).ref or ""

    # ------------------------------------------------------------ pause / resume / stop / power

    def pause(self, job_id: str) -> ExecStatus:
        with self._lock:
            obj = self._current(job_id)
            st = self._status_of(obj)
            if st.state != "running":
                return st
            patch: dict[str, Any] = {"metadata": {"annotations": {km.A_HOLD: f"paused at {utc_now().isoformat()}"}}}
            if not self.queue_name:  # with Kueue the admission check answers Retry and Kueue evicts
                patch["spec"] = {"suspend": True}
            return self._status_of(self._patch(obj, patch, job_id))

    def resume(self, job_id: str, placement: Placement | None = None) -> ExecStatus:
        with self._lock:
            obj = self._current(job_id)
            st = self._status_of(obj)
            if st.finished:
                return st
            ann = obj["metadata"].get("annotations") or {}
            old = Placement.from_dict(json.loads(ann[km.A_PLACEMENT]))
            if self._moving(old, placement):
                if st.state != "paused":
                    raise ExecutorError(f"is {st.state}; pause it before moving it to {placement.site}/"
                                        f"{placement.accelerator}", job_id=job_id, retryable=False)
                _, run = self._run_of(obj)
                new = self._create(self._launch_of(obj, placement), placement, run + 1, suspend=False)
                self._patch(obj, {"metadata": {"annotations": {km.A_STOP: "moved"}}}, job_id)  # after: a crash
                self._known[job_id] = new  # in between leaves the newer run as the job's, the old one suspended
                return self._status_of(new)
            patch: dict[str, Any] = {"metadata": {"annotations": {km.A_HOLD: None, km.A_START_AT: None}}}
            if placement is not None and placement != old:  # a new cap, or (with Kueue) a new site
                patch["metadata"]["annotations"].update(self._placement_annotations(placement))
            if not self.queue_name and st.state == "paused":
                patch["spec"] = {"suspend": False}
            return self._status_of(self._patch(obj, patch, job_id))

    def _moving(self, old: Placement, new: Placement | None) -> bool:
        """A new type or gang needs a new Job; so does a new site without Kueue (with Kueue the admission
        check pins the site at the next admission)."""
        if new is None:
            return False
        return (new.accelerator, new.gang) != (old.accelerator, old.gang) or (new.site != old.site
                                                                              and not self.queue_name)

    def _launch_of(self, obj: dict[str, Any], placement: Placement) -> JobLaunch:
        """The launch a Job was made from (its command and the caller's environment), at ``placement``."""
        ann = obj["metadata"].get("annotations") or {}
        c = obj["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value", "") for e in c.get("env") or [] if not e["name"].startswith("GRIDSHIFT_")}
        attempt, _ = self._run_of(obj)
        cmd = list(c.get("command") or [])
        return JobLaunch(ann[km.A_JOB_ID], cmd or None, env=env, placement=placement, attempt=attempt,
                         work_acc_h=float(ann.get(km.A_WORK, 1.0)))

    @staticmethod
    def _placement_annotations(p: Placement) -> dict[str, str]:
        return {km.A_PLACEMENT: json.dumps(p.to_dict(), sort_keys=True), km.A_POWER_CAP: f"{p.power_cap_frac:g}",
                km.A_POWER_PROFILE: km.power_profile(p.power_cap_frac)}

    def stop(self, job_id: str) -> ExecStatus:
        with self._lock:
            obj = self._current(job_id)
            st = self._status_of(obj)
            if st.finished:
                return st
            patch: dict[str, Any] = {"metadata": {"annotations": {km.A_STOP: f"requested at {utc_now().isoformat()}"}}}
            if not self.queue_name:
                patch["spec"] = {"suspend": True}
            st = self._status_of(self._patch(obj, patch, job_id))
            if self.queue_name:  # Kueue owns spec.suspend: deactivate the Workload (the gate also answers Rejected)
                self._deactivate(obj, job_id)
            return st

    def _deactivate(self, obj: dict[str, Any], job_id: str) -> None:
        """``spec.active: false`` on the Job's Workload (Kueue evicts it and suspends the Job); none yet: the
        grid gate rejects it when Kueue makes it."""
        uid = obj["metadata"].get("uid", "")
        wls = self._raw(self.custom.list_namespaced_custom_object, KUEUE_GROUP, KUEUE_VERSION, self.namespace,
                        "workloads", label_selector=f"{JOB_UID_LABEL}={uid}", what="finding the Job's kueue Workload",
                        job_id=job_id)["items"]
        for wl in wls:
            self._raw(self.custom.patch_namespaced_custom_object, KUEUE_GROUP, KUEUE_VERSION, self.namespace,
                      "workloads", wl["metadata"]["name"], {"spec": {"active": False}}, _content_type=MERGE,
                      what=f"deactivating kueue Workload {wl['metadata']['name']}", job_id=job_id)

    def set_power_cap(self, job_id: str, frac: float) -> ExecStatus:
        frac = check_power_cap_frac(frac, job_id)
        with self._lock:
            obj = self._current(job_id)
            ann = obj["metadata"].get("annotations") or {}
            old = Placement.from_dict(json.loads(ann[km.A_PLACEMENT]))
            new = Placement(old.site, old.accelerator, old.gang, frac)
            return self._status_of(self._patch(obj, {"metadata": {"annotations": self._placement_annotations(new)}},
                                               job_id))

    # ------------------------------------------------------------ nodes

    def nodes(self, site: str | None = None) -> list[dict[str, Any]]:
        """The cluster's nodes (of ``site``'s pool: those its node selector matches): name, cordoned or not,
        the reason GridShift gave, ready or not."""
        pools = [self.pool(site)] if site is not None else None
        out = []
        for n in self._raw(self.core.list_node, what="listing nodes")["items"]:
            labels = n["metadata"].get("labels") or {}
            if pools is not None and not all(labels.get(k) == v for k, v in pools[0].node_selector.items()):
                continue
            ready = next((c.get("status") == "True" for c in (n.get("status") or {}).get("conditions") or []
                          if c.get("type") == "Ready"), None)
            out.append({"name": n["metadata"]["name"], "cordoned": bool((n.get("spec") or {}).get("unschedulable")),
                        "reason": (n["metadata"].get("annotations") or {}).get(km.A_DRAIN, ""), "ready": ready})
        return out

    def drain(self, nodes: list[str], reason: str) -> None:
        """Cordon ``nodes`` (``spec.unschedulable: true``, the reason in ``gridshift.io/drain``): no new pods
        start there, running ones finish — DR shedding of whole nodes, as ``kubectl cordon``. Pods are not
        evicted: pause the jobs for that."""
        if not reason.strip():
            raise ExecutorError("draining a node needs a reason", retryable=False)
        for name in nodes:
            self._raw(self.core.patch_node, name, {"spec": {"unschedulable": True},
                                                   "metadata": {"annotations": {km.A_DRAIN: reason}}},
                      _content_type=MERGE, what=f"cordoning node {name}")

    def undrain(self, nodes: list[str]) -> None:
        """Return cordoned ``nodes`` to service (only the cordon GridShift set: a node without its annotation
        is left as it is)."""
        for name in nodes:
            node = self._raw(self.core.read_node, name, what=f"reading node {name}")
            if km.A_DRAIN not in (node["metadata"].get("annotations") or {}):
                continue
            self._raw(self.core.patch_node, name, {"spec": {"unschedulable": None},
                                                   "metadata": {"annotations": {km.A_DRAIN: None}}},
                      _content_type=MERGE, what=f"uncordoning node {name}")

    def close(self) -> None:
        try:
            self.api.close()
        except Exception:  # closing a pool that is already closed
            pass


def workload_note(wl: Mapping[str, Any]) -> str | None:
    """Kueue's word on a Workload that is not admitted: its admission checks' messages (those not Ready), else
    the message of its ``QuotaReserved`` condition when that is False (no quota, no flavor fits)."""
    st = wl.get("status") or {}
    checks = [f"{c['name']} {c.get('state')}: {c.get('message')}" if c.get("message") else f"{c['name']} {c.get('state')}"
              for c in st.get("admissionChecks") or [] if c.get("state") != "Ready"]
    if checks:
        return "; ".join(checks)
    for c in st.get("conditions") or []:
        if c.get("type") == "QuotaReserved" and c.get("status") == "False" and c.get("message"):
            return f"no quota reserved: {c['message']}"
    return None


def pod_problem(status: Mapping[str, Any]) -> str | None:
    """Why a pod does not run yet, from its status: the scheduler's message, or a container's waiting reason
    other than the normal ``ContainerCreating``/``PodInitializing``."""
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return f"{c.get('reason') or 'Unschedulable'}: {c.get('message') or 'no node fits'}"
    for cs in status.get("containerStatuses") or []:
        w = (cs.get("state") or {}).get("waiting") or {}
        if w.get("reason") and w["reason"] not in ("ContainerCreating", "PodInitializing"):
            return f"{w['reason']}: {w.get('message') or ''}".rstrip(": ")
    return None


def job_state(obj: Mapping[str, Any], *, kueue: bool) -> tuple[str, int | None, str | None]:
    """(state, exit code, reason) of a run from its Job: conditions first, then GridShift's annotations."""
    ann = obj["metadata"].get("annotations") or {}
    conds = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in conds:
        return "succeeded", 0, None
    if "Failed" in conds:
        c = conds["Failed"]
        return "failed", None, f"{c.get('reason') or 'Failed'}: {c.get('message') or 'the Job failed'}"
    if km.A_STOP in ann:
        return "failed", None, "stopped on request" if ann[km.A_STOP] != "moved" else "moved to a new placement"
    if km.A_HOLD in ann:
        return "paused", None, ann[km.A_HOLD]
    suspended = bool((obj.get("spec") or {}).get("suspend"))
    if km.A_START_AT in ann and (suspended or kueue):
        return "running", None, f"staged until its planned start {ann[km.A_START_AT]}"
    if suspended:
        return ("running", None, "queued in Kueue until admitted") if kueue else ("paused", None, "suspended")
    return "running", None, None


__all__ = ["KubernetesExecutor", "api_client", "api_error", "job_state", "pod_problem", "workload_note"]
