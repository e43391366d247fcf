"""Forwarding: the route's sites in score order, one backend per site by power of two choices, failover to
the next site on 429, 5xx, connection errors and timeouts (the failed backend cools down for a few seconds, or
its ``Retry-After``, and is tried again after that: traffic returns to the preferred site when it recovers).

A stream is committed to a backend only after its first bytes arrived (until then a failure moves on); after
that, a backend that dies, stalls longer than ``stream_idle_timeout_s`` or ends without ``[DONE]`` gives the
client an error event, never a hang. Every request, answered or not, is one accounting row."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gridshift.service.gateway.accounting import Accounting, UsageRecord, reported_energy_j, usage_of
from gridshift.service.gateway.backends import Backend, Registry
from gridshift.service.gateway.config import GatewayConfig
from gridshift.service.gateway.defer import Gone, Held, Holder
from gridshift.service.gateway.errors import GatewayError, error_body, sse_error
from gridshift.service.gateway.quotas import Quotas
from gridshift.service.gateway.routing import GridView, RoutePlan, pick_backend, plan_route
from gridshift.service.gateway.upstream import Upstream, UpstreamError

log = logging.getLogger("gridshift.gateway")

MAX_COOLDOWN_S = 60.0
PLAN_TTL_S = 0.1
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class Call:
    """One client request on its way through the gateway."""

    tenant: str
    model: str
    endpoint: str  # chat | completions | embeddings
    slo_class: str
    region: str | None
    residency: list[str] | None
    body: dict[str, Any]
    stream: bool = False
    t0: float = field(default_factory=time.perf_counter)
    failovers: int = 0
    deadline_s: float | None = None  # deferrable: the answer is due this many seconds after ``arrived``
    arrived: float = field(default_factory=time.time)
    held: Held | None = None


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """About 4 characters per token (used only when the backend reports no usage)."""
    text = json.dumps(body.get("messages") or body.get("prompt") or body.get("input") or "")
    return max(1, len(text) // 4)


class Forwarder:
    def __init__(self, registry: Registry, client: aiohttp.ClientSession, config: GatewayConfig,
                 accounting: Accounting, quotas: Quotas, rng: random.Random | None = None) -> None:
        self.registry, self.client, self.config = registry, client, config
        self.accounting, self.quotas = accounting, quotas
        self.rng = rng or random.Random()
        self.grid = GridView()
        self.holder = Holder()
        self._plans: dict[tuple, tuple[RoutePlan, float]] = {}
        self.upstream = Upstream()  # non-streaming calls; streams go through ``client`` (aiohttp)
        self._plans_for: tuple[GridView | None, int] = (None, -1)  # the grid view and registry they were made on

    # ------------------------------------------------------------------------------------------ planning

    def plan(self, call: Call, *, explain: bool = False) -> RoutePlan:
        """The route of ``call``; ``explain``: without drawing which requests a ramping site still takes.
        The same route serves the same (model, class, region, residency) for ``PLAN_TTL_S`` while no grid
        event is in force or announced (a ramping site draws per request) and the grid view and the
        registry are unchanged; the backend within a site is still picked per request."""
        slo = self.config.slo[call.slo_class]
        now = time.monotonic()
        g = self.grid
        cacheable = not explain and not g.events and not g.announced
        if cacheable:
            if g is not self._plans_for[0] or self.registry.version != self._plans_for[1]:
                self._plans.clear()
                self._plans_for = (g, self.registry.version)
            key = (call.model, call.slo_class, call.region, tuple(call.residency) if call.residency else None)
            hit = self._plans.get(key)
            if hit is not None and hit[1] > now:
                return hit[0]
        plan = plan_route(self.registry, g, call.model, call.slo_class, slo, region=call.region,
                          residency=call.residency, now=now, rng=None if explain else self.rng)
        if cacheable:
            if len(self._plans) > 1024:
                self._plans.clear()
            self._plans[key] = (plan, now + PLAN_TTL_S)
        return plan

    def candidates(self, plan: RoutePlan, call: Call) -> list[Backend]:
        """One backend per site in score order (power of two choices), then the sites' other backends."""
        now, tried, out = time.monotonic(), set(), []
        for _ in range(2):
            for name in plan.order:
                b = pick_backend(self.registry.sites[name], call.model, now, tried, self.rng,
                                 self.grid.targets.get(call.model))
                if b is not None:
                    tried.add(b.id)
                    out.append(b)
        return out[: self.config.max_attempts]

    def headers(self, plan: RoutePlan, b: Backend, call: Call) -> dict[str, str]:
        chosen = next(s for s in plan.sites if s.site == b.site)
        terms = ",".join(f"{k}={v:.3f}" for k, v in chosen.terms.items())
        others = ";".join(f"{s.site}:{s.excluded_by}" if s.excluded_by else f"{s.site}:{s.score:.3f}"
                          for s in plan.sites if s.site != b.site)
        out = {"x-gridshift-site": b.site, "x-gridshift-backend": b.id, "x-gridshift-slo-class": call.slo_class,
               "x-gridshift-score": f"{chosen.score:.4f}" if chosen.score is not None else "",
               "x-gridshift-score-terms": terms, "x-gridshift-other-sites": others,
               "x-gridshift-failovers": str(call.failovers)}
        if call.held is not None:
            out["x-gridshift-held-s"] = f"{call.held.seconds:.3f}"
            out["x-gridshift-held-reason"] = call.held.reason
        return out

    def no_route(self, plan: RoutePlan, call: Call) -> GatewayError:
        sites = {s.site: {"excluded_by": s.excluded_by, "reason": s.reason} for s in plan.sites}
        msg = (f"no site can serve model '{call.model}' for the {call.slo_class} class: {plan.exclusions()}"
               if plan.sites else "no sites are configured")
        return GatewayError(503, msg, code="no_feasible_backend", headers={"Retry-After": "5"},
                            extra={"sites": sites})

    # ----------------------------------------------------------------------------------------- accounting

    def _cool(self, b: Backend, retry_after: str | None = None) -> None:
        wait = self.config.cooldown_s
        if retry_after:
            try:
                wait = min(MAX_COOLDOWN_S, max(1.0, float(retry_after)))
            except ValueError:
                pass
        b.cooldown_until = time.monotonic() + wait

    def _record(self, call: Call, b: Backend | None, status: str, tin: int, tout: int,
                ttft_ms: float | None, measured_j: float | None = None) -> None:
        site = self.registry.sites.get(b.site) if b is not None else None
        carbon = price = None
        if site is not None:
            carbon = self.grid.carbon_at(site.spec.zone, time.time(), site.spec.carbon_g_per_kwh)
            price = self.grid.price_usd_per_mwh.get(site.spec.zone, site.spec.price_usd_per_mwh)
        e, c, cost = usage_of(tin, tout, b.joules_per_token if b else 0.0, carbon, price, measured_j)
        self.accounting.record(UsageRecord(
            at=self.accounting.now(), tenant=call.tenant, model=call.model, site=b.site if b else None,
            backend=b.id if b else None, accelerator=b.spec.accelerator if b else None, slo_class=call.slo_class,
            endpoint=call.endpoint, status=status, prompt_tokens=tin, completion_tokens=tout, energy_j=e,
            carbon_g=c, cost_usd=cost, ttft_ms=ttft_ms, failovers=call.failovers, region=call.region))
        if call.failovers:
            self.accounting.failovers.labels(call.model).inc(call.failovers)
        self.quotas.charge(call.tenant, tin + tout)

    def _target(self, b: Backend, call: Call) -> tuple[str, dict[str, str]]:
        path = {"chat": "/v1/chat/completions", "completions": "/v1/completions",
                "embeddings": "/v1/embeddings"}[call.endpoint]
        headers = {"content-type": "application/json"}
        if b.spec.api_key:
            headers["authorization"] = f"Bearer {b.spec.api_key}"
        return b.spec.url.rstrip("/") + path, headers

    # --------------------------------------------------------------------------------------- forwarding

    async def forward(self, call: Call, is_gone: Callable[[], Awaitable[bool]] | None = None) -> Response:
        """Answer ``call``: held first if deferrable (``is_gone``: whether its caller hung up meanwhile), then
        sent to the best site's backends in turn until one answers."""
        if call.deadline_s is not None:
            try:
                call.held = await self.holder.hold(self, call.model, call.arrived, call.deadline_s, is_gone)
            except Gone:
                self._record(call, None, "cancelled", 0, 0, None)
                return Response(status_code=499)
        plan = self.plan(call)
        if not plan.order:
            self._record(call, None, "unrouted", 0, 0, None)
            raise self.no_route(plan, call)
        last = "no backend answered"
        for b in self.candidates(plan, call):
            out = await (self._stream(call, plan, b) if call.stream else self._once(call, plan, b))
            if isinstance(out, Response):
                return out
            last = out
            call.failovers += 1
        call.failovers = max(0, call.failovers - 1)
        self._record(call, None, "error", 0, 0, None)
        raise GatewayError(503, f"every backend tried failed; last: {last}", code="backends_failed",
                           headers={"Retry-After": "5"})

    async def _once(self, call: Call, plan: RoutePlan, b: Backend) -> Response | str:
        url, headers = self._target(b, call)
        b.inflight += 1
        t = time.perf_counter()
        try:
            answer = await self.upstream.post(url, json.dumps(call.body).encode(), headers,
                                              timeout_s=self.config.request_timeout_s)
            status, retry, content = answer.status, answer.headers.get("retry-after"), answer.body
        except (UpstreamError, OSError, TimeoutError) as e:
            self._cool(b)
            return f"{b.id}: {type(e).__name__}"
        finally:
            b.inflight -= 1
        ms = (time.perf_counter() - t) * 1000.0
        if status in RETRYABLE:
            self._cool(b, retry)
            return f"{b.id}: HTTP {status}"
        try:
            data = json.loads(content)
        except ValueError:
            self._cool(b)
            return f"{b.id}: answer is not JSON"
        if status >= 400:  # the request's own fault: passed through in OpenAI's shape, no failover
            err = data.get("error") if isinstance(data, dict) else None
            msg = err.get("message") if isinstance(err, dict) else str(data)[:300]
            self._record(call, b, "rejected", 0, 0, None)
            return JSONResponse(error_body(status, f"backend {b.id}: {msg}", None, "backend_rejected"),
                                status_code=status, headers=self.headers(plan, b, call))
        usage = data.get("usage") if isinstance(data, dict) else None
        tin = int((usage or {}).get("prompt_tokens") or 0) or estimate_prompt_tokens(call.body)
        tout = int((usage or {}).get("completion_tokens") or 0)
        if call.endpoint != "embeddings":
            b.observe(ttft_ms=ms if tout <= 1 else None)
        self.accounting.ttft.labels(call.model, b.site).observe(ms / 1000.0)
        self._record(call, b, "ok", tin, tout, ms, reported_energy_j(usage))
        return Response(content, status_code=status, media_type="application/json",
                        headers=self.headers(plan, b, call))  # the backend's bytes, not re-encoded

    async def _stream(self, call: Call, plan: RoutePlan, b: Backend) -> Response | str:
        url, headers = self._target(b, call)
        cfg = self.config
        b.inflight += 1
        t = time.perf_counter()
        resp: aiohttp.ClientResponse | None = None
        try:
            resp = await asyncio.wait_for(self.client.post(
                url, data=json.dumps(call.body).encode(), headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=2.0, sock_read=cfg.stream_idle_timeout_s)),
                cfg.first_byte_timeout_s)
            if resp.status in RETRYABLE:
                self._cool(b, resp.headers.get("retry-after"))
                resp.release()
                b.inflight -= 1
                return f"{b.id}: HTTP {resp.status}"
            if resp.status >= 400:
                raw = await resp.read()
                resp.release()
                b.inflight -= 1
                try:
                    err = json.loads(raw).get("error", {})
                    msg = err.get("message") if isinstance(err, dict) else str(err)
                except (ValueError, AttributeError):
                    msg = raw[:300].decode(errors="replace")
                self._record(call, b, "rejected", 0, 0, None)
                return JSONResponse(error_body(resp.status, f"backend {b.id}: {msg}", None, "backend_rejected"),
                                    status_code=resp.status, headers=self.headers(plan, b, call))
            chunks = resp.content.iter_any()
            first = await asyncio.wait_for(chunks.__anext__(), cfg.first_byte_timeout_s)
        except (aiohttp.ClientError, TimeoutError, StopAsyncIteration) as e:
            self._cool(b)
            if resp is not None:
                resp.close()
            b.inflight -= 1
            return f"{b.id}: {type(e).__name__} before the first token"
        ttft_ms = (time.perf_counter() - t) * 1000.0
        self.accounting.ttft.labels(call.model, b.site).observe(ttft_ms / 1000.0)
        return StreamingResponse(self._relay(call, b, resp, first, chunks, ttft_ms, t),
                                 media_type="text/event-stream", headers=self.headers(plan, b, call))

    async def _relay(self, call: Call, b: Backend, resp: aiohttp.ClientResponse, first: bytes,
                     chunks: AsyncIterator[bytes], ttft_ms: float, t0: float) -> AsyncIterator[bytes]:
        counter = SseCounter()
        status = "aborted"
        try:
            counter.feed(first)
            yield first
            while True:
                try:
                    chunk = await asyncio.wait_for(chunks.__anext__(), self.config.stream_idle_timeout_s)
                except StopAsyncIteration:
                    break
                counter.feed(chunk)
                yield chunk
            if counter.done:
                status = "ok"
            else:
                status = "error"
                yield sse_error(f"backend {b.id} at site {b.site} ended the stream early")
        except (aiohttp.ClientError, TimeoutError) as e:
            status = "error"
            self._cool(b)
            yield sse_error(f"backend {b.id} at site {b.site} failed mid-stream ({type(e).__name__})")
        finally:
            if status == "ok":
                resp.release()  # the connection goes back to the pool
            else:
                resp.close()
            b.inflight -= 1
            n = counter.completion_tokens
            if status == "ok" and n > 1:
                b.observe(ttft_ms=ttft_ms, itl_ms=((time.perf_counter() - t0) * 1000.0 - ttft_ms) / (n - 1))
            tin = counter.prompt_tokens or estimate_prompt_tokens(call.body)
            try:  # accounting must never break a client's stream
                self._record(call, b, status, tin, n, ttft_ms, reported_energy_j(counter.usage))
            except Exception:  # noqa: BLE001
                log.exception("could not account a streamed request")


class SseCounter:
    """Reads an OpenAI SSE stream as it passes: the usage chunk if the backend sends one, else one completion
    token per chunk with content (llama.cpp and vLLM send one token per chunk); whether ``[DONE]`` came."""

    def __init__(self) -> None:
        self._buf = b""
        self.chunks_with_text = 0
        self.usage: dict[str, Any] | None = None
        self.done = False

    def feed(self, data: bytes) -> None:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                obj = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if isinstance(obj.get("usage"), dict):
                self.usage = obj["usage"]
            for ch in obj.get("choices") or ():
                if not isinstance(ch, dict):
                    continue
                delta = ch.get("delta") if isinstance(ch.get("delta"), dict) else {}
                if delta.get("content") or ch.get("text"):
                    self.chunks_with_text += 1

    @property
    def completion_tokens(self) -> int:
        if self.usage and isinstance(self.usage.get("completion_tokens"), int):
            return self.usage["completion_tokens"]
        return self.chunks_with_text

    @property
    def prompt_tokens(self) -> int:
        v = (self.usage or {}).get("prompt_tokens")
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 and math.isfinite(v) else 0
