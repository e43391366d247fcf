"""The Slurm executor against a real Slurm (slurmctld, slurmd and munged started by the tests; no mocks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from gridshift.service.executors import ExecutorError, JobLaunch, Placement, make_executor
from gridshift.service.executors.base import utc_now
from gridshift.service.executors.powercap import SimulatedActuator
from gridshift.service.executors.slurm import SlurmExecutor
from gridshift.service.executors.slurm_cli import SlurmCli
from polling import wait_for
from slurm_fixture import start_cluster

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Slurm runs on Linux")

# A job: records its environment, checkpoints on SIGUSR1 (marker + ack), counts steps into a file, exits CODE.
JOB = r"""
import json, os, signal, sys, time
out, steps, code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
def on_checkpoint(signum, frame):
    open(os.path.join(out, "checkpoint"), "a").write("x")
    open(os.environ["GRIDSHIFT_CHECKPOINT_ACK"], "w").close()
if os.environ.get("HANDLE", "1") == "1":
    signal.signal(signal.SIGUSR1, on_checkpoint)
env = {k: v for k, v in os.environ.items() if k.startswith(("GRIDSHIFT_", "SLURM_JOB_PARTITION", "HOME"))}
with open(os.path.join(out, "starts"), "a") as f:
    f.write(json.dumps(env) + "\n")
for i in range(steps):
    time.sleep(0.1)
    with open(os.path.join(out, "count"), "w") as f:
        f.write(str(i + 1))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def cluster():
    yield from start_cluster(cpus=16, gpus=8, min_job_age_s=300)


@pytest.fixture
def ex(cluster, tmp_path) -> SlurmExecutor:
    return SlurmExecutor(tmp_path / "state", slurm_conf=cluster.conf, pause_grace_s=2.0, stop_grace_s=3.0,
                         python=sys.executable, timeout_s=20.0)


def cmd(out: Path, steps: int = 5, code: int = 0) -> list[str]:
    return [sys.executable, "-c", JOB, str(out), str(steps), str(code)]


def launch(job_id: str, command, site: str = "site-a", gang: int = 1, cap: float = 1.0, attempt: int = 1,
           **env) -> JobLaunch:
    return JobLaunch(job_id, command, env=env, placement=Placement(site, "h100", gang=gang, power_cap_frac=cap),
                     work_acc_h=1.0, attempt=attempt)


