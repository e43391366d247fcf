"""Jobs outside GridShift (the Slurm executor's ``background_load()``) are planned around: the accelerators they
hold are taken out of the pools, and a change in them makes the reconciler plan again."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from gridshift.model.scenario import Scenario
from gridshift.service.db import upgrade
from gridshift.service.executors.local import LocalExecutor
from gridshift.service.executors.slurm_status import Background
from gridshift.service.reconciler import Reconciler
from gridshift.service.reconciler.world import build_world
from gridshift.service.store import Principal, Store
from slurm_reconciler_proc import FLEET

SYSTEM = Principal.system()
T0 = datetime(2023, 6, 6, 9, tzinfo=UTC)  # inside the bundled 2023 grid data


class BusyCluster(LocalExecutor):
    """A local executor that reports outside load as the Slurm executor does."""

    busy: dict = {}

    def background_load(self) -> Background:
        return Background(busy=dict(self.busy))


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        yield s


def test_background_load_is_taken_out_of_the_pools():
    sc = Scenario.model_validate(FLEET)
    base, _, _ = build_world(sc, [], T0, 3600, 4)
    world, _, _ = build_world(sc, [], T0, 3600, 4, background={("frankfurt", "h100"): 10, ("elsewhere", "h100"): 3})
    assert int(base.fleet.pool_count.sum()) == 16
    assert world.fleet.pool_count.tolist() == [6]
    full, _, _ = build_world(sc, [], T0, 3600, 4, background={("frankfurt", "H-100"): 99})
    assert full.fleet.pool_count.tolist() == [0]  # never below zero
    assert np.array_equal(base.fleet.pool_count, [16])  # the fleet itself is untouched


def test_the_reconciler_waits_for_capacity_held_outside_gridshift(store, tmp_path):
    ex = BusyCluster(tmp_path / "executor", sim_wall_s_per_run_h=0.05, stop_grace_s=2.0, pause_grace_s=1.0)
    ex.busy = {("frankfurt", "h100"): 14}  # 2 of 16 H100 left: a gang of 4 does not fit
    rec = Reconciler(store, ex, Scenario.model_validate(FLEET), policy="asap", clock=lambda: T0)
    try:
        job, _ = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 8.0, "gang_min": 4, "gang_max": 4})
        assert rec.tick()["actions"] == {}
        assert store.get_job(SYSTEM, job.id).status in ("queued", "planned")
        ex.busy = {}  # the outside jobs ended
        summary = rec.tick()
        assert summary["actions"] == {"start": 1} and summary["plan_reason"] == "background load changed"
    finally:
        store.cancel_job(SYSTEM, job.id)
        rec.tick()
        ex.close()
