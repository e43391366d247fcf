"""The accelerator catalog: the packaged ``accelerators.yaml``, user catalogs merged over it, look-up by name.

``load_catalog()`` returns the built-in catalog (validated once, then cached). ``load_catalog_file(path)``
reads a user catalog with the same schema and merges it over the built-in one: an entry whose name (or alias)
matches a built-in type overrides only the fields it gives; other entries add new types. Every problem is a
:class:`~gridshift.errors.CatalogError` whose one-line message names the file, the accelerator and the field.

Catalog YAML schema::

    version: 1
    accelerators:
      H100:                       # canonical name
        aliases: [H100-SXM, ...]  # optional; extra names get_accelerator() accepts
        vendor: NVIDIA
        peak_bf16_tflops: 989.4
        ...                       # every other AcceleratorType field
        sources: {field: citation}
        estimated: [field, ...]
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gridshift.errors import CatalogError
from gridshift.model.accelerator import AcceleratorType, PowerCapCurve

__all__ = [
    "Catalog",
    "catalog_table",
    "get_accelerator",
    "load_catalog",
    "load_catalog_file",
]

CATALOG_RESOURCE = "accelerators.yaml"
SCHEMA_VERSION = 1

# Fields a catalog entry may cite or mark as estimated (everything but the bookkeeping ones).
_FIGURE_FIELDS = tuple(f for f in AcceleratorType.model_fields if f not in {"name", "sources", "estimated"})
_CURVE_FIELDS = tuple(PowerCapCurve.model_fields)


class Catalog(dict[str, AcceleratorType]):
    """Canonical name -> :class:`AcceleratorType`, plus the aliases and the file each entry came from."""

    def __init__(
        self,
        items: Mapping[str, AcceleratorType] | Iterable[tuple[str, AcceleratorType]] = (),
        *,
        aliases: Mapping[str, str] | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(items)
        self.aliases: dict[str, str] = dict(aliases or {})  # alias as written -> canonical name
        self.origins: dict[str, str] = dict(origins or {})  # canonical name -> catalog file

    def copy(self) -> Catalog:  # keep aliases/origins on copies
        return Catalog(self, aliases=self.aliases, origins=self.origins)


# --------------------------------------------------------------------------------------------- YAML reading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, label: str) -> Any:
    """Parse YAML text, refusing duplicate keys; a syntax error is one ``CatalogError`` line with its place."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(f"not valid YAML: {problem}{where}", file=label) from None


def _read_yaml(text: str, label: str) -> dict[str, Any]:
    doc = load_yaml(text, label)
    if not isinstance(doc, dict):
        raise CatalogError("a catalog must be a mapping with an 'accelerators' key", file=label)
    unknown = sorted(set(doc) - {"version", "accelerators"})
    if unknown:
        raise CatalogError(f"unknown top-level key(s) {unknown}; expected 'version' and 'accelerators'", file=label)
    version = doc.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise CatalogError(f"unsupported catalog version {version!r} (expected {SCHEMA_VERSION})",
                           file=label, field="version")
    accs = doc.get("accelerators")
    if not isinstance(accs, dict) or not accs:
        raise CatalogError("'accelerators' must be a non-empty mapping of name -> fields",
                           file=label, field="accelerators")
    return accs


# --------------------------------------------------------------------------------------------- validation


