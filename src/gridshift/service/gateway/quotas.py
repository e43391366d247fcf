"""Per-tenant quotas: requests per second (a token bucket with a burst) and tokens per minute (a bucket
charged with each request's actual tokens after it finishes; a tenant whose bucket is empty gets 429 with
``Retry-After`` until it refills). Limits come from the tenant's entry in the backends file, else the
gateway's defaults."""

from __future__ import annotations

import math
import threading
import time

from gridshift.service.gateway.config import GatewayConfig
from gridshift.service.gateway.errors import GatewayError
from gridshift.service.limits import TokenBucket


class Quotas:
    def __init__(self, config: GatewayConfig, rate_per_s: float, burst: int, tokens_per_min: float | None) -> None:
        self.config = config
        self.default = (rate_per_s, burst, tokens_per_min)
        self._rate: dict[str, TokenBucket] = {}
        self._tokens: dict[str, tuple[float, float]] = {}  # tenant: (level, at)
        self._lock = threading.Lock()

    def _limits(self, tenant: str) -> tuple[float, int, float | None]:
        t = self.config.tenants.get(tenant)
        rate, burst, tpm = self.default
        if t is not None:
            rate = t.rate_per_s or rate
            burst = t.burst or burst
            tpm = t.tokens_per_min or tpm
        return rate, burst, tpm

    def admit(self, tenant: str, now: float | None = None) -> None:
        """Raise 429 if the tenant is over its request rate or its token budget."""
        now = time.monotonic() if now is None else now
        rate, burst, tpm = self._limits(tenant)
        with self._lock:
            bucket = self._rate.get(tenant)
            if bucket is None:
                bucket = self._rate[tenant] = TokenBucket(rate, burst)
            level = self._level(tenant, tpm, now)
        if tpm is not None and level <= 0:
            wait = -level / (tpm / 60.0) + 1e-3
            raise GatewayError(429, f"tenant '{tenant}' is over its quota of {tpm:g} tokens per minute; retry later",
                               code="insufficient_quota", headers={"Retry-After": str(max(1, math.ceil(wait)))})
        wait = bucket.take(tenant, now)
        if wait > 0:
            raise GatewayError(429, f"tenant '{tenant}' is over its rate of {rate:g} requests/s (burst {burst}); "
                                    "retry later", code="rate_limit_exceeded",
                               headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def _level(self, tenant: str, tpm: float | None, now: float) -> float:
        if tpm is None:
            return math.inf
        level, at = self._tokens.get(tenant, (tpm, now))
        level = min(tpm, level + (now - at) * tpm / 60.0)
        self._tokens[tenant] = (level, now)
        return level

    def charge(self, tenant: str, tokens: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        tpm = self._limits(tenant)[2]
        if tpm is None or tokens <= 0:
            return
        with self._lock:
            level = self._level(tenant, tpm, now)
            self._tokens[tenant] = (level - tokens, now)
