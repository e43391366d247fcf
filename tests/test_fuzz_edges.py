"""A fuzzing harness that stays: hostile values (huge, tiny, NaN, infinities, far dates, deep nesting, unicode,
hostile strings) thrown at every scenario field, at the command line's options and at the API's bodies.

What must hold: a scenario is either valid (and within the documented ranges of ``gridshift.model.bounds``) or
refused with one :class:`ScenarioError` line; the command line exits with code 2 and one line on stderr and
writes nothing; the API answers a 4xx (never a 5xx) and stores nothing for a refused body; and whatever the
API accepted, the reconciler still plans a well-formed job beside it.

Cases per run (the ``ci`` profile, derandomized): 400 scenario values, 40 command lines, 25 option values,
60 option values of the study commands (capacity, headroom, sweep, hetero, flex), 150 job bodies, 60 event
bodies and 40 signal bodies — 775 in all, in about a minute.
"""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridshift.cli import app
from gridshift.data.scenario import parse_scenario
from gridshift.errors import ScenarioError
from gridshift.model import bounds as B

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
HERE = Path(__file__).parent
runner = CliRunner()


def cases(n: int) -> settings:
    """``n`` examples, no deadline (the first call imports the stacks), no health checks."""
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))

BASE = {
    "name": "fuzz",
    "time_range": {"start": "2023-06-05T00:00:00Z", "end": "2023-06-06T00:00:00Z"},
    "zones": [{"id": "DE-LU"}, {"id": "GB", "price_usd_per_mwh": 110}],
    "sites": [{"name": "frankfurt", "zone": "DE-LU", "region": "europe-west3", "pue": 1.2, "power_cap_mw": 0.2,
               "ramp_mw_per_min": 0.01, "pools": [{"accelerator": "H100", "count": 96}]},
              {"name": "london", "zone": "GB", "pue": 1.3,
               "power_cap_mw": [{"start": "2023-06-05T00:00:00Z", "power_cap_mw": 0.2}],
               "pools": [{"accelerator": "A100", "count": 128}]}],
    "workloads": {
        "jobs": [{"job_id": "j1", "kind": "fine-tuning", "priority": 0, "arrival": "2023-06-05T01:00:00Z",
                  "deadline": "2023-06-05T20:00:00Z", "work_acc_h": 8.0, "throughput": {"A100": 0.6},
                  "gang_min": 1, "gang_max": 4, "checkpoint_overhead_s": 60, "restart_overhead_s": 120,
                  "data_move_gb": 10, "tier": 1}],
        "generate": {"count": 50, "gang_sizes": [1, 2, 4], "max_length_h": 12, "load_scale": 1.0,
                     "kind_mix": {"fine-tuning": 1.0}, "no_deadline_frac": 0.2, "tier_mix": {1: 1.0}},
        "recurring": [{"name": "nightly", "tz": "Europe/Berlin", "start_local_h": 1.0, "run_h": 0.5, "gang": 1,
                       "window_h": 4}],
        "workday": [{"name": "ml", "tz": "Europe/Berlin", "jobs_per_workday": 2, "run_h": [4, 8], "gang": [1, 2]}],
        "services": [{"name": "chat", "latency_slo_ms": 30,
                      "profiles": {"H100": {"requests_per_s_per_accelerator": 1.8, "power_w_per_accelerator": 500}},
                      "demand": {"peak_requests_per_s": {"europe-west3": 20}}}]},
    "events": [{"id": "e1", "kind": "cut", "sites": ["frankfurt"], "start": "2023-06-05T10:00:00Z",
                "end": "2023-06-05T12:00:00Z", "cut_frac": 0.2, "baseline_mw": 0.15, "notice_s": 3600}],
    "seed": 1,
    "fill_gaps_max_h": 0,
}

def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list) and node and isinstance(node[0], (dict, list)):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path


PATHS = list(_leaves(BASE))

HOSTILE_STRINGS = ["", " ", "\x00", "\u202e\u0000evil", "💥" * 50, "a" * 10_000, "../../etc/passwd", "${HOME}",
                   "'; DROP TABLE jobs; --", "NaN", "inf", "-inf", "1e309", "0x10", "[1, 2", "{a: 1",
                   "2023-02-30T00:00:00Z", "0000-01-01", "9999-12-31T23:59:59Z", "yes", "null"]
huge = st.sampled_from([1e308, -1e308, 10**308, -(10**308), 2**31, 2**63, -(2**63), 2**64, 10**20, 1.7976931348623157e308])
tiny = st.sampled_from([1e-320, -1e-320, 5e-324, 0.0, -0.0, 1e-9])
special = st.sampled_from([math.nan, math.inf, -math.inf])
far_dates = st.sampled_from(["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
                             "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
                             "2023-03-26T02:30:00", "2023-06-05T00:00:00+25:00"])
