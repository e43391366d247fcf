"""The Ray executor: every job a detached, named Ray actor that runs it as a subprocess.

The actor asks for the custom resources ``{"site:<site>": 1, "acc:<type>": gang}``, so Ray places it on a
node of that site with that many accelerators of that type free; the cluster's nodes must advertise them
(``ray start --resources='{"site:eu-north": 1000, "acc:h100": 8}'``). Inside, the actor drives the job with
a node-local LocalExecutor (same wrapper, same pause semantics); the job is ended when its actor dies.
Actors are named ``gridshift-job:<job id>:a<attempt>:r<run>`` in the namespace ``gridshift`` and outlive
the service (``lifetime="detached"``), so a new instance finds them by name. A finished job's status is
written to ``STATE_DIR/ray-<namespace>-finished.json`` and its actor is then killed to free its resources.
Ray is imported when the executor is made, and started (or joined, with an address) at first use.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from gridshift.errors import MissingExtraError, require
from gridshift.service.executors.base import (
    ExecStatus,
    Executor,
    ExecutorError,
    JobLaunch,
    Placement,
    check_power_cap_frac,
    utc_now,
)
from gridshift.service.executors.local import LocalExecutor, read_json, write_json_atomic

ACTOR_PREFIX = "gridshift-job:"


def actor_name(job_id: str, attempt: int, run: int) -> str:
    return f"{ACTOR_PREFIX}{job_id}:a{attempt}:r{run}"


def parse_actor_name(name: str) -> tuple[str, int, int] | None:
    """(job id, attempt, run) from an actor name, or None if it is not a job actor."""
    if not name.startswith(ACTOR_PREFIX):
        return None
    try:
        job_id, a, r = name[len(ACTOR_PREFIX):].rsplit(":", 2)
        return job_id, int(a.removeprefix("a")), int(r.removeprefix("r"))
    except ValueError:
        return None


def job_resources(placement: Placement) -> dict[str, float]:
    """The custom resources a job's actor asks for."""
    return {f"site:{placement.site}": 1.0, f"acc:{placement.accelerator}": float(placement.gang)}


def status_from_dict(d: dict[str, Any]) -> ExecStatus:
    from datetime import datetime

    d = dict(d)
    for key in ("started_at", "updated_at"):
        d[key] = datetime.fromisoformat(d[key]) if d.get(key) else None
    if d["updated_at"] is None:
        d["updated_at"] = utc_now()
    return ExecStatus(**d)


class JobActor:
    """One job on one Ray node (made a Ray actor class by ``_actor_class``)."""

    def __init__(self, launch: dict[str, Any], ref: str, options: dict[str, Any]) -> None:
        options = dict(options)
        root = Path(options.pop("node_state_dir", None) or tempfile.gettempdir()) / "gridshift-ray"
        self.job_id = launch["job_id"]
        self.ref = ref
        self.ex = LocalExecutor(root / uuid.uuid4().hex, orphan_kill=True, ref_prefix="ray-node", **options)
        self.ex.start(JobLaunch.from_dict(launch))

    def _out(self, st: ExecStatus) -> ExecStatus:
        return replace(st, ref=self.ref)

    def status(self) -> ExecStatus:
        return self._out(self.ex.status(self.job_id))

    def pause(self) -> ExecStatus:
        return self._out(self.ex.pause(self.job_id))

    def resume(self, placement: dict[str, Any] | None = None) -> ExecStatus:
        return self._out(self.ex.resume(self.job_id, Placement.from_dict(placement) if placement else None))

    def stop(self) -> ExecStatus:
        return self._out(self.ex.stop(self.job_id))

    def set_power_cap(self, frac: float) -> ExecStatus:
        return self._out(self.ex.set_power_cap(self.job_id, frac))

    def launch(self) -> dict[str, Any] | None:
        """The job's launch request with its current placement."""
        rec = self.ex.record(self.job_id)
        return {**rec["launch"], "placement": rec["placement"]} if rec else None

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


_ACTOR_CLASS = None


def _actor_class():
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        import ray

        _ACTOR_CLASS = ray.remote(max_restarts=0, max_concurrency=8)(JobActor)
    return _ACTOR_CLASS


