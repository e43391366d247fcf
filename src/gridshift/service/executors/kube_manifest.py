"""The Kubernetes objects GridShift writes, as plain dicts: a job's ``batch/v1`` Job, its names, labels and
annotations, the accelerator resource names per vendor, and the site pools (node selector, tolerations).

A run of a GridShift job is one Job named ``gs-<slug>-<hash>-a<attempt>-r<run>`` (a DNS-1123 label of at most
63 characters; ``hash`` is the first 10 hex digits of SHA-256 of the job id, so two ids never share a name).
Its labels carry the hash, attempt and run (for label selectors) and its annotations the job id itself, the
placement, the power cap, the planned start and the GridShift hold, which is everything a restarted service (or
the Kueue admission check, :mod:`.kueue_gate`) needs: the cluster is the executor's record.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridshift.service.executors.base import ExecutorError, JobLaunch, Placement

GROUP = "gridshift.io"
MANAGED_BY = "app.kubernetes.io/managed-by"
L_JOB = f"{GROUP}/job-hash"
L_ATTEMPT = f"{GROUP}/attempt"
L_RUN = f"{GROUP}/run"
L_INSTANCE = f"{GROUP}/instance"
L_SITE = f"{GROUP}/site"
A_JOB_ID = f"{GROUP}/job-id"
A_PLACEMENT = f"{GROUP}/placement"
A_POWER_CAP = f"{GROUP}/power-cap-frac"
A_POWER_PROFILE = f"{GROUP}/power-profile"
A_START_AT = f"{GROUP}/start-at"
A_HOLD = f"{GROUP}/hold"
A_STOP = f"{GROUP}/stop"
A_WORK = f"{GROUP}/work-acc-h"
A_DRAIN = f"{GROUP}/drain"  # on a node GridShift cordoned: the reason
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CONTAINER = "job"

# Device-plugin resource names by vendor in the accelerator catalog (the device plugins' documented names:
# NVIDIA's k8s-device-plugin, AMD's ROCm k8s-device-plugin, the AWS Neuron device plugin, GKE's TPU resources,
# Huawei's Ascend device plugin).
VENDOR_RESOURCES: dict[str, str] = {
    "nvidia": "nvidia.com/gpu",
    "amd": "amd.com/gpu",
    "aws": "aws.amazon.com/neuron",
    "google": "google.com/tpu",
    "huawei": "huawei.com/Ascend910",
}

_DNS = re.compile(r"[^a-z0-9-]+")


def job_hash(job_id: str) -> str:
    return hashlib.sha256(job_id.encode()).hexdigest()[:10]


def job_name(job_id: str, attempt: int, run: int) -> str:
    """The Job's name for a run (see the module docstring)."""
    slug = _DNS.sub("-", job_id.lower()).strip("-")[:30].strip("-") or "job"
    return f"gs-{slug}-{job_hash(job_id)}-a{int(attempt)}-r{int(run)}"


