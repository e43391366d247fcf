"""`gridshift sweep`: expanding a sweep file into cells (pure), running cells on a local Ray end to end,
resuming (only missing cells run again), failed cells recorded without stopping the sweep, and bad sweep
files giving one line and exit code 2."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from gridshift.cli import app
from gridshift.data.scenario import load_scenario
from gridshift.errors import ScenarioError
from gridshift.studies.sweep import expand, parse_sweep, results_table

HERE = Path(__file__).parents[1]
SMALL = HERE / "scenarios" / "small.yaml"
ROOT = HERE.parent
runner = CliRunner()


def _spec(**axes):
    return parse_sweep(yaml.safe_dump({"name": "t", "base": str(SMALL), "axes": axes}), "t.yaml")


def _base():
    return load_scenario(SMALL)


# ------------------------------------------------------------------------------------------ pure expansion
def test_cell_count_is_the_product_of_the_axes():
    cells = expand(_spec(zones=["DE-LU", "GB"], years=[2023, 2022, 2021], seeds=[1, 2], fleet_scale=[0.5, 1, 2],
                         policies=["asap", "threshold"]), _base())
    assert len(cells) == 2 * 3 * 2 * 3 * 2
    assert len({c.cell_id for c in cells}) == len(cells)


def test_without_axes_there_is_one_cell_per_base_policy():
    cells = expand(_spec(), _base())
    assert [c.axes["policy"] for c in cells] == ["asap", "threshold"]
    assert all(c.scenario is not None and len(c.scenario.policies) == 1 for c in cells)
    assert cells[0].scenario.model_dump(exclude={"policies"}) == _base().model_dump(exclude={"policies"})


def test_cell_ids_are_stable_and_independent_of_the_order_of_axis_values():
    a = expand(_spec(zones=["DE-LU", "GB"], seeds=[1, 2]), _base())
    b = expand(_spec(zones=["DE-LU", "GB"], seeds=[1, 2]), _base())
    c = expand(_spec(zones=["GB", "DE-LU"], seeds=[2, 1]), _base())
    assert [x.cell_id for x in a] == [x.cell_id for x in b]
    assert {x.cell_id for x in a} == {x.cell_id for x in c}
    assert [x.scenario_sha256 for x in a] == [x.scenario_sha256 for x in b]


def test_scenario_hash_changes_with_the_base_but_the_cell_id_does_not():
    base = _base()
    other = base.model_copy(update={"slot_duration_s": 1800})
    (a, *_), (b, *_) = expand(_spec(), base), expand(_spec(), other)
    assert a.cell_id == b.cell_id
    assert a.scenario_sha256 != b.scenario_sha256


def test_zone_on_every_site_reuses_base_zone_settings():
    cells = expand(_spec(zones=["GB", {"id": "SG", "carbon_g_per_kwh": 400}], policies=["asap"]), _base())
    gb, sg = (c.scenario for c in cells)
    assert [s.zone for s in gb.sites] == ["GB", "GB"]
    assert [(z.id, z.price_usd_per_mwh) for z in gb.zones] == [("GB", 110)]  # the base scenario's GB price
    assert [z.id for z in sg.zones] == ["SG"] and sg.zones[0].carbon_g_per_kwh == 400
    assert [c.axes["zone"] for c in cells] == ["GB", "SG"]


def test_zone_mapping_per_site_is_a_cartesian_product():
    cells = expand(_spec(zones={"frankfurt": ["DE-LU", "SG"], "london": ["GB", "KR"]}, policies=["asap"]), _base())
    assert [tuple(s.zone for s in c.scenario.sites) for c in cells] == [
        ("DE-LU", "GB"), ("DE-LU", "KR"), ("SG", "GB"), ("SG", "KR")]
    assert cells[1].axes["zone"] == "frankfurt=DE-LU,london=KR"
    one = expand(_spec(zones=[{"london": "DE-LU"}], policies=["asap"]), _base())[0].scenario
    assert [s.zone for s in one.sites] == ["DE-LU", "DE-LU"] and [z.id for z in one.zones] == ["DE-LU"]


def test_year_shifts_every_time_to_the_same_dates():
    base = _base().model_dump()
    base["sites"][0]["power_cap_mw"] = [{"start": "2023-06-05T00:00:00Z", "power_cap_mw": 0.2},
                                        {"start": "2023-06-08T12:00:00Z", "power_cap_mw": 0.1}]
    base["workloads"]["jobs"] = [{"job_id": "j", "kind": "fine-tuning", "arrival": "2023-06-06T03:00:00Z",
                                  "deadline": "2023-06-09T00:00:00Z", "work_acc_h": 10, "gang_min": 1,
                                  "gang_max": 1}]
    from gridshift.model.scenario import Scenario

    (cell,) = expand(_spec(years=[2021], policies=["asap"]), Scenario.model_validate(base))
    sc = cell.scenario
    assert (sc.time_range.start.isoformat(), sc.time_range.end.isoformat()) == (
        "2021-06-05T00:00:00+00:00", "2021-06-12T00:00:00+00:00")
    assert [s.start.isoformat() for s in sc.sites[0].power_cap_mw] == [
        "2021-06-05T00:00:00+00:00", "2021-06-08T12:00:00+00:00"]
    j = sc.workloads.jobs[0]
    assert (j.arrival.isoformat(), j.deadline.isoformat()) == ("2021-06-06T03:00:00+00:00", "2021-06-09T00:00:00+00:00")
    assert cell.axes["year"] == 2021


def test_29_february_in_a_common_year_is_a_failed_cell_not_an_error():
    from gridshift.model.scenario import Scenario

    doc = _base().model_dump()
    doc["time_range"] = {"start": "2024-02-29T00:00:00Z", "end": "2024-03-02T00:00:00Z"}
    base = Scenario.model_validate(doc)
    cells = expand(_spec(years=[2024, 2023], policies=["asap"]), base)
    assert cells[0].scenario is not None and cells[0].error is None
    assert cells[1].scenario is None and "2024-02-29 has no counterpart in 2023" in cells[1].error


def test_fleet_scale_multiplies_pools_and_power_caps():
    cells = expand(_spec(fleet_scale=[0.5, 1.5], policies=["asap"]), _base())
    half, more = (c.scenario for c in cells)
    assert [p.count for s in half.sites for p in s.pools] == [48, 64]
    assert [p.count for s in more.sites for p in s.pools] == [144, 192]
    assert [s.power_cap_mw for s in half.sites] == pytest.approx([0.1, 0.1])
    assert [s.power_cap_mw for s in more.sites] == pytest.approx([0.3, 0.3])


def test_seed_and_policy_specs_are_applied():
    cells = expand(_spec(seeds=[11], policies=["asap", {"name": "threshold", "label": "thr-q3",
                                                         "params": {}}]), _base())
    assert [c.scenario.seed for c in cells] == [11, 11]
    assert [c.scenario.policies[0].key for c in cells] == ["asap", "thr-q3"]
    assert [c.axes["policy_name"] for c in cells] == ["asap", "threshold"]


@pytest.mark.parametrize("axes, field, text", [
    ({"years": [2023, 2023]}, "axes", "same value twice"),
    ({"fleet_scale": [0]}, "axes.fleet_scale", "> 0"),
    ({"zone": ["GB"]}, "axes.zone", "Extra inputs"),
    ({"seeds": []}, "axes", "empty"),
])
def test_bad_axes_name_the_field(axes, field, text):
    with pytest.raises(ScenarioError) as ei:
        _spec(**axes)
    assert ei.value.field == field and text in ei.value.message and ei.value.file == "t.yaml"


def test_unknown_site_and_policy_name_the_field():
    with pytest.raises(ScenarioError, match="no site 'paris'") as ei:
        expand(_spec(zones=[{"paris": "GB"}]), _base(), "t.yaml")
    assert ei.value.field == "axes.zones[0]"
    with pytest.raises(ScenarioError, match="unknown policy 'fastest'") as ei:
        expand(_spec(policies=["asap", "fastest"]), _base(), "t.yaml")
    assert ei.value.field == "axes.policies[1].name"


def test_table_computes_saving_vs_asap_within_a_variant():
    cells = expand(_spec(zones=["DE-LU", "GB"], policies=["asap", "threshold"]), _base())
    vals = {("DE-LU", "asap"): 10.0, ("DE-LU", "threshold"): 8.0, ("GB", "asap"): 4.0, ("GB", "threshold"): 5.0}
    results = {c.cell_id: {"status": "ok", "metrics": {"objective_value": vals[c.axes["zone"], c.axes["policy"]],
                                                       "plan_warnings": ["x"]},
                           "finished_utc": "2026-01-01T00:00:00+00:00"} for c in cells}
    df = results_table(cells, results).set_index(["zone", "policy"])
    assert df.loc[("DE-LU", "threshold"), "saving_vs_asap_frac"] == pytest.approx(0.2)
    assert df.loc[("GB", "threshold"), "saving_vs_asap_frac"] == pytest.approx(-0.25)
    assert df.loc[("GB", "asap"), "saving_vs_asap_frac"] == 0
    assert "plan_warnings" not in df.columns  # scalars only


# ------------------------------------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    import logging

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


def _tiny_base(tmp_path: Path) -> Path:
    """Two sites, two days, 20 generated jobs, no services: a cell runs in well under a second."""
    doc = yaml.safe_load(SMALL.read_text())
    doc["time_range"] = {"start": "2023-06-05T00:00:00Z", "end": "2023-06-07T00:00:00Z"}
    doc["workloads"] = {"generate": {"count": 20, "max_length_h": 12}}
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def _sweep_file(tmp_path: Path, **axes) -> Path:
    base = _tiny_base(tmp_path)
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump({"name": "tiny", "base": base.name, "axes": axes}))
    return p


def _results(out: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "result.json").read_text()) for d in sorted((out / "cells").iterdir())
            if (d / "result.json").exists()}


@pytest.mark.slow
def test_two_cell_sweep_end_to_end(local_ray, tmp_path):
    sweep = _sweep_file(tmp_path, policies=["asap", "threshold"])
    out = tmp_path / "out"
    res = runner.invoke(app, ["sweep", str(sweep), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 cells: 2 ran, 0 already done, 0 failed" in res.stdout
    cells = _results(out)
    assert len(cells) == 2 and all(r["status"] == "ok" for r in cells.values())
    for cid, r in cells.items():
        assert r["cell_id"] == cid and r["metrics"]["carbon_t"] > 0 and r["wall_s"] > 0
        assert (out / "cells" / cid / "scenario.json").is_file()
    df = pd.read_parquet(out / "results.parquet")
    assert sorted(df["policy"]) == ["asap", "threshold"]
    assert {"cell_id", "zone", "year", "seed", "fleet_scale", "policy", "status", "carbon_t", "cost_usd",
            "deadline_miss_frac", "objective_value", "saving_vs_asap_frac"} <= set(df.columns)
    assert df.set_index("policy").loc["asap", "saving_vs_asap_frac"] == 0
    assert isinstance(df["finished_utc"].dtype, pd.DatetimeTZDtype) and str(df["finished_utc"].dt.tz) == "UTC"
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "plotly" in page and 'src="http' not in page
    assert not (out / "failures.csv").exists()


@pytest.mark.slow
def test_resume_runs_only_missing_cells(local_ray, tmp_path):
    sweep = _sweep_file(tmp_path, policies=["asap", "threshold"], seeds=[1, 2])
    out = tmp_path / "out"
    assert runner.invoke(app, ["sweep", str(sweep), "--out", str(out), "-q"]).exit_code == 0
    before = _results(out)
    assert len(before) == 4
    gone = sorted(before)[1]
    shutil.rmtree(out / "cells" / gone)
    res = runner.invoke(app, ["sweep", str(sweep), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 cells: 1 ran, 3 already done, 0 failed" in res.stdout
    after = _results(out)
    assert set(after) == set(before)
    for cid in before:  # the others were not run again: same run record
        if cid != gone:
            assert after[cid]["finished_utc"] == before[cid]["finished_utc"]
    assert after[gone]["finished_utc"] > before[gone]["finished_utc"]
    assert len(pd.read_parquet(out / "results.parquet")) == 4
    again = runner.invoke(app, ["sweep", str(sweep), "--out", str(out)])
    assert "4 cells: 0 ran, 4 already done" in again.stdout


@pytest.mark.slow
def test_failed_cell_is_recorded_and_the_others_run(local_ray, tmp_path):
    sweep = _sweep_file(tmp_path, years=[2020, 2023], policies=["asap"])  # the data covers 2021–2023
    out = tmp_path / "out"
    res = runner.invoke(app, ["sweep", str(sweep), "--out", str(out)])
    assert res.exit_code == 1, res.output
    cells = _results(out)
    by_year = {r["axes"]["year"]: r for r in cells.values()}
    assert by_year[2023]["status"] == "ok"
    assert by_year[2020]["status"] == "failed"
    assert "time_range is outside the carbon data" in by_year[2020]["error"]
    assert "\n" not in by_year[2020]["error"]
    fails = pd.read_csv(out / "failures.csv")
    assert list(fails["year"]) == [2020] and "outside the carbon data" in fails["error"][0]
    df = pd.read_parquet(out / "results.parquet").set_index("year")
    assert df.loc[2023, "status"] == "ok" and df.loc[2020, "status"] == "failed"
    # failed cells are retried by default, kept with --no-retry-failed
    kept = runner.invoke(app, ["sweep", str(sweep), "--out", str(out), "--no-retry-failed"])
    assert "0 ran, 2 already done, 1 failed" in kept.stdout
    retried = runner.invoke(app, ["sweep", str(sweep), "--out", str(out)])
    assert "1 ran, 1 already done, 1 failed" in retried.stdout


# --------------------------------------------------------------------------------------------- bad input
def _bad(tmp_path: Path, text: str, *extra: str) -> str:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    out = tmp_path / "out"
    res = runner.invoke(app, ["sweep", str(p), "--out", str(out), *extra])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert not out.exists()
    return lines[0]


def test_bad_sweep_file_gives_one_line_and_exit_2(tmp_path):
    shutil.copy(SMALL, tmp_path / "small.yaml")
    line = _bad(tmp_path, "name: x\nbase: small.yaml\naxes:\n  fleet_scale: [1, -2]\n")
    assert "bad.yaml" in line and "field 'axes.fleet_scale'" in line and "line 4" in line
    line = _bad(tmp_path, "name: x\nbase: small.yaml\naxes:\n  policies: [asap, nope]\n")
    assert "bad.yaml" in line and "axes.policies[1].name" in line and "unknown policy 'nope'" in line
    line = _bad(tmp_path, "name: x\nbase: missing.yaml\n")
    assert "bad.yaml" in line and "field 'base'" in line and "not found" in line
    line = _bad(tmp_path, "name: x\nbase: small.yaml\naxes: {years: [2023], colour: [red]}\n")
    assert "field 'axes.colour'" in line
    line = _bad(tmp_path, "base: small.yaml\n")
    assert "field 'name'" in line and "is required" in line


def test_output_directory_not_written_by_a_sweep_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    sweep = _sweep_file(tmp_path, policies=["asap"])
    res = runner.invoke(app, ["sweep", str(sweep), "--out", str(out)])
    assert res.exit_code == 2 and "refusing" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_example_sweep_is_valid():
    from gridshift.studies.sweep_run import load_sweep

    loaded = load_sweep(ROOT / "examples" / "sweeps" / "nightly-zones.yaml")
    assert len(loaded.cells) == 8 and all(c.scenario is not None for c in loaded.cells)
