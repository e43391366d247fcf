"""Indexes for the dashboard's overview (``GET /api/v1/queue``): jobs per status of one tenant counted from
an index, and the newest jobs of all tenants read from one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_jobs_tenant_status"), "jobs", ["tenant", "status"])
    op.create_index(op.f("ix_jobs_submitted_at_id"), "jobs", ["submitted_at", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_submitted_at_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_tenant_status"), table_name="jobs")