def _norm(name: str) -> str:
    """Name key for matching: lower case, only letters and digits."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _loc_to_field(loc: tuple[Any, ...], msg: str) -> str | None:
    """Dotted field path for a pydantic error location; model-level errors are pinned via the message."""
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        else:
            parts.append(str(p))
    if not parts:
        candidates = _FIGURE_FIELDS
    elif parts == ["power_cap_curve"]:
        candidates = _CURVE_FIELDS
    else:
        return ".".join(parts)
    hits = [(m.start(), f) for f in candidates for m in [re.search(rf"\b{re.escape(f)}\b", msg)] if m]
    if hits:
        parts.append(min(hits)[1])
    return ".".join(parts) or None


def _validation_error(exc: ValidationError, name: str, label: str) -> CatalogError:
    errs = exc.errors(include_url=False)
    missing = [".".join(map(str, x["loc"])) for x in errs if x.get("type") == "missing"]
    if missing and len(missing) == len(errs):
        return CatalogError(f"accelerator '{name}': missing required field(s) {', '.join(missing)}",
                            file=label, field=missing[0])
    e = errs[0]
    msg = str(e.get("msg", "invalid value"))
    msg = re.sub(r"^(Value|Assertion) error,\s*", "", msg)
    if e.get("type") not in {"value_error", "assertion_error", "missing"} and "input" in e:
        shown = repr(e["input"])
        msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    if len(errs) > 1:
        msg += f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})"
    return CatalogError(f"accelerator '{name}': {msg}", file=label, field=_loc_to_field(tuple(e["loc"]), msg))


def _split_entry(name: Any, entry: Any, label: str) -> tuple[str, dict[str, Any], list[str]]:
    """Check an entry's shape; return (name, fields without aliases, aliases)."""
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"accelerator names must be non-empty strings (got {name!r})", file=label)
    if not isinstance(entry, dict):
        raise CatalogError(f"accelerator '{name}': entry must be a mapping of fields", file=label, field=name)
    fields = dict(entry)
    aliases = fields.pop("aliases", None) or []
    if isinstance(aliases, str):
        aliases = [aliases]
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise CatalogError(f"accelerator '{name}': aliases must be a list of names", file=label, field="aliases")
    if "name" in fields and fields.pop("name") != name:
        raise CatalogError(f"accelerator '{name}': 'name' differs from the entry's key", file=label, field="name")
    for key in ("sources", "estimated"):
        val = fields.get(key)
        if val is None:
            continue
        listed = list(val) if isinstance(val, (dict, list)) else None
        if listed is None:
            kind = "a mapping of field -> citation" if key == "sources" else "a list of field names"
            raise CatalogError(f"accelerator '{name}': {key} must be {kind}", file=label, field=key)
        bad = [f for f in listed if f not in _FIGURE_FIELDS]
        if bad:
            raise CatalogError(
                f"accelerator '{name}': {key} names unknown field(s) {bad}; known: {', '.join(_FIGURE_FIELDS)}",
                file=label, field=key,
            )
    return name, fields, aliases


def _build(name: str, fields: dict[str, Any], label: str) -> AcceleratorType:
    try:
        return AcceleratorType.model_validate({**fields, "name": name})
    except ValidationError as exc:
        raise _validation_error(exc, name, label) from None


def _add_aliases(index: dict[str, str], name: str, aliases: Iterable[str], label: str) -> None:
    """Register a canonical name and its aliases in a normalized index, rejecting clashes."""
    for a in [name, *aliases]:
        key = _norm(a)
        if not key:
            raise CatalogError(f"accelerator '{name}': alias {a!r} has no letters or digits",
                               file=label, field="aliases")
        owner = index.get(key)
        if owner is not None and owner != name:
            raise CatalogError(f"accelerator '{name}': name or alias {a!r} is already used by '{owner}'",
                               file=label, field="aliases")
        index[key] = name


# --------------------------------------------------------------------------------------------- built-in


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[Catalog, dict[str, dict[str, Any]]]:
    res = resources.files("gridshift.catalog") / CATALOG_RESOURCE
    label = str(res)
    try:
        text = res.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read the packaged catalog: {exc}", file=label) from None
    return _parse(text, label)


def _parse(text: str, label: str) -> tuple[Catalog, dict[str, dict[str, Any]]]:
    accs = _read_yaml(text, label)
    cat = Catalog()
    raw: dict[str, dict[str, Any]] = {}
    index: dict[str, str] = {}
    for key, entry in accs.items():
        name, fields, aliases = _split_entry(key, entry, label)
        _add_aliases(index, name, aliases, label)
        cat[name] = _build(name, fields, label)
        cat.aliases.update({a: name for a in aliases})
        cat.origins[name] = label
        raw[name] = fields
    return cat, raw


def load_catalog() -> dict[str, AcceleratorType]:
    """The built-in catalog, canonical name -> validated :class:`AcceleratorType` (a fresh :class:`Catalog`
    copy of a cached parse, so callers may modify it)."""
    return _builtin()[0].copy()


# --------------------------------------------------------------------------------------------- user files


