"""Every saving split into what timing and placement did and what energy did.

A saving is measured against a reference run of the same world: ``asap`` (every job as soon as it can), or
``nominal`` (every job with a habitual start at that start, full power; :mod:`gridshift.plan.nominal`). For
a set of jobs, or for the whole site, with ``C`` the objective of the energy drawn (t CO2 for ``carbon``, USD
for ``cost``, USD with carbon priced in for ``weighted``), ``E`` that energy (facility MWh), ``u = C / E`` its
average objective per MWh, and ``W`` the value of the work left unfinished at the end (the terminal value of
:mod:`gridshift.sim.score`):

    saving    = (C_ref + W_ref) − (C_pol + W_pol)
    timing    = E_pol · u_ref − C_pol        the policy's energy priced at the reference's hours and places
                                             minus the same energy at its own: the intensity (price) effect
                                             at equal energy — when and where the work ran
    energy    = C_ref − E_pol · u_ref        = (E_ref − E_pol) · u_ref: the energy difference priced at the
                                             reference's average — power caps, accelerator type, restarts
    work_left = W_ref − W_pol                work deferred past the end of the period, at its terminal value

and ``timing + energy + work_left = saving`` exactly (up to floating-point rounding), by construction.

The jobs' own saving is split job by job (``u_ref`` per job: the average of the hours and sites where the
reference ran that job) and summed, so moving a job to a cleaner hour or a cleaner site is timing, and
running it on less energy is energy. A job the reference never ran (``E_ref = 0``) is priced at the
reference's average over all the jobs. The site's saving counts every accelerator's idle and host power and
the inference services as well; it is split on the fleet's totals (``u`` over all sites and slots), so
placement between sites is timing there too.

Pure array code; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridshift.model.scenario import Objective
from gridshift.plan.objective import unit_cost
from gridshift.sim.result import PolicyRun

PARTS = ("timing", "energy", "work_left")
OBJECTIVE_UNITS = {"carbon": "t CO2", "cost": "USD", "weighted": "USD (carbon priced in)"}


@dataclass(frozen=True)
class Split:
    """One saving in objective units: the reference's and the policy's values (work left included) and the
    three parts, which sum to ``total``."""

    reference: float
    policy: float
    timing: float
    energy: float
    work_left: float

    @property
    def total(self) -> float:
        return self.reference - self.policy

    def fractions(self) -> dict[str, float]:
        """The saving and its parts as fractions of the reference's value (0 when that is 0)."""
        ref = self.reference
        out = {"": self.total}
        out.update({f"_{k}": getattr(self, k) for k in PARTS})
        return {k: (v / ref if ref else 0.0) for k, v in out.items()}

    def as_dict(self) -> dict[str, float]:
        return {"reference": self.reference, "policy": self.policy, "total": self.total,
                **{k: getattr(self, k) for k in PARTS}}


def split_parts(c_ref, e_ref, c_pol, e_pol, w_ref=0.0, w_pol=0.0, u_fallback: float | None = None):
    """Element-wise ``(timing, energy, work_left)`` (arrays, objective units) of the saving
    ``(c_ref + w_ref) − (c_pol + w_pol)``; ``u_fallback`` prices elements the reference drew nothing for
    (default: the reference's overall average ``Σ c_ref / Σ e_ref``)."""
    c_ref, e_ref, c_pol, e_pol = (np.asarray(x, float) for x in (c_ref, e_ref, c_pol, e_pol))
    if u_fallback is None:
        tot_e = float(e_ref.sum())
        u_fallback = float(c_ref.sum()) / tot_e if tot_e > 0 else 0.0
    u_ref = np.divide(c_ref, e_ref, out=np.full(c_ref.shape, float(u_fallback)), where=e_ref > 0)
    energy = (e_ref - e_pol) * u_ref  # = C_ref − E_pol · u_ref; exactly 0 at equal energy
    timing = (c_ref - c_pol) - energy  # = E_pol · u_ref − C_pol; exactly 0 at the reference's hours
    work_left = np.asarray(w_ref, float) - np.asarray(w_pol, float) + np.zeros(c_ref.shape)
    return timing, energy, work_left


def job_objective(obj: Objective, carbon_t: np.ndarray, cost_usd: np.ndarray) -> np.ndarray:
    """Per job: the objective of the energy it drew (``unit_cost`` is linear in carbon and price, so the
    job's carbon in g/kWh·MWh units and its cost in USD give its objective exactly)."""
    return unit_cost(obj, np.asarray(carbon_t, float) * 1000.0, np.asarray(cost_usd, float))


