"""The data registry: which reference files exist, where they come from, and where to find them.

Every file GridShift reads is listed in the packaged ``datasets.yaml`` with its size, SHA-256, license,
upstream repository + commit + path and attribution. :func:`resolve` finds a dataset's file in, in order:

1. ``$GRIDSHIFT_DATA_DIR`` (if set; its files override the next step's; a missing or empty folder is refused);
2. a ``shared/data`` folder beside the checkout, found by walking up from the current working directory
   and from this source file (so ``../shared/data`` next to a clone works with no configuration);
3. the user cache, ``platformdirs.user_cache_dir("gridshift")/data``.

Grid datasets hold one file per year: entries that share a ``name`` differ by ``year``, and the name alone
means the registry's ``default_year`` (2023), so ``carbon/GB`` is the 2023 file and
``resolve("carbon/GB", year=2021)`` the 2021 one. :func:`dataset_years` lists a name's years.

If the file is in none of them it is downloaded from its pinned upstream URL into the cache (written to a
temporary file, checked against the registry SHA-256, then atomically renamed) through the shared HTTP client
(:mod:`gridshift.data.http`: timeouts, retries with backoff). Set ``GRIDSHIFT_OFFLINE=1`` to forbid downloads.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib import resources
from pathlib import Path
from typing import IO, Any

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridshift.data.http import open_stream
from gridshift.errors import DataError

ENV_DATA_DIR = "GRIDSHIFT_DATA_DIR"
ENV_OFFLINE = "GRIDSHIFT_OFFLINE"
_CHUNK = 1 << 16

Opener = Callable[[str, float], AbstractContextManager[IO[bytes]]]
"""``opener(url, timeout_s)`` returns a context manager giving a readable binary response with ``headers``
(the shape of :func:`gridshift.data.http.open_stream` and of ``urllib.request.urlopen``)."""


class Dataset(BaseModel):
    """One registry entry: a single reference file and its provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9-]+/[A-Za-z0-9._-]+$", description="short stable id, e.g. carbon/GB")
    year: int | None = Field(None, ge=1900, le=2100, description="the year of a per-year file (None: one file)")
    relpath: str = Field(description="path under a data directory, '/'-separated")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0, description="file size in bytes")
    license: str
    upstream_repo: str | None = None
    upstream_commit: str | None = None
    upstream_path: str | None = None
    derived_from: str | None = Field(None, description="how the file was derived, when it is not a plain copy")
    url: str | None = Field(None, description="pinned download URL, null when there is no single upstream file")
    attribution: str


@functools.cache
def _load() -> tuple[dict[str, Dataset], dict[str, dict[int, Dataset]]]:
    """(the default entry per name, every year's entry per name of a per-year dataset)."""
    source = resources.files("gridshift.data").joinpath("datasets.yaml")
    where = "gridshift/data/datasets.yaml"
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the data registry: {exc}", file=where) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), list):
        raise DataError("the data registry must be a mapping with a 'datasets' list", file=where)
    default_year = doc.get("default_year")
    order: dict[str, None] = {}  # names in file order
    single: dict[str, Dataset] = {}
    yearly: dict[str, dict[int, Dataset]] = {}
    for i, raw in enumerate(doc["datasets"]):
        try:
            ds = Dataset.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise DataError(f"entry {i}: {first['msg']}", file=where, field=field) from exc
        if ds.name in single or (ds.year is None and ds.name in yearly) or ds.year in yearly.get(ds.name, {}):
            which = ds.name if ds.year is None else f"{ds.name}' year '{ds.year}"
            raise DataError(f"duplicate dataset name '{which}'", file=where, field="name")
        order[ds.name] = None
        if ds.year is None:
            single[ds.name] = ds
        else:
            yearly.setdefault(ds.name, {})[ds.year] = ds
    for name, by_year in yearly.items():
        if default_year not in by_year:
            raise DataError(f"dataset '{name}' has no entry for the default_year {default_year}", file=where,
                            field="default_year")
        yearly[name] = dict(sorted(by_year.items()))
    out = {n: single[n] if n in single else yearly[n][default_year] for n in order}
    return out, yearly


def _registry() -> dict[str, Dataset]:
    return _load()[0]


def load_registry() -> dict[str, Dataset]:
    """All registry entries keyed by name, one per name (a per-year dataset's default year; a fresh dict)."""
    return dict(_registry())


