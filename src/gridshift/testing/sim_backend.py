"""A simulated OpenAI-compatible inference server for gateway tests and benchmarks, run as its own process
(``python -m gridshift.testing.sim_backend --port N --model M``), standing for one site's backend.

It answers ``/v1/models``, ``/v1/chat/completions`` and ``/v1/completions`` (JSON or SSE streams in OpenAI's
chunk shape, with a usage chunk when ``stream_options.include_usage``), ``/v1/embeddings``, and ``/metrics`` with
vLLM's metric names (``vllm:num_requests_running``, ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc``,
the ``vllm:time_to_first_token_seconds`` and ``vllm:inter_token_latency_seconds`` histograms) plus
``gridshift:power_watts``. Latency depends on load: with ``r`` requests running of ``capacity``, the first
token comes after ``ttft_ms × (1 + r / capacity)`` and each next one after ``itl_ms × (1 + r / capacity)``
(times ``slow_factor``); requests over ``capacity`` wait in a queue. The histograms record these modelled
latencies (driven by the backend's own load), not the wall clock, so a busy host does not change what it reports. Power is ``idle_w + (full_w − idle_w) ×
r / capacity``. Knobs (``POST /sim/knobs``): ``fail_status`` (answer every request, or the next
``fail_count``, with that status), ``slow_factor``, ``die_after_tokens`` (drop the connection mid-stream),
``stall_after_tokens`` (stop sending, keep the connection), ``unhealthy`` (``/v1/models`` answers 503),
``report_energy`` (put ``energy_joules`` in each answer's usage: the power model's draw over the request's time,
shared by the requests running).
``GET /sim/stats`` counts requests served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class Hist:
    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.sum += v
        self.count += 1
        for i, b in enumerate(BUCKETS):
            if v <= b:
                self.counts[i] += 1

    def lines(self, name: str, model: str) -> list[str]:
        lab = f'model_name="{model}"'
        out = [f"# TYPE {name} histogram"]
        out += [f'{name}_bucket{{le="{b}",{lab}}} {c}' for b, c in zip(BUCKETS, self.counts)]
        out += [f'{name}_bucket{{le="+Inf",{lab}}} {self.count}', f"{name}_sum{{{lab}}} {self.sum}",
                f"{name}_count{{{lab}}} {self.count}"]
        return out


class Sim:
    def __init__(self, args: argparse.Namespace) -> None:
        self.models = args.model
        self.ttft_ms, self.itl_ms, self.capacity = args.ttft_ms, args.itl_ms, args.capacity
        self.idle_w, self.full_w = args.idle_w, args.full_w
        self.running = 0
        self.waiting = 0
        self.served = 0
        self.failed = 0
        self.ttft, self.itl = Hist(), Hist()
        self.knobs: dict[str, Any] = {"fail_status": None, "fail_count": -1, "slow_factor": 1.0,
                                      "die_after_tokens": None, "stall_after_tokens": None, "unhealthy": False, "report_energy": False}
        self.sem = asyncio.Semaphore(self.capacity)

    def power_w(self) -> float:
        return self.idle_w + (self.full_w - self.idle_w) * min(1.0, self.running / self.capacity)

    def usage(self, n_in: int, n_out: int, t0: float, running: int) -> dict[str, Any]:
        u: dict[str, Any] = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
        if self.knobs.get("report_energy"):
            u["energy_joules"] = round(self.power_w() * (time.perf_counter() - t0) / max(1, running), 6)
        return u

    def factor(self) -> float:
        return (1.0 + self.running / self.capacity) * float(self.knobs["slow_factor"])

    def should_fail(self) -> int | None:
        st = self.knobs["fail_status"]
        if st is None:
            return None
        n = self.knobs["fail_count"]
        if n == 0:
            return None
        if n > 0:
            self.knobs["fail_count"] = n - 1
        self.failed += 1
        return int(st)


def _n_out(body: dict[str, Any]) -> int:
    n = body.get("max_tokens") or body.get("max_completion_tokens") or 16
    return max(1, min(int(n), 4096))


def _n_in(body: dict[str, Any]) -> int:
    return max(1, len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4)


def make_app(sim: Sim) -> FastAPI:
    app = FastAPI(title="simulated backend")

    @app.get("/v1/models")
    async def models() -> Any:
        if sim.knobs["unhealthy"]:
            return JSONResponse({"error": {"message": "unhealthy", "type": "server_error"}}, status_code=503)
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "sim"} for m in sim.models]}

    @app.post("/sim/knobs")
    async def knobs(request: Request) -> Any:
        sim.knobs.update(await request.json())
        return sim.knobs

    @app.get("/sim/stats")
    async def stats() -> Any:
        return {"served": sim.served, "failed": sim.failed, "running": sim.running, "waiting": sim.waiting}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        m = sim.models[0]
        lab = f'{{model_name="{m}"}}'
        power = sim.power_w()
        lines = ["# TYPE vllm:num_requests_running gauge", f"vllm:num_requests_running{lab} {sim.running}",
                 "# TYPE vllm:num_requests_waiting gauge", f"vllm:num_requests_waiting{lab} {sim.waiting}",
                 "# TYPE vllm:kv_cache_usage_perc gauge",
                 f"vllm:kv_cache_usage_perc{lab} {min(1.0, sim.running / sim.capacity)}",
                 "# TYPE gridshift:power_watts gauge", f"gridshift:power_watts{lab} {power}"]
        lines += sim.ttft.lines("vllm:time_to_first_token_seconds", m)
        lines += sim.itl.lines("vllm:inter_token_latency_seconds", m)
        return PlainTextResponse("\n".join(lines) + "\n")

    async def generate(request: Request, chat: bool) -> Any:
        body = await request.json()
        if body.get("model") not in sim.models:
            return JSONResponse({"error": {"message": f"model '{body.get('model')}' not found",
                                           "type": "invalid_request_error", "param": "model", "code": None}},
                                status_code=404)
        status = sim.should_fail()
        if status is not None:
            return JSONResponse({"error": {"message": "simulated failure", "type": "server_error"}},
                                status_code=status, headers={"Retry-After": "1"} if status == 429 else None)
        n_out, n_in = _n_out(body), _n_in(body)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:12]}"
        sim.waiting += 1
        await sim.sem.acquire()
        sim.waiting -= 1
        sim.running += 1
        t0 = time.perf_counter()

        def release() -> None:
            sim.running -= 1
            sim.sem.release()

        def piece(i: int) -> str:
            return f"tok{i} "

        if not body.get("stream"):
            try:
                first = sim.ttft_ms * sim.factor() / 1000.0
                await asyncio.sleep(first)
                sim.ttft.observe(first)
                await asyncio.sleep(sim.itl_ms * sim.factor() * (n_out - 1) / 1000.0)
                if n_out > 1:
                    sim.itl.observe(sim.itl_ms * sim.factor() / 1000.0)
                sim.served += 1
                usage = sim.usage(n_in, n_out, t0, sim.running)
            finally:
                release()
            text = "".join(piece(i) for i in range(n_out))
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                      if chat else {"index": 0, "text": text, "finish_reason": "length"})
            return {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
                    "model": body["model"], "choices": [choice], "usage": usage}

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(i: int | None, finish: str | None = None) -> bytes:
            if chat:
                delta = {} if i is None else ({"role": "assistant", "content": piece(i)} if i == 0
                                              else {"content": piece(i)})
                ch = {"index": 0, "delta": delta, "finish_reason": finish}
                obj = "chat.completion.chunk"
            else:
                ch = {"index": 0, "text": "" if i is None else piece(i), "finish_reason": finish}
                obj = "text_completion"
            d = {"id": rid, "object": obj, "created": int(time.time()), "model": body["model"], "choices": [ch]}
            return b"data: " + json.dumps(d).encode() + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            try:
                first = sim.ttft_ms * sim.factor() / 1000.0
                await asyncio.sleep(first)
                sim.ttft.observe(first)
                for i in range(n_out):
                    if i:
                        gap = sim.itl_ms * sim.factor() / 1000.0
                        await asyncio.sleep(gap)
                        sim.itl.observe(gap)
                    die, stall = sim.knobs["die_after_tokens"], sim.knobs["stall_after_tokens"]
                    if die is not None and i >= die:
                        raise ConnectionAbortedError("simulated backend death mid-stream")
                    if stall is not None and i >= stall:
                        await asyncio.sleep(3600)
                    yield chunk(i)
                yield chunk(None, "length")
                if include_usage:
                    u = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()),
                         "model": body["model"], "choices": [],
                         "usage": sim.usage(n_in, n_out, t0, sim.running)}
                    yield b"data: " + json.dumps(u).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
                sim.served += 1
            finally:
                release()

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await generate(request, True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await generate(request, False)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        body = await request.json()
        status = sim.should_fail()
        if status is not None:
            return JSONResponse({"error": {"message": "simulated failure", "type": "server_error"}}, status_code=status)
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = [{"object": "embedding", "index": i, "embedding": [((len(str(x)) * (k + 1)) % 97) / 97.0
                                                                   for k in range(8)]} for i, x in enumerate(inputs)]
        n = sum(max(1, len(str(x)) // 4) for x in inputs)
        sim.served += 1
        return {"object": "list", "data": data, "model": body.get("model"),
                "usage": {"prompt_tokens": n, "total_tokens": n}}

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--itl-ms", type=float, default=5.0)
    p.add_argument("--capacity", type=int, default=32)
    p.add_argument("--idle-w", type=float, default=100.0)
    p.add_argument("--full-w", type=float, default=700.0)
    args = p.parse_args(argv)
    uvicorn.run(make_app(Sim(args)), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
