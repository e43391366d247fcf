"""DR shedding of whole idle nodes through Slurm's power saving, against a real Slurm 22.05 (three nodes on this
machine, one ``slurmd -N`` each; ``SuspendProgram``/``ResumeProgram`` record their calls, see
gridshift.testing.slurm_cluster): a grid event powers an idle node down, never a node running a job nor one an
operator drained; the event's end powers it up again and a job then runs on it; the reconciler makes the step
once a pass and keeps its decisions in the plan."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from gridshift.model.events import GridEvent
from gridshift.model.scenario import Scenario
from gridshift.service.db import upgrade
from gridshift.service.executors import JobLaunch, Placement
from gridshift.service.executors.slurm import SlurmExecutor
from gridshift.service.executors.slurm_power import REASON
from gridshift.service.reconciler import Reconciler
from gridshift.service.store import Principal, Store
from polling import wait_for
from slurm_fixture import start_cluster
from slurm_reconciler_proc import FLEET

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Slurm runs on Linux")
SYSTEM = Principal.system()
T0 = datetime(2023, 6, 6, 9, tzinfo=UTC)  # inside the bundled 2023 grid data
OPERATOR = "operator: disk swap"
UNTIL = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.1)\n"  # runs until a file exists


@pytest.fixture(scope="module")
def cluster():
    yield from start_cluster(sites=("site-a", "site-b"), cpus=4, gpus=2, nodes=3, power_saving=True)


def node(cluster, name: str) -> dict[str, str]:
    """``scontrol show node``'s fields (State=IDLE+DRAIN+POWERED_DOWN, Reason=…)."""
    out = subprocess.run(["scontrol", "show", "node", name], env=cluster.env(), capture_output=True, text=True,
                         check=True).stdout
    fields: dict[str, str] = {}
    for line in out.splitlines():
        if line.strip().startswith("Reason="):
            fields["Reason"] = line.strip().removeprefix("Reason=")
            continue
        for tok in line.split():
            k, _, v = tok.partition("=")
            fields.setdefault(k, v)
    return fields


def flags(cluster, name: str) -> set[str]:
    return set(node(cluster, name)["State"].split("+"))


def sinfo_state(cluster, name: str) -> str:
    return subprocess.run(["sinfo", "-h", "-N", "-n", name, "-o", "%T"], env=cluster.env(), capture_output=True,
                          text=True, check=True).stdout.split()[0]


def calls(path) -> list[str]:
    return [line.split(maxsplit=1)[1] for line in path.read_text().splitlines()] if path.exists() else []


def sbatch(cluster, cwd, node: str) -> str:
    """A batch job of ``true`` on ``node``; its id."""
    return subprocess.run(["sbatch", "--parsable", "-p", "site-a", "-w", node, "-o", "/dev/null", "--wrap", "true"],
                          env=cluster.env(), capture_output=True, text=True, check=True, cwd=cwd).stdout.strip()


def job_state(cluster, job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-t", "all", "-o", "%T"], env=cluster.env(), capture_output=True,
                          text=True).stdout.strip()


def scontrol(cluster, *args: str) -> None:
    subprocess.run(["scontrol", *args], env=cluster.env(), capture_output=True, text=True, check=True)


@pytest.fixture
def operator_drained(cluster):
    """gs-node3 drained by an operator for the test (undrained after it)."""
    scontrol(cluster, "update", "NodeName=gs-node3", "State=DRAIN", f"Reason={OPERATOR}")
    yield "gs-node3"
    scontrol(cluster, "update", "NodeName=gs-node3", "State=RESUME")
    cluster.wait_node_idle(30, "gs-node3")


def wait_idle(cluster, name: str, timeout_s: float = 120.0) -> None:
    try:
        wait_for(lambda: sinfo_state(cluster, name) == "idle", timeout_s, f"{name} idle")
    except AssertionError:
        queue = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T %N"], env=cluster.env(), capture_output=True,
                               text=True).stdout
        raise AssertionError(f"{name} not idle after {timeout_s:g} s: {node(cluster, name)['State']}; {queue}") from None


def wait_up(cluster, ex: SlurmExecutor, name: str) -> None:
    """Steps with no event until ``name`` is released: powered up, registered, undrained."""
    def released():
        return any(d["node"] == name and d["action"] == "released" for d in ex.shed_idle_nodes({})) or None
    wait_for(released, 60, f"{name} powered up and released")
    assert not flags(cluster, name) & {"DRAIN", "POWER_DOWN", "POWERING_DOWN", "POWERED_DOWN", "POWERING_UP"}


