"""Routing study: the Azure LLM inference traces (2023, conv and code) replayed through ``gridshift gateway``
against simulated backends in four regions with real 2023 hourly signals (accelerated clock), comparing
latency-only routing, cost-based routing (LiteLLM's strategy: the cheapest deployment) and grid-aware routing
(the gateway's default interactive weights).

Sites (GCP region, grid zone): us-east4 (US-MIDA-PJM), us-south1 (US-TEX-ERCO), us-west2 (US-CAL-CISO),
europe-west3 (DE-LU); callers in us-east4. Each site is one simulated backend process on loopback (TTFT
``--ttft-ms`` and ITL ``--itl-ms`` growing with load, capacity ``--capacity``). The clock: ``--hours`` hours of
2023 spread evenly over the year (every 8760/hours-th hour); for each, the four zones' carbon intensity
(Electricity Maps, lifecycle) and day-ahead price for that hour are written into the service's store as the
current signals, the gateway re-reads them, and ``--per-hour`` requests drawn from the traces (context and
generated tokens; generated capped at ``--max-tokens``) are sent at once as streams through the ``openai``-
compatible API. The same hours and requests for each strategy; the strategy is only the score weights, plus
``grid_carbon_first`` (the documented carbon-first interactive setting: the defaults' price weight moved to
carbon) and ``nearest``, a reference rather than a router: only the caller's region configured, so every request
stays local (what latency-only routing does when its measurements are not disturbed). ``--reps`` repetitions,
interleaved; each strategy's figures are the mean of its runs, with min / max / std and the runs themselves.

Measured: carbon and energy cost per 1,000 tokens (prompt + completion) from the gateway's own accounting
(energy from the catalog's H100 joules per token; carbon = energy x the zone's intensity at that hour; cost
= energy x the zone's price: energy cost only); TTFT = time to the first content chunk at the client on
loopback + the round trip from us-east4 to the chosen region (the shared GCP latency matrix), its p50 / p99
and the share within the interactive SLO (``--slo-ms``); requests failed over (no faults are injected).
Writes ``benchmarks/results/bench_gateway_routing.json``.

    python benchmarks/bench_gateway_routing.py [--hours 168] [--per-hour 16] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.grid import load_carbon, load_price
from gridshift.data.network import load_latency_matrix
from gridshift.data.traces import load_azure_llm
from gridshift.model.time import utcnow
from gridshift.service.db import upgrade
from gridshift.service.store import Store
from gridshift.testing.gateway_processes import gateway_process, sim_backend

OUT = Path(__file__).resolve().parent / "results" / "bench_gateway_routing.json"
SITES = {"us-east4": "US-MIDA-PJM", "us-south1": "US-TEX-ERCO", "us-west2": "US-CAL-CISO", "europe-west3": "DE-LU"}
CALLER = "us-east4"
STRATEGIES = {
    "latency": {"carbon": 0, "price": 0, "headroom": 0, "queue": 0, "latency": 1},
    "cost": {"carbon": 0, "price": 1, "headroom": 0, "queue": 0, "latency": 0},
    "grid": {"carbon": 0.5, "price": 0.2, "headroom": 0.1, "queue": 0.1, "latency": 0.1},  # the defaults
    # the "carbon-first" interactive setting (docs/service/gateway.md): the defaults' price weight moved to carbon
    "grid_carbon_first": {"carbon": 0.7, "price": 0, "headroom": 0.1, "queue": 0.1, "latency": 0.1},
    # reference, not a router: every request to the caller's own region (only that site configured)
    "nearest": {"carbon": 0, "price": 0, "headroom": 0, "queue": 0, "latency": 1},
}
SUMMED = ("carbon_g_per_1k_tokens", "cost_usd_per_1k_tokens", "ttft_p50_ms", "ttft_p99_ms", "ttft_slo_attainment",
          "failovers")


def signals(hours: int) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray], dict[str, np.ndarray]]:
    idx = np.linspace(0, 8759, hours).round().astype(int)
    carbon, price, times = {}, {}, None
    for zone in SITES.values():
        c = load_carbon(zone, years=2023)["carbon_g_per_kwh"]
        p = load_price(zone, years=2023).iloc[:, 0]
        carbon[zone] = c.to_numpy()[idx]
        price[zone] = p.reindex(c.index).ffill().to_numpy()[idx]
        times = c.index[idx]
    return times, carbon, price


def requests_drawn(n: int, max_tokens: int, seed: int = 0) -> list[tuple[int, int]]:
    trace = pd.concat([load_azure_llm("conv"), load_azure_llm("code")], ignore_index=True)
    rows = trace.sample(n=n, replace=True, random_state=seed)
    return [(int(c), int(min(g, max_tokens))) for c, g in zip(rows.context_tokens, rows.generated_tokens)]


async def one(c: httpx.AsyncClient, url: str, key: str, ctx: int, gen: int) -> tuple[str | None, float | None, int]:
    body = {"model": "sim-model", "stream": True, "max_tokens": gen,
            "messages": [{"role": "user", "content": "x " * max(1, ctx - 8)}]}
    t = time.perf_counter()
    first = None
    try:
        async with c.stream("POST", url, json=body, headers={"Authorization": f"Bearer {key}"}) as r:
            site, fo = r.headers.get("x-gridshift-site"), int(r.headers.get("x-gridshift-failovers", "0"))
            if r.status_code != 200:
                print("refused:", r.status_code, (await r.aread())[:300], file=sys.stderr)
                return None, None, 0
            async for line in r.aiter_lines():
                if first is None and '"content"' in line:
                    first = (time.perf_counter() - t) * 1000.0
            return site, first, fo
    except httpx.HTTPError as e:
        print("failed:", type(e).__name__, e, file=sys.stderr)
        return None, None, 0


def run_strategy(name: str, rep: int, weights: dict, args: argparse.Namespace, tmp: Path, times, carbon, price,
                 reqs: list[tuple[int, int]], rtt: dict[str, float]) -> dict:
    d = tmp / f"{name}-{rep}"
    d.mkdir()
    db = f"sqlite:///{d / 'gs.db'}"
    upgrade(db)
    with Store(db) as st:
        _, key = st.create_token("study", "tenant", "study")
        _, op = st.create_token("ops", "operator")
    backends = {r: sim_backend(d / f"{r}.log", ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, capacity=args.capacity)
                for r in SITES}
    cfg = {"default_region": CALLER, "latency_ms": {CALLER: rtt},
           "slo": {"interactive": {"ttft_ms": args.slo_ms, "weights": weights}},
           "sites": [{"name": r, "zone": z, "region": r, "backends": [
               {"id": f"{r}-1", "url": backends[r].base, "accelerator": "H100", "max_running": args.capacity}]}
               for r, z in SITES.items() if name != "nearest" or r == CALLER]}
    (d / "backends.yaml").write_text(json.dumps(cfg))
    ttft, sites, hours, failovers, failed = [], [], [], 0, 0
    gw = None
    try:
        gw = gateway_process(["--db", db, "--backends", str(d / "backends.yaml"), "--rate-per-s", "100000",
                              "--burst", "100000", "--grid-refresh-s", "3600", "--log-level", "warning"],
                             log_path=d / "gw.log")
        url = gw.base + "/v1/chat/completions"
        with Store(db) as st:
            async def replay() -> None:
                nonlocal failovers, failed
                async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as c:
                    for h in range(len(times)):
                        at = utcnow()
                        st.upsert_signals([{"zone": z, "signal": s, "at": at, "value": float(v[z][h]), "source": "2023"}
                                           for z in SITES.values() for s, v in (("carbon_g_per_kwh", carbon),
                                                                                ("price_usd_per_mwh", price))])
                        await c.post(gw.base + "/gateway/refresh", headers={"Authorization": f"Bearer {op}"})
                        batch = reqs[h * args.per_hour:(h + 1) * args.per_hour]
                        out = await asyncio.gather(*(one(c, url, key, ctx, gen) for ctx, gen in batch))
                        for site, first, fo in out:
                            failovers += fo
                            if site is None or first is None:
                                failed += 1
                                continue
                            sites.append(site)
                            hours.append(h)
                            ttft.append(first + rtt[site])

            asyncio.run(replay())
        time.sleep(1.0)
        usage = httpx.get(gw.base + "/gateway/usage", params={"by": "site"},
                          headers={"Authorization": f"Bearer {op}"}).json()["usage"]
    finally:
        if gw is not None:
            gw.stop()
        for b in backends.values():
            b.stop()
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in usage)
    a = np.asarray(ttft)
    return {"carbon_g_per_1k_tokens": round(1000 * sum(u["carbon_g"] for u in usage) / tokens, 6),
            "cost_usd_per_1k_tokens": round(1000 * sum(u["cost_usd"] for u in usage) / tokens, 9),
            "ttft_p50_ms": round(float(np.percentile(a, 50)), 1), "ttft_p99_ms": round(float(np.percentile(a, 99)), 1),
            "ttft_slo_attainment": round(float((a <= args.slo_ms).mean()), 4), "failovers": failovers,
            "failed": failed, "requests": len(a), "tokens": tokens,
            "share_by_site": {s: round(sites.count(s) / len(sites), 4) for s in SITES},
            "by_site": by_site(sites, hours, a, carbon, args.slo_ms)}


def by_site(sites: list[str], hours: list[int], ttft: np.ndarray, carbon: dict[str, np.ndarray],
            slo_ms: float) -> dict[str, dict]:
    """Per region: share of requests, the zone's mean carbon intensity at the hours requests were sent there
    (request-weighted), TTFT p99 and SLO attainment of those requests."""
    s, h = np.asarray(sites), np.asarray(hours)
    out = {}
    for r, z in SITES.items():
        m = s == r
        if not m.any():
            out[r] = {"share": 0.0}
            continue
        out[r] = {"share": round(float(m.mean()), 4), "carbon_g_per_kwh_at_chosen_hours": round(float(
            carbon[z][h[m]].mean()), 1), "ttft_p99_ms": round(float(np.percentile(ttft[m], 99)), 1),
            "ttft_slo_attainment": round(float((ttft[m] <= slo_ms).mean()), 4)}
    return out


def summary(runs: list[dict]) -> dict:
    """The mean of the repetitions for each headline figure, with min / max / std beside it."""
    out: dict = {k: round(float(np.mean([r[k] for r in runs])), 9) for k in SUMMED}
    out["spread"] = {k: {"min": min(r[k] for r in runs), "max": max(r[k] for r in runs),
                         "std": round(float(np.std([r[k] for r in runs])), 9)} for k in SUMMED}
    out["share_by_site"] = {s: round(float(np.mean([r["share_by_site"][s] for r in runs])), 4) for s in SITES}
    out["runs"] = runs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=168)
    ap.add_argument("--per-hour", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ttft-ms", type=float, default=40.0)
    ap.add_argument("--itl-ms", type=float, default=2.0)
    ap.add_argument("--capacity", type=int, default=32)
    ap.add_argument("--slo-ms", type=float, default=500.0)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every strategy (mean and spread reported)")
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args()
    times, carbon, price = signals(args.hours)
    reqs = requests_drawn(args.hours * args.per_hour, args.max_tokens)
    m = load_latency_matrix()
    rtt = {r: float(m.loc[CALLER, r]) for r in SITES}
    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-routing-"))
    runs: dict[str, list[dict]] = {name: [] for name in STRATEGIES}
    for rep in range(args.reps):  # interleaved, so a slow spell of the host touches every strategy alike
        for name, w in STRATEGIES.items():
            t = time.perf_counter()
            r = run_strategy(name, rep, w, args, tmp, times, carbon, price, reqs, rtt)
            r["wall_s"] = round(time.perf_counter() - t, 1)
            r["load_average"] = [round(x, 1) for x in os.getloadavg()]
            runs[name].append(r)
            print(rep, name, {k: r[k] for k in (*SUMMED, "share_by_site", "load_average")}, flush=True)
    results = {name: summary(rs) for name, rs in runs.items()}

    def saving(a: str, b: str) -> dict:
        per = [round(1 - x["carbon_g_per_1k_tokens"] / y["carbon_g_per_1k_tokens"], 4)
               for x, y in zip(runs[a], runs[b])]
        return {"mean": round(float(np.mean(per)), 4), "min": min(per), "max": max(per), "per_run": per}

    out = {"strategies": results,
           "grid_vs_latency_carbon_saving": saving("grid", "latency")["mean"],
           "cost_vs_latency_carbon_saving": saving("cost", "latency")["mean"],
           "carbon_saving": {f"{a}_vs_{b}": saving(a, b) for a in ("grid", "grid_carbon_first", "cost")
                             for b in ("latency", "nearest")},
           "carbon_g_per_kwh_mean_over_hours": {r: round(float(carbon[z].mean()), 1) for r, z in SITES.items()},
           "carbon_g_per_kwh_cleanest_each_hour": round(float(np.min([carbon[z] for z in SITES.values()], 0).mean()), 1),
           "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                        "sites": SITES, "caller_region": CALLER, "rtt_ms_from_caller": rtt,
                        "hours": f"{args.hours} hours of 2023 evenly over the year (UTC), hourly signals",
                        "weights": STRATEGIES, "traces": "azure-llm/conv + azure-llm/code (2023), sampled with "
                        "replacement, seed 0", "energy": "catalog H100 joules per token; prompt tokens at 0.1",
                        "cost": "energy cost only (zone day-ahead price)",
                        "machine": f"{os.cpu_count()} cores shared", "python": sys.version.split()[0],
                        "load_average_at_end": [round(x, 1) for x in os.getloadavg()]},
           **git_state()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
