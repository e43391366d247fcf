"""Workloads: jobs generated from traces, inline jobs, and online-service demand shaped from traces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridshift.errors import ScenarioError
from gridshift.model import JOB_KINDS, DemandSpec, Job, JobGenerator, JobKind, Scenario
from gridshift.workloads import (
    generate_jobs,
    jobs_to_table,
    minute_ratios,
    region_utc_offset_h,
    shape_demand,
)

TYPES = ("H100", "A100")
SPEED = np.array([[1.0, 0.32], [1.0, 0.32], [1.0, 0.6]])  # [kind, type]
WEEK_S = 7 * 86400.0
T0 = datetime(2023, 3, 6, tzinfo=UTC)  # a Monday


def _data(name: str):
    """A loader from gridshift.data, or skip the test if that module is not available."""
    try:
        import gridshift.data as data
    except ImportError as e:  # pragma: no cover - only while gridshift.data is being written
        pytest.skip(f"gridshift.data not importable: {e}")
    if not hasattr(data, name):  # pragma: no cover
        pytest.skip(f"gridshift.data.{name} not available yet")
    return getattr(data, name)


@pytest.fixture(scope="module")
def pai() -> pd.DataFrame:
    return _data("load_gaia")(trace="pai-100k")


def _gen(trace: pd.DataFrame, seed: int = 0, duration_s: float = WEEK_S, pool=None, **spec) -> JobTable:  # noqa: F821
    return generate_jobs(
        JobGenerator(**{"count": 2000, **spec}),
        arrivals_h=trace["arrival_h"].to_numpy(), lengths_h=trace["length_h"].to_numpy(),
        duration_s=duration_s, type_names=TYPES, speed_by_kind=SPEED, rng=np.random.default_rng(seed),
        length_pool_h=pool,
    )


def _same(a, b) -> bool:
    cols = [k for k in a.__dataclass_fields__ if k != "type_names"]
    return all(np.array_equal(getattr(a, c), getattr(b, c), equal_nan=getattr(a, c).dtype.kind == "f")
               for c in cols) and a.type_names == b.type_names


def _cv(x: np.ndarray) -> float:
    return float(np.std(x) / np.mean(x))


# --- generate_jobs ------------------------------------------------------------------------------------

def test_generate_deterministic_and_seed_sensitive(pai):
    assert _same(_gen(pai, seed=7), _gen(pai, seed=7))
    assert not _same(_gen(pai, seed=7), _gen(pai, seed=8))


def test_generate_counts_ranges_and_validity(pai):
    spec = JobGenerator(count=5000)
    t = _gen(pai, count=5000)
    t.validate()
    assert len(t) == 5000 and t.type_names == TYPES
    assert np.all(t.arrival_s >= 0) and np.all(t.arrival_s < WEEK_S) and np.all(np.diff(t.arrival_s) >= 0)
    assert t.job_id[0] == "pai-000000" and t.job_id[-1] == "pai-004999" and len(set(t.job_id)) == 5000
    run_h = t.work_acc_h / t.gang_max
    assert run_h.min() >= 1 / 60 - 1e-12 and run_h.max() <= spec.max_length_h + 1e-9
    assert set(np.unique(t.gang_max)) <= set(spec.gang_sizes)
    assert np.all(t.gang_min <= t.gang_max) and np.all(t.gang_min >= 1)
    assert np.all(t.deadline_s > t.arrival_s)
    assert 0.15 < np.isinf(t.deadline_s).mean() < 0.25
    finite = np.isfinite(t.deadline_s)
    slack = (t.deadline_s - t.arrival_s)[finite] / (run_h[finite] * 3600) - 1
    assert slack.min() >= 0.5 - 1e-9 and slack.max() <= 3.0 + 1e-9
    assert set(t.tenant) == set(spec.tenants) and set(np.unique(t.priority)) <= {0, 1}
    assert np.array_equal(t.speed, SPEED[t.kind])
    pt = t.kind == JOB_KINDS.index(JobKind.PRE_TRAINING)
    assert np.all(t.interruptible[pt]) and np.all(t.gang_min[pt] == t.gang_max[pt])
    assert np.all(t.checkpoint_overhead_s[pt] == 300) and np.all(t.restart_overhead_s[pt] == 600)
    assert abs(t.interruptible.mean() - spec.interruptible_frac) < 0.03


def test_kind_mix_lengths_and_gangs(pai):
    t = _gen(pai, count=20000, seed=3)
    mix = JobGenerator(count=1).kind_mix
    share = np.bincount(t.kind, minlength=3) / len(t)
    for k, kind in enumerate(JOB_KINDS):
        assert abs(share[k] - mix[kind]) < 0.02
    run_h = t.work_acc_h / t.gang_max
    pt, ft, bi = (t.kind == JOB_KINDS.index(k) for k in JOB_KINDS)
    assert run_h[pt].mean() > run_h[ft].mean() > run_h[bi].mean()
    assert t.gang_max[pt].mean() > t.gang_max[ft].mean() > t.gang_max[bi].mean()
    assert run_h[bi].max() > np.median(run_h[pt]) * 0.1  # randomness: kinds overlap in length


def test_load_scale_and_max_length(pai):
    a, b = _gen(pai, seed=1), _gen(pai, seed=1, load_scale=2.0)
    assert np.allclose(b.work_acc_h, 2 * a.work_acc_h)
    c = _gen(pai, seed=1, max_length_h=2.0)
    assert (c.work_acc_h / c.gang_max).max() <= 2.0 + 1e-9


def test_burstiness_preserved_on_real_trace(pai):
    """Whole trace on its own time scale: hourly-count CV as in the trace, far above Poisson's."""
    arr = pai["arrival_h"].to_numpy()
    span_h = float(arr.max() - arr.min())
    t = _gen(pai, count=len(pai), duration_s=span_h * 3600)
    gen_cv = _cv(np.bincount((t.arrival_s // 3600).astype(int)))
    trace_cv = _cv(np.bincount(((arr - arr.min()) // 1).astype(int)))
    poisson_cv = 1 / np.sqrt(len(pai) / span_h)
    assert abs(gen_cv - trace_cv) < 0.1 * trace_cv
    assert gen_cv > 1.5 * poisson_cv


def test_burstiness_preserved_synthetic_window():
    """A trace with a strong day/night pattern keeps its hourly-count CV in any rescaled window."""
    rng = np.random.default_rng(0)
    hours = rng.uniform(0, 24 * 60, 200_000)
    keep = rng.random(hours.size) < np.where((hours % 24) < 12, 0.9, 0.1)
    trace = pd.DataFrame({"arrival_h": np.sort(hours[keep]), "length_h": np.ones(keep.sum())})
    trace_cv = _cv(np.bincount((trace["arrival_h"] // 1).astype(int)))
    window_h = 30_000 / (len(trace) / (24 * 60))  # trace hours covered by a 30k-job window
    for seed in range(3):
        t = _gen(trace, seed=seed, count=30_000, duration_s=5 * 86400)
        bins = np.bincount((t.arrival_s / (5 * 86400) * window_h).astype(int))  # one bin per trace hour
        assert abs(_cv(bins) - trace_cv) < 0.1 * trace_cv


def test_window_wraps_around():
    trace = pd.DataFrame({"arrival_h": np.arange(10.0), "length_h": np.ones(10)})
    t = _gen(trace, count=25, duration_s=25 * 3600.0)
    assert np.allclose(np.diff(t.arrival_s), 3600.0)  # evenly spaced trace, across two wrap-arounds


def test_window_thins_one_arrival_process():
    """With ``window``, fewer jobs are a random subset of the jobs the whole window gives (same times,
    lengths, kinds, gangs), so runs of different sizes share one arrival pattern and job population."""
    trace = pd.DataFrame({"arrival_h": np.sort(np.random.default_rng(1).uniform(0, 500, 3000)),
                          "length_h": np.random.default_rng(2).uniform(0.1, 20, 3000)})
    full = _gen(trace, seed=5, count=2400, duration_s=30 * 86400.0)
    part = _gen(trace, seed=5, count=240, window=2400, duration_s=30 * 86400.0)
    assert len(part) == 240
    pos = np.searchsorted(full.arrival_s, part.arrival_s)
    assert np.array_equal(full.arrival_s[pos], part.arrival_s)  # every arrival is one of the window's
    assert np.unique(pos).size == 240
    assert _same(part, full.take(pos))  # the very jobs of the whole window, row for row
    # not the first 240 rows of the window (those would be the first tenth of the time span): spread over it
    assert part.arrival_s.max() > 0.8 * full.arrival_s.max()
    # without a window (or a window no larger than the count) nothing changes
    assert _same(_gen(trace, seed=5, count=240, window=240), _gen(trace, seed=5, count=240))


def test_100k_jobs(pai):
    t = _gen(pai, count=100_000)
    t.validate()
    assert len(t) == 100_000 and t.job_id[-1] == "pai-099999"


def test_philly_length_pool():
    runtime_s = np.asarray(_data("load_philly_runtimes")(), dtype=float)
    pool = runtime_s[runtime_s > 0] / 3600
    pai = _data("load_gaia")(trace="pai-100k")
    t = _gen(pai, pool=pool, count=5000, length_trace="philly", max_length_h=1e6)
    t.validate()
    run_h = t.work_acc_h / t.gang_max
    assert np.isin(np.round(run_h[run_h > 1 / 60] * 3600), np.round(pool * 3600)).all()
    tiny = pd.DataFrame({"arrival_h": np.arange(50.0), "length_h": np.full(50, 99.0)})
    t2 = _gen(tiny, pool=np.array([0.0, 2.0, 3.0, -1.0, np.nan]), count=500)
    assert set(np.round(t2.work_acc_h / t2.gang_max, 9)) == {2.0, 3.0}


def test_no_deadline_when_slack_infinite():
    trace = pd.DataFrame({"arrival_h": np.arange(100.0), "length_h": np.ones(100)})
    t = _gen(trace, count=100, deadline_slack_frac=(0.5, float("inf")))
    assert np.all(np.isinf(t.deadline_s))


def test_bad_inputs_raise():
    trace = pd.DataFrame({"arrival_h": np.arange(10.0), "length_h": np.ones(10)})
    with pytest.raises(ValueError, match="speed_by_kind"):
        generate_jobs(JobGenerator(count=5), arrivals_h=trace["arrival_h"].to_numpy(),
                      lengths_h=trace["length_h"].to_numpy(), duration_s=100.0, type_names=("H100",),
                      speed_by_kind=SPEED, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive run times"):
        _gen(trace, pool=np.zeros(3), count=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 3000),
    seed=st.integers(0, 2**32 - 1),
    duration_s=st.floats(60.0, 1e8),
    gaps=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=300),
    mix=st.tuples(*(st.floats(0.0, 1.0) for _ in range(3))).filter(lambda m: sum(m) > 0.01),
)
def test_property_any_count_seed_gives_valid_sorted_table(count, seed, duration_s, gaps, mix):
    arrivals = np.cumsum(gaps)
    lengths = np.random.default_rng(seed).lognormal(0, 2, arrivals.size)
    spec = JobGenerator(count=count, kind_mix=dict(zip(JOB_KINDS, mix)))
    t = generate_jobs(spec, arrivals_h=arrivals, lengths_h=lengths, duration_s=duration_s, type_names=TYPES,
                      speed_by_kind=SPEED, rng=np.random.default_rng(seed))
    t.validate()
    assert len(t) == count
    assert np.all(np.diff(t.arrival_s) >= 0) and t.arrival_s.min() >= 0 and t.arrival_s.max() < duration_s


# --- jobs_to_table ------------------------------------------------------------------------------------

def _job(job_id: str, **kw) -> Job:
    base = dict(job_id=job_id, kind="fine-tuning", arrival=T0 + timedelta(hours=1), work_acc_h=8.0)
    return Job(**{**base, **kw})


def test_jobs_to_table_with_throughput_override():
    jobs = [
        _job("a", throughput={"a100": 0.5}, deadline=T0 + timedelta(hours=5), gang_min=2, gang_max=4),
        _job("b", kind="batch-inference", arrival=datetime(2023, 3, 6, 2)),  # naive = UTC
        _job("c", kind="pre-training", throughput={"H100": 0.0}, interruptible=False),
    ]
    t = jobs_to_table(jobs, start=T0, type_names=TYPES, default_speed_by_kind=SPEED)
    t.validate()
    assert list(t.job_id) == ["a", "b", "c"]
    assert np.allclose(t.speed, [[1.0, 0.5], SPEED[2], [0.0, 0.32]])
    assert np.allclose(t.arrival_s, [3600, 7200, 3600])
    assert t.deadline_s[0] == 5 * 3600 and np.isinf(t.deadline_s[1])
    assert list(t.kind) == [JOB_KINDS.index(JobKind(k)) for k in ("fine-tuning", "batch-inference", "pre-training")]
    assert t.gang_min[0] == 2 and t.gang_max[0] == 4 and not t.interruptible[2]


def test_jobs_to_table_unknown_type_and_early_arrival():
    with pytest.raises(ValueError, match=r"job 'x'.*'TPUv5'"):
        jobs_to_table([_job("x", throughput={"TPUv5": 1.0})], start=T0, type_names=TYPES,
                      default_speed_by_kind=SPEED)
    with pytest.raises(ValueError, match=r"job 'y'.*before"):
        jobs_to_table([_job("y", arrival=T0 - timedelta(hours=1))], start=T0, type_names=TYPES,
                      default_speed_by_kind=SPEED)
    empty = jobs_to_table([], start=T0, type_names=TYPES, default_speed_by_kind=SPEED)
    empty.validate()
    assert len(empty) == 0 and empty.speed.shape == (0, 2)


# --- shape_demand -------------------------------------------------------------------------------------

REGIONS = {"us-west2": 100.0, "europe-west3": 40.0, "asia-northeast1": 10.0}


@pytest.fixture(scope="module")
def conv_times() -> np.ndarray:
    t = pd.to_datetime(_data("load_azure_llm")(kind="conv")["time"], utc=True)
    return (t - t.min()).dt.total_seconds().to_numpy()


def _demand(times, *, slot_s=3600, weeks=4, seed=0, regions=None, **spec):
    slots = pd.date_range(T0, periods=int(weeks * WEEK_S // slot_s), freq=f"{slot_s}s", tz="UTC")
    regions = regions or REGIONS
    return shape_demand(
        "chat", DemandSpec(peak_requests_per_s=regions, **spec), request_times_s=times, slot_starts=slots,
        slot_duration_s=slot_s, region_utc_offset_h={r: region_utc_offset_h(r) for r in regions},
        rng=np.random.default_rng(seed),
    ), slots


def _local(slots: pd.DatetimeIndex, region: str) -> pd.DatetimeIndex:
    return (slots + pd.Timedelta(hours=region_utc_offset_h(region)) + pd.Timedelta(minutes=30)).tz_localize(None)


def test_demand_peak_equals_requested(conv_times):
    d, slots = _demand(conv_times)
    assert d.service == "chat" and d.regions == tuple(REGIONS)
    assert d.requests_per_s.shape == (3, len(slots))
    assert np.allclose(d.requests_per_s.max(axis=1), list(REGIONS.values()))
    assert np.all(d.requests_per_s > 0)


def test_demand_diurnal_and_weekend(conv_times):
    d, slots = _demand(conv_times)
    for r, region in enumerate(d.regions):
        local = _local(slots, region)
        rate = d.requests_per_s[r]
        weekday = local.day_of_week < 5
        afternoon = rate[weekday & (local.hour >= 15) & (local.hour < 18)].mean()
        early = rate[weekday & (local.hour == 4)].mean()
        assert afternoon > 1.5 * early, region
        assert rate[~weekday].mean() < 0.9 * rate[weekday].mean(), region
        by_hour = pd.Series(rate[weekday]).groupby(local.hour[weekday]).mean()
        assert 14 <= by_hour.idxmax() <= 19 and 2 <= by_hour.idxmin() <= 7, region


def test_demand_short_slots_fluctuate_more(conv_times):
    flat = dict(diurnal_amplitude_frac=0.0, weekend_factor=1.0, regions={"us-west2": 1.0})
    cv5 = _cv(_demand(conv_times, slot_s=300, weeks=1, **flat)[0].requests_per_s[0])
    cv60 = _cv(_demand(conv_times, slot_s=3600, weeks=1, **flat)[0].requests_per_s[0])
    assert cv5 > 1.5 * cv60 > 0


def test_demand_deterministic_for_seed(conv_times):
    a, b, c = (_demand(conv_times, seed=s, weeks=1)[0].requests_per_s for s in (5, 5, 6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_demand_mooncake_and_edge_cases():
    ts = _data("load_mooncake")(kind="conversation")["timestamp_s"].to_numpy()
    d, _ = _demand(ts - ts.min(), weeks=1, regions={"us-east4": 5.0, "europe-west2": 0.0})
    assert np.isclose(d.requests_per_s[0].max(), 5.0) and np.all(d.requests_per_s[1] == 0)
    assert np.allclose(minute_ratios(np.array([1.0, 2.0])), 1.0)  # under a minute: flat
    assert minute_ratios(np.arange(0, 600.0, 0.5)).mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no UTC offset"):
        shape_demand("x", DemandSpec(peak_requests_per_s={"mars-1": 1.0}), request_times_s=ts,
                     slot_starts=pd.date_range(T0, periods=3, freq="1h"), slot_duration_s=3600,
                     region_utc_offset_h={}, rng=np.random.default_rng(0))


def test_region_utc_offsets():
    assert region_utc_offset_h("us-west2") == -8 and region_utc_offset_h("europe-west3") == 1
    assert region_utc_offset_h("asia-northeast1") == 9 and region_utc_offset_h("asia-south1") == 5.5
    assert region_utc_offset_h("US-East4-c") == -5
    regions = _data("load_region_zone_map")()
    for region in regions:
        assert -12 <= region_utc_offset_h(region) <= 14
    with pytest.raises(ValueError, match="unknown region 'mars-1'"):
        region_utc_offset_h("mars-1")


# --- build (loads traces and the catalog) -------------------------------------------------------------

def _catalog() -> dict:
    try:
        import gridshift.catalog.throughput  # noqa: F401
        from gridshift.catalog import load_catalog
    except ImportError as e:  # pragma: no cover - only while gridshift.catalog is being written
        pytest.skip(f"gridshift.catalog not available yet: {e}")
    return load_catalog()


def _scenario(**workloads) -> Scenario:
    return Scenario.model_validate({
        "name": "t", "seed": 11,
        "time_range": {"start": T0, "end": T0 + timedelta(days=7)},
        "zones": [{"id": "DE-LU"}],
        "sites": [{"name": "fra", "zone": "DE-LU", "region": "europe-west3", "power_cap_mw": 10,
                   "pools": [{"accelerator": "H100", "count": 64}, {"accelerator": "A100", "count": 64}]}],
        "workloads": workloads,
    })


def test_build_jobs_generated_and_inline():
    from gridshift.workloads import build_jobs

    catalog = _catalog()
    _data("load_gaia")
    inline = [{"job_id": "mine", "kind": "pre-training", "arrival": T0 + timedelta(hours=2), "work_acc_h": 64,
               "throughput": {"a100": 0.25}}]
    sc = _scenario(jobs=inline, generate={"count": 500, "reference_accelerator": "H100"})
    t = build_jobs(sc, TYPES, catalog)
    t.validate()
    assert len(t) == 501 and np.all(np.diff(t.arrival_s) >= 0) and t.arrival_s.max() < 7 * 86400
    assert _same(t, build_jobs(sc, TYPES, catalog))
    mine = int(np.flatnonzero(t.job_id == "mine")[0])
    assert np.allclose(t.speed[mine], [1.0, 0.25])
    gen = t.job_id != "mine"
    a100, h100 = catalog["A100"], catalog["H100"]
    pt = gen & (t.kind == JOB_KINDS.index(JobKind.PRE_TRAINING))
    bi = gen & (t.kind == JOB_KINDS.index(JobKind.BATCH_INFERENCE))
    assert np.allclose(t.speed[pt, 1], a100.peak_bf16_tflops / h100.peak_bf16_tflops)
    assert np.allclose(t.speed[bi, 1], a100.hbm_tb_per_s / h100.hbm_tb_per_s)
    assert np.all(t.speed[gen, 0] == 1.0)
    other = build_jobs(_scenario(jobs=inline, generate={"count": 500, "reference_accelerator": "H100"})
                       .model_copy(update={"seed": 12}), TYPES, catalog)
    assert not np.array_equal(other.arrival_s, t.arrival_s)
    philly = build_jobs(_scenario(generate={"count": 300, "length_trace": "philly"}), TYPES, catalog)
    philly.validate()
    assert len(philly) == 300


def test_build_jobs_errors_name_the_field():
    from gridshift.workloads import build_jobs

    catalog = _catalog()
    with pytest.raises(ScenarioError, match=r"workloads.generate.reference_accelerator.*'NoSuchGPU'"):
        build_jobs(_scenario(generate={"count": 5, "reference_accelerator": "NoSuchGPU"}), TYPES, catalog)
    bad = [{"job_id": "j", "kind": "fine-tuning", "arrival": T0, "work_acc_h": 1, "throughput": {"TPU": 1}}]
    with pytest.raises(ScenarioError, match=r"field 'workloads.jobs'.*job 'j'.*'TPU'") as info:
        build_jobs(_scenario(jobs=bad), TYPES, catalog)
    assert "\n" not in str(info.value)


def test_build_demands():
    from gridshift.workloads import build_demands

    _data("load_azure_llm")
    svc = {"name": "chat", "latency_slo_ms": 100,
           "profiles": {"H100": {"requests_per_s_per_accelerator": 2, "power_w_per_accelerator": 600}},
           "demand": {"trace": "azure-llm/code", "peak_requests_per_s": {"europe-west3": 50.0}}}
    moon = {**svc, "name": "kimi", "demand": {"trace": "mooncake/synthetic", "peak_requests_per_s": {"us-west2": 7.0}}}
    sc = _scenario(services=[svc, moon])
    slots = pd.date_range(T0, periods=sc.n_slots, freq="1h", tz="UTC")
    out = build_demands(sc, slots)
    assert [d.service for d in out] == ["chat", "kimi"]
    assert np.isclose(out[0].requests_per_s.max(), 50.0) and np.isclose(out[1].requests_per_s.max(), 7.0)
    assert np.array_equal(out[0].requests_per_s, build_demands(sc, slots)[0].requests_per_s)
    bad = _scenario(services=[{**svc, "demand": {"peak_requests_per_s": {"mars-1": 1.0}}}])
    with pytest.raises(ScenarioError, match=r"workloads.services\[0\].demand.peak_requests_per_s.*mars-1"):
        build_demands(bad, slots)
