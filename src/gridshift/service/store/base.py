"""The store's foundation: the table handles, its errors, UTC helpers and the transaction every aggregate's
methods run in (:class:`StoreBase`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from gridshift.model.time import as_utc, utcnow  # noqa: F401 (utcnow: the clock of every store module)
from gridshift.service.db import (
    SQLITE_BUSY_TIMEOUT_S,
    ConflictError,
    DatabaseBusy,
    StateError,
    current_revision,
    head_revision,
    make_engine,
    mask_url,
    translate_errors,
)
from gridshift.service.tables import (
    DispatchRecord,
    GridEventRecord,
    JobEventRecord,
    JobRecord,
    PlanItemRecord,
    PlanRecord,
    ServiceRecord,
    SettingRecord,
    SignalRecord,
    Token,
)

JOBS = JobRecord.__table__
EVENTS = JobEventRecord.__table__
DISPATCHES = DispatchRecord.__table__
TOKENS = Token.__table__
SIGNALS = SignalRecord.__table__
GRID_EVENTS = GridEventRecord.__table__
SERVICES = ServiceRecord.__table__
PLANS = PlanRecord.__table__
PLAN_ITEMS = PlanItemRecord.__table__
SETTINGS = SettingRecord.__table__


class NotFound(StateError):
    """No such object, or the principal may not see it."""


class PermissionDenied(StateError):
    """The principal's role may not do this."""


class InvalidSpec(StateError):
    """A submitted job, service or value does not validate."""


class IllegalTransition(ConflictError):
    """The status change (or action) is not allowed from the job's current status."""


class VersionConflict(ConflictError):
    """The job changed since the caller read it (optimistic concurrency)."""


def _utc(t: datetime, what: str) -> datetime:
    if not isinstance(t, datetime):
        raise InvalidSpec(f"{what} must be a datetime, got {type(t).__name__}")
    return as_utc(t)


def _validation_error(what: str, exc: ValidationError) -> InvalidSpec:
    e = exc.errors()[0]
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    loc = ".".join(str(x) for x in e.get("loc", ()))
    return InvalidSpec(f"{what}: {msg}", field=loc or None)


class StoreBase:
    """The engine and one transaction per call, shared by the aggregates' stores (see :class:`Store`)."""

    def __init__(self, url: str | URL | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine if engine is not None else make_engine(url)
        self.url = mask_url(self.engine.url)
        # SQLite admits one writer at a time; its busy handler makes the others sleep and poll (up to 100 ms
        # a try), which under concurrent submissions gave waits of hundreds of ms. This store's write
        # transactions queue on a lock instead (woken as soon as the writer before them finishes); other
        # processes on the same file still wait through the busy timeout.
        self._write_lock = threading.RLock() if self.engine.dialect.name == "sqlite" else None
        self._write_since: float | None = None  # when the current write transaction took the lock (monotonic)
        self._busy = (0, None)  # (write transactions refused as busy, when the last one was)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_health(self) -> dict:
        """Write trouble, read without taking the write lock: how long the write transaction in progress has
        held it (s; None: none, or not SQLite), and how many write transactions were refused as busy (and
        when the last one was)."""
        since = self._write_since
        count, last = self._busy
        return {"write_lock_held_s": None if since is None else round(time.monotonic() - since, 3),
                "busy_errors": count, "last_busy_at": last}

    def _note_busy(self) -> None:
        self._busy = (self._busy[0] + 1, utcnow())

    @contextmanager
    def _tx(self, readonly: bool = False) -> Iterator[Connection]:
        lock = None if readonly else self._write_lock
        if lock is not None and not lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            self._note_busy()
            raise DatabaseBusy(f"database {self.url} unavailable: database is locked (another write "
                                      f"transaction of this service took over {SQLITE_BUSY_TIMEOUT_S:g} s)")
        outer = lock is not None and self._write_since is None
        if outer:
            self._write_since = time.monotonic()
        try:
            with translate_errors(self.engine.url), self.engine.connect() as conn:
                if readonly:
                    conn = conn.execution_options(gridshift_readonly=True)
                with conn.begin():
                    yield conn
        except DatabaseBusy:
            if not readonly:
                self._note_busy()
            raise
        finally:
            if outer:
                self._write_since = None
            if lock is not None:
                lock.release()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def check_schema(self) -> None:
        """Raise :class:`StateError` unless the database is migrated to this package's newest revision."""
        cur, head = current_revision(self.engine), head_revision()
        if cur != head:
            raise StateError(f"database {self.url} is at schema revision {cur or 'none'}, expected {head}; "
                             "run `gridshift db upgrade --db URL` (gridshift serve migrates by itself)")

    def _upsert(self, table):  # noqa: ANN001, ANN202
        """An INSERT of ``table`` in this database's dialect, for ``on_conflict_do_update``."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)
