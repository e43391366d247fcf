"""The backend registry: every OpenAI-compatible endpoint per site and accelerator type, its health (GET
``/v1/models``), its load (GET ``/metrics`` read for vLLM's metric names where the server exposes them) and
the latencies the gateway measured itself (first byte, inter-token) as moving averages.

vLLM metric names read (docs.vllm.ai, "Production Metrics", V1 engine): ``vllm:num_requests_running``,
``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc`` (older ``vllm:gpu_cache_usage_perc``), the
histograms ``vllm:time_to_first_token_seconds`` and ``vllm:inter_token_latency_seconds`` (older
``vllm:time_per_output_token_seconds``), whose mean over the last poll interval (difference of ``_sum`` over
difference of ``_count``) is the backend's measured TTFT / ITL. A backend reporting its power draw does so as
``gridshift:power_watts`` (not a vLLM name; the simulated backend exposes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gridshift.service.gateway.config import BackendSpec, GatewayConfig, SiteSpec

log = logging.getLogger("gridshift.gateway")

EWMA_ALPHA = 0.3
STALE_S = 60.0  # latencies older than this are forgotten
DEFAULT_J_PER_TOKEN = 0.1  # for a type the catalog has no decode throughput for (documented)
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfaINF]+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum of each metric's samples over its labels (``# `` lines skipped): enough for per-server gauges and
    histogram ``_sum`` / ``_count``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        if math.isfinite(v):
            out[m.group(1)] = out.get(m.group(1), 0.0) + v
    return out


def catalog_joules_per_token(accelerator: str) -> float | None:
    """Board power over decode throughput (tokens/s, one accelerator) of the catalog's 8B batch-inference job:
    the energy of one output token at full load, or None for a type the catalog does not know."""
    from gridshift.catalog.accelerators import get_accelerator
    from gridshift.catalog.fleet_jobs import load_fleet_jobs
    from gridshift.errors import GridShiftError

    try:
        acc = get_accelerator(accelerator)
        tps = load_fleet_jobs().get("llama3.1-8b-batch-inference", acc.name, 1)
    except (GridShiftError, KeyError, ValueError):
        return None
    return acc.board_power_w / tps if tps > 0 else None


def accelerator_power_w(accelerator: str) -> tuple[float, float] | None:
    """(idle, full) power of one accelerator from the catalog, or None."""
    from gridshift.catalog.accelerators import get_accelerator
    from gridshift.errors import GridShiftError

    try:
        acc = get_accelerator(accelerator)
    except (GridShiftError, KeyError, ValueError):
        return None
    return acc.idle_power_w, acc.board_power_w


@dataclass
class Backend:
    """One endpoint and what the gateway knows about it."""

    spec: BackendSpec
    site: str
    models: set[str] = field(default_factory=set)
    healthy: bool = False
    checked_at: float = 0.0
    error: str | None = None
    inflight: int = 0
    running: float | None = None
    waiting: float | None = None
    kv_usage: float | None = None
    power_w: float | None = None
    ttft_ms: float | None = None  # measured: backend histogram, else the gateway's own observations
    itl_ms: float | None = None
    seen_ttft_ms: float | None = None  # the gateway's own: request sent to first byte back (moving average)
    measured_at: float = 0.0  # when a latency was last measured (monotonic s)
    cooldown_until: float = 0.0
    _hist: dict[str, tuple[float, float]] = field(default_factory=dict)
    joules_per_token: float = DEFAULT_J_PER_TOKEN
    j_source: str = "default"
    power_curve_w: tuple[float, float] | None = None  # (idle, full) of one accelerator, from the catalog

    @property
    def id(self) -> str:
        return self.spec.id

    def load(self) -> float:
        """Queue length the backend is known to have: its own running + waiting, else the gateway's in-flight."""
        if self.running is not None or self.waiting is not None:
            return max(float(self.inflight), (self.running or 0.0) + (self.waiting or 0.0))
        return float(self.inflight)

    def available(self, now: float) -> bool:
        return self.healthy and now >= self.cooldown_until

    def estimated_power_w(self) -> float:
        """Measured power if reported, else idle + (full − idle) × utilisation per accelerator (catalog)."""
        if self.power_w is not None:
            return self.power_w
        pw = self.power_curve_w
        if pw is None:
            return 0.0
        util = min(1.0, self.load() / self.spec.max_running)
        return self.spec.accelerators * (pw[0] + (pw[1] - pw[0]) * util)

    def observe(self, ttft_ms: float | None = None, itl_ms: float | None = None) -> None:
        """The gateway's own measurement of a finished request: its time to first byte always (what a caller
        sees includes the way to the backend), its latencies as the backend's when it has no histograms."""
        if ttft_ms is not None:
            self.seen_ttft_ms = ttft_ms if self.seen_ttft_ms is None else (
                (1 - EWMA_ALPHA) * self.seen_ttft_ms + EWMA_ALPHA * ttft_ms)
            self.measured_at = time.monotonic()
            if "ttft" not in self._hist:
                self.ttft_ms = self.seen_ttft_ms
        if itl_ms is not None and "itl" not in self._hist:
            self.itl_ms = itl_ms if self.itl_ms is None else (1 - EWMA_ALPHA) * self.itl_ms + EWMA_ALPHA * itl_ms
            self.measured_at = time.monotonic()

    def expected_ttft_ms(self, now: float) -> float | None:
        """The larger of the backend's own TTFT and the gateway's; None when nothing was measured for
        ``STALE_S`` (an idle or excluded backend is tried again rather than judged on old numbers)."""
        if now - self.measured_at > STALE_S:
            return None
        vals = [v for v in (self.ttft_ms, self.seen_ttft_ms) if v is not None]
        return max(vals) if vals else None

    def expected_itl_ms(self, now: float) -> float | None:
        return None if now - self.measured_at > STALE_S else self.itl_ms

    def read_metrics(self, m: dict[str, float]) -> None:
        def first(*names: str) -> float | None:
            return next((m[n] for n in names if n in m), None)

        self.running = first("vllm:num_requests_running")
        self.waiting = first("vllm:num_requests_waiting")
        self.kv_usage = first("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
        self.power_w = first("gridshift:power_watts")
        for key, base in (("ttft", ("vllm:time_to_first_token_seconds",)),
                          ("itl", ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"))):
            name = next((b for b in base if f"{b}_count" in m), None)
            if name is None:
                continue
            s, c = m[f"{name}_sum"] if f"{name}_sum" in m else 0.0, m[f"{name}_count"]
            ps, pc = self._hist.get(key, (0.0, 0.0))
            self._hist[key] = (s, c)
            if c > pc and s >= ps:
                val = 1000.0 * (s - ps) / (c - pc)
                self.measured_at = time.monotonic()
                if key == "ttft":
                    self.ttft_ms = val
                else:
                    self.itl_ms = val


@dataclass
class Site:
    spec: SiteSpec
    backends: list[Backend] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name


class Registry:
    """Sites and backends; :meth:`check_all` refreshes health and load (run on a clock by the app)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.sites: dict[str, Site] = {}
        self.version = 0  # counts changes of the sites' backends (routes cached by the forwarder expire with it)
        for s in config.sites:
            self.add_site(s)

    def add_site(self, spec: SiteSpec) -> Site:
        site = Site(spec.model_copy(update={"backends": []}))
        self.sites[spec.name] = site
        for b in spec.backends:
            self.add_backend(spec.name, b)
        return site

    def add_backend(self, site: str, spec: BackendSpec) -> Backend:
        if site not in self.sites:
            raise KeyError(site)
        if any(b.id == spec.id for s in self.sites.values() for b in s.backends):
            raise ValueError(f"backend id '{spec.id}' exists")
        b = Backend(spec, site, models=set(spec.models), power_curve_w=accelerator_power_w(spec.accelerator))
        if spec.joules_per_token is not None:
            b.joules_per_token, b.j_source = spec.joules_per_token, "backends file"
        else:
            j = catalog_joules_per_token(spec.accelerator)
            if j is not None:
                b.joules_per_token, b.j_source = j, "catalog"
        self.sites[site].backends.append(b)
        self.version += 1
        return b

    def remove_backend(self, backend_id: str) -> bool:
        for s in self.sites.values():
            for b in s.backends:
                if b.id == backend_id:
                    s.backends.remove(b)
                    self.version += 1
                    return True
        return False

    def backends(self) -> list[Backend]:
        return [b for s in self.sites.values() for b in s.backends]

    def find(self, backend_id: str) -> Backend | None:
        return next((b for b in self.backends() if b.id == backend_id), None)

    def models(self) -> list[str]:
        return sorted({m for b in self.backends() for m in b.models})

    async def check(self, client: aiohttp.ClientSession, b: Backend) -> None:
        headers = {"Authorization": f"Bearer {b.spec.api_key}"} if b.spec.api_key else {}
        timeout = aiohttp.ClientTimeout(total=5.0)
        base = b.spec.url.rstrip("/")
        try:
            async with client.get(f"{base}/v1/models", headers=headers, timeout=timeout) as r:
                r.raise_for_status()
                doc = await r.json(content_type=None)
            served = {str(d.get("id")) for d in doc.get("data", []) if isinstance(d, dict) and d.get("id")}
            b.models = set(b.spec.models) if b.spec.models else served
            b.healthy, b.error = True, None
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError) as e:
            b.healthy, b.error = False, f"{type(e).__name__}: {e}"[:200]
        b.checked_at = time.monotonic()
        if not b.healthy:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with client.get(f"{base}/metrics", headers=headers, timeout=timeout) as r:
                if r.status == 200:
                    b.read_metrics(parse_prometheus(await r.text()))

    async def check_all(self, client: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self.check(client, b) for b in self.backends()))

    def describe(self) -> list[dict[str, Any]]:
        return [{"site": b.site, "id": b.id, "url": b.spec.url, "accelerator": b.spec.accelerator,
                 "accelerators": b.spec.accelerators, "models": sorted(b.models), "healthy": b.healthy,
                 "error": b.error, "inflight": b.inflight, "running": b.running, "waiting": b.waiting,
                 "kv_cache_usage": b.kv_usage, "ttft_ms": b.ttft_ms, "itl_ms": b.itl_ms,
                 "power_w": round(b.estimated_power_w(), 3), "joules_per_token": b.joules_per_token,
                 "joules_per_token_source": b.j_source} for b in self.backends()]