@pytest.mark.slow
def test_the_reconciler_sheds_idle_nodes_during_an_event_and_keeps_its_decisions(cluster, tmp_path, operator_drained):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    ex = SlurmExecutor(tmp_path / "executor", slurm_conf=cluster.conf, python=sys.executable, power_save=True,
                       partitions={"frankfurt": "site-b"})
    now = [T0]
    for name in ("gs-node1", "gs-node2"):
        wait_idle(cluster, name)
    n_calls = len(calls(cluster.suspend_calls))
    with Store(url) as store:
        rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", clock=lambda: now[0])
        assert "node_power" not in rec.tick()
        store.add_grid_event(GridEvent(id="dr-7", kind="limit", sites=["frankfurt"], start=T0 + timedelta(hours=1),
                                       end=T0 + timedelta(hours=2), notice_s=3600, limit_mw=0.1), source="test")
        assert "node_power" not in rec.tick()  # announced, not yet in force
        now[0] = T0 + timedelta(hours=1)
        summary = rec.tick()
        down = {d["node"]: d["action"] for d in summary["node_power"]}
        assert down == {"gs-node1": "power_down", "gs-node2": "power_down", "gs-node3": "skip"}
        assert store.current_plan().summary["node_power"] == summary["node_power"]  # recorded with the pass
        assert rec.status()["node_power"][0]["event"] == "dr-7"
        wait_for(lambda: len(calls(cluster.suspend_calls)) >= n_calls + 1 or None, 40, "SuspendProgram")
        assert set(" ".join(calls(cluster.suspend_calls)[n_calls:]).replace(",", " ").split()) <= {
            "gs-node1", "gs-node2", "gs-node[1-2]"}
        now[0] = T0 + timedelta(hours=2)

        def up():
            rec.tick()
            return all(sinfo_state(cluster, n) == "idle" and n not in ex.power.nodes for n in ("gs-node1", "gs-node2"))
        wait_for(lambda: up() or None, 90, "both nodes up after the event")
        actions = [(d["node"], d["action"]) for d in ex.power.decisions]
        assert ("gs-node1", "power_up") in actions and ("gs-node2", "power_up") in actions
        assert flags(cluster, "gs-node3") == {"IDLE", "DRAIN"}
        job, _ = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 1.0, "gang_max": 1,
                                           "command": shlex.join([sys.executable, "-c", "pass"])})
        wait_for(lambda: (rec.tick(), store.get_job(SYSTEM, job.id).status == "succeeded")[1] or None, 60,
                 "a job to run on the powered-up nodes")


@pytest.mark.slow
def test_an_event_powers_an_idle_node_down_never_a_busy_or_drained_one_and_its_end_powers_it_up(
        cluster, tmp_path, operator_drained):
    for name in ("gs-node1", "gs-node2"):
        wait_idle(cluster, name)
    ex = SlurmExecutor(tmp_path / "state", slurm_conf=cluster.conf, python=sys.executable, power_save=True)
    assert ex.shed_idle_nodes({}) == []  # no event, nothing powered down: no call at all
    done = tmp_path / "done"
    ex.start(JobLaunch("busy", [sys.executable, "-c", UNTIL, str(done)], placement=Placement(
        "site-a", "h100", gang=1), work_acc_h=1.0, attempt=1))
    busy = wait_for(lambda: ex.status("busy").state == "running" and next(iter(ex.queue().values())).nodes, 30,
                    "the job to run on a node")
    idle = ({"gs-node1", "gs-node2"} - {busy}).pop()

    n_suspend, n_resume = len(calls(cluster.suspend_calls)), len(calls(cluster.resume_calls))
    got = {d["node"]: d for d in ex.shed_idle_nodes({"site-a": "shed-1"})}
    assert got[idle]["action"] == "power_down" and got[idle]["event"] == "shed-1" and got[idle]["site"] == "site-a"
    assert got[busy]["action"] == "skip" and "running jobs" in got[busy]["reason"]
    assert got["gs-node3"]["action"] == "skip" and OPERATOR in got["gs-node3"]["reason"]
    wait_for(lambda: calls(cluster.suspend_calls)[n_suspend:] or None, 40, "SuspendProgram to be called")
    assert calls(cluster.suspend_calls)[n_suspend:] == [idle]  # SuspendProgram, with the idle node's name only
    # steps as the reconciler's passes make them (one drains the node again if Slurm's power-down cleared it late)
    wait_for(lambda: ex.shed_idle_nodes({"site-a": "shed-1"}) is not None and {"POWERED_DOWN", "DRAIN"} <= flags(
        cluster, idle), 60, f"{idle} powered down and drained")
    assert {"POWERED_DOWN", "DRAIN"} <= flags(cluster, idle) and sinfo_state(cluster, idle) == "drained~"
    assert node(cluster, idle)["Reason"].startswith(f"{REASON} shed-1")
    assert not flags(cluster, busy) & {"POWER_DOWN", "POWERING_DOWN", "POWERED_DOWN", "DRAIN"}
    assert ex.status("busy").state == "running"
    assert flags(cluster, "gs-node3") == {"IDLE", "DRAIN"} and node(cluster, "gs-node3")["Reason"].startswith(OPERATOR)
    assert ex.shed_idle_nodes({"site-a": "shed-1"}) == []  # the same event again: nothing new to do or say

    # a job asking for the powered-down node waits: Slurm does not power it up while the event lasts
    waiting = sbatch(cluster, tmp_path, idle)
    time.sleep(3)  # a scheduling pass or more (sched_interval=2)
    assert calls(cluster.resume_calls)[n_resume:] == [] and "POWERED_DOWN" in flags(cluster, idle)
    assert job_state(cluster, waiting) == "PENDING"

    ended = {d["node"]: d for d in ex.shed_idle_nodes({})}  # the event is over
    assert ended[idle]["action"] == "power_up" and set(ended) == {idle}
    wait_for(lambda: calls(cluster.resume_calls)[n_resume:] or None, 40, "ResumeProgram to be called")
    assert calls(cluster.resume_calls)[n_resume:] == [idle]
    wait_up(cluster, ex, idle)
    wait_for(lambda: job_state(cluster, waiting) == "COMPLETED", 60, f"the waiting job to run on {idle}")
    after = sbatch(cluster, tmp_path, idle)  # the node is usable again
    wait_for(lambda: job_state(cluster, after) == "COMPLETED", 60, f"a job on {idle} to run after the event")
    assert flags(cluster, "gs-node3") == {"IDLE", "DRAIN"} and node(cluster, "gs-node3")["Reason"].startswith(OPERATOR)
    assert calls(cluster.suspend_calls)[n_suspend:] == [idle] and ex.power.nodes == {}
    kept = [(d["node"], d["action"]) for d in ex.power.decisions if d["action"] != "skip"]
    assert kept[0] == (idle, "power_down") and (idle, "power_up") in kept and kept[-1] == (idle, "released")
    done.touch()  # the busy job ends
    wait_for(lambda: ex.status("busy").state == "succeeded", 30, "the busy job to end")


