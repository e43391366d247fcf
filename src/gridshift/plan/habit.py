"""Do no harm: a job with a habitual start (``JobTable.nominal_start_s``, e.g. a recurring job's nominal
time) starts at it unless the forecast says, with its uncertainty, that the planner's start is clearly better.

For a habit job not yet started, ``mpc`` compares the forecast-expected unit cost (t CO2/MWh, $/MWh …, the
scenario's objective) over the job's run from the start its plan chose, ``E[c_s]``, with the same from the
nominal start, ``E[c_n]``. It shifts only when the expected gain clears

    ``E[c_n] − E[c_s]  >  habit_z · σ  +  habit_margin · E[c_n]``

where ``σ = sqrt(σ_n² + σ_s²)`` is the spread of the difference (the two runs' forecast errors taken as
independent, a cautious choice when they are correlated). The spread is, by default, the root-mean-square error
per site and lead time of the planner's own past forecasts over the last two weeks (point forecasts as the
expectation; any forecaster, no extra cost), or the forecaster's conformal quantiles (``predict_quantiles``:
``(q90 − q10) / 2.563``, the expectation is ``q50``). A forecast with no error (``perfect``, or a forecaster
exactly right at every lead so far) is exact: any positive gain shifts and the margin does not apply. With no
spread known yet (fewer than 12 past forecasts at a lead), or a run beyond the horizon, the job keeps its habit.

The margin and ``z`` stand for what the plain comparison leaves out: the planner picks the best of many
forecast hours, so the picked hour's forecast is biased low (the winner's curse), and the errors are not normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Q_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9)
_Z90 = 2.0 * 1.2815515655446004  # q90 − q10 of a unit normal
_MIN_SAMPLES = 12  # past forecasts per lead before a residual spread is trusted
_KEEP = 14 * 24  # epochs of past forecasts kept for the residual spread


@dataclass
class HabitRecord:
    """What the rule did over a run."""

    jobs: set = field(default_factory=set)  # habit jobs it checked
    shifted: dict = field(default_factory=dict)  # job -> (claimed relative gain, claimed gain in objective units)
    kept: set = field(default_factory=set)  # jobs it held at (or moved to) their nominal start

    def stats(self, n_habit: int) -> dict[str, float]:
        rel = [v[0] for v in self.shifted.values()]
        return {
            "habit_jobs": n_habit,
            "habit_shifted": len(self.shifted),
            "habit_kept": len(self.kept - set(self.shifted)),
            # mean over habit jobs of the claimed saving against the nominal start (0 for jobs kept)
            "habit_expected_gain_frac": float(np.sum(rel) / n_habit) if n_habit else 0.0,
            # summed claimed saving in the objective's units (t CO2 for carbon, USD for cost)
            "habit_expected_gain": float(sum(v[1] for v in self.shifted.values())),
        }


class ResidualSpread:
    """RMS error per site and lead of past unit-cost forecasts against what happened."""

    def __init__(self) -> None:
        self.t: list[int] = []
        self.fc: list[np.ndarray] = []

    def add(self, t: int, uc_fc: np.ndarray) -> None:
        self.t.append(int(t))
        self.fc.append(uc_fc)
        if len(self.t) > _KEEP:
            self.t.pop(0)
            self.fc.pop(0)

    def sd(self, t: int, uc_actual: np.ndarray, lookback: int, H: int) -> np.ndarray:
        """``[S, H]`` spread (NaN where fewer than ``_MIN_SAMPLES`` past forecasts have come true);
        ``uc_actual[S, lookback + t + 1]`` the actual unit cost up to slot ``t``."""
        S = uc_actual.shape[0]
        sq, n = np.zeros((S, H)), np.zeros(H)
        for tk, f in zip(self.t, self.fc):
            m = min(H, f.shape[1], t - tk + 1)
            if m <= 0:
                continue
            e = f[:, :m] - uc_actual[:, lookback + tk: lookback + tk + m]
            sq[:, :m] += e ** 2
            n[:m] += 1
        out = np.where(n >= _MIN_SAMPLES, np.sqrt(sq / np.maximum(n, 1)), np.nan)
        ok = np.flatnonzero(n >= _MIN_SAMPLES)
        if ok.size and ok[-1] < H - 1:  # beyond the leads seen, the longest lead's spread holds
            out[:, ok[-1] + 1:] = out[:, ok[-1]][:, None]
        return out


def run_cost(uc: np.ndarray, sd: np.ndarray, site: int, start: int, n_slots: int) -> tuple[float, float]:
    """Expected unit cost and its spread over ``n_slots`` slots from slot ``start`` (relative to the forecast's
    first slot) at ``site``: the mean of the slots (errors within one run taken as fully correlated). NaN if
    the run goes beyond the forecast."""
    if start < 0 or start + n_slots > uc.shape[1]:
        return float("nan"), float("nan")
    sl = slice(start, start + n_slots)
    return float(uc[site, sl].mean()), float(sd[site, sl].mean())


def shift_pays(e_nom: float, sd_nom: float, e_alt: float, sd_alt: float, margin: float, z: float) -> tuple[bool, float]:
    """Whether starting at the alternative clearly beats the nominal start, and the expected gain."""
    gain = e_nom - e_alt
    if not (np.isfinite(e_nom) and np.isfinite(e_alt) and np.isfinite(sd_nom) and np.isfinite(sd_alt)):
        return False, gain
    sd = float(np.hypot(sd_nom, sd_alt))
    if sd <= 1e-12 * max(abs(e_nom), 1e-12):  # an exact forecast: any gain counts
        return gain > 0, gain
    return gain > z * sd + margin * abs(e_nom), gain
