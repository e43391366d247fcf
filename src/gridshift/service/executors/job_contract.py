"""What the local and Slurm executors share about a job's own directory and its environment contract
(docs/service/executors.md): where the directory is, the checkpoint acknowledgement file, the progress the job
reports, the command (the tenant's, or the built-in simulated workload) and the ``GRIDSHIFT_*`` environment."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from gridshift.service.executors import isolation
from gridshift.service.executors.base import JobLaunch, Placement

SIMJOB_PY = Path(__file__).with_name("_simjob.py")


def parse_time(s: str | None) -> datetime | None:
    """An ISO 8601 time from a record, None for none."""
    return datetime.fromisoformat(s) if s else None


class JobDirContract:
    """Mixed into an executor with ``job_root`` (the jobs' directories), ``env_allow``, ``checkpoint_signal``,
    ``python`` and ``sim_wall_s_per_run_h``."""

    job_root: Path

    def _jdir(self, key: str) -> Path:
        return self.job_root / key

    def _ack_file(self, rec: dict[str, Any]) -> Path:
        return self._jdir(rec["key"]) / f"a{rec['attempt']}-r{rec['run']}.ack"

    def _progress(self, rec: dict[str, Any]) -> float | None:
        text = isolation.read_small(self._jdir(rec["key"]) / "progress")
        try:
            return None if text is None else min(1.0, max(0.0, float(text.strip())))
        except ValueError:
            return None

    def _command(self, launch: JobLaunch, placement: Placement) -> list[str]:
        if launch.command is not None:
            return list(launch.command)
        work_s = launch.work_acc_h / placement.gang * self.sim_wall_s_per_run_h
        return [self.python, "-I", str(SIMJOB_PY), "--work-s", f"{work_s:.3f}"]

    def _job_env(self, rec: dict[str, Any], launch: JobLaunch, resumed: bool) -> dict[str, str]:
        return isolation.contract_env(self.env_allow, self._jdir(rec["key"]), launch,
                                      Placement.from_dict(rec["placement"]), rec["power_cap_frac"],
                                      self.checkpoint_signal.name, self._ack_file(rec), resumed)
