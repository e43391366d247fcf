"""GridShift's Kueue admission check: a controller for AdmissionChecks with ``controllerName:
gridshift.io/grid-gate`` that holds a Workload until its planned start and gives capacity back on grid events.

Kueue reserves quota for a Workload, then waits until every admission check on it is ``Ready``. This controller
watches Workloads (``kueue.x-k8s.io/v1beta2``) and sets its checks' state from the GridShift annotations on the
Workload or on the Job that owns it (written by :class:`~.kube.KubernetesExecutor`):

- ``gridshift.io/stop``: ``Rejected`` (Kueue deactivates the Workload);
- ``gridshift.io/hold`` (a pause for a grid event): ``Retry`` while the Workload is admitted (Kueue evicts it,
  suspends the Job and requeues it), ``Pending`` afterwards until the hold is lifted;
- ``gridshift.io/start-at`` in the future: ``Pending`` ("held until its planned start …");
- otherwise ``Ready``, with ``podSetUpdates`` for every pod set: the site's ``nodeSelector`` and tolerations
  (the site pool's, as in the executor), the ``gridshift.io/site`` label and the power profile annotations
  (``gridshift.io/power-cap-frac``, ``gridshift.io/power-profile``) for a node agent or device plugin to apply.
  When the site's pool names a ResourceFlavor and Kueue reserved a different one, ``Retry`` (quota elsewhere).

Workloads without GridShift annotations are ``Ready`` at once (``unplanned="ready"``) or held (``"pending"``).
Status is written with the Workload's resourceVersion (409 Conflict: read again and recompute), only when the
state, message or updates change. See docs/service/executors.md.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from gridshift.service.executors import kube_manifest as km
from gridshift.service.executors.base import ExecutorError, Placement, utc_now
from gridshift.service.executors.kube import KUEUE_GROUP, KUEUE_VERSION, api_client, api_error

log = logging.getLogger(__name__)
CONTROLLER = "gridshift.io/grid-gate"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(s: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else None


def has_condition(wl: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (wl.get("status") or {}).get("conditions") or [])


def gate_decision(wl: Mapping[str, Any], ann: Mapping[str, str] | None, now: datetime,
                  pools: Mapping[str, km.SitePool], *, current: str | None,
                  unplanned: Literal["ready", "pending"] = "ready") -> tuple[str, str, list[dict[str, Any]]] | None:
    """(state, message, podSetUpdates) for the GridShift check of ``wl``, None to leave it alone. ``ann`` are
    the GridShift annotations (the Workload's or its Job's), None when it has none; ``current`` the check's
    state now."""
    status = wl.get("status") or {}
    if has_condition(wl, "Finished") or not status.get("admission"):
        return None  # Kueue evaluates checks once quota is reserved; finished workloads are left as they are
    if not ann or km.A_JOB_ID not in ann:
        if unplanned == "ready":
            return "Ready", "not a GridShift job: admitted without conditions", []
        return "Pending", "not a GridShift job: held (unplanned=pending)", []
    if km.A_STOP in ann:
        return "Rejected", f"stopped by GridShift ({ann[km.A_STOP]})", []
    if km.A_HOLD in ann:
        if current == "Ready":
            return "Retry", f"grid event: GridShift needs the capacity back ({ann[km.A_HOLD]})", []
        if current == "Retry":
            return None  # Kueue evicts, requeues and resets the check to Pending
        return "Pending", f"held by GridShift for a grid event ({ann[km.A_HOLD]})", []
    start = _parse(ann.get(km.A_START_AT, ""))
    if start is not None and start > now:
        if current == "Ready" and has_condition(wl, "Admitted"):
            return None  # already running: a later planned start does not take it back (a hold does)
        return "Pending", f"held until its planned start {_iso(start)}", []
    try:
        placement = Placement.from_dict(json.loads(ann[km.A_PLACEMENT]))
    except (KeyError, ValueError, TypeError):
        return "Ready", "no GridShift placement on the job: admitted where Kueue put it", []
    pool = pools.get(placement.site) or km.default_pool(placement.site)
    if pool.flavor:
        assigned = {f for a in status["admission"].get("podSetAssignments") or []
                    for f in (a.get("flavors") or {}).values()}
        if assigned and pool.flavor not in assigned:
            return "Retry", (f"Kueue reserved flavor {', '.join(sorted(assigned))}; GridShift planned site "
                             f"{placement.site} (flavor {pool.flavor})"), []
    updates = []
    for ps in (wl.get("spec") or {}).get("podSets") or []:
        u: dict[str, Any] = {"name": ps["name"], "labels": {km.L_SITE: km.label_value(placement.site)},
                             "annotations": {km.A_POWER_CAP: f"{placement.power_cap_frac:g}",
                                             km.A_POWER_PROFILE: km.power_profile(placement.power_cap_frac)}}
        if pool.node_selector:
            u["nodeSelector"] = dict(pool.node_selector)
        if pool.tolerations:
            u["tolerations"] = [dict(t) for t in pool.tolerations[:8]]
        updates.append(u)
    return "Ready", (f"planned by GridShift: site {placement.site}, power profile "
                     f"{km.power_profile(placement.power_cap_frac)}"), updates


class GridGate:
    """The admission check controller (see the module docstring). ``sync_once`` is one pass over every
    Workload; ``run`` watches Workloads and passes again every ``resync_s`` (planned starts arrive without
    events)."""

    def __init__(self, *, api: Any = None, api_url: str | None = None, kubeconfig: str | None = None,
                 context: str | None = None, token: str | None = None, namespace: str | None = None,
                 controller_name: str = CONTROLLER, pools: Mapping[str, Mapping[str, Any]] | None = None,
                 unplanned: Literal["ready", "pending"] = "ready", clock: Callable[[], datetime] = utc_now,
                 timeout_s: float = 10.0) -> None:
        from gridshift.errors import require

        self.k8s = require("kubernetes", "kubernetes", "the Kueue admission check")
        self.api = api or api_client(api_url, kubeconfig, context, token)
        self.custom = self.k8s.client.CustomObjectsApi(self.api)
        self.batch = self.k8s.client.BatchV1Api(self.api)
        self.namespace = namespace
        self.controller_name = controller_name
        self.pools = {site: km.SitePool.parse(site, p) for site, p in (pools or {}).items()}
        if unplanned not in ("ready", "pending"):
            raise ExecutorError(f"unplanned must be 'ready' or 'pending', got {unplanned!r}", retryable=False)
        self.unplanned = unplanned
        self.clock = clock
        self.timeout_s = timeout_s
        self.writes = 0  # status writes made, for tests and metrics
        self.conflicts = 0  # 409s met and retried
        self._rv = ""
        self._jobs: dict[tuple[str, str], dict[str, str]] = {}  # owner Jobs' annotations during a pass

    # ------------------------------------------------------------ API

    def _call(self, fn: Any, *args: Any, what: str) -> Any:
        try:
            return fn(*args, _request_timeout=self.timeout_s)
        except self.k8s.client.ApiException as e:
            if e.status == 404 and "kueue" in what:
                raise ExecutorError(f"{what}: Kueue is not installed (the API {KUEUE_GROUP}/{KUEUE_VERSION} is not "
                                    "served: install Kueue's CRDs)", retryable=False) from None
            raise api_error(e, what) from None
        except Exception as e:
            raise api_error(e, what) from None

    def ensure_admission_check(self, name: str = "gridshift-grid-gate") -> dict[str, Any]:
        """Create the AdmissionCheck ``name`` for this controller (kept if it exists) and mark it Active."""
        body = {"apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}", "kind": "AdmissionCheck",
                "metadata": {"name": name, "labels": {km.MANAGED_BY: "gridshift"}},
                "spec": {"controllerName": self.controller_name}}
        try:
            self._call(self.custom.create_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "admissionchecks", body,
                       what="creating the kueue AdmissionCheck")
        except ExecutorError as e:
            if "HTTP 409" not in e.message:
                raise
        self.mark_active()
        return self._call(self.custom.get_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "admissionchecks", name,
                          what="reading the kueue AdmissionCheck")

    def checks(self) -> list[dict[str, Any]]:
        """The AdmissionChecks this controller owns."""
        items = self._call(self.custom.list_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "admissionchecks",
                           what="listing kueue AdmissionChecks")["items"]
        return [c for c in items if (c.get("spec") or {}).get("controllerName") == self.controller_name]

    def mark_active(self) -> None:
        """Set ``Active=True`` on this controller's AdmissionChecks (Kueue ignores an inactive check's queue)."""
        for ac in self.checks():
            conds = [c for c in (ac.get("status") or {}).get("conditions") or [] if c.get("type") != "Active"]
            old = next((c for c in (ac.get("status") or {}).get("conditions") or [] if c.get("type") == "Active"), None)
            if old and old.get("status") == "True":
                continue
            conds.append({"type": "Active", "status": "True", "reason": "Active", "message": "GridShift grid gate is "
                          "running", "lastTransitionTime": _iso(self.clock()),
                          "observedGeneration": int(ac["metadata"].get("generation", 1))})
            ac["status"] = {"conditions": conds}
            self._call(self.custom.replace_cluster_custom_object_status, KUEUE_GROUP, KUEUE_VERSION, "admissionchecks",
                       ac["metadata"]["name"], ac, what="marking the kueue AdmissionCheck active")

    def workloads(self) -> tuple[list[dict[str, Any]], str]:
        if self.namespace:
            res = self._call(self.custom.list_namespaced_custom_object, KUEUE_GROUP, KUEUE_VERSION, self.namespace,
                             "workloads", what="listing kueue Workloads")
        else:
            res = self._call(self.custom.list_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "workloads",
                             what="listing kueue Workloads")
        return res["items"], res["metadata"].get("resourceVersion", "")

    def _annotations(self, wl: Mapping[str, Any]) -> dict[str, str] | None:
        """The GridShift annotations: the Workload's own, else those of the Job that owns it."""
        ann = wl["metadata"].get("annotations") or {}
        if km.A_JOB_ID in ann:
            return dict(ann)
        for ref in wl["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Job" and str(ref.get("apiVersion", "")).startswith("batch/"):
                cached = self._jobs.get((wl["metadata"]["namespace"], ref["name"]))
                if cached is not None:
                    return cached
                try:
                    job = self._call(self.batch.read_namespaced_job, ref["name"], wl["metadata"]["namespace"],
                                     what=f"reading Job {ref['name']}")
                except ExecutorError:
                    return None
                meta = job.metadata
                return dict(meta.annotations or {}) if meta is not None else None
        return None

    # ------------------------------------------------------------ the check

    def sync_workload(self, wl: dict[str, Any], names: set[str]) -> bool:
        """Set this controller's checks on ``wl``; True if the status was written."""
        for _ in range(5):
            status = wl.get("status") or {}
            entries = list(status.get("admissionChecks") or [])
            mine = [e for e in entries if e.get("name") in names]
            if not mine:
                return False
            ann = self._annotations(wl)
            now = self.clock()
            changed = False
            for e in mine:
                dec = gate_decision(wl, ann, now, self.pools, current=e.get("state"), unplanned=self.unplanned)
                if dec is None:
                    continue
                state, message, updates = dec
                new = {"name": e["name"], "state": state, "message": message[:32768],
                       "lastTransitionTime": e.get("lastTransitionTime") if e.get("state") == state else _iso(now)}
                if not new["lastTransitionTime"]:
                    new["lastTransitionTime"] = _iso(now)
                if updates:
                    new["podSetUpdates"] = updates
                for key in ("retryCount", "requeueAfterSeconds"):
                    if key in e:
                        new[key] = e[key]
                if new != e:
                    entries[entries.index(e)] = new
                    changed = True
            if not changed:
                return False
            wl["status"] = dict(status, admissionChecks=entries)
            ns, name = wl["metadata"]["namespace"], wl["metadata"]["name"]
            try:
                self._call(self.custom.replace_namespaced_custom_object_status, KUEUE_GROUP, KUEUE_VERSION, ns,
                           "workloads", name, wl, what=f"updating kueue Workload {ns}/{name}")
                self.writes += 1
                return True
            except ExecutorError as e:
                if "HTTP 409" not in e.message:
                    raise
                self.conflicts += 1
                try:
                    wl = self._call(self.custom.get_namespaced_custom_object, KUEUE_GROUP, KUEUE_VERSION, ns,
                                    "workloads", name, what=f"reading kueue Workload {ns}/{name}")
                except ExecutorError as e2:
                    if "HTTP 404" in e2.message:
                        return False  # deleted meanwhile
                    raise
        raise ExecutorError(f"kueue Workload {wl['metadata']['name']}: status kept changing (5 conflicts in a row)")

    def sync_once(self) -> dict[str, int]:
        """One pass over every Workload: {"workloads": n, "written": m}; the resourceVersion of the list is
        kept for ``run``'s watch."""
        names = {c["metadata"]["name"] for c in self.checks()}
        items, self._rv = self.workloads()
        self._jobs = self._queued_jobs()
        try:
            written = sum(self.sync_workload(wl, names) for wl in items)
        finally:
            self._jobs = {}
        return {"workloads": len(items), "written": written}

    def _queued_jobs(self) -> dict[tuple[str, str], dict[str, str]]:
        """The annotations of every Job sent to a Kueue queue, by (namespace, name): one list per pass instead
        of a read per Workload."""
        sel = "kueue.x-k8s.io/queue-name"
        try:
            if self.namespace:
                res = self.batch.list_namespaced_job(self.namespace, label_selector=sel, _preload_content=False,
                                                     _request_timeout=self.timeout_s)
            else:
                res = self.batch.list_job_for_all_namespaces(label_selector=sel, _preload_content=False,
                                                             _request_timeout=self.timeout_s)
            items = json.loads(res.data or b"{}").get("items") or []
        except Exception as e:  # read one by one instead
            log.info("grid gate: listing Jobs failed (%s); reading each owner", e)
            return {}
        return {(j["metadata"].get("namespace", ""), j["metadata"]["name"]): dict(j["metadata"].get("annotations") or {})
                for j in items}

    def run(self, stop: threading.Event, resync_s: float = 10.0, watch_s: float = 2.0) -> None:
        """Watch Workloads until ``stop`` is set, syncing each one that changes; a full pass every ``resync_s``
        seconds (planned starts come due without events) and after a watch that expired (410 Gone) or failed.
        Each watch request lasts ``watch_s`` at most, so ``stop`` is seen within that time."""
        import time

        watch = self.k8s.watch
        last_full = -float("inf")
        names: set[str] = set()
        while not stop.is_set():
            try:
                if time.monotonic() - last_full >= resync_s:
                    self.mark_active()
                    names = {c["metadata"]["name"] for c in self.checks()}
                    self.sync_once()
                    last_full = time.monotonic()
                if self.namespace:
                    args: tuple[Any, ...] = (self.custom.list_namespaced_custom_object, KUEUE_GROUP, KUEUE_VERSION,
                                             self.namespace, "workloads")
                else:
                    args = (self.custom.list_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "workloads")
                w = watch.Watch()
                for ev in w.stream(*args, resource_version=self._rv, timeout_seconds=max(1, int(watch_s))):
                    self._rv = ev["object"]["metadata"].get("resourceVersion", self._rv)
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self.sync_workload(ev["object"], names)
                    if stop.is_set():
                        w.stop()
                        break
            except ExecutorError as e:
                log.warning("grid gate: %s", e.message)
                last_full = -float("inf")
                stop.wait(min(resync_s, 5.0))
            except self.k8s.client.ApiException as e:  # 410 Gone from the watch: list again
                log.info("grid gate: watch ended (%s); listing again", e.status)
                last_full = -float("inf")
            except Exception as e:  # the connection dropped mid-watch
                log.warning("grid gate: %s: %s", type(e).__name__, e)
                last_full = -float("inf")
                stop.wait(min(resync_s, 5.0))


__all__ = ["CONTROLLER", "GridGate", "gate_decision", "has_condition"]
