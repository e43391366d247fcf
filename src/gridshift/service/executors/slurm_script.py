"""The batch script the Slurm executor submits for one run of a job, and the names it gives Slurm.

The script exports the job's environment (``sbatch --export=NONE``: nothing else of the service's
environment reaches the job), starts the command in the background and waits for it. It traps the
checkpoint signal, which ``pause`` sends to the batch shell only (``scancel --batch --signal=USR1``), and
relays it to the command if the command has a handler for it (``SigCgt`` in ``/proc/<pid>/status``): a
command without one is frozen by ``scontrol suspend`` without being ended by the signal's default action.
SIGTERM (``scancel``) goes to every process of the job from Slurm; the shell records the command's exit
code in ``<job dir>/a<N>-r<M>.exit.json`` (written to a temporary file and renamed) so the outcome is known
after Slurm has purged the job (``MinJobAge``) even without accounting.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
from collections.abc import Mapping, Sequence

NAME_RE = re.compile(r"(?P<prefix>[A-Za-z0-9_-]+)\.(?P<key>.+)\.a(?P<attempt>\d+)\.r(?P<run>\d+)")
COMMENT_PREFIX = "gridshift:"


def job_name(prefix: str, key: str, attempt: int, run: int) -> str:
    """The Slurm job name of run ``run`` of attempt ``attempt`` of the job with file key ``key``."""
    return f"{prefix}.{key}.a{attempt}.r{run}"


def parse_name(name: str, prefix: str) -> tuple[str, int, int] | None:
    """(key, attempt, run) of a job name of this prefix, else None."""
    m = NAME_RE.fullmatch(name)
    if m is None or m.group("prefix") != prefix:
        return None
    return m.group("key"), int(m.group("attempt")), int(m.group("run"))


def comment(job_id: str, attempt: int, run: int, power_cap_frac: float) -> str:
    """The job's Slurm comment: GridShift's id, attempt, run and power cap (read by a prolog or agent)."""
    return COMMENT_PREFIX + json.dumps({"job": job_id, "attempt": attempt, "run": run,
                                        "power_cap_frac": round(float(power_cap_frac), 6)}, separators=(",", ":"))


def parse_comment(text: str) -> dict | None:
    """The fields of a GridShift comment, else None."""
    if not text.startswith(COMMENT_PREFIX):
        return None
    try:
        d = json.loads(text[len(COMMENT_PREFIX):])
    except ValueError:
        return None
    return d if isinstance(d, dict) and "job" in d else None


def batch_script(command: Sequence[str], env: Mapping[str, str], exit_file: str,
                 checkpoint_signal: signal.Signals, job_id: str) -> str:
    """The batch script of one run (see the module docstring)."""
    sig = checkpoint_signal.name.removeprefix("SIG")
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())
                        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k))
    safe_id = job_id.replace("\n", " ")
    return f"""#!/bin/bash
# GridShift job {safe_id!r}: written by the Slurm executor; do not edit.
{exports}
mkdir -p "$GRIDSHIFT_WORK_DIR"
_gs_pid=""
_gs_relay() {{
  [ -n "$_gs_pid" ] || return 0
  local mask
  mask=$(awk '/^SigCgt:/{{print $2}}' "/proc/$_gs_pid/status" 2>/dev/null)
  [ -n "$mask" ] && (( (16#$mask >> ({int(checkpoint_signal)} - 1)) & 1 )) && kill -{sig} "$_gs_pid" 2>/dev/null
  return 0
}}
trap _gs_relay {sig}
trap ':' TERM INT HUP
{shlex.join(command)} &
_gs_pid=$!
while :; do
  wait "$_gs_pid"
  _gs_rc=$?
  kill -0 "$_gs_pid" 2>/dev/null || break
done
if [ "$_gs_rc" -gt 128 ] && [ "$_gs_rc" -lt 160 ]; then _gs_code=$((128 - _gs_rc)); else _gs_code=$_gs_rc; fi
_gs_tmp={shlex.quote(exit_file)}.tmp.$$
printf '{{"exit_code": %d, "slurm_job_id": "%s", "ended_at": "%s"}}\\n' "$_gs_code" "${{SLURM_JOB_ID:-}}" \\
  "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" > "$_gs_tmp" && mv -f "$_gs_tmp" {shlex.quote(exit_file)}
exit "$_gs_rc"
"""


__all__ = ["COMMENT_PREFIX", "batch_script", "comment", "job_name", "parse_comment", "parse_name"]
