"""What keeps a job command away from the service: the OS user it runs as, its own directory, a minimal
environment and resource limits (the local executor's isolation; docs/service/executors.md, threat model).

- :func:`resolve_user` turns ``run_as`` (a user name or uid) into a :class:`JobUser`; switching users needs
  the service to run as root, checked once at construction (:func:`check_can_switch`).
- :func:`job_env` builds the job's environment from an allow-list of the service's variables
  (:data:`DEFAULT_ENV_ALLOW`), never the whole environment: no database URL, no token reaches a job.
- :func:`private_dir` creates the executor's own directories 0700; :func:`make_job_dir` one directory per
  job, outside the state directory, owned by the job's user, 0700, under a root only traversable (0711).
- :class:`Limits` are the ``setrlimit`` values the wrapper applies to the command (``--rlimit NAME=N``).
- :func:`read_small` reads a file the job may have replaced (a FIFO, a symlink, a huge file) without blocking
  or following links; the executor writes into a job's directory only by atomic rename.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gridshift.service.executors.base import ExecutorError, JobLaunch, Placement

DEFAULT_ENV_ALLOW: tuple[str, ...] = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class JobUser:
    """The OS user a job command runs as: its name, uid and primary gid (no supplementary groups)."""

    name: str
    uid: int
    gid: int

    def arg(self) -> str:
        """The wrapper's ``--user`` value."""
        return f"{self.uid}:{self.gid}"


def resolve_user(spec: str | int, field: str = "run_as") -> JobUser:
    """``spec`` (a user name, or a uid as a number or digits) as a :class:`JobUser`, else ExecutorError."""
    try:
        if isinstance(spec, int) or str(spec).strip().isdigit():
            pw = pwd.getpwuid(int(spec))
        else:
            pw = pwd.getpwnam(str(spec).strip())
    except (KeyError, OverflowError, ValueError):
        raise ExecutorError(f"{field}: no OS user '{spec}' on this machine", retryable=False) from None
    if pw.pw_uid == 0:
        raise ExecutorError(f"{field}: '{spec}' is root; give an unprivileged user", retryable=False)
    return JobUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


def check_can_switch(field: str = "run_as") -> None:
    """Starting commands as another user needs root: else one clear ExecutorError."""
    if os.geteuid() != 0:
        raise ExecutorError(f"{field}: running job commands as another user needs the service to run as root "
                            f"(it runs as uid {os.geteuid()}); start it as root or leave {field} unset",
                            retryable=False)


def job_env(allow: Iterable[str], job_vars: Mapping[str, str], launch_env: Mapping[str, str],
            source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The job's whole environment: the allowed names of ``source`` (the service's environment), then the
    GRIDSHIFT_* job variables (HOME included), then the launch's own ``env``."""
    src = os.environ if source is None else source
    env = {name: src[name] for name in allow if name in src}
    env.update(job_vars)
    env.update({str(k): str(v) for k, v in launch_env.items()})
    return env