def _site_totals(run: PolicyRun, obj: Objective) -> tuple[float, float]:
    ts = run.site_timeseries
    e = ts["energy_mwh"].to_numpy(float)
    uc = unit_cost(obj, ts["carbon_g_per_kwh"].to_numpy(float), ts["price_usd_per_mwh"].to_numpy(float))
    return float((uc * e).sum()), float(e.sum())


def _job_arrays(run: PolicyRun, obj: Objective, terminal: np.ndarray):
    j = run.jobs
    c = job_objective(obj, j["carbon_t"].to_numpy(float), j["cost_usd"].to_numpy(float))
    left = np.maximum(j["work_acc_h"].to_numpy(float) - j["done_acc_h"].to_numpy(float), 0.0)
    return c, j["energy_mwh"].to_numpy(float), left * terminal


def site_split(ref: PolicyRun, run: PolicyRun, obj: Objective, terminal: np.ndarray) -> Split:
    """The site's saving of ``run`` against ``ref``: every site, slot and accelerator, services included."""
    c_ref, e_ref = _site_totals(ref, obj)
    c_pol, e_pol = _site_totals(run, obj)
    w_ref = float(_job_arrays(ref, obj, terminal)[2].sum())
    w_pol = float(_job_arrays(run, obj, terminal)[2].sum())
    t, e, w = split_parts(np.array([c_ref]), np.array([e_ref]), np.array([c_pol]), np.array([e_pol]), w_ref, w_pol)
    return Split(c_ref + w_ref, c_pol + w_pol, float(t[0]), float(e[0]), float(w[0]))


def job_splits(ref: PolicyRun, run: PolicyRun, obj: Objective, terminal: np.ndarray) -> dict[str, np.ndarray]:
    """Per job (rows of ``run.jobs``, the same world as ``ref``): the saving and its three parts."""
    c_ref, e_ref, w_ref = _job_arrays(ref, obj, terminal)
    c_pol, e_pol, w_pol = _job_arrays(run, obj, terminal)
    t, e, w = split_parts(c_ref, e_ref, c_pol, e_pol, w_ref, w_pol)
    return {"reference": c_ref + w_ref, "policy": c_pol + w_pol, "timing": t, "energy": e, "work_left": w}


def jobs_split(parts: dict[str, np.ndarray], rows: np.ndarray | None = None) -> Split:
    """The jobs' own saving over ``rows`` (a mask or index; all jobs by default), from ``job_splits``."""
    sel = (lambda a: a) if rows is None else (lambda a: a[rows])
    return Split(*(float(sel(parts[k]).sum()) for k in ("reference", "policy", *PARTS)))


def add_attribution(runs: list[PolicyRun], references: dict[str, PolicyRun], obj: Objective,
                    terminal: np.ndarray, nominal_mask: np.ndarray | None = None) -> None:
    """Add to every run, for each reference run (``"asap"``, ``"nominal"``) given: the site's and the jobs'
    saving as fractions of the reference (``saving_vs_<ref>_frac`` and ``jobs_saving_vs_<ref>_frac`` with
    ``_timing``, ``_energy`` and ``_work_left`` parts), the absolute values under ``savings`` (objective
    units), and per-job columns ``saving_vs_<ref>`` (+ parts) in ``run.jobs``. Against ``nominal`` the jobs'
    saving covers the jobs with a nominal start (``nominal_mask``) only; their columns are NaN elsewhere."""
    for run in runs:
        savings = run.metrics.setdefault("savings", {"unit": OBJECTIVE_UNITS.get(obj.kind, obj.kind)})
        for name, ref in references.items():
            rows = nominal_mask if name == "nominal" else None
            site = site_split(ref, run, obj, terminal)
            per_job = job_splits(ref, run, obj, terminal)
            jobs = jobs_split(per_job, rows)
            for key, s in (("saving", site), ("jobs_saving", jobs)):
                for suffix, v in s.fractions().items():
                    run.metrics[f"{key}_vs_{name}{suffix}_frac"] = v
            savings[f"vs_{name}"] = {"site": site.as_dict(), "jobs": jobs.as_dict()}
            keep = np.ones(len(run.jobs), bool) if rows is None else np.asarray(rows, bool)
            run.jobs[f"saving_vs_{name}"] = np.where(keep, per_job["reference"] - per_job["policy"], np.nan)
            for k in PARTS:
                run.jobs[f"saving_vs_{name}_{k}"] = np.where(keep, per_job[k], np.nan)
