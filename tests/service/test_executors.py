"""Executors end to end with real subprocesses and a local Ray instance (no mocks)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from gridshift.service.executors import ExecStatus, ExecutorError, JobLaunch, Placement, make_executor
from gridshift.service.executors.local import SIMJOB_PY, LocalExecutor, proc_stat
from polling import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the executors need Linux /proc")

# A job: records its pid and every start, writes progress, checkpoints on SIGUSR1 (marker + ack file).
JOB = r"""
import os, signal, sys, time
out, steps, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def on_checkpoint(signum, frame):
    with open(os.path.join(out, "checkpoint"), "w") as f:
        f.write(str(os.getpid()))
    open(os.environ["GRIDSHIFT_CHECKPOINT_ACK"], "w").close()
signal.signal(signal.SIGUSR1, on_checkpoint)
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(os.path.join(out, "starts"), "a") as f:
    f.write(f"{os.getpid()} {os.environ['GRIDSHIFT_POWER_CAP_FRAC']}\n")
for i in range(steps):
    time.sleep(0.05)
    with open(os.path.join(out, "progress"), "w") as f:
        f.write(str(i + 1))
"""


def job_cmd(out: Path, steps: int) -> list[str]:
    return [sys.executable, "-c", JOB, str(out), str(steps), f"gs-test-{os.getpid()}-{out.name}"]


def job_processes(tag: str) -> list[int]:
    """Pids of live processes whose command line holds ``tag`` (the job, not its wrapper)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        st = proc_stat(int(entry))
        if tag.encode() in args and not any(a.endswith(b"_wrap.py") for a in args) and st and st[0] not in "ZX":
            pids.append(int(entry))
    return pids


def launch(job_id: str, command: list[str] | None, attempt: int = 1, **kw) -> JobLaunch:
    placement = kw.pop("placement", Placement("site-a", "h100", gang=2, power_cap_frac=0.8))
    return JobLaunch(job_id=job_id, command=command, env=kw.pop("env", {}), placement=placement,
                     work_acc_h=kw.pop("work_acc_h", 1.0), attempt=attempt)


@pytest.fixture
def ex(tmp_path: Path) -> LocalExecutor:
    e = make_executor("local", state_dir=tmp_path / "state", pause_grace_s=10.0, stop_grace_s=1.0)
    yield e
    for st in e.report():
        if not st.finished:
            e.stop(st.job_id)
    e.close()


def status(e, job_id: str) -> ExecStatus:
    return e.status(job_id)


# ---------------------------------------------------------------- local

def test_local_start_pause_resume_succeed(ex: LocalExecutor, tmp_path: Path) -> None:
    out = tmp_path / "job1"
    out.mkdir()
    ref = ex.start(launch("job-1", job_cmd(out, 40)))
    assert ref == "local:job-1#a1"
    wait_for(lambda: (out / "progress").exists(), what="progress")
    st = status(ex, "job-1")
    assert st.state == "running" and st.exit_code is None and st.attempt == 1
    assert st.started_at is not None and st.started_at.utcoffset().total_seconds() == 0
    assert st.power_cap_frac == 0.8

    st = ex.pause("job-1")
    assert st.state == "paused"
    pid = int((out / "checkpoint").read_text())  # the job received the checkpoint signal
    assert proc_stat(pid)[0] == "T"  # and is frozen
    assert ex.pause("job-1").state == "paused"  # idempotent

    st = ex.resume("job-1")
    assert st.state == "running"
    assert proc_stat(pid)[0] != "T"
    st = wait_for(lambda: (s := status(ex, "job-1")).finished and s, what="job-1 to finish")
    assert st.state == "succeeded" and st.exit_code == 0
    assert (out / "progress").read_text() == "40"
    assert ex.stop("job-1").state == "succeeded"  # stopping a finished job changes nothing
    assert ex.resume("job-1").state == "succeeded"


def test_local_failures_have_exit_code_and_reason(ex: LocalExecutor) -> None:
    ex.start(launch("bad", ["sh", "-c", "echo broken >&2; exit 3"]))
    ex.start(launch("missing", ["/nonexistent/gridshift-cmd"]))
    st = wait_for(lambda: (s := status(ex, "bad")).finished and s, what="bad to fail")
    assert (st.state, st.exit_code, st.reason) == ("failed", 3, "exit code 3")
    assert "broken" in (ex.state_dir / "jobs" / "bad" / "a1.err.log").read_text()
    st = wait_for(lambda: (s := status(ex, "missing")).finished and s, what="missing to fail")
    assert st.state == "failed" and st.exit_code == 127 and "command not found" in st.reason
    with pytest.raises(ExecutorError, match="unknown to this executor"):
        ex.pause("never-started")
    assert ex.status("never-started").state == "unknown"


