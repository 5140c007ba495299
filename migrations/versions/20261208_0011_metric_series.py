"""Metric points as series + points, partitioned on PostgreSQL by ranges of series id.

``metric`` (one row per point, the name string on every row, three B-trees) becomes:

* ``metric_name``: the dictionary of names;
* ``metric_series``: one row per (run, component, name, attempt), its idempotency key unique;
* ``metric_point``: ``(series_id, step)`` keyed points. On PostgreSQL it is partitioned by
  ``RANGE (series_id)``, with a ``DEFAULT`` partition and ``metric_partition`` listing the
  ranges; ``id`` comes from ``metric_point_id_seq``. On SQLite it is one table whose ``id`` the
  writer assigns (``ix_metric_point_id`` finds the highest, SQLite only).

Existing points move in bounded batches of ``metric.id`` ranges (names, then series in order
of their first point, then the points with their old ids); the downgrade moves them back in
batches of series ranges. ``v_metric`` and ``v_metric_daily`` are dropped before ``metric`` and
created again over the new tables, with the same columns. See docs/internals/metric-storage.md.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 03:00:00.000000
"""

import importlib.util
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What the downgrade carries back into ``metric`` (etl_meta.downgrades reports no loss for them).
DOWNGRADE_MOVES = {
    "metric_name": "metric",
    "metric_series": "metric",
    "metric_point": "metric",
}
#: Rows that describe partitions, not data: dropping them loses nothing.
BOOKKEEPING_TABLES = ("metric_partition",)
TIMESTAMP = sa.DateTime(timezone=True)
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: ``metric.id`` values moved per statement on the way up; series per statement on the way down
#: (a tenth of it). ``ETL_META_MIGRATION_BATCH_ROWS`` bounds them for a server with little memory.
POINTS_PER_BATCH = int(os.environ.get("ETL_META_MIGRATION_BATCH_ROWS", "500000"))
SERIES_PER_BATCH = max(POINTS_PER_BATCH // 10, 1)
#: Series per partition, and how many empty partitions the migration leaves above the last
#: series (etl_meta.models.metric.SERIES_PER_PARTITION; maintenance adds more as runs record).
SERIES_PER_PARTITION = 100_000
PARTITIONS_AHEAD = 2

# The points as the old table's rows, for the views: both databases flatten it into the query.
POINTS = (
    "(SELECT p.id, s.execution_id, s.component_id, s.attempt, n.name, p.step, p.value, "
    "p.recorded_at FROM metric_point p JOIN metric_series s ON s.id = p.series_id "
    "JOIN metric_name n ON n.id = s.name_id)"
)
# The highest attempt of a run's component is read from the series (far fewer rows).
LATEST_ATTEMPT_OLD = "SELECT max(x.attempt) FROM metric x"
LATEST_ATTEMPT_NEW = "SELECT max(x.attempt) FROM metric_series x"

MOVE_SERIES = """
INSERT INTO metric_series (execution_id, component_id, name_id, attempt)
SELECT m.execution_id, m.component_id, n.id, m.attempt
FROM metric m JOIN metric_name n ON n.name = m.name
WHERE m.id >= :low AND m.id < :high
GROUP BY m.execution_id, m.component_id, n.id, m.attempt
ORDER BY min(m.id)
ON CONFLICT DO NOTHING
"""
MOVE_POINTS = """
INSERT INTO metric_point (series_id, step, value, recorded_at, id)
SELECT s.id, m.step, m.value, m.recorded_at, m.id
FROM metric m
JOIN metric_name n ON n.name = m.name
JOIN metric_series s ON s.execution_id = m.execution_id AND s.component_id = m.component_id
    AND s.name_id = n.id AND s.attempt = m.attempt
WHERE m.id >= :low AND m.id < :high
"""
MOVE_BACK = """
INSERT INTO metric (id, execution_id, component_id, attempt, name, step, value, recorded_at)
SELECT p.id, s.execution_id, s.component_id, s.attempt, n.name, p.step, p.value, p.recorded_at
FROM metric_point p
JOIN metric_series s ON s.id = p.series_id
JOIN metric_name n ON n.id = s.name_id
WHERE p.series_id >= :low AND p.series_id < :high
"""

_GRANT_IF_SET_UP = (
    "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
    "AND has_table_privilege('{role}', '{probe}') THEN {grant}; END IF; END $$"
)
#: (role, privileges on the point tables, probe): as ``etl-meta db roles`` grants them.
_TABLE_GRANTS = (
    ("etl_meta_writer", "SELECT, INSERT, UPDATE", "execution', 'INSERT"),
    ("etl_meta_admin", "SELECT, INSERT, UPDATE, DELETE", "job', 'DELETE"),
)


def _views_module() -> ModuleType:
    """Revision 0002, whose view texts and comments this revision rewrites over the new tables."""
    path = next(Path(__file__).parent.glob("*_0002_analyst_views.py"))
    spec = importlib.util.spec_from_file_location("etl_meta_migration_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _metric_views(new: bool) -> dict[str, str]:
    """``v_metric`` and ``v_metric_daily`` for this dialect, over the new tables or ``metric``."""
    views = _views_module()
    dialect = op.get_context().dialect.name
    texts = {name: views.VIEWS[name][dialect] for name in ("v_metric", "v_metric_daily")}
    if not new:
        return texts
    return {
        name: text.replace(LATEST_ATTEMPT_OLD, LATEST_ATTEMPT_NEW).replace(
            "FROM metric m", f"FROM {POINTS} m"
        )
        for name, text in texts.items()
    }


def _describe_views() -> None:
    views = _views_module()
    for name in ("v_metric", "v_metric_daily"):
        comment, columns = views.COMMENTS[name]
        op.execute(f"COMMENT ON VIEW {name} IS {views._literal(comment)}")
        for column, text in columns.items():
            op.execute(f"COMMENT ON COLUMN {name}.{column} IS {views._literal(text)}")
    op.execute(
        _GRANT_IF_SET_UP.format(
            role="etl_meta_reader",
            probe="v_run', 'SELECT",
            grant="GRANT SELECT ON v_metric, v_metric_daily TO etl_meta_reader",
        )
    )


def _grant(tables: str, sequences: str) -> None:
    for role, privileges, probe in _TABLE_GRANTS:
        grant = f"GRANT {privileges} ON {tables} TO {role}; "
        grant += f"GRANT USAGE ON SEQUENCE {sequences} TO {role}"
        op.execute(_GRANT_IF_SET_UP.format(role=role, probe=probe, grant=grant))


def _batches(low: int | None, high: int | None, size: int) -> list[tuple[int, int]]:
    if low is None or high is None:
        return []
    return [(start, start + size) for start in range(low, high + 1, size)]


def _create_point_tables(postgresql: bool) -> None:
    op.create_table(
        "metric_name",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_name")),
        sa.UniqueConstraint("name", name=op.f("uq_metric_name_name")),
    )
    op.create_table(
        "metric_series",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.Integer(), nullable=False),
        sa.Column("name_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_metric_series_attempt_positive")),
        sa.ForeignKeyConstraint(
            ["component_id"], ["component.id"], name=op.f("fk_metric_series_component_id_component")
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_metric_series_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["name_id"], ["metric_name.id"], name=op.f("fk_metric_series_name_id_metric_name")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_series")),
        sa.UniqueConstraint(
            "execution_id",
            "component_id",
            "name_id",
            "attempt",
            name=op.f("uq_metric_series_execution_id_component_id_name_id_attempt"),
        ),
    )
    op.create_index(
        "ix_metric_series_component_id_name_id",
        "metric_series",
        ["component_id", "name_id", "execution_id"],
    )
    if postgresql:
        # The ranges of metric_point's partitions: PostgreSQL only, outside the models.
        op.create_table(
            "metric_partition",
            sa.Column("name", sa.String(length=63), nullable=False),
            sa.Column("low", sa.BigInteger(), nullable=False),
            sa.Column("high", sa.BigInteger(), nullable=False),
            sa.Column("created_at", TIMESTAMP, nullable=False),
            sa.PrimaryKeyConstraint("name", name=op.f("pk_metric_partition")),
            sa.UniqueConstraint("low", name=op.f("uq_metric_partition_low")),
        )
        op.execute("CREATE SEQUENCE metric_point_id_seq")
        op.execute(
            "CREATE TABLE metric_point (series_id bigint NOT NULL, step bigint NOT NULL, "
            "value double precision NOT NULL, recorded_at timestamptz NOT NULL, "
            "id bigint NOT NULL DEFAULT nextval('metric_point_id_seq'), "
            "CONSTRAINT pk_metric_point PRIMARY KEY (series_id, step)) "
            "PARTITION BY RANGE (series_id)"
        )
        op.execute("ALTER SEQUENCE metric_point_id_seq OWNED BY metric_point.id")
        op.execute("CREATE TABLE metric_point_default PARTITION OF metric_point DEFAULT")
        op.execute(
            "CREATE INDEX ix_metric_point_recorded_at ON metric_point USING brin (recorded_at)"
        )
        return
    op.create_table(
        "metric_point",
        sa.Column("series_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "step", name=op.f("pk_metric_point")),
    )
    op.create_index("ix_metric_point_recorded_at", "metric_point", ["recorded_at"])
    op.create_index("ix_metric_point_id", "metric_point", ["id"], unique=True)


def _create_partitions(connection: sa.Connection, last_series: int) -> None:
    """Ranges from 1 to ``PARTITIONS_AHEAD`` empty ones above ``last_series``."""
    now = datetime.now(UTC)
    low = 1
    while low <= last_series + PARTITIONS_AHEAD * SERIES_PER_PARTITION:
        high = low + SERIES_PER_PARTITION
        name = f"metric_point_{low}"
        op.execute(
            f"CREATE TABLE {name} PARTITION OF metric_point FOR VALUES FROM ({low}) TO ({high})"
        )
        connection.execute(
            sa.text(
                "INSERT INTO metric_partition (name, low, high, created_at) "
                "VALUES (:name, :low, :high, :now)"
            ),
            {"name": name, "low": low, "high": high, "now": now},
        )
        low = high


def upgrade() -> None:
    connection = op.get_bind()
    postgresql = connection.dialect.name == "postgresql"
    _create_point_tables(postgresql)
    connection.execute(
        sa.text("INSERT INTO metric_name (name) SELECT DISTINCT name FROM metric ORDER BY name")
    )
    low, high = connection.execute(sa.text("SELECT min(id), max(id) FROM metric")).one()
    for start, end in _batches(low, high, POINTS_PER_BATCH):
        connection.execute(sa.text(MOVE_SERIES), {"low": start, "high": end})
    if postgresql:
        last = connection.execute(sa.text("SELECT coalesce(max(id), 0) FROM metric_series"))
        _create_partitions(connection, int(last.scalar_one()))
    for start, end in _batches(low, high, POINTS_PER_BATCH):
        connection.execute(sa.text(MOVE_POINTS), {"low": start, "high": end})
    if postgresql:
        op.execute(
            "SELECT setval('metric_point_id_seq', coalesce(max(id), 0) + 1, false) "
            "FROM metric_point"
        )
    for view in ("v_metric_daily", "v_metric"):
        op.execute(f"DROP VIEW {view}")
    op.drop_index("ix_metric_component_id_name_recorded_at", table_name="metric")
    op.drop_table("metric")
    for text in _metric_views(new=True).values():
        op.execute(text)
    if postgresql:
        _describe_views()
        _grant(
            "metric_name, metric_series, metric_point",
            "metric_name_id_seq, metric_series_id_seq, metric_point_id_seq",
        )


def downgrade() -> None:
    connection = op.get_bind()
    postgresql = connection.dialect.name == "postgresql"
    for view in ("v_metric_daily", "v_metric"):
        op.execute(f"DROP VIEW {view}")
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
    op.create_index(
        "ix_metric_component_id_name_recorded_at",
        "metric",
        ["component_id", "name", "recorded_at"],
    )
    low, high = connection.execute(sa.text("SELECT min(id), max(id) FROM metric_series")).one()
    for start, end in _batches(low, high, SERIES_PER_BATCH):
        connection.execute(sa.text(MOVE_BACK), {"low": start, "high": end})
    if postgresql:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('metric', 'id'), coalesce(max(id), 0) + 1, "
            "false) FROM metric"
        )
    op.drop_table("metric_point")  # on PostgreSQL its partitions go with it
    if postgresql:
        op.drop_table("metric_partition")
    op.drop_table("metric_series")
    op.drop_table("metric_name")
    for text in _metric_views(new=False).values():
        op.execute(text)
    if postgresql:
        _describe_views()
        _grant("metric", "metric_id_seq")