def load_catalog_file(path: str | Path) -> dict[str, AcceleratorType]:
    """Read a user catalog (same schema as the built-in one) and merge it over the built-in catalog.

    An entry that names a built-in type (by name or alias, any case) overrides just the fields it gives;
    those fields' citations become the user file unless the entry cites them itself, and they are no longer
    listed as estimated unless the entry says so. A ``power_cap_curve`` is replaced as a whole. Other
    entries add new types and must be complete.
    """
    p = Path(path)
    label = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read catalog file: {exc.strerror or exc}", file=label) from None
    accs = _read_yaml(text, label)

    base, base_raw = _builtin()
    out = base.copy()
    index: dict[str, str] = {}
    for n in base:
        _add_aliases(index, n, [a for a, owner in base.aliases.items() if owner == n], str(base.origins[n]))

    seen: set[str] = set()
    for key, entry in accs.items():
        name, fields, aliases = _split_entry(key, entry, label)
        target = _lookup(_norm(name), index, (acc.vendor for acc in base.values()))
        if target is not None and target in seen:
            raise CatalogError(f"accelerator '{name}' appears twice in this file", file=label, field=name)
        if target is not None and target in base:  # override a built-in type field by field
            old = base_raw[target]
            given = [f for f in fields if f not in {"sources", "estimated"}]
            sources = {**old.get("sources", {}), **{f: f"user catalog {label}" for f in given},
                       **(fields.get("sources") or {})}
            estimated = [f for f in old.get("estimated", []) if f not in given]
            estimated += [f for f in (fields.get("estimated") or []) if f not in estimated]
            merged = {**old, **fields, "sources": sources, "estimated": estimated}
            name = target
        else:
            merged = fields
        _add_aliases(index, name, aliases, label)
        out[name] = _build(name, merged, label)
        out.aliases.update({a: name for a in aliases})
        out.origins[name] = label
        seen.add(name)
    return out


# --------------------------------------------------------------------------------------------- look-up


def _lookup(key: str, index: Mapping[str, str], vendors: Iterable[str]) -> str | None:
    """Canonical name for a normalized key: exact name/alias, else with a leading vendor name removed."""
    found = index.get(key)
    if found is None:
        for vendor in sorted({_norm(v) for v in vendors}, key=len, reverse=True):
            if vendor and key.startswith(vendor) and key[len(vendor):] in index:
                return index[key[len(vendor):]]
    return found


def get_accelerator(name: str, catalog: Mapping[str, AcceleratorType] | None = None) -> AcceleratorType:
    """Find an accelerator by canonical name or alias, ignoring case, spaces, '-' and '_'.

    A leading vendor name is accepted too ("NVIDIA H100", "Google TPU v5e"). Unknown names raise
    :class:`CatalogError` listing the known names.
    """
    cat = load_catalog() if catalog is None else catalog
    if not isinstance(name, str) or not _norm(name):
        raise CatalogError(f"accelerator name must be a non-empty string (got {name!r})", field="accelerator")
    aliases = getattr(cat, "aliases", None)
    if aliases is None:  # a plain dict: use the built-in aliases of the names it holds
        aliases = {a: n for a, n in _builtin()[0].aliases.items() if n in cat}
    index: dict[str, str] = {}
    for n in cat:
        index.setdefault(_norm(n), n)
    for a, n in aliases.items():
        if n in cat:
            index.setdefault(_norm(a), n)

    key = _norm(name)
    found = _lookup(key, index, (acc.vendor for acc in cat.values()))
    if found is not None:
        return cat[found]

    close = difflib.get_close_matches(key, list(index), n=1, cutoff=0.75)
    hint = f" (did you mean '{index[close[0]]}'?)" if close else ""
    raise CatalogError(
        f"unknown accelerator {name!r}{hint}; known: {', '.join(cat)}", field="accelerator"
    )


def catalog_table(catalog: Mapping[str, AcceleratorType] | None = None) -> list[dict[str, Any]]:
    """One plain dict per accelerator, for printing (CLI table, docs, JSON)."""
    cat = load_catalog() if catalog is None else catalog
    rows = []
    for name, acc in cat.items():
        rows.append(
            {
                "name": name,
                "vendor": acc.vendor,
                "peak_bf16_tflops": acc.peak_bf16_tflops,
                "peak_fp8_tflops": acc.peak_fp8_tflops,
                "hbm_gb": acc.hbm_gb,
                "hbm_tb_per_s": acc.hbm_tb_per_s,
                "board_power_w": acc.board_power_w,
                "idle_power_w": acc.idle_power_w,
                "host_power_w": acc.host_power_w,
                "min_power_cap_frac": acc.min_power_cap_frac,
                "estimated": ", ".join(acc.estimated),
            }
        )
    return rows
