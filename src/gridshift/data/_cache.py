"""In-process caching of parsed files, keyed by resolved path + mtime + size, and path resolution."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gridshift.data import registry
from gridshift.errors import DataError

T = TypeVar("T")


def source_path(name: str, path: str | Path | None) -> Path:
    """``path`` if given (must exist), else the registry's file for dataset ``name``."""
    if path is None:
        return registry.resolve(name)
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError("file not found", file=p)
    return p


def cached_parse(fn: Callable[..., T]) -> Callable[..., T]:
    """Memoise ``fn(path, *args)`` on (resolved path, mtime, size, args); callers get a copy.

    The simulator loads the same zone several times; a changed file (new mtime/size) is re-read.
    """

    @functools.lru_cache(maxsize=128)
    def _inner(key: str, mtime_ns: int, size: int, args: tuple[Any, ...]) -> T:
        return fn(Path(key), *args)

    @functools.wraps(fn)
    def wrapper(path: Path, *args: Any) -> T:
        p = Path(path).resolve()
        st = p.stat()
        result = _inner(str(p), st.st_mtime_ns, st.st_size, args)
        return result.copy() if hasattr(result, "copy") else copy.deepcopy(result)

    wrapper.cache_clear = _inner.cache_clear  # type: ignore[attr-defined]
    return wrapper
