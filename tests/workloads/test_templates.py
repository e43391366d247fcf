"""Jobs from templates: recurring (nightly) jobs with a shift window and workday jobs due the next feasible
workday morning — counts, local time with DST, windows, deadlines, determinism, and assembly from YAML."""

from __future__ import annotations

from datetime import UTC, datetime

import holidays
import numpy as np
import pandas as pd
import pytest

from gridshift.data.scenario import parse_scenario
from gridshift.errors import ScenarioError
from gridshift.model import JOB_KINDS, JobKind
from gridshift.model.scenario import RecurringJobs, WorkdayJobs
from gridshift.workloads.batch import KIND_DEFAULTS
from gridshift.workloads.templates import recurring_jobs, workday_jobs
from gridshift.world.build import assemble

TYPES = ("H100", "A100")
SPEED = np.array([[1.0, 0.32], [1.0, 0.32], [1.0, 0.6]])  # [kind, type]
T0 = datetime(2023, 1, 1, tzinfo=UTC)  # a Sunday
T1 = datetime(2024, 1, 1, tzinfo=UTC)


def _utc(table, col: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.Timestamp(T0) + pd.to_timedelta(getattr(table, col), unit="s"))


def _rec(start=T0, end=T1, **kw):
    spec = RecurringJobs(**{"name": "nightly", "tz": "Europe/Berlin", "start_local_h": 1.0, "run_h": 0.5,
                            "window_h": 4.0, **kw})
    return recurring_jobs(spec, start=start, end=end, type_names=TYPES, speed_by_kind=SPEED)


def _wd(seed=0, start=T0, end=datetime(2023, 4, 1, tzinfo=UTC), **kw):
    spec = WorkdayJobs(**{"name": "train", "tz": "Europe/Berlin", "jobs_per_workday": 6.0, **kw})
    return workday_jobs(spec, start=start, end=end, type_names=TYPES, speed_by_kind=SPEED,
                        rng=np.random.default_rng(seed))


# --- recurring -------------------------------------------------------------------------------------------

def test_recurring_one_job_per_local_day_with_date_ids():
    t = _rec(window_h=4.0)
    t.validate()
    # 2023-01-01 01:00 CET minus 4 h is before the start; every later day of 2023 fits
    assert len(t) == 364
    assert t.job_id[0] == "nightly-2023-01-02" and t.job_id[-1] == "nightly-2023-12-31"
    assert len(set(t.job_id)) == len(t)
    local = (_utc(t, "arrival_s") + pd.Timedelta(hours=4)).tz_convert("Europe/Berlin")
    assert (local.hour == 1).all() and (local.minute == 0).all()
    assert list(local.strftime("%Y-%m-%d")) == [i.removeprefix("nightly-") for i in t.job_id]


def test_recurring_dst_berlin():
    t = _rec(window_h=0.0)
    nominal = _utc(t, "arrival_s")
    by_id = dict(zip(t.job_id, nominal))
    # winter (CET, UTC+1): 01:00 local = 00:00 UTC the same day
    assert by_id["nightly-2023-01-15"] == pd.Timestamp("2023-01-15T00:00Z")
    assert by_id["nightly-2023-12-10"] == pd.Timestamp("2023-12-10T00:00Z")
    # summer (CEST, UTC+2): 01:00 local = 23:00 UTC the previous day
    assert by_id["nightly-2023-07-01"] == pd.Timestamp("2023-06-30T23:00Z")
    # around the switches (26 March, 29 October 2023): 01:00 is before both
    assert by_id["nightly-2023-03-26"] == pd.Timestamp("2023-03-26T00:00Z")
    assert by_id["nightly-2023-03-27"] == pd.Timestamp("2023-03-26T23:00Z")
    assert by_id["nightly-2023-10-29"] == pd.Timestamp("2023-10-28T23:00Z")
    assert by_id["nightly-2023-10-30"] == pd.Timestamp("2023-10-30T00:00Z")


def test_recurring_nonexistent_local_time_moves_forward():
    t = _rec(start_local_h=2.5, window_h=0.0)
    by_id = dict(zip(t.job_id, _utc(t, "arrival_s")))
    assert by_id["nightly-2023-03-26"] == pd.Timestamp("2023-03-26T01:00Z")  # 03:00 CEST
    assert by_id["nightly-2023-10-29"] == pd.Timestamp("2023-10-29T00:30Z")  # first 02:30 (CEST)


