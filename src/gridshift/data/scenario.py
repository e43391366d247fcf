"""Read a scenario YAML file into a validated :class:`Scenario`, with one-line errors that name the file,
the line and the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gridshift.errors import DataError, ScenarioError
from gridshift.model.scenario import Scenario, unrunnable_gang

M = TypeVar("M", bound=BaseModel)


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic adds union-member tags such as 'float', 'Zone' or 'list[PowerCapStep]'; drop them from the path
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in {"float", "int", "str", "Zone"})))


MAX_FILE_BYTES = 2_000_000  # a scenario or sweep file (about 15,000 written jobs); see docs/guide/scenario.md
MAX_YAML_NODES = 5_000_000  # values after expanding aliases (a file of 2 MB has well under a million)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed: several times faster


def _load_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree from one parse; refuses a document whose aliases expand to more than
    ``MAX_YAML_NODES`` values (a few lines can otherwise stand for billions)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        size = _expanded_size(node, {})
        if size > MAX_YAML_NODES:
            raise ValueError(f"its aliases expand to more than {MAX_YAML_NODES:,} values")
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """Values under ``node`` with every alias expanded (each shared node counted once per use)."""
    key = id(node)
    if key in seen:
        return seen[key]
    seen[key] = 1  # a recursive alias counts once
    if isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_size(v, seen) for v in node.value)
    else:
        n = 1
    seen[key] = min(n, MAX_YAML_NODES + 1)
    return seen[key]


def parse_yaml_model(model: type[M], text: str, source: str, shape: str,
                     check: Callable[[M], tuple[tuple[Any, ...], str] | None] | None = None) -> M:
    """``model`` validated from YAML ``text``; any problem is one :class:`ScenarioError` naming ``source``,
    the line and the field (``shape`` describes the expected mapping for a document that is not one).
    ``check`` may refuse the validated model: it returns (field path, message) or None."""
    try:
        data, node = _load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        raise ScenarioError(f"malformed YAML: {problem}", file=source, row=line) from e
    except (ValueError, RecursionError) as e:  # e.g. an integer of more than 4,300 digits, nesting too deep
        problem = "a number has too many digits" if "integer string conversion" in str(e) else str(e)
        raise ScenarioError(f"malformed YAML: {problem.splitlines()[0][:200]}", file=source) from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{shape} must be a YAML mapping", file=source)
    try:
        out = model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = _clean_loc(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err.get("type") == "missing":
            msg = "is required"
        more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
        raise ScenarioError(msg + more, file=source, row=_line_of(node, loc), field=_field_path(loc) or None) from e
    problem = check(out) if check is not None else None
    if problem is not None:
        loc, msg = problem
        raise ScenarioError(msg, file=source, row=_line_of(node, loc), field=_field_path(loc))
    return out


def read_text(path: str | Path, what: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of ``path``, or one :class:`ScenarioError` saying what could not be read (``what``:
    e.g. 'scenario file') or that it is larger than ``max_bytes``."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise ScenarioError(f"the {what} is {size / 1e6:.1f} MB, over the limit of {max_bytes / 1e6:g} MB "
                                "(generate many jobs with workloads.generate instead of writing them out)", file=p)
        return p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ScenarioError(f"{what} not found", file=p) from e
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"cannot read {what}: {e}", file=p) from e


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    return parse_yaml_model(Scenario, text, source, "a scenario (name, time_range, zones, sites, ...)",
                            check=unrunnable_gang)


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    sc = parse_scenario(read_text(p, "scenario file"), str(p))
    if any(z.carbon_file for z in sc.zones):  # zone carbon files are relative to the scenario
        sc = sc.model_copy(update={"zones": [
            z.model_copy(update={"carbon_file": str(p.parent / z.carbon_file)}) if z.carbon_file else z
            for z in sc.zones]})
    if sc.events_file:
        from gridshift.data.events import read_events_csv

        ev_path = p.parent / sc.events_file
        extra = read_events_csv(ev_path)
        try:
            sc = Scenario.model_validate({**sc.model_dump(), "events": [e.model_dump() for e in sc.events + extra],
                                          "events_file": None})
        except ValidationError as e:
            msg = e.errors()[0]["msg"].removeprefix("Value error, ")
            raise ScenarioError(msg, file=ev_path) from e
    return _with_issued_forecasts(_with_signal_files(sc, p), p)


def _with_signal_files(sc: Scenario, path: Path) -> Scenario:
    """Zones' ``signals_file`` paths made absolute (relative to the scenario file), each file checked now."""
    from gridshift.data.signal_file import read_signal_file

    zones = []
    for i, z in enumerate(sc.zones):
        if z.signals_file is not None:
            f = Path(z.signals_file)
            f = f if f.is_absolute() else path.parent / f
            try:
                read_signal_file(f, max_gap_s=sc.fill_gaps_max_h * 3600.0)  # the gap policy: data/signal_file.py
            except DataError as e:
                raise DataError(e.message, file=str(f), row=e.row, field=e.field or f"zones[{i}].signals_file") \
                    from None
            z = z.model_copy(update={"signals_file": str(f.resolve())})
        zones.append(z)
    return sc.model_copy(update={"zones": zones})


def _with_issued_forecasts(sc: Scenario, path: Path) -> Scenario:
    """Read the issued forecasts a policy names by ``path`` (relative to the scenario file) or ``url`` in its
    ``forecast_params`` (``forecast: external``) and hand the planner the table: the forecaster itself reads
    no files."""
    from gridshift.data.issued_forecasts import fetch_forecasts, read_forecasts

    policies = []
    for spec in sc.policies:
        fp = spec.params.get("forecast_params")
        if spec.params.get("forecast") == "external" and isinstance(fp, dict) and ("path" in fp or "url" in fp):
            fp = dict(fp)
            if "path" in fp:
                src = path.parent / str(fp.pop("path"))
                fp["table"] = read_forecasts(src)
                fp.setdefault("source", str(src))
            else:
                url = str(fp.pop("url"))
                fp["table"] = fetch_forecasts(url)
                fp.setdefault("source", url)
            spec = spec.model_copy(update={"params": {**spec.params, "forecast_params": fp}})
        policies.append(spec)
    return sc.model_copy(update={"policies": policies})
