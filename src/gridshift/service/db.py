"""Engines and migrations.

``make_engine(url)`` opens SQLite (default ``sqlite:///gridshift.db``, WAL mode) or PostgreSQL through
psycopg 3; ``upgrade(url)`` / ``downgrade(url, rev)`` run the Alembic migrations shipped in
``gridshift/service/migrations`` without an ``alembic.ini``. Database failures become one-line
:class:`StateError`\\ s that name the URL with its password masked.
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from gridshift.errors import GridShiftError

DEFAULT_URL = "sqlite:///gridshift.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
PG_CONNECT_TIMEOUT_S = 10
MIGRATION_LOCK_ID = 0x6753_0001  # PostgreSQL advisory lock key held while migrating
# Connection pool: up to 15 connections (SQLAlchemy's default 5 + 10 overflow), all kept open once made.
# With overflow connections, every burst above 5 concurrent transactions opened and closed connections
# (a new PostgreSQL backend process each time: about one per 25 submissions under load).
DEFAULT_POOL_SIZE = 15
DEFAULT_MAX_OVERFLOW = 0


class StateError(GridShiftError):
    """The service state cannot be read or changed (bad URL, database unreachable, conflicting change)."""


class DatabaseUnavailable(StateError):
    """The database cannot be reached or answered with an operational error; retrying later may work."""


class DatabaseBusy(DatabaseUnavailable):
    """The database is reachable but every connection (or the write lock) stays taken; retry later."""


class ConflictError(StateError):
    """A change conflicts with the stored state (a unique or foreign key constraint, a stale version)."""


def normalize_url(url: str | URL | None) -> URL:
    """Parse ``url`` (None = the default SQLite file); ``postgresql://`` and ``postgres://`` use psycopg 3."""
    raw = DEFAULT_URL if url is None else url
    try:
        u = make_url(raw)
    except ArgumentError as exc:
        raise StateError(f"invalid database URL {raw!r}: {exc}") from None
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise StateError(f"unsupported database {mask_url(u)}: use sqlite:///PATH or postgresql://…")
    return u


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def describe_error(exc: BaseException) -> str:
    """The cause of a database error in one line (the driver's message, not SQLAlchemy's wrapper)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    first = text[0] if text else type(orig).__name__
    return " ".join(first.split())


def make_engine(url: str | URL | None = None, *, echo: bool = False, foreign_keys: bool = True,
                pool_size: int | None = None, max_overflow: int | None = None,
                pool_timeout_s: float | None = None) -> Engine:
    """An engine for ``url``.

    SQLite: WAL journal, ``synchronous=NORMAL``, foreign keys on, a busy timeout; write transactions begin
    with ``BEGIN IMMEDIATE`` so concurrent writers wait for each other instead of failing on lock upgrade
    (a connection with execution option ``gridshift_readonly=True`` begins a plain deferred transaction).
    PostgreSQL: psycopg 3, connect timeout. Both: ``pool_pre_ping`` so connections dropped while the
    database was away are replaced. ``pool_size``, ``max_overflow`` and ``pool_timeout_s`` set the
    connection pool (defaults: 15, 0 and 30 s: as many connections as SQLAlchemy's 5 + 10 overflow, but
    kept open instead of opened and closed with each burst); a caller that finds no free connection in time
    gets :class:`DatabaseUnavailable`.
    """
    u = normalize_url(url)
    if pool_size is None and max_overflow is None:
        pool_size, max_overflow = DEFAULT_POOL_SIZE, DEFAULT_MAX_OVERFLOW
    pool = {k: v for k, v in (("pool_size", pool_size), ("max_overflow", max_overflow),
                              ("pool_timeout", pool_timeout_s)) if v is not None}
    try:
        if u.get_backend_name() == "sqlite":
            return _sqlite_engine(u, echo=echo, foreign_keys=foreign_keys, pool=pool)
        connect_args = {} if "connect_timeout" in u.query else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        engine = create_engine(u, echo=echo, pool_pre_ping=True, connect_args=connect_args, **pool)
        _ping_only_if_server_spoke(engine)
        return engine
    except (NoSuchModuleError, ImportError) as exc:
        raise StateError(f"cannot open {mask_url(u)}: {exc} (install 'psycopg[binary]>=3.1')") from None


def _ping_only_if_server_spoke(engine: Engine) -> None:
    """Make ``pool_pre_ping`` on PostgreSQL skip the ``SELECT 1`` round trip while the pooled connection's
    socket has nothing to read: between transactions the server sends nothing unasked, so a readable (or
    hung-up) socket means it closed the connection or is about to (a restart, a terminated backend, an idle
    timeout). Then the full ping runs and, failing, the connection is replaced as before. A connection
    whose socket is quiet is used as is; if it fails all the same, the request gets the usual 503."""
    ping = engine.dialect.do_ping

    def do_ping(dbapi_connection) -> bool:  # noqa: ANN001
        try:
            if not getattr(dbapi_connection, "closed", False) and not getattr(dbapi_connection, "broken", False):
                poller = select.poll()
                poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
                if not poller.poll(0):
                    return True
        except Exception:  # noqa: BLE001 (whatever the check hit: ping for real)
            pass
        return ping(dbapi_connection)

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


def _create_private(database: str) -> None:
    """Create a new SQLite database file readable and writable by the service's user only (0600; SQLite
    gives its WAL and shared-memory files the same mode); an existing file is left as it is."""
    if database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it exists, or its directory does not: SQLite says so when it opens it
        pass


def _sqlite_engine(u: URL, *, echo: bool, foreign_keys: bool, pool: dict | None = None) -> Engine:
    memory = u.database in (None, "", ":memory:")
    kwargs: dict = {"echo": echo, "pool_pre_ping": True,
                    "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool
    else:
        kwargs.update(pool or {})
        _create_private(u.database)
    engine = create_engine(u, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        try:
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        readonly = conn.get_execution_options().get("gridshift_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def translate_errors(url: str | URL) -> Iterator[None]:
    """Turn driver errors into one-line :class:`StateError`\\ s naming ``url`` (password masked)."""
    try:
        yield
    except PoolTimeout as exc:  # every pooled connection in use for pool_timeout seconds
        cause = str(exc).split(" (Background on this error")[0]
        raise DatabaseBusy(f"database {mask_url(url)} busy: no connection free in the pool ({cause}); "
                                  "retry later") from None
    except DisconnectionError as exc:
        raise DatabaseUnavailable(f"database {mask_url(url)} unavailable: {describe_error(exc)}") from None
    except IntegrityError as exc:
        raise ConflictError(f"database {mask_url(url)}: {describe_error(exc)}") from None
    except (OperationalError, InterfaceError) as exc:
        cause = describe_error(exc)
        if "no such table" in cause:
            raise StateError(f"database {mask_url(url)} has no GridShift schema ({cause}); "
                             "run `gridshift db upgrade --db URL` (gridshift serve migrates by itself)") from None
        raise DatabaseUnavailable(f"database {mask_url(url)} unavailable: {cause}") from None
    except DBAPIError as exc:
        cause = describe_error(exc)
        if exc.connection_invalidated:
            raise DatabaseUnavailable(f"database {mask_url(url)} unavailable: {cause}") from None
        if "does not exist" in cause and "relation" in cause:
            raise StateError(f"database {mask_url(url)} has no GridShift schema ({cause}); "
                             "run `gridshift db upgrade --db URL` (gridshift serve migrates by itself)") from None
        raise StateError(f"database {mask_url(url)}: {cause}") from None


def alembic_config(url: str | URL | None = None):  # noqa: ANN201 (alembic imported lazily)
    """An Alembic ``Config`` for the packaged migrations, without an ini file."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url",
                            normalize_url(url).render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def _run(url: str | URL | None, fn) -> None:  # noqa: ANN001
    u = normalize_url(url)
    engine = make_engine(u, foreign_keys=False)  # table rebuilds in SQLite batch migrations need this off
    try:
        with translate_errors(u), engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one migrator at a time (SQLite: BEGIN IMMEDIATE does it)
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
            cfg = alembic_config(u)
            cfg.attributes["connection"] = conn
            fn(cfg)
    finally:
        engine.dispose()


def upgrade(url: str | URL | None = None, rev: str = "head") -> None:
    """Migrate the database at ``url`` up to ``rev`` (creating the SQLite file if needed)."""
    from alembic import command

    _run(url, lambda cfg: command.upgrade(cfg, rev))


def downgrade(url: str | URL | None, rev: str) -> None:
    """Migrate the database at ``url`` down to ``rev`` (``"base"`` drops every table)."""
    from alembic import command

    _run(url, lambda cfg: command.downgrade(cfg, rev))


def head_revision() -> str:
    """The newest migration revision shipped with this package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None = never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with translate_errors(engine.url), engine.connect() as conn:
        conn = conn.execution_options(gridshift_readonly=True)
        return MigrationContext.configure(conn).get_current_revision()