@pytest.mark.parametrize("window_h", [0.0, 2.0, 8.0])
def test_recurring_windows_and_job_shape(window_h):
    t = _rec(window_h=window_h, run_h=0.5, gang=4, interruptible=False, tz="America/Los_Angeles")
    span = t.deadline_s - t.arrival_s
    assert np.allclose(span, (0.5 + 2 * window_h) * 3600)
    assert (t.arrival_s >= 0).all() and (t.deadline_s < (T1 - T0).total_seconds()).all()
    assert np.allclose(t.work_acc_h, 2.0) and (t.gang_min == 4).all() and (t.gang_max == 4).all()
    assert not t.interruptible.any() and not t.migratable.any()
    k = JOB_KINDS.index(JobKind.BATCH_INFERENCE)
    assert (t.kind == k).all() and np.allclose(t.speed, SPEED[k])
    d = KIND_DEFAULTS[JobKind.BATCH_INFERENCE]
    assert (t.checkpoint_overhead_s == d["checkpoint_overhead_s"]).all()
    assert (t.restart_overhead_s == d["restart_overhead_s"]).all()
    local = (_utc(t, "arrival_s") + pd.Timedelta(hours=window_h)).tz_convert("America/Los_Angeles")
    assert (local.hour == 1).all()


def test_recurring_workdays_only_and_period_edges():
    t = _rec(workdays_only=True, start=datetime(2023, 3, 6, tzinfo=UTC),
             end=datetime(2023, 3, 20, tzinfo=UTC), window_h=2.0, interruptible=True)
    days = pd.DatetimeIndex([i.removeprefix("nightly-") for i in t.job_id])
    assert (days.day_of_week < 5).all()
    # Mon 6 March 01:00 CET - 2 h is before the start; Tue 7 ... Fri 17 March are inside
    assert len(t) == 9 and t.job_id[0] == "nightly-2023-03-07"
    assert t.interruptible.all() and t.migratable.all()


def test_recurring_empty_when_the_period_is_shorter_than_the_window():
    t = _rec(window_h=12.0, end=datetime(2023, 1, 1, 12, tzinfo=UTC))
    assert len(t) == 0
    t.validate()


# --- workday ---------------------------------------------------------------------------------------------

def test_workday_counts_per_workday():
    t = _wd(jobs_per_workday=20.0, end=datetime(2023, 7, 1, tzinfo=UTC), run_h=(1.0, 2.0))
    t.validate()
    sub = _utc(t, "arrival_s").tz_convert("Europe/Berlin")
    assert (sub.day_of_week < 5).all()
    per_day = pd.Series(1, index=sub.normalize()).groupby(level=0).size()
    assert abs(per_day.mean() - 20.0) < 1.5  # Poisson(20) over ~128 workdays
    assert per_day.var() > 5  # not a fixed count
    hours = sub.hour + sub.minute / 60
    assert (hours >= 9).all() and (hours < 17).all()
    assert len(set(t.job_id)) == len(t)


def test_workday_deadlines_are_the_next_feasible_workday_morning():
    t = _wd(end=datetime(2023, 12, 30, tzinfo=UTC), run_h=(4.0, 90.0))
    run_h = t.work_acc_h / t.gang_max
    assert (run_h >= 4).all() and (run_h <= 90).all()
    assert (t.deadline_s > t.arrival_s).all()
    assert (t.deadline_s < (datetime(2023, 12, 30, tzinfo=UTC) - T0).total_seconds()).all()
    finish = t.arrival_s + run_h * 3600
    assert (t.deadline_s >= finish - 1e-6).all()
    due = _utc(t, "deadline_s").tz_convert("Europe/Berlin")
    assert (due.day_of_week < 5).all() and (due.hour == 9).all() and (due.minute == 0).all()
    # no earlier workday 09:00 (a weekday that is no German public holiday) lies between the finish and the deadline
    fin = _utc(t, "arrival_s") + pd.to_timedelta(run_h, unit="h")
    public = holidays.country_holidays("DE", years=[2023, 2024])
    for f, d in zip(fin, due):
        day = f.tz_convert("Europe/Berlin").normalize()
        cands = [day + pd.Timedelta(days=i) for i in range(10)]
        cands = [c.replace(hour=9) for c in cands if c.day_of_week < 5 and c.date() not in public]
        first = next(c for c in cands if c >= f)
        assert first == d


def test_public_holidays_are_not_workdays():
    start = datetime(2023, 12, 18, tzinfo=UTC)
    xmas = dict(start=start, end=datetime(2024, 1, 6, tzinfo=UTC))

    def local_days(table, col, tz="Europe/Berlin"):
        at = pd.Timestamp(start) + pd.to_timedelta(getattr(table, col), unit="s")
        return set(pd.DatetimeIndex(at).tz_convert(tz).strftime("%Y-%m-%d"))

    t = _wd(jobs_per_workday=20.0, run_h=(1.0, 2.0), **xmas)
    holidays_de = {"2023-12-25", "2023-12-26", "2024-01-01"}  # Christmas, second day of Christmas, New Year
    assert {"2023-12-22", "2023-12-27"} <= local_days(t, "arrival_s")  # the Friday before, the Wednesday after
    assert not holidays_de & local_days(t, "arrival_s")
    assert not holidays_de & local_days(t, "deadline_s")
    rec = _rec(workdays_only=True, **xmas)
    assert "nightly-2023-12-25" not in set(rec.job_id) and "nightly-2023-12-27" in set(rec.job_id)
    # a time zone without a known country keeps weekends only
    utc = _wd(jobs_per_workday=20.0, run_h=(1.0, 2.0), tz="UTC", **xmas)
    assert "2023-12-25" in local_days(utc, "arrival_s", "UTC")


