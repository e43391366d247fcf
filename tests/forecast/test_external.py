"""The external-forecast adapter: file and HTTP round trips, issue-time discipline, malformed files."""

import functools
import http.server
import threading

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridshift.cli import app
from gridshift.data.issued_forecasts import fetch_forecasts, read_forecasts
from gridshift.errors import DataError
from gridshift.forecast import make_forecaster
from gridshift.forecast.external import issue_forecasts
from gridshift.studies.forecast_backtest import write_forecasts

runner = CliRunner()
H = 25
INDEX = pd.date_range("2023-01-01", periods=24 * 50, freq="h", tz="UTC")


def series():
    rng = np.random.default_rng(5)
    t = np.arange(INDEX.size)
    return (250 + 60 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 4, t.size))[None]


def issued_table(y, every_h=1):
    """Forecasts of the blend issued at each origin (every ``every_h`` hours), in the adapter's format."""
    o = np.arange(24 * 36, INDEX.size - 1, every_h)
    fc = make_forecaster("blend").forecast_origins(y, o, H)
    return fc, issue_forecasts(fc, INDEX, zone="XX")


def test_file_round_trip_reproduces_the_model(tmp_path):
    y = series()
    fc, table = issued_table(y)
    path = tmp_path / "issued.csv"
    write_forecasts(table, path)
    back = read_forecasts(path)
    assert len(back) == len(table) and {"q0.1", "q0.5", "q0.9"} <= set(back.columns)
    ext = make_forecaster("external", table=read_forecasts(path), zones=["XX"], start="2023-01-01T00:00:00Z")
    got = ext.forecast_origins(y, fc.origins, H)
    inside = fc.origins[:, None] + np.arange(H) < y.shape[1]
    np.testing.assert_allclose(got.point[0][inside], fc.point[0][inside], rtol=1e-5)
    np.testing.assert_allclose(got.quantiles[0][inside], fc.quantiles[0][inside], rtol=1e-5, atol=1e-3)
    # and through predict(), as a planner would call it
    t = int(fc.origins[10])
    np.testing.assert_allclose(ext.predict(y[:, : t + 1], H, t_abs=t, slots_per_h=1), fc.point[:, 10], rtol=1e-5)


def test_uses_only_forecasts_issued_before_the_origin():
    y = series()
    rows = [  # two issues for the same target: 10:00 issue (value 1) and 12:00 issue (value 2); target 20:00
        {"issue_time": "2023-02-10T10:00:00Z", "target_time": "2023-02-10T20:00:00Z", "value": 1.0},
        {"issue_time": "2023-02-10T12:00:00+00:00", "target_time": "2023-02-10T20:00:00Z", "value": 2.0},
        {"issue_time": "2023-02-10T10:30:00Z", "target_time": "2023-02-10T21:00:00Z", "value": 7.0},
    ]
    ext = make_forecaster("external", table=pd.DataFrame(rows))
    t20 = int(np.searchsorted(INDEX, pd.Timestamp("2023-02-10T20:00Z")))
    at = lambda hour: ext.point_origins(y, np.array([t20 - 20 + hour]), 12, slots_per_h=1)[0, 0]
    assert at(10)[10] == 1.0  # at 10:00 only the 10:00 issue exists
    assert at(11)[9] == 1.0
    assert at(12)[8] == 2.0  # from 12:00 the newer issue wins
    assert at(10)[11] == y[0, t20 - 10]  # issued 10:30, not yet available at 10:00: persistence
    assert at(11)[10] == 7.0
    assert at(10)[0] == y[0, t20 - 10]  # the current slot is the observation


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_http_endpoint_round_trip(tmp_path):
    y = series()
    fc, table = issued_table(y, every_h=24)
    write_forecasts(table, tmp_path / "day_ahead.csv")
    (tmp_path / "day_ahead.json").write_text(table.assign(
        issue_time=table.issue_time.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        target_time=table.target_time.dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_json(orient="records"))
    handler = functools.partial(Quiet, directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        via_csv = make_forecaster("external", table=fetch_forecasts(f"{base}/day_ahead.csv"), zones=["XX"])
        via_json = make_forecaster("external", table=fetch_forecasts(f"{base}/day_ahead.json"), zones=["XX"])
        with pytest.raises(DataError, match="cannot fetch"):
            fetch_forecasts(f"{base}/missing.csv")
    finally:
        srv.shutdown()
        th.join()
    o = fc.origins
    a = via_csv.forecast_origins(y, o, H)
    b = via_json.forecast_origins(y, o, H)
    inside = o[:, None] + np.arange(H) < y.shape[1]
    np.testing.assert_allclose(a.point[0][inside], fc.point[0][inside], rtol=1e-5)
    np.testing.assert_allclose(b.point, a.point, rtol=1e-6)
    # between daily issues, the forecast issued at 00:00 is used: at 05:00 for 06:00 it is the 00:00 issue's lead 6
    a5 = via_csv.point_origins(y, o[1:2] + 5, H, slots_per_h=1)
    assert a5[0, 0, 1] == pytest.approx(fc.point[0, 1, 6], rel=1e-5)


@pytest.mark.parametrize("text, row, field", [
    ("issue_time,target_time\n2023-01-01T00:00Z,2023-01-01T01:00Z\n", 1, None),
    ("issue_time,target_time,value\n2023-01-01T00:00Z,2023-01-01T01:00Z,5\nyesterday,2023-01-01T02:00Z,5\n", 3,
     "issue_time"),
    ("issue_time,target_time,value\n2023-01-01T00:00Z,2023-01-01T01:00Z,abc\n", 2, "value"),
    ("issue_time,target_time,value,q0.1,q0.9\n2023-01-01T00:00Z,2023-01-01T01:00Z,5,6,4\n", 2, "q0.9"),
])
def test_malformed_files_name_file_row_field(tmp_path, text, row, field):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        read_forecasts(p)
    assert e.value.file == str(p) and e.value.row == row and e.value.field == field


def test_target_off_the_slot_grid_is_rejected():
    rows = [{"issue_time": "2023-01-01T00:00Z", "target_time": "2023-01-01T01:30Z", "value": 1.0}]
    with pytest.raises(DataError, match="slot boundary"):
        make_forecaster("external", table=pd.DataFrame(rows))


@pytest.mark.slow
def test_cli_backtest_with_external_file(tmp_path):
    from gridshift.data.series import load_series

    s = load_series("SG", "carbon_intensity")
    o = np.arange(24 * 300, s.values.size - 1, 24)
    fc = make_forecaster("seasonal-naive").forecast_origins(s.values[None], o, 25)
    write_forecasts(issue_forecasts(fc, s.index, zone="SG"), tmp_path / "sg.csv")
    r = runner.invoke(app, ["forecast", "backtest", "--zone", "SG", "--horizon", "24h", "--model", "external",
                            "--external", str(tmp_path / "sg.csv"), "--stride", "24h", "--warmup", "300d",
                            "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    s2 = pd.read_csv(tmp_path / "out" / "summary.csv")
    ext = s2[s2.model == "external"].set_index("lead_h")
    sn = s2[s2.model == "seasonal-naive"].set_index("lead_h")
    np.testing.assert_allclose(ext.mae, sn.mae, rtol=1e-4)  # the stored seasonal-naive forecasts, replayed
    bad = tmp_path / "bad.csv"
    bad.write_text("issue_time,target_time,value\n2023-01-01T00:00Z,2023-01-01T01:00Z,oops\n")
    r = runner.invoke(app, ["forecast", "backtest", "--zone", "SG", "--model", "external", "--external", str(bad),
                            "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "bad.csv: line 2: field 'value'" in r.output
