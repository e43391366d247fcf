"""Slurm's command-line tools as Python calls: ``sbatch --parsable``, ``squeue --json``, ``sinfo --json``,
``scontrol`` and ``scancel``, with their errors as :class:`ExecutorError` (Slurm's own text kept).

The queue is read from ``squeue --noheader --format=...`` by default: in Slurm 22.05 ``squeue --json``
ignores ``--name`` (it always lists the whole queue) and costs about 0.3 ms per job (0.32 s for 1,000
jobs on the development machine, against 0.04 s for the text format), too slow for a reconciler pass
with 10,000 jobs; ``queue_format="json"`` reads ``--json`` instead. The JSON shapes are those of
Slurm 22.05 (``openapi/v0.0.38``): a job's ``job_state`` is a string ("RUNNING"), ``exit_code`` the raw wait status (768: exit 3; 9: killed by SIGKILL); later versions give
``job_state`` as a list and ``exit_code`` as an object, and both are read here too. A controller that
cannot be reached is a *retryable* error: ``squeue --json`` then exits 0 with an ``errors`` list and no
jobs, which is never taken for "no jobs".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gridshift.service.executors.base import ExecutorError

# Slurm's messages when the controller or a daemon is unreachable or busy: trying again may help.
_TRANSIENT = re.compile(r"unable to contact slurm controller|connect failure|socket timed out|connection refused|"
                        r"slurm temporarily unable|resource temporarily unavailable|transient|"
                        r"unexpected message received|communication connection failure|slurm_load_jobs|"
                        r"slurm_load_node|slurmctld.*not responding|zero bytes were transmitted",
                        re.IGNORECASE)
TOOLS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel")


@dataclass(frozen=True)
class SlurmJob:
    """One job as ``squeue --json`` shows it (the fields GridShift reads)."""

    slurm_id: str
    name: str
    state: str
    reason: str
    partition: str
    comment: str
    exit_status: int | None  # the raw wait status
    nodes: str
    cpus: int
    gpus: int
    gpu_type: str | None
    start_time: int | None
    user: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def exit_code(self) -> int | None:
        """The exit code, negative for a signal (-9: SIGKILL), from the raw wait status."""
        if self.exit_status is None:
            return None
        if self.exit_status & 0x7F:
            return -(self.exit_status & 0x7F)
        return (self.exit_status >> 8) & 0xFF


def _state_of(j: Mapping[str, Any]) -> str:
    s = j.get("job_state")
    if isinstance(s, list):
        return str(s[0]) if s else "UNKNOWN"
    return str(s or "UNKNOWN")


def _exit_of(j: Mapping[str, Any]) -> int | None:
    e = j.get("exit_code")
    if isinstance(e, dict):  # Slurm >= 23.02: {"status": [...], "return_code": {"number": N}, "signal": {...}}
        sig = (e.get("signal") or {}).get("id")
        sig = sig.get("number") if isinstance(sig, dict) else sig
        rc = e.get("return_code")
        rc = rc.get("number") if isinstance(rc, dict) else rc
        if sig:
            return int(sig) & 0x7F
        return (int(rc) & 0xFF) << 8 if rc is not None else None
    return None if e is None else int(e)


_GRES = re.compile(r"gpu(?::([A-Za-z0-9_.-]+))?:(\d+)")


def gpus_of(j: Mapping[str, Any]) -> tuple[int, str | None]:
    """(GPUs, GPU type) a job holds (``gres_detail``) or asks for (``tres_per_node``/``tres_per_job``)."""
    details = j.get("gres_detail") or []
    text = " ".join(str(d) for d in details) if details else str(j.get("tres_per_node") or j.get("tres_per_job") or "")
    n, kind = 0, None
    for m in _GRES.finditer(text):
        n += int(m.group(2))
        kind = kind or m.group(1)
    return n, kind


def parse_job(j: Mapping[str, Any]) -> SlurmJob:
    gpus, kind = gpus_of(j)
    start = j.get("start_time")
    start = start.get("number") if isinstance(start, dict) else start
    return SlurmJob(slurm_id=str(j.get("job_id")), name=str(j.get("name") or ""), state=_state_of(j),
                    reason=str(j.get("state_reason") or "None"), partition=str(j.get("partition") or ""),
                    comment=str(j.get("comment") or ""), exit_status=_exit_of(j), nodes=str(j.get("nodes") or ""),
                    cpus=int(j.get("cpus") or 0) if not isinstance(j.get("cpus"), dict) else int(j["cpus"]["number"]),
                    gpus=gpus, gpu_type=kind, start_time=int(start) if start else None,
                    user=str(j.get("user_name") or ""), raw=dict(j))


_SEP = "\x1f"  # ASCII unit separator: no job name or comment holds it
# squeue --format fields in order (the comment last: it is free text)
TEXT_FIELDS = (("%i", "job_id"), ("%j", "name"), ("%T", "job_state"), ("%r", "state_reason"), ("%P", "partition"),
               ("%C", "cpus"), ("%b", "tres_per_node"), ("%S", "start_time"), ("%u", "user_name"), ("%N", "nodes"),
               ("%k", "comment"))


def parse_text_line(line: str) -> SlurmJob:
    """One line of ``squeue --format`` with :data:`TEXT_FIELDS` as a job (exit status unknown: the
    executor reads it from the job's exit record)."""
    parts = line.split(_SEP, len(TEXT_FIELDS) - 1)
    d: dict[str, Any] = {k: (v if v not in ("N/A", "(null)") else "") for (_, k), v in
                         zip(TEXT_FIELDS, parts + [""] * (len(TEXT_FIELDS) - len(parts)))}
    start = d.get("start_time")
    try:
        d["start_time"] = int(datetime.fromisoformat(start).astimezone(UTC).timestamp()) if start else None
    except ValueError:
        d["start_time"] = None
    d["cpus"] = int(d["cpus"]) if str(d.get("cpus", "")).isdigit() else 0
    d["exit_code"] = None
    return parse_job(d)


class SlurmCli:
    """Runs Slurm's tools with ``SLURM_CONF`` (``slurm_conf``) and a timeout; ``bin_dir`` where they are
    (default: ``PATH``)."""

    def __init__(self, *, slurm_conf: str | os.PathLike | None = None, bin_dir: str | os.PathLike | None = None,
                 timeout_s: float = 30.0, queue_format: str = "text") -> None:
        if queue_format not in ("text", "json"):
            raise ExecutorError(f"queue_format must be 'text' or 'json', got {queue_format!r}", retryable=False)
        self.queue_format = queue_format
        self.slurm_conf = None if slurm_conf is None else str(slurm_conf)
        self.bin_dir = None if bin_dir is None else str(bin_dir)
        self.timeout_s = float(timeout_s)
        self.calls = 0

    def tool(self, name: str) -> str:
        path = os.path.join(self.bin_dir, name) if self.bin_dir else shutil.which(name)
        if not path or not os.access(path, os.X_OK):
            where = self.bin_dir or "PATH"
            raise ExecutorError(f"Slurm's '{name}' not found in {where} (install slurm-client, or give bin_dir)",
                                retryable=False)
        return path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        for k in [k for k in env if k.startswith(("SBATCH_", "SQUEUE_", "SLURM_JOB", "SLURM_STEP"))]:
            env.pop(k)  # the service's own job context (if it runs inside a job) must not leak into calls
        return env

    def run(self, args: Sequence[str], *, job_id: str | None = None, input_text: str | None = None) -> str:
        """Run ``args`` (the tool first); its stdout, else ExecutorError with Slurm's message."""
        argv = [self.tool(args[0]), *args[1:]]
        self.calls += 1
        try:
            res = subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=self.timeout_s,
                                 input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ExecutorError(f"{args[0]} did not answer within {self.timeout_s:g} s (Slurm controller busy "
                                "or unreachable)", job_id=job_id) from None
        except OSError as e:
            raise ExecutorError(f"could not run {args[0]}: {e.strerror or e}", job_id=job_id, retryable=False) from None
        if res.returncode != 0:
            text = " ".join((res.stderr or res.stdout or "").split()) or f"exit code {res.returncode}"
            raise ExecutorError(f"{args[0]}: {text}", job_id=job_id, retryable=bool(_TRANSIENT.search(text)))
        return res.stdout

    def _json(self, args: Sequence[str], key: str) -> list[dict[str, Any]]:
        out = self.run(args)
        try:
            doc = json.loads(out)
        except ValueError:
            raise ExecutorError(f"{args[0]} --json gave no JSON: {out[:200]!r}") from None
        errors = [e for e in doc.get("errors") or [] if e]
        if errors:
            text = "; ".join(f"{e.get('source', '')}: {e.get('description') or e.get('error')}".strip(": ")
                             for e in errors)
            raise ExecutorError(f"{args[0]}: {text} (is the Slurm controller up?)",
                                retryable=True)
        return list(doc.get(key) or [])

    # ------------------------------------------------------------------ the calls

    def squeue(self, names: Sequence[str] | None = None) -> list[SlurmJob]:
        """Every job the controller knows (pending, running, suspended, and finished ones not yet purged,
        ``MinJobAge``), or only those named ``names``. Read from ``squeue``'s text format unless
        ``queue_format`` is "json" (see the module docstring)."""
        if self.queue_format == "json":
            jobs = [parse_job(j) for j in self._json(["squeue", "--json", "--all"], "jobs")]
            return jobs if not names else [j for j in jobs if j.name in set(names)]
        args = ["squeue", "--noheader", "--all", "--states=all", f"--format={_SEP.join(f for f, _ in TEXT_FIELDS)}"]
        if names:
            args.append(f"--name={','.join(sorted(names))}")
        out = self.run(args)
        return [parse_text_line(line) for line in out.splitlines() if line.strip()]

    def nodes(self) -> list[dict[str, Any]]:
        """``sinfo --json``'s nodes (name, state, state_flags, reason, partitions, gres, …)."""
        return self._json(["sinfo", "--json"], "nodes")

    def sbatch(self, args: Sequence[str], script: str, *, job_id: str | None = None) -> str:
        """Submit ``script`` (a path) with ``args``; the Slurm job id."""
        out = self.run(["sbatch", "--parsable", *args, script], job_id=job_id).strip()
        sid = out.split(";", 1)[0]
        if not sid.isdigit():
            raise ExecutorError(f"sbatch gave no job id: {out!r}", job_id=job_id)
        return sid

    def scontrol(self, *args: str, job_id: str | None = None) -> str:
        return self.run(["scontrol", *args], job_id=job_id)

    def scancel(self, *args: str, job_id: str | None = None) -> str:
        return self.run(["scancel", *args], job_id=job_id)

    def partitions(self) -> set[str]:
        """The partitions the controller knows."""
        out = self.run(["sinfo", "-h", "-o", "%R"])
        return {line.strip() for line in out.splitlines() if line.strip()}


__all__ = ["SlurmCli", "SlurmJob", "TOOLS", "gpus_of", "parse_job"]
