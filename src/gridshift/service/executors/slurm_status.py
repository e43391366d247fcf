"""Slurm's job states as GridShift's executor states, and jobs outside GridShift as background load.

| Slurm (``squeue --json`` ``job_state``) | GridShift |
|---|---|
| PENDING, REQUEUED, CONFIGURING | ``running`` (queued in Slurm: the reason says why, e.g. ``Resources``, ``ReqNodeNotAvail``); ``paused`` when GridShift held it (``stage``, ``pause`` of a pending job) |
| RUNNING, COMPLETING | ``running`` |
| SUSPENDED, STOPPED | ``paused`` |
| COMPLETED | ``succeeded``; ``paused`` (exit code 0) when it exited 0 during a pause: it checkpointed |
| FAILED, TIMEOUT, OUT_OF_MEMORY, DEADLINE, BOOT_FAIL | ``failed`` with the exit code |
| CANCELLED | ``failed``: "stopped on request" when GridShift stopped it, else "cancelled in Slurm" |
| NODE_FAIL, PREEMPTED | ``lost`` |
| gone from the queue | the exit record the batch script wrote, else ``lost`` |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gridshift.service.executors.base import ExecStatus, utc_now
from gridshift.service.executors.job_contract import parse_time
from gridshift.service.executors.slurm_cli import SlurmJob

QUEUED = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESIZING"})
RUNNING = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"})
PAUSED = frozenset({"SUSPENDED", "STOPPED"})
FAILED = frozenset({"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "DEADLINE", "BOOT_FAIL", "SPECIAL_EXIT"})
LOST = frozenset({"NODE_FAIL", "PREEMPTED"})
NODE_REASONS = ("ReqNodeNotAvail", "NodeDown", "Nodes_required_for_job_are_DOWN", "PartitionDown",
                "PartitionInactive")


def job_status(rec: dict[str, Any], sj: SlurmJob | None, exit_rec: dict[str, Any] | None, ref: str,
               progress: float | None) -> ExecStatus:
    """The status of one record given Slurm's view of its current run (None: not in the queue) and the
    exit record its batch script wrote (None: none yet)."""
    started = parse_time(rec.get("started_at"))
    if sj is not None and sj.start_time and sj.state not in QUEUED:
        started = datetime.fromtimestamp(sj.start_time, UTC)
    base = dict(job_id=rec["job_id"], started_at=started, power_cap_frac=rec.get("power_cap_frac"), ref=ref,
                attempt=rec["attempt"], progress_frac=progress)
    stop, pause = rec.get("stop"), rec.get("pause")
    where = f"Slurm job {sj.slurm_id}" if sj is not None else f"Slurm job {rec.get('slurm_id') or '(not submitted)'}"
    if sj is None or (sj.state in RUNNING and sj.state != "RUNNING" and exit_rec is not None):
        if exit_rec is not None:
            code = int(exit_rec["exit_code"])
            return _ended(base, code, None, stop, pause, parse_time(exit_rec.get("ended_at")))
        if not rec.get("slurm_id"):
            if stop:
                return ExecStatus(state="failed", reason="stopped on request before it was submitted", **base)
            return ExecStatus(state="lost", reason="the submission was interrupted before Slurm took it; starting "
                              "the same attempt submits it", **base)
        if stop:
            return ExecStatus(state="failed", reason=f"stopped on request ({where} left the queue)", **base)
        return ExecStatus(state="lost", reason=f"{where} left Slurm's queue without an exit record (cancelled "
                          "before it began, or purged with its node lost)", **base)
    reason = sj.reason if sj.reason not in ("None", "") else None
    if sj.state in QUEUED:
        if rec.get("held") or pause == "held":
            why = "held until its planned start" if rec.get("held") else "held in Slurm's queue (paused before it began)"
            return ExecStatus(state="paused", reason=f"{why} ({where}, {reason or 'held'})", **base)
        node = " — no node of its partition is available" if reason and reason.startswith(NODE_REASONS) else ""
        return ExecStatus(state="running", reason=f"queued in Slurm ({where}: {reason or 'pending'}){node}", **base)
    if sj.state in RUNNING:
        return ExecStatus(state="running", reason=None if sj.state == "RUNNING" else f"{where} {sj.state}", **base)
    if sj.state in PAUSED:
        return ExecStatus(state="paused", reason=f"suspended in Slurm ({where})", **base)
    code = int(exit_rec["exit_code"]) if exit_rec is not None else sj.exit_code
    if sj.state == "COMPLETED":
        return _ended(base, code if code is not None else 0, None, stop, pause, None)
    if sj.state == "CANCELLED":
        if stop:
            return ExecStatus(state="failed", exit_code=code, reason=f"stopped on request ({where} cancelled)", **base)
        return ExecStatus(state="failed", exit_code=code, reason=f"cancelled in Slurm outside GridShift ({where})",
                          **base)
    if sj.state in LOST:
        return ExecStatus(state="lost", exit_code=code, reason=f"{where} {sj.state} on {sj.nodes or 'its node'}"
                          f"{f' ({reason})' if reason else ''}", **base)
    if sj.state in FAILED:
        return _ended(base, code if code else 1, f"{sj.state} in Slurm ({where}, exit code {code}, {reason or 'no reason given'})",
                      stop, pause, None)
    return ExecStatus(state="unknown", reason=f"{where} in Slurm state {sj.state}", **base)


def _ended(base: dict[str, Any], code: int, why: str | None, stop: str | None, pause: str | None,
           ended_at: datetime | None) -> ExecStatus:
    upd = ended_at or utc_now()
    if stop:
        return ExecStatus(state="failed", exit_code=code, updated_at=upd,
                          reason=f"stopped on request (exit code {code})", **base)
    if code == 0 and pause in ("requested", "checkpointed"):
        return ExecStatus(state="paused", exit_code=0, updated_at=upd,
                          reason="checkpointed and exited; resume submits it again", **base)
    if code == 0:
        return ExecStatus(state="succeeded", exit_code=0, updated_at=upd, **base)
    return ExecStatus(state="failed", exit_code=code, updated_at=upd,
                      reason=why or (f"killed by signal {-code}" if code < 0 else f"exit code {code}"), **base)


@dataclass
class Background:
    """Jobs outside GridShift: per (site, accelerator type) the accelerators (GPUs; CPUs for CPU-only
    jobs under type "cpu") their running jobs hold, and per site how many are running and pending."""

    busy: dict[tuple[str, str], int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"busy": [{"site": s, "accelerator": a, "count": n} for (s, a), n in sorted(self.busy.items())],
                "running": dict(self.running), "pending": dict(self.pending)}


def background_load(jobs: Sequence[SlurmJob], site_of_partition: Mapping[str, str]) -> Background:
    """The load of ``jobs`` (submitted outside GridShift) by site (partition, through ``site_of_partition``
    when given)."""
    bg = Background()
    for j in jobs:
        site = site_of_partition.get(j.partition, j.partition)
        if j.state in RUNNING or j.state in PAUSED:
            bg.running[site] = bg.running.get(site, 0) + 1
            key = (site, j.gpu_type or ("gpu" if j.gpus else "cpu"))
            bg.busy[key] = bg.busy.get(key, 0) + (j.gpus or j.cpus)
        elif j.state in QUEUED:
            bg.pending[site] = bg.pending.get(site, 0) + 1
    return bg


__all__ = ["Background", "background_load", "job_status"]
