"""Metric points: writing a batch in a transaction of its own, and simple reads.

The write path itself (names, series, points, ``metric_latest``) is
:mod:`etl_meta.repository.metric_points`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from etl_meta.db import HeldConnection
from etl_meta.models import (
    Component,
    Execution,
    ExecutionStatus,
    MetricSeries,
    Orchestrator,
    metric_points,
)
from etl_meta.repository.metric_points import (
    POINT_COLUMNS,
    PointRow,
    driver_errors,
    insert_points,
    write_points,
    write_series_points,
)
from etl_meta.validation import storable

__all__ = [
    "POINT_COLUMNS",
    "PointRow",
    "commit_points",
    "find_target",
    "insert_points",
    "list_points",
    "write_points",
]


def commit_points(engine: sa.Engine, rows: Sequence[PointRow], held: HeldConnection | None) -> int:
    """:func:`write_points` in a transaction of its own, committed; returns how many were new.

    For an op's small metric batch, so no SQLAlchemy layer: a session or Core transaction
    around one statement costs 4–15 times what the driver's own ``BEGIN``/``COMMIT`` does on
    SQLite. The connection is ``held`` (see :class:`~etl_meta.db.HeldConnection`) when it is
    free, else a pooled one. Driver errors come out as SQLAlchemy's ``DBAPIError`` (so the
    store translates them as usual), and a connection the error says is dead is dropped.

    Series ids this store saw committed are remembered (``HeldConnection.series_ids``), so an
    op's next step of the same metric writes its point without looking its series up again.
    """
    dialect = engine.dialect
    # The driver's own connection (sqlite3 or psycopg): untyped, as SQLAlchemy hands it out.
    driver: Any = held.acquire() if held is not None else None
    pooled = None
    if driver is None:
        pooled = engine.raw_connection()  # pool errors already come out as SQLAlchemy's
        driver = pooled.driver_connection
    sqlite = dialect.name == "sqlite"
    broken = False
    try:
        with driver_errors(dialect, "BEGIN"):
            try:
                if sqlite:  # autocommit-mode pysqlite (etl_meta.db): we open it, for the write lock
                    driver.execute("BEGIN IMMEDIATE")
                known = held.series_ids if held is not None else None
                inserted, series = write_series_points(driver, dialect, rows, known)
                if sqlite:
                    driver.execute("COMMIT")
                else:
                    driver.commit()
                if held is not None:
                    held.remember_series(series)
            except BaseException:
                if not sqlite:
                    driver.rollback()
                elif driver.in_transaction:
                    driver.execute("ROLLBACK")
                raise
    except sa.exc.DBAPIError as exc:
        # Always a driver error here (driver_errors wraps only those); the check narrows it.
        orig = exc.orig
        broken = exc.connection_invalidated or (
            isinstance(orig, dialect.loaded_dbapi.Error)
            and dialect.is_disconnect(orig, driver, None)
        )
        if broken and pooled is not None:
            pooled.invalidate(exc.orig)
        raise
    finally:
        if pooled is not None:
            pooled.close()
        elif held is not None:
            # A transaction still open here means even ROLLBACK failed: start afresh next time.
            held.release(discard=broken or bool(sqlite and driver.in_transaction))
    return inserted


#: ``(execution_id, component_id, status, log_path, job_revision, config_versions)``
TargetRow = sa.Row[int, int, ExecutionStatus, str | None, int | None, dict[str, Any] | None]


def find_target(
    session: Session, orchestrator: Orchestrator, run_id: str, component: str
) -> TargetRow | None:
    """The ids a run's component records under, and the run's recorded identity, in one query:
    ``(execution_id, component_id, status, log_path, job_revision, config_versions)``.
    """
    if not storable(run_id) or not storable(component):
        return None
    return session.execute(
        sa.select(
            col(Execution.id),
            col(Component.id),
            col(Execution.status),
            col(Execution.log_path),
            col(Execution.job_revision),
            col(Execution.config_versions),
        )
        .join(Component, col(Component.job_id) == Execution.job_id)
        .where(
            col(Execution.orchestrator) == orchestrator,
            col(Execution.external_run_id) == run_id,
            col(Component.name) == component,
        )
    ).first()


def list_points(
    session: Session,
    *,
    execution_id: int,
    component_id: int | None = None,
    name: str | None = None,
    final_attempt_only: bool = False,
) -> Sequence[sa.Row[Any]]:
    """Points of one execution, by component, name, attempt and step: rows of ``component_name``,
    ``name``, ``attempt``, ``step``, ``value`` and ``recorded_at``.
    """
    if name is not None and not storable(name):
        return []  # no point can carry such a name
    point = metric_points
    query = (
        sa.select(
            col(Component.name).label("component_name"),
            point.c.name,
            point.c.attempt,
            point.c.step,
            point.c.value,
            point.c.recorded_at,
        )
        .join(Component, col(Component.id) == point.c.component_id)
        .where(point.c.execution_id == execution_id)
        .order_by(col(Component.name), point.c.name, point.c.attempt, point.c.step)
    )
    if component_id is not None:
        query = query.where(point.c.component_id == component_id)
    if name is not None:
        query = query.where(point.c.name == name)
    if final_attempt_only:
        # The highest attempt of the step that recorded metrics: read from the series.
        latest = (
            sa.select(sa.func.max(col(MetricSeries.attempt)))
            .where(
                col(MetricSeries.execution_id) == point.c.execution_id,
                col(MetricSeries.component_id) == point.c.component_id,
            )
            .scalar_subquery()
        )
        query = query.where(point.c.attempt == latest)
    return session.execute(query).all()
