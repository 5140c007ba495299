"""metric_latest: a partial index of retried steps, for reads of final attempts.

``attempts="final"`` (the analytics default) keeps a point when no later attempt of its step
recorded metrics. Only retried steps can have a later attempt, so the index holds only rows with
``attempt > 1``: it stays a small fraction of ``metric_latest``, and reads probe it instead of
the whole table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_metric_latest_retried",
        "metric_latest",
        ["execution_id", "component_id", "attempt"],
        unique=False,
        postgresql_where=sa.text("attempt > 1"),
        sqlite_where=sa.text("attempt > 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_metric_latest_retried", table_name="metric_latest")