class RayExecutor(Executor):
    """Jobs as detached Ray actors with per-site and per-accelerator custom resources."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        namespace: str = "gridshift",
        state_dir: str | Path = "./gridshift-executor",
        checkpoint_signal: str | int = "SIGUSR1",
        pause_grace_s: float = 5.0,
        stop_grace_s: float = 10.0,
        sim_wall_s_per_run_h: float = 1.0,
        start_timeout_s: float = 60.0,
        call_timeout_s: float = 30.0,
        num_cpus_per_job: float = 0.0,
        runtime_env: dict[str, Any] | None = None,
        node_state_dir: str | None = None,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        try:
            require("ray", "ray", "the ray executor")
        except MissingExtraError as e:
            raise ExecutorError(e.message, retryable=False) from None
        self.address = address
        self.namespace = namespace
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.finished_file = self.state_dir / f"ray-{namespace}-finished.json"
        self.actor_options = {"checkpoint_signal": checkpoint_signal, "pause_grace_s": pause_grace_s,
                              "stop_grace_s": stop_grace_s, "sim_wall_s_per_run_h": sim_wall_s_per_run_h,
                              "node_state_dir": node_state_dir}
        self.pause_grace_s = float(pause_grace_s)
        self.stop_grace_s = float(stop_grace_s)
        self.start_timeout_s = float(start_timeout_s)
        self.call_timeout_s = float(call_timeout_s)
        self.num_cpus_per_job = float(num_cpus_per_job)
        self.runtime_env = runtime_env
        self.init_options = dict(init_options or {})
        self._owns_ray = False
        self._lock = threading.RLock()
        self._known: dict[str, str] = {}  # job id -> ref, for jobs started or adopted here

    # ------------------------------------------------------------ Ray plumbing

    def _ray(self):
        import ray

        if not ray.is_initialized():
            try:
                ray.init(address=self.address, namespace=self.namespace, **self.init_options)
            except Exception as e:  # ConnectionError, RuntimeError, …: Ray has no common base
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                raise ExecutorError(f"could not start or join {where}: {e}") from None
            self._owns_ray = True
        return ray

    def _ref(self, name: str) -> str:
        return f"ray:{self.namespace}/{name}"

    def _actors(self) -> dict[str, list[tuple[int, int, str]]]:
        """Job id -> [(attempt, run, actor name)] of the live job actors in the namespace, oldest first."""
        ray = self._ray()
        out: dict[str, list[tuple[int, int, str]]] = {}
        for a in ray.util.list_named_actors(all_namespaces=True):
            if a.get("namespace") != self.namespace:
                continue
            parsed = parse_actor_name(a["name"])
            if parsed:
                out.setdefault(parsed[0], []).append((parsed[1], parsed[2], a["name"]))
        return {k: sorted(v) for k, v in out.items()}

    def _handle(self, name: str):
        ray = self._ray()
        try:
            return ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            return None

    def _call(self, name: str, method: str, *args: Any, timeout_s: float | None = None) -> ExecStatus:
        """Call ``method`` on the actor ``name`` and wait for its answer."""
        ray = self._ray()
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        job_id = parse_actor_name(name)[0]
        h = self._handle(name)
        if h is None:
            return self._gone(job_id, name)
        try:
            return ray.get(getattr(h, method).remote(*args), timeout=timeout_s or self.call_timeout_s)
        except GetTimeoutError:
            raise ExecutorError(f"no answer from Ray actor {name} to {method} within "
                                f"{timeout_s or self.call_timeout_s:g} s", job_id=job_id) from None
        except RayActorError as e:
            return self._gone(job_id, name, str(e).splitlines()[0] if str(e) else None)
        except RayTaskError as e:
            cause = e.as_instanceof_cause()
            if isinstance(cause, ExecutorError):
                raise ExecutorError(cause.message, retryable=cause.retryable) from None
            raise ExecutorError(f"{method} failed in Ray actor {name}: {str(e).splitlines()[-1]}",
                                job_id=job_id) from None

    def _gone(self, job_id: str, name: str, detail: str | None = None) -> ExecStatus:
        attempt = parse_actor_name(name)[1]
        fin = self._finished().get(job_id)
        if fin is not None and fin.attempt == attempt:
            return fin
        why = "its Ray actor is gone (node lost or actor killed)" + (f": {detail}" if detail else "")
        return ExecStatus(job_id=job_id, state="lost", reason=why, ref=self._ref(name), attempt=attempt)

    # ------------------------------------------------------------ finished jobs

    def _finished(self) -> dict[str, ExecStatus]:
        data = read_json(self.finished_file) or {}
        return {k: status_from_dict(v) for k, v in data.items()}

    def _retire(self, st: ExecStatus, name: str) -> None:
        """Record a finished job, then kill its actor so its resources are free."""
        ray = self._ray()
        with self._lock:
            data = read_json(self.finished_file) or {}
            data[st.job_id] = st.to_dict()
            write_json_atomic(self.finished_file, data)
        h = self._handle(name)
        if h is not None:
            ray.kill(h, no_restart=True)

    # ------------------------------------------------------------ the interface

    def _check_feasible(self, launch: JobLaunch) -> None:
        ray = self._ray()
        need = job_resources(launch.placement)
        if self.num_cpus_per_job:
            need["CPU"] = self.num_cpus_per_job
        for node in ray.nodes():
            have = node.get("Resources", {})
            if node.get("Alive") and all(have.get(k, 0.0) >= v for k, v in need.items()):
                return
        wanted = ", ".join(f"{k}={v:g}" for k, v in need.items())
        raise ExecutorError(f"no node of the Ray cluster advertises {wanted}; start the nodes of each site with "
                            "--resources (see docs/service/executors.md)", job_id=launch.job_id, retryable=False)

    def _current(self, job_id: str) -> tuple[int, int, str] | None:
        runs = self._actors().get(job_id)
        return runs[-1] if runs else None

    def _create(self, launch: JobLaunch, run: int) -> str:
        name = actor_name(launch.job_id, launch.attempt, run)
        opts: dict[str, Any] = {"name": name, "namespace": self.namespace, "lifetime": "detached",
                                "get_if_exists": True, "num_cpus": self.num_cpus_per_job,
                                "resources": job_resources(launch.placement)}
        if self.runtime_env:
            opts["runtime_env"] = self.runtime_env
        _actor_class().options(**opts).remote(launch.to_dict(), self._ref(name), self.actor_options)
        self._known[launch.job_id] = self._ref(name)
        return name

    def start(self, launch: JobLaunch) -> str:
        with self._lock:
            cur = self._current(launch.job_id)
            fin = self._finished().get(launch.job_id)
            if cur is not None and cur[0] == launch.attempt:
                name = cur[2]
            elif cur is None and fin is not None and fin.attempt == launch.attempt:
                return fin.ref or ""
            else:
                newest = max(cur[0] if cur else 0, fin.attempt or 0 if fin else 0)
                if newest > launch.attempt:
                    raise ExecutorError(f"attempt {launch.attempt} is older than attempt {newest} already "
                                        "started", job_id=launch.job_id, retryable=False)
                if cur is not None:
                    st = self._call(cur[2], "status")
                    if not st.finished:
                        raise ExecutorError(f"attempt {cur[0]} is still {st.state}; stop it before starting "
                                            f"attempt {launch.attempt}", job_id=launch.job_id)
                    self._retire(st, cur[2])
                self._check_feasible(launch)
                name = self._create(launch, run=1)
            st = self._call(name, "status", timeout_s=self.start_timeout_s)
            if st.state == "lost":
                raise ExecutorError(f"could not start: {st.reason}", job_id=launch.job_id)
            self._known[launch.job_id] = self._ref(name)
            return self._ref(name)

    def _target(self, job_id: str) -> tuple[int, int, str] | ExecStatus:
        cur = self._current(job_id)
        if cur is not None:
            return cur
        fin = self._finished().get(job_id)
        if fin is not None:
            return fin
        if job_id in self._known:
            name = self._known[job_id].split("/", 1)[1]
            return self._gone(job_id, name)
        raise ExecutorError("unknown to this executor (no Ray actor of that job in namespace "
                            f"'{self.namespace}' and no record of it finishing)", job_id=job_id, retryable=False)

    def _finish_check(self, st: ExecStatus, name: str) -> ExecStatus:
        if st.finished:
            self._retire(st, name)
        return st

    def pause(self, job_id: str) -> ExecStatus:
        t = self._target(job_id)
        if isinstance(t, ExecStatus):
            return t
        return self._finish_check(self._call(t[2], "pause", timeout_s=self.pause_grace_s + self.call_timeout_s),
                                  t[2])

    def resume(self, job_id: str, placement: Placement | None = None) -> ExecStatus:
        with self._lock:
            t = self._target(job_id)
            if isinstance(t, ExecStatus):
                return t
            attempt, run, name = t
            st = self._call(name, "status")
            if st.finished:
                return self._finish_check(st, name)
            launch = self._launch_of(name)
            moving = placement is not None and launch is not None and (
                (placement.site, placement.accelerator, placement.gang)
                != (launch.placement.site, launch.placement.accelerator, launch.placement.gang))
            if not moving:
                return self._call(name, "resume", placement.to_dict() if placement else None)
            if st.state != "paused":
                raise ExecutorError(f"is {st.state}; pause it before moving it to {placement.site}/"
                                    f"{placement.accelerator}", job_id=job_id, retryable=False)
            # Move: end the frozen run (it checkpointed when paused) and start the next run at the new place.
            moved = replace(launch, placement=placement, env={**launch.env, "GRIDSHIFT_RESUMED": "1"})
            self._check_feasible(moved)
            self._call(name, "stop", timeout_s=self.stop_grace_s + self.call_timeout_s)
            new = self._create(moved, run=run + 1)
            h = self._handle(name)
            if h is not None:
                self._ray().kill(h, no_restart=True)
            return self._call(new, "status", timeout_s=self.start_timeout_s)

    def _launch_of(self, name: str) -> JobLaunch | None:
        h = self._handle(name)
        if h is None:
            return None
        d = self._ray().get(h.launch.remote(), timeout=self.call_timeout_s)
        return JobLaunch.from_dict(d) if d else None

    def stop(self, job_id: str) -> ExecStatus:
        t = self._target(job_id)
        if isinstance(t, ExecStatus):
            return t
        st = self._call(t[2], "stop", timeout_s=self.stop_grace_s + 15.0 + self.call_timeout_s)
        return self._finish_check(st, t[2])

    def set_power_cap(self, job_id: str, frac: float) -> ExecStatus:
        frac = check_power_cap_frac(frac, job_id)
        t = self._target(job_id)
        if isinstance(t, ExecStatus):
            return t
        return self._call(t[2], "set_power_cap", frac)

    def status(self, job_id: str) -> ExecStatus:
        try:
            t = self._target(job_id)
        except ExecutorError:
            return ExecStatus(job_id=job_id, state="unknown", reason="no record of this job")
        return t if isinstance(t, ExecStatus) else self._finish_check(self._call(t[2], "status"), t[2])

    def report(self) -> list[ExecStatus]:
        ray = self._ray()
        from ray.exceptions import RayActorError, RayTaskError

        actors = self._actors()
        pending: dict[Any, str] = {}
        for _job_id, runs in actors.items():
            for _, _, old in runs[:-1]:  # superseded runs (a move cut short by a crash)
                h = self._handle(old)
                if h is not None:
                    ray.kill(h, no_restart=True)
            h = self._handle(runs[-1][2])
            if h is not None:
                pending[h.status.remote()] = runs[-1][2]
        ready, not_ready = ray.wait(list(pending), num_returns=len(pending), timeout=self.call_timeout_s) \
            if pending else ([], [])
        out: dict[str, ExecStatus] = {}
        for obj in ready:
            name = pending[obj]
            job_id = parse_actor_name(name)[0]
            try:
                st = ray.get(obj)
            except (RayActorError, RayTaskError) as e:
                st = self._gone(job_id, name, str(e).splitlines()[0] if str(e) else None)
            out[job_id] = self._finish_check(st, name)
        for obj in not_ready:
            name = pending[obj]
            job_id, attempt, _ = parse_actor_name(name)
            out[job_id] = ExecStatus(job_id=job_id, state="unknown", ref=self._ref(name), attempt=attempt,
                                     reason=f"no answer from its Ray actor within {self.call_timeout_s:g} s "
                                            "(waiting for a node with its resources?)")
        for job_id, st in self._finished().items():
            out.setdefault(job_id, st)
        for job_id, ref in self._known.items():
            if job_id not in out:
                out[job_id] = self._gone(job_id, ref.split("/", 1)[1])
        return [out[k] for k in sorted(out)]

    def adopt(self, refs: list[str]) -> list[ExecStatus]:
        out = []
        for ref in refs:
            prefix = f"ray:{self.namespace}/"
            parsed = parse_actor_name(ref[len(prefix):]) if ref.startswith(prefix) else None
            if parsed is None:
                out.append(ExecStatus(job_id=ref, state="unknown", ref=ref,
                                      reason=f"not a job actor ref of namespace '{self.namespace}'"))
                continue
            name = ref[len(prefix):]
            self._known[parsed[0]] = ref
            st = self._call(name, "status")
            out.append(self._finish_check(st, name))
        return out

    def recover(self) -> list[ExecStatus]:
        statuses = self.report()
        for st in statuses:
            if st.ref and st.ref.startswith("ray:"):
                self._known[st.job_id] = st.ref
        return statuses

    def close(self) -> None:
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False


__all__ = ["RayExecutor", "JobActor", "actor_name", "parse_actor_name", "job_resources"]
