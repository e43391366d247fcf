"""A tenant's job command never runs with the service's rights: its own OS user, its own directory outside the
executor's state, a minimal environment and resource limits (real processes as ``nobody``, no mocks), and the
operator's setting that keeps tenants to job templates."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from gridshift.service.executors import ExecutorError, JobLaunch, Placement
from gridshift.service.executors.isolation import DEFAULT_ENV_ALLOW, Limits, reachable_by_others
from gridshift.service.executors.local import SIMJOB_PY, LocalExecutor, group_members, proc_stat
from polling import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the executors need Linux /proc")


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _python_for_others() -> str | None:
    """A Python interpreter another user can run (the test's own may live under a private home)."""
    for cand in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if cand and reachable_by_others(cand):
            return cand
    return None


NOBODY = _user("nobody")
OTHER = next((u for u in map(_user, ("www-data", "daemon", "games", "backup")) if u and u.pw_uid != 65534), None)
PY = _python_for_others()
as_nobody = pytest.mark.skipif(
    os.geteuid() != 0 or NOBODY is None or PY is None or not reachable_by_others(SIMJOB_PY, stat.S_IROTH),
    reason="needs root, the user nobody and a Python and package tree that nobody can run")

# Run as the job's user: what it is, what it sees, what it can read (argv[1]: a JSON list of paths).
PROBE = r"""
import json, os, sys
out = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "egid": os.getegid(),
       "groups": os.getgroups(), "cwd": os.getcwd(), "limits": open("/proc/self/limits").read(),
       "env": dict(kv.split("=", 1) for kv in open("/proc/self/environ").read().split("\0") if "=" in kv),
       "reads": {}}
for p in json.loads(sys.argv[1]):
    try:
        if os.path.isdir(p):
            os.listdir(p)
        else:
            open(p, "rb").read(1)
        out["reads"][p] = "ok"
    except OSError as e:
        out["reads"][p] = type(e).__name__
with open(os.path.join(os.environ["GRIDSHIFT_WORK_DIR"], "probe.json"), "w") as f:
    json.dump(out, f)
"""

# The escalation of issue 14: a job inserts an operator token into the service's database.
ESCALATE = r"""
import sqlite3, sys
db = sys.argv[1]
try:
    open(db, "r+b").close()
except OSError as e:
    print(f"open {db}: {e}", file=sys.stderr)
con = sqlite3.connect(db)
con.execute("INSERT INTO tokens (id, name, role, tenant, token_hash, created_at) VALUES "
            "('evil', 'evil', 'operator', NULL, 'e' || hex(randomblob(31)), '2026-01-01 00:00:00.000000')")
con.commit()
"""


def finished(ex: LocalExecutor, job_id: str):
    return wait_for(lambda: (s := ex.status(job_id)).finished and s, what=f"{job_id} to finish")


def launch(job_id: str, command: list[str] | None, tenant: str | None = "alice", **kw) -> JobLaunch:
    return JobLaunch(job_id=job_id, command=command, env=kw.pop("env", {}), tenant=tenant,
                     placement=Placement("site-a", "h100", gang=1, power_cap_frac=0.8),
                     work_acc_h=kw.pop("work_acc_h", 1.0), attempt=kw.pop("attempt", 1))


@pytest.fixture
def srv():
    """A service directory as on a host: other users may traverse it (0755), unlike pytest's tmp_path."""
    d = Path(tempfile.mkdtemp(prefix="gs-iso-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def executor(srv: Path, **kw) -> LocalExecutor:
    return LocalExecutor(srv / "state", python=PY, pause_grace_s=10.0, stop_grace_s=1.0, **kw)


def probe(ex: LocalExecutor, job_id: str, paths: list[Path], **kw) -> dict:
    ex.start(launch(job_id, [PY, "-c", PROBE, json.dumps([str(p) for p in paths])], **kw))
    st = finished(ex, job_id)
    assert st.state == "succeeded", (st.reason, (ex.state_dir / "jobs" / job_id / "a1.err.log").read_text())
    return json.loads((ex.job_dir(job_id) / "work" / "probe.json").read_text())


def _store(srv: Path):
    from gridshift.service.db import upgrade
    from gridshift.service.store import Store

    url = f"sqlite:///{srv / 'gridshift.db'}"
    upgrade(url)
    return Store(url)


@as_nobody
def test_a_tenant_job_cannot_insert_an_operator_token(srv: Path) -> None:
    store = _store(srv)
    db = srv / "gridshift.db"
    before = len(store.list_tokens())
    assert os.stat(db).st_mode & 0o777 == 0o600, "the service creates its SQLite database private"
    with executor(srv, run_as="nobody") as ex:
        ex.start(launch("escalate", [PY, "-c", ESCALATE, str(db)]))
        st = finished(ex, "escalate")
        assert st.state == "failed" and st.exit_code == 1
        err = (ex.state_dir / "jobs" / "escalate" / "a1.err.log").read_text()
        assert "Permission denied" in err and "unable to open database file" in err, err
        assert len(store.list_tokens()) == before
        assert ex.record("escalate")["user"] == "nobody"
    # The same command as the service's own user (no run_as): the threat this guards against is real.
    with executor(srv) as ex:
        ex.start(launch("escalate-as-service", [PY, "-c", ESCALATE, str(db)]))
        assert finished(ex, "escalate-as-service").state == "succeeded"
    assert len(store.list_tokens()) == before + 1
    store.close()


@as_nobody
@pytest.mark.skipif(OTHER is None, reason="needs a second unprivileged user")
def test_a_job_reads_neither_another_tenants_job_nor_the_state_nor_the_database(srv: Path) -> None:
    store = _store(srv)
    db = srv / "gridshift.db"
    with executor(srv, run_as_tenant={"alice": "nobody", "bob": OTHER.pw_name}) as ex:
        ex.start(launch("bob-job", [PY, "-c", "open('secret', 'w').write('bob')"], tenant="bob"))
        assert finished(ex, "bob-job").state == "succeeded"
        bob_dir = ex.job_dir("bob-job")
        assert (bob_dir / "secret").read_text() == "bob"
        assert os.stat(bob_dir).st_uid == OTHER.pw_uid and os.stat(bob_dir).st_mode & 0o777 == 0o700
        assert os.stat(ex.state_dir).st_mode & 0o777 == 0o700
        assert ex.job_root.parent == ex.state_dir.parent and ex.state_dir not in ex.job_root.parents

        paths = [bob_dir, bob_dir / "secret", ex.state_dir, ex.state_dir / "jobs" / "bob-job" / "state.json",
                 ex.state_dir / "jobs" / "bob-job" / "a1.err.log", ex.job_root, db]
        seen = probe(ex, "alice-job", [*paths, ex.job_dir("alice-job") / "power_cap_frac"], tenant="alice")
    assert seen["uid"] == NOBODY.pw_uid
    assert {str(p): "PermissionError" for p in paths} == {p: seen["reads"][p] for p in map(str, paths)}
    assert seen["reads"][str(ex.job_dir("alice-job") / "power_cap_frac")] == "ok"  # its own files it reads
    assert seen["cwd"] == str(ex.job_dir("alice-job"))
    store.close()


@as_nobody
def test_the_command_runs_as_the_job_user_with_no_groups_limits_and_a_minimal_environment(
        srv: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRIDSHIFT_TEST_CANARY", "service-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://gridshift:hunter2@db/gridshift")
    limits = Limits(open_files=321, processes=123, address_space_bytes=8 << 30, cpu_s=3600)
    with executor(srv, run_as="nobody", limits=limits) as ex:
        seen = probe(ex, "who", [], env={"MY_SETTING": "1"})
        jd = ex.job_dir("who")
    assert (seen["uid"], seen["euid"]) == (NOBODY.pw_uid, NOBODY.pw_uid)
    assert (seen["gid"], seen["egid"]) == (NOBODY.pw_gid, NOBODY.pw_gid)
    assert seen["groups"] == []
    env = seen["env"]
    assert "GRIDSHIFT_TEST_CANARY" not in env and "DATABASE_URL" not in env
    leaked = {k for k in env if k in os.environ and k not in DEFAULT_ENV_ALLOW and k != "HOME"
              and not k.startswith("GRIDSHIFT_")}
    assert leaked == set()
    assert env["HOME"] == str(jd) and env["GRIDSHIFT_WORK_DIR"] == str(jd / "work") and env["MY_SETTING"] == "1"
    assert all(Path(env[k]).parent == jd for k in ("GRIDSHIFT_PROGRESS_FILE", "GRIDSHIFT_POWER_CAP_FILE",
                                                  "GRIDSHIFT_CHECKPOINT_ACK"))
    lines = {line[:26].strip(): line[26:].split()[:2] for line in seen["limits"].splitlines()[1:]}
    assert lines["Max open files"] == ["321", "321"]
    assert lines["Max processes"] == ["123", "123"]
    assert lines["Max address space"] == [str(8 << 30)] * 2
    assert lines["Max cpu time"] == ["3600", "3600"]


@as_nobody
def test_pause_resume_power_cap_recovery_and_stop_under_run_as(srv: Path) -> None:
    ex = executor(srv, run_as="nobody", sim_wall_s_per_run_h=60.0)
    ex.start(launch("sim", None))  # the built-in simulated workload: 60 s
    wait_for(lambda: ex.status("sim").progress_frac, what="progress")
    assert os.stat(ex.job_dir("sim") / "progress").st_uid == NOBODY.pw_uid
    members = group_members(ex.record("sim")["pgid"])
    assert all(os.stat(f"/proc/{pid}").st_uid == (0 if pid == ex.record("sim")["pid"] else NOBODY.pw_uid)
               for pid in members)  # the wrapper keeps the service's user, the command has nobody's
    wrapper_env = Path(f"/proc/{ex.record('sim')['pid']}/environ").read_bytes().split(b"\0")
    assert {kv.split(b"=", 1)[0].decode() for kv in wrapper_env if kv} <= {
        "PATH", "LANG", "LC_ALL", "TZ", "GRIDSHIFT_CHECKPOINT_SIGNAL"}  # none of the job's variables

    st = ex.pause("sim")
    assert st.state == "paused"
    assert float((ex.job_dir("sim") / "work" / "simjob.ckpt").read_text()) > 0  # checkpointed, acknowledged
    assert (ex.job_dir("sim") / "a1-r1.ack").exists()
    assert all(proc_stat(p)[0] == "T" for p in group_members(ex.record("sim")["pgid"]))
    assert ex.resume("sim").state == "running"
    assert ex.set_power_cap("sim", 0.5).power_cap_frac == 0.5
    assert (ex.job_dir("sim") / "power_cap_frac").read_text().strip() == "0.5"

    ex.close()  # the service dies; the job keeps running
    ex2 = executor(srv, run_as="nobody")
    assert {s.job_id: s.state for s in ex2.recover()} == {"sim": "running"}
    st = ex2.stop("sim")
    assert st.state == "failed" and "stopped on request" in st.reason
    assert not group_members(ex2.record("sim")["pgid"])


def test_run_as_needs_root_and_a_real_user(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ExecutorError, match="no OS user 'no-such-gridshift-user'"):
        LocalExecutor(tmp_path / "state", run_as="no-such-gridshift-user")
    with pytest.raises(ExecutorError, match="is root"):
        LocalExecutor(tmp_path / "state", run_as=0)
    if NOBODY is None:
        pytest.skip("needs the user nobody")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ExecutorError) as err:
        LocalExecutor(tmp_path / "state", run_as="nobody")
    msg = str(err.value)
    assert "\n" not in msg and "needs the service to run as root" in msg and "uid 1000" in msg
    with pytest.raises(ExecutorError, match="outside the state directory"):
        LocalExecutor(tmp_path / "state2", job_root=tmp_path / "state2" / "jobs-here")


def test_without_run_as_the_job_still_gets_its_own_directory_and_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRIDSHIFT_TEST_CANARY", "service-secret")
    with LocalExecutor(tmp_path / "state") as ex:
        ex.start(launch("plain", [sys.executable, "-c", "import os; open('env', 'w').write('\\n'.join(os.environ))"]))
        assert finished(ex, "plain").state == "succeeded"
        names = (ex.job_dir("plain") / "env").read_text().split("\n")
        assert ex.job_root == tmp_path / "state-jobs"
        assert os.stat(ex.state_dir).st_mode & 0o777 == 0o700
        assert os.stat(ex.job_dir("plain")).st_mode & 0o777 == 0o700
    assert "GRIDSHIFT_TEST_CANARY" not in names and "HOME" in names


# ------------------------------------------------------------------------------------- tenant commands

def test_templates_only_refuses_a_tenants_command_but_not_an_operators(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from gridshift.service.app import ApiSettings, create_app
    from gridshift.service.db import upgrade
    from gridshift.service.store import Store

    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    job = {"kind": "fine-tuning", "work_acc_h": 1.0, "gang_min": 1, "gang_max": 1}
    fast = ApiSettings(rate_per_s=10_000, burst=10_000, auth_failure_rate_per_s=10_000, auth_failure_burst=10_000)
    with Store(url) as store, TestClient(create_app(store, settings=fast)) as client:
        ops = {"Authorization": f"Bearer {store.create_token('ops', 'operator')[1]}"}
        alice = {"Authorization": f"Bearer {store.create_token('alice', 'tenant', 'alice')[1]}"}
        api = "/api/v1"
        assert client.get(f"{api}/settings/tenant-commands", headers=alice).json() == {"mode": "allowed"}
        assert client.post(f"{api}/jobs", json={**job, "command": "echo hi"}, headers=alice).status_code == 201
        r = client.put(f"{api}/settings/tenant-commands", json={"mode": "templates-only"}, headers=alice)
        assert r.status_code == 403
        r = client.put(f"{api}/settings/tenant-commands", json={"mode": "templates-only"}, headers=ops)
        assert r.status_code == 200 and r.json() == {"mode": "templates-only"}
        assert client.put(f"{api}/settings/tenant-commands", json={"mode": "sometimes"}, headers=ops).status_code == 422

        r = client.post(f"{api}/jobs", json={**job, "command": "sh -c 'cat gridshift.db'"}, headers=alice)
        assert r.status_code == 403
        detail = r.json()["detail"]
        assert "templates-only" in detail and "\n" not in detail
        assert client.post(f"{api}/jobs", json=job, headers=alice).status_code == 201  # the simulated workload
        r = client.post(f"{api}/jobs", json={**job, "tenant": "alice", "command": "echo ops"}, headers=ops)
        assert r.status_code == 201 and r.json()["command"] == "echo ops"

        r = client.put(f"{api}/settings/job-templates", json={"templates": {"train": ["python3", "train.py",
                                                                                       "--epochs", "2 3"]}},
                       headers=ops)
        assert r.status_code == 200
        r = client.post(f"{api}/jobs", json={**job, "template": "train"}, headers=alice)
        assert r.status_code == 201 and shlex.split(r.json()["command"]) == ["python3", "train.py", "--epochs", "2 3"]
        r = client.post(f"{api}/jobs", json={**job, "template": "nope"}, headers=alice)
        assert r.status_code == 422 and "no job template 'nope'" in r.json()["detail"]
        r = client.post(f"{api}/jobs", json={**job, "template": "train", "command": "x"}, headers=ops)
        assert r.status_code == 422
        assert store.get_setting("tenant_commands") == {"mode": "templates-only"}


def test_serve_checks_the_isolation_options_before_writing_anything(tmp_path: Path, caplog) -> None:
    import logging

    from typer.testing import CliRunner

    from gridshift.cli import app
    from gridshift.cli.serve import _executor_options

    db = tmp_path / "state.db"
    for args, field in ((["--tenant-commands", "sometimes"], "tenant-commands"),
                        (["--job-user-for", "alice"], "job-user-for"),
                        (["--executor", "ray", "--job-user", "nobody"], "executor")):
        res = CliRunner().invoke(app, ["serve", "--db", f"sqlite:///{db}", *args])
        assert res.exit_code == 2, res.output
        assert field in res.output and len(res.output.strip().splitlines()) == 1, res.output
        assert not db.exists(), "nothing is written before the options are checked"
    caplog.set_level(logging.WARNING, logger="gridshift.serve")
    opts = _executor_options("local", None, [], None, ["MY_TOOL_HOME"])
    assert opts == {"env_allow": (*DEFAULT_ENV_ALLOW, "MY_TOOL_HOME")}
    assert any("--job-user" in r.getMessage() for r in caplog.records)
    caplog.clear()
    opts = _executor_options("local", "nobody", ["bob=daemon"], tmp_path / "jobs", [])
    assert (opts["run_as"], opts["run_as_tenant"], opts["job_root"]) == ("nobody", {"bob": "daemon"}, tmp_path / "jobs")
    assert not caplog.records
