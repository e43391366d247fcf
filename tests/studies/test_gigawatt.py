"""The gigawatt fleet's construction at a small scale: counts, types, zones, utilisation, caps, services,
events, and that ``asap`` runs on it."""

from __future__ import annotations

import numpy as np
import pytest

from gridshift.catalog.accelerators import load_catalog
from gridshift.model.scenario import PolicySpec
from gridshift.sim.runner import run_policies
from gridshift.studies.gigawatt import (
    CAP_FRAC,
    JOBS,
    SITES,
    TYPE_SHARE,
    GigawattSpec,
    build_gigawatt,
    first_part,
    fleet_counts,
)

SCALE = 0.003


@pytest.fixture(scope="module")
def built():
    return build_gigawatt(GigawattSpec(scale=SCALE))


def test_fleet_power_and_types_follow_the_catalog():
    cat = load_catalog()
    for scale in (0.001, 1.0):
        counts = fleet_counts(GigawattSpec(scale=scale))
        full_w = sum(c * (cat[k].board_power_w + cat[k].host_power_w) * SITES[i][2]
                     for i, pools in enumerate(counts) for k, c in pools.items())
        assert full_w / 1e6 == pytest.approx(1000.0 * scale, rel=0.01)  # 1 GW of facility power at scale 1
        total = sum(sum(p.values()) for p in counts)
        by_type = {k: sum(p.get(k, 0) for p in counts) for k in TYPE_SHARE}
        for k, share in TYPE_SHARE.items():
            assert by_type[k] / total == pytest.approx(share, abs=0.01 if scale < 0.01 else 0.001)
    assert 650_000 <= sum(sum(p.values()) for p in fleet_counts(GigawattSpec())) <= 900_000


def test_construction_counts(built):
    asm, fig = built
    w = asm.world
    assert fig["sites"] == len(SITES) == 24 and fig["zones"] == 16
    assert len(w.fleet.type_names) >= 6 and set(w.fleet.type_names) == set(TYPE_SHARE)
    assert fig["jobs"] == len(w.jobs) == round(JOBS * SCALE)
    assert fig["services"] == 20 and fig["user_regions"] == 10
    assert fig["slots"] == w.n_slots == 8760 and w.slot_duration_s == 3600
    assert w.slot_starts[0].year == 2023 and w.slot_starts[-1].year == 2023
    assert fig["grid_events"] == 4 and w.events is not None and w.events.n == 4
    assert (w.jobs.arrival_s >= 0).all() and (w.jobs.arrival_s < 8760 * 3600).all()
    # every job fits a pool it can run on
    runs_on = w.jobs.speed[:, w.fleet.pool_type] > 0
    largest = np.where(runs_on, w.fleet.pool_count[None, :], 0).max(axis=1)
    assert (w.jobs.gang_min <= largest).all()


def test_utilisation_and_caps(built):
    asm, fig = built
    assert 0.6 <= fig["design_utilisation_frac"] <= 0.8
    f = asm.world.fleet
    full = np.bincount(f.pool_site, minlength=f.n_sites, weights=f.pool_count * (
        f.board_power_w[f.pool_type] + f.host_power_w[f.pool_type])) * f.pue / 1e6
    frac = f.power_cap_mw[:, 0] / full
    assert np.allclose(frac, [CAP_FRAC[i % len(CAP_FRAC)] for i in range(f.n_sites)], rtol=1e-3)
    assert (frac < 1.0).sum() >= 18  # most sites cannot run every accelerator flat out


def test_asap_runs_within_caps_on_the_first_weeks(built):
    asm, _ = built
    part = first_part(asm, 24 * 14 / 8760)
    assert part.world.n_slots == 24 * 14 and len(part.world.jobs) < len(asm.world.jobs)
    (run,) = run_policies(part, [PolicySpec(name="asap")], nominal_reference=False)
    ts = run.site_timeseries
    util = float(ts["busy_accelerators"].sum() / ts["total_accelerators"].sum())
    assert 0.05 < util <= 1.0
    assert run.metrics["cap_violation_mwh"] == pytest.approx(0.0, abs=1e-6)
    assert run.metrics["jobs_completed"] > 0


def test_site_groups_partition_the_fleet_with_its_jobs_and_demand():
    from gridshift.studies.gigawatt import gigawatt_scenario
    from gridshift.studies.gigawatt_split import site_groups

    spec = GigawattSpec(scale=0.01)
    groups = site_groups(spec, 3)
    assert sorted(i for g in groups for i in g) == list(range(len(SITES)))
    acc = [sum(p.values()) for p in fleet_counts(spec)]
    sizes = [sum(acc[i] for i in g) for g in groups]
    assert max(sizes) / min(sizes) < 1.15
    whole = gigawatt_scenario(spec)
    parts = [gigawatt_scenario(spec, group=g) for g in groups]
    assert sum(len(p.sites) for p in parts) == len(whole.sites)
    assert abs(sum(p.workloads.generate.count for p in parts) - whole.workloads.generate.count) <= len(groups)
    assert sum(len(p.events) for p in parts) == len(whole.events)
    peak = lambda sc: sum(v for s in sc.workloads.services for v in s.demand.peak_requests_per_s.values())  # noqa: E731
    assert sum(peak(p) for p in parts) == pytest.approx(peak(whole), rel=1e-6)
    for p in parts:  # a group's services are served only from its own sites
        names = {s.name for s in p.sites}
        assert all(set(s.allowed_sites) <= names for s in p.workloads.services)
    with pytest.raises(ValueError):
        site_groups(spec, 0)


def test_every_scale_thins_one_arrival_process():
    """Jobs at any scale are a random share of one 1,000,000-row window of the trace, so the arrival pattern
    over the year (here: jobs per month, as a share of the year's) is the same at a tenth of the jobs."""
    from gridshift.studies.gigawatt import gigawatt_scenario
    from gridshift.workloads.build import build_jobs
    from gridshift.world.build import accelerator_types

    cat = load_catalog()
    month = 8760 * 3600 / 12
    shares = []
    for scale in (0.003, 0.03):
        sc = gigawatt_scenario(GigawattSpec(scale=scale))
        assert sc.workloads.generate.window == JOBS
        jobs = build_jobs(sc, tuple(accelerator_types(sc, cat)), cat)
        assert len(jobs) == round(JOBS * scale)
        shares.append(np.bincount((jobs.arrival_s // month).astype(int), minlength=12)[:12] / len(jobs))
    # 3,000 jobs: binomial noise of a month's share is about 0.005
    assert np.abs(shares[0] - shares[1]).max() < 0.025
