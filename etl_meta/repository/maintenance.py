"""Retention: find, lock, read out and delete finished runs older than a horizon.

A run is *expired* when its status is terminal (success, failed, canceled) and its age timestamp
``COALESCE(ended_at, started_at, created_at)`` is before the horizon. Queued and running runs are
never expired, however old: a stuck run is for a person to look at, not for the garbage collector.

Deletes name every table explicitly (metrics, then attempts, then runs) instead of relying on the
foreign keys' ``ON DELETE CASCADE``: SQLite only cascades with ``PRAGMA foreign_keys=ON``, and
explicit statements give exact counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.models import (
    Component,
    ComponentExecution,
    Execution,
    ExecutionStatus,
    ExecutionTag,
    Job,
    MetricPointRow,
    MetricRollup,
    MetricSeries,
    metric_points,
)
from etl_meta.repository.dialect import dialect_name
from etl_meta.transpose import columns_of

TERMINAL_STATUSES = tuple(status for status in ExecutionStatus if status.is_terminal)
UNFINISHED_STATUSES = tuple(status for status in ExecutionStatus if not status.is_terminal)

#: How an archived column is stored: integer, float, text, JSON document (as text) or UTC time.
ColumnKind = Literal["int", "float", "str", "json", "time", "date"]


@dataclass(frozen=True)
class DeleteCounts:
    """Rows one delete removed, per table."""

    runs: int
    attempts: int
    metrics: int


def run_age() -> sa.ColumnElement[Any]:
    """When a run last did anything the store knows of: its end, else its start, else creation."""
    return sa.func.coalesce(Execution.ended_at, Execution.started_at, Execution.created_at)


def _expired(older_than: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(col(Execution.status).in_(TERMINAL_STATUSES), run_age() < older_than)


def expired_run_ids(older_than: datetime) -> sa.Select[int]:
    """The ids of the runs a gc with this horizon deletes."""
    return sa.select(col(Execution.id)).where(_expired(older_than))


def count_expired(session: Session, *, older_than: datetime) -> DeleteCounts:
    """How many runs, attempts and metric points a gc with this horizon would delete now."""
    expired_ids = sa.select(col(Execution.id)).where(_expired(older_than))
    runs = session.scalar(sa.select(sa.func.count()).select_from(expired_ids.subquery()))
    attempts = session.scalar(
        sa.select(sa.func.count())
        .select_from(ComponentExecution)
        .where(col(ComponentExecution.execution_id).in_(expired_ids))
    )
    metrics = session.scalar(
        sa.select(sa.func.count())
        .select_from(metric_points)
        .where(metric_points.c.execution_id.in_(expired_ids))
    )
    return DeleteCounts(runs=runs or 0, attempts=attempts or 0, metrics=metrics or 0)


def count_unfinished(session: Session, *, older_than: datetime) -> int:
    """Queued or running runs older than the horizon: gc keeps them (probably stuck)."""
    query = (
        sa.select(sa.func.count())
        .select_from(Execution)
        .where(col(Execution.status).in_(UNFINISHED_STATUSES), run_age() < older_than)
    )
    return session.scalar(query) or 0


def lock_expired_batch(
    session: Session, *, older_than: datetime, after_id: int, limit: int
) -> list[int]:
    """Ids of up to ``limit`` expired runs with ``id > after_id``, in id order, locked.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` — a run another transaction is writing right now is
    passed over instead of waited for. SQLite: the caller's ``BEGIN IMMEDIATE`` already holds the
    database's one write lock, so nobody else is writing.
    """
    query = (
        sa.select(col(Execution.id))
        .where(_expired(older_than), col(Execution.id) > after_id)
        .order_by(col(Execution.id))
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def still_expired(session: Session, ids: Sequence[int], *, older_than: datetime) -> list[int]:
    """Of the locked ``ids``, those that are still expired (re-checked under the lock)."""
    if not ids:
        return []
    query = (
        sa.select(col(Execution.id))
        .where(col(Execution.id).in_(ids), _expired(older_than))
        .order_by(col(Execution.id))
    )
    return list(session.scalars(query))


def delete_runs(session: Session, ids: Sequence[int]) -> DeleteCounts:
    """Delete the runs ``ids`` with their metric points, step attempts and tags."""
    if not ids:
        return DeleteCounts(0, 0, 0)
    options = {"synchronize_session": False}
    session.execute(
        sa.delete(ExecutionTag).where(col(ExecutionTag.execution_id).in_(ids)),
        execution_options=options,
    )
    # Daily rollups (the retention pass's) go with their runs, uncounted: gc reports raw rows.
    session.execute(
        sa.delete(MetricRollup).where(col(MetricRollup.execution_id).in_(ids)),
        execution_options=options,
    )
    # Points have no foreign key to their series (see MetricPointRow): they go first, by series.
    series = sa.select(col(MetricSeries.id)).where(col(MetricSeries.execution_id).in_(ids))
    metrics = session.execute(
        sa.delete(MetricPointRow).where(col(MetricPointRow.series_id).in_(series)),
        execution_options=options,
    )
    session.execute(
        sa.delete(MetricSeries).where(col(MetricSeries.execution_id).in_(ids)),
        execution_options=options,
    )
    attempts = session.execute(
        sa.delete(ComponentExecution).where(col(ComponentExecution.execution_id).in_(ids)),
        execution_options=options,
    )
    runs = session.execute(
        sa.delete(Execution).where(col(Execution.id).in_(ids)), execution_options=options
    )
    return DeleteCounts(
        runs=max(runs.rowcount, 0),  # type: ignore[attr-defined]
        attempts=max(attempts.rowcount, 0),  # type: ignore[attr-defined]
        metrics=max(metrics.rowcount, 0),  # type: ignore[attr-defined]
    )


# -- reading rows out for the archive ------------------------------------------------------------

ArchiveColumns = tuple[tuple[str, Any, ColumnKind], ...]

RUN_COLUMNS: ArchiveColumns = (
    ("id", Execution.id, "int"),
    ("job_id", Execution.job_id, "int"),
    ("job_name", Job.name, "str"),
    ("orchestrator", Execution.orchestrator, "str"),
    ("external_run_id", Execution.external_run_id, "str"),
    ("status", Execution.status, "str"),
    ("job_revision", Execution.job_revision, "int"),
    ("config_versions", Execution.config_versions, "json"),
    ("run_config", Execution.run_config, "json"),
    ("started_at", Execution.started_at, "time"),
    ("ended_at", Execution.ended_at, "time"),
    ("error", Execution.error, "str"),
    ("parent_run_id", Execution.parent_run_id, "str"),
    ("root_run_id", Execution.root_run_id, "str"),
    ("log_path", Execution.log_path, "str"),
    ("created_at", Execution.created_at, "time"),
    ("updated_at", Execution.updated_at, "time"),
)
ATTEMPT_COLUMNS: ArchiveColumns = (
    ("id", ComponentExecution.id, "int"),
    ("execution_id", ComponentExecution.execution_id, "int"),
    ("job_name", Job.name, "str"),
    ("component_id", ComponentExecution.component_id, "int"),
    ("component_name", Component.name, "str"),
    ("attempt", ComponentExecution.attempt, "int"),
    ("status", ComponentExecution.status, "str"),
    ("config_version", ComponentExecution.config_version, "int"),
    ("started_at", ComponentExecution.started_at, "time"),
    ("ended_at", ComponentExecution.ended_at, "time"),
    ("error", ComponentExecution.error, "str"),
    ("created_at", ComponentExecution.created_at, "time"),
    ("updated_at", ComponentExecution.updated_at, "time"),
)
METRIC_COLUMNS: ArchiveColumns = (
    ("id", metric_points.c.id, "int"),
    ("execution_id", metric_points.c.execution_id, "int"),
    ("job_name", Job.name, "str"),
    ("component_id", metric_points.c.component_id, "int"),
    ("component_name", Component.name, "str"),
    ("attempt", metric_points.c.attempt, "int"),
    ("name", metric_points.c.name, "str"),
    ("step", metric_points.c.step, "int"),
    ("value", metric_points.c.value, "float"),
    ("recorded_at", metric_points.c.recorded_at, "time"),
)
TAG_COLUMNS: ArchiveColumns = (
    ("execution_id", ExecutionTag.execution_id, "int"),
    ("key", ExecutionTag.key, "str"),
    ("value", ExecutionTag.value, "str"),
    ("source", ExecutionTag.source, "str"),
    ("created_at", ExecutionTag.created_at, "time"),
    ("updated_at", ExecutionTag.updated_at, "time"),
)

ROLLUP_COLUMNS: ArchiveColumns = (
    ("execution_id", MetricRollup.execution_id, "int"),
    ("job_name", Job.name, "str"),
    ("component_id", MetricRollup.component_id, "int"),
    ("component_name", Component.name, "str"),
    ("attempt", MetricRollup.attempt, "int"),
    ("name", MetricRollup.name, "str"),
    ("day", MetricRollup.day, "date"),
    ("point_count", MetricRollup.point_count, "int"),
    ("min_value", MetricRollup.min_value, "float"),
    ("max_value", MetricRollup.max_value, "float"),
    ("sum_value", MetricRollup.sum_value, "float"),
    ("first_step", MetricRollup.first_step, "int"),
    ("first_value", MetricRollup.first_value, "float"),
    ("last_step", MetricRollup.last_step, "int"),
    ("last_value", MetricRollup.last_value, "float"),
)

#: The archived tables, in archive order: ``{name: columns}``.
ARCHIVE_TABLES: dict[str, ArchiveColumns] = {
    "runs": RUN_COLUMNS,
    "attempts": ATTEMPT_COLUMNS,
    "metrics": METRIC_COLUMNS,
    "tags": TAG_COLUMNS,
}
#: What the retention pass archives: gc's tables and the daily rollups of the runs.
RETENTION_ARCHIVE_TABLES: dict[str, ArchiveColumns] = {**ARCHIVE_TABLES, "rollups": ROLLUP_COLUMNS}


def _archive_query(table: str, ids: Sequence[int]) -> sa.Select[Any]:
    columns = [column.label(label) for label, column, _kind in RETENTION_ARCHIVE_TABLES[table]]
    if table == "runs":
        return (
            sa.select(*columns)
            .join(Job, col(Job.id) == Execution.job_id)
            .where(col(Execution.id).in_(ids))
            .order_by(col(Execution.id))
        )
    if table == "tags":
        return (
            sa.select(*columns)
            .where(col(ExecutionTag.execution_id).in_(ids))
            .order_by(col(ExecutionTag.execution_id), col(ExecutionTag.key))
        )
    if table == "rollups":
        return (
            sa.select(*columns)
            .select_from(MetricRollup)
            .join(Component, col(Component.id) == MetricRollup.component_id)
            .join(Job, col(Job.id) == Component.job_id)
            .where(col(MetricRollup.execution_id).in_(ids))
            .order_by(
                col(MetricRollup.execution_id),
                col(MetricRollup.component_id),
                col(MetricRollup.attempt),
                col(MetricRollup.name),
                col(MetricRollup.day),
            )
        )
    if table == "metrics":  # in key order: the points' id has no index
        point = metric_points
        return (
            sa.select(*columns)
            .select_from(point)
            .join(Component, col(Component.id) == point.c.component_id)
            .join(Job, col(Job.id) == Component.job_id)
            .where(point.c.execution_id.in_(ids))
            .order_by(point.c.series_id, point.c.step)
        )
    return (
        sa.select(*columns)
        .select_from(ComponentExecution)
        .join(Component, col(Component.id) == ComponentExecution.component_id)
        .join(Job, col(Job.id) == Component.job_id)
        .where(col(ComponentExecution.execution_id).in_(ids))
        .order_by(col(ComponentExecution.id))
    )


def archive_rows(
    session: Session, table: str, ids: Sequence[int], *, chunk_size: int = 50_000
) -> Iterator[list[list[Any]]]:
    """The rows of ``table`` ("runs", "attempts", "metrics", "tags", "rollups") of the runs ``ids``.

    Streamed in chunks of at most ``chunk_size`` rows, each chunk column by column in the order
    of ``ARCHIVE_TABLES[table]``, with plain values: enums as their text, JSON documents as JSON
    text, timestamps aware UTC. A batch with millions of metric points never sits in memory.
    """
    if not ids:
        return
    kinds = [kind for _name, _column, kind in RETENTION_ARCHIVE_TABLES[table]]
    # Core, not ORM, execution: plain columns need no ORM row loading, which only adds cost.
    query = _archive_query(table, ids).execution_options(yield_per=chunk_size)
    for partition in session.connection().execute(query).partitions():
        columns = columns_of(partition, len(kinds))
        yield [_plain(kind, values) for kind, values in zip(kinds, columns, strict=True)]


def _plain(kind: ColumnKind, values: Sequence[Any]) -> list[Any]:
    if kind == "json":
        return [None if v is None else json.dumps(v, sort_keys=True) for v in values]
    if kind == "str":
        return [None if v is None else str(v) for v in values]
    return list(values)
