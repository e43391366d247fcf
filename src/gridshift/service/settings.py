"""The API's limits and options (:class:`ApiSettings`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ApiSettings:
    """Limits and options of the API.

    ``rate_per_s`` and ``burst`` set each token's bucket; ``auth_failure_rate_per_s`` and
    ``auth_failure_burst`` limit failed authentications per client address. ``auth_cache_s`` keeps a
    checked token for that long (0 = check every request; a token revoked through the API is dropped at
    once, one revoked elsewhere within ``auth_cache_s``). ``pull_interval_s`` (None = off) pulls
    ``pull_zones``' registry signals on a clock, for ``[now - pull_interval_s, now + pull_horizon_s)``,
    reading the data ``pull_shift_s`` seconds earlier (to replay a past year as the present).
    ``signal_files_dir`` (None = off) lets an operator pull signals from CSV files in that directory.
    ``public_carbon_aware`` serves the Carbon Aware SDK–compatible ``/emissions/...`` routes without a token.
    """

    max_body_bytes: int = 1 << 20
    rate_per_s: float = 50.0
    burst: int = 100
    auth_failure_rate_per_s: float = 1.0
    auth_failure_burst: int = 20
    auth_cache_s: float = 2.0
    public_metrics: bool = False
    pull_interval_s: float | None = None
    pull_zones: tuple[str, ...] = ()
    pull_signals: tuple[str, ...] = ("carbon_g_per_kwh",)
    pull_horizon_s: float = 48 * 3600.0
    pull_shift_s: float = 0.0
    signal_files_dir: str | None = None
    public_carbon_aware: bool = False

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be >= 1")
        if not (self.rate_per_s > 0) or self.burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        if self.pull_interval_s is not None and not (self.pull_interval_s > 0):
            raise ValueError("pull_interval_s must be > 0 (or None)")
