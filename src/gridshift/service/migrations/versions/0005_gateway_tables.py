"""The model gateway's tables: ``gateway_usage`` (one row per request, now with the caller's region),
``gateway_files`` and ``gateway_batches`` (the Batch API), ``gateway_demand`` (requests per minute, model,
region and SLO class, which the reconciler plans inference services with).

Gateways before this revision created the first three tables themselves; a table that already exists is
kept with its rows (``gateway_usage`` gains its ``region`` column, the missing indexes are added).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _tables() -> set[str]:
    return set(sa.inspect(op.get_bind()).get_table_names())


def _index(table: str, column: str) -> None:
    name = op.f(f"ix_{table}_{column}")
    if name not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, [column])


def upgrade() -> None:
    have = _tables()
    if "gateway_usage" not in have:
        op.create_table(
            "gateway_usage",
            sa.Column("id", BigID, autoincrement=True, nullable=False),
            sa.Column("at", TS, nullable=False),
            sa.Column("tenant", sa.String(128), nullable=False),
            sa.Column("model", sa.String(256), nullable=False),
            sa.Column("site", sa.String(64), nullable=True),
            sa.Column("backend", sa.String(64), nullable=True),
            sa.Column("accelerator", sa.String(64), nullable=True),
            sa.Column("slo_class", sa.String(16), nullable=False),
            sa.Column("endpoint", sa.String(32), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("prompt_tokens", sa.Integer(), nullable=False),
            sa.Column("completion_tokens", sa.Integer(), nullable=False),
            sa.Column("energy_j", sa.Float(), nullable=False),
            sa.Column("carbon_g", sa.Float(), nullable=False),
            sa.Column("cost_usd", sa.Float(), nullable=False),
            sa.Column("ttft_ms", sa.Float(), nullable=True),
            sa.Column("failovers", sa.Integer(), nullable=False),
            sa.Column("region", sa.String(64), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_usage")),
        )
    elif "region" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("gateway_usage")}:
        with op.batch_alter_table("gateway_usage") as b:
            b.add_column(sa.Column("region", sa.String(64), nullable=True))
    _index("gateway_usage", "at")
    if "gateway_files" not in have:
        op.create_table(
            "gateway_files",
            sa.Column("id", sa.String(40), nullable=False),
            sa.Column("tenant", sa.String(128), nullable=False),
            sa.Column("filename", sa.String(256), nullable=False),
            sa.Column("purpose", sa.String(32), nullable=False),
            sa.Column("created_at", TS, nullable=False),
            sa.Column("content", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_files")),
        )
    _index("gateway_files", "tenant")
    if "gateway_batches" not in have:
        op.create_table(
            "gateway_batches",
            sa.Column("id", sa.String(40), nullable=False),
            sa.Column("tenant", sa.String(128), nullable=False),
            sa.Column("endpoint", sa.String(64), nullable=False),
            sa.Column("input_file_id", sa.String(40), nullable=False),
            sa.Column("completion_window", sa.String(8), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("created_at", TS, nullable=False),
            sa.Column("start_at", TS, nullable=False),
            sa.Column("expires_at", TS, nullable=False),
            sa.Column("in_progress_at", TS, nullable=True),
            sa.Column("completed_at", TS, nullable=True),
            sa.Column("output_file_id", sa.String(40), nullable=True),
            sa.Column("error_file_id", sa.String(40), nullable=True),
            sa.Column("total", sa.Integer(), nullable=False),
            sa.Column("completed", sa.Integer(), nullable=False),
            sa.Column("failed", sa.Integer(), nullable=False),
            sa.Column("meta", JSON, nullable=True),
            sa.Column("start_reason", sa.String(256), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_batches")),
        )
    _index("gateway_batches", "tenant")
    op.create_table(
        "gateway_demand",
        sa.Column("window_start", TS, nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("slo_class", sa.String(16), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("window_start", "model", "region", "slo_class", name=op.f("pk_gateway_demand")),
    )


def downgrade() -> None:
    op.drop_table("gateway_demand")
    op.drop_index(op.f("ix_gateway_batches_tenant"), table_name="gateway_batches")
    op.drop_table("gateway_batches")
    op.drop_index(op.f("ix_gateway_files_tenant"), table_name="gateway_files")
    op.drop_table("gateway_files")
    op.drop_index(op.f("ix_gateway_usage_at"), table_name="gateway_usage")
    op.drop_table("gateway_usage")