def queue(cluster) -> list[dict]:
    out = subprocess.run(["squeue", "--json", "--all"], env=cluster.env(), capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["jobs"]


def named(cluster, prefix: str) -> list[dict]:
    return [j for j in queue(cluster) if j["name"].startswith(prefix)]


def state_of(ex: SlurmExecutor, job_id: str, *states: str, timeout_s: float = 30.0):
    return wait_for(lambda: (lambda st: st if st.state in states else None)(ex.status(job_id)), timeout_s,
                    f"{job_id} in {states}")


def count(out: Path) -> int:
    try:
        return int((out / "count").read_text() or 0)
    except (OSError, ValueError):
        return 0


def test_submit_runs_once_in_the_sites_partition_with_gres_and_the_job_contract(cluster, ex, tmp_path):
    out = tmp_path / "j1"
    ref = ex.start(launch("train/1", cmd(out, steps=3), site="site-b", gang=2, cap=0.7, EXTRA="yes"))
    assert ex.start(launch("train/1", cmd(out, steps=3), site="site-b", gang=2, cap=0.7)) == ref  # idempotent
    mine = named(cluster, "gridshift.train_1")
    assert len(mine) == 1 and mine[0]["partition"] == "site-b"
    assert "gpu:h100:2" in mine[0]["tres_per_node"]
    assert json.loads(mine[0]["comment"].removeprefix("gridshift:"))["job"] == "train/1"
    st = state_of(ex, "train/1", "succeeded")
    assert st.exit_code == 0 and st.attempt == 1 and st.ref == ref
    env = json.loads((out / "starts").read_text().splitlines()[0])
    assert env["GRIDSHIFT_JOB_ID"] == "train/1" and env["GRIDSHIFT_SITE"] == "site-b"
    assert env["GRIDSHIFT_GANG"] == "2" and env["GRIDSHIFT_POWER_CAP_FRAC"] == "0.7"
    assert env["SLURM_JOB_PARTITION"] == "site-b" and env["HOME"] == str(ex.job_dir("train/1"))
    assert ex.start(launch("train/1", cmd(out, steps=3), site="site-b", gang=2)) == ref  # finished: still once
    assert len(named(cluster, "gridshift.train_1")) == 1
    assert len((out / "starts").read_text().splitlines()) == 1
    with pytest.raises(ExecutorError, match="older than attempt 2"):
        ex.start(launch("train/1", cmd(out), attempt=2))
        ex.start(launch("train/1", cmd(out), attempt=1))


def test_staged_job_is_held_until_its_planned_start_then_released(cluster, ex, tmp_path):
    out = tmp_path / "held"
    ref = ex.stage(launch("held-1", cmd(out, steps=2)), utc_now() + timedelta(hours=2))
    st = ex.status("held-1")
    assert st.state == "paused" and "held until its planned start" in st.reason
    (j,) = named(cluster, "gridshift.held-1")
    assert j["job_state"] == "PENDING" and j["state_reason"] == "JobHeldUser" and j["priority"] == 0
    assert j["begin_time" if "begin_time" in j else "eligible_time"] > time.time() + 3600
    time.sleep(1.0)
    assert not (out / "starts").exists()
    assert ex.start(launch("held-1", cmd(out, steps=2))) == ref  # the planned start: released, not resubmitted
    assert state_of(ex, "held-1", "succeeded").exit_code == 0
    assert len(named(cluster, "gridshift.held-1")) == 1


def test_pause_checkpoints_then_suspends_and_resume_continues_then_stop(cluster, ex, tmp_path):
    out = tmp_path / "ps"
    ex.start(launch("ps", cmd(out, steps=600)))
    wait_for(lambda: count(out) >= 3, 30, "the job to run")
    st = ex.pause("ps")
    assert st.state == "paused" and "suspended" in st.reason
    assert (out / "checkpoint").read_text() == "x"  # the signal reached the command, which acknowledged it
    (j,) = named(cluster, "gridshift.ps.")
    assert j["job_state"] == "SUSPENDED"
    frozen = count(out)
    time.sleep(1.0)
    assert count(out) == frozen  # suspended: no progress
    assert ex.pause("ps").state == "paused"  # idempotent
    assert ex.resume("ps").state == "running"
    wait_for(lambda: count(out) > frozen + 2, 30, "progress after resume")
    st = ex.stop("ps")
    assert st.state == "failed" and "stopped on request" in st.reason
    assert ex.stop("ps").state == "failed"


def test_a_job_without_a_checkpoint_handler_is_frozen_not_killed(cluster, ex, tmp_path):
    out = tmp_path / "noh"
    ex.start(launch("noh", cmd(out, steps=30), HANDLE="0"))
    wait_for(lambda: count(out) >= 2, 30, "the job to run")
    assert ex.pause("noh").state == "paused"
    assert not (out / "checkpoint").exists()
    ex.resume("noh")
    assert state_of(ex, "noh", "succeeded", timeout_s=40).exit_code == 0  # ran to the end


def test_move_to_another_site_submits_the_next_run_there(cluster, ex, tmp_path):
    out = tmp_path / "mv"
    ex.start(launch("mv", cmd(out, steps=600)))
    wait_for(lambda: count(out) >= 2, 30, "the job to run")
    ex.pause("mv")
    st = ex.resume("mv", Placement("site-b", "h100", gang=1, power_cap_frac=0.6))
    assert st.state == "running"
    runs = wait_for(lambda: len((out / "starts").read_text().splitlines()) == 2
                    and (out / "starts").read_text().splitlines(), 30, "the second run")
    second = json.loads(runs[1])
    assert second["GRIDSHIFT_RESUMED"] == "1" and second["SLURM_JOB_PARTITION"] == "site-b"
    assert second["GRIDSHIFT_POWER_CAP_FRAC"] == "0.6"
    states = {j["name"]: j["job_state"] for j in named(cluster, "gridshift.mv.")}
    assert states["gridshift.mv.a1.r1"] == "CANCELLED" and states["gridshift.mv.a1.r2"] in ("RUNNING", "PENDING")
    ex.stop("mv")


def test_failures_are_clear_errors_on_the_job(cluster, ex, tmp_path):
    ex.start(launch("fails", cmd(tmp_path / "f", steps=1, code=3)))
    st = state_of(ex, "fails", "failed")
    assert st.exit_code == 3 and "exit code 3" in st.reason
    with pytest.raises(ExecutorError, match="Invalid partition name") as e:
        ex.start(launch("nopart", cmd(tmp_path / "n"), site="no-such-site"))
    assert not e.value.retryable and "job 'nopart'" in str(e.value)
    with pytest.raises(ExecutorError, match="(?i)gres") as e:
        ex.start(JobLaunch("badgres", cmd(tmp_path / "g"), placement=Placement("site-a", "a100", gang=1)))
    assert not e.value.retryable
    mapped = SlurmExecutor(tmp_path / "state2", slurm_conf=cluster.conf, partitions={"site-a": "site-a"})
    with pytest.raises(ExecutorError, match="no Slurm partition for site 'site-b'") as e:
        mapped.start(launch("unmapped", cmd(tmp_path / "u"), site="site-b"))
    assert not e.value.retryable


def test_drained_node_queues_new_jobs_and_resume_runs_them_and_a_node_down_loses_its_job(cluster, ex, tmp_path):
    node = ex.nodes("site-a")[0]["name"]
    ex.drain([node], "grid event: shed load")
    try:
        assert "DRAIN" in ex.nodes("site-a")[0]["flags"]
        out = tmp_path / "dr"
        ex.start(launch("dr", cmd(out, steps=1)))
        time.sleep(1.5)
        st = ex.status("dr")
        assert st.state == "running" and "queued in Slurm" in st.reason and not (out / "starts").exists()
    finally:
        ex.undrain([node])
    assert state_of(ex, "dr", "succeeded").exit_code == 0
    out = tmp_path / "down"
    ex.start(launch("down", cmd(out, steps=600)))
    wait_for(lambda: count(out) >= 1, 30, "the job to run")
    SlurmCli(slurm_conf=cluster.conf).scontrol("update", f"NodeName={node}", "State=DOWN", "Reason=test: node lost")
    try:
        st = state_of(ex, "down", "lost")
        assert "NODE_FAIL" in st.reason
    finally:
        ex.undrain([node])
        cluster.wait_node_idle()


KILLED_SERVICE = r"""
import os, sys, time
from gridshift.service.executors import JobLaunch, Placement
from gridshift.service.executors.slurm import SlurmExecutor
state, conf, out, where, job_id = sys.argv[1:6]
class Slow(SlurmExecutor):
    def _sbatch(self, args, script, job_id):
        if where == "before":
            open(out + ".ready", "w").close(); time.sleep(60)
        sid = super()._sbatch(args, script, job_id)
        open(out + ".ready", "w").close(); time.sleep(60)
        return sid
ex = Slow(state, slurm_conf=conf, python=sys.executable)
ex.start(JobLaunch(job_id, [sys.executable, "-c", "import time; time.sleep(1)"], placement=Placement("site-a", "h100")))
"""


@pytest.mark.parametrize("where", ["after", "before"])
def test_kill_9_mid_dispatch_loses_no_job_and_submits_none_twice(cluster, tmp_path, where):
    state, out, job = tmp_path / "state", tmp_path / "marker", f"k9-{where}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", KILLED_SERVICE, str(state), str(cluster.conf), str(out), where, job],
                         env=env)
    try:
        wait_for(lambda: Path(str(out) + ".ready").exists() or p.poll() is not None, 30, "the dispatch")
        assert p.poll() is None
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
    n_before = len(named(cluster, f"gridshift.{job}."))
    assert n_before == (1 if where == "after" else 0)
    ex = SlurmExecutor(state, slurm_conf=cluster.conf, python=sys.executable)
    statuses = {st.job_id: st for st in ex.recover()}
    if where == "after":
        assert statuses[job].state in ("running", "succeeded") and ex.record(job)["slurm_id"]
    else:
        assert statuses[job].state == "lost" and "starting the same attempt submits it" in statuses[job].reason
    ref = ex.start(JobLaunch(job, [sys.executable, "-c", "import time; time.sleep(1)"],
                             placement=Placement("site-a", "h100")))
    assert ex.start(JobLaunch(job, ["true"], placement=Placement("site-a", "h100"))) == ref
    assert len(named(cluster, f"gridshift.{job}.")) == 1
    assert state_of(ex, job, "succeeded").exit_code == 0