@dataclass(frozen=True)
class SitePool:
    """Where a site's jobs go in the cluster: a node selector, tolerations, (with Kueue) its flavor, and how
    many accelerators a node of the pool holds (``acceleratorsPerNode``; a gang larger than that runs as an
    Indexed Job of one pod per node)."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    flavor: str | None = None
    accelerators_per_node: int | None = None

    @classmethod
    def parse(cls, site: str, d: Mapping[str, Any]) -> SitePool:
        unknown = set(d) - {"nodeSelector", "tolerations", "flavor", "acceleratorsPerNode"}
        if unknown:
            raise ExecutorError(f"site pool '{site}': unknown field(s) {', '.join(sorted(unknown))} "
                                "(known: nodeSelector, tolerations, flavor, acceleratorsPerNode)", retryable=False)
        per_node = d.get("acceleratorsPerNode")
        if per_node is not None and (isinstance(per_node, bool) or not isinstance(per_node, int) or per_node < 1):
            raise ExecutorError(f"site pool '{site}': acceleratorsPerNode must be a whole number >= 1, "
                                f"got {per_node!r}", retryable=False)
        sel = d.get("nodeSelector") or {}
        tol = d.get("tolerations") or []
        if not isinstance(sel, Mapping) or not all(isinstance(v, str) for v in sel.values()):
            raise ExecutorError(f"site pool '{site}': nodeSelector must map labels to strings", retryable=False)
        if not isinstance(tol, list) or not all(isinstance(t, Mapping) for t in tol):
            raise ExecutorError(f"site pool '{site}': tolerations must be a list of objects", retryable=False)
        return cls(dict(sel), [dict(t) for t in tol], d.get("flavor"), per_node)

    def pods_for(self, gang: int) -> tuple[int, int]:
        """(pods, accelerators per pod) of a gang: one pod when it fits a node (or the node size is not
        given), else one pod per node, each with a whole node's accelerators."""
        per = self.accelerators_per_node
        if per is None or gang <= per:
            return 1, int(gang)
        if gang % per:
            raise ExecutorError(f"a gang of {gang} does not fill whole nodes of {per} accelerators "
                                "(acceleratorsPerNode)", retryable=False)
        return gang // per, per


def default_pool(site: str) -> SitePool:
    """A site without a configured pool: nodes labelled ``gridshift.io/site=<site>``."""
    return SitePool({L_SITE: site})


def accelerator_resource(accelerator: str, overrides: Mapping[str, str | None] | None = None) -> str | None:
    """The extended resource a job on ``accelerator`` requests (None for CPU), by the catalog's vendor."""
    acc = accelerator.lower()
    over = {str(k).lower(): v for k, v in (overrides or {}).items()}
    if acc in over:
        return over[acc] or None
    if acc == "cpu":
        return None
    from gridshift.catalog.accelerators import get_accelerator
    from gridshift.errors import GridShiftError

    try:
        vendor = get_accelerator(accelerator).vendor.lower()
    except GridShiftError:
        raise ExecutorError(f"accelerator '{accelerator}' is not in the catalog; give its Kubernetes resource "
                            "name in the executor's 'resources' option", retryable=False) from None
    if vendor not in VENDOR_RESOURCES:
        raise ExecutorError(f"no Kubernetes resource name for vendor '{vendor}' (accelerator '{accelerator}'); "
                            "give it in the executor's 'resources' option", retryable=False)
    return VENDOR_RESOURCES[vendor]


def power_profile(frac: float) -> str:
    """The power profile name a node agent applies: ``cap-0.70`` (a cap at 70 % of maximum), ``full``."""
    return "full" if frac >= 1.0 else f"cap-{frac:.2f}"