def test_without_power_saving_in_slurm_conf_it_says_so_once_and_touches_nothing(cluster, tmp_path, monkeypatch):
    ex = SlurmExecutor(tmp_path / "state", slurm_conf=cluster.conf, python=sys.executable, power_save=True)
    real = ex.power._config
    monkeypatch.setattr(ex.power, "_config", lambda: {**real(), "SuspendProgram": "(null)"})
    before = calls(cluster.suspend_calls)
    got = ex.shed_idle_nodes({"site-a": "shed-2"})
    assert [d["action"] for d in got] == ["skip"] and "no SuspendProgram" in got[0]["reason"]
    assert ex.shed_idle_nodes({"site-a": "shed-2"}) == []  # said once
    assert calls(cluster.suspend_calls) == before and not flags(cluster, "gs-node1") & {"DRAIN", "POWERED_DOWN"}
    off = SlurmExecutor(tmp_path / "off", slurm_conf=cluster.conf, python=sys.executable)  # power_save not asked
    assert off.shed_idle_nodes({"site-a": "shed-2"}) == [] and off.power is None


def test_sites_under_a_power_request_now():
    from gridshift.service.reconciler.nodes import shedding_sites

    fleet = Scenario.model_validate({**FLEET, "sites": [*FLEET["sites"], {**FLEET["sites"][0], "name": "berlin"}]})
    h = timedelta(hours=1)
    limit = GridEvent(id="b", kind="limit", sites=["frankfurt"], start=T0, end=T0 + h, limit_mw=0.1)
    zone = GridEvent(id="a", kind="cut", zone="DE-LU", start=T0 + h / 2, end=T0 + 2 * h, cut_frac=0.5,
                     baseline_mw=1.0)
    price = GridEvent(id="c", kind="price", sites=["berlin"], start=T0, end=T0 + h, price_usd_per_mwh=900.0)
    assert shedding_sites(fleet, [limit, zone, price], T0) == {"frankfurt": "b"}  # price events shed no nodes
    assert shedding_sites(fleet, [limit, zone, price], T0 + h / 2) == {"frankfurt": "a", "berlin": "a"}
    assert shedding_sites(fleet, [limit, zone], T0 + 2 * h) == {}  # the end is exclusive


def test_serve_refuses_slurm_power_save_for_another_executor(tmp_path):
    from typer.testing import CliRunner

    from gridshift.cli import app

    db = tmp_path / "state.db"
    res = CliRunner().invoke(app, ["serve", "--db", f"sqlite:///{db}", "--executor", "local", "--slurm-power-save"])
    assert res.exit_code == 2 and res.output.strip().endswith("--slurm-power-save applies to the slurm executor")
    assert len(res.output.strip().splitlines()) == 1 and not db.exists()