def test_workday_mix_gangs_and_interruptible_share():
    t = _wd(jobs_per_workday=30.0, gang=[1, 2, 4, 8], interruptible_frac=0.5, kind="fine-tuning")
    assert set(np.unique(t.gang_max)) == {1, 2, 4, 8}
    assert 0.4 < t.interruptible.mean() < 0.6
    assert (t.gang_min[~t.interruptible] == t.gang_max[~t.interruptible]).all()
    assert (t.gang_min[t.interruptible] == np.maximum(1, t.gang_max[t.interruptible] // 2)).all()
    assert (t.migratable == t.interruptible).all()
    k = JOB_KINDS.index(JobKind.FINE_TUNING)
    assert (t.kind == k).all() and (t.checkpoint_overhead_s == KIND_DEFAULTS[JobKind.FINE_TUNING]
                                    ["checkpoint_overhead_s"]).all()


def test_workday_deterministic_by_seed():
    a, b, c = _wd(seed=5), _wd(seed=5), _wd(seed=6)
    for col in ("job_id", "arrival_s", "deadline_s", "work_acc_h", "gang_max", "interruptible"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
    assert len(a) != len(c) or not np.array_equal(a.arrival_s, c.arrival_s)


# --- assembled from a scenario file -----------------------------------------------------------------------

YAML = """
name: templates
seed: 11
time_range: {start: 2023-03-06T00:00:00Z, end: 2023-03-27T00:00:00Z}
zones:
  - id: DE-LU
  - {id: GB, price_usd_per_mwh: 110}
sites:
  - {name: fra, zone: DE-LU, pue: 1.2, power_cap_mw: 1.0, pools: [{accelerator: H100, count: 32}]}
  - {name: lon, zone: GB, pue: 1.3, power_cap_mw: 1.0, pools: [{accelerator: A100, count: 32}]}
workloads:
  recurring:
    - {name: nightly, tz: Europe/Berlin, start_local_h: 1, run_h: 0.5, gang: 8, window_h: 8}
    - {name: report, tz: Europe/London, start_local_h: 6, run_h: 1, window_h: 2, workdays_only: true,
       interruptible: true, reference_accelerator: A100}
  workday:
    - {name: train, tz: Europe/Berlin, jobs_per_workday: 3, run_h: [4, 30], gang: [1, 2, 4]}
policies: [asap]
"""


def test_assemble_yaml_with_templates():
    asm = assemble(parse_scenario(YAML))
    jobs = asm.world.jobs
    ids = list(jobs.job_id)
    assert sum(i.startswith("nightly-") for i in ids) == 20  # 6 March 01:00 CET - 8 h is before the start
    assert sum(i.startswith("report-") for i in ids) == 15  # Mon 6 ... Fri 24 March
    assert any(i.startswith("train-") for i in ids)
    assert (np.diff(jobs.arrival_s) >= 0).all()
    # speeds against each template's reference: the report runs at 1.0 on A100
    k = jobs.type_names.index("A100")
    rep = np.array([i.startswith("report-") for i in ids])
    assert np.allclose(jobs.speed[rep, k], 1.0)
    assert (jobs.speed[~rep, jobs.type_names.index("H100")] == 1.0).all()
    # same seed, same jobs; workday jobs change with the seed
    again = assemble(parse_scenario(YAML)).world.jobs
    assert np.array_equal(again.arrival_s, jobs.arrival_s) and list(again.job_id) == ids
    other = assemble(parse_scenario(YAML.replace("seed: 11", "seed: 12"))).world.jobs
    assert [i for i in ids if not i.startswith("train-")] == [i for i in other.job_id if not i.startswith("train-")]
    assert sorted(i for i in other.job_id if i.startswith("train-")) != sorted(i for i in ids if i.startswith("train-"))


@pytest.mark.parametrize("old,new,field", [
    ("tz: Europe/London", "tz: Europe/Atlantis", "workloads.recurring[1].tz"),
    ("tz: Europe/Berlin, jobs", "tz: Mars/Olympus, jobs", "workloads.workday[0].tz"),
    ("reference_accelerator: A100", "reference_accelerator: Z9000", "workloads.recurring[1].reference_accelerator"),
    ("name: report", "name: nightly", "workloads.jobs"),
])
def test_template_errors_name_the_field(old, new, field):
    with pytest.raises(ScenarioError) as e:
        assemble(parse_scenario(YAML.replace(old, new)))
    assert e.value.field == field


def test_recurring_jobs_state_their_time_zone():
    # a nominal time without a time zone is ambiguous (01:00 UTC and 01:00 in Berlin are different hours)
    with pytest.raises(ScenarioError) as e:
        parse_scenario(YAML.replace("tz: Europe/Berlin, start_local_h", "start_local_h"))
    assert e.value.field == "workloads.recurring[0].tz"
    assert "required" in e.value.message.lower()