deep = st.integers(50, 400).map(lambda n: _nest(n))
text = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(st.characters(codec="utf-8"), max_size=40))


def _nest(n: int):
    v: object = 1
    for _ in range(n):
        v = {"a": v} if n % 2 else [v]
    return v


hostile = st.one_of(huge, tiny, special, far_dates, deep, text, st.integers(-(10**30), 10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
                    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


def _set(doc: dict, path: tuple, value) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return doc


def _dump(doc) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:  # a value YAML cannot represent: write it as a quoted string
        return yaml.safe_dump(doc, sort_keys=False)


def _within_bounds(sc) -> None:
    """A scenario that was accepted holds only values inside the documented ranges."""
    for t in (sc.time_range.start, sc.time_range.end, *(j.arrival for j in sc.workloads.jobs),
              *(e.start for e in sc.events), *(e.end for e in sc.events)):
        assert B.EARLIEST <= t < B.LATEST
    for s in sc.sites:
        caps = [s.power_cap_mw] if isinstance(s.power_cap_mw, float | int) else [c.power_cap_mw for c in s.power_cap_mw]
        assert all(0 < c <= B.MAX_POWER_MW for c in caps)
        assert all(1 <= p.count <= B.MAX_ACCELERATORS for p in s.pools)
    for j in sc.workloads.jobs:
        assert B.MIN_WORK_ACC_H <= j.work_acc_h <= B.MAX_WORK_ACC_H and math.isfinite(j.work_acc_h)
        assert 1 <= j.gang_min <= j.gang_max <= B.MAX_GANG and abs(j.priority) <= B.MAX_PRIORITY


# ------------------------------------------------------------------------------------------ scenario fields

@cases(400)
@given(path=st.sampled_from(PATHS), value=hostile)
def test_any_hostile_scenario_value_is_valid_or_one_line(path, value):
    source = "fuzz.yaml"
    try:
        text = _dump(_set(BASE, path, value))
    except (ValueError, RecursionError):
        return
    try:
        sc = parse_scenario(text, source)
    except ScenarioError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith(source), msg
        return
    _within_bounds(sc)


# definitely outside a documented range: the command line must refuse these in one line
invalid_number = st.sampled_from([1e308, -1e308, 10**308, 2**63, -(2**63), math.nan, math.inf, -math.inf, -1.0,
                                  "lots", "", [], {"a": 1}, None, 1e-320])
invalid_time = st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "tomorrow",
                                "2023-02-30T00:00:00Z", 12, None, ""])
CLI_NUMBERS = [("sites", 0, "power_cap_mw"), ("sites", 0, "pools", 0, "count"), ("sites", 0, "pue"),
               ("workloads", "jobs", 0, "work_acc_h"), ("workloads", "jobs", 0, "gang_max"),
               ("workloads", "jobs", 0, "checkpoint_overhead_s"), ("workloads", "generate", "count"),
               ("workloads", "generate", "max_length_h"), ("events", 0, "baseline_mw"), ("events", 0, "notice_s"),
               ("workloads", "services", 0, "latency_slo_ms")]
CLI_TIMES = [("time_range", "start"), ("workloads", "jobs", 0, "arrival"), ("events", 0, "end"),
             ("sites", 1, "power_cap_mw", 0, "start")]


@cases(40)
@given(data=st.data())
def test_simulate_refuses_invalid_values_in_one_line_and_writes_nothing(tmp_path_factory, data):
    if data.draw(st.booleans()):
        path, value = data.draw(st.sampled_from(CLI_NUMBERS)), data.draw(invalid_number)
    else:
        path, value = data.draw(st.sampled_from(CLI_TIMES)), data.draw(invalid_time)
    if path[-1] == "pue" and value == -1.0 or (path[-1] == "notice_s" and value == 1e-320):
        value = math.inf
    tmp = tmp_path_factory.mktemp("cli")
    scenario = tmp / "s.yaml"
    scenario.write_text(_dump(_set(BASE, path, value)))
    out = tmp / "out"
    r = runner.invoke(app, ["simulate", str(scenario), "--out", str(out), "-q"])
    assert r.exit_code == 2, (path, value, r.output)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {scenario}"), (path, value, r.stderr)
    assert sorted(p.name for p in tmp.iterdir()) == ["s.yaml"]


