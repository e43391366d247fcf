"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The one implementation every layer uses (reports, the service's executors and the job wrapper). Standard
library only and importing nothing of GridShift, so the job wrapper (``service/executors/_wrap.py``), which
must start fast, loads this file by path without importing the package.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_dir(path: str | os.PathLike) -> None:
    """Best effort: make a rename inside ``path`` durable (not supported on every platform)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP raise ``SystemExit(128 + signal)`` instead of ending the process on
    the spot, so ``finally`` blocks and ``__exit__`` remove temporary files and directories. Only where the
    signal would otherwise kill the process (its handler is the default) and in the main thread; the previous
    handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    saved = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            saved[sig] = signal.signal(sig, _exit)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` (``.<name>.*.tmp``), fsync it, give it the mode a
    new file gets under the umask, ``os.replace`` it onto ``path`` and fsync the directory. The temporary
    file is removed if anything fails; the parent directory is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, **dumps: Any) -> None:
    """Write ``obj`` as JSON atomically; ``dumps`` go to :func:`json.dumps`."""
    write_text_atomic(path, json.dumps(obj, **dumps))
