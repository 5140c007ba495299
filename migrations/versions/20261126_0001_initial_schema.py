"""Initial schema: definitions (job, component, dataclass, tags, dependencies, configuration
history), runs (execution, component_execution, metric), run requests and the audit trail.

Column types are spelled out with plain SQLAlchemy types (not etl_meta.types) so this revision keeps
meaning the same schema when the application's types evolve.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:44:51.009698
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY (a rowid alias), not a BIGINT one.
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("entity_type", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=True),
        sa.Column("entity_key", sa.String(length=300), nullable=False),
        sa.Column("before", JSON, nullable=True),
        sa.Column("after", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_event_entity_type_entity_id", ["entity_type", "entity_id"], unique=False
        )
        batch_op.create_index("ix_audit_event_occurred_at", ["occurred_at"], unique=False)

    op.create_table(
        "dataclass",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("dataclass_type", sa.String(length=100), nullable=False),
        sa.Column("schema_definition", JSON, nullable=False),
        sa.Column("validation_rules", JSON, nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_archived", sa.Boolean(), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_dataclass_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataclass")),
        sa.UniqueConstraint("name", name=op.f("uq_dataclass_name")),
    )
    op.create_table(
        "job",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("num_of_retries", sa.Integer(), nullable=False),
        sa.Column("file_logging", sa.Boolean(), nullable=False),
        sa.Column(
            "strategy_type",
            sa.Enum(
                "sequential",
                "parallel",
                name="strategy_type",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.String(length=4000), nullable=True),
        sa.Column("max_concurrency", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("is_archived", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "num_of_retries >= 0 AND num_of_retries <= 100",
            name=op.f("ck_job_num_of_retries_range"),
        ),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_job_revision_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("name", name=op.f("uq_job_name")),
    )
    op.create_table(
        "tag",
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag")),
        sa.UniqueConstraint("key", "value", name=op.f("uq_tag_key_value")),
    )
    op.create_table(
        "component",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("component_type", sa.String(length=100), nullable=False),
        sa.Column("configuration", JSON, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "disabled",
                "archived",
                name="component_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.String(length=4000), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "config_version >= 1", name=op.f("ck_component_current_version_positive")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_component_job_id_job")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component")),
        sa.UniqueConstraint("job_id", "name", name=op.f("uq_component_job_id_name")),
    )
    with op.batch_alter_table("component", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_component_job_id"), ["job_id"], unique=False)

    op.create_table(
        "execution",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column(
            "orchestrator",
            sa.Enum(
                "dagster",
                "airflow",
                "manual",
                name="orchestrator",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("external_run_id", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "success",
                "failed",
                "canceled",
                name="execution_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("job_revision", sa.Integer(), nullable=True),
        sa.Column("config_versions", JSON, nullable=True),
        sa.Column("run_config", JSON, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("parent_run_id", sa.String(length=255), nullable=True),
        sa.Column("root_run_id", sa.String(length=255), nullable=True),
        sa.Column("log_path", sa.String(length=1024), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_execution_job_id_job")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution")),
        sa.UniqueConstraint(
            "orchestrator",
            "external_run_id",
            name=op.f("uq_execution_orchestrator_external_run_id"),
        ),
    )
    with op.batch_alter_table("execution", schema=None) as batch_op:
        batch_op.create_index(
            "ix_execution_job_id_started_at", ["job_id", "started_at"], unique=False
        )
        batch_op.create_index("ix_execution_status", ["status"], unique=False)

    op.create_table(
        "job_tag",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_tag_job_id_job"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"], ["tag.id"], name=op.f("fk_job_tag_tag_id_tag"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "tag_id", name=op.f("pk_job_tag")),
    )
    with op.batch_alter_table("job_tag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_tag_tag_id"), ["tag_id"], unique=False)

    op.create_table(
        "run_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "launched",
                "success",
                "failed",
                "canceled",
                name="run_request_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "orchestrator",
            sa.Enum(
                "dagster",
                "airflow",
                "manual",
                name="orchestrator",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("run_config", JSON, nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("external_run_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("launched_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], name=op.f("fk_run_request_job_id_job")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_request")),
        sa.UniqueConstraint("request_key", name=op.f("uq_run_request_request_key")),
    )
    with op.batch_alter_table("run_request", schema=None) as batch_op:
        batch_op.create_index("ix_run_request_status_id", ["status", "id"], unique=False)

    op.create_table(
        "component_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("configuration", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_component_config_version_positive")),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["component.id"],
            name=op.f("fk_component_config_component_id_component"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component_config")),
        sa.UniqueConstraint(
            "component_id", "version", name=op.f("uq_component_config_component_id_version")
        ),
    )
    op.create_table(
        "component_dataclass",
        sa.Column("component_id", sa.Integer(), nullable=False),
        sa.Column("dataclass_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "input", "output", name="role", native_enum=False, create_constraint=True, length=8
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["component.id"],
            name=op.f("fk_component_dataclass_component_id_component"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataclass_id"],
            ["dataclass.id"],
            name=op.f("fk_component_dataclass_dataclass_id_dataclass"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "component_id", "dataclass_id", "role", name=op.f("pk_component_dataclass")
        ),
    )
    with op.batch_alter_table("component_dataclass", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_component_dataclass_dataclass_id"), ["dataclass_id"], unique=False
        )

    op.create_table(
        "component_dependency",
        sa.Column("component_id", sa.Integer(), nullable=False),
        sa.Column("depends_on_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "component_id <> depends_on_id", name=op.f("ck_component_dependency_no_self_dependency")
        ),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["component.id"],
            name=op.f("fk_component_dependency_component_id_component"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["component.id"],
            name=op.f("fk_component_dependency_depends_on_id_component"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "component_id", "depends_on_id", name=op.f("pk_component_dependency")
        ),
    )
    with op.batch_alter_table("component_dependency", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_component_dependency_depends_on_id"), ["depends_on_id"], unique=False
        )

    op.create_table(
        "component_execution",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "success",
                "failed",
                "skipped",
                "canceled",
                name="step_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("config_version", sa.Integer(), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_component_execution_attempt_positive")),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["component.id"],
            name=op.f("fk_component_execution_component_id_component"),
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_component_execution_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component_execution")),
        sa.UniqueConstraint(
            "execution_id",
            "component_id",
            "attempt",
            name=op.f("uq_component_execution_execution_id_component_id_attempt"),
        ),
    )
    with op.batch_alter_table("component_execution", schema=None) as batch_op:
        batch_op.create_index(
            "ix_component_execution_component_id_started_at",
            ["component_id", "started_at"],
            unique=False,
        )

    op.create_table(
        "metric",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_metric_attempt_positive")),
        sa.ForeignKeyConstraint(
            ["component_id"], ["component.id"], name=op.f("fk_metric_component_id_component")
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_metric_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric")),
        sa.UniqueConstraint(
            "execution_id",
            "component_id",
            "attempt",
            "name",
            "step",
            name=op.f("uq_metric_execution_id_component_id_attempt_name_step"),
        ),
    )
    with op.batch_alter_table("metric", schema=None) as batch_op:
        batch_op.create_index(
            "ix_metric_component_id_name_recorded_at",
            ["component_id", "name", "recorded_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("metric", schema=None) as batch_op:
        batch_op.drop_index("ix_metric_component_id_name_recorded_at")

    op.drop_table("metric")
    with op.batch_alter_table("component_execution", schema=None) as batch_op:
        batch_op.drop_index("ix_component_execution_component_id_started_at")

    op.drop_table("component_execution")
    with op.batch_alter_table("component_dependency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_component_dependency_depends_on_id"))

    op.drop_table("component_dependency")
    with op.batch_alter_table("component_dataclass", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_component_dataclass_dataclass_id"))

    op.drop_table("component_dataclass")
    op.drop_table("component_config")
    with op.batch_alter_table("run_request", schema=None) as batch_op:
        batch_op.drop_index("ix_run_request_status_id")

    op.drop_table("run_request")
    with op.batch_alter_table("job_tag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_tag_tag_id"))

    op.drop_table("job_tag")
    with op.batch_alter_table("execution", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_status")
        batch_op.drop_index("ix_execution_job_id_started_at")

    op.drop_table("execution")
    with op.batch_alter_table("component", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_component_job_id"))

    op.drop_table("component")
    op.drop_table("tag")
    op.drop_table("job")
    op.drop_table("dataclass")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_occurred_at")
        batch_op.drop_index("ix_audit_event_entity_type_entity_id")

    op.drop_table("audit_event")