@dataclass(frozen=True)
class Limits:
    """Resource limits of a job command (soft = hard), None: unchanged. ``address_space_bytes`` is
    RLIMIT_AS, ``cpu_s`` RLIMIT_CPU (SIGXCPU at the limit). RLIMIT_NPROC counts every process of the job's
    user on the machine, so jobs sharing one user share it."""

    open_files: int | None = 4096
    processes: int | None = 4096
    address_space_bytes: int | None = None
    cpu_s: int | None = None

    def __post_init__(self) -> None:
        for name in ("open_files", "processes", "address_space_bytes", "cpu_s"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise ExecutorError(f"limits.{name} must be a whole number >= 1 or unset, got {value!r}",
                                    retryable=False)

    @classmethod
    def of(cls, value: Limits | Mapping[str, int | None] | None) -> Limits:
        if value is None:
            return cls()
        if isinstance(value, Limits):
            return value
        try:
            return cls(**dict(value))
        except TypeError as e:
            raise ExecutorError(f"limits: {e}", retryable=False) from None

    def args(self) -> list[str]:
        """The wrapper's ``--rlimit NAME=N`` arguments."""
        pairs = (("NOFILE", self.open_files), ("NPROC", self.processes), ("AS", self.address_space_bytes),
                 ("CPU", self.cpu_s))
        out: list[str] = []
        for name, value in pairs:
            if value is not None:
                out += ["--rlimit", f"{name}={int(value)}"]
        return out


def _own_dir(path: Path, mode: int, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    except OSError as e:
        raise ExecutorError(f"cannot create the {what} {path}: {e.strerror}", retryable=False) from None
    return path


def private_dir(path: Path, what: str) -> Path:
    """Create ``path`` (and parents) and make it 0700: the executor's own directory, which no job reads."""
    return _own_dir(path, 0o700, what)


def job_root_dir(path: Path) -> Path:
    """Create the root of the job directories: 0711, so a job reaches its own directory but lists none."""
    return _own_dir(path, 0o711, "job directory root")


def make_job_dir(path: Path, user: JobUser | None) -> Path:
    """The job's directory (and its ``work`` subdirectory): 0700, owned by ``user`` (None: the service's
    own). Never follows a symlink the job may have left in its place."""
    for d in (path, path / "work"):
        try:
            d.mkdir(mode=0o700, exist_ok=True)
        except FileExistsError:
            pass
        try:
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as e:
            raise ExecutorError(f"job directory {d}: {e.strerror}", retryable=False) from None
        try:  # through the descriptor: the job cannot swap in a link between the check and the change
            st = os.fstat(fd)
            if user is not None and (st.st_uid, st.st_gid) != (user.uid, user.gid):
                os.fchown(fd, user.uid, user.gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    return path


def read_small(path: Path, limit: int = 256) -> str | None:
    """The text of a small regular file the job controls, or None: no link followed, no FIFO waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def reachable_by_others(path: str | Path, file_bit: int = stat.S_IXOTH) -> bool:
    """Can any user execute ``path`` (every directory on the way other-searchable, the file other-executable;
    ``file_bit=stat.S_IROTH``: other-readable)? The built-in simulated workload runs the service's Python and
    ``_simjob.py`` as the job's user."""
    p = Path(path).resolve()
    try:
        if not os.stat(p).st_mode & file_bit:
            return False
        return all(os.stat(d).st_mode & stat.S_IXOTH for d in p.parents)
    except OSError:
        return False


def write_job_file(path: Path, text: str) -> None:
    """Write ``text`` atomically into a job's directory, which the job controls: a fresh temporary file
    (mode 0644 set through its descriptor, never by name) renamed onto ``path``, so no link is followed."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def contract_env(allow: Iterable[str], job_dir: Path, launch: JobLaunch, placement: Placement, power_cap_frac: float,
                 checkpoint_signal: str, ack_file: Path, resumed: bool) -> dict[str, str]:
    """The job's environment under the executors' job contract (docs/service/executors.md): the allowed service
    variables, the contract's ``GRIDSHIFT_*`` variables, then the launch's own."""
    return job_env(allow, {
        "HOME": str(job_dir),
        "GRIDSHIFT_JOB_ID": launch.job_id,
        "GRIDSHIFT_ATTEMPT": str(launch.attempt),
        "GRIDSHIFT_SITE": placement.site,
        "GRIDSHIFT_ACCELERATOR": placement.accelerator,
        "GRIDSHIFT_GANG": str(placement.gang),
        "GRIDSHIFT_POWER_CAP_FRAC": f"{power_cap_frac:g}",
        "GRIDSHIFT_POWER_CAP_FILE": str(job_dir / "power_cap_frac"),
        "GRIDSHIFT_WORK_DIR": str(job_dir / "work"),
        "GRIDSHIFT_PROGRESS_FILE": str(job_dir / "progress"),
        "GRIDSHIFT_CHECKPOINT_SIGNAL": checkpoint_signal,
        "GRIDSHIFT_CHECKPOINT_ACK": str(ack_file),
        "GRIDSHIFT_RESUMED": "1" if resumed else "0",
    }, launch.env)
