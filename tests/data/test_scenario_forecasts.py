"""A scenario may name issued forecasts by file for the external forecaster: the reader loads the table
(relative to the scenario file) and the planner gets the table, never the path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gridshift.data.scenario import load_scenario
from gridshift.errors import DataError
from gridshift.plan.registry import make_policy

SMALL = Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml"


def _scenario(tmp_path: Path, forecast_file: str) -> Path:
    text = SMALL.read_text().replace(
        "policies: [asap, threshold]",
        "policies:\n  - name: mpc\n    params:\n      forecast: external\n"
        f"      forecast_params: {{path: {forecast_file}, zones: [DE-LU]}}\n")
    p = tmp_path / "scenario.yaml"
    p.write_text(text)
    return p


def test_external_forecast_file_is_read_relative_to_the_scenario(tmp_path):
    (tmp_path / "fc").mkdir()
    rows = pd.DataFrame({"issue_time": ["2023-06-05T00:00:00Z"] * 2,
                         "target_time": ["2023-06-05T01:00:00Z", "2023-06-05T02:00:00Z"],
                         "value": [300.0, 310.0]})
    rows.to_csv(tmp_path / "fc" / "day_ahead.csv", index=False)
    sc = load_scenario(_scenario(tmp_path, "fc/day_ahead.csv"))
    fp = sc.policies[0].params["forecast_params"]
    assert "path" not in fp and fp["source"].endswith("day_ahead.csv")
    assert list(fp["table"]["value"]) == [300.0, 310.0]
    pol = make_policy(sc.policies[0], 0, objective=sc.objective)
    assert pol.forecaster.table["value"].tolist() == [300.0, 310.0]


def test_missing_forecast_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(DataError) as e:
        load_scenario(_scenario(tmp_path, "nowhere.csv"))
    assert "nowhere.csv" in str(e.value) and "\n" not in str(e.value)