def test_a_lost_state_directory_is_rebuilt_from_the_job_comments(cluster, ex, tmp_path):
    out = tmp_path / "adopt"
    ex.start(launch("adopt-me", cmd(out, steps=100), site="site-b", cap=0.5))
    fresh = SlurmExecutor(tmp_path / "other-state", slurm_conf=cluster.conf, stop_grace_s=2.0)
    st = {s.job_id: s for s in fresh.recover()}["adopt-me"]
    assert st.state == "running" and st.attempt == 1 and st.power_cap_frac == 0.5
    assert fresh.record("adopt-me")["placement"]["site"] == "site-b"
    fresh.stop("adopt-me")
    assert state_of(ex, "adopt-me", "failed").state == "failed"


def test_outside_jobs_are_background_load_not_gridshift_jobs(cluster, ex, tmp_path):
    cli = SlurmCli(slurm_conf=cluster.conf)
    res = subprocess.run(["sbatch", "--parsable", "--job-name=someone-else", "--partition=site-a",
                          "--gres=gpu:h100:3", "--output=/dev/null", "--wrap=sleep 30"], env=cluster.env(),
                         capture_output=True, text=True, check=True)
    sid = res.stdout.strip()
    try:
        wait_for(lambda: any(j["job_id"] == int(sid) and j["job_state"] == "RUNNING" for j in queue(cluster)), 30,
                 "the outside job to run")
        assert all(st.job_id != "someone-else" for st in ex.report())
        bg = ex.background_load()
        assert bg.busy.get(("site-a", "h100")) == 3 and bg.running.get("site-a") == 1
    finally:
        cli.scancel(sid)


