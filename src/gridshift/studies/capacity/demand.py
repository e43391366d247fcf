"""Demand: tokens per day and training FLOP per month, and how a day of inference demand is shaped (the
busiest window of a request trace plus a daily and weekly cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridshift.studies.capacity.common import CapacityError, check_at_least


@dataclass(frozen=True)
class TraceShape:
    """How a day of inference demand is shaped, from an (hour-long) request trace plus a weekly cycle."""

    trace: str
    requests: int
    duration_s: float
    mean_generated_tokens: float  # per request
    mean_context_tokens: float  # per request
    window_s: float
    burst_peak_to_mean: float  # busiest window / mean, generated tokens, within the trace
    diurnal_amplitude_frac: float
    weekend_factor: float

    @property
    def weekly_peak_to_mean(self) -> float:
        """Busiest hour of the week / mean of the week: ``(1 + A) * max(1, w) * 7 / (5 + 2 w)``."""
        w = self.weekend_factor
        return (1.0 + self.diurnal_amplitude_frac) * max(1.0, w) * 7.0 / (5.0 + 2.0 * w)

    @property
    def peak_to_mean(self) -> float:
        return self.burst_peak_to_mean * self.weekly_peak_to_mean


def trace_shape(trace: str, times_s: np.ndarray, generated_tokens: np.ndarray, context_tokens: np.ndarray, *,
                window_s: float, diurnal_amplitude_frac: float, weekend_factor: float) -> TraceShape:
    """Peak-to-mean of a trace's generated-token rate over full windows of ``window_s``, plus its token mix.

    ``times_s``: request arrival times in seconds (any origin). A trace shorter than two windows has a
    burst factor of 1.
    """
    t = np.asarray(times_s, dtype=float)
    g = np.asarray(generated_tokens, dtype=float)
    c = np.asarray(context_tokens, dtype=float)
    if t.size == 0:
        raise CapacityError(f"trace '{trace}' has no requests")
    if window_s <= 0:
        raise CapacityError("burst window must be positive", field="burst_window_min")
    if not 0 <= diurnal_amplitude_frac < 1 or weekend_factor <= 0:
        raise CapacityError("diurnal amplitude must be in [0, 1) and the weekend factor positive")
    t = t - t.min()
    n = int(t.max() // window_s)
    if n >= 2:
        per = np.bincount((t // window_s).astype(np.int64), weights=g, minlength=n)[:n]
        burst = float(per.max() / per.mean()) if per.mean() > 0 else 1.0
    else:
        burst = 1.0
    return TraceShape(trace, int(t.size), float(t.max()), float(g.mean()), float(c.mean()), float(window_s), burst,
                      float(diurnal_amplitude_frac), float(weekend_factor))


@dataclass(frozen=True)
class Demand:
    tokens_per_day: float = 0.0  # generated tokens per day, averaged over a year
    training_flop_per_month: float = 0.0

    def check(self) -> None:
        check_at_least("tokens_per_day", self.tokens_per_day, 0.0)
        check_at_least("training_flop_per_month", self.training_flop_per_month, 0.0)
        if self.tokens_per_day == 0 and self.training_flop_per_month == 0:
            raise CapacityError("demand is zero: give tokens per day and/or training FLOP per month")