@cases(25)
@given(case=st.one_of(
    st.tuples(st.just("demo"), st.sampled_from(["--jobs", "--days"]),
              st.one_of(st.integers(max_value=0), st.integers(min_value=10**7 + 1, max_value=10**40))),
    st.tuples(st.just("policy"), st.just("--policy"), text.filter(lambda s: s.strip() and "\x00" not in s)),
    st.tuples(st.just("explain"), st.just("--job"), text.filter(lambda s: "\x00" not in s)),
    st.tuples(st.just("schema"), st.just(""), text.filter(lambda s: s.strip() and "\x00" not in s
                                                         and not s.startswith("-")))))
def test_hostile_option_values_are_one_line_exit_2(tmp_path_factory, case):
    from gridshift.plan.registry import POLICIES

    kind, option, value = case
    tmp = tmp_path_factory.mktemp("opt")
    out = tmp / "out"
    if kind == "demo":
        argv = ["demo", option, str(value), "--out", str(out), "-q"]
    elif kind == "policy":
        if value in POLICIES:
            return
        argv = ["simulate", str(HERE / "scenarios" / "small.yaml"), "--policy", value, "--out", str(out), "-q"]
    elif kind == "explain":
        argv = ["explain", str(tmp / "no-such-run"), "--job", value]
    else:
        if value in ("scenario", "job", "site", "service", "accelerator", "zone"):
            return
        argv = ["schema", value]
    r = runner.invoke(app, argv)
    assert r.exit_code == 2, (argv, r.output)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, r.stderr)
    assert list(tmp.iterdir()) == []


# ------------------------------------------------------------------------------------------------- the API

@pytest.fixture(scope="module")
def api(tmp_path_factory):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from gridshift.service.app import ApiSettings, create_app
    from gridshift.service.db import upgrade
    from gridshift.service.store import Store
    from reconciler_proc import FLEET

    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'state.db'}"
    upgrade(url)
    settings_ = ApiSettings(rate_per_s=100_000, burst=100_000, auth_failure_rate_per_s=100_000,
                            auth_failure_burst=100_000)
    fleet_doc = {"sites": FLEET["sites"], "zones": FLEET["zones"]}
    with Store(url) as store, TestClient(create_app(store, fleet=fleet_doc, settings=settings_)) as client:
        secret = store.create_token("ops", "operator")[1]
        client.headers["Authorization"] = f"Bearer {secret}"
        yield store, client


JOB = {"kind": "fine-tuning", "work_acc_h": 8.0, "gang_min": 1, "gang_max": 4, "priority": 0, "tier": 1,
       "deadline": "2030-01-01T00:00:00Z", "throughput": {"H100": 1.0}, "checkpoint_overhead_s": 60.0,
       "restart_overhead_s": 60.0, "data_move_gb": 1.0, "interruptible": True, "migratable": True,
       "tenant": "alice"}
EVENT = {"id": "ev", "kind": "limit", "sites": ["site-a"], "start": "2030-01-01T10:00:00Z",
         "end": "2030-01-01T12:00:00Z", "limit_mw": 1.0, "notice_s": 3600.0}
SIGNAL = {"zone": "ZZ", "signal": "carbon_g_per_kwh", "time": "2030-01-01T00:00:00Z", "value": 300.0}
json_hostile = st.one_of(
    st.sampled_from([1e308, -1e308, 10**308, 2**31, 2**63, -(2**63), 2**64, 10**1000, 1e-320, 5e-324, 0, -1, -0.0,
                     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "2030-01-01",
                     "", "\x00", "\u202e", "💥" * 100, "a" * 5000, None, True, [], {}]),
    deep, text, st.integers(), st.floats(allow_nan=False, allow_infinity=False))


def _count(store) -> tuple[int, int, int]:
    from gridshift.service.store import Principal

    jobs = len(store.list_jobs(Principal.system(), limit=10_000)[0])
    return jobs, len(store.grid_events(include_cancelled=True)), len(store.signals_between(
        "ZZ", "carbon_g_per_kwh", datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)))


def _post(api, path: str, body, field, value) -> None:
    store, client = api
    before = _count(store)
    r = client.post(f"/api/v1{path}", json=body)
    assert r.status_code < 500, (field, value, r.status_code, r.text[:300])
    if 400 <= r.status_code < 500:
        assert _count(store) == before, (field, value, "a refused body was stored")
        assert isinstance(r.json().get("detail"), str)


@cases(150)
@given(field=st.sampled_from(sorted(JOB)), value=json_hostile)
def test_job_bodies_are_4xx_or_accepted_never_5xx(api, field, value):
    _post(api, "/jobs", {**JOB, field: value}, field, value)


@cases(60)
@given(field=st.sampled_from(sorted(EVENT)), value=json_hostile, n=st.integers(0, 10**9))
def test_event_bodies_are_4xx_or_accepted_never_5xx(api, field, value, n):
    _post(api, "/events", {**EVENT, "id": f"ev-{n}", field: value}, field, value)