def test_power_cap_goes_to_the_comment_the_cap_file_and_the_actuator(cluster, tmp_path):
    act = SimulatedActuator([("H100", 200.0, 700.0)] * 8)
    ex = SlurmExecutor(tmp_path / "state", slurm_conf=cluster.conf, python=sys.executable, actuator=act)
    out = tmp_path / "cap"
    ex.start(launch("capped", cmd(out, steps=300), gang=2, cap=1.0))
    wait_for(lambda: count(out) >= 1, 30, "the job to run")
    ex.report()
    st = ex.set_power_cap("capped", 0.5)
    assert st.power_cap_frac == 0.5
    assert (ex.job_dir("capped") / "power_cap_frac").read_text().strip() == "0.5"
    (j,) = named(cluster, "gridshift.capped.")
    assert json.loads(j["comment"].removeprefix("gridshift:"))["power_cap_frac"] == 0.5
    frac, devices = act.job_caps()["capped"]
    assert frac == 0.5 and len(devices) == 2
    assert all(act.read_w(i) == 350.0 for i in devices)
    with pytest.raises(ExecutorError, match=r"power cap must be in \(0, 1\]"):
        ex.set_power_cap("capped", 1.5)
    ex.stop("capped")
    act.restore()
    assert all(act.read_w(i) == 700.0 for i in devices)


def test_controller_down_is_a_retryable_error_and_work_resumes_when_it_returns(cluster, tmp_path):
    ex = make_executor("slurm", state_dir=tmp_path / "state", slurm_conf=cluster.conf, python=sys.executable,
                       timeout_s=20.0)
    out = tmp_path / "ctl"
    ex.start(launch("ctl", cmd(out, steps=80)))
    wait_for(lambda: count(out) >= 1, 30, "the job to run")
    cluster.stop_controller()
    try:
        with pytest.raises(ExecutorError, match="(?i)controller") as e:
            ex.report()
        assert e.value.retryable
        with pytest.raises(ExecutorError) as e:
            ex.start(launch("ctl-2", cmd(tmp_path / "ctl2", steps=1)))
        assert e.value.retryable and "ctl-2" in str(e.value)
        assert count(out) >= 1  # the job itself runs on without the controller
    finally:
        cluster.start_controller()
    st = {s.job_id: s for s in ex.report()}
    assert st["ctl"].state == "running"
    ex.start(launch("ctl-2", cmd(tmp_path / "ctl2", steps=1)))  # the retry goes through now
    assert state_of(ex, "ctl-2", "succeeded").exit_code == 0
    assert len(named(cluster, "gridshift.ctl-2.")) == 1
    ex.stop("ctl")


def test_squeue_text_and_json_agree_and_the_name_filter_is_honoured(cluster, ex, tmp_path):
    ex.start(launch("shape-1", cmd(tmp_path / "s1", steps=200), gang=2, cap=0.9))
    ex.stage(launch("shape-2", cmd(tmp_path / "s2")), utc_now() + timedelta(hours=1))
    wait_for(lambda: count(tmp_path / "s1") >= 1, 30, "the job to run")
    text = SlurmCli(slurm_conf=cluster.conf).squeue()
    js = SlurmCli(slurm_conf=cluster.conf, queue_format="json").squeue()

    def key(j):
        return (j.slurm_id, j.name, j.state, j.reason, j.partition, j.comment, j.gpus, j.gpu_type, j.start_time)

    assert sorted(map(key, text)) == sorted(map(key, js)) and len(text) >= 2
    mine = SlurmCli(slurm_conf=cluster.conf).squeue(names=["gridshift.shape-1.a1.r1"])
    assert [j.name for j in mine] == ["gridshift.shape-1.a1.r1"] and mine[0].gpus == 2
    ex.stop("shape-1")
    ex.stop("shape-2")


