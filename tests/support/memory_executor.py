"""An executor that starts nothing and remembers what it was told: enough for reconciler passes in tests."""

from __future__ import annotations

from gridshift.service.executors.base import ExecStatus, Executor, JobLaunch


class MemoryExecutor(Executor):
    """Starts nothing: remembers what it was told (enough for one reconciler pass)."""

    name = "memory"

    def __init__(self) -> None:
        self.jobs: dict[str, ExecStatus] = {}

    def start(self, launch: JobLaunch) -> str:
        self.jobs[launch.job_id] = ExecStatus(launch.job_id, "running", ref=launch.job_id, attempt=launch.attempt)
        return launch.job_id

    def pause(self, job_id: str) -> ExecStatus:
        return self.jobs[job_id]

    resume = stop = pause

    def set_power_cap(self, job_id: str, frac: float) -> ExecStatus:
        return self.jobs[job_id]

    def report(self) -> list[ExecStatus]:
        return list(self.jobs.values())

    def adopt(self, refs: list[str]) -> list[ExecStatus]:
        return [self.jobs[r] for r in refs if r in self.jobs]

    def recover(self) -> list[ExecStatus]:
        return list(self.jobs.values())
