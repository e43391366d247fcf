"""Grid data of every year (2021–2023): per-year registry entries, their checksums, and series joined
across New Year with no hour missing or repeated."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import gridshift.data as gd
from gridshift.cli.main import app
from gridshift.data import registry
from gridshift.data.series import YEAR, load_series
from gridshift.errors import DataError

YEARS = [2021, 2022, 2023]
GRID = [n for n in registry.load_registry() if n.startswith(("carbon/", "price/"))]


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def _hourly(idx: pd.DatetimeIndex) -> bool:
    """Every step is exactly one hour: no hour missing, none repeated."""
    return bool((idx[1:] - idx[:-1] == pd.Timedelta("1h")).all())


def _manifest() -> dict[str, dict[str, str]]:
    root = registry.resolve("carbon/GB").parents[2]  # <data dir>/grid/carbon/GB_2023_hourly.csv
    with open(root / "MANIFEST.tsv", encoding="utf-8") as f:
        return {r["file"]: r for r in csv.DictReader(f, delimiter="\t")}


def _raw(name: str, year: int, column: str) -> pd.Series:
    """A file's column as published, indexed by its own timestamps (read with pandas, not the loaders)."""
    df = pd.read_csv(registry.resolve(name, year=year))
    return pd.Series(df[column].to_numpy(float), index=pd.to_datetime(df["Datetime (UTC)"], utc=True))


def test_every_grid_dataset_has_a_registered_file_per_year_matching_the_manifest():
    assert len(GRID) == 31  # 16 carbon + 15 price names, as before
    manifest = _manifest()
    files = [ds for ds in registry.all_files() if ds.name in GRID]
    assert len(files) == 31 * 3
    for name in GRID:
        assert registry.dataset_years(name) == YEARS
        assert registry.get_dataset(name) == registry.get_dataset(name, 2023)  # the bare name stays 2023
        for y in YEARS:
            ds = registry.get_dataset(name, y)
            row = manifest[ds.relpath]
            assert ds.year == y and f"_{y}" in ds.relpath and f"/{y}/" in ds.upstream_path
            assert (ds.sha256, ds.bytes, ds.license, ds.attribution) == (
                row["sha256"], int(row["bytes"]), row["license"], row["attribution"])
            assert (ds.upstream_repo, ds.upstream_commit, ds.upstream_path) == (
                row["upstream_repo"], row["upstream_commit"], row["upstream_path"])
            assert ds.url == (f"https://raw.githubusercontent.com/{ds.upstream_repo}/{ds.upstream_commit}/"
                              f"{ds.upstream_path}")
            assert registry.resolve(name, year=y, download=False).name == ds.relpath.rsplit("/", 1)[1]
            assert registry.dataset_for_path(ds.relpath) == ds
    assert registry.dataset_years("load/CAL") == []


def test_every_year_file_verifies_and_verify_checks_them_all():
    for name in GRID:
        ok, detail = registry.verify(name)
        assert ok and "\n" not in detail and all(str(y) in detail for y in YEARS), detail
        ok, detail = registry.verify(name, 2021)
        assert ok and name in detail and "2021" in detail


def test_a_corrupt_year_file_fails_verify(tmp_path, monkeypatch):
    for y in YEARS:
        ds = registry.get_dataset("carbon/GB", y)
        dst = tmp_path / ds.relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(registry.resolve("carbon/GB", year=y), dst)
    bad = tmp_path / registry.get_dataset("carbon/GB", 2021).relpath
    bad.write_bytes(bad.read_bytes().replace(b"2021-06-01 00:00:00", b"2021-06-01 00:00:01", 1))
    monkeypatch.setenv(registry.ENV_DATA_DIR, str(tmp_path))
    ok, detail = registry.verify("carbon/GB")
    assert not ok and "2021" in detail and "mismatch" in detail and "\n" not in detail
    assert registry.verify("carbon/GB", 2023)[0]
    res = CliRunner().invoke(app, ["data", "verify", "carbon/GB"])
    assert res.exit_code == 1 and "BAD" in res.stdout
    assert CliRunner().invoke(app, ["data", "verify", "carbon/GB", "--year", "2022"]).exit_code == 0


def test_unknown_year_is_one_line():
    with pytest.raises(DataError) as err:
        registry.resolve("carbon/GB", year=2020)
    assert "2020" in one_line(err) and "2021, 2022, 2023" in one_line(err)
    with pytest.raises(DataError) as err:
        gd.load_carbon("GB", years=[2020, 2021])
    assert "2020" in one_line(err) and "2021–2023" in one_line(err)
    with pytest.raises(DataError) as err:
        gd.load_price("DE-LU", years=[2021, 2023])
    assert "consecutive" in one_line(err)
    with pytest.raises(DataError) as err:
        gd.load_carbon("GB", start="2024-01-01T00:00:00Z")
    assert "2024" in one_line(err)


