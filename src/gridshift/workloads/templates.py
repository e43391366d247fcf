"""Jobs from templates: a job that recurs every (work)day at a local time with a shift window, and jobs
submitted during local working hours with results due the next feasible workday morning — the nightly-job
and ML-training scenarios of Wiesner et al., "Let's Wait Awhile" (Middleware 2021).

Pure functions: specs and a random generator in, a :class:`~gridshift.model.workload.JobTable` out (times in
seconds since ``start``), no file I/O (``gridshift.workloads.build`` computes the speed matrix).

Local time: a local wall-clock time becomes an instant with the IANA rules of the spec's ``tz`` (DST
included). A wall-clock time that occurs twice (the hour repeated when DST ends) is taken at its first
occurrence; one that does not exist (the hour skipped when DST starts) moves forward to the end of the gap
(02:30 on the spring-forward day in Berlin becomes 03:00 CEST).

Workdays are Monday to Friday in the local calendar except the public holidays of the country of the spec's
``tz`` (``holidays.country_holidays``, computed, no I/O): the country (and, where a time zone belongs to one
region, its subdivision) comes from ``TZ_COUNTRY``; Europe/Berlin → DE, Europe/London → GB (England),
America/Toronto → CA (Ontario), America/New_York and the other US zones → US federal holidays. A time zone
without a known country (``UTC``, ``Etc/…``, anything not in ``TZ_COUNTRY``) has weekends only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import numpy as np
import pandas as pd

from gridshift.model.scenario import RecurringJobs, WorkdayJobs
from gridshift.model.time import S_PER_H, as_utc_timestamp
from gridshift.model.workload import JOB_KINDS, JobKind, JobTable
from gridshift.workloads.batch import KIND_DEFAULTS

_MAX_DUE_DAYS = 9  # a finish time's due date lies at most this many local days ahead (Fri evening -> Tue
#                   after an Easter or Christmas weekend, with room to spare)

TZ_COUNTRY: dict[str, tuple[str, str | None]] = {
    # IANA time zone -> (ISO 3166 country, subdivision or None) whose public holidays are not workdays
    "Europe/Amsterdam": ("NL", None), "Europe/Berlin": ("DE", None), "Europe/Brussels": ("BE", None),
    "Europe/Copenhagen": ("DK", None), "Europe/Dublin": ("IE", None), "Europe/Helsinki": ("FI", None),
    "Europe/Lisbon": ("PT", None), "Europe/London": ("GB", "ENG"), "Europe/Luxembourg": ("LU", None),
    "Europe/Madrid": ("ES", None), "Europe/Oslo": ("NO", None), "Europe/Paris": ("FR", None),
    "Europe/Prague": ("CZ", None), "Europe/Rome": ("IT", None), "Europe/Stockholm": ("SE", None),
    "Europe/Vienna": ("AT", None), "Europe/Warsaw": ("PL", None), "Europe/Zurich": ("CH", None),
    "America/New_York": ("US", None), "America/Chicago": ("US", None), "America/Denver": ("US", None),
    "America/Phoenix": ("US", None), "America/Los_Angeles": ("US", None), "America/Toronto": ("CA", "ON"),
    "America/Vancouver": ("CA", "BC"), "America/Sao_Paulo": ("BR", "SP"), "America/Santiago": ("CL", None),
    "America/Mexico_City": ("MX", None), "Asia/Tokyo": ("JP", None), "Asia/Seoul": ("KR", None),
    "Asia/Singapore": ("SG", None), "Asia/Kolkata": ("IN", None), "Asia/Shanghai": ("CN", None),
    "Asia/Hong_Kong": ("HK", None), "Asia/Taipei": ("TW", None), "Australia/Sydney": ("AU", "NSW"),
    "Australia/Melbourne": ("AU", "VIC"), "Africa/Johannesburg": ("ZA", None),
}


def zone(tz: str) -> ZoneInfo:
    """The IANA time zone ``tz``; ValueError if unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise ValueError(f"unknown time zone '{tz}' (use an IANA name such as 'Europe/Berlin')") from e


def _utc(t: datetime) -> pd.Timestamp:
    return as_utc_timestamp(t)


def local_days(start: datetime, end: datetime, tz: ZoneInfo, pad_days: int = 0) -> np.ndarray:
    """Local calendar dates (``datetime64[D]``) from the local date of ``start`` minus ``pad_days`` to the
    local date of ``end``, inclusive."""
    first = _utc(start).tz_convert(tz).date() - timedelta(days=pad_days)
    last = _utc(end).tz_convert(tz).date()
    return np.arange(np.datetime64(first, "D"), np.datetime64(last, "D") + 1)