def dataset_years(name: str) -> list[int]:
    """The years a per-year dataset has files for (ascending); ``[]`` for a single-file dataset."""
    get_dataset(name)
    return list(_load()[1].get(name, {}))


def get_dataset(name: str, year: int | None = None) -> Dataset:
    """The registry entry called ``name`` (of ``year``, for a per-year dataset); DataError listing close
    matches (or the years there are) if there is none."""
    reg = _registry()
    if name in reg:
        if year is None:
            return reg[name]
        by_year = _load()[1].get(name, {})
        if year in by_year:
            return by_year[year]
        have = ", ".join(str(y) for y in by_year) or "none: it is one file"
        raise DataError(f"dataset '{name}' has no file for {year} (years: {have})", field="year")
    close = difflib.get_close_matches(name, list(reg), n=5, cutoff=0.5)
    if not close:  # e.g. 'GB' -> carbon/GB: match on the part after the slash too
        close = [n for n in reg if n.split("/", 1)[1].lower() == name.split("/")[-1].lower()][:5]
    hint = f"did you mean: {', '.join(close)}?" if close else f"known prefixes: {_prefixes(reg)}"
    raise DataError(f"unknown dataset '{name}'; {hint}", field="dataset")


def all_files() -> list[Dataset]:
    """Every registered file: the single-file datasets and every year of the per-year ones."""
    single, yearly = _load()
    return [ds for n, ds in single.items() if n not in yearly] + [
        ds for by_year in yearly.values() for ds in by_year.values()]


def _prefixes(reg: dict[str, Dataset]) -> str:
    return ", ".join(sorted({n.split("/", 1)[0] + "/" for n in reg}))


def cache_dir() -> Path:
    """Where downloaded files go: ``platformdirs.user_cache_dir("gridshift")/data``."""
    return Path(platformdirs.user_cache_dir("gridshift")) / "data"


def _shared_data_candidates(start: Path) -> list[Path]:
    out = []
    for p in (start, *start.parents):
        for cand in (p / "shared" / "data", p.parent / "shared" / "data"):
            if cand not in out:
                out.append(cand)
    return out


def _search_starts() -> list[Path]:
    """Where the walk up for a ``shared/data`` folder starts: the working directory, then this file."""
    starts = []
    try:
        starts.append(Path.cwd().resolve())
    except OSError:  # working directory deleted
        pass
    starts.append(Path(__file__).resolve().parent)
    return starts


def data_dirs() -> list[Path]:
    """Folders searched for data files, in priority order (see the module docstring).

    ``$GRIDSHIFT_DATA_DIR`` comes first when set: the files it holds override the ``shared/data`` folders (which
    follow, when they exist); set to a missing or empty folder it is refused with one line rather than passed
    over. The cache folder always comes last.
    """
    dirs: list[Path] = []
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        mine = Path(env).expanduser()
        if not mine.is_dir() or not any(mine.iterdir()):  # set, but to nothing: refused, never passed over
            raise DataError(f"{ENV_DATA_DIR}={env} is {'empty' if mine.is_dir() else 'not a directory'}: point it "
                            "at a folder holding the data files (its files override shared/data), or unset it")
        dirs.append(mine)
    for start in _search_starts():
        for cand in _shared_data_candidates(start):
            if cand.is_dir() and cand.resolve() not in [d.resolve() for d in dirs]:
                dirs.append(cand)
    dirs.append(cache_dir())
    return dirs


def find(name: str, year: int | None = None) -> Path | None:
    """The first existing file for ``name`` (``year``) in :func:`data_dirs`, or None (never downloads)."""
    ds = get_dataset(name, year)
    for d in data_dirs():
        p = d / ds.relpath
        if p.is_file():
            return p
    return None


def resolve(name: str, *, year: int | None = None, download: bool = True, opener: Opener | None = None) -> Path:
    """Path of the file for dataset ``name`` (of ``year``: default, the registry's default year), downloading
    it into the cache if it is nowhere local.

    Raises DataError (one line: which dataset, where it looked, how to supply it) when the file is
    missing and cannot be downloaded (no URL, offline, ``GRIDSHIFT_OFFLINE`` set, or a bad checksum).
    """
    ds = get_dataset(name, year)
    found = find(name, year)
    if found is not None:
        return found
    looked = "; ".join(str(d) for d in data_dirs())
    supply = f"set {ENV_DATA_DIR} to a folder that contains {ds.relpath}"
    offline = os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")
    if ds.url is None:
        why = "it has no download URL (derived file)"
    elif not download or offline:
        why = "downloads are disabled" + (f" ({ENV_OFFLINE} is set)" if offline else "")
    else:
        try:
            return download_file(ds, cache_dir() / ds.relpath, opener=opener)
        except OSError as exc:  # network errors (gridshift.data.http.HttpError), disk errors
            why = f"download from {ds.url} failed ({getattr(exc, 'reason', exc)})"
    label = name if year is None else f"{name}' year '{year}"
    raise DataError(f"dataset '{label}' not found (looked in: {looked}); {why}; {supply}", file=ds.relpath)


