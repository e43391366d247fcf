"""Scenarios anywhere in the grid data's years (2021–2023): across New Year, at the first hour of the data,
and outside the data (one-line error naming the span the data covers)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gridshift.data import load_carbon, load_price
from gridshift.data.scenario import parse_scenario
from gridshift.errors import ScenarioError
from gridshift.world.build import LOOKBACK_H, assemble, lookback_slots

SMALL = Path(__file__).resolve().parents[2] / "tests" / "scenarios" / "small.yaml"


def _scenario(start: str, end: str):
    doc = yaml.safe_load(SMALL.read_text())
    doc["time_range"] = {"start": start, "end": end}
    doc["workloads"]["generate"]["count"] = 20
    return parse_scenario(yaml.safe_dump(doc))


def test_scenario_across_new_year_2022_2023_builds_on_both_years_data():
    asm = assemble(_scenario("2022-12-30T00:00:00Z", "2023-01-03T00:00:00Z"))
    sig = asm.signals
    assert sig.lookback_slots == LOOKBACK_H  # a full week of history, from 2022
    hours = pd.date_range(pd.Timestamp("2022-12-30", tz="UTC") - pd.Timedelta(hours=LOOKBACK_H),
                          pd.Timestamp("2023-01-02 23:00", tz="UTC"), freq="h")
    assert sig.carbon_g_per_kwh.shape == (2, len(hours))
    c22, c23 = load_carbon("DE-LU", years=2022), load_carbon("DE-LU")
    expect = pd.concat([c22, c23])["carbon_g_per_kwh"].reindex(hours).to_numpy()
    assert np.array_equal(sig.carbon_g_per_kwh[0], expect)
    p = pd.concat([load_price("DE-LU", years=2022), load_price("DE-LU")])["price_usd_per_mwh"]
    assert np.array_equal(sig.price_usd_per_mwh[0], p.reindex(hours).to_numpy())
    assert np.isfinite(sig.carbon_g_per_kwh).all() and asm.world.n_slots == 4 * 24


@pytest.mark.parametrize("start,end", [("2020-06-01T00:00:00Z", "2020-06-08T00:00:00Z"),
                                       ("2020-12-31T00:00:00Z", "2021-01-02T00:00:00Z"),
                                       ("2023-12-30T00:00:00Z", "2024-01-02T00:00:00Z")])
def test_range_outside_the_data_is_one_line_with_the_new_bounds(start, end):
    with pytest.raises(ScenarioError) as err:
        assemble(_scenario(start, end))
    msg = str(err.value)
    assert "\n" not in msg and "time_range is outside" in msg and "zones[0]" in msg
    assert "2021-01-01T00:00:00+00:00" in msg and "2023-12-31T23:00:00+00:00" in msg


def test_lookback_at_the_first_hour_of_the_data_is_empty_and_grows_with_the_start():
    # history before the data's first hour does not exist: none is attached, as at 2023-01-01 with 2023 alone
    first = _scenario("2021-01-01T00:00:00Z", "2021-01-03T00:00:00Z")
    assert lookback_slots(first) == 0
    asm = assemble(first)
    assert asm.signals.lookback_slots == 0
    assert asm.signals.carbon_g_per_kwh[0, 0] == load_carbon("DE-LU", years=2021)["carbon_g_per_kwh"].iloc[0]
    # two days in: the two days there are
    assert lookback_slots(_scenario("2021-01-03T00:00:00Z", "2021-01-04T00:00:00Z")) == 48
    # from 2023-01-01 the 2022 data now gives a full week
    assert lookback_slots(_scenario("2023-01-01T00:00:00Z", "2023-01-02T00:00:00Z")) == LOOKBACK_H
