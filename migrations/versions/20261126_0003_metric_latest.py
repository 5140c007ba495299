"""metric_latest: the latest point of every metric of every run's component, kept on write.

Also ``ix_execution_job_id_id``, for "the N most recent runs of a job" (newest first by id), and
``ix_execution_external_run_id``, for finding a run by the id an orchestrator's UI shows.

Answers "the latest value of every metric for the last N runs of a job" from a few hundred rows
instead of scanning every point (issue #4's query (c)). The store upserts it in the same
transaction as the points. Rows of existing points are filled by the next revision (0004), a
separate data migration.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_latest",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["component.id"],
            name=op.f("fk_metric_latest_component_id_component"),
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_metric_latest_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "execution_id", "component_id", "name", name=op.f("pk_metric_latest")
        ),
    )
    with op.batch_alter_table("metric_latest", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_metric_latest_component_id"), ["component_id"], unique=False
        )
    # A plain CREATE INDEX (not batch mode): on SQLite batch mode would rebuild execution,
    # which the analyst views of 0002 name.
    op.create_index("ix_execution_job_id_id", "execution", ["job_id", "id"], unique=False)
    op.create_index("ix_execution_external_run_id", "execution", ["external_run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_execution_external_run_id", table_name="execution")
    op.drop_index("ix_execution_job_id_id", table_name="execution")
    with op.batch_alter_table("metric_latest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metric_latest_component_id"))
    op.drop_table("metric_latest")
