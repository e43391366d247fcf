"""Initial schema: tokens, jobs and their history, the dispatch intent log, grid signals and events,
inference services, plans.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained types, so later changes to the models never change what this revision creates.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def TIME() -> sa.DateTime:  # noqa: N802
    return sa.DateTime(timezone=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TIME(), nullable=False),
        sa.Column("revoked_at", TIME(), nullable=True),
        sa.CheckConstraint(_in("role", ("tenant", "operator", "grid")), name=op.f("ck_tokens_role")),
        sa.CheckConstraint("role != 'tenant' OR tenant IS NOT NULL",
                           name=op.f("ck_tokens_tenant_role_has_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("submitted_at", TIME(), nullable=False),
        sa.Column("updated_at", TIME(), nullable=False),
        sa.Column("site", sa.String(200), nullable=True),
        sa.Column("accelerator", sa.String(200), nullable=True),
        sa.Column("gang", sa.Integer(), nullable=True),
        sa.Column("power_cap_frac", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIME(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            _in("status", ("queued", "planned", "running", "paused", "succeeded", "failed", "cancelled")),
            name=op.f("ck_jobs_status"),
        ),
        sa.CheckConstraint("attempts >= 0 AND max_attempts >= 1", name=op.f("ck_jobs_attempts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("tenant", "idempotency_key", name=op.f("uq_jobs_tenant_idempotency_key")),
    )
    op.create_index(op.f("ix_jobs_tenant_submitted_at_id"), "jobs", ["tenant", "submitted_at", "id"])
    op.create_index(op.f("ix_jobs_status_submitted_at"), "jobs", ["status", "submitted_at"])
    op.create_table(
        "job_events",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("at", TIME(), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(32), nullable=True),
        sa.Column("detail", JSON, nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    op.create_index(op.f("ix_job_events_job_id_id"), "job_events", ["job_id", "id"])
    op.create_table(
        "dispatches",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("job_version", sa.Integer(), nullable=False),
        sa.Column("args", JSON, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TIME(), nullable=False),
        sa.Column("completed_at", TIME(), nullable=True),
        sa.Column("executor_ref", sa.String(500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("action", ("start", "pause", "resume", "stop", "set_power_cap")),
                           name=op.f("ck_dispatches_action")),
        sa.CheckConstraint(_in("state", ("pending", "done", "failed")), name=op.f("ck_dispatches_state")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_dispatches_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatches")),
        sa.UniqueConstraint("job_id", "job_version", name=op.f("uq_dispatches_job_id_job_version")),
    )
    op.create_index(op.f("ix_dispatches_state_id"), "dispatches", ["state", "id"])
    op.create_index("uq_dispatches_start_job_id_attempt", "dispatches", ["job_id", "attempt"], unique=True,
                    sqlite_where=sa.text("action = 'start'"), postgresql_where=sa.text("action = 'start'"))
    op.create_table(
        "signals",
        sa.Column("zone", sa.String(100), nullable=False),
        sa.Column("signal", sa.String(100), nullable=False),
        sa.Column("at", TIME(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("zone", "signal", "at", name=op.f("pk_signals")),
    )
    op.create_table(
        "grid_events",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("start_at", TIME(), nullable=False),
        sa.Column("end_at", TIME(), nullable=False),
        sa.Column("received_at", TIME(), nullable=False),
        sa.Column("updated_at", TIME(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in("status", ("active", "cancelled")), name=op.f("ck_grid_events_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_events")),
    )
    op.create_index(op.f("ix_grid_events_end_at_start_at"), "grid_events", ["end_at", "start_at"])
    op.create_table(
        "services",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("replica_targets", JSON, nullable=False),
        sa.Column("updated_at", TIME(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_services")),
    )
    op.create_index(op.f("ix_services_tenant"), "services", ["tenant"])
    op.create_table(
        "plans",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("created_at", TIME(), nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("horizon_s", sa.Float(), nullable=True),
        sa.Column("summary", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
    )
    op.create_index(op.f("ix_plans_created_at"), "plans", ["created_at"])
    op.create_table(
        "plan_items",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("plan_id", BIGID, nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("site", sa.String(200), nullable=True),
        sa.Column("accelerator", sa.String(200), nullable=True),
        sa.Column("gang", sa.Integer(), nullable=True),
        sa.Column("start_at", TIME(), nullable=True),
        sa.Column("power_cap_frac", sa.Float(), nullable=True),
        sa.Column("why", JSON, nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_plan_items_plan_id_plans"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_plan_items_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_items")),
    )
    op.create_index(op.f("ix_plan_items_plan_id_job_id"), "plan_items", ["plan_id", "job_id"])


def downgrade() -> None:
    for table in ("plan_items", "plans", "services", "grid_events", "signals", "dispatches", "job_events",
                  "jobs", "tokens"):
        op.drop_table(table)  # indexes go with their table
