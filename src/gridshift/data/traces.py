"""Workload traces: LLM inference requests (Azure, Mooncake) and cluster jobs (Philly, GAIA)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gridshift.data import validate as v
from gridshift.data._cache import cached_parse, source_path
from gridshift.errors import DataError

MOONCAKE_BLOCK_TOKENS = 512
_GAIA_FILES = ("pai-100k", "azure-100k", "mustang-100k")


def load_azure_llm(kind: Literal["code", "conv"], path: str | Path | None = None) -> pd.DataFrame:
    """One hour of Azure LLM inference requests (Patel et al., Splitwise, 2023-11-16; CC BY 4.0).

    Columns: ``time`` (arrival, tz-aware UTC; the file's naive timestamps are taken as UTC),
    ``context_tokens`` (prompt length, tokens), ``generated_tokens`` (output length, tokens).
    Arrivals must be non-decreasing. ``code`` has 8,819 requests, ``conv`` 19,366.
    """
    if kind not in ("code", "conv"):
        raise DataError(f"unknown Azure LLM trace '{kind}'; use 'code' or 'conv'", field="kind")
    return _azure(source_path(f"azure-llm/{kind}", path))


@cached_parse
def _azure(p: Path) -> pd.DataFrame:
    df, src = v.read_csv(p, ["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
    t = v.parse_utc(df["TIMESTAMP"], src, "TIMESTAMP")
    v.check_increasing(t, src, "TIMESTAMP", strict=False)
    out = pd.DataFrame({
        "time": t,
        "context_tokens": v.numeric(df, "ContextTokens", src, bounds=v.NON_NEGATIVE, unit="tokens", integer=True),
        "generated_tokens": v.numeric(df, "GeneratedTokens", src, bounds=v.NON_NEGATIVE, unit="tokens",
                                      integer=True),
    })
    out.attrs["source"] = str(p)
    return out


def load_mooncake(kind: Literal["conversation", "synthetic"], path: str | Path | None = None) -> pd.DataFrame:
    """Mooncake (Kimi) request trace (Qin et al., FAST 2025; Apache-2.0), one JSON object per line.

    Columns: ``timestamp_s`` (arrival, seconds from trace start; the file has milliseconds),
    ``input_tokens``, ``output_tokens``, ``n_prefix_blocks`` (number of 512-token KV-cache blocks,
    = ceil(input_tokens / 512), checked) and ``prefix_block_ids`` (tuple of block hash ids; equal ids
    across requests mean a shared prefix). Row numbers in errors are JSONL line numbers.
    """
    if kind not in ("conversation", "synthetic"):
        raise DataError(f"unknown Mooncake trace '{kind}'; use 'conversation' or 'synthetic'", field="kind")
    return _mooncake(source_path(f"mooncake/{kind}", path))


@cached_parse
def _mooncake(p: Path) -> pd.DataFrame:
    ts, inp, outp, blocks = [], [], [], []
    with open(p, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({exc.msg}; truncated line?)", file=p, row=line_no) from exc
            for key in ("timestamp", "input_length", "output_length", "hash_ids"):
                if key not in rec:
                    raise DataError("missing key", file=p, row=line_no, field=key)
            for key in ("timestamp", "input_length", "output_length"):
                x = rec[key]
                if isinstance(x, bool) or not isinstance(x, int | float) or not np.isfinite(x) or x < 0:
                    raise DataError(f"expected a non-negative number, got {x!r}", file=p, row=line_no, field=key)
            ids = rec["hash_ids"]
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise DataError("expected a list of integer block ids", file=p, row=line_no, field="hash_ids")
            want = -(-int(rec["input_length"]) // MOONCAKE_BLOCK_TOKENS)
            if len(ids) != want:
                raise DataError(f"{len(ids)} block ids for {rec['input_length']} input tokens (expected {want})",
                                file=p, row=line_no, field="hash_ids")
            if ts and rec["timestamp"] < ts[-1]:
                raise DataError(f"timestamp {rec['timestamp']} ms goes back in time (previous {ts[-1]} ms)",
                                file=p, row=line_no, field="timestamp")
            ts.append(rec["timestamp"])
            inp.append(int(rec["input_length"]))
            outp.append(int(rec["output_length"]))
            blocks.append(tuple(ids))
    if not ts:
        raise DataError("file has no records", file=p, row=1)
    out = pd.DataFrame({
        "timestamp_s": np.asarray(ts, dtype="float64") / 1000.0,
        "input_tokens": np.asarray(inp, dtype="int64"),
        "output_tokens": np.asarray(outp, dtype="int64"),
        "n_prefix_blocks": np.asarray([len(b) for b in blocks], dtype="int64"),
        "prefix_block_ids": pd.Series(blocks, dtype=object),
    })
    out.attrs["source"] = str(p)
    return out


def load_philly_runtimes(path: str | Path | None = None) -> np.ndarray:
    """Run times in seconds (float64) of the 83,154 Philly training jobs (Jeon et al., ATC 2019).

    Nothing is dropped: two jobs have a run time of exactly 0 s (they ended as they started) and are
    kept; callers that need positive durations should clip or filter explicitly.
    """
    return _philly_rt(source_path("philly/runtime", path))


@cached_parse
def _philly_rt(p: Path) -> np.ndarray:
    df, src = v.read_csv(p, ["runtime"])
    return v.numeric(df, "runtime", src, bounds=v.NON_NEGATIVE, unit="s").astype("float64")


def load_philly_node_sequence(path: str | Path | None = None) -> pd.DataFrame:
    """Per-minute busy and total node counts of the Philly cluster, 2017-10-03 .. 2017-12-15 (Helios, MIT).

    Index ``time`` (tz-aware UTC; the file's naive timestamps are taken as UTC), columns ``active_nodes``
    and ``total_nodes`` (0 <= active <= total). Timestamps are minute-aligned and strictly increasing but
    NOT gap-free: the file has one 10-hour hole (2017-10-25 14:00 → 2017-10-26 00:00, after which
    ``active_nodes`` restarts at 0). Gaps are kept and listed in ``frame.attrs["gaps"]`` as
    ``(first missing minute, number of missing minutes)``.
    Note: ``total_nodes`` drops to 174 for exactly one hour at 2017-11-05 01:00, which is when US daylight
    saving time ended, a hint that the source timestamps may be US local time rather than UTC.
    """
    return _philly_nodes(source_path("philly/node-sequence", path))


@cached_parse
def _philly_nodes(p: Path) -> pd.DataFrame:
    df, src = v.read_csv(p, ["time", "active", "total"])
    idx = v.parse_utc(df["time"], src, "time")
    v.check_aligned(idx, src, "time", "1min")
    v.check_increasing(idx, src, "time")
    active = v.numeric(df, "active", src, bounds=v.NON_NEGATIVE, unit="nodes", integer=True)
    total = v.numeric(df, "total", src, bounds=v.NON_NEGATIVE, unit="nodes", integer=True)
    over = active > total
    if over.any():
        pos = int(np.argmax(over))
        raise src.error(f"active nodes {active[pos]} exceed total nodes {total[pos]}", pos, "active")
    out = pd.DataFrame({"active_nodes": active, "total_nodes": total}, index=idx.rename("time"))
    out.attrs.update(source=str(p), gaps=v.find_gaps(idx, "1min").gaps)
    return out


def load_gaia(trace: Literal["pai-100k", "azure-100k", "mustang-100k"] = "pai-100k",
              path: str | Path | None = None) -> pd.DataFrame:
    """About 100k batch jobs over one year from the GAIA artifact (Hanafy et al., ASPLOS 2024; MIT).

    Columns: ``arrival_h`` (hours since trace start, non-decreasing, 0..8760), ``length_h`` (run time,
    hours, > 0) and ``cpus`` (integer >= 1). ``pai-100k`` is Alibaba PAI (GPU cluster), ``azure-100k``
    Azure VMs, ``mustang-100k`` the LANL Mustang HPC cluster. Identical rows are legitimate (jobs
    submitted together) and kept.
    """
    if trace not in _GAIA_FILES:
        raise DataError(f"unknown GAIA trace '{trace}'; use one of {', '.join(_GAIA_FILES)}", field="trace")
    return _gaia(source_path(f"gaia/{trace}", path))


@cached_parse
def _gaia(p: Path) -> pd.DataFrame:
    df, src = v.read_csv(p, ["arrival_time", "length", "cpus"])
    arrival = v.numeric(df, "arrival_time", src, bounds=v.NON_NEGATIVE, unit="h")
    v.check_increasing(pd.Series(arrival), src, "arrival_time", strict=False)
    length = v.numeric(df, "length", src, bounds=v.NON_NEGATIVE, unit="h")
    zero = length == 0
    if zero.any():
        raise src.error("job length must be positive", int(np.argmax(zero)), "length")
    cpus = v.numeric(df, "cpus", src, bounds=(1, np.inf), unit="CPUs", integer=True)
    out = pd.DataFrame({"arrival_h": arrival, "length_h": length, "cpus": cpus})
    out.attrs["source"] = str(p)
    return out
