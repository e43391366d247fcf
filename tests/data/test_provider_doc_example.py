"""docs/service/providers.md, "Adding a provider": its example adapter and its test are taken from the page
and run, so the page cannot drift from the code (the base class, the helpers, the registry)."""

from __future__ import annotations

import re
import sys
import types
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from gridshift.data import http
from gridshift.data.providers import ProviderConfig, ProviderError, make_provider, parse_configs, registry
from gridshift.data.providers.base import RangeProvider
from loopback import Loopback, Reply

DOC = Path(__file__).resolve().parents[2] / "docs" / "service" / "providers.md"


def block(first_line: str) -> str:
    """The ```python block of the page whose first line is ``first_line``."""
    found = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
             if b.splitlines()[0] == first_line]
    assert len(found) == 1, f"one block starting '{first_line}' in {DOC}"
    return found[0]


@pytest.fixture
def example(monkeypatch):
    """The page's adapter as the module ``example_grid``, registered under its name."""
    mod = types.ModuleType("example_grid")
    monkeypatch.setitem(sys.modules, "example_grid", mod)
    exec(compile(block("# example_grid.py"), "providers.md:example_grid.py", "exec"), mod.__dict__)  # noqa: S102
    monkeypatch.setitem(registry.PROVIDERS, mod.ExampleGrid.name, mod.ExampleGrid)
    monkeypatch.setattr(http, "_sleep", lambda s: None)
    return mod.ExampleGrid


def test_the_pages_own_test_passes(example):
    ns: dict = {}
    exec(compile(block("# test_example_grid.py"), "providers.md:test_example_grid.py", "exec"), ns)  # noqa: S102
    ns["test_example_grid"]()


def test_the_registry_line_names_the_class_and_the_tuple_it_extends(example):
    line = block("from gridshift.data.providers.example_grid import ExampleGrid")
    names = re.search(r"for p in \((.*?)\)\}", line, re.S).group(1).replace("\n", " ")
    assert [n.strip() for n in names.split(",")] == [*(c.__name__ for c in registry.PROVIDERS.values()
                                                       if c is not example), "ExampleGrid"]
    cfg = parse_configs({"providers": [{"name": "example-grid", "zones": {"XN": "north"},
                                        "signals": ["carbon_direct_g_per_kwh"]}]}, "providers.yaml")[0]
    assert isinstance(make_provider(cfg), example) and issubclass(example, RangeProvider)


def test_the_example_forecasts_keys_and_shape_errors(example, monkeypatch):
    hours = pd.date_range(pd.Timestamp.now(tz="UTC").floor("h"), periods=24, freq="h")
    body = {"region": "north", "unit": "lb_per_mwh",
            "points": [{"time": t.tz_convert("Europe/Berlin").isoformat(), "value": 900} for t in hours]}
    with Loopback() as server:
        server.routes["/v1/intensity"] = Reply(body)
        monkeypatch.setenv("EXAMPLE_GRID_API_KEY", "secret-k")
        p = make_provider(ProviderConfig("example-grid", base_url=server.url, min_interval_s=0.0))
        b = p.forecasts("north")
        assert server.seen[0].param("kind") == "forecast" and server.seen[0].headers["X-Api-Key"] == "secret-k"
        assert list(b.rows["at"]) == list(hours) and b.rows["issue_time"].notna().all() and b.problems == []
        server.routes["/v1/intensity"] = Reply({**body, "unit": "kg_per_mwh"})
        with pytest.raises(ProviderError, match=r"^example-grid: zone north, .*: unexpected answer: unit "
                                                r"'kg_per_mwh', not lb_per_mwh$"):
            p.actuals("north", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 2, tzinfo=UTC))
        monkeypatch.delenv("EXAMPLE_GRID_API_KEY")
        with pytest.raises(ProviderError, match=r"example-grid: no API key \(set \$EXAMPLE_GRID_API_KEY"):
            p.actuals("north", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 2, tzinfo=UTC))
        server.routes["/v1/intensity"] = Reply({"error": "bad key"}, 401)
        with pytest.raises(ProviderError, match="the API key was refused") as e:
            make_provider(ProviderConfig("example-grid", base_url=server.url, api_key="secret-k")).actuals(
                "north", datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 2, tzinfo=UTC))
        assert "secret-k" not in str(e.value)