def local_to_utc_s(days: np.ndarray, hours: np.ndarray | float, tz: ZoneInfo, ref: datetime) -> np.ndarray:
    """Seconds since ``ref`` of wall-clock time ``days + hours`` in ``tz`` (rules: module docstring)."""
    days = np.asarray(days, dtype="datetime64[D]")
    hours = np.broadcast_to(np.asarray(hours, dtype=np.float64), days.shape)
    if days.size == 0:
        return np.zeros(0)
    us = np.round(hours * 3.6e9).astype(np.int64)
    naive = pd.DatetimeIndex(days.astype("datetime64[us]") + us.astype("timedelta64[us]"))
    local = naive.tz_localize(tz, ambiguous=np.ones(days.size, dtype=bool), nonexistent="shift_forward")
    return np.asarray((local.tz_convert("UTC") - _utc(ref)) / pd.Timedelta(seconds=1), dtype=np.float64)


def public_holidays(tz: str, days: np.ndarray) -> np.ndarray:
    """Public holidays (``datetime64[D]``, sorted) of the country of time zone ``tz`` (``TZ_COUNTRY``) in the
    years of ``days`` and the year after; empty for a time zone without a known country."""
    country = TZ_COUNTRY.get(tz)
    days = np.asarray(days, dtype="datetime64[D]")
    if country is None or days.size == 0:
        return np.zeros(0, dtype="datetime64[D]")
    years = range(int(str(days.min())[:4]), int(str(days.max())[:4]) + 2)
    cal = holidays.country_holidays(country[0], subdiv=country[1], years=years)
    return np.array(sorted(cal), dtype="datetime64[D]")


def is_workday(days: np.ndarray, holiday_dates: np.ndarray | None = None) -> np.ndarray:
    """Monday to Friday and not one of ``holiday_dates`` (``datetime64[D]`` input)."""
    days = np.asarray(days, dtype="datetime64[D]")
    hol = np.zeros(0, dtype="datetime64[D]") if holiday_dates is None else np.asarray(holiday_dates, "datetime64[D]")
    return np.is_busday(days, holidays=hol)


def _table(ids: np.ndarray, kind: JobKind, tenant: str, arrival_s: np.ndarray, deadline_s: np.ndarray,
           run_h: np.ndarray, gang_max: np.ndarray, gang_min: np.ndarray, interruptible: np.ndarray,
           type_names: tuple[str, ...], speed_by_kind: np.ndarray, tier: int = 1,
           nominal_start_s: np.ndarray | None = None) -> JobTable:
    speed_by_kind = np.asarray(speed_by_kind, dtype=np.float64)
    if speed_by_kind.shape != (len(JOB_KINDS), len(type_names)):
        raise ValueError(f"speed_by_kind has shape {speed_by_kind.shape}, expected {(len(JOB_KINDS), len(type_names))}")
    n = ids.size
    k = JOB_KINDS.index(JobKind(kind))
    d = KIND_DEFAULTS[JobKind(kind)]
    interruptible = np.asarray(interruptible, dtype=bool)
    return JobTable(
        job_id=ids.astype(object),
        kind=np.full(n, k, dtype=np.int8),
        tenant=np.full(n, tenant, dtype=object),
        priority=np.zeros(n, dtype=np.int32),
        arrival_s=np.asarray(arrival_s, dtype=np.float64),
        deadline_s=np.asarray(deadline_s, dtype=np.float64),
        work_acc_h=np.asarray(run_h, dtype=np.float64) * gang_max,
        gang_min=np.asarray(gang_min, dtype=np.int32),
        gang_max=np.asarray(gang_max, dtype=np.int32),
        speed=np.repeat(speed_by_kind[k][None, :], n, axis=0),
        interruptible=interruptible,
        checkpoint_overhead_s=np.full(n, d["checkpoint_overhead_s"]),
        restart_overhead_s=np.full(n, d["restart_overhead_s"]),
        migratable=interruptible.copy(),
        data_move_gb=np.full(n, d["data_move_gb"]),
        type_names=tuple(type_names),
        tier=np.full(n, tier, dtype=np.int8),
        nominal_start_s=np.full(n, np.nan) if nominal_start_s is None else np.asarray(nominal_start_s, np.float64),
    )


