"""The local executor: every job a subprocess on this machine, recoverable after the service dies.

Each job runs under ``_wrap.py`` as the leader of its own session and process group, so it keeps running
when the service is killed; the wrapper writes the command's exit code to a file when it ends. Per job the
state directory (0700: no job reads it) holds a JSON record (pid, process start time to detect PID reuse,
attempt, command, power cap, pending pause/stop), written atomically before and after every change, and the
logs; the job itself sees only its own directory under JOB_ROOT (default ``<STATE_DIR>-jobs``), owned by the
job's user, 0700, its working directory and HOME:

    STATE_DIR/jobs/<key>/state.json        the record
    STATE_DIR/jobs/<key>/a<N>.out.log      stdout of attempt N (all its runs; the job gets the descriptor)
    STATE_DIR/jobs/<key>/a<N>.err.log      stderr of attempt N
    STATE_DIR/jobs/<key>/a<N>-r<M>.exit.json   how run M of attempt N ended (by the wrapper)
    STATE_DIR/jobs/<key>/a<N>-r<M>.env.json    the command's environment (read by the wrapper)
    JOB_ROOT/<key>/work/                   GRIDSHIFT_WORK_DIR: the job's checkpoints
    JOB_ROOT/<key>/progress                GRIDSHIFT_PROGRESS_FILE, written by the job
    JOB_ROOT/<key>/power_cap_frac          GRIDSHIFT_POWER_CAP_FILE, written by the executor
    JOB_ROOT/<key>/a<N>-r<M>.ack           GRIDSHIFT_CHECKPOINT_ACK, touched by the job

With ``run_as`` (or ``run_as_tenant``) the command runs as that unprivileged user, with no supplementary
groups, a minimal environment and resource limits (:mod:`gridshift.service.executors.isolation`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from gridshift.data import files
from gridshift.service.executors import isolation
from gridshift.service.executors._wrap import FORWARDED as WRAPPER_SIGNALS
from gridshift.service.executors._wrap import catches
from gridshift.service.executors.base import (
    ExecStatus,
    Executor,
    ExecutorError,
    JobLaunch,
    Placement,
    check_power_cap_frac,
    utc_now,
)
from gridshift.service.executors.job_contract import SIMJOB_PY, JobDirContract, parse_time
from gridshift.service.executors.powercap import PowerCapActuator
from gridshift.service.executors.procfs import ProcTable, find_wrapper, group_members, proc_alive, proc_stat

_HERE = Path(__file__).resolve().parent
WRAP_PY = _HERE / "_wrap.py"
_POLL_S = 0.05


# ---------------------------------------------------------------- processes

def signal_number(sig: str | int) -> signal.Signals:
    """``sig`` ("SIGUSR1", "USR1", 10) as a signal, else ExecutorError."""
    try:
        if isinstance(sig, int) or str(sig).isdigit():
            return signal.Signals(int(sig))
        name = str(sig).upper()
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise ExecutorError(f"unknown signal {sig!r}", retryable=False) from None


def _kill(pid: int | None, sig: int) -> None:
    if pid:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _killpg(pgid: int | None, sig: int) -> None:
    if pgid:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- files

def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so a reader sees the old or the new file, never half of one."""
    files.write_json_atomic(path, data, indent=1, sort_keys=True)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def job_key(job_id: str) -> str:
    """A file-name-safe key for ``job_id`` (the id itself when it is safe, else a slug plus a hash)."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", job_id)[:80].lstrip(".") or "job"
    if slug == job_id:
        return slug
    return f"{slug}-{hashlib.sha256(job_id.encode()).hexdigest()[:10]}"


def visible_devices(env: Mapping[str, str]) -> list[int] | None:
    """The device indices of ``CUDA_VISIBLE_DEVICES`` ("0,2"), None when unset or not indices (UUIDs)."""
    text = str(env.get("CUDA_VISIBLE_DEVICES", "")).strip()
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return [int(p) for p in parts] if parts and all(p.isdigit() for p in parts) else None


# ---------------------------------------------------------------- the executor

class LocalExecutor(JobDirContract, Executor):
    """Jobs as subprocesses of this machine (see the module docstring and docs/service/executors.md)."""

    name = "local"

    def __init__(
        self,
        state_dir: str | Path = "./gridshift-executor",
        *,
        checkpoint_signal: str | int = "SIGUSR1",
        pause_grace_s: float = 5.0,
        stop_grace_s: float = 10.0,
        sim_wall_s_per_run_h: float = 1.0,
        python: str | None = None,
        cwd: str | Path | None = None,
        orphan_kill: bool = False,
        ref_prefix: str = "local",
        run_as: str | int | None = None,
        run_as_tenant: Mapping[str, str | int] | None = None,
        job_root: str | Path | None = None,
        env_allow: tuple[str, ...] | list[str] = isolation.DEFAULT_ENV_ALLOW,
        limits: isolation.Limits | Mapping[str, int | None] | None = None,
        actuator: PowerCapActuator | None = None,
    ) -> None:
        self.run_as = None if run_as is None else isolation.resolve_user(run_as)
        self.run_as_tenant = {str(t): isolation.resolve_user(u, f"run_as_tenant[{t}]")
                              for t, u in (run_as_tenant or {}).items()}
        if self.run_as is not None or self.run_as_tenant:
            isolation.check_can_switch("run_as" if self.run_as is not None else "run_as_tenant")
        self.env_allow = tuple(env_allow)
        self.limits = isolation.Limits.of(limits)
        self.state_dir = Path(state_dir).resolve()
        self.jobs_dir = self.state_dir / "jobs"
        isolation.private_dir(self.state_dir, "executor state directory")
        isolation.private_dir(self.jobs_dir, "executor state directory")
        self.job_root = (Path(job_root) if job_root is not None
                         else self.state_dir.parent / f"{self.state_dir.name}-jobs").resolve()
        if self.job_root == self.state_dir or self.state_dir in self.job_root.parents:
            raise ExecutorError(f"job_root {self.job_root} must be outside the state directory {self.state_dir}",
                                retryable=False)
        isolation.job_root_dir(self.job_root)
        self.python = python or sys.executable
        if (self.run_as is not None or self.run_as_tenant) and not (
                isolation.reachable_by_others(self.python)
                and isolation.reachable_by_others(SIMJOB_PY, stat.S_IROTH)):
            logging.getLogger("gridshift.executor").warning(
                "the job users may not reach %s or %s: the built-in simulated workload will fail (give python=)",
                self.python, SIMJOB_PY)
        self.checkpoint_signal = signal_number(checkpoint_signal)
        self.pause_grace_s = float(pause_grace_s)
        self.stop_grace_s = float(stop_grace_s)
        self.sim_wall_s_per_run_h = float(sim_wall_s_per_run_h)
        self.cwd = Path(cwd) if cwd is not None else None
        self.orphan_kill = orphan_kill
        self.ref_prefix = ref_prefix
        self.actuator = actuator
        self._popens: dict[str, subprocess.Popen] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    # ------------------------------------------------------------ records

    def _dir(self, key: str) -> Path:
        return self.jobs_dir / key

    def job_dir(self, job_id: str) -> Path:
        """The job's own directory (its working directory, HOME, checkpoints, progress, power cap file)."""
        return self._jdir(job_key(job_id))

    def job_user(self, tenant: str | None) -> isolation.JobUser | None:
        """The OS user a job of ``tenant`` runs as (None: the service's own user)."""
        if tenant is not None and tenant in self.run_as_tenant:
            return self.run_as_tenant[tenant]
        return self.run_as

    def _load(self, key: str) -> dict[str, Any] | None:
        return read_json(self._dir(key) / "state.json")

    def _save(self, rec: dict[str, Any]) -> None:
        rec["updated_at"] = utc_now().isoformat()
        write_json_atomic(self._dir(rec["key"]) / "state.json", rec)

    def _exit_file(self, rec: dict[str, Any]) -> Path:
        return self._dir(rec["key"]) / f"a{rec['attempt']}-r{rec['run']}.exit.json"

    def _ref(self, rec: dict[str, Any]) -> str:
        return f"{self.ref_prefix}:{rec['key']}#a{rec['attempt']}"

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """One caller at a time per job: a thread lock and a file lock (against a second service)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.RLock())
        with lock:
            self._dir(key).mkdir(parents=True, exist_ok=True)
            with open(self._dir(key) / ".lock", "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)

    def record(self, job_id: str) -> dict[str, Any] | None:
        """The job's state record (see the module docstring), or None."""
        return self._load(job_key(job_id))

    def _require(self, job_id: str) -> dict[str, Any]:
        rec = self._load(job_key(job_id))
        if rec is None:
            raise ExecutorError("unknown to this executor (never started here and not in its state directory "
                                f"{self.state_dir})", job_id=job_id, retryable=False)
        return rec

    def _reap(self) -> None:
        for key, p in list(self._popens.items()):
            if p.poll() is not None:
                self._popens.pop(key, None)

    # ------------------------------------------------------------ status

    def _locate(self, rec: dict[str, Any]) -> bool:
        """Fill in the pid of a start the service did not finish recording (it died in between)."""
        if rec.get("pid"):
            return True
        found = find_wrapper(self._exit_file(rec))
        if found is None:
            return False
        rec["pid"], rec["start_ticks"] = found
        rec["pgid"] = found[0]
        rec["phase"] = "started"
        self._save(rec)
        return True

    def _status(self, rec: dict[str, Any], table: ProcTable | None = None) -> ExecStatus:
        """The job's status; ``table`` is a snapshot of /proc taken before this call (``report``: one scan
        for every job), else /proc is read for this job alone."""
        base = dict(job_id=rec["job_id"], started_at=parse_time(rec.get("started_at")),
                    power_cap_frac=rec.get("power_cap_frac"), ref=self._ref(rec), attempt=rec["attempt"],
                    progress_frac=self._progress(rec))
        ended = read_json(self._exit_file(rec))
        if ended is not None:
            code = int(ended["exit_code"])
            upd = parse_time(ended.get("ended_at")) or utc_now()
            if rec.get("stop"):
                return ExecStatus(state="failed", exit_code=code, updated_at=upd,
                                  reason=f"stopped on request ({ended.get('reason') or code})", **base)
            if code == 0 and rec.get("pause"):
                return ExecStatus(state="paused", exit_code=0, updated_at=upd,
                                  reason="checkpointed and exited; resume restarts it", **base)
            if code == 0:
                return ExecStatus(state="succeeded", exit_code=0, updated_at=upd, reason=None, **base)
            return ExecStatus(state="failed", exit_code=code, updated_at=upd,
                              reason=ended.get("reason") or f"exit code {code}", **base)
        if not self._locate(rec):
            if rec.get("stop"):
                return ExecStatus(state="failed", reason="stopped on request before it began", **base)
            return ExecStatus(state="lost", reason="the start was interrupted before the process began; "
                              "starting the same attempt again launches it", **base)
        members = group_members(rec.get("pgid"), table)
        wrapper = proc_alive(rec["pid"], rec.get("start_ticks"), table)
        if wrapper is None and not members:
            # The wrapper may have written its exit file between our two reads.
            if self._exit_file(rec).exists():
                return self._status(rec, table)
            if rec.get("stop"):
                return ExecStatus(state="failed", reason="stopped on request (ended without an exit record)",
                                  **base)
            return ExecStatus(state="lost", reason="the process ended without an exit record "
                              "(killed with its wrapper, or the machine restarted)", **base)
        if members and all(s == "T" for s in members.values()):
            return ExecStatus(state="paused", reason="frozen (SIGSTOP) after the checkpoint signal", **base)
        reason = "wrapper gone; the command still runs" if wrapper is None else None
        return ExecStatus(state="running", reason=reason, **base)

    def status(self, job_id: str) -> ExecStatus:
        rec = self._load(job_key(job_id))
        if rec is None:
            return ExecStatus(job_id=job_id, state="unknown", reason="no record of this job")
        self._reap()
        return self._status(rec)

    def report(self) -> list[ExecStatus]:
        self._reap()
        table = ProcTable()  # one scan of /proc for every job, taken before any exit record is read
        out = []
        for path in sorted(self.jobs_dir.glob("*/state.json")):
            rec = read_json(path)
            if rec is not None:
                out.append(self._status(rec, table))
        return out

    # ------------------------------------------------------------ start

    def _wrapper_env(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", os.defpath), "GRIDSHIFT_CHECKPOINT_SIGNAL": self.checkpoint_signal.name}
        env.update({k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ})
        return env

    def _spawn(self, rec: dict[str, Any], resumed: bool) -> None:
        """Record the run as launching, start the wrapper, record its pid (a crash in between is found
        again by the wrapper's command line, see ``_locate``)."""
        launch = JobLaunch.from_dict(rec["launch"])
        d = self._dir(rec["key"])
        user = self.job_user(launch.tenant)
        jd = isolation.make_job_dir(self._jdir(rec["key"]), user)
        isolation.write_job_file(jd / "power_cap_frac", f"{rec['power_cap_frac']:g}\n")
        for stale in (self._exit_file(rec), self._ack_file(rec)):
            stale.unlink(missing_ok=True)
        cmd = self._command(launch, Placement.from_dict(rec["placement"]))
        argv = [self.python, "-I", str(WRAP_PY), "--exit-file", str(self._exit_file(rec))]
        argv += ["--orphan-kill"] if self.orphan_kill else []
        argv += ["--user", user.arg()] if user is not None else []
        argv += self.limits.args()
        # The command's environment goes through a file in the private state directory: the wrapper itself,
        # which keeps the service's rights, runs with a fixed environment (no loader variables of the job's).
        env_file = self._dir(rec["key"]) / f"a{rec['attempt']}-r{rec['run']}.env.json"
        write_json_atomic(env_file, self._job_env(rec, launch, resumed))
        argv += ["--env-file", str(env_file)]
        argv += ["--", *cmd]
        rec.update(phase="launching", pid=None, pgid=None, start_ticks=None, command=cmd, pause=None, stop=None,
                   pause_requested_at=None, stop_requested_at=None, user=None if user is None else user.name)
        self._save(rec)
        out_log, err_log = d / f"a{rec['attempt']}.out.log", d / f"a{rec['attempt']}.err.log"
        # The wrapper starts with the signals it relays blocked (the mask is inherited across fork and exec)
        # and unblocks them once its handlers are installed: a signal sent in between waits for the handler
        # instead of ending the wrapper by its default action.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {*WRAPPER_SIGNALS, self.checkpoint_signal})
        try:
            with open(out_log, "ab") as out, open(err_log, "ab") as err:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     env=self._wrapper_env(), cwd=self.cwd or jd,
                                     start_new_session=True, close_fds=True)
        except OSError as e:
            rec["phase"] = "failed-to-launch"
            self._save(rec)
            raise ExecutorError(f"could not launch: {e.strerror or e}", job_id=launch.job_id) from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        st = proc_stat(p.pid)
        rec.update(phase="started", pid=p.pid, pgid=p.pid, start_ticks=st[2] if st else None,
                   started_at=rec.get("started_at") or utc_now().isoformat())
        self._popens[rec["key"]] = p
        self._save(rec)
        self._actuate(rec, strict=False)
        # Until the wrapper has started the command, a signal would end the wrapper itself: wait for that.
        deadline = time.monotonic() + 5.0
        while (time.monotonic() < deadline and p.poll() is None and not self._exit_file(rec).exists()
               and len(group_members(p.pid)) < 2):
            time.sleep(0.01)

    def start(self, launch: JobLaunch) -> str:
        key = job_key(launch.job_id)
        with self._locked(key):
            rec = self._load(key)
            if rec is not None and rec["job_id"] != launch.job_id:
                raise ExecutorError(f"state file {self._dir(key)} belongs to job '{rec['job_id']}'",
                                    job_id=launch.job_id, retryable=False)
            if rec is not None and rec["attempt"] == launch.attempt:
                if rec.get("phase") == "failed-to-launch" or (
                        not self._exit_file(rec).exists() and not self._locate(rec)):
                    self._spawn(rec, resumed=rec["run"] > 1)  # never began: launch it now
                return self._ref(rec)
            if rec is not None and rec["attempt"] > launch.attempt:
                raise ExecutorError(f"attempt {launch.attempt} is older than attempt {rec['attempt']} already "
                                    "started", job_id=launch.job_id, retryable=False)
            if rec is not None:
                st = self._status(rec)
                if st.state in ("running", "paused") and st.exit_code is None:
                    raise ExecutorError(f"attempt {rec['attempt']} is still {st.state}; stop it before starting "
                                        f"attempt {launch.attempt}", job_id=launch.job_id)
            rec = {"version": 1, "job_id": launch.job_id, "key": key, "attempt": launch.attempt, "run": 1,
                   "launch": launch.to_dict(), "placement": launch.placement.to_dict(),
                   "power_cap_frac": launch.placement.power_cap_frac, "started_at": None}
            self._spawn(rec, resumed=False)
            return self._ref(rec)

    # ------------------------------------------------------------ pause / resume

    def _wait(self, cond, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            self._reap()
            if cond():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)

    def _freeze(self, rec: dict[str, Any]) -> None:
        _killpg(rec["pgid"], signal.SIGSTOP)
        rec["pause"] = "frozen"
        self._save(rec)
        self._wait(lambda: all(s == "T" for s in group_members(rec["pgid"]).values())
                   or self._exit_file(rec).exists(), 5.0)

    def pause(self, job_id: str) -> ExecStatus:
        rec = self._require(job_id)
        with self._locked(rec["key"]):
            rec = self._require(job_id)
            st = self._status(rec)
            if st.state != "running":
                return st
            ack = self._ack_file(rec)
            ack.unlink(missing_ok=True)
            rec.update(pause="requested", pause_requested_at=utc_now().isoformat())
            self._save(rec)
            # The checkpoint signal goes to the job's processes that handle it. One that has not installed
            # its handler yet (a job paused right after its start) or never does would be ended by the
            # signal's default action: it is frozen with the rest without it. With no handler anywhere,
            # there is no checkpoint to wait for.
            ready = [pid for pid in group_members(rec["pgid"])
                     if pid != rec["pid"] and catches(pid, self.checkpoint_signal)]
            for pid in ready:
                _kill(pid, self.checkpoint_signal)
            if ready:
                self._wait(lambda: ack.exists() or self._exit_file(rec).exists()
                           or not group_members(rec["pgid"]), self.pause_grace_s)
            if not self._exit_file(rec).exists() and group_members(rec["pgid"]):
                self._freeze(rec)
            return self._status(rec)

    def resume(self, job_id: str, placement: Placement | None = None) -> ExecStatus:
        rec = self._require(job_id)
        with self._locked(rec["key"]):
            rec = self._require(job_id)
            if placement is not None:
                rec["placement"] = placement.to_dict()
                rec["power_cap_frac"] = placement.power_cap_frac
                self._write_cap(rec, placement.power_cap_frac)
                self._save(rec)
                self._actuate(rec, strict=False)
            st = self._status(rec)
            if st.state == "paused" and st.exit_code == 0:  # checkpointed and exited: start it again
                rec["run"] += 1
                self._spawn(rec, resumed=True)
            elif st.state in ("paused", "running") and rec.get("pause"):
                _killpg(rec["pgid"], signal.SIGCONT)
                rec["pause"] = None
                self._save(rec)
                self._wait(lambda: not any(s == "T" for s in group_members(rec["pgid"]).values()), 5.0)
            return self._status(rec)

    # ------------------------------------------------------------ stop / power

    def _terminate(self, rec: dict[str, Any]) -> None:
        done = lambda: self._exit_file(rec).exists() or not group_members(rec["pgid"])  # noqa: E731
        if done():
            return
        if proc_alive(rec["pid"], rec.get("start_ticks")) is not None:
            _kill(rec["pid"], signal.SIGTERM)  # relayed by the wrapper
        else:
            _killpg(rec["pgid"], signal.SIGTERM)  # the wrapper is gone: signal the group directly
        _killpg(rec["pgid"], signal.SIGCONT)  # a frozen job must run to handle SIGTERM
        if self._wait(done, self.stop_grace_s):
            return
        for pid in group_members(rec["pgid"]):
            if pid != rec["pid"]:
                _kill(pid, signal.SIGKILL)  # keep the wrapper so it records the exit code
        if not self._wait(done, 5.0):
            _killpg(rec["pgid"], signal.SIGKILL)
            self._wait(lambda: not group_members(rec["pgid"]), 5.0)

    def stop(self, job_id: str) -> ExecStatus:
        rec = self._require(job_id)
        with self._locked(rec["key"]):
            rec = self._require(job_id)
            st = self._status(rec)
            if st.finished:
                return st
            rec.update(stop="requested", stop_requested_at=utc_now().isoformat())
            self._save(rec)
            if rec.get("pid"):
                self._terminate(rec)
            rec["stop"] = "done"
            self._save(rec)
            return self._status(rec)

    def _write_cap(self, rec: dict[str, Any], frac: float) -> None:
        jd = self._jdir(rec["key"])
        if jd.is_dir():
            isolation.write_job_file(jd / "power_cap_frac", f"{frac:g}\n")

    def _actuate(self, rec: dict[str, Any], *, strict: bool) -> None:
        """Set the job's cap on hardware through the actuator, for the devices of its
        ``CUDA_VISIBLE_DEVICES`` (else every device); ``strict``: a failure is an ExecutorError, else a
        warning (a start is not undone for a cap that cannot be set)."""
        if self.actuator is None:
            return
        placement = Placement.from_dict(rec["placement"])
        devices = visible_devices((rec.get("launch") or {}).get("env") or {})
        try:
            self.actuator.set_job_cap(rec["job_id"], float(rec["power_cap_frac"]), devices, placement.accelerator)
        except ExecutorError as e:
            if strict:
                raise ExecutorError(e.message, job_id=rec["job_id"], retryable=e.retryable) from None
            logging.getLogger("gridshift.executor").warning("job %s: power cap not set: %s", rec["job_id"], e)

    def set_power_cap(self, job_id: str, frac: float) -> ExecStatus:
        frac = check_power_cap_frac(frac, job_id)
        rec = self._require(job_id)
        with self._locked(rec["key"]):
            rec = self._require(job_id)
            rec["power_cap_frac"] = frac
            self._write_cap(rec, frac)
            self._save(rec)
            self._actuate(rec, strict=True)
            return self._status(rec)

    # ------------------------------------------------------------ recovery

    def adopt(self, refs: list[str]) -> list[ExecStatus]:
        out = []
        for ref in refs:
            m = re.fullmatch(rf"{re.escape(self.ref_prefix)}:(.+)#a(\d+)", ref)
            rec = self._load(m.group(1)) if m else None
            if rec is None:
                out.append(ExecStatus(job_id=m.group(1) if m else ref, state="unknown", ref=ref,
                                      reason=f"no record of this job in {self.state_dir}"))
            elif rec["attempt"] != int(m.group(2)):
                st = self._status(rec)
                out.append(replace(st, reason=f"attempt {m.group(2)} was superseded by attempt {rec['attempt']}"))
            else:
                out.append(self._status(rec))
        return out

    def recover(self) -> list[ExecStatus]:
        for path in sorted(self.jobs_dir.glob("*/state.json")):
            rec = read_json(path)
            if rec is None or not rec.get("pid") and not self._locate(rec):
                continue
            if rec.get("stop") == "requested" or (rec.get("pause") == "requested"):
                with self._locked(rec["key"]):
                    rec = read_json(path) or rec
                    if self._exit_file(rec).exists() or not group_members(rec.get("pgid")):
                        continue
                    if rec.get("stop") == "requested":
                        self._terminate(rec)
                        rec["stop"] = "done"
                        self._save(rec)
                    elif rec.get("pause") == "requested":
                        self._freeze(rec)
        return self.report()

    def close(self) -> None:
        self._reap()
