"""The Slurm executor: every job a Slurm batch job, driven through Slurm's own command-line tools.

A run of a job is one batch job named ``<prefix>.<key>.a<attempt>.r<run>`` (``prefix`` "gridshift" by
default) with the comment ``gridshift:{"job": <id>, "attempt": N, "run": M, "power_cap_frac": F}``, in the
partition of the job's site, asking for ``--gres=gpu:<type>:<gang>`` when its accelerator is a GPU type and
``--cpus-per-task``; ``--export=NONE`` and a generated batch script (:mod:`.slurm_script`) give the job the
same environment contract as the local executor. Decisions map to Slurm as:

- start: ``sbatch --parsable`` (``--no-requeue``: a node failure is reported ``lost`` and GridShift
  re-plans the next attempt); a job staged with :meth:`SlurmExecutor.stage` (``--hold --begin``) is
  released instead;
- pause: the checkpoint signal to the batch shell, which relays it to the command
  (``scancel --batch --signal=USR1``), a grace period, then ``scontrol suspend``; a job still pending in
  Slurm is held (``scontrol hold``);
- resume: ``scontrol resume`` (``release`` for a held one); a new site, type or gang ends the suspended
  run and submits the next run there (the job finds its checkpoint in ``GRIDSHIFT_WORK_DIR``);
- stop: SIGTERM to every process of the job, SIGKILL after ``stop_grace_s``, then ``scancel``;
- power caps: the job's environment (``GRIDSHIFT_POWER_CAP_FRAC``), its cap file, its comment (for a
  prolog or node agent), and a :class:`~.powercap.PowerCapActuator` when one is given.
- DR shedding of whole nodes: ``drain``/``undrain``; with ``power_save``, :meth:`SlurmExecutor.shed_idle_nodes`
  powers idle nodes of a site under a grid event down through Slurm's power saving and up when it ends
  (:mod:`.slurm_power`).

Records (``STATE_DIR/slurm/<key>.json``) are written before ``sbatch`` and again with the Slurm job id; a
submission cut short by a crash is found again by its job name, and a job whose record is gone is adopted
from its comment, so after ``kill -9`` of the service no job is lost or submitted twice. See
docs/service/executors.md.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gridshift.service.executors import isolation, slurm_script
from gridshift.service.executors.base import (
    ExecStatus,
    Executor,
    ExecutorError,
    JobLaunch,
    Placement,
    check_power_cap_frac,
    utc_now,
)
from gridshift.service.executors.job_contract import JobDirContract, parse_time
from gridshift.service.executors.local import job_key, read_json, signal_number, write_json_atomic
from gridshift.service.executors.powercap import PowerCapActuator
from gridshift.service.executors.slurm_cli import SlurmCli, SlurmJob
from gridshift.service.executors.slurm_power import NodePower
from gridshift.service.executors.slurm_status import Background, background_load, job_status

_POLL_S = 0.1


class SlurmExecutor(JobDirContract, Executor):
    """Jobs as Slurm batch jobs (see the module docstring and docs/service/executors.md)."""

    name = "slurm"

    def __init__(
        self,
        state_dir: str | Path = "./gridshift-executor",
        *,
        partitions: Mapping[str, str] | None = None,
        gres: Mapping[str, str | None] | None = None,
        cpus_per_job: int = 1,
        job_root: str | Path | None = None,
        name_prefix: str = "gridshift",
        checkpoint_signal: str | int = "SIGUSR1",
        pause_grace_s: float = 5.0,
        stop_grace_s: float = 10.0,
        sim_wall_s_per_run_h: float = 1.0,
        python: str | None = None,
        env_allow: Sequence[str] = isolation.DEFAULT_ENV_ALLOW,
        sbatch_args: Sequence[str] = (),
        slurm_conf: str | Path | None = None,
        bin_dir: str | Path | None = None,
        timeout_s: float = 30.0,
        queue_format: str = "text",
        actuator: PowerCapActuator | None = None,
        power_save: bool = False,
    ) -> None:
        self.cli = SlurmCli(slurm_conf=slurm_conf, bin_dir=bin_dir, timeout_s=timeout_s, queue_format=queue_format)
        for tool in ("sbatch", "squeue", "scontrol", "scancel"):
            self.cli.tool(tool)  # a missing tool is a clear error now, not at the first job
        self.state_dir = Path(state_dir).resolve()
        self.rec_dir = self.state_dir / "slurm"
        isolation.private_dir(self.state_dir, "executor state directory")
        isolation.private_dir(self.rec_dir, "executor state directory")
        self.job_root = (Path(job_root) if job_root is not None
                         else self.state_dir.parent / f"{self.state_dir.name}-jobs").resolve()
        self.job_root.mkdir(parents=True, exist_ok=True)
        self.partitions = dict(partitions) if partitions is not None else None
        self.gres = {str(k).lower(): v for k, v in (gres or {}).items()}
        if int(cpus_per_job) < 1:
            raise ExecutorError(f"cpus_per_job must be >= 1, got {cpus_per_job}", retryable=False)
        self.cpus_per_job = int(cpus_per_job)
        if not slurm_script.NAME_RE.fullmatch(f"{name_prefix}.k.a1.r1"):
            raise ExecutorError(f"name_prefix must be letters, digits, '_' or '-', got {name_prefix!r}",
                                retryable=False)
        self.prefix = name_prefix
        self.checkpoint_signal = signal_number(checkpoint_signal)
        self.pause_grace_s, self.stop_grace_s = float(pause_grace_s), float(stop_grace_s)
        self.sim_wall_s_per_run_h = float(sim_wall_s_per_run_h)
        self.python = python or "python3"
        self.env_allow = tuple(env_allow)
        self.sbatch_args = tuple(sbatch_args)
        self.actuator = actuator
        self._lock = threading.RLock()
        self._recs: dict[str, dict[str, Any]] = {}
        for path in sorted(self.rec_dir.glob("*.json")):
            rec = read_json(path)
            if rec is not None:
                self._recs[rec["key"]] = rec
        # DR shedding of idle nodes through Slurm's power saving (slurm_power.py), when asked for
        self.power = NodePower(self.cli, self.state_dir / "slurm-power.json", self.partition) if power_save else None
        self._background = Background()
        self._last_queue: list[SlurmJob] = []
        self._listed = False  # True once the whole queue was listed (report, recover)

    # ------------------------------------------------------------ records and names

    def _save(self, rec: dict[str, Any]) -> None:
        rec["updated_at"] = utc_now().isoformat()
        write_json_atomic(self.rec_dir / f"{rec['key']}.json", rec)
        self._recs[rec["key"]] = rec

    def job_dir(self, job_id: str) -> Path:
        """The job's directory: working directory, logs, checkpoints (``work/``), progress, power cap file."""
        return self._jdir(job_key(job_id))

    def _name(self, rec: dict[str, Any]) -> str:
        return slurm_script.job_name(self.prefix, rec["key"], rec["attempt"], rec["run"])

    def _exit_file(self, rec: dict[str, Any]) -> Path:
        return self._jdir(rec["key"]) / f"a{rec['attempt']}-r{rec['run']}.exit.json"

    def _ref(self, rec: dict[str, Any]) -> str:
        return f"slurm:{rec.get('slurm_id') or '?'}:{self._name(rec)}"

    def record(self, job_id: str) -> dict[str, Any] | None:
        """The job's record (see the module docstring), or None."""
        return self._recs.get(job_key(job_id))

    def _require(self, job_id: str) -> dict[str, Any]:
        rec = self.record(job_id)
        if rec is None:
            raise ExecutorError(f"unknown to this executor (no record in {self.rec_dir} and no Slurm job with "
                                "its name)", job_id=job_id, retryable=False)
        return rec

    def partition(self, site: str, job_id: str | None = None) -> str:
        """The partition of ``site`` (the site's own name when no map is given)."""
        if self.partitions is None:
            return site
        if site not in self.partitions:
            raise ExecutorError(f"no Slurm partition for site '{site}' (partitions: "
                                f"{', '.join(f'{s}={p}' for s, p in self.partitions.items()) or 'none'})",
                                job_id=job_id, retryable=False)
        return self.partitions[site]

    def gres_spec(self, placement: Placement) -> str | None:
        """``--gres`` for a placement: ``gpu:<type>:<gang>`` unless the accelerator maps to None (CPU)."""
        acc = placement.accelerator.lower()
        kind = self.gres.get(acc, "cpu" if acc == "cpu" else f"gpu:{acc}")
        if kind in (None, "", "cpu"):
            return None
        return f"{kind}:{placement.gang}"

    # ------------------------------------------------------------ Slurm's view

    def queue(self, names: Sequence[str] | None = None) -> dict[str, SlurmJob]:
        """GridShift's jobs in Slurm's queue by job name (only those named ``names`` when given: one job's
        calls do not list the whole queue); the whole queue also refreshes the background load."""
        jobs = self.cli.squeue(names)
        ours: dict[str, SlurmJob] = {}
        outside = []
        for j in jobs:
            if slurm_script.parse_name(j.name, self.prefix) is not None:
                ours[j.name] = j
            else:
                outside.append(j)
        if names is None:
            self._last_queue, self._listed = jobs, True
            self._background = background_load(outside, self._site_of_partition())
        else:
            self._last_queue = [j for j in self._last_queue if j.name not in ours] + list(ours.values())
        return ours

    def _queue_of(self, rec: dict[str, Any]) -> dict[str, SlurmJob]:
        """Slurm's view of the job's current run."""
        return self.queue([self._name(rec)])

    def _site_of_partition(self) -> dict[str, str]:
        return {p: s for s, p in self.partitions.items()} if self.partitions is not None else {}

    def background_load(self) -> Background:
        """Jobs submitted to Slurm outside GridShift, as of the last ``report``: busy accelerators and CPUs
        per (site, accelerator type) of the running ones, and how many are pending."""
        return self._background

    def _find(self, rec: dict[str, Any], queue: Mapping[str, SlurmJob]) -> SlurmJob | None:
        j = queue.get(self._name(rec))
        if j is not None and rec.get("slurm_id") in (None, j.slurm_id):
            return j
        if rec.get("slurm_id"):
            return next((q for q in queue.values() if q.slurm_id == rec["slurm_id"]), None)
        return None

    def _status(self, rec: dict[str, Any], queue: Mapping[str, SlurmJob]) -> ExecStatus:
        if rec.get("final"):
            return job_status_from_final(rec)
        sj = self._find(rec, queue)
        if sj is not None and not rec.get("slurm_id"):  # a submission the service did not finish recording
            rec.update(slurm_id=sj.slurm_id, phase="submitted")
            self._save(rec)
        st = job_status(rec, sj, read_json(self._exit_file(rec)), self._ref(rec), self._progress(rec))
        if st.finished:
            rec["final"] = st.to_dict()
            self._save(rec)
        return st

    def status(self, job_id: str) -> ExecStatus:
        rec = self.record(job_id)
        if rec is None:
            return ExecStatus(job_id=job_id, state="unknown", reason="no record of this job")
        if rec.get("final"):
            return job_status_from_final(rec)
        with self._lock:
            return self._status(rec, self._queue_of(rec))

    def report(self) -> list[ExecStatus]:
        with self._lock:
            queue = self.queue()
            self._adopt_unrecorded(queue)
            return [self._status(rec, queue) for _, rec in sorted(self._recs.items())]

    def _adopt_unrecorded(self, queue: Mapping[str, SlurmJob]) -> None:
        """Take records for GridShift jobs in the queue that have none (a lost state directory): by their
        comment, newest attempt and run per job."""
        for name, sj in queue.items():
            key, attempt, run = slurm_script.parse_name(name, self.prefix)
            info = slurm_script.parse_comment(sj.comment)
            rec = self._recs.get(key)
            if info is None or (rec is not None and (rec["attempt"], rec["run"]) >= (attempt, run)):
                continue
            placement = Placement(site=self._site_of_partition().get(sj.partition, sj.partition),
                                  accelerator=sj.gpu_type or "cpu", gang=max(sj.gpus, 1),
                                  power_cap_frac=float(info.get("power_cap_frac", 1.0)))
            launch = JobLaunch(str(info["job"]), None, placement=placement, attempt=attempt)
            self._save({"version": 1, "job_id": launch.job_id, "key": key, "attempt": attempt, "run": run,
                        "launch": launch.to_dict(), "placement": placement.to_dict(), "slurm_id": sj.slurm_id,
                        "phase": "submitted", "power_cap_frac": placement.power_cap_frac, "adopted": True,
                        "started_at": None})

    # ------------------------------------------------------------ submitting

    def _sbatch_args(self, rec: dict[str, Any], placement: Placement, hold_s: float | None) -> list[str]:
        jd = self._jdir(rec["key"])
        run = f"a{rec['attempt']}-r{rec['run']}"
        args = [f"--job-name={self._name(rec)}",
                f"--comment={slurm_script.comment(rec['job_id'], rec['attempt'], rec['run'], rec['power_cap_frac'])}",
                f"--partition={self.partition(placement.site, rec['job_id'])}",
                f"--cpus-per-task={self.cpus_per_job}", "--nodes=1", "--ntasks=1", "--export=NONE", "--no-requeue",
                f"--chdir={jd}", f"--output={jd / (run + '.out.log')}", f"--error={jd / (run + '.err.log')}"]
        gres = self.gres_spec(placement)
        if gres:
            args.append(f"--gres={gres}")
        if hold_s is not None:
            args += ["--hold", f"--begin=now+{max(0, int(round(hold_s)))}"]
        return args + list(self.sbatch_args)

    def _submit(self, rec: dict[str, Any], resumed: bool, hold_s: float | None = None) -> None:
        """Record the run as submitting, write its script, ``sbatch`` it, record the Slurm job id (a crash
        in between is found again by the job name, see ``_status``)."""
        launch = JobLaunch.from_dict(rec["launch"])
        placement = Placement.from_dict(rec["placement"])
        jd = self._jdir(rec["key"])
        (jd / "work").mkdir(parents=True, exist_ok=True)
        isolation.write_job_file(jd / "power_cap_frac", f"{rec['power_cap_frac']:g}\n")
        for stale in (self._exit_file(rec), self._ack_file(rec)):
            stale.unlink(missing_ok=True)
        script = jd / f"a{rec['attempt']}-r{rec['run']}.sbatch"
        script.write_text(slurm_script.batch_script(self._command(launch, placement), self._job_env(rec, launch, resumed),
                                                    str(self._exit_file(rec)), self.checkpoint_signal, launch.job_id))
        args = self._sbatch_args(rec, placement, hold_s)
        rec.update(phase="submitting", slurm_id=None, pause=None, stop=None, final=None, held=hold_s is not None,
                   submitted_at=utc_now().isoformat())
        self._save(rec)
        sid = self._sbatch(args, str(script), launch.job_id)
        rec.update(phase="submitted", slurm_id=sid, started_at=rec.get("started_at") or utc_now().isoformat())
        self._save(rec)

    def _sbatch(self, args: list[str], script: str, job_id: str) -> str:
        """``sbatch`` (its own method so a test can stop the service between it and the record)."""
        return self.cli.sbatch(args, script, job_id=job_id)

    def _same_attempt(self, rec: dict[str, Any], queue: Mapping[str, SlurmJob]) -> ExecStatus | None:
        """The status of a recorded attempt, submitting it when the earlier submission never reached Slurm
        (None then)."""
        st = self._status(rec, queue)
        if rec.get("phase") == "submitting" and not rec.get("slurm_id") and read_json(self._exit_file(rec)) is None:
            return None
        return st

    def _open(self, launch: JobLaunch, hold_s: float | None) -> tuple[dict[str, Any], bool]:
        """The record of ``launch``: (record, True) if this attempt was already submitted."""
        key = job_key(launch.job_id)
        rec = self._recs.get(key)
        first = slurm_script.job_name(self.prefix, key, launch.attempt, 1)
        if rec is not None and rec["attempt"] == launch.attempt and rec.get("phase") == "submitted":
            return rec, True  # submitted and recorded: nothing to ask Slurm
        try:
            if rec is None and self._listed:  # the last full listing (report, recover) shows every GridShift job
                queue = {j.name: j for j in self._last_queue if j.name == first}
            else:
                queue = self.queue(sorted({first} | ({self._name(rec)} if rec else set())))
        except ExecutorError as e:
            raise ExecutorError(e.message, job_id=launch.job_id, retryable=e.retryable) from None
        self._adopt_unrecorded(queue)
        rec = self._recs.get(key)
        if rec is not None and rec["job_id"] != launch.job_id:
            raise ExecutorError(f"record {key} belongs to job '{rec['job_id']}'", job_id=launch.job_id,
                                retryable=False)
        if rec is not None and rec["attempt"] == launch.attempt:
            if self._same_attempt(rec, queue) is not None:
                return rec, True
            self._submit(rec, resumed=rec["run"] > 1, hold_s=hold_s)
            return rec, False
        if rec is not None and rec["attempt"] > launch.attempt:
            raise ExecutorError(f"attempt {launch.attempt} is older than attempt {rec['attempt']} already "
                                "started", job_id=launch.job_id, retryable=False)
        if rec is not None:
            st = self._status(rec, queue)
            if not st.finished:
                raise ExecutorError(f"attempt {rec['attempt']} is still {st.state}; stop it before starting "
                                    f"attempt {launch.attempt}", job_id=launch.job_id)
        self.partition(launch.placement.site, launch.job_id)
        rec = {"version": 1, "job_id": launch.job_id, "key": key, "attempt": launch.attempt, "run": 1,
               "launch": launch.to_dict(), "placement": launch.placement.to_dict(),
               "power_cap_frac": launch.placement.power_cap_frac, "started_at": None}
        self._submit(rec, resumed=False, hold_s=hold_s)
        return rec, False

    def start(self, launch: JobLaunch) -> str:
        with self._lock:
            rec, existed = self._open(launch, None)
            if existed and rec.get("held"):
                self._release(rec, launch.job_id)
            return self._ref(rec)

    def stage(self, launch: JobLaunch, start_at: datetime) -> str:
        """Submit ``launch`` held until ``start_at`` (``--hold --begin``), so Slurm's queue shows it with its
        planned start; ``start`` of the same attempt releases it. Staging again moves the begin time."""
        hold_s = max(0.0, (start_at - utc_now()).total_seconds())
        with self._lock:
            rec, existed = self._open(launch, hold_s)
            if existed and rec.get("held"):
                self.cli.scontrol("update", f"JobId={rec['slurm_id']}", f"StartTime=now+{int(round(hold_s))}",
                                  job_id=launch.job_id)
            return self._ref(rec)

    def _release(self, rec: dict[str, Any], job_id: str) -> None:
        sid = rec["slurm_id"]
        self.cli.scontrol("update", f"JobId={sid}", "StartTime=now", job_id=job_id)
        self.cli.scontrol("release", sid, job_id=job_id)
        rec["held"] = False
        self._save(rec)

    # ------------------------------------------------------------ pause / resume

    def _wait(self, rec: dict[str, Any], cond, timeout_s: float) -> ExecStatus:
        deadline = time.monotonic() + timeout_s
        while True:
            st = self._status(rec, self._queue_of(rec))
            if cond(st) or time.monotonic() >= deadline:
                return st
            time.sleep(_POLL_S)

    def pause(self, job_id: str) -> ExecStatus:
        with self._lock:
            rec = self._require(job_id)
            queue = self._queue_of(rec)
            st = self._status(rec, queue)
            sj = self._find(rec, queue)
            if st.state != "running" or sj is None:
                return st
            sid = rec["slurm_id"]
            if sj.state == "PENDING":  # not started yet: hold it in the queue
                self.cli.scontrol("hold", sid, job_id=job_id)
                rec["pause"] = "held"
                self._save(rec)
                return self._status(rec, self._queue_of(rec))
            ack = self._ack_file(rec)
            ack.unlink(missing_ok=True)
            rec.update(pause="requested", pause_requested_at=utc_now().isoformat())
            self._save(rec)
            self._checkpoint_then_suspend(rec, ack)
            return self._status(rec, self._queue_of(rec))

    def _checkpoint_then_suspend(self, rec: dict[str, Any], ack: Path) -> None:
        sid, job_id = rec["slurm_id"], rec["job_id"]
        try:
            self.cli.scancel("--batch", f"--signal={self.checkpoint_signal.name.removeprefix('SIG')}", sid,
                             job_id=job_id)
        except ExecutorError as e:
            if e.retryable:
                raise
        deadline = time.monotonic() + self.pause_grace_s
        while time.monotonic() < deadline and not ack.exists() and not self._exit_file(rec).exists():
            time.sleep(_POLL_S)
        if self._exit_file(rec).exists():
            self._wait(rec, lambda s: s.state != "running", 10.0)
            rec["pause"] = "checkpointed"
        else:
            self.cli.scontrol("suspend", sid, job_id=job_id)
            rec["pause"] = "suspended"
        self._save(rec)

    def _moving(self, rec: dict[str, Any], placement: Placement | None) -> bool:
        if placement is None:
            return False
        old = Placement.from_dict(rec["placement"])
        return (placement.site, placement.accelerator, placement.gang) != (old.site, old.accelerator, old.gang)

    def resume(self, job_id: str, placement: Placement | None = None) -> ExecStatus:
        with self._lock:
            rec = self._require(job_id)
            queue = self._queue_of(rec)
            st = self._status(rec, queue)
            if st.finished:
                return st
            if self._moving(rec, placement):
                if st.state != "paused":
                    raise ExecutorError(f"is {st.state}; pause it before moving it to {placement.site}/"
                                        f"{placement.accelerator}", job_id=job_id, retryable=False)
                self.partition(placement.site, job_id)
                if st.exit_code is None:  # suspended or held: end this run (it checkpointed when paused)
                    rec["stop"] = "moving"
                    self._save(rec)
                    self.cli.scancel(rec["slurm_id"], job_id=job_id)
                    self._wait(rec, lambda s: (sj := self._find(rec, self._queue_of(rec))) is None
                               or sj.state not in ("RUNNING", "SUSPENDED", "PENDING"), self.stop_grace_s + 5.0)
                rec.update(placement=placement.to_dict(), power_cap_frac=placement.power_cap_frac, run=rec["run"] + 1)
                self._submit(rec, resumed=True)
                return self._status(rec, self._queue_of(rec))
            if placement is not None and abs(placement.power_cap_frac - float(rec["power_cap_frac"])) > 1e-9:
                self._apply_cap(rec, placement.power_cap_frac)
            if st.state == "paused" and st.exit_code == 0:  # checkpointed and exited: submit the next run
                rec["run"] += 1
                self._submit(rec, resumed=True)
            elif rec.get("pause") == "held" or (st.state == "paused" and rec.get("held")):
                self.cli.scontrol("release", rec["slurm_id"], job_id=job_id)
                rec.update(pause=None, held=False)
                self._save(rec)
            elif rec.get("pause") in ("suspended", "requested"):
                sj = self._find(rec, self._queue_of(rec))
                if sj is not None and sj.state == "SUSPENDED":
                    self.cli.scontrol("resume", rec["slurm_id"], job_id=job_id)
                rec["pause"] = None
                self._save(rec)
            return self._status(rec, self._queue_of(rec))

    # ------------------------------------------------------------ stop / power

    def stop(self, job_id: str) -> ExecStatus:
        with self._lock:
            rec = self._require(job_id)
            queue = self._queue_of(rec)
            st = self._status(rec, queue)
            if st.finished:
                return st
            rec.update(stop="requested", stop_requested_at=utc_now().isoformat())
            self._save(rec)
            self._terminate(rec)
            rec["stop"] = "done"
            self._save(rec)
            return self._wait(rec, lambda s: s.finished, 10.0)

    def _terminate(self, rec: dict[str, Any]) -> None:
        sid, job_id = rec.get("slurm_id"), rec["job_id"]
        if not sid:
            return
        sj = self._find(rec, self._queue_of(rec))
        if sj is not None and sj.state == "RUNNING":
            self.cli.scancel("--full", "--signal=TERM", sid, job_id=job_id)
            self._wait(rec, lambda s: s.finished or self._exit_file(rec).exists(), self.stop_grace_s)
        try:
            self.cli.scancel(sid, job_id=job_id)
        except ExecutorError as e:
            if e.retryable:
                raise

    def _apply_cap(self, rec: dict[str, Any], frac: float) -> None:
        rec["power_cap_frac"] = frac
        jd = self._jdir(rec["key"])
        if jd.is_dir():
            isolation.write_job_file(jd / "power_cap_frac", f"{frac:g}\n")
        self._save(rec)
        if rec.get("slurm_id") and not rec.get("final"):
            text = slurm_script.comment(rec["job_id"], rec["attempt"], rec["run"], frac)
            self.cli.scontrol("update", f"JobId={rec['slurm_id']}", f"Comment={text}", job_id=rec["job_id"])
        if self.actuator is not None:
            placement = Placement.from_dict(rec["placement"])
            self.actuator.set_job_cap(rec["job_id"], frac, self._gpu_indices(rec), placement.accelerator)

    def _gpu_indices(self, rec: dict[str, Any]) -> list[int] | None:
        """The GPU indices Slurm gave the job on its node (``scontrol -d show job``: ``IDX:0-1``)."""
        try:
            text = self.cli.scontrol("-d", "show", "job", str(rec["slurm_id"]), job_id=rec["job_id"])
        except ExecutorError:
            return None
        return gpu_indices(text)

    def set_power_cap(self, job_id: str, frac: float) -> ExecStatus:
        frac = check_power_cap_frac(frac, job_id)
        with self._lock:
            rec = self._require(job_id)
            self._apply_cap(rec, frac)
            return self._status(rec, self._queue_of(rec))

    # ------------------------------------------------------------ nodes

    def nodes(self, site: str | None = None) -> list[dict[str, Any]]:
        """Slurm's nodes (of ``site``'s partition): name, state, flags (DRAIN, …), reason."""
        part = None if site is None else self.partition(site)
        return [{"name": n["name"], "state": n.get("state"), "flags": list(n.get("state_flags") or []),
                 "reason": n.get("reason") or "", "partitions": list(n.get("partitions") or [])}
                for n in self.cli.nodes() if part is None or part in (n.get("partitions") or [])]

    def drain(self, nodes: Sequence[str], reason: str) -> None:
        """Drain ``nodes`` (running jobs finish, no new ones start): DR shedding of whole nodes."""
        if not reason.strip():
            raise ExecutorError("draining a node needs a reason", retryable=False)
        self.cli.scontrol("update", f"NodeName={','.join(nodes)}", "State=DRAIN", f"Reason={reason}")

    def undrain(self, nodes: Sequence[str]) -> None:
        """Return drained or downed ``nodes`` to service."""
        self.cli.scontrol("update", f"NodeName={','.join(nodes)}", "State=RESUME")

    def shed_idle_nodes(self, events: Mapping[str, str], now: datetime | None = None) -> list[dict[str, Any]]:
        """DR shedding of whole idle nodes through Slurm's power saving, with ``power_save`` (else nothing):
        ``events`` maps each site a grid event asks for less power now to the event's id; idle nodes of those
        sites' partitions are powered down (``State=POWER_DOWN``), those of sites no event covers any more
        powered up. One reconcile step; returns its decisions (see :mod:`.slurm_power`)."""
        if self.power is None:
            return []
        with self._lock:
            return self.power.step(events, now)

    # ------------------------------------------------------------ recovery

    def adopt(self, refs: list[str]) -> list[ExecStatus]:
        with self._lock:
            queue = self.queue()
            self._adopt_unrecorded(queue)
            out = []
            for ref in refs:
                _, _, name = ref.partition(":")[2].partition(":")
                parsed = slurm_script.parse_name(name, self.prefix)
                rec = self._recs.get(parsed[0]) if parsed else None
                if rec is None:
                    out.append(ExecStatus(job_id=ref, state="unknown", ref=ref,
                                          reason=f"no record of this Slurm job in {self.rec_dir}"))
                else:
                    out.append(self._status(rec, queue))
            return out

    def recover(self) -> list[ExecStatus]:
        """Finish what a crash cut short: submissions (found by name), pauses (suspended now), stops
        (cancelled now); adopt GridShift jobs in the queue that have no record; return every status."""
        with self._lock:
            queue = self.queue()
            self._adopt_unrecorded(queue)
            for rec in list(self._recs.values()):
                st = self._status(rec, queue)
                if st.finished or not rec.get("slurm_id"):
                    continue
                if rec.get("stop") in ("requested", "moving"):
                    self._terminate(rec)
                    rec["stop"] = "done" if rec["stop"] == "requested" else rec["stop"]
                    self._save(rec)
                elif rec.get("pause") == "requested":
                    self._checkpoint_then_suspend(rec, self._ack_file(rec))
            return self.report()


def gpu_indices(text: str) -> list[int] | None:
    """The GPU indices in Slurm's allocation text (``GRES=gpu:h100:2(IDX:0-1)``; also ``gres_detail``)."""
    out: list[int] = []
    for m in re.finditer(r"IDX:([0-9][0-9,\-]*)", text):
        for part in m.group(1).split(","):
            lo, _, hi = part.partition("-")
            if lo.isdigit():
                out += list(range(int(lo), int(hi or lo) + 1))
    return out or None


def job_status_from_final(rec: dict[str, Any]) -> ExecStatus:
    d = dict(rec["final"])
    for key in ("started_at", "updated_at"):
        d[key] = parse_time(d.get(key))
    if d["updated_at"] is None:
        d["updated_at"] = utc_now()
    return ExecStatus(**d)


__all__ = ["SlurmExecutor", "gpu_indices"]
