"""Do no harm: a job with a habitual start (``JobTable.nominal_start_s``, e.g. a recurring job's nominal
time) starts at it unless the forecast says, with its uncertainty, that the planner's start is clearly better.

For a habit job not yet started, ``mpc`` compares the forecast-expected unit cost (t CO2/MWh, $/MWh …, the
scenario's objective) over the job's run from the start its plan chose, ``E[c_s]``, with the same from the
nominal start, ``E[c_n]``. It shifts only when the expected gain clears

    ``E[c_n] − E[c_s]  >  habit_z · σ  +  habit_margin · E[c_n]``

By default (``habit_spread="pair"``) the move is judged by the planner's own track record at ranking exactly
this choice: on each of the last ``habit_days`` days, the forecast issued at the same hour of the day (so at the
same leads) predicted the gain ``p_k`` of the same pair of hours (habit run minus alternative run), and the gain
``y_k`` that came true is known once both runs have happened. A line fitted through those days,
``y ≈ α + β p`` (``β`` clipped to [0, 1]: a forecast gain is never worth more than itself), says what a forecast
gain has been worth for this very choice — it shrinks the forecast towards what the pair usually gains when
the forecaster ranks these hours poorly (which also pays for the winner's curse: today's alternative is the
lowest of many forecast hours), and keeps it where the forecaster has ranked them well. The job shifts only if

    ``α + β · gain − habit_z · s  >  habit_margin · E[c_n]``

with ``s`` the spread of ``y`` about the line (the error of the *difference*, with nothing averaged over other
hours of the day). With fewer than ``MIN_PAIRS`` such days known, the job keeps its habit; if every past
prediction of this gain was exact, any positive gain shifts.

The other spreads (``habit_spread`` "residual" or "quantiles") use ``σ = sqrt(σ_n² + σ_s²)`` in the first
inequality (the two runs' forecast errors taken as independent): the root-mean-square error per site and lead
time of the planner's own past forecasts over the last two weeks, or the forecaster's conformal quantiles
(``predict_quantiles``: ``(q90 − q10) / 2.563``, the expectation is ``q50``). With no spread known yet (fewer than
12 past forecasts at a lead), or a run beyond the horizon, the job keeps its habit. A forecast with no error
(``perfect``) is exact under every spread: any positive gain shifts and the margin does not apply.

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
MIN_PAIRS = 5  # past days with a known error of the same move before the pair rule may shift


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


class PairTrack:
    """The planner's past unit-cost forecasts by issue slot, to judge a move by how well the forecast issued at
    the same hour of earlier days predicted the gain between the same two hours of the day."""

    def __init__(self, day_slots: int, days: int) -> None:
        self.day_slots, self.days = int(day_slots), int(days)
        self.fc: dict[int, np.ndarray] = {}

    def add(self, t: int, uc_fc: np.ndarray) -> None:
        self.fc[int(t)] = uc_fc
        old = int(t) - (self.days + 1) * self.day_slots
        for k in [k for k in self.fc if k < old]:
            del self.fc[k]

    def record(self, t_fc: int, site: int, nom: int, alt: int, n_slots: int, uc_actual: np.ndarray,
               lookback: int) -> tuple[np.ndarray, np.ndarray]:
        """Forecast and actual gains ``c(nom) − c(alt)`` of runs of ``n_slots`` slots, one per earlier day whose
        analogue (issued ``d`` days before ``t_fc``, runs ``d`` days before ``nom`` and ``alt``) has come true in
        ``uc_actual[S, lookback + now + 1]``."""
        ln, la, out = nom - t_fc, alt - t_fc, []
        for d in range(1, self.days + 1):
            f = self.fc.get(t_fc - d * self.day_slots)
            if f is None or min(ln, la) < 0 or max(ln, la) + n_slots > f.shape[1]:
                continue
            an, aa = lookback + nom - d * self.day_slots, lookback + alt - d * self.day_slots
            if min(an, aa) < 0 or max(an, aa) + n_slots > uc_actual.shape[1]:
                continue
            pred = f[site, ln: ln + n_slots].mean() - f[site, la: la + n_slots].mean()
            act = uc_actual[site, an: an + n_slots].mean() - uc_actual[site, aa: aa + n_slots].mean()
            out.append((pred, act))
        a = np.asarray(out, dtype=float).reshape(-1, 2)
        return a[:, 0], a[:, 1]


def pair_shift_pays(e_nom: float, gain: float, pred: np.ndarray, act: np.ndarray, margin: float,
                    z: float) -> tuple[bool, float]:
    """Whether a move whose forecast gain is ``gain`` clearly pays, given the same move's past forecast gains
    ``pred`` and the gains that came true ``act``; returns the decision and the expected gain ``α + β · gain``."""
    if not (np.isfinite(e_nom) and np.isfinite(gain)) or pred.size < MIN_PAIRS \
            or not (np.isfinite(pred).all() and np.isfinite(act).all()):
        return False, gain
    if np.all(np.abs(pred - act) <= 1e-12 * max(abs(e_nom), 1e-12)):  # exact on this move so far
        return gain > 0, gain
    dp = pred - pred.mean()
    var = float(dp @ dp)
    beta = float(np.clip(dp @ (act - act.mean()) / var, 0.0, 1.0)) if var > 1e-12 * max(e_nom ** 2, 1e-12) else 0.0
    alpha = float(act.mean() - beta * pred.mean())
    res = act - alpha - beta * pred
    s = float(np.sqrt(res @ res / max(res.size - 2, 1)))
    mu = alpha + beta * gain
    return mu - z * s > margin * abs(e_nom), mu
