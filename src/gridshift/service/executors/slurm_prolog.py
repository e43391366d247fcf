"""The Slurm prolog and epilog that apply a GridShift job's power cap on its node.

Slurm runs ``Prolog`` as root on the node before a job starts and ``Epilog`` after it ends, with
``SLURM_JOB_ID`` set. The prolog reads the job's comment (``gridshift:{…"power_cap_frac":F}``, written by
the Slurm executor and updated on every cap change) and the GPU indices Slurm gave it on this node
(``scontrol -d show job``: ``IDX:0-1``) and sets those GPUs to ``F × max`` through NVML; the epilog puts
them back to their default limit. Jobs without a GridShift comment are left alone. In slurm.conf::

    Prolog=/usr/local/sbin/gridshift-prolog      # python3 -m gridshift.service.executors.slurm_prolog apply
    Epilog=/usr/local/sbin/gridshift-epilog      # python3 -m gridshift.service.executors.slurm_prolog restore

(Slurm 22.05's own power management is Cray-only and sets no GPU limits; this is the GPU path.) Exit code 0
always for a job that is not GridShift's; 1 with one line on stderr when a cap cannot be set, which makes
Slurm drain the node in a prolog — use ``--soft`` to log and go on instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from gridshift.service.executors.base import ExecutorError
from gridshift.service.executors.powercap import PowerCapActuator
from gridshift.service.executors.slurm_cli import SlurmCli
from gridshift.service.executors.slurm_script import parse_comment


def job_cap(cli: SlurmCli, slurm_job_id: str) -> tuple[float | None, list[int] | None]:
    """(the cap fraction of a GridShift job, the GPU indices it holds on its node); (None, None) for a job
    that is not GridShift's."""
    from gridshift.service.executors.slurm import gpu_indices

    text = cli.scontrol("-d", "show", "job", str(slurm_job_id))
    m = re.search(r"Comment=(gridshift:\{.*?\})(?:\s|$)", text)
    info = parse_comment(m.group(1)) if m else None
    if info is None:
        return None, None
    return float(info.get("power_cap_frac", 1.0)), gpu_indices(text)


def apply(cli: SlurmCli, actuator: PowerCapActuator, slurm_job_id: str) -> dict[int, float]:
    """Cap the job's GPUs at its fraction; {index: watts read back} ({} for a job that is not GridShift's)."""
    frac, gpus = job_cap(cli, slurm_job_id)
    if frac is None or gpus is None:
        return {}
    return actuator.set_cap_frac(gpus, frac)


def restore(cli: SlurmCli, actuator: PowerCapActuator, slurm_job_id: str) -> dict[int, float]:
    """Put the job's GPUs back to their default limit (the epilog; a new process cannot know what the prolog
    found, so the device's default is the value to return to)."""
    frac, gpus = job_cap(cli, slurm_job_id)
    if frac is None or gpus is None:
        return {}
    devs = {d.index: d for d in actuator.devices()}
    return {i: actuator.set_limit_w(i, devs[i].default_w) for i in gpus if i in devs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gridshift.service.executors.slurm_prolog",
                                 description="Apply (prolog) or undo (epilog) a GridShift job's GPU power cap.")
    ap.add_argument("action", choices=["apply", "restore"])
    ap.add_argument("--job", default=os.environ.get("SLURM_JOB_ID"), help="Slurm job id (default: $SLURM_JOB_ID)")
    ap.add_argument("--soft", action="store_true", help="log a failure and exit 0 (the node is not drained)")
    a = ap.parse_args(argv)
    if not a.job:
        print("slurm_prolog: no job id (SLURM_JOB_ID unset and no --job)", file=sys.stderr)
        return 2
    try:
        from gridshift.service.executors.powercap import NvmlActuator

        cli = SlurmCli()
        frac, gpus = job_cap(cli, a.job)
        if frac is None or gpus is None:
            return 0
        act = NvmlActuator()
        (apply if a.action == "apply" else restore)(cli, act, a.job)
    except ExecutorError as e:
        print(f"slurm_prolog: job {a.job}: {e}", file=sys.stderr)
        return 0 if a.soft else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
