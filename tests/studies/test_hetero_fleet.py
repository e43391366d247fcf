"""The mixed modern fleet example: fairness and grid-awareness in one LP (power cap, carbon weight)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gridshift.studies.hetero_fleet import TENANTS, FleetSetup, fleet_study


@pytest.fixture(scope="module")
def fleet():
    df, setup, table = fleet_study(FleetSetup(n_jobs=60, window=(10, 50), jobs_per_h=6.0))
    return df.set_index("variant"), setup, table


def test_only_the_grid_aware_variant_stays_under_the_afternoon_cap(fleet):
    df, _, _ = fleet
    assert df.loc["las-aware-grid", "rounds_above_cap"] == 0
    # the same stream without the cap in the LP would have drawn above it
    assert df.loc["las-aware", "rounds_above_cap"] > 0


def test_every_variant_runs_and_gang_choice_stays_in_range(fleet):
    df, _, _ = fleet
    assert list(df.index) == ["fifo", "las-agnostic", "las-aware", "las-aware-gang-choice", "las-aware-grid"]
    assert bool(df.loc["las-aware-gang-choice", "gang_choice"]) and not df.loc["las-aware", "gang_choice"]
    # the fairness policies all beat strict FIFO on the same stream
    for v in ("las-agnostic", "las-aware", "las-aware-gang-choice", "las-aware-grid"):
        assert df.loc[v, "avg_jct_h"] < df.loc["fifo", "avg_jct_h"], v


def test_energy_by_tenant_adds_up(fleet):
    df, _, _ = fleet
    for v, r in df.iterrows():
        total = sum(r[f"energy_mwh_{t}"] for t in TENANTS)
        assert np.isclose(total, r["energy_mwh"], rtol=1e-9), v
        assert r["jobs"] == 40


def test_fleet_throughputs_are_heterogeneous(fleet):
    _, _, table = fleet
    # a 70B model's decode does not fit on one 80 GB card; Inferentia2 does not train
    assert table.get("llama3.1-70b-batch-inference", "H100", 1) == 0
    assert table.get("llama3-8b-pretrain", "Inferentia2", 8) == 0
    assert table.get("llama3-8b-pretrain", "H100", 8) > table.get("llama3-8b-pretrain", "A100", 8) > 0


def test_cli_bad_option_exit_2():
    r = subprocess.run([sys.executable, "-m", "gridshift.cli", "hetero", "fleet", "--cap-frac", "1.5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cap-frac" in r.stderr and len(r.stderr.strip().splitlines()) == 1
