"""Corrupted copies of the real files: every problem is a one-line DataError naming file, row and column.

Rows are 1-based file line numbers with the CSV header as line 1 (JSONL: the line number).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import gridshift.data as gd
from gridshift.errors import DataError

TIME = "Datetime (UTC)"
LCA = "Carbon Intensity gCO₂eq/kWh (LCA)"
DIRECT = "Carbon Intensity gCO₂eq/kWh (direct)"


def corrupt(tmp_path: Path, name: str, edit: Callable[[list[str]], list[str]]) -> Path:
    """Copy dataset ``name`` into tmp_path after applying ``edit`` to its lines (with line endings)."""
    src = gd.resolve(name)
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    out = tmp_path / src.name
    out.write_text("".join(edit(lines)), encoding="utf-8")
    return out


def set_cell(lines: list[str], line_no: int, column: str, value: str) -> list[str]:
    """Set ``column`` on file line ``line_no`` (1-based, header = 1) of a simple CSV."""
    header = next(csv.reader([lines[0]]))
    cells = next(csv.reader([lines[line_no - 1]]))
    assert len(cells) == len(header)
    cells[header.index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    lines[line_no - 1] = buf.getvalue()
    return lines


def expect(exc: pytest.ExceptionInfo, path: Path, row: int | None, field: str | None, *words: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    assert path.name in text
    if row is not None:
        assert f"line {row}:" in text or f"line {row} " in text or text.endswith(f"line {row}"), text
        assert exc.value.row == row
    if field is not None:
        assert f"'{field}'" in text, text
    for w in words:
        assert w in text, text
    return text


def carbon_error(tmp_path, edit) -> tuple[pytest.ExceptionInfo, Path]:
    p = corrupt(tmp_path, "carbon/GB", edit)
    with pytest.raises(DataError) as err:
        gd.load_carbon("GB", path=p)
    return err, p


def test_duplicate_timestamp(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: ls[:5] + [ls[4]] + ls[5:])
    expect(err, p, 6, TIME, "duplicate", "first seen at line 5")


def test_gap(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: ls[:9] + ls[10:200] + ls[203:])
    expect(err, p, 10, TIME, "gap: 1 missing", "2 gap(s)", "4 slot(s) missing")


def test_gaps_allowed_on_request(tmp_path):
    p = corrupt(tmp_path, "carbon/GB", lambda ls: ls[:9] + ls[10:])
    df = gd.load_carbon("GB", path=p, allow_gaps=True)
    assert len(df) == 8759
    filled, report = gd.fill_gaps(df, max_gap_slots=1)
    assert len(filled) == 8760 and report.filled_times == [pd.Timestamp("2023-01-01 08:00", tz="UTC")]


def test_nan(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: set_cell(ls, 20, LCA, ""))
    expect(err, p, 20, LCA, "missing value")
    err, p = carbon_error(tmp_path, lambda ls: set_cell(ls, 21, DIRECT, "NaN"))
    expect(err, p, 21, DIRECT, "missing value")


def test_negative_carbon(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: set_cell(ls, 30, LCA, "-5"))
    expect(err, p, 30, LCA, "negative value -5")


def test_implausible_share(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: set_cell(ls, 31, "Renewable Percentage", "140"))
    expect(err, p, 31, "Renewable Percentage", "140", "0..100")


def test_non_numeric(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: set_cell(ls, 40, "Low Carbon Percentage", "abc"))
    expect(err, p, 40, "Low Carbon Percentage", "non-numeric value 'abc'")


def test_bad_boolean(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: set_cell(ls, 41, "Data Estimated", "maybe"))
    expect(err, p, 41, "Data Estimated", "true/false")


def test_wrong_header(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: [ls[0].replace("Renewable Percentage", "Renewable %")] + ls[1:])
    expect(err, p, 1, "Renewable Percentage", "missing column")


def test_truncated_file(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: ls[:-1] + [ls[-1][:30]])
    expect(err, p, 8761, DIRECT, "missing value", "truncated")
    err, p = carbon_error(tmp_path, lambda ls: ls[:-1] + [ls[-1][:12]])
    expect(err, p, 8761, TIME, "cannot parse timestamp")
    err, p = carbon_error(tmp_path, lambda ls: [])
    expect(err, p, 1, None, "empty")


def test_naive_mixed_with_offset(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: [ls[0]] + ls[1:49] + [ls[49].replace(":00:00,", ":00:00+00:00,", 1)]
                          + ls[50:])
    expect(err, p, 50, TIME, "has a UTC offset but earlier rows are naive")


def test_offsets_are_converted_to_utc(tmp_path):
    def to_cet(lines: list[str]) -> list[str]:
        out = [lines[0]]
        for line in lines[1:]:
            stamp, rest = line.split(",", 1)
            local = (pd.Timestamp(stamp, tz="UTC") + pd.Timedelta("1h")).strftime("%Y-%m-%d %H:%M:%S+01:00")
            out.append(f"{local},{rest}")
        return out

    p = corrupt(tmp_path, "carbon/GB", to_cet)
    assert "+01:00" in p.read_text().splitlines()[1]
    pd.testing.assert_frame_equal(gd.load_carbon("GB", path=p), gd.load_carbon("GB"))


def test_not_hour_start(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: [*ls[:59], ls[59].replace(":00:00,", ":30:00,", 1), *ls[60:]])
    expect(err, p, 60, TIME, "not at the start")


def test_out_of_order(tmp_path):
    err, p = carbon_error(tmp_path, lambda ls: [*ls[:69], ls[70], ls[69], *ls[71:]])
    expect(err, p, 71, TIME, "not in increasing order")


def test_price_out_of_range(tmp_path):
    p = corrupt(tmp_path, "price/DE-LU", lambda ls: set_cell(ls, 100, "Price (USD/MWh)", "25000"))
    with pytest.raises(DataError) as err:
        gd.load_price("DE-LU", path=p)
    expect(err, p, 100, "Price (USD/MWh)", "25000", "-2000..20000")


def test_negative_load(tmp_path):
    p = corrupt(tmp_path, "load/NE", lambda ls: set_cell(ls, 10, "cleaned demand (MW)", "-3"))
    with pytest.raises(DataError) as err:
        gd.load_grid_load("NE", path=p)
    expect(err, p, 10, "cleaned demand (MW)", "negative value")


def test_azure_tokens(tmp_path):
    p = corrupt(tmp_path, "azure-llm/code", lambda ls: set_cell(ls, 7, "ContextTokens", "12.5"))
    with pytest.raises(DataError) as err:
        gd.load_azure_llm("code", path=p)
    expect(err, p, 7, "ContextTokens", "whole number")


def test_mooncake(tmp_path):
    p = corrupt(tmp_path, "mooncake/synthetic", lambda ls: ls[:-1] + [ls[-1][:40]])
    with pytest.raises(DataError) as err:
        gd.load_mooncake("synthetic", path=p)
    expect(err, p, 3993, None, "invalid JSON")

    def short_ids(ls):
        rec = json.loads(ls[9])
        rec["hash_ids"] = rec["hash_ids"][:-1]
        return [*ls[:9], json.dumps(rec) + "\n", *ls[10:]]

    p = corrupt(tmp_path, "mooncake/synthetic", short_ids)
    with pytest.raises(DataError) as err:
        gd.load_mooncake("synthetic", path=p)
    expect(err, p, 10, "hash_ids", "block ids")


def test_philly(tmp_path):
    p = corrupt(tmp_path, "philly/node-sequence", lambda ls: set_cell(ls, 11, "active", "999"))
    with pytest.raises(DataError) as err:
        gd.load_philly_node_sequence(path=p)
    expect(err, p, 11, "active", "exceed total")
    p = corrupt(tmp_path, "philly/runtime", lambda ls: set_cell(ls, 12, "runtime", "-1.0"))
    with pytest.raises(DataError) as err:
        gd.load_philly_runtimes(path=p)
    expect(err, p, 12, "runtime", "negative value")


def test_gaia(tmp_path):
    p = corrupt(tmp_path, "gaia/azure-100k", lambda ls: set_cell(ls, 13, "length", "0"))
    with pytest.raises(DataError) as err:
        gd.load_gaia("azure-100k", path=p)
    expect(err, p, 13, "length", "positive")
    p = corrupt(tmp_path, "gaia/azure-100k", lambda ls: set_cell(ls, 14, "cpus", "0"))
    with pytest.raises(DataError) as err:
        gd.load_gaia("azure-100k", path=p)
    expect(err, p, 14, "cpus")


def test_latency_matrix(tmp_path):
    def bad_cell(ls):
        cells = ls[4].split(",")
        cells[3] = "x"
        return [*ls[:4], ",".join(cells), *ls[5:]]

    p = corrupt(tmp_path, "latency/gcp-matrix", bad_cell)
    with pytest.raises(DataError) as err:
        gd.load_latency_matrix(path=p)
    expect(err, p, 5, "JP-TK", "non-numeric")
    p = corrupt(tmp_path, "latency/gcp-matrix", lambda ls: ls[:-3])
    with pytest.raises(DataError) as err:
        gd.load_latency_matrix(path=p)
    expect(err, p, None, None, "truncated")


def test_gavel(tmp_path):
    p = corrupt(tmp_path, "gavel/throughputs", lambda ls: [x.replace("('ResNet-18 (batch size 16)', 1)\": {",
                                                                   "('ResNet-18 (batch size 16)', 'one')\": {", 1)
                                                         for x in ls])
    with pytest.raises(DataError) as err:
        gd.load_gavel_throughputs(path=p)
    expect(err, p, None, None, "'one'", "k80/")
    p = corrupt(tmp_path, "gavel/throughputs", lambda ls: ls[:100])
    with pytest.raises(DataError) as err:
        gd.load_gavel_colocated(path=p)
    expect(err, p, None, None, "invalid JSON")


def test_multiline_csv_rows_are_file_lines(tmp_path):
    src = gd.resolve("accelerators/epoch")
    records = list(csv.reader(io.StringIO(src.read_text(encoding="utf-8"), newline="")))
    header = records[0]
    target = next(i for i, r in enumerate(records) if r[0] == "NVIDIA H100 SXM5 80GB")
    records[target][header.index("TDP (W)")] = "-700"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(records)
    p = tmp_path / src.name
    p.write_text(buf.getvalue(), encoding="utf-8")
    line = next(i for i, t in enumerate(buf.getvalue().splitlines(), 1) if t.startswith("NVIDIA H100 SXM5 80GB,"))
    assert line > target + 1  # earlier records span several lines
    with pytest.raises(DataError) as err:
        gd.load_epoch_hardware(path=p)
    expect(err, p, line, "TDP (W)", "negative value")


def test_mlperf_power_limit(tmp_path):
    p = corrupt(tmp_path, "accelerators/mlperf-inference-powercap",
                lambda ls: [ls[0], ls[1].replace(",450,700,", ",lots,700,", 1), *ls[2:]])
    with pytest.raises(DataError) as err:
        gd.load_mlperf_inference_powercap(path=p)
    expect(err, p, 2, "gpu_power_limit_W", "lots")


def test_missing_explicit_path(tmp_path):
    with pytest.raises(DataError) as err:
        gd.load_carbon("GB", path=tmp_path / "nope.csv")
    expect(err, tmp_path / "nope.csv", None, None, "not found")
