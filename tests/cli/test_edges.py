"""The command line at the edges: numbers and times beyond their documented ranges, scenarios that could never
run, local times in an events CSV, oversized files, help text, state locations, SIGTERM while writing, the
explain output and the report's labels."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from gridshift.cli import app
from gridshift.data.events import read_events_csv
from gridshift.data.scenario import MAX_FILE_BYTES, load_scenario, parse_scenario
from gridshift.errors import ScenarioError

HERE = Path(__file__).parents[1]
REPO = HERE.parent
SMALL = HERE / "scenarios" / "small.yaml"
INLINE = REPO / "examples" / "inline-jobs-5min.yaml"
runner = CliRunner()


def _refused(tmp_path: Path, text: str) -> str:
    """Run ``simulate`` on ``text``: exit code 2, one line on stderr, nothing written; the line."""
    p = tmp_path / "scenario.yaml"
    p.write_text(text)
    out = tmp_path / "out"
    r = runner.invoke(app, ["simulate", str(p), "--out", str(out), "-q"])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert not out.exists() and not any(c.name.startswith(".out") for c in tmp_path.iterdir())
    return lines[0]


@pytest.mark.parametrize(("old", "new", "line", "field"), [
    ("power_cap_mw: 0.1\n", "power_cap_mw: 1e308\n", 28, "sites[1].power_cap_mw"),
    ("{accelerator: H100, count: 64}", "{accelerator: H100, count: " + "9" * 308 + "}", 30, "sites[1].pools[0].count"),
    ("work_acc_h: 96", "work_acc_h: 1e308", 49, "workloads.jobs[1].work_acc_h"),
    ("work_acc_h: 96", "work_acc_h: 1e-320", 49, "workloads.jobs[1].work_acc_h"),
    ("gang_max: 8\n      throughput", "gang_max: 2147483648\n      throughput", 51, "workloads.jobs[1].gang_max"),
    ("priority: 1", "priority: 9223372036854775808", 56, "workloads.jobs[2].priority"),
    ("deadline: 2023-09-06T12:00:00Z", "deadline: 9999-12-31T00:00:00Z", 37, "workloads.jobs[0].deadline"),
    ("{accelerator: H100, count: 64}", "{accelerator: H100, count: 0}", 30, "sites[1].pools[0].count"),
])
def test_values_beyond_their_range_are_one_line_naming_file_line_and_field(tmp_path, old, new, line, field):
    text = INLINE.read_text()
    assert old in text
    msg = _refused(tmp_path, text.replace(old, new, 1))
    assert msg.startswith(f"error: {tmp_path / 'scenario.yaml'}: line {line}: field '{field}': "), msg


def test_a_written_gang_larger_than_any_pool_is_an_error(tmp_path):
    doc = yaml.safe_load(INLINE.read_text())
    doc["workloads"]["jobs"][0]["gang_min"] = doc["workloads"]["jobs"][0]["gang_max"] = 65  # pools: 64, 32, 64
    msg = _refused(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    assert "field 'workloads.jobs[0].gang_min'" in msg and "largest has 64" in msg and "never run" in msg
    assert re.search(r": line \d+: ", msg)
    doc["workloads"]["jobs"][0]["gang_min"] = 64  # fits the largest pool: accepted
    assert parse_scenario(yaml.safe_dump(doc)).workloads.jobs[0].gang_min == 64


def test_generated_gangs_larger_than_any_pool_are_a_warning_in_the_notes():
    from gridshift.world.build import assemble

    doc = yaml.safe_load(SMALL.read_text())
    doc["workloads"] = {"generate": {"count": 60, "gang_sizes": [1, 4096], "gang_size_weights": [1, 1],
                                     "max_length_h": 4}}
    asm = assemble(parse_scenario(yaml.safe_dump(doc)))
    big = asm.world.jobs.gang_min > 128
    assert big.any()
    notes = [n for n in asm.notes if n.startswith("warning: ")]
    assert notes == [f"warning: {int(big.sum())} job(s) need a gang larger than any pool they can run on and will "
                     f"never run (largest such gang_min {int(asm.world.jobs.gang_min.max())}, largest pool 128)"]
    assert notes[0] in asm.summary()["notes"]
    doc["workloads"]["generate"]["gang_sizes"] = [1, 2]
    assert not [n for n in assemble(parse_scenario(yaml.safe_dump(doc))).notes if n.startswith("warning")]


# --------------------------------------------------------------------------------------------- events CSV

@pytest.mark.parametrize(("start", "tz", "words"), [
    ("2023-03-26T02:30:00", "Europe/Berlin", "does not exist in Europe/Berlin"),
    ("2023-10-29T02:30:00", "Europe/Berlin", "happens twice in Europe/Berlin"),
    ("2023-11-05T01:30:00", "America/Los_Angeles", "happens twice"),
    ("2023-10-29T01:30:00", "", "has no UTC offset"),
    ("2023-10-29T01:30:00", "Mars/Olympus", "unknown time zone"),
    ("not a time", "", "is not an ISO 8601 time"),
    ("0001-01-01T00:00:00Z", "", "must be from 1970-01-01"),
])
def test_local_times_in_an_events_csv_are_never_guessed(tmp_path, start, tz, words):
    p = tmp_path / "events.csv"
    p.write_text(f"id,kind,sites,start,end,tz,limit_mw\na,limit,cluster,{start},2023-12-01T00:00:00Z,{tz},0.1\n")
    with pytest.raises(ScenarioError) as e:
        read_events_csv(p)
    msg = str(e.value)
    assert words in msg and msg.startswith(f"{p}: line 2: field '") and "\n" not in msg


def test_events_csv_local_times_with_a_zone_and_offsets(tmp_path):
    p = tmp_path / "events.csv"
    p.write_text("id,kind,sites,start,end,tz,limit_mw\n"
                 "a,limit,cluster,2023-10-29T01:30:00,2023-10-29T04:00:00,Europe/Berlin,0.1\n"  # CEST, +02:00
                 "b,limit,cluster,2023-10-29T04:00:00+01:00,2023-10-29T05:00:00Z,,0.1\n"
                 "c,limit,cluster,2023-10-29T06:00:00,2023-10-29T07:00:00,UTC,0.1\n")
    a, b, c = read_events_csv(p)
    assert (a.start.isoformat(), a.end.isoformat()) == ("2023-10-28T23:30:00+00:00", "2023-10-29T03:00:00+00:00")
    assert b.start.isoformat() == "2023-10-29T03:00:00+00:00" and c.start.isoformat() == "2023-10-29T06:00:00+00:00"


# ------------------------------------------------------------------------------------------ big files

def test_a_scenario_over_the_size_limit_is_one_line(tmp_path):
    text = INLINE.read_text() + "#" * 80 + "\n"
    p = tmp_path / "big.yaml"
    p.write_text(text + ("# padding\n" * (MAX_FILE_BYTES // 10 + 1)))
    with pytest.raises(ScenarioError, match=r"big.yaml: the scenario file is 2.0 MB, over the limit of 2 MB"):
        load_scenario(p)
    msg = _refused(tmp_path, p.read_text())
    assert "over the limit of 2 MB" in msg


@pytest.mark.parametrize(("text", "words"), [
    ("a0: &a0 [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9)), "aliases expand"),
    ("name: " + "9" * 5000 + "\n", "a number has too many digits"),
    ("name: " + "[" * 5000 + "]" * 5000 + "\n", "malformed YAML"),
])
def test_hostile_yaml_is_one_line_and_quick(tmp_path, text, words):
    t0 = time.perf_counter()
    msg = _refused(tmp_path, text)
    assert words in msg and time.perf_counter() - t0 < 10


def test_progress_appears_only_for_slow_steps(monkeypatch):
    from gridshift.cli import common

    buf = io.StringIO()
    monkeypatch.setattr(common, "err", Console(file=buf, force_terminal=True, width=80))
    with common.progress_after("reading quick.yaml", delay_s=0.5):
        pass
    assert buf.getvalue() == ""
    with common.progress_after("reading slow.yaml", delay_s=0.05):
        time.sleep(0.5)
    assert "reading slow.yaml" in buf.getvalue()
    buf.truncate(0)
    with common.progress_after("reading slow.yaml", quiet=True, delay_s=0.0):
        time.sleep(0.2)
    assert buf.getvalue() == ""


# ------------------------------------------------------------------------------------------------ help

COMMANDS = [[], ["simulate"], ["demo"], ["explain"], ["schema"], ["catalog"], ["data", "list"], ["data", "verify"],
            ["data", "path"], ["capacity"], ["headroom"], ["sweep"], ["flex"], ["serve"], ["token", "create"],
            ["token", "list"], ["db", "upgrade"], ["forecast", "backtest"], ["ven"], ["signals", "fetch"], ["kueue-gate"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "gridshift")
def test_help_has_no_type_annotations_and_every_option_a_description(cmd):
    r = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "250"}, terminal_width=250)
    assert r.exit_code == 0, r.output
    assert not re.search(r"<(bool|str|int|float|path|list\[[^\]]*\])>", r.stdout), r.stdout
    for row in r.stdout.splitlines():
        m = re.match(r"^│\s+(?:\*\s+)?(--[a-z-]+)(.*)│$", row)
        if m:
            assert re.search(r"[A-Za-z]{3,}", re.sub(r"\b[A-Z]{3,}( RANGE)?\b|-[-a-z]+|-[a-z]\b", "", m.group(2))), \
                f"{m.group(1)} has no description: {row}"


# --------------------------------------------------------------------------------------- state locations

def test_service_state_defaults_to_one_git_ignored_directory(tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRIDSHIFT_STATE_DIR", raising=False)
    r = runner.invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gridshift"]
    assert (tmp_path / ".gridshift" / "gridshift.db").is_file()
    assert (tmp_path / ".gridshift").stat().st_mode & 0o777 == 0o711
    elsewhere = tmp_path / "state"
    monkeypatch.setenv("GRIDSHIFT_STATE_DIR", str(elsewhere))
    r = runner.invoke(app, ["token", "create", "--role", "operator"])
    assert r.exit_code == 2 and "gridshift db upgrade" in r.stderr  # a fresh state directory: not migrated
    assert runner.invoke(app, ["db", "upgrade", "--state-dir", str(elsewhere)]).exit_code == 0
    r = runner.invoke(app, ["token", "create", "--role", "operator"])
    assert r.exit_code == 0 and r.stdout.startswith("gs_")
    for path in (".gridshift/gridshift.db", "out/sweep-x/results.parquet"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path


WRITER = """
import sys, time
from gridshift.report.output import OutputDir
with OutputDir(sys.argv[1]) as tmp:
    (tmp / "metrics.json").write_text("{}")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_sigterm_while_writing_leaves_no_temporary_directory(tmp_path):
    final = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(final)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert [p.name[:9] for p in tmp_path.iterdir()] == [".run.tmp-"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_run_are_cleared_by_the_next(tmp_path):
    import os

    from gridshift.report.output import MARKER, OutputDir

    stale, fresh, foreign = tmp_path / ".run.tmp-dead", tmp_path / ".run.tmp-busy", tmp_path / ".run.tmp-mine"
    for d in (stale, fresh, foreign):
        d.mkdir()
    (stale / MARKER).write_text("x")
    (fresh / MARKER).write_text("x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    os.utime(foreign, (time.time() - 7200, time.time() - 7200))
    with OutputDir(tmp_path / "run") as tmp:
        (tmp / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run.tmp-busy", ".run.tmp-mine", "run"]


# -------------------------------------------------------------------------------------- explain, report

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    r = runner.invoke(app, ["simulate", str(SMALL), "--out", str(out), "-q", "-p", "asap", "-p", "threshold"])
    assert r.exit_code == 0, r.output
    return out


def test_explain_prints_real_figures_without_warnings(small_run):
    import pandas as pd

    from gridshift.report.explain import explain_job

    jobs = pd.read_parquet(small_run / "timeseries" / "threshold" / "jobs.parquet")
    ran = jobs[jobs["first_start"].notna()]["job_id"].tolist()
    assert len(ran) >= 10
    sites_used = 0
    for job in ran[:40]:
        for policy in ("asap", "threshold"):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                lines = explain_job(small_run, job, policy)
            text = "\n".join(lines)
            assert not re.search(r"\bnan\b", text) and "×0 " not in text and " for 0.0 h" not in text, text
            where = next((ln for ln in lines if ln.startswith("where: ")), None)
            if where:
                sites_used = max(sites_used, where.count(";") + 1)
    assert sites_used >= 1


def test_the_readme_explain_example_names_a_job_of_that_run():
    from gridshift.world.build import assemble

    readme = (REPO / "README.md").read_text()
    sim = re.search(r"gridshift simulate (\S+) --out out/ml", readme)
    job = re.search(r"gridshift explain out/ml --job (\S+)", readme)
    assert sim and job
    asm = assemble(load_scenario(REPO / sim.group(1)))
    assert job.group(1) in set(asm.world.jobs.job_id)


def test_report_labels_give_rates_their_units_and_mark_the_best_objective():
    from gridshift.report.html import _metric_label, _metrics_table
    from gridshift.report.run_report import summary_table

    assert _metric_label("batch_carbon_kg_per_acc_h")[1] == "kg CO₂ per accelerator-hour"
    assert _metric_label("x_energy_kg_per_acc_h")[:2] == ("x energy", "kg per accelerator-hour")
    assert _metric_label("site_energy_mwh")[:2] == ("site energy", "MWh")

    class Run:
        def __init__(self, policy, metrics):
            self.policy, self.metrics = policy, metrics

    runs = [Run("asap", {"objective_value": 10.0, "saving_vs_asap_frac": 0.0}),
            Run("mpc", {"objective_value": 8.0, "saving_vs_asap_frac": 0.2})]
    html = _metrics_table(runs)
    row = next(r for r in html.split("<tr>") if "objective_value" in r)
    assert '<td class="best">8</td>' in row and '<td class="best">10</td>' not in row
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system="standard", width=100).print(summary_table(runs))
    line = next(ln for ln in buf.getvalue().splitlines() if "objective value" in ln)
    assert "\x1b[1;32m" in line.split("10.0")[1] and "\x1b[1;32m" not in line.split("10.0")[0]


@pytest.mark.parametrize("argv, words", [
    (["demo", "--days", "abc"], "Invalid value for '--days'"),
    (["demo", "--no-such-option"], "No such option: --no-such-option"),
    (["simulate"], "Missing argument"),
    (["hetero", "fleet", "--seed", "x"], "Invalid value for '--seed'"),
    (["data", "list", "--bogus"], "No such option: --bogus"),
])
def test_click_own_errors_are_one_line_exit_2_not_a_usage_box(argv, words):
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.stderr
    assert "Usage:" not in r.output and "╭" not in r.output
