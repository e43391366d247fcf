"""A throwaway PostgreSQL server for the tests, started from the system's PostgreSQL binaries.

The session fixture ``pg_server`` runs ``initdb`` into a temporary directory, starts the server on a free
local port with ``pg_ctl`` (socket in the same directory) and stops it with ``pg_ctl stop -m fast`` at the
end. PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user (created by
Debian's package; a system user ``gridshift-pg`` is added if it is missing).

Binaries are found with ``pg_config --bindir``, then ``/usr/lib/postgresql/<newest>/bin``, then ``PATH``.
``GRIDSHIFT_TEST_POSTGRES_URL`` (a superuser URL) uses an existing server instead. Without PostgreSQL the
tests that need it are skipped, unless ``CI`` or ``GRIDSHIFT_REQUIRE_POSTGRES`` is set: then they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_USER_FALLBACK = "gridshift-pg"


def find_bindir() -> Path | None:
    """Directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.CalledProcessError):
            pass

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", Path(path).parent.name))

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    for d in candidates:
        if all((d / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> str | None:
    """The unprivileged user to run the server as (None when not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SERVER_USER_FALLBACK):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", SERVER_USER_FALLBACK],
                   check=True, capture_output=True)
    return SERVER_USER_FALLBACK


class PgServer:
    """A PostgreSQL server in ``root`` (data in ``root/data``, log in ``root/server.log``)."""

    def __init__(self, bindir: Path, root: Path, port: int, user: str | None) -> None:
        self.bindir, self.root, self.port, self.user = bindir, root, port, user
        self.data = root / "data"
        self.log = root / "server.log"
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            if shutil.which("runuser"):
                cmd = ["runuser", "-u", self.user, "--", *cmd]
            else:
                cmd = ["su", "-s", "/bin/sh", self.user, "-c", shlex.join(cmd)]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        res = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()} {log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8",
                  "--no-sync")

    def start(self) -> None:
        opts = (f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        return create_database(self.admin_url, name)


def create_database(admin_url: str, name: str | None = None) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False)


class ExternalPg:
    """An existing server named by ``GRIDSHIFT_TEST_POSTGRES_URL`` (cannot be stopped by the tests)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def create_database(self, name: str | None = None) -> str:
        return create_database(self.admin_url, name)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") or os.environ.get("GRIDSHIFT_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL is required: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | ExternalPg]:
    """A running PostgreSQL server for the whole test session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the psycopg driver is not installed")
    external = os.environ.get("GRIDSHIFT_TEST_POSTGRES_URL")
    if external:
        yield ExternalPg(external)
        return
    bindir = find_bindir()
    if bindir is None:
        _unavailable("no initdb/pg_ctl found (apt-get install postgresql)")
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="gridshift-pg-"))
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    server = PgServer(bindir, root, free_port(), user)
    started = False
    try:
        server.init()
        server.start()
        started = True
        yield server
    finally:
        if started:
            try:
                server.stop()
            except RuntimeError:
                pass
        shutil.rmtree(root, ignore_errors=True)