@pytest.mark.parametrize("zone", ["DE-LU", "US-CAL-CISO", "AU-NSW"])
def test_carbon_across_new_year_is_the_two_files_joined(zone):
    df = gd.load_carbon(zone, years=[2022, 2023])
    idx = df.index
    assert idx[0] == pd.Timestamp("2022-01-01", tz="UTC") and idx[-1] == pd.Timestamp("2023-12-31 23:00", tz="UTC")
    assert idx.is_unique and _hourly(idx)  # hourly: no hour missing or repeated
    lca = "Carbon Intensity gCO₂eq/kWh (LCA)"
    raw = pd.concat([_raw(f"carbon/{zone}", 2022, lca), _raw(f"carbon/{zone}", 2023, lca)])
    assert (raw.index == idx).all() and np.array_equal(df["carbon_g_per_kwh"].to_numpy(), raw.to_numpy())
    # the bare call is still 2023 alone, the same hours as the last year of the joined series
    alone = gd.load_carbon(zone)
    assert alone.index[0].year == alone.index[-1].year == 2023
    assert df.loc["2023"].equals(alone)


def test_every_zone_joins_three_years_hourly():
    for zone in gd.available_zones():
        idx = gd.load_carbon(zone, years=YEARS).index
        assert len(idx) == 3 * 8760 and idx.is_unique and _hourly(idx), zone
    for zone in gd.available_price_zones():
        idx = gd.load_price(zone, years=YEARS).index
        assert len(idx) == 3 * 8760 and idx.is_unique and _hourly(idx), zone


def test_price_across_new_year_and_the_half_hour_offset_zone():
    col = "Price (USD/MWh)"
    df = gd.load_price("US-NY-NYIS", start="2022-12-31T12:00:00Z", end="2023-01-01T12:00:00Z")
    raw = pd.concat([_raw("price/US-NY-NYIS", 2022, col), _raw("price/US-NY-NYIS", 2023, col)])
    assert len(df) == 25 and np.array_equal(df["price_usd_per_mwh"].to_numpy(), raw.loc[df.index].to_numpy())
    # IN-WE intervals start at :30 UTC: the first hour of 2023 is half the last 2022 interval, half the first 2023
    joined = gd.load_price("IN-WE", years=[2022, 2023])["price_usd_per_mwh"]
    last22, first23 = _raw("price/IN-WE", 2022, col).iloc[-1], _raw("price/IN-WE", 2023, col).iloc[0]
    assert joined[pd.Timestamp("2023-01-01", tz="UTC")] == pytest.approx((last22 + first23) / 2)
    assert joined.index.is_unique and len(joined) == 2 * 8760


def _two_years(tmp_path, monkeypatch, edit_2022=None, edit_2023=None):
    for y, edit in ((2022, edit_2022), (2023, edit_2023)):
        ds = registry.get_dataset("carbon/GB", y)
        lines = registry.resolve("carbon/GB", year=y).read_text(encoding="utf-8").splitlines(keepends=True)
        dst = tmp_path / ds.relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("".join(edit(lines) if edit else lines), encoding="utf-8")
    monkeypatch.setenv(registry.ENV_DATA_DIR, str(tmp_path))


def test_a_missing_hour_at_new_year_is_an_error_naming_the_files(tmp_path, monkeypatch):
    _two_years(tmp_path, monkeypatch, edit_2022=lambda lines: lines[:-1])  # drop 2022-12-31 23:00
    with pytest.raises(DataError) as err:
        gd.load_carbon("GB", years=[2022, 2023])
    msg = one_line(err)
    assert "GB_2022_hourly.csv" in msg and "GB_2023_hourly.csv" in msg and "gap" in msg
    assert len(gd.load_carbon("GB", years=[2022, 2023], allow_gaps=True)) == 2 * 8760 - 1


def test_a_repeated_hour_at_new_year_is_an_error(tmp_path, monkeypatch):
    last_2022 = registry.resolve("carbon/GB", year=2022).read_text(encoding="utf-8").splitlines(keepends=True)[-1]
    _two_years(tmp_path, monkeypatch, edit_2023=lambda lines: [lines[0], last_2022, *lines[1:]])
    with pytest.raises(DataError) as err:
        gd.load_carbon("GB", years=[2022, 2023])
    assert "GB_2023_hourly.csv" in one_line(err) and "overlap" in one_line(err)


def test_series_roll_over_years():
    one = load_series("DE-LU", "carbon_intensity")
    assert one.index.equals(YEAR)  # default unchanged
    two = load_series("DE-LU", "carbon_intensity", years=[2022, 2023])
    assert len(two.values) == 2 * 8760 and two.index[0] == pd.Timestamp("2022-01-01", tz="UTC")
    assert two.index.is_unique and _hourly(two.index)
    lca = "Carbon Intensity gCO₂eq/kWh (LCA)"
    raw = np.concatenate([_raw("carbon/DE-LU", y, lca).to_numpy() for y in (2022, 2023)])
    assert np.array_equal(two.values, raw) and np.array_equal(two.values[8760:], one.values)
    price = load_series("KR", "price", years=range(2021, 2024))
    assert len(price.values) == 3 * 8760 and np.isfinite(price.values).all()
    with pytest.raises(DataError) as err:
        load_series("DE-LU", "price", years=[2020])
    assert "2020" in one_line(err)
    with pytest.raises(DataError):
        load_series("pai-100k", "request_rate", years=[2022])
