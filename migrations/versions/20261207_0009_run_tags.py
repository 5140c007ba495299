"""execution_tag and v_run_tag: ``key=value`` tags on runs, and the view analysts query them by.

Tags come from the orchestrators (Dagster run tags; Airflow DAG-run conf, note and run type) and
from people (``etl-meta runs tag``). Values are masked before they are stored, so the view may be
granted like the others (``docs/sql-views.md``). The view's SQL is the same on both dialects.

Roles that ``etl-meta db roles`` set up in this database before this revision get their share of
the new table and view here (reader: the view; writer: record tags; admin: change them), as
``db roles`` would.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

V_RUN_TAG = """
CREATE VIEW v_run_tag AS
SELECT
    t.execution_id AS run_id,
    j.name AS job,
    e.orchestrator,
    e.external_run_id,
    t.key,
    t.value,
    t.source,
    t.updated_at
FROM execution_tag t
JOIN execution e ON e.id = t.execution_id
JOIN job j ON j.id = e.job_id
"""

COMMENTS: dict[str, str] = {
    "run_id": "etl-meta's id of the run (execution.id); join v_run on it",
    "key": "the tag's key (dagster/schedule_name, conf.experiment, team, ...)",
    "value": "the tag's value; secrets were masked before they were stored",
    "source": "who wrote it: dagster, airflow, manual (the API) or user (etl-meta runs tag)",
}

#: (role, privileges on the table, what only ``db roles`` in this database gives the role): the
#: grants ``etl-meta db roles`` gives. Roles are shared by every database of a server, so a role
#: gets them only where ``db roles`` set it up (the probe), never in another etl-meta database.
_GRANTS = (
    ("etl_meta_reader", None, "v_run', 'SELECT"),
    ("etl_meta_writer", "SELECT, INSERT, UPDATE", "execution', 'INSERT"),
    ("etl_meta_admin", "SELECT, INSERT, UPDATE, DELETE", "job', 'DELETE"),
)

_GRANT_IF_SET_UP = (
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
    "AND has_table_privilege('{role}', '{probe}') THEN {grant}; END IF; END $$"
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    op.create_table(
        "execution_tag",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "dagster",
                "airflow",
                "manual",
                "user",
                name="tag_source",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_execution_tag_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "key", name=op.f("pk_execution_tag")),
    )
    with op.batch_alter_table("execution_tag", schema=None) as batch_op:
        batch_op.create_index("ix_execution_tag_key_value", ["key", "value"], unique=False)
    op.execute(V_RUN_TAG)
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        "COMMENT ON VIEW v_run_tag IS "
        + _literal("etl-meta: one row per tag of a run, with the run's job and ids.")
    )
    for column, text in COMMENTS.items():
        op.execute(f"COMMENT ON COLUMN v_run_tag.{column} IS {_literal(text)}")
    for role, privileges, probe in _GRANTS:
        grant = f"GRANT SELECT ON v_run_tag TO {role}"
        if privileges is not None:
            grant += f"; GRANT {privileges} ON execution_tag TO {role}"
        op.execute(_GRANT_IF_SET_UP.format(role=role, probe=probe, grant=grant))


def downgrade() -> None:
    op.execute("DROP VIEW v_run_tag")
    with op.batch_alter_table("execution_tag", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_tag_key_value")
    op.drop_table("execution_tag")