def job_manifest(launch: JobLaunch, placement: Placement, *, run: int, pool: SitePool, image: str,
                 command: Sequence[str], env: Mapping[str, str], resource: str | None, instance: str,
                 suspend: bool, queue_name: str | None = None, start_at: datetime | None = None,
                 cpu: str = "1", memory: str | None = None, termination_grace_s: int = 30,
                 service_account: str | None = None) -> dict[str, Any]:
    """The ``batch/v1`` Job of one run (``backoffLimit`` 0: a failed pod fails the run; GridShift decides
    on retries)."""
    labels = {MANAGED_BY: "gridshift", L_INSTANCE: instance, L_JOB: job_hash(launch.job_id),
              L_ATTEMPT: str(launch.attempt), L_RUN: str(run), L_SITE: label_value(placement.site)}
    if queue_name:
        labels[KUEUE_QUEUE_LABEL] = queue_name
    annotations = {A_JOB_ID: launch.job_id, A_PLACEMENT: json.dumps(placement.to_dict(), sort_keys=True),
                   A_POWER_CAP: f"{placement.power_cap_frac:g}", A_POWER_PROFILE: power_profile(placement.power_cap_frac),
                   A_WORK: f"{launch.work_acc_h:g}"}
    if start_at is not None:
        annotations[A_START_AT] = start_at.isoformat()
    requests: dict[str, str] = {"cpu": cpu}
    if memory:
        requests["memory"] = memory
    limits: dict[str, str] = {}
    pods, per_pod = pool.pods_for(placement.gang) if resource else (1, placement.gang)
    if resource:
        limits[resource] = str(per_pod)
        requests[resource] = str(per_pod)
    if pods > 1:
        env = {**env, "GRIDSHIFT_NODES": str(pods), "GRIDSHIFT_ACCELERATORS_PER_NODE": str(per_pod)}
    container: dict[str, Any] = {
        "name": CONTAINER, "image": image, "command": list(command),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {"requests": requests, **({"limits": limits} if limits else {})},
    }
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container],
                                "terminationGracePeriodSeconds": int(termination_grace_s)}
    if pool.node_selector and not queue_name:  # with Kueue the flavor and the admission check pin the nodes
        pod_spec["nodeSelector"] = dict(pool.node_selector)
    if pool.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in pool.tolerations]
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    pod_labels = {MANAGED_BY: "gridshift", L_JOB: labels[L_JOB], L_ATTEMPT: labels[L_ATTEMPT], L_RUN: str(run)}
    spec: dict[str, Any] = {"suspend": bool(suspend), "backoffLimit": 0}
    if pods > 1:  # a multi-node gang: all pods at once (parallelism), each knows its index (JOB_COMPLETION_INDEX);
        # pods are reachable as <job>-<index>.<job> once a headless Service named after the Job exists
        spec.update(completionMode="Indexed", completions=pods, parallelism=pods)
        pod_spec["subdomain"] = job_name(launch.job_id, launch.attempt, run)
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(launch.job_id, launch.attempt, run), "labels": labels,
                     "annotations": annotations},
        "spec": {**spec,
                 "template": {"metadata": {"labels": pod_labels,
                                           "annotations": {A_JOB_ID: launch.job_id,
                                                           A_POWER_PROFILE: annotations[A_POWER_PROFILE]}},
                              "spec": pod_spec}},
    }


def label_value(value: str) -> str:
    """``value`` as a label value (63 characters of ``[A-Za-z0-9._-]``, alphanumeric at both ends)."""
    v = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63].strip("-._")
    return v or "none"


def contract_env(launch: JobLaunch, placement: Placement, run: int, checkpoint_signal: str) -> dict[str, str]:
    """The ``GRIDSHIFT_*`` environment of a job's container (the same names the local and Slurm executors
    give; the work directory is the container's own ``/gridshift/work`` volume if the image mounts one)."""
    env = {k: v for k, v in launch.env.items() if not k.startswith("GRIDSHIFT_")}
    env.update({"GRIDSHIFT_JOB_ID": launch.job_id, "GRIDSHIFT_ATTEMPT": str(launch.attempt),
                "GRIDSHIFT_SITE": placement.site, "GRIDSHIFT_ACCELERATOR": placement.accelerator,
                "GRIDSHIFT_GANG": str(placement.gang), "GRIDSHIFT_POWER_CAP_FRAC": f"{placement.power_cap_frac:g}",
                "GRIDSHIFT_CHECKPOINT_SIGNAL": checkpoint_signal, "GRIDSHIFT_RESUMED": "1" if run > 1 else "0"})
    return env


__all__ = ["A_DRAIN", "A_HOLD", "A_JOB_ID", "A_PLACEMENT", "A_POWER_CAP", "A_POWER_PROFILE", "A_START_AT", "A_STOP",
           "KUEUE_QUEUE_LABEL", "L_ATTEMPT", "L_INSTANCE", "L_JOB", "L_RUN", "L_SITE", "MANAGED_BY",
           "VENDOR_RESOURCES", "SitePool", "accelerator_resource", "contract_env", "default_pool", "job_hash", "label_value",
           "job_manifest", "job_name", "power_profile"]
