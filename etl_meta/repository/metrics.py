"""Metric points: a bulk, idempotent insert path and simple reads.

Going row by row through the ORM is several times slower than Core ``executemany``, which is
itself several times slower than the driver's bulk path (``benchmarks/metric_ingest.py``). So
points skip the ORM entirely:

* SQLite: one ``INSERT … ON CONFLICT DO NOTHING`` through the driver's ``executemany``, then
  the ``metric_latest`` upsert (in-process statements cost microseconds; the commit dominates).
* PostgreSQL, up to :data:`COPY_ABOVE` points (an op's call): one statement, one round trip —
  the points as arrays through ``unnest``, inserted with ``ON CONFLICT DO NOTHING``, and the
  inserted ones carried on to ``metric_latest`` in the same statement.
* PostgreSQL, larger batches: binary ``COPY`` into a session-local staging table, then one
  ``INSERT … SELECT … ON CONFLICT DO NOTHING`` — COPY speed, with replays ignored. Its four
  extra round trips (stage, copy, insert, empty) only pay off for big batches.

Rows arrive validated (finite values, aware timestamps) from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from etl_meta.db import HeldConnection
from etl_meta.models import Component, Execution, ExecutionStatus, Metric, Orchestrator
from etl_meta.validation import storable

#: Column order of the tuples :func:`insert_points` takes.
POINT_COLUMNS = ("execution_id", "component_id", "attempt", "name", "step", "value", "recorded_at")
# Literal statements (no string building): the column order matches POINT_COLUMNS.
_SQLITE_INSERT = (
    "INSERT INTO metric (execution_id, component_id, attempt, name, step, value, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
#: SQLAlchemy's default SQLite ``DATETIME`` storage format (``DATETIME._storage_format``).
_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"
_PG_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS etl_meta_metric_stage ("
    "execution_id integer, component_id integer, attempt integer, name varchar(255), "
    "step bigint, value double precision, recorded_at timestamptz) ON COMMIT DELETE ROWS"
)
_PG_COPY_STAGE = (
    "COPY etl_meta_metric_stage "
    "(execution_id, component_id, attempt, name, step, value, recorded_at) "
    "FROM STDIN (FORMAT BINARY)"
)
_PG_COPY_TYPES = ["int4", "int4", "int4", "varchar", "int8", "float8", "timestamptz"]
_PG_COPY_METRIC = (
    "COPY metric (execution_id, component_id, attempt, name, step, value, recorded_at) "
    "FROM STDIN (FORMAT BINARY)"
)
_PG_SAVEPOINT = "SAVEPOINT etl_meta_copy"
_PG_RELEASE = "RELEASE SAVEPOINT etl_meta_copy"
_PG_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT etl_meta_copy"
#: SQLSTATE of a unique violation: the batch repeats a stored point.
_UNIQUE_VIOLATION = "23505"
_PG_INSERT_FROM_STAGE = (
    "INSERT INTO metric (execution_id, component_id, attempt, name, step, value, recorded_at) "
    "SELECT execution_id, component_id, attempt, name, step, value, recorded_at "
    "FROM etl_meta_metric_stage ON CONFLICT DO NOTHING"
)
_PG_EMPTY_STAGE = "TRUNCATE etl_meta_metric_stage"
_UPSERT_LATEST_TAIL = (
    "ON CONFLICT (execution_id, component_id, name) DO UPDATE SET attempt = excluded.attempt, "
    "step = excluded.step, value = excluded.value, recorded_at = excluded.recorded_at "
    "WHERE excluded.attempt > metric_latest.attempt OR "
    "(excluded.attempt = metric_latest.attempt AND excluded.step > metric_latest.step)"
)
_SQLITE_UPSERT_LATEST = (
    "INSERT INTO metric_latest "
    "(execution_id, component_id, attempt, name, step, value, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) " + _UPSERT_LATEST_TAIL
)
_PG_UPSERT_LATEST = (
    "INSERT INTO metric_latest "
    "(execution_id, component_id, attempt, name, step, value, recorded_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) " + _UPSERT_LATEST_TAIL
)

#: PostgreSQL batches larger than this take the COPY path; smaller ones one array statement.
COPY_ABOVE = 1000
# One round trip for a small batch: points in, replays skipped, the inserted ones' latest values
# upserted (the ON CONFLICT clause is _UPSERT_LATEST_TAIL's, spelled out). DISTINCT ON keeps
# one candidate per key: ON CONFLICT DO UPDATE may not touch a row twice in one statement. Only
# inserted points are candidates: a skipped one is stored, so metric_latest accounts for it.
_PG_INSERT_ARRAYS = (
    "WITH new AS ("
    "INSERT INTO metric (execution_id, component_id, attempt, name, step, value, recorded_at) "
    "SELECT * FROM unnest(%s::int4[], %s::int4[], %s::int4[], %s::varchar[], %s::int8[], "
    "%s::float8[], %s::timestamptz[]) ON CONFLICT DO NOTHING "
    "RETURNING execution_id, component_id, attempt, name, step, value, recorded_at), "
    "latest AS (INSERT INTO metric_latest "
    "(execution_id, component_id, attempt, name, step, value, recorded_at) "
    "SELECT DISTINCT ON (execution_id, component_id, name) * FROM new "
    "ORDER BY execution_id, component_id, name, attempt DESC, step DESC "
    "ON CONFLICT (execution_id, component_id, name) DO UPDATE SET attempt = excluded.attempt, "
    "step = excluded.step, value = excluded.value, recorded_at = excluded.recorded_at "
    "WHERE excluded.attempt > metric_latest.attempt OR "
    "(excluded.attempt = metric_latest.attempt AND excluded.step > metric_latest.step)"
    ") SELECT count(*) FROM new"
)

PointRow = tuple[int, int, int, str, int, float, datetime]


def insert_points(connection: sa.Connection, rows: Sequence[PointRow]) -> int:
    """Insert ``rows``, skipping any whose natural key exists; returns how many were new.

    ``metric_latest`` is brought up to date in the same transaction (``connection``'s).
    """
    return write_points(connection.connection.driver_connection, connection.dialect, rows)


def write_points(driver: Any, dialect: sa.Dialect, rows: Sequence[PointRow]) -> int:
    """:func:`insert_points` on the driver's own connection, inside its open transaction."""
    if not rows:
        return 0
    if dialect.name == "postgresql":
        if len(rows) <= COPY_ABOVE:
            return _insert_postgresql_arrays(driver, dialect, rows)
        inserted = _insert_postgresql(driver, dialect, rows)
    else:
        rows = _sqlite_rows(dialect, rows)  # same layout, timestamps as SQLite's text
        with _driver_errors(dialect, _SQLITE_INSERT):
            rowcount: int = driver.executemany(_SQLITE_INSERT, rows).rowcount
            inserted = max(rowcount, 0)
            if inserted:  # metric_latest as _upsert_latest keeps it, in the same error wrapper
                driver.executemany(_SQLITE_UPSERT_LATEST, _candidates(rows))
        return inserted
    if inserted:  # a replay changes nothing, so metric_latest has nothing to learn from it
        _upsert_latest(driver, dialect, rows)
    return inserted


def commit_points(engine: sa.Engine, rows: Sequence[PointRow], held: HeldConnection | None) -> int:
    """:func:`write_points` in a transaction of its own, committed; returns how many were new.

    For an op's small metric batch, so no SQLAlchemy layer: a session or Core transaction
    around one statement costs 4–15 times what the driver's own ``BEGIN``/``COMMIT`` does on
    SQLite. The connection is ``held`` (see :class:`~etl_meta.db.HeldConnection`) when it is
    free, else a pooled one. Driver errors come out as SQLAlchemy's ``DBAPIError`` (so the
    store translates them as usual), and a connection the error says is dead is dropped.
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
        with _driver_errors(dialect, "BEGIN"):
            try:
                if sqlite:  # autocommit-mode pysqlite (etl_meta.db): we open it, for the write lock
                    driver.execute("BEGIN IMMEDIATE")
                inserted = write_points(driver, dialect, rows)
                if sqlite:
                    driver.execute("COMMIT")
                else:
                    driver.commit()
            except BaseException:
                if not sqlite:
                    driver.rollback()
                elif driver.in_transaction:
                    driver.execute("ROLLBACK")
                raise
    except sa.exc.DBAPIError as exc:
        # Always a driver error here (_driver_errors wraps only those); the check narrows it.
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


def _latest_of(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Per (execution, component, name), the row with the highest (attempt, step)."""
    latest: dict[tuple[int, int, str], Sequence[Any]] = {}
    for row in rows:
        key = (row[0], row[1], row[3])
        best = latest.get(key)
        if best is None or (row[2], row[4]) > (best[2], best[4]):
            latest[key] = row
    return list(latest.values())


def _upsert_latest(driver: Any, dialect: sa.Dialect, rows: Sequence[Sequence[Any]]) -> None:
    # Only a strictly newer (attempt, step) replaces the stored row, so a replayed point —
    # even one carrying a different value, which the metric table also ignored — changes
    # nothing, and the two tables always agree.
    candidates = _candidates(rows)
    if dialect.name == "postgresql":
        with _driver_errors(dialect, _PG_UPSERT_LATEST), driver.cursor() as cursor:
            cursor.executemany(_PG_UPSERT_LATEST, candidates)
        return
    with _driver_errors(dialect, _SQLITE_UPSERT_LATEST):
        driver.executemany(_SQLITE_UPSERT_LATEST, candidates)


def _candidates(rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """The rows that may become latest values: an op's one point is itself."""
    return rows if len(rows) == 1 else _latest_of(rows)


def _sqlite_rows(dialect: sa.Dialect, rows: Sequence[PointRow]) -> Sequence[tuple[Any, ...]]:
    # Bulk rows must be stored exactly like ORM rows: the column type's full bind processing
    # (UTCDateTime, then SQLite's DATETIME text format), not the sqlite3 module's datetime
    # adapter, which drops ".000000" from whole seconds. Plain UTC datetimes, the usual case,
    # are formatted inline with that same format at a fraction of the cost.
    to_db = _sqlite_timestamp_processor(dialect)
    utc, plain, text = UTC, datetime, _SQLITE_DATETIME
    return [
        (
            execution_id,
            component_id,
            attempt,
            name,
            step,
            value,
            text % (at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond)
            if at.tzinfo is utc and type(at) is plain
            else to_db(at),
        )
        for execution_id, component_id, attempt, name, step, value, at in rows
    ]


@cache
def _sqlite_timestamp_processor(dialect: sa.Dialect) -> Callable[[Any], Any]:
    """The ``recorded_at`` column's bind processor, looked up once (an op records often)."""
    recorded_at = sa.inspect(Metric).columns["recorded_at"]
    to_db = recorded_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert to_db is not None
    return to_db


def _insert_postgresql_arrays(driver: Any, dialect: sa.Dialect, rows: Sequence[PointRow]) -> int:
    columns = [list(column) for column in zip(*rows, strict=True)]
    with _driver_errors(dialect, _PG_INSERT_ARRAYS), driver.cursor() as cursor:
        cursor.execute(_PG_INSERT_ARRAYS, columns)
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _insert_postgresql(driver: Any, dialect: sa.Dialect, rows: Sequence[PointRow]) -> int:
    # A first write, the common case, is COPY'd straight into metric: staging it for
    # INSERT ... ON CONFLICT costs as much again (docs/internals/metric-storage.md). A batch
    # that repeats a stored point, in whole or in part, fails that COPY; back at the savepoint,
    # it takes the staged path, which skips what is stored.
    with _driver_errors(dialect, _PG_COPY_METRIC), driver.cursor() as cursor:
        cursor.execute(_PG_SAVEPOINT)
        try:
            with cursor.copy(_PG_COPY_METRIC) as copy:
                copy.set_types(_PG_COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
        except dialect.loaded_dbapi.IntegrityError as exc:
            if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            cursor.execute(_PG_ROLLBACK_TO)
        else:
            cursor.execute(_PG_RELEASE)
            return len(rows)
    with _driver_errors(dialect, _PG_COPY_STAGE), driver.cursor() as cursor:
        cursor.execute(_PG_CREATE_STAGE)
        with cursor.copy(_PG_COPY_STAGE) as copy:
            copy.set_types(_PG_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        cursor.execute(_PG_INSERT_FROM_STAGE)
        inserted: int = cursor.rowcount
        # Several batches may share one transaction: empty the stage now, not at commit.
        cursor.execute(_PG_EMPTY_STAGE)
    return max(inserted, 0)


class _driver_errors:
    """Raise driver errors from the raw connection as the ``DBAPIError`` SQLAlchemy would.

    Work done on the driver's own connection (COPY, ``executemany``, our own transactions)
    bypasses SQLAlchemy's error wrapping; without this the store could not translate a refused
    privilege (a database role without TEMPORARY) or a lost connection into its typed errors.
    A class rather than a ``@contextmanager`` generator: an op's metric write enters three of
    these, and a generator's set-up is a noticeable part of a one-row SQLite transaction.
    """

    __slots__ = ("_dialect", "_statement")

    def __init__(self, dialect: sa.Dialect, statement: str) -> None:
        self._dialect = dialect
        self._statement = statement

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: Any, exc: BaseException | None, _tb: Any) -> None:
        dbapi = self._dialect.loaded_dbapi
        if isinstance(exc, dbapi.Error):
            raise sa.exc.DBAPIError.instance(
                self._statement, None, exc, dbapi.Error, hide_parameters=True, dialect=self._dialect
            ) from exc


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
) -> Sequence[tuple[Metric, str]]:
    """``(point, component name)`` of one execution, by component, name, attempt and step."""
    if name is not None and not storable(name):
        return []  # no point can carry such a name
    query = (
        sa.select(Metric, col(Component.name))
        .join(Component, col(Component.id) == Metric.component_id)
        .where(col(Metric.execution_id) == execution_id)
        .order_by(col(Component.name), col(Metric.name), col(Metric.attempt), col(Metric.step))
    )
    if component_id is not None:
        query = query.where(col(Metric.component_id) == component_id)
    if name is not None:
        query = query.where(col(Metric.name) == name)
    if final_attempt_only:
        same_step = aliased(Metric)
        latest = (
            sa.select(sa.func.max(col(same_step.attempt)))
            .where(
                col(same_step.execution_id) == Metric.execution_id,
                col(same_step.component_id) == Metric.component_id,
            )
            .scalar_subquery()
        )
        query = query.where(col(Metric.attempt) == latest)
    return [(point, component_name) for point, component_name in session.execute(query)]