def _default_opener(url: str, timeout: float) -> AbstractContextManager[IO[bytes]]:
    return open_stream(url, timeout_s=timeout)  # https URLs from the registry, with retries


def download_file(
    ds: Dataset,
    dest: Path,
    *,
    url: str | None = None,
    opener: Opener | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``ds`` (from ``url`` or ``ds.url``) to ``dest``; verify SHA-256 and size, then rename.

    The bytes go to a temporary file beside ``dest``; on any failure, including a checksum mismatch
    (DataError), the temporary file is removed and ``dest`` is left untouched.
    """
    src = url or ds.url
    if not src:
        raise DataError(f"dataset '{ds.name}' has no download URL", file=ds.relpath)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, size = _fetch(src, fd, opener or _default_opener, timeout_s, label=ds.name)
        if digest != ds.sha256 or size != ds.bytes:
            raise DataError(
                f"download of '{ds.name}' from {src} is corrupt: sha256 {digest} ({size} bytes), "
                f"expected {ds.sha256} ({ds.bytes} bytes); nothing was saved",
                file=ds.relpath,
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _fetch(url: str, fd: int, opener: Opener, timeout_s: float, *, label: str) -> tuple[str, int]:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    h = hashlib.sha256()
    size = 0
    console = Console(stderr=True)
    with os.fdopen(fd, "wb") as out, opener(url, timeout_s) as resp:
        total = _content_length(resp)
        cols = (TextColumn(f"downloading {label}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*cols, console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("download", total=total)
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
                bar.advance(task, len(chunk))
    return h.hexdigest(), size


def _content_length(resp: Any) -> int | None:
    headers = getattr(resp, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value and str(value).isdigit() else None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _verify_file(ds: Dataset) -> tuple[bool | None, str]:
    """(True: ok, False: mismatch, None: not found; detail) for one registered file."""
    path = find(ds.name, ds.year)
    if path is None:
        return None, f"not found in any data directory ({ds.relpath})"
    digest = sha256_file(path)
    if digest != ds.sha256:
        return False, f"sha256 mismatch at {path}: got {digest}, expected {ds.sha256}"
    return True, f"ok ({path.stat().st_size} bytes, sha256 {digest[:12]}…) at {path}"


def verify(name: str, year: int | None = None) -> tuple[bool, str]:
    """Recompute the SHA-256 of dataset ``name``'s local file(s): ``(ok, one-line detail)``. Never downloads.

    A per-year dataset (without ``year``) checks every year's file that is local; it is ok when its
    default year's file is local and no local file differs from the registry (years not local are listed).
    """
    years = [] if year is not None else dataset_years(name)
    if not years:
        ok, detail = _verify_file(get_dataset(name, year))
        label = name if year is None else f"{name} {year}"
        return bool(ok), f"{label}: {detail}"
    results = {y: _verify_file(get_dataset(name, y)) for y in years}
    default = get_dataset(name).year
    bad = [f"{y} {d}" for y, (ok, d) in results.items() if ok is False]
    if results[default][0] is None:
        bad.insert(0, f"{default} {results[default][1]}")
    missing = [str(y) for y, (ok, _) in results.items() if ok is None and y != default]
    if bad:
        return False, f"{name}: " + "; ".join(bad)
    checked = [y for y, (ok, _) in results.items() if ok]
    path = find(name)
    where = path.parent if path is not None else "?"
    detail = f"{name}: ok ({len(checked)} file(s): " + ", ".join(
        f"{y} sha256 {get_dataset(name, y).sha256[:12]}…" for y in checked) + f") in {where}"
    return True, detail + (f"; not local: {', '.join(missing)}" if missing else "")


def dataset_for_path(path: str | Path) -> Dataset | None:
    """The registry entry whose relpath the given path ends with, if any."""
    parts = Path(path).as_posix()
    for ds in all_files():
        if parts == ds.relpath or parts.endswith("/" + ds.relpath):
            return ds
    return None
