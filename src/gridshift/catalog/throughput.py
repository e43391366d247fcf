"""The throughput table: job types x accelerator types x gang sizes -> steps per second.

A :class:`ThroughputTable` holds, for every (job type, accelerator type, gang size) it knows, the job's
throughput in its own work unit per second (``steps_per_s``; Gavel's jobs count training iterations, the
modern fleet's LLM jobs count tokens), whether that figure was **measured** or **estimated**, the source it
comes from and, where the source measured it, the average power per accelerator. A throughput of 0 means the
job cannot run there (Gavel's 0 entries, a model that does not fit in memory, an accelerator that does not
support the job kind). Combinations the table has no entry for also read as 0.

Lookups are vectorised: :meth:`ThroughputTable.matrix` gives ``[n jobs, K types]`` for n jobs (each with its
own type and gang size), :meth:`ThroughputTable.tensor` the dense ``[J, G, K]`` array the round simulator
takes (:mod:`gridshift.sim.rounds`). Energy per unit of work is ``gang x power_w / steps_per_s`` with the
measured average power where the source has one, else board power x :data:`DEFAULT_POWER_FRAC` (an
estimate, see there).

:meth:`ThroughputTable.from_gavel` builds the table from Gavel's measured throughputs (Narayanan et al.,
OSDI 2020) as read by :func:`gridshift.data.gavel.load_gavel_throughputs`; :mod:`gridshift.catalog.estimate`
fills types without measurements; :mod:`gridshift.catalog.fleet_jobs` builds the modern-fleet table. The
table does no file I/O (``from_gavel`` reads only the packaged catalog, when none is given).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from gridshift.errors import CatalogError

__all__ = [
    "DEFAULT_POWER_FRAC",
    "GAVEL_NAMES",
    "GAVEL_SOURCE",
    "ThroughputEntry",
    "ThroughputTable",
]

#: Average accelerator power while a job runs, as a fraction of board power, for entries whose source
#: measured no power. ESTIMATE: the median over the 6 distinct workloads of the Emerald AI A100 DVFS sweep
#: (``emerald_dvfs_sweep.csv``; Colangelo et al., arXiv 2507.00909) at the uncapped 400 W setting: 343-388 W
#: per GPU, median 372.6 W = 0.93 of the 400 W board (range 0.86-0.97). ML.ENERGY v3's large-batch H100
#: serving runs draw up to 0.99 of board power; Gavel's small models on old GPUs may draw less. Override per
#: call with ``power_frac=``.
DEFAULT_POWER_FRAC = 0.93

#: Gavel's accelerator keys -> catalog names.
GAVEL_NAMES = {"k80": "K80", "p100": "P100", "v100": "V100"}

GAVEL_SOURCE = ("measured: Gavel simulation_throughputs.json (Narayanan et al., OSDI 2020; "
                "stanford-futuredata/gavel scheduler/simulation_throughputs.json), job alone, {placement}")

#: Gavel's jobs train their models from scratch.
GAVEL_KIND = "pre-training"


class ThroughputEntry(NamedTuple):
    """One cell of the table."""

    steps_per_s: float
    measured: bool
    source: str
    avg_power_w: float  # measured average power per accelerator (W); NaN when the source has none


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass(frozen=True, eq=False)
class ThroughputTable:
    """Throughput of each job type on each accelerator type at each gang size (see the module docstring).

    Arrays are indexed ``[job type, gang size, accelerator type]`` following :attr:`job_types`,
    :attr:`gang_axis` and :attr:`acc_types`. Build tables with :meth:`from_records` or :meth:`from_gavel`
    rather than by hand.
    """

    job_types: tuple[str, ...]
    acc_types: tuple[str, ...]
    gang_axis: np.ndarray  # [G] sorted distinct gang sizes over all job types
    steps_per_s: np.ndarray  # [J, G, K]; 0 = cannot run or no entry
    present: np.ndarray  # [J, G, K] bool: the table has an entry (possibly 0)
    measured: np.ndarray  # [J, G, K] bool
    source_id: np.ndarray  # [J, G, K] int into ``sources``; -1 = no entry
    sources: tuple[str, ...]
    avg_power_w: np.ndarray  # [J, G, K] measured average power per accelerator, W; NaN = not measured
    board_power_w: np.ndarray  # [K]
    host_power_w: np.ndarray  # [K]
    kinds: tuple[str | None, ...]  # [J] pre-training / fine-tuning / batch-inference (None if unknown)
    work_units: tuple[str, ...]  # [J] what one "step" is for the job type ("step", "token", ...)
    notes: Mapping[str, Any] = field(default_factory=dict)  # free-form provenance (e.g. the file read)

    def __post_init__(self) -> None:
        j, g, k = len(self.job_types), len(self.gang_axis), len(self.acc_types)
        for name in ("steps_per_s", "present", "measured", "source_id", "avg_power_w"):
            if getattr(self, name).shape != (j, g, k):
                raise ValueError(f"{name} must have shape {(j, g, k)}")
        if len(self.kinds) != j or len(self.work_units) != j:
            raise ValueError("kinds and work_units need one entry per job type")
        if self.board_power_w.shape != (k,) or self.host_power_w.shape != (k,):
            raise ValueError("board_power_w and host_power_w need one entry per accelerator type")
        if len(set(self.job_types)) != j or len(set(self.acc_types)) != k:
            raise ValueError("job and accelerator type names must be distinct")
        if np.any(np.diff(self.gang_axis) <= 0):
            raise ValueError("gang_axis must be strictly increasing")
        if np.any(self.steps_per_s < 0) or not np.all(np.isfinite(self.steps_per_s)):
            raise ValueError("steps_per_s must be finite and non-negative")
        for a in (self.steps_per_s, self.present, self.measured, self.source_id, self.avg_power_w):
            a.setflags(write=False)
        object.__setattr__(self, "_job_index", {n: i for i, n in enumerate(self.job_types)})
        acc_index = {n: i for i, n in enumerate(self.acc_types)}
        acc_index.update({_norm(n): i for i, n in enumerate(self.acc_types)})
        object.__setattr__(self, "_acc_index", acc_index)

    # ------------------------------------------------------------------------------------------ building

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        *,
        board_power_w: Mapping[str, float],
        host_power_w: Mapping[str, float] | None = None,
        kinds: Mapping[str, str | None] | None = None,
        work_units: Mapping[str, str] | None = None,
        acc_types: Sequence[str] | None = None,
        job_types: Sequence[str] | None = None,
        notes: Mapping[str, Any] | None = None,
    ) -> ThroughputTable:
        """Build a table from one mapping per entry.

        Each record has ``job_type``, ``accelerator``, ``gang``, ``steps_per_s``, ``measured`` (bool) and
        ``source``, optionally ``avg_power_w`` (measured average power per accelerator). ``board_power_w``
        (and optionally ``host_power_w``) give every accelerator type's power. ``acc_types`` / ``job_types``
        fix the order (default: first appearance). A repeated (job, accelerator, gang) is an error.
        """
        recs = list(records)
        jobs = list(job_types) if job_types is not None else list(dict.fromkeys(r["job_type"] for r in recs))
        accs = list(acc_types) if acc_types is not None else list(dict.fromkeys(r["accelerator"] for r in recs))
        gangs = np.array(sorted({int(r["gang"]) for r in recs}), dtype=np.int64)
        ji = {n: i for i, n in enumerate(jobs)}
        ai = {n: i for i, n in enumerate(accs)}
        gi = {int(g): i for i, g in enumerate(gangs)}
        shape = (len(jobs), len(gangs), len(accs))
        steps = np.zeros(shape)
        present = np.zeros(shape, dtype=bool)
        measured = np.zeros(shape, dtype=bool)
        sid = np.full(shape, -1, dtype=np.int64)
        power = np.full(shape, np.nan)
        sources: dict[str, int] = {}
        for r in recs:
            if r["job_type"] not in ji or r["accelerator"] not in ai:
                raise ValueError(f"record for unlisted job or accelerator: {r['job_type']!r}, {r['accelerator']!r}")
            if isinstance(r["gang"], bool) or int(r["gang"]) != r["gang"] or int(r["gang"]) < 1:
                raise ValueError(f"gang must be a positive integer, got {r['gang']!r}")
            idx = (ji[r["job_type"]], gi[int(r["gang"])], ai[r["accelerator"]])
            if present[idx]:
                raise ValueError(f"duplicate entry {r['job_type']!r} x {r['accelerator']!r} x {r['gang']}")
            v = float(r["steps_per_s"])
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"steps_per_s must be finite and >= 0, got {v!r}")
            steps[idx] = v
            present[idx] = True
            measured[idx] = bool(r["measured"])
            sid[idx] = sources.setdefault(str(r["source"]), len(sources))
            pw = r.get("avg_power_w")
            if pw is not None and np.isfinite(pw):
                power[idx] = float(pw)
        missing = [a for a in accs if a not in board_power_w]
        if missing:
            raise ValueError(f"no board power for accelerator type(s) {missing}")
        host = host_power_w or {}
        kinds = kinds or {}
        units = work_units or {}
        return cls(
            job_types=tuple(jobs), acc_types=tuple(accs), gang_axis=gangs, steps_per_s=steps, present=present,
            measured=measured, source_id=sid, sources=tuple(sources), avg_power_w=power,
            board_power_w=np.array([float(board_power_w[a]) for a in accs]),
            host_power_w=np.array([float(host.get(a, 0.0)) for a in accs]),
            kinds=tuple(kinds.get(j) for j in jobs), work_units=tuple(units.get(j, "step") for j in jobs),
            notes=dict(notes or {}),
        )

    @classmethod
    def from_gavel(
        cls,
        frame: pd.DataFrame,
        consolidated: bool = True,
        *,
        catalog: Mapping[str, Any] | None = None,
    ) -> ThroughputTable:
        """Gavel's measured throughputs of each job running alone on K80, P100 and V100 (catalog names).

        ``frame`` is the output of :func:`gridshift.data.gavel.load_gavel_throughputs` (the caller reads
        it; its ``gpus`` column is the gang size). ``consolidated`` picks placements with all of a job's
        GPUs on one server (Gavel's simulator default) or spread across servers. ``catalog`` supplies board
        and host power (the built-in catalog when omitted). Every entry is ``measured``; a 0 means the
        configuration did not run. Gavel measured multi-GPU throughputs only for distributed-capable jobs,
        so :meth:`combinations` lists exactly the measured (job type, gang) pairs and :meth:`gang_sizes` a
        job's measured sizes.
        """
        if catalog is None:
            from gridshift.catalog.accelerators import load_catalog

            catalog = load_catalog()
        t = frame[frame["consolidated"] == bool(consolidated)]
        unknown = sorted(set(t["accelerator"]) - set(GAVEL_NAMES))
        if unknown:
            raise CatalogError(f"Gavel accelerator(s) {unknown} have no catalog name", field="accelerator")
        accs = [GAVEL_NAMES[a] for a in GAVEL_NAMES]
        src = GAVEL_SOURCE.format(placement="consolidated" if consolidated else "unconsolidated")
        recs = [{"job_type": j, "accelerator": GAVEL_NAMES[a], "gang": int(g), "steps_per_s": float(s),
                 "measured": True, "source": src}
                for a, j, g, s in t[["accelerator", "job_type", "gpus", "steps_per_s"]].itertuples(index=False)]
        jobs = sorted(t["job_type"].unique())
        return cls.from_records(
            recs, board_power_w={a: catalog[a].board_power_w for a in accs},
            host_power_w={a: catalog[a].host_power_w for a in accs},
            kinds=dict.fromkeys(jobs, GAVEL_KIND), work_units=dict.fromkeys(jobs, "step"),
            acc_types=accs, job_types=jobs,
            notes={"source": frame.attrs.get("source", "gavel"), "consolidated": bool(consolidated)},
        )

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per entry (the inverse of :meth:`from_records`)."""
        out = []
        for j, g, k in zip(*np.nonzero(self.present), strict=True):
            pw = self.avg_power_w[j, g, k]
            out.append({"job_type": self.job_types[j], "accelerator": self.acc_types[k],
                        "gang": int(self.gang_axis[g]), "steps_per_s": float(self.steps_per_s[j, g, k]),
                        "measured": bool(self.measured[j, g, k]), "source": self.sources[self.source_id[j, g, k]],
                        "avg_power_w": None if np.isnan(pw) else float(pw)})
        return out

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per entry, with the job's kind and work unit."""
        df = pd.DataFrame(self.to_records(), columns=["job_type", "accelerator", "gang", "steps_per_s",
                                                      "measured", "source", "avg_power_w"])
        df["kind"] = df["job_type"].map(dict(zip(self.job_types, self.kinds, strict=True)))
        df["work_unit"] = df["job_type"].map(dict(zip(self.job_types, self.work_units, strict=True)))
        return df

    def with_entries(self, records: Iterable[Mapping[str, Any]], *, board_power_w: Mapping[str, float] | None = None,
                     host_power_w: Mapping[str, float] | None = None) -> ThroughputTable:
        """A new table with ``records`` added (existing entries win; new accelerator types need power)."""
        old = self.to_records()
        have = {(r["job_type"], r["accelerator"], r["gang"]) for r in old}
        new = [r for r in records if (r["job_type"], r["accelerator"], int(r["gang"])) not in have]
        accs = list(self.acc_types) + [a for a in dict.fromkeys(r["accelerator"] for r in new) if a not in self.acc_types]
        board = {**dict(zip(self.acc_types, self.board_power_w, strict=True)), **(board_power_w or {})}
        host = {**dict(zip(self.acc_types, self.host_power_w, strict=True)), **(host_power_w or {})}
        jobs = list(self.job_types) + [j for j in dict.fromkeys(r["job_type"] for r in new) if j not in self.job_types]
        return ThroughputTable.from_records(
            old + new, board_power_w=board, host_power_w=host, acc_types=accs, job_types=jobs,
            kinds=dict(zip(self.job_types, self.kinds, strict=True)),
            work_units=dict(zip(self.job_types, self.work_units, strict=True)), notes=self.notes)

    # ------------------------------------------------------------------------------------------ look-up

    def job_index(self, job_types: str | Sequence[str]) -> np.ndarray:
        """Row indices of job types (CatalogError for an unknown name)."""
        names = [job_types] if isinstance(job_types, str) else list(job_types)
        idx = self._job_index  # type: ignore[attr-defined]
        out = np.empty(len(names), dtype=np.int64)
        for i, n in enumerate(names):
            if n not in idx:
                raise CatalogError(f"unknown job type {n!r}; the table has {len(self.job_types)}: "
                                   f"{', '.join(self.job_types[:8])}{', ...' if len(self.job_types) > 8 else ''}",
                                   field="job_type")
            out[i] = idx[n]
        return out

    def acc_index(self, acc_types: str | Sequence[str]) -> np.ndarray:
        """Column indices of accelerator types; names match ignoring case, spaces, '-' and '_'."""
        names = [acc_types] if isinstance(acc_types, str) else list(acc_types)
        idx = self._acc_index  # type: ignore[attr-defined]
        out = np.empty(len(names), dtype=np.int64)
        for i, n in enumerate(names):
            k = idx.get(n, idx.get(_norm(n)))
            if k is None:
                raise CatalogError(f"accelerator type {n!r} is not in the table; it has {', '.join(self.acc_types)}",
                                   field="accelerator")
            out[i] = k
        return out

    def _gang_index(self, gang: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gang-axis positions of ``gang`` and whether each size is on the axis at all."""
        g = np.asarray(gang, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.gang_axis, g), 0, max(len(self.gang_axis) - 1, 0))
        ok = (self.gang_axis[pos] == g) if len(self.gang_axis) else np.zeros(g.shape, dtype=bool)
        return pos, ok

    def _cells(self, job_types: Sequence[str], acc_types: Sequence[str] | None,
               gang: int | Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ji = self.job_index(job_types)
        ki = np.arange(len(self.acc_types)) if acc_types is None else self.acc_index(acc_types)
        g = np.asarray(gang, dtype=np.int64)
        if g.ndim > 1 or (g.ndim == 1 and len(g) != len(ji) and 1 not in (len(g), len(ji))):
            raise ValueError(f"gang must be one size or one per job ({len(ji)}), got shape {g.shape}")
        ji, g = np.broadcast_arrays(ji, g.reshape(-1) if g.ndim else g)
        gi, ok = self._gang_index(g)
        return ji, gi, ki, ok

    def entry(self, job_type: str, acc_type: str, gang: int) -> ThroughputEntry | None:
        """The full entry (throughput, measured flag, source, measured power), or None if the table has none."""
        j = self.job_index(job_type)[0]
        k = self.acc_index(acc_type)[0]
        g, ok = self._gang_index(np.array([gang]))
        if not ok[0] or not self.present[j, g[0], k]:
            return None
        c = (j, g[0], k)
        return ThroughputEntry(float(self.steps_per_s[c]), bool(self.measured[c]), self.sources[self.source_id[c]],
                               float(self.avg_power_w[c]))

    def get(self, job_type: str, acc_type: str, gang: int) -> float:
        """Steps per second of ``job_type`` on ``gang`` accelerators of ``acc_type``; 0 if it cannot run
        there or the table has no entry."""
        e = self.entry(job_type, acc_type, gang)
        return 0.0 if e is None else e.steps_per_s

    def is_measured(self, job_type: str, acc_type: str, gang: int) -> bool:
        e = self.entry(job_type, acc_type, gang)
        return bool(e is not None and e.measured)

    def source(self, job_type: str, acc_type: str, gang: int) -> str | None:
        e = self.entry(job_type, acc_type, gang)
        return None if e is None else e.source

    def matrix(self, job_types: Sequence[str], acc_types: Sequence[str] | None = None,
               gang: int | Sequence[int] | np.ndarray = 1) -> np.ndarray:
        """``[n, K]`` steps per second: row i is job ``job_types[i]`` at gang size ``gang[i]`` (one size for
        all jobs, or one job at several sizes, broadcast) on each of ``acc_types`` (default: all of the table's types, in its order). 0 where the
        job cannot run or the table has no entry (including gang sizes the table never saw)."""
        ji, gi, ki, ok = self._cells(job_types, acc_types, gang)
        out = self.steps_per_s[ji[:, None], gi[:, None], ki[None, :]]
        return np.where(ok[:, None], out, 0.0)

    def measured_matrix(self, job_types: Sequence[str], acc_types: Sequence[str] | None = None,
                        gang: int | Sequence[int] | np.ndarray = 1) -> np.ndarray:
        """``[n, K]`` bool, same layout as :meth:`matrix`: True where the entry is measured."""
        ji, gi, ki, ok = self._cells(job_types, acc_types, gang)
        return self.measured[ji[:, None], gi[:, None], ki[None, :]] & ok[:, None]

    def tensor(self, job_types: Sequence[str] | None = None, gang_sizes: Sequence[int] | np.ndarray | None = None,
               acc_types: Sequence[str] | None = None) -> np.ndarray:
        """Dense ``thr[job type, gang size, accelerator type]`` for the round simulator (defaults: all)."""
        ji = np.arange(len(self.job_types)) if job_types is None else self.job_index(job_types)
        ki = np.arange(len(self.acc_types)) if acc_types is None else self.acc_index(acc_types)
        g = self.gang_axis if gang_sizes is None else np.asarray(gang_sizes, dtype=np.int64)
        gi, ok = self._gang_index(g)
        out = self.steps_per_s[ji[:, None, None], gi[None, :, None], ki[None, None, :]]
        return np.where(ok[None, :, None], out, 0.0)

    def gang_sizes(self, job_type: str) -> np.ndarray:
        """Gang sizes at which ``job_type`` can run on at least one accelerator type (sorted)."""
        j = self.job_index(job_type)[0]
        return self.gang_axis[np.any(self.steps_per_s[j] > 0, axis=1)].copy()

    def combinations(self) -> list[tuple[str, int]]:
        """The (job type, gang) pairs the table has an entry for on at least one type."""
        j, g = np.nonzero(np.any(self.present, axis=2))
        return [(self.job_types[a], int(self.gang_axis[b])) for a, b in zip(j, g, strict=True)]

    def kind(self, job_type: str) -> str | None:
        return self.kinds[self.job_index(job_type)[0]]

    def work_unit(self, job_type: str) -> str:
        return self.work_units[self.job_index(job_type)[0]]

    def subset(self, job_types: Sequence[str] | None = None, acc_types: Sequence[str] | None = None) -> ThroughputTable:
        """The same table restricted to some job and/or accelerator types."""
        jobs = set(self.job_types if job_types is None else job_types)
        accs = list(self.acc_types) if acc_types is None else [self.acc_types[k] for k in self.acc_index(acc_types)]
        recs = [r for r in self.to_records() if r["job_type"] in jobs and r["accelerator"] in accs]
        order = [j for j in self.job_types if j in jobs]
        self.job_index(order)
        return ThroughputTable.from_records(
            recs, board_power_w=dict(zip(self.acc_types, self.board_power_w, strict=True)),
            host_power_w=dict(zip(self.acc_types, self.host_power_w, strict=True)), acc_types=accs, job_types=order,
            kinds=dict(zip(self.job_types, self.kinds, strict=True)),
            work_units=dict(zip(self.job_types, self.work_units, strict=True)), notes=self.notes)

    # ------------------------------------------------------------------------------------------ energy

    def power_matrix_w(self, job_types: Sequence[str], acc_types: Sequence[str] | None = None,
                       gang: int | Sequence[int] | np.ndarray = 1, *, power_frac: float = DEFAULT_POWER_FRAC,
                       include_host: bool = False) -> np.ndarray:
        """``[n, K]`` average power per accelerator while the job runs, W: the measured figure where the
        entry has one, else ``board_power_w x power_frac``; plus the type's host power if ``include_host``."""
        if not 0 < power_frac <= 1.5:
            raise ValueError(f"power_frac must be in (0, 1.5], got {power_frac}")
        ji, gi, ki, _ = self._cells(job_types, acc_types, gang)
        meas = self.avg_power_w[ji[:, None], gi[:, None], ki[None, :]]
        p = np.where(np.isnan(meas), self.board_power_w[ki][None, :] * power_frac, meas)
        if include_host:
            p = p + self.host_power_w[ki][None, :]
        return p

    def energy_matrix(self, job_types: Sequence[str], acc_types: Sequence[str] | None = None,
                      gang: int | Sequence[int] | np.ndarray = 1, *, power_frac: float = DEFAULT_POWER_FRAC,
                      include_host: bool = False) -> np.ndarray:
        """``[n, K]`` energy per unit of work (J per step of the job type's work unit):
        ``gang x power_w / steps_per_s``; ``inf`` where the job cannot run."""
        thr = self.matrix(job_types, acc_types, gang)
        p = self.power_matrix_w(job_types, acc_types, gang, power_frac=power_frac, include_host=include_host)
        g = np.broadcast_to(np.asarray(gang, dtype=float).reshape(-1), (len(thr),))[:, None]
        with np.errstate(divide="ignore"):
            return np.where(thr > 0, g * p / np.where(thr > 0, thr, 1.0), np.inf)

    def energy_j_per_step(self, job_type: str, acc_type: str, gang: int, *,
                          power_frac: float = DEFAULT_POWER_FRAC, include_host: bool = False) -> float:
        """Energy per step (the job type's work unit) in J: ``gang x power_w / steps_per_s``, with the
        measured average power per accelerator where the entry has one, else board power x ``power_frac``
        (:data:`DEFAULT_POWER_FRAC`, an estimate). ``inf`` if the job cannot run there."""
        return float(self.energy_matrix([job_type], [acc_type], gang, power_frac=power_frac,
                                        include_host=include_host)[0, 0])