def test_parsers_read_22_05_and_later_shapes():
    from gridshift.service.executors.slurm import gpu_indices
    from gridshift.service.executors.slurm_cli import parse_job

    old = parse_job({"job_id": 7, "name": "n", "job_state": "FAILED", "exit_code": 768,
                     "gres_detail": ["gpu:h100:2(IDX:0-1)"], "cpus": 4})
    new = parse_job({"job_id": 7, "name": "n", "job_state": ["FAILED"], "cpus": {"number": 4},
                     "exit_code": {"status": ["EXITED"], "return_code": {"number": 3}, "signal": {"id": None}},
                     "tres_per_node": "gres/gpu:h100:2"})
    killed = parse_job({"job_id": 8, "job_state": "CANCELLED", "exit_code": 9})
    assert (old.state, old.exit_code, old.gpus, old.gpu_type) == ("FAILED", 3, 2, "h100")
    assert (new.state, new.exit_code, new.cpus, new.gpus) == ("FAILED", 3, 4, 2)
    assert killed.exit_code == -9
    assert gpu_indices("GRES=gpu:h100:3(IDX:0-1,4)") == [0, 1, 4] and gpu_indices("GRES=") is None


def test_serve_options_for_the_slurm_executor(tmp_path):
    from gridshift.cli.serve import _executor_options
    from gridshift.errors import GridShiftError

    opts = _executor_options("slurm", None, [], tmp_path / "shared", ["HF_HOME"], ["eu-north=gpu-eu", "us=gpu-us"])
    assert opts["partitions"] == {"eu-north": "gpu-eu", "us": "gpu-us"} and opts["job_root"] == tmp_path / "shared"
    assert "HF_HOME" in opts["env_allow"]
    with pytest.raises(GridShiftError, match="expected SITE=PARTITION, got 'eu-north'"):
        _executor_options("slurm", None, [], None, [], ["eu-north"])
    with pytest.raises(GridShiftError, match="apply to the local executor"):
        _executor_options("slurm", "nobody", [], None, [], [])
    with pytest.raises(GridShiftError, match="--slurm-partition applies to the slurm executor"):
        _executor_options("local", None, [], None, [], ["a=b"])
    from typer.testing import CliRunner

    from gridshift.cli import app

    db = tmp_path / "state.db"
    for args in (["--executor", "slurm", "--slurm-partition", "nope"], ["--executor", "pbs"]):
        res = CliRunner().invoke(app, ["serve", "--db", f"sqlite:///{db}", *args])
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        assert not db.exists()


def test_prolog_caps_a_gridshift_jobs_gpus_from_its_comment_and_the_epilog_restores_them(cluster, ex, tmp_path):
    from gridshift.service.executors import slurm_prolog

    out = tmp_path / "pro"
    ex.start(launch("prolog-job", cmd(out, steps=300), gang=2, cap=0.6))
    wait_for(lambda: count(out) >= 1, 30, "the job to run")
    cli = SlurmCli(slurm_conf=cluster.conf)
    sid = ex.record("prolog-job")["slurm_id"]
    act = SimulatedActuator([("H100", 200.0, 700.0)] * 8)
    caps = slurm_prolog.apply(cli, act, sid)
    assert len(caps) == 2 and set(caps.values()) == {420.0}
    ex.set_power_cap("prolog-job", 0.4)  # the comment follows the cap: a prolog run now sets 280 W
    assert set(slurm_prolog.apply(cli, SimulatedActuator([("H100", 200.0, 700.0)] * 8), sid).values()) == {280.0}
    assert set(slurm_prolog.restore(cli, act, sid).values()) == {700.0}
    other = subprocess.run(["sbatch", "--parsable", "--job-name=not-ours", "--partition=site-a",
                            "--output=/dev/null", "--wrap=sleep 20"], env=cluster.env(), capture_output=True,
                           text=True, check=True).stdout.strip()
    assert slurm_prolog.apply(cli, act, other) == {}
    assert slurm_prolog.main(["apply", "--job", ""]) == 2
    cli.scancel(other)
    ex.stop("prolog-job")