@cases(40)
@given(field=st.sampled_from(sorted(SIGNAL)), value=json_hostile)
def test_signal_bodies_are_4xx_or_accepted_never_5xx(api, field, value):
    _post(api, "/signals", {"rows": [{**SIGNAL, field: value}]}, field, value)


def test_the_issues_hostile_bodies_are_422(api):
    store, client = api
    for field, value in (("gang_max", 2**31), ("priority", 2**63), ("work_acc_h", 1e308), ("work_acc_h", 1e-320),
                         ("deadline", "9999-12-31T00:00:00Z"), ("gang_min", 10**7)):
        r = client.post("/api/v1/jobs", json={**JOB, field: value, "gang_max": max(4, value) if field == "gang_min"
                                              else JOB["gang_max"] if field != "gang_max" else value})
        assert r.status_code == 422 and field in r.text, (field, value, r.text)
    r = client.post("/api/v1/events", json={**EVENT, "id": "year-one", "start": "0001-01-01T00:00:00Z"})
    assert r.status_code == 422 and "start" in r.text


def test_planning_is_unaffected_by_what_the_api_accepted(api, tmp_path):
    """Runs last in this module: whatever the fuzzing above stored, a reconciler pass plans a plain job."""
    from gridshift.model.scenario import Scenario
    from gridshift.service.executors.local import LocalExecutor
    from gridshift.service.reconciler import Reconciler
    from gridshift.service.store import Principal
    from reconciler_proc import FLEET

    store, client = api
    r = client.post("/api/v1/jobs", json={"kind": "fine-tuning", "work_acc_h": 1.0, "tenant": "canary"})
    assert r.status_code == 201
    canary = r.json()["id"]
    executor = LocalExecutor(tmp_path / "executor", sim_wall_s_per_run_h=0.01, stop_grace_s=1.0)
    rec = Reconciler(store, executor, Scenario.model_validate(FLEET), policy="asap")
    try:
        rec.tick()  # raises if planning failed
        assert rec.status().get("last_error") is None
        planned = {it.job_id for it in store.current_plan().items}
        live = {j.id for j in store.list_jobs(Principal.system(), status=["queued", "planned", "running"],
                                              limit=10_000)[0]}
        assert canary in planned and live <= planned  # every accepted job was planned, the canary too
    finally:
        for s in executor.report():
            if not s.finished:
                executor.stop(s.job_id)


# ------------------------------------------------------------------------ the study commands' options

SMALL = str(HERE / "scenarios" / "small.yaml")
STUDIES = {  # command line before the option; the options a hostile value is thrown at
    "capacity": (["capacity", "--tokens-per-day", "1e9"],
                 ["--tokens-per-day", "--training-flop-per-month", "--utilisation", "--pue", "--carbon-g-per-kwh",
                  "--energy-price-usd-per-mwh", "--peak-to-mean", "--mfu", "--amortisation-years",
                  "--server-capex-frac", "--sensitivity"]),
    "capacity-budget": (["capacity"], ["--budget-mw", "--budget-gw"]),
    "headroom": (["headroom"], ["--max-event-h", "--curtailment", "--years", "--tier-shares"]),
    "sweep": (["sweep", str(HERE.parent / "examples" / "sweeps" / "nightly-zones.yaml")], ["--workers"]),
    "hetero-fleet": (["hetero", "fleet"], ["--jobs", "--jobs-per-h", "--carbon-weight", "--cap-frac", "--seed"]),
    "hetero-gavel": (["hetero", "reproduce-gavel", "--quick"], ["--seeds", "--workers"]),
    "flex": (["flex", SMALL, "--site", "frankfurt", "--at", "2023-06-05T10:00:00Z"], ["--durations"]),
}
HOSTILE_OPTION = st.sampled_from(["-1", "nan", "inf", "-inf", "1e308", "99999999999999999999999", "lots", "",
                                  "1,,x", "\u202e", "💥"])


@cases(60)
@given(study=st.sampled_from(sorted(STUDIES)), data=st.data(), value=HOSTILE_OPTION)
def test_study_options_refuse_hostile_values_in_one_line_and_write_nothing(tmp_path_factory, study, data, value):
    """Every such value is outside what the option takes: exit code 2, one line naming the option (click's
    own type errors too, not its usage box), nothing written."""
    base, options = STUDIES[study]
    option = data.draw(st.sampled_from(options))
    tmp = tmp_path_factory.mktemp("study")
    argv = [*base, option, value] + ([] if study == "flex" else ["--out", str(tmp / "out")])
    r = runner.invoke(app, argv)
    assert r.exit_code == 2, (argv, r.output[-500:])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, r.stderr)
    assert list(tmp.iterdir()) == []