def recurring_jobs(spec: RecurringJobs, *, start: datetime, end: datetime, type_names: tuple[str, ...],
                   speed_by_kind: np.ndarray) -> JobTable:
    """One job per local day (per local workday with ``workdays_only``: weekdays that are not public holidays)
    of ``spec``.

    Nominal start: ``spec.start_local_h`` on that day in ``spec.tz``; the job arrives ``window_h`` before it
    and is due ``window_h`` after the nominal end (nominal start + ``run_h``); the nominal start is the
    table's ``nominal_start_s`` (the job's habit, which ``mpc`` keeps unless shifting clearly pays). Only days whose arrival and
    deadline both lie in [start, end) are kept. ``work_acc_h = run_h × gang`` (reference type at full gang),
    a rigid gang; ``interruptible`` (and migratable) as the spec says; overheads from ``KIND_DEFAULTS``.
    ``speed_by_kind[k, t]``: throughput of ``JOB_KINDS[k]`` on ``type_names[t]`` relative to the spec's
    reference type. Ids ``f"{spec.name}-{YYYY-MM-DD}"`` (the local date).
    """
    tz = zone(spec.tz)
    pad = int(np.ceil((spec.window_h + spec.run_h) / 24.0)) + 1
    days = local_days(start, end, tz, pad_days=pad)
    if spec.workdays_only:
        days = days[is_workday(days, public_holidays(spec.tz, days))]
    nominal = local_to_utc_s(days, spec.start_local_h, tz, start)
    arrival = nominal - spec.window_h * S_PER_H
    deadline = nominal + (spec.run_h + spec.window_h) * S_PER_H
    horizon = (_utc(end) - _utc(start)).total_seconds()
    keep = (arrival >= 0) & (deadline < horizon)
    days, arrival, deadline, nominal = days[keep], arrival[keep], deadline[keep], nominal[keep]
    n = days.size
    ids = np.array([f"{spec.name}-{d}" for d in days.astype(str)], dtype=object)
    gang = np.full(n, spec.gang, dtype=np.int32)
    return _table(ids, spec.kind, spec.tenant, arrival, deadline, np.full(n, spec.run_h), gang, gang,
                  np.full(n, spec.interruptible), tuple(type_names), speed_by_kind, spec.tier, nominal)


def workday_jobs(spec: WorkdayJobs, *, start: datetime, end: datetime, type_names: tuple[str, ...],
                 speed_by_kind: np.ndarray, rng: np.random.Generator) -> JobTable:
    """Jobs submitted on local workdays (weekdays that are not public holidays) of ``spec`` (see
    :class:`WorkdayJobs`).

    Per local workday: Poisson(``jobs_per_workday``) jobs, submitted uniformly in
    [``submit_from_local_h``, ``submit_to_local_h``) local time, run time ~ U(``run_h``) hours on the
    reference type at full gang, gang uniform over ``spec.gang``, interruptible with probability
    ``interruptible_frac``. Deadline: ``due_local_h`` on the first local workday whose due instant is at or
    after submission + run time. Pre-training and non-interruptible jobs are rigid gangs; other interruptible
    kinds may shrink to half (as generated jobs do). Only jobs submitted at or after ``start`` and due
    before ``end`` are kept. Ids ``f"{spec.name}-{YYYY-MM-DD}-{i:03d}"`` (local submission day, i-th job of
    that day, numbered before filtering so they do not depend on the period's edges).
    """
    tz = zone(spec.tz)
    days = local_days(start, end, tz)
    hol = public_holidays(spec.tz, days)
    days = days[is_workday(days, hol)]
    counts = rng.poisson(spec.jobs_per_workday, days.size)
    n = int(counts.sum())
    sub_day = np.repeat(days, counts)
    nth = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    sub_h = rng.uniform(spec.submit_from_local_h, spec.submit_to_local_h, n)
    run_h = rng.uniform(spec.run_h[0], spec.run_h[1], n)
    gang = rng.choice(np.asarray(spec.gang, dtype=np.int32), size=n).astype(np.int32)
    interruptible = rng.random(n) < spec.interruptible_frac

    arrival = local_to_utc_s(sub_day, sub_h, tz, start)
    finish = arrival + run_h * S_PER_H
    # due date: first workday on or after the finish's local date whose due instant is >= finish
    ref = _utc(start)
    fin_local = (ref + pd.to_timedelta(finish, unit="s")).tz_convert(tz).tz_localize(None)
    fin_day = np.asarray(fin_local.floor("D").values).astype("datetime64[D]")
    cand = fin_day[:, None] + np.arange(_MAX_DUE_DAYS + 1)[None, :]  # [n, D]
    due = local_to_utc_s(cand.ravel(), spec.due_local_h, tz, start).reshape(cand.shape)
    ok = is_workday(cand, hol) & (due >= finish[:, None] - 1e-6)
    first = np.argmax(ok, axis=1)
    deadline = due[np.arange(n), first]

    horizon = (_utc(end) - ref).total_seconds()
    keep = (arrival >= 0) & (deadline < horizon)
    ids = np.array([f"{spec.name}-{d}-{i:03d}" for d, i in zip(sub_day.astype(str), nth)], dtype=object)
    rigid = (spec.kind == JobKind.PRE_TRAINING) | ~interruptible
    gang_min = np.where(rigid, gang, np.maximum(1, gang // 2)).astype(np.int32)
    return _table(ids[keep], spec.kind, spec.tenant, arrival[keep], deadline[keep], run_h[keep], gang[keep],
                  gang_min[keep], interruptible[keep], tuple(type_names), speed_by_kind, spec.tier)

