"""Atomic writing of output files and whole output directories.

``OutputDir`` builds a run's outputs in a hidden sibling directory and renames it into place only when
everything was written, so a reader never sees a half-written output directory and a failed run leaves the
previous one untouched. Only directories that gridshift itself wrote (marked by ``.gridshift-output``) are
ever replaced.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.data import files
from gridshift.errors import GridShiftError
from gridshift.sim.result import PolicyRun

MARKER = ".gridshift-output"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_mode(path: str | os.PathLike, *, directory: bool) -> None:
    """Give a temp file/dir (created 0600/0700) the permissions a plain open()/mkdir() would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _is_gridshift_dir(path: Path) -> bool:
    return (path / MARKER).is_file()


def _check_replaceable(final: Path) -> None:
    if not os.path.lexists(final):
        return
    if not final.is_dir():
        raise GridShiftError("output path exists and is not a directory; choose another output path", file=final)
    if not _is_gridshift_dir(final) and any(final.iterdir()):
        raise GridShiftError(
            f"output directory is not empty and was not written by gridshift (no {MARKER} file); "
            "refusing to replace it, choose another output path", file=final)


def check_output_dir(final_dir: str | os.PathLike) -> None:
    """Fail now, before any work, if ``final_dir`` could not be written later: it exists and is a file or a
    foreign non-empty directory, or its nearest existing ancestor is not writable."""
    final = Path(os.path.abspath(final_dir))
    _check_replaceable(final)
    ancestor = final.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GridShiftError(f"cannot create the output directory: {ancestor} is not a directory", file=final)
    try:  # a probe, removed at once: permission bits say too little (root, read-only mounts, /proc)
        os.rmdir(tempfile.mkdtemp(prefix=f".{final.name}.probe-", dir=ancestor))
    except OSError as exc:
        raise GridShiftError(f"cannot create the output directory in {ancestor}: {exc.strerror or exc}",
                             file=final) from None


class OutputDir:
    """``with OutputDir(final) as tmp:`` write into ``tmp``; on success it atomically becomes ``final``."""

    def __init__(self, final_dir: str | os.PathLike) -> None:
        self.final = Path(os.path.abspath(final_dir))
        self.tmp: Path | None = None
        self._signals = files.terminate_cleanly()

    def __enter__(self) -> Path:
        _check_replaceable(self.final)  # fail before writing anything
        parent = self.final.parent
        _remove_leftovers(self.final)
        self._signals.__enter__()  # SIGTERM while writing: the temporary directory is removed, then exit
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.tmp-", dir=parent))
            _normal_mode(self.tmp, directory=True)
        except OSError as exc:
            self._signals.__exit__(None, None, None)
            raise GridShiftError(f"cannot create output directory: {exc.strerror or exc}", file=self.final) from exc
        (self.tmp / MARKER).write_text("written by gridshift; this directory may be replaced by the next run\n",
                                       encoding="utf-8")
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        tmp, self.tmp = self.tmp, None
        if tmp is None:
            return False
        try:
            if exc_type is not None:
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            try:
                self._commit(tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return False
        finally:
            self._signals.__exit__(None, None, None)

    def _commit(self, tmp: Path) -> None:
        final, parent = self.final, self.final.parent
        _check_replaceable(final)  # may have changed while we were writing
        old: Path | None = None
        if os.path.lexists(final):
            old = parent / f".{final.name}.old-{secrets.token_hex(4)}"
            os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if old is not None:
                os.rename(old, final)  # put the previous output back
            raise GridShiftError(f"cannot move output into place: {exc.strerror or exc}", file=final) from exc
        files.fsync_dir(parent)
        if old is not None:
            if old.is_symlink():
                old.unlink()
            else:
                shutil.rmtree(old, ignore_errors=True)


LEFTOVER_AGE_S = 3600.0


def _remove_leftovers(final: Path) -> None:
    """Remove the temporary and old directories of ``final`` that a killed run (SIGKILL, power cut) left
    behind: only ones gridshift wrote (with the marker file) and untouched for an hour (no run still writes)."""
    try:
        siblings = list(final.parent.glob(f".{glob.escape(final.name)}.*-*"))
    except OSError:
        return
    for d in siblings:
        rest = d.name[len(final.name) + 2:]
        if not (rest.startswith("tmp-") or rest.startswith("old-")) or d.is_symlink() or not d.is_dir():
            continue
        try:
            if _is_gridshift_dir(d) and time.time() - d.stat().st_mtime > LEFTOVER_AGE_S:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            continue


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text via a temporary file in the same directory, fsync, then ``os.replace``."""
    files.write_text_atomic(path, text)


def to_jsonable(obj):
    """Plain JSON types: NaN/inf become None, numpy/pandas scalars and timestamps are converted."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or obj is pd.NaT:
        return None
    if isinstance(obj, str):
        return obj
    if isinstance(obj, (pd.Timestamp, datetime, date)):
        return obj.isoformat()
    if isinstance(obj, pd.Timedelta):
        return obj.total_seconds()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    try:
        if pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    return str(obj)


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON (NaN/inf → null) atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    write_text_atomic(path, text + "\n")


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return safe or "policy"


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    files.write_bytes_atomic(path, df.to_parquet(index=False, engine="pyarrow"))


def write_timeseries(out_dir: str | os.PathLike, runs: list[PolicyRun]) -> list[Path]:
    """Write ``timeseries/<policy>/sites.parquet`` (+ ``jobs.parquet``, ``services.parquet`` and
    ``placements.parquet`` when non-empty).

    Policy names are made filesystem-safe (and unique); returns the files written.
    """
    root = Path(out_dir) / "timeseries"
    written: list[Path] = []
    used: set[str] = set()
    for run in runs:
        base = name = _safe_name(run.policy)
        n = 2
        while name.lower() in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name.lower())
        pdir = root / name
        pdir.mkdir(parents=True, exist_ok=True)
        for fname, df, always in (("sites.parquet", run.site_timeseries, True),
                                  ("jobs.parquet", run.jobs, False),
                                  ("services.parquet", run.service_timeseries, False),
                                  ("placements.parquet", run.placements, False)):
            if df is None or (df.empty and not always):
                continue
            _write_parquet(df.reset_index(drop=True), pdir / fname)
            written.append(pdir / fname)
        if run.event_traces:
            ev = pd.concat([tr.assign(event=k) for k, tr in run.event_traces.items()], ignore_index=True)
            _write_parquet(ev, pdir / "events.parquet")
            written.append(pdir / "events.parquet")
    return written
