"""Client-supplied job ids: ``jobs.client_id``, unique per tenant.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column and a unique index: plain ALTER TABLE on both backends (no SQLite table rebuild).
    op.add_column("jobs", sa.Column("client_id", sa.String(128), nullable=True))
    op.create_index("uq_jobs_client_id_tenant", "jobs", ["client_id", "tenant"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_jobs_client_id_tenant", table_name="jobs")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE jobs DROP COLUMN client_id")  # SQLite >= 3.35, without a table rebuild
    else:
        op.drop_column("jobs", "client_id")
