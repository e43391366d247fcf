"""Migration 0005 (the gateway's tables) on SQLite and on a throwaway PostgreSQL server: up, down and up
again; the tables a gateway before 0005 made itself are adopted with their rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    text,
)

from gridshift.service.db import current_revision, downgrade, make_engine, upgrade
from gridshift.service.gateway.accounting import Accounting, UsageRecord
from pgserver import pg_server  # noqa: F401  (session fixture)

GATEWAY_TABLES = {"gateway_usage", "gateway_files", "gateway_batches", "gateway_demand"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_server").create_database()


def _row(tenant: str = "t", region: str | None = "eu-west1") -> UsageRecord:
    return UsageRecord(datetime(2026, 12, 7, 12, tzinfo=UTC), tenant, "m", "site-a", "b1", "H100", "interactive",
                       "chat", "ok", 10, 20, 1.5, 0.2, 0.001, 30.0, 0, region)


def test_gateway_tables_up_down_up(empty_url):
    from prometheus_client import CollectorRegistry

    upgrade(empty_url, "0004")
    engine = make_engine(empty_url)
    try:
        assert not GATEWAY_TABLES & set(inspect(engine).get_table_names())
        upgrade(empty_url)
        assert current_revision(engine) == "0005"
        assert GATEWAY_TABLES <= set(inspect(engine).get_table_names())
        assert "ix_gateway_usage_at" in {i["name"] for i in inspect(engine).get_indexes("gateway_usage")}
        acc = Accounting(engine, CollectorRegistry())
        acc.record(_row())
        assert acc.totals(group=("tenant", "region"))[0]["region"] == "eu-west1"
        downgrade(empty_url, "0004")
        assert current_revision(engine) == "0004"
        assert not GATEWAY_TABLES & set(inspect(engine).get_table_names())
        assert "jobs" in inspect(engine).get_table_names()
        upgrade(empty_url)
        assert Accounting(engine, CollectorRegistry()).totals() == []
    finally:
        engine.dispose()


def test_tables_made_by_an_earlier_gateway_are_adopted(empty_url):
    """A gateway before 0005 created gateway_usage (without region) itself: 0005 keeps its rows."""
    upgrade(empty_url, "0004")
    old = MetaData()
    usage = Table(
        "gateway_usage", old,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False, index=True),
        *[Column(c, String(64), nullable=n) for c, n in (("tenant", False), ("model", False), ("site", True),
                                                        ("backend", True), ("accelerator", True),
                                                        ("slo_class", False), ("endpoint", False), ("status", False))],
        Column("prompt_tokens", Integer, nullable=False), Column("completion_tokens", Integer, nullable=False),
        Column("energy_j", Float, nullable=False), Column("carbon_g", Float, nullable=False),
        Column("cost_usd", Float, nullable=False), Column("ttft_ms", Float), Column("failovers", Integer, nullable=False),
    )
    engine = make_engine(empty_url)
    try:
        old.create_all(engine)
        with engine.begin() as c:
            c.execute(usage.insert(), [{"at": datetime(2026, 1, 1), "tenant": "old", "model": "m", "site": "a",
                                        "backend": "b", "accelerator": "H100", "slo_class": "interactive",
                                        "endpoint": "chat", "status": "ok", "prompt_tokens": 5,
                                        "completion_tokens": 7, "energy_j": 1.0, "carbon_g": 0.1,
                                        "cost_usd": 0.0, "ttft_ms": 10.0, "failovers": 0}])
        upgrade(empty_url)
        assert current_revision(engine) == "0005"
        assert "region" in {c["name"] for c in inspect(engine).get_columns("gateway_usage")}
        with engine.connect() as c:
            assert c.execute(text("SELECT tenant, completion_tokens, region FROM gateway_usage")).all() == [
                ("old", 7, None)]
        assert GATEWAY_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
