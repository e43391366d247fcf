"""The I/O edge of workloads: load traces via :mod:`gridshift.data`, relative throughput via
:mod:`gridshift.catalog`, and hand arrays to the pure builders in ``batch`` and ``inference``.

Random streams are independent and reproducible: generated jobs use ``default_rng([seed, 1])``, the demand
of service ``i`` uses ``default_rng([seed, 2, i])``, workday jobs of ``workloads.workday[i]`` use
``default_rng([seed, 3, i])`` (recurring jobs draw nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridshift.errors import CatalogError, ScenarioError
from gridshift.model.scenario import JobGenerator, Scenario
from gridshift.model.time import S_PER_H
from gridshift.model.workload import JOB_KINDS, JobTable, ServiceDemand
from gridshift.workloads.batch import generate_jobs, jobs_to_table
from gridshift.workloads.inference import region_utc_offset_h, shape_demand
from gridshift.workloads.templates import recurring_jobs, workday_jobs, zone

_GAIA_TRACES = {"gaia/pai-100k": "pai-100k", "gaia/azure-100k": "azure-100k", "gaia/mustang-100k": "mustang-100k"}
# Reference type for inline jobs when the scenario has no generator (the generator's default).
DEFAULT_REFERENCE = JobGenerator.model_fields["reference_accelerator"].default


def _seed(scenario: Scenario) -> int:
    """The scenario seed as a non-negative integer (numpy seed sequences reject negatives)."""
    return int(scenario.seed) % 2**64


def _lookup(catalog: dict[str, Any], name: str, field: str) -> Any:
    """Catalog entry by name or alias (``get_accelerator`` rules); ScenarioError naming ``field`` if absent."""
    from gridshift.catalog import get_accelerator

    try:
        return get_accelerator(name, catalog)
    except CatalogError as e:
        raise ScenarioError(e.message, field=field) from e


def speed_matrix(type_names: tuple[str, ...], catalog: dict[str, Any], reference: str, field: str) -> np.ndarray:
    """``[len(JOB_KINDS), n_types]`` throughput of each kind on each type relative to ``reference``."""
    from gridshift.catalog.estimate import relative_throughput

    ref = _lookup(catalog, reference, field)
    accs = [_lookup(catalog, name, "sites.pools.accelerator") for name in type_names]
    out = np.empty((len(JOB_KINDS), len(type_names)))
    for k, kind in enumerate(JOB_KINDS):
        for t, acc in enumerate(accs):
            out[k, t] = float(relative_throughput(acc, ref, kind.value))
    return out


def _generated(scenario: Scenario, type_names: tuple[str, ...], speed: np.ndarray) -> JobTable:
    from gridshift.data import load_gaia, load_philly_runtimes

    spec = scenario.workloads.generate
    assert spec is not None
    trace = load_gaia(trace=_GAIA_TRACES[spec.trace])
    pool = None
    if spec.length_trace == "philly":
        runtime_s = np.asarray(load_philly_runtimes(), dtype=np.float64)
        pool = runtime_s[np.isfinite(runtime_s) & (runtime_s > 0)] / S_PER_H
    try:
        return generate_jobs(
            spec,
            arrivals_h=trace["arrival_h"].to_numpy(dtype=np.float64),
            lengths_h=trace["length_h"].to_numpy(dtype=np.float64),
            duration_s=scenario.time_range.duration_s,
            type_names=type_names,
            speed_by_kind=speed,
            rng=np.random.default_rng([_seed(scenario), 1]),
            length_pool_h=pool,
        )
    except ValueError as e:
        raise ScenarioError(str(e), field="workloads.generate") from e


def _templated(scenario: Scenario, type_names: tuple[str, ...], catalog: dict[str, Any]) -> list[JobTable]:
    """Tables of ``workloads.recurring`` then ``workloads.workday``, each against its own reference type."""
    w, tr = scenario.workloads, scenario.time_range
    speeds: dict[str, np.ndarray] = {}
    out: list[JobTable] = []
    for group, specs in (("recurring", w.recurring), ("workday", w.workday)):
        for i, spec in enumerate(specs):
            field = f"workloads.{group}[{i}]"
            try:
                zone(spec.tz)
            except ValueError as e:
                raise ScenarioError(str(e), field=f"{field}.tz") from e
            ref = spec.reference_accelerator
            if ref not in speeds:
                speeds[ref] = speed_matrix(type_names, catalog, ref, f"{field}.reference_accelerator")
            common = dict(start=tr.start, end=tr.end, type_names=type_names, speed_by_kind=speeds[ref])
            try:
                if group == "recurring":
                    out.append(recurring_jobs(spec, **common))
                else:
                    out.append(workday_jobs(spec, **common, rng=np.random.default_rng([_seed(scenario), 3, i])))
            except ValueError as e:
                raise ScenarioError(str(e), field=field) from e
    return out


def build_jobs(scenario: Scenario, type_names: tuple[str, ...], catalog: dict[str, Any]) -> JobTable:
    """All batch jobs of a scenario — inline ``workloads.jobs``, generated ones, then recurring and workday
    jobs (``gridshift.workloads.templates``) — sorted by arrival (stable). ``type_names``: the scenario's
    accelerator types (speed columns); ``catalog``: name -> AcceleratorType (aliases resolved as
    ``get_accelerator`` does). Speeds not given by a job come from ``relative_throughput`` against the
    generator's ``reference_accelerator`` — also for inline jobs; without a generator the reference is its
    default (H100). Recurring and workday jobs use their own spec's ``reference_accelerator``. Raises
    ScenarioError naming the field."""
    type_names = tuple(type_names)
    gen = scenario.workloads.generate
    if gen is not None:
        reference, field = gen.reference_accelerator, "workloads.generate.reference_accelerator"
    else:
        reference, field = DEFAULT_REFERENCE, "workloads.jobs"
    tables: list[JobTable] = []
    if scenario.workloads.jobs or gen is not None:
        speed = speed_matrix(type_names, catalog, reference, field)
    if scenario.workloads.jobs:
        try:
            tables.append(
                jobs_to_table(
                    scenario.workloads.jobs,
                    start=scenario.time_range.start,
                    type_names=type_names,
                    default_speed_by_kind=speed,
                )
            )
        except ValueError as e:
            raise ScenarioError(str(e), field="workloads.jobs") from e
    if gen is not None:
        tables.append(_generated(scenario, type_names, speed))
    tables.extend(_templated(scenario, type_names, catalog))
    if not tables:
        return _empty(type_names)
    table = JobTable.concat(tables) if len(tables) > 1 else tables[0]
    ids, counts = np.unique(table.job_id.astype(str), return_counts=True)
    if np.any(counts > 1):
        raise ScenarioError(
            f"job id '{ids[counts > 1][0]}' is used more than once (inline, generated, recurring and workday jobs "
            f"share one id space; give recurring and workday templates distinct names)", field="workloads.jobs"
        )
    table = table.take(np.argsort(table.arrival_s, kind="stable"))
    try:
        table.validate()
    except ValueError as e:
        raise ScenarioError(str(e), field="workloads.jobs") from e
    return table


def _empty(type_names: tuple[str, ...]) -> JobTable:
    f, i = np.zeros(0), np.zeros(0, dtype=np.int32)
    return JobTable(
        job_id=np.zeros(0, dtype=object), kind=np.zeros(0, dtype=np.int8), tenant=np.zeros(0, dtype=object),
        priority=i, arrival_s=f, deadline_s=f.copy(), work_acc_h=f.copy(), gang_min=i.copy(), gang_max=i.copy(),
        speed=np.zeros((0, len(type_names))), interruptible=np.zeros(0, dtype=bool),
        checkpoint_overhead_s=f.copy(), restart_overhead_s=f.copy(), migratable=np.zeros(0, dtype=bool),
        data_move_gb=f.copy(), type_names=type_names,
    )


def request_times_s(trace: str) -> np.ndarray:
    """Request times (seconds from the trace's first request) of a DemandSpec trace name."""
    from gridshift.data import load_azure_llm, load_mooncake

    source, kind = trace.split("/", 1)
    if source == "azure-llm":
        t = pd.to_datetime(load_azure_llm(kind=kind)["time"], utc=True)
        s = ((t - t.min()).dt.total_seconds()).to_numpy(dtype=np.float64)
    elif source == "mooncake":
        s = load_mooncake(kind=kind)["timestamp_s"].to_numpy(dtype=np.float64)
        s = s - s.min()
    else:
        raise ValueError(f"unknown demand trace '{trace}'")
    return s


def build_demands(scenario: Scenario, slot_starts: pd.DatetimeIndex) -> list[ServiceDemand]:
    """Request rate per region and slot of every online service (one trace load per distinct trace)."""
    cache: dict[str, np.ndarray] = {}
    out = []
    for i, svc in enumerate(scenario.workloads.services):
        field = f"workloads.services[{i}].demand"
        if svc.demand.trace not in cache:
            cache[svc.demand.trace] = request_times_s(svc.demand.trace)
        offsets = {}
        for region in svc.demand.peak_requests_per_s:
            try:
                offsets[region] = region_utc_offset_h(region)
            except ValueError as e:
                raise ScenarioError(str(e), field=f"{field}.peak_requests_per_s") from e
        try:
            out.append(
                shape_demand(
                    svc.name,
                    svc.demand,
                    request_times_s=cache[svc.demand.trace],
                    slot_starts=slot_starts,
                    slot_duration_s=scenario.slot_duration_s,
                    region_utc_offset_h=offsets,
                    rng=np.random.default_rng([_seed(scenario), 2, i]),
                )
            )
        except ValueError as e:
            raise ScenarioError(str(e), field=field) from e
    return out
