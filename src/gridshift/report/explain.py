"""Why a job ran where and when it did, from a run's output directory (``gridshift explain``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from gridshift.errors import GridShiftError
from gridshift.model.time import S_PER_H


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise GridShiftError("missing output file (was this directory written by `gridshift simulate`?)", file=path)
    return pd.read_parquet(path)


def policies_in(out_dir: Path) -> list[str]:
    root = Path(out_dir) / "timeseries"
    if not root.is_dir():
        raise GridShiftError("not a gridshift output directory (no timeseries/)", file=out_dir)
    return sorted(p.name for p in root.iterdir() if (p / "jobs.parquet").is_file())


def explain_job(out_dir: Path, job_id: str, policy: str) -> list[str]:
    """Lines of explanation for ``job_id`` under ``policy``."""
    pdir = Path(out_dir) / "timeseries" / policy
    jobs = _read(pdir / "jobs.parquet")
    row = jobs[jobs["job_id"] == job_id]
    if row.empty:
        raise GridShiftError(f"no job '{job_id}' in this run", file=pdir / "jobs.parquet", field="job_id")
    job = row.iloc[0]
    sites = _read(pdir / "sites.parquet")
    pl_path = pdir / "placements.parquet"
    pl = pd.read_parquet(pl_path) if pl_path.is_file() else pd.DataFrame(columns=["time", "job_id", "site"])
    pl = pl[pl["job_id"] == job_id]
    slot = sites["time"].drop_duplicates().sort_values()
    slot_h = (slot.iloc[1] - slot.iloc[0]).total_seconds() / S_PER_H if len(slot) > 1 else 1.0
    lines = [f"{job_id} ({job['kind']}, tenant {job['tenant']}): {job['work_acc_h']:.2f} accelerator-hours, "
             f"arrived {job['arrival']:%Y-%m-%d %H:%M} UTC, "
             + (f"due {job['deadline']:%Y-%m-%d %H:%M} UTC" if pd.notna(job["deadline"]) else "no deadline")]
    if pl.empty:
        lines.append(f"under '{policy}' it never ran in the simulated period ({job['done_acc_h']:.2f} done).")
        return lines
    done = pd.notna(job["completion"])
    end = job["completion"] if done else slot.iloc[-1]
    status = (f"finished {job['completion']:%Y-%m-%d %H:%M} UTC after {job['jct_h']:.1f} h" if done
              else "did not finish in the simulated period")
    if bool(job["missed_deadline"]):
        status += ", missing its deadline"
        if done:
            status += f" by {(job['completion'] - job['deadline']).total_seconds() / S_PER_H:.1f} h"
    lines.append(f"under '{policy}' it first ran {job['first_start']:%Y-%m-%d %H:%M} UTC and {status}; "
                 f"{job['preemptions']} pause(s); {job['energy_mwh'] * 1000:.1f} kWh, {job['carbon_t'] * 1000:.1f} kg CO2.")
    use = pl.groupby(["site", "accelerator"], observed=True).agg(slots=("time", "size"), gang=("gang", "mean"),
                                                  cap=("power_cap_frac", "mean")).reset_index()
    lines.append("where: " + "; ".join(
        f"{r.site} on {r.accelerator} ×{r.gang:.0f} for {r.slots * slot_h:.1f} h at {r.cap:.0%} power"
        for r in use.itertuples()))
    # signals it met versus the rest of its window, at the sites it used and elsewhere
    win_end = job["deadline"] if pd.notna(job["deadline"]) else end
    window = sites[(sites["time"] >= job["arrival"].floor("h")) & (sites["time"] < max(win_end, end))]
    ran = sites.merge(pl[["time", "site"]], on=["time", "site"])
    ran_ci, ran_pr = ran["carbon_g_per_kwh"].mean(), ran["price_usd_per_mwh"].mean()
    for site in use["site"].unique():
        w = window[window["site"] == site]
        lines.append(f"at {site} ({w['zone'].iloc[0] if len(w) else '?'}) its window averaged "
                     f"{w['carbon_g_per_kwh'].mean():.0f} g/kWh and {w['price_usd_per_mwh'].mean():.1f} $/MWh; "
                     f"the slots it ran in averaged {ran.loc[ran['site'] == site, 'carbon_g_per_kwh'].mean():.0f} g/kWh "
                     f"and {ran.loc[ran['site'] == site, 'price_usd_per_mwh'].mean():.1f} $/MWh.")
    others = window[~window["site"].isin(use["site"])]
    if len(others):
        best = others.groupby("site")["carbon_g_per_kwh"].mean().sort_values()
        lines.append("other sites in its window: " + ", ".join(f"{s} {v:.0f} g/kWh" for s, v in best.items()))
    # what bound it: waiting slots at its sites that were at their power cap or out of accelerators
    first_slot = job["arrival"].ceil(f"{int(round(slot_h * S_PER_H))}s")
    waited = window[(window["time"] >= first_slot) & (window["time"] < job["first_start"])
                    & window["site"].isin(use["site"])]
    reasons = []
    if len(waited):
        at_cap = waited["facility_power_mw"] >= 0.98 * waited["power_cap_mw"]
        full = waited["busy_accelerators"] + waited["serving_accelerators"] >= waited["total_accelerators"] - 0.5
        if at_cap.any():
            reasons.append(f"its site was at its power cap in {int(at_cap.sum())} of the {len(waited)} site-slots it waited")
        if (full & ~at_cap).any():
            reasons.append(f"its pool was fully busy in {int((full & ~at_cap).sum())} site-slots it waited")
        if not reasons:
            saved = waited["carbon_g_per_kwh"].mean() - ran_ci
            reasons.append(f"it was deferred by choice: the hours it waited averaged {waited['carbon_g_per_kwh'].mean():.0f} "
                           f"g/kWh, {saved:+.0f} g/kWh against the hours it ran ({ran_ci:.0f} g/kWh)")
    if pd.notna(job["deadline"]) and done and (job["deadline"] - job["completion"]).total_seconds() < 2 * slot_h * S_PER_H:
        reasons.append("its deadline bound: it finished within two slots of it")
    if not reasons:
        reasons.append(f"nothing held it back: it started in its first slot (average {ran_ci:.0f} g/kWh, {ran_pr:.1f} $/MWh)")
    lines.append("why: " + "; ".join(reasons) + ".")
    lines += saving_lines(out_dir, policy, job)
    return lines


def _amount(v: float, unit: str) -> str:
    return f"{v * 1000:+.2f} kg CO2" if unit.startswith("t CO2") else f"{v:+,.2f} {unit}"


def saving_lines(out_dir: Path, policy: str, job: pd.Series) -> list[str]:
    """The job's saving against each reference with its parts, beside the jobs' own and the site's saving of
    the run (``metrics.json``); nothing when the run has no reference."""
    path = Path(out_dir) / "metrics.json"
    m = json.loads(path.read_text()).get("policies", {}).get(policy, {}) if path.is_file() else {}
    unit = (m.get("savings") or {}).get("unit", "")
    out = []
    for ref, label in (("asap", "asap"), ("nominal", "its nominal start")):
        col = f"saving_vs_{ref}"
        if col not in job.index or policy == ref:
            continue
        total = job[col]
        if total is None or (isinstance(total, float) and math.isnan(total)):
            continue
        parts = ", ".join(f"{name} {_amount(job[f'{col}_{key}'], unit)}" for key, name in
                          (("timing", "timing/placement"), ("energy", "energy"), ("work_left", "work left")))
        line = f"saving vs {label}: this job {_amount(total, unit)} ({parts})"

        def pct(prefix: str, ref: str = ref) -> str:
            k = f"{prefix}saving_vs_{ref}"
            if m.get(f"{k}_frac") is None:
                return "?"
            return (f"{m[f'{k}_frac']:+.2%} (timing/placement {m[f'{k}_timing_frac']:+.2%}, "
                    f"energy {m[f'{k}_energy_frac']:+.2%})")

        line += f"; all the run's jobs {pct('jobs_')}; the site {pct('')} (idle and host power of every accelerator)."
        out.append(line)
    return out
