"""retention_policy and metric_rollup: retention that runs itself (issue 20, item 2).

``retention_policy`` holds one default policy (``job_id`` NULL) and per-job overrides with legal
holds; ``metric_rollup`` holds the daily summaries the retention pass writes before it deletes
raw metric points. Neither changes ``metric`` or its views.

Roles that ``etl-meta db roles`` set up in this database before this revision get their share
of the new tables here, as ``db roles`` would: the writer reads them, the admin changes them
(the retention pass runs as admin), the reader gets nothing (no view over them yet).

Revision ID: 0012
Revises: 0011 (re-pointed at the merge with 0011)
Create Date: 2026-12-08 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GRANTS = (
    ("etl_meta_writer", "SELECT", "execution', 'INSERT"),
    ("etl_meta_admin", "SELECT, INSERT, UPDATE, DELETE", "job', 'DELETE"),
)

_GRANT_IF_SET_UP = (
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
    "AND has_table_privilege('{role}', '{probe}') THEN {grant}; END IF; END $$"
)


def upgrade() -> None:
    op.create_table(
        "retention_policy",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("raw_days", sa.Integer(), nullable=True),
        sa.Column("rollup_days", sa.Integer(), nullable=True),
        sa.Column("is_archiving", sa.Boolean(), nullable=True),
        sa.Column("has_legal_hold", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.String(length=1000), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "is_default = (job_id IS NULL)", name=op.f("ck_retention_policy_default_has_no_job")
        ),
        sa.CheckConstraint(
            "NOT is_default OR (raw_days IS NOT NULL AND rollup_days IS NOT NULL "
            "AND is_archiving IS NOT NULL AND NOT has_legal_hold)",
            name=op.f("ck_retention_policy_default_complete"),
        ),
        sa.CheckConstraint(
            "raw_days BETWEEN 1 AND 36500", name=op.f("ck_retention_policy_raw_days_range")
        ),
        sa.CheckConstraint(
            "rollup_days BETWEEN 0 AND 36500", name=op.f("ck_retention_policy_rollup_days_range")
        ),
        sa.CheckConstraint(
            "NOT has_legal_hold OR hold_reason IS NOT NULL",
            name=op.f("ck_retention_policy_hold_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
            name=op.f("fk_retention_policy_job_id_job"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policy")),
        sa.UniqueConstraint("job_id", name=op.f("uq_retention_policy_job_id")),
    )
    with op.batch_alter_table("retention_policy", schema=None) as batch_op:
        batch_op.create_index(
            "ix_retention_policy_is_default",
            ["is_default"],
            unique=True,
            postgresql_where=sa.text("is_default"),
            sqlite_where=sa.text("is_default"),
        )
    op.create_table(
        "metric_rollup",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("point_count", sa.BigInteger(), nullable=False),
        sa.Column("min_value", sa.Double(), nullable=False),
        sa.Column("max_value", sa.Double(), nullable=False),
        sa.Column("sum_value", sa.Double(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("first_value", sa.Double(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=False),
        sa.CheckConstraint("point_count >= 1", name=op.f("ck_metric_rollup_point_count_positive")),
        sa.ForeignKeyConstraint(
            ["component_id"], ["component.id"], name=op.f("fk_metric_rollup_component_id_component")
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_metric_rollup_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "execution_id", "component_id", "attempt", "name", "day", name=op.f("pk_metric_rollup")
        ),
    )
    with op.batch_alter_table("metric_rollup", schema=None) as batch_op:
        batch_op.create_index(
            "ix_metric_rollup_component_id_name_day", ["component_id", "name", "day"], unique=False
        )
    if op.get_context().dialect.name != "postgresql":
        return
    for role, privileges, probe in _GRANTS:
        grant = f"GRANT {privileges} ON retention_policy, metric_rollup TO {role}"
        if "INSERT" in privileges:
            grant += f"; GRANT USAGE ON SEQUENCE retention_policy_id_seq TO {role}"
        op.execute(_GRANT_IF_SET_UP.format(role=role, probe=probe, grant=grant))


def downgrade() -> None:
    with op.batch_alter_table("metric_rollup", schema=None) as batch_op:
        batch_op.drop_index("ix_metric_rollup_component_id_name_day")
    op.drop_table("metric_rollup")
    with op.batch_alter_table("retention_policy", schema=None) as batch_op:
        batch_op.drop_index("ix_retention_policy_is_default")
    op.drop_table("retention_policy")
