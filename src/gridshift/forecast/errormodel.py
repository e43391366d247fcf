"""A lead-time error model for studies: the true series plus errors that grow with lead time.

Fitted from a backtest (:meth:`LeadErrorModel.fit`): per lead time ``h`` the bias and the standard deviation
of the forecast error, relative to the series' mean absolute level, and ``rho``, the correlation of the
errors at consecutive lead times of one forecast. :class:`LeadErrorReplay` (``make_forecaster("lead-error")``)
then forecasts ``y[t + h] + level · (bias[h] + sigma[h] · e_h)`` where ``e`` is an AR(1) path over the lead
times (coefficient ``rho``, unit variance), drawn afresh for each origin from a seed and the origin's slot, so
a replay is reproducible. Lead 0 is exact. Unlike flat Gaussian noise, a near-term slot is forecast far
better than one a day ahead — as with real forecasts.

The default profile (``DEFAULT_SIGMA_REL`` …) is the median over the 16 carbon-intensity zones of the
``blend`` model's errors in the 2023 backtest (``benchmarks/results/forecast.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast.interface import Forecast, as_2d
from gridshift.forecast.simple import Perfect

# median over the 16 zones of the blend's carbon-intensity error sd / mean level, leads 0..48 h
DEFAULT_SIGMA_REL = (0, 0.031, 0.048, 0.06, 0.067, 0.073, 0.077, 0.079, 0.081, 0.082, 0.083, 0.084, 0.085, 0.085,
                     0.085, 0.086, 0.086, 0.086, 0.086, 0.087, 0.087, 0.087, 0.088, 0.088, 0.088, 0.091, 0.093,
                     0.095, 0.097, 0.099, 0.1, 0.101, 0.102, 0.102, 0.103, 0.103, 0.103, 0.103, 0.104, 0.104, 0.104,
                     0.104, 0.104, 0.104, 0.105, 0.105, 0.105, 0.105, 0.105)
DEFAULT_RHO = 0.957


@dataclass
class LeadErrorModel:
    sigma_rel: list[float]  # per lead (slot) 0..H-1, error sd / mean |y|
    bias_rel: list[float]  # per lead, mean error (forecast − actual) / mean |y|
    rho: float  # correlation of errors at consecutive leads

    @classmethod
    def fit(cls, y: np.ndarray, fc: Forecast, zone_row: int = 0) -> LeadErrorModel:
        """Fit from a backtest's forecasts ``fc`` of series ``y`` (row ``zone_row``)."""
        y = as_2d(y)[zone_row]
        n = y.size
        o = fc.origins
        H = fc.point.shape[2]
        idx = o[:, None] + np.arange(H)[None, :]
        ok = (idx < n).all(axis=1)
        if ok.sum() < 10:
            raise PlanError("too few complete forecasts to fit a lead-time error model", field="origins")
        e = fc.point[zone_row, ok] - y[idx[ok]]  # [K, H]
        level = max(float(np.abs(y).mean()), 1e-12)
        sd = e.std(axis=0) / level
        sd[0] = 0.0
        bias = e.mean(axis=0) / level
        bias[0] = 0.0
        c = [np.corrcoef(e[:, j], e[:, j + 1])[0, 1] for j in range(1, H - 1) if e[:, j].std() > 0 and e[:, j + 1].std() > 0]
        rho = float(np.clip(np.nanmedian(c), 0.0, 0.999)) if c else 0.0
        return cls([float(x) for x in sd], [float(x) for x in bias], rho)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LeadErrorModel:
        try:
            return cls([float(x) for x in d["sigma_rel"]], [float(x) for x in d.get("bias_rel", [])] or
                       [0.0] * len(d["sigma_rel"]), float(d["rho"]))
        except (KeyError, TypeError, ValueError) as e:
            raise PlanError(f"bad lead-time error model: {e}", field="errormodel") from e

    def paths(self, K: int, H: int, rng: np.random.Generator) -> np.ndarray:
        """Relative error paths ``[K, H]`` (lead 0 exact; beyond the fitted leads the last value holds)."""
        sd = np.asarray(self.sigma_rel, float)
        b = np.asarray(self.bias_rel, float)
        sd = np.concatenate([sd, np.full(max(0, H - sd.size), sd[-1])])[:H]
        b = np.concatenate([b, np.full(max(0, H - b.size), b[-1] if b.size else 0.0)])[:H]
        z = rng.standard_normal((K, H))
        e = np.empty((K, H))
        e[:, 0] = z[:, 0]
        s = np.sqrt(1 - self.rho ** 2)
        for j in range(1, H):
            e[:, j] = self.rho * e[:, j - 1] + s * z[:, j]
        out = b[None] + sd[None] * e
        out[:, 0] = 0.0
        return out


class LeadErrorReplay(Perfect):
    """The actual future with lead-dependent errors (the planner hands it the series, like ``perfect``).
    Parameters: ``sigma_rel`` / ``bias_rel`` per lead hour, ``rho``, ``seed``; defaults: the 2023 profile."""

    name = "lead-error"

    def __init__(self, actual: np.ndarray | None = None, sigma_rel=DEFAULT_SIGMA_REL, bias_rel=None,
                 rho: float = DEFAULT_RHO, seed: int = 0) -> None:
        super().__init__(actual)
        sig = [float(x) for x in sigma_rel]
        if not sig or min(sig) < 0 or not 0 <= rho < 1:
            raise PlanError("sigma_rel must be non-negative values and 0 <= rho < 1", field="forecast")
        self.model = LeadErrorModel(sig, [float(x) for x in bias_rel] if bias_rel else [0.0] * len(sig), float(rho))
        self.seed = int(seed)

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        truth = super().predict(history, horizon, t_abs=t_abs, slots_per_h=slots_per_h)
        Z = truth.shape[0]
        # the fitted profile is per lead hour: spread it over slots
        m = self.model
        per_slot = LeadErrorModel(list(np.repeat(m.sigma_rel, slots_per_h)[slots_per_h - 1:]),
                                  list(np.repeat(m.bias_rel, slots_per_h)[slots_per_h - 1:]), m.rho ** (1 / slots_per_h))
        rng = np.random.default_rng([self.seed, int(t_abs)])
        level = np.abs(history).mean(axis=1, keepdims=True)
        return truth + level * per_slot.paths(Z, horizon, rng)