def test_local_stop_idempotent_start_and_attempts(ex: LocalExecutor, tmp_path: Path) -> None:
    out = tmp_path / "job2"
    out.mkdir()
    first = launch("job-2", job_cmd(out, 2000), env={"IGNORE_TERM": "1"})
    ref = ex.start(first)
    assert ex.start(first) == ref  # same attempt: the existing job
    wait_for(lambda: (out / "progress").exists(), what="progress")
    assert len((out / "starts").read_text().splitlines()) == 1
    with pytest.raises(ExecutorError, match="still running"):
        ex.start(launch("job-2", job_cmd(out, 10), attempt=2))

    st = ex.stop("job-2")  # the job ignores SIGTERM: killed after the grace period
    assert st.state == "failed" and st.exit_code == -9 and st.reason.startswith("stopped on request")
    assert ex.stop("job-2").state == "failed"
    assert job_processes(first.command[-1]) == []

    ex.start(launch("job-2", job_cmd(out, 2), attempt=2))
    st = wait_for(lambda: (s := status(ex, "job-2")).finished and s, what="attempt 2")
    assert st.state == "succeeded" and st.attempt == 2
    with pytest.raises(ExecutorError, match="older than attempt 2"):
        ex.start(launch("job-2", job_cmd(out, 2), attempt=1))


def test_local_simulated_job_power_cap_and_checkpoint_exit(ex: LocalExecutor) -> None:
    ex.start(launch("sim", None, work_acc_h=1.0, placement=Placement("site-b", "a100", gang=2)))  # 0.5 s
    ex.set_power_cap("sim", 0.6)
    assert (ex.job_dir("sim") / "power_cap_frac").read_text().strip() == "0.6"
    with pytest.raises(ExecutorError, match="power cap"):
        ex.set_power_cap("sim", 1.5)
    st = wait_for(lambda: (s := status(ex, "sim")).finished and s, what="sim")
    assert st.state == "succeeded" and st.progress_frac == 1.0 and st.power_cap_frac == 0.6

    # A job that exits 0 after its checkpoint stays paused; resume starts it again from the checkpoint.
    cmd = [sys.executable, str(SIMJOB_PY), "--work-s", "3", "--exit-on-checkpoint"]
    ex.start(launch("ckpt", cmd))
    wait_for(lambda: status(ex, "ckpt").progress_frac, what="progress")
    st = ex.pause("ckpt")
    assert st.state == "paused" and st.exit_code == 0 and "checkpointed" in st.reason
    done_s = float((ex.job_dir("ckpt") / "work" / "simjob.ckpt").read_text())
    assert 0 < done_s < 3
    assert ex.resume("ckpt").state == "running"
    st = wait_for(lambda: (s := status(ex, "ckpt")).finished and s, what="ckpt")
    assert st.state == "succeeded"
    assert (ex.state_dir / "jobs" / "ckpt" / "a1-r2.exit.json").exists()  # the second run finished it


def test_local_pause_right_after_start_never_kills_the_job(ex: LocalExecutor, tmp_path: Path) -> None:
    """A pause at once after the start (before the job has its checkpoint handler) freezes the job instead
    of ending it with the checkpoint signal's default action; it then resumes and finishes. Twenty times
    without a pause in between, then with growing delays that sweep the moment the handler is installed."""
    delays = [0.0] * 20 + [0.005 * i for i in range(1, 13)]
    ids = []
    for i, delay in enumerate(delays):
        out = tmp_path / f"early{i}"
        out.mkdir()
        job_id = f"early-{i}"
        ex.start(launch(job_id, job_cmd(out, 4)))
        if delay:
            time.sleep(delay)
        st = ex.pause(job_id)
        assert (st.state, st.exit_code) == ("paused", None), (i, st)
        members = [p for p in ex_group(ex, job_id)]
        assert members and all(proc_stat(p)[0] == "T" for p in members), (i, members)
        assert ex.status(job_id).state == "paused"
        assert ex.resume(job_id).state == "running"
        ids.append(job_id)
    for i, job_id in enumerate(ids):
        st = wait_for(lambda job_id=job_id: (s := status(ex, job_id)).finished and s, what=f"{job_id} to finish")
        assert (st.state, st.exit_code) == ("succeeded", 0), (job_id, st.reason)
        assert (tmp_path / f"early{i}" / "progress").read_text() == "4"


