"""Request rate of online inference services per user region and slot, shaped from a real trace.

Pure functions (arrays in, :class:`~gridshift.model.workload.ServiceDemand` out, no file I/O).

The public LLM traces (Azure LLM 2023, Mooncake) cover about one hour, so days and weeks are built from
three factors, evaluated per minute and averaged over each slot:

(a) **Short-term variability of the trace** — per-minute request counts of the trace's full minutes,
    normalised to mean 1, resampled with a circular moving-block bootstrap: blocks of
    :data:`BLOCK_MIN` consecutive minutes starting at random (seeded) offsets, concatenated. This keeps the
    trace's minute-to-minute correlation up to the block length and its spread of per-minute rates.
    Averaging over a slot makes 1-h slots fluctuate less than 5-min slots. Each region gets its own draw
    (independent user populations). *Assumption*: no correlation beyond the block length.
(b) **Diurnal cycle** in each region's local (standard) time: ``1 + A·cos(2π(h - 16.5)/24)`` with
    ``A = spec.diurnal_amplitude_frac`` — peak at 16:30, trough at 04:30 local time. *Assumption*: a
    single sinusoid; real traffic is often flatter by day and steeper at night.
(c) **Weekends** (local Saturday and Sunday) multiplied by ``spec.weekend_factor``.

Each region's series is then scaled so its busiest slot equals ``spec.peak_requests_per_s[region]``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from gridshift.model.service import DemandSpec
from gridshift.model.time import S_PER_DAY, S_PER_H
from gridshift.model.workload import ServiceDemand

BLOCK_MIN = 15  # bootstrap block length, minutes
PEAK_LOCAL_H = 16.5  # local hour of the diurnal peak (trough 12 h later)

# UTC offset (hours, standard time — daylight saving is ignored) of cloud region codes: every region in
# data/network/gcp_dc_zonecode_mapper.json plus a few newer Google Cloud regions.
_UTC_OFFSET_H: dict[str, float] = {
    "asia-east1": 8, "asia-east2": 8, "asia-northeast1": 9, "asia-northeast2": 9, "asia-northeast3": 9,
    "asia-south1": 5.5, "asia-south2": 5.5, "asia-southeast1": 8, "asia-southeast2": 7,
    "australia-southeast1": 10, "australia-southeast2": 10,
    "europe-central2": 1, "europe-north1": 2, "europe-north2": 1, "europe-southwest1": 1, "europe-west1": 1,
    "europe-west2": 0, "europe-west3": 1, "europe-west4": 1, "europe-west6": 1, "europe-west8": 1,
    "europe-west9": 1, "europe-west10": 1, "europe-west12": 1,
    "me-central1": 3, "me-central2": 3, "me-west1": 2, "africa-south1": 2,
    "northamerica-northeast1": -5, "northamerica-northeast2": -5, "northamerica-south1": -6,
    "southamerica-east1": -3, "southamerica-west1": -4,
    "us-central1": -6, "us-east1": -5, "us-east4": -5, "us-east5": -5, "us-south1": -6,
    "us-west1": -8, "us-west2": -8, "us-west3": -7, "us-west4": -8,
}


def region_utc_offset_h(region: str) -> float:
    """UTC offset in hours (standard time) of a cloud region code such as ``us-west2``.

    Case-insensitive; a zone suffix (``us-west2-a``) is ignored. Raises ValueError for an unknown region.
    """
    key = region.strip().lower()
    if key not in _UTC_OFFSET_H:
        key = re.sub(r"-[a-z]$", "", key)
    if key not in _UTC_OFFSET_H:
        raise ValueError(f"unknown region '{region}': no UTC offset known (known: {', '.join(sorted(_UTC_OFFSET_H))})")
    return float(_UTC_OFFSET_H[key])


def minute_ratios(request_times_s: np.ndarray) -> np.ndarray:
    """Requests per full minute of a trace, divided by their mean (ones if the trace is under a minute)."""
    t = np.asarray(request_times_s, dtype=np.float64)
    t = t[np.isfinite(t)]
    if t.size == 0:
        return np.ones(1)
    t = t - t.min()
    n_min = int(t.max() // 60)
    if n_min < 1:
        return np.ones(1)
    counts = np.bincount((t // 60).astype(np.int64), minlength=n_min)[:n_min].astype(np.float64)
    mean = counts.mean()
    return counts / mean if mean > 0 else np.ones(n_min)


def _bootstrap(ratios: np.ndarray, n_minutes: int, rng: np.random.Generator) -> np.ndarray:
    """A series of ``n_minutes`` made of random circular blocks of ``ratios``."""
    block = min(BLOCK_MIN, ratios.size)
    n_blocks = -(-n_minutes // block)
    starts = rng.integers(0, ratios.size, n_blocks)
    idx = (starts[:, None] + np.arange(block)[None, :]) % ratios.size
    return ratios[idx].ravel()[:n_minutes]


def _epoch_s(slot_starts: pd.DatetimeIndex) -> np.ndarray:
    idx = pd.DatetimeIndex(slot_starts)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return np.asarray((idx - pd.Timestamp(0, tz="UTC")).total_seconds(), dtype=np.float64)


def shape_demand(
    service_name: str,
    spec: DemandSpec,
    *,
    request_times_s: np.ndarray,
    slot_starts: pd.DatetimeIndex,
    slot_duration_s: int,
    region_utc_offset_h: dict[str, float],
    rng: np.random.Generator,
) -> ServiceDemand:
    """Requests per second of ``service_name`` for each region of ``spec.peak_requests_per_s`` and slot.

    ``request_times_s``: request times of the trace, seconds from its start. ``slot_starts``: slot start
    times (UTC; naive = UTC). ``slot_duration_s``: slot length, seconds (a multiple of 60).
    ``region_utc_offset_h``: UTC offset per region, hours. See the module docstring for the method.
    Returns ``requests_per_s[n_regions, n_slots]`` with each region's maximum equal to its peak.
    """
    if slot_duration_s <= 0 or slot_duration_s % 60:
        raise ValueError(f"slot_duration_s must be a positive multiple of 60, got {slot_duration_s}")
    regions = tuple(spec.peak_requests_per_s)
    missing = [r for r in regions if r not in region_utc_offset_h]
    if missing:
        raise ValueError(f"service '{service_name}': no UTC offset for region(s) {', '.join(missing)}")
    starts_s = _epoch_s(slot_starts)
    n_slots, per_slot = starts_s.size, slot_duration_s // 60
    # Minute midpoints, UTC epoch seconds, [n_slots, per_slot].
    minute_s = starts_s[:, None] + (np.arange(per_slot)[None, :] + 0.5) * 60.0
    ratios = minute_ratios(request_times_s)
    out = np.zeros((len(regions), n_slots))
    for r, region in enumerate(regions):
        local_s = minute_s + float(region_utc_offset_h[region]) * S_PER_H
        hour = (local_s % S_PER_DAY) / S_PER_H
        diurnal = 1.0 + spec.diurnal_amplitude_frac * np.cos(2 * np.pi * (hour - PEAK_LOCAL_H) / 24.0)
        weekday = (np.floor(local_s / S_PER_DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
        weekly = np.where(weekday >= 5, spec.weekend_factor, 1.0)
        noise = _bootstrap(ratios, n_slots * per_slot, rng).reshape(n_slots, per_slot)
        shape = (noise * diurnal * weekly).mean(axis=1)
        top = shape.max() if n_slots else 0.0
        if top > 0:
            out[r] = shape / top * float(spec.peak_requests_per_s[region])
    return ServiceDemand(service=service_name, regions=regions, requests_per_s=out)