def test_local_pause_of_a_job_without_a_checkpoint_handler_freezes_it(ex: LocalExecutor, tmp_path: Path) -> None:
    """Neither the shell nor ``sleep`` handles SIGUSR1: the job is frozen without the signal, at once (no
    checkpoint to wait for), and finishes after the resume."""
    ex.start(launch("plain", ["sh", "-c", f"sleep 0.5; echo done > {tmp_path / 'plain.out'}"]))
    wait_for(lambda: len(ex_group(ex, "plain")) >= 2, what="the shell and its sleep")
    t = time.monotonic()
    st = ex.pause("plain")
    assert (st.state, st.exit_code) == ("paused", None)
    assert time.monotonic() - t < ex.pause_grace_s / 2  # nothing to wait for
    assert ex.resume("plain").state == "running"
    st = wait_for(lambda: (s := status(ex, "plain")).finished and s, what="plain to finish")
    assert st.state == "succeeded" and (tmp_path / "plain.out").read_text() == "done\n"


def test_wrapper_takes_signals_only_once_its_handlers_are_installed(tmp_path: Path) -> None:
    """Started with the relayed signals blocked, as the executor starts it, the wrapper survives a checkpoint
    signal sent before its handlers exist, and an early SIGTERM ends it without starting the command."""
    import signal
    import subprocess

    from gridshift.service.executors.local import WRAP_PY

    def start(exit_file: Path, marker: Path) -> subprocess.Popen:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
        try:
            return subprocess.Popen([sys.executable, "-I", str(WRAP_PY), "--exit-file", str(exit_file), "--",
                                     sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"],
                                    start_new_session=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    p = start(tmp_path / "a.exit.json", tmp_path / "a.ran")
    p.send_signal(signal.SIGUSR1)  # at once: the interpreter is still starting
    assert p.wait(20) == 0
    assert json.loads((tmp_path / "a.exit.json").read_text())["exit_code"] == 0 and (tmp_path / "a.ran").exists()

    p = start(tmp_path / "b.exit.json", tmp_path / "b.ran")
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 128 + signal.SIGTERM
    ended = json.loads((tmp_path / "b.exit.json").read_text())
    assert ended["exit_code"] == -signal.SIGTERM and "before the command started" in ended["reason"]
    assert not (tmp_path / "b.ran").exists()


def ex_group(ex: LocalExecutor, job_id: str) -> list[int]:
    """The job's processes (its wrapper's group)."""
    from gridshift.service.executors.local import group_members

    rec = ex.record(job_id)
    return list(group_members(rec["pgid"]))


def test_local_recovery_after_the_service_died(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = tmp_path / "job3"
    out.mkdir()
    ex1 = LocalExecutor(state, stop_grace_s=2.0)
    job = launch("job-3", job_cmd(out, 2000))
    ref = ex1.start(job)
    wait_for(lambda: (out / "progress").exists(), what="progress")
    del ex1  # the service dies; the job keeps running in its own session

    ex2 = LocalExecutor(state, stop_grace_s=2.0)
    found = {s.job_id: s for s in ex2.recover()}
    assert found["job-3"].state == "running" and found["job-3"].ref == ref
    assert ex2.adopt([ref])[0].state == "running"
    assert ex2.start(job) == ref  # the reconciler re-dispatches the start: nothing new runs
    assert len(job_processes(job.command[-1])) == 1
    assert len((out / "starts").read_text().splitlines()) == 1

    # Killed between launching the process and recording its pid: found again by its command line.
    rec_path = state / "jobs" / "job-3" / "state.json"
    rec = json.loads(rec_path.read_text())
    rec.update(pid=None, pgid=None, start_ticks=None, phase="launching")
    rec_path.write_text(json.dumps(rec))
    ex3 = LocalExecutor(state, stop_grace_s=2.0)
    assert ex3.start(job) == ref
    assert len(job_processes(job.command[-1])) == 1
    assert ex3.status("job-3").state == "running"

    st = ex3.stop("job-3")
    assert st.state == "failed" and "stopped on request" in st.reason
    assert job_processes(job.command[-1]) == []


def test_unknown_executor_and_bad_launch() -> None:
    with pytest.raises(ExecutorError, match="unknown executor 'pbs'"):
        make_executor("pbs")
    with pytest.raises(ExecutorError, match="attempt"):
        JobLaunch("j", None, attempt=0)
    with pytest.raises(ExecutorError, match="gang"):
        Placement("a", "h100", gang=0)


# ---------------------------------------------------------------- Ray

RESOURCES = {"site:site-a": 100.0, "site:site-b": 100.0, "acc:h100": 8.0, "acc:mi300x": 8.0}


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, resources=RESOURCES, include_dashboard=False, namespace="gridshift-tests",
             log_to_driver=False)
    yield ray
    for a in ray.util.list_named_actors(all_namespaces=True):
        try:
            ray.kill(ray.get_actor(a["name"], namespace=a["namespace"]), no_restart=True)
        except ValueError:
            pass
    ray.shutdown()


def test_ray_executor(local_ray, tmp_path: Path) -> None:
    ray = local_ray
    opts = dict(state_dir=tmp_path / "state", node_state_dir=str(tmp_path / "nodes"), pause_grace_s=10.0,
                stop_grace_s=1.0, call_timeout_s=60.0)
    ex = make_executor("ray", **opts)
    out1, out2 = tmp_path / "r1", tmp_path / "r2"
    out1.mkdir()
    out2.mkdir()
    j1 = launch("train-1", job_cmd(out1, 4000), placement=Placement("site-a", "h100", gang=4))
    j2 = launch("train-2", job_cmd(out2, 4000), placement=Placement("site-b", "mi300x", gang=2,
                                                                    power_cap_frac=0.7))
    r1, r2 = ex.start(j1), ex.start(j2)
    assert r1 == "ray:gridshift/gridshift-job:train-1:a1:r1"
    assert r2 == "ray:gridshift/gridshift-job:train-2:a1:r1"
    assert ex.start(j1) == r1  # idempotent
    wait_for(lambda: (out1 / "progress").exists() and (out2 / "progress").exists(), what="both jobs")
    free = ray.available_resources()
    assert free["acc:h100"] == 4.0 and free["acc:mi300x"] == 6.0  # the actors hold their resources
    states = {s.job_id: s for s in ex.report()}
    assert states["train-1"].state == "running" and states["train-2"].state == "running"
    assert states["train-2"].power_cap_frac == 0.7
    assert (out2 / "starts").read_text().split()[1] == "0.7"

    st = ex.pause("train-1")
    assert st.state == "paused"
    assert proc_stat(int((out1 / "checkpoint").read_text()))[0] == "T"
    assert ex.resume("train-1").state == "running"
    assert ex.set_power_cap("train-1", 0.5).power_cap_frac == 0.5

    # Moving a paused job: its run ends and the next run starts at the new placement from its checkpoint.
    assert ex.pause("train-2").state == "paused"
    st = ex.resume("train-2", Placement("site-a", "h100", gang=2, power_cap_frac=0.9))
    assert st.state == "running" and st.ref == "ray:gridshift/gridshift-job:train-2:a1:r2"
    wait_for(lambda: len((out2 / "starts").read_text().splitlines()) == 2, what="the moved run")
    assert (out2 / "starts").read_text().splitlines()[1].split()[1] == "0.9"

    st = ex.stop("train-2")
    assert st.state == "failed" and st.reason.startswith("stopped on request")
    assert ex.stop("train-2").state == "failed"  # the actor is gone; its final status was kept

    with pytest.raises(ExecutorError, match="no node of the Ray cluster advertises"):
        ex.start(launch("nowhere", None, placement=Placement("site-z", "h100")))

    # A new service instance finds the detached actor and does not start the job twice.
    ex2 = make_executor("ray", **opts)
    found = {s.job_id: s for s in ex2.recover()}
    assert found["train-1"].state == "running" and found["train-1"].ref == r1
    assert found["train-2"].state == "failed"
    assert ex2.start(j1) == r1
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "train-1" in a["name"]]
    assert names == ["gridshift-job:train-1:a1:r1"]
    assert len((out1 / "starts").read_text().splitlines()) == 1
    assert ex2.adopt([r1])[0].state == "running"

    st = ex2.stop("train-1")
    assert st.state == "failed"
    wait_for(lambda: ray.available_resources().get("acc:h100") == 8.0, what="resources to be freed")
    assert job_processes(j1.command[-1]) == []
