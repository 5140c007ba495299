"""Metric points: the bulk, idempotent write path (names, series, points, latest values).

Points are stored as series and points (docs/internals/metric-storage.md): a batch first makes
sure its names (``metric_name``) and series (``metric_series``, one per run, component, name and
attempt) exist, each with ``INSERT … ON CONFLICT DO NOTHING`` in a statement of its own — a
later statement sees what a concurrent writer committed meanwhile, one statement would not —
then writes its points keyed by ``(series_id, step)``, so a replay writes nothing:

* SQLite: the driver's ``executemany``; a point's ``id`` is the highest stored plus one,
  read under the write lock the transaction holds.
* PostgreSQL, up to :data:`COPY_ABOVE` points (an op's call): the points as arrays through
  ``unnest``, joined to their series on the server, inserted with ``ON CONFLICT DO NOTHING``,
  the inserted ones carried on to ``metric_latest`` in the same statement.
* PostgreSQL, larger batches: the series ids read back, then binary ``COPY`` straight into
  ``metric_point`` inside a savepoint; a batch that repeats a stored point fails that ``COPY``
  and takes a staging table and ``INSERT … SELECT … ON CONFLICT DO NOTHING`` instead.

``metric_latest`` keeps each metric's latest point, in the same transaction. Rows arrive
validated (finite values, aware timestamps) from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa

from etl_meta.models import MetricPointRow

#: Column order of the tuples :func:`insert_points` takes.
POINT_COLUMNS = ("execution_id", "component_id", "attempt", "name", "step", "value", "recorded_at")
#: A series' natural key: ``(execution_id, component_id, attempt, name)``.
SeriesKey = tuple[int, int, int, str]

# Literal statements (no string building).
_SQLITE_INSERT_NAME = "INSERT INTO metric_name (name) VALUES (?) ON CONFLICT DO NOTHING"
_SQLITE_NAME_ID = "SELECT id FROM metric_name WHERE name = ?"
_SQLITE_INSERT_SERIES = (
    "INSERT INTO metric_series (execution_id, component_id, attempt, name_id) "
    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_SQLITE_SERIES_ID = (
    "SELECT id FROM metric_series "
    "WHERE execution_id = ? AND component_id = ? AND attempt = ? AND name_id = ?"
)
# The id: the highest stored plus one (ix_metric_point_id), under the transaction's write lock.
_SQLITE_INSERT_POINT = (
    "INSERT INTO metric_point (series_id, step, value, recorded_at, id) "
    "VALUES (?, ?, ?, ?, (SELECT coalesce(max(id), 0) + 1 FROM metric_point)) "
    "ON CONFLICT DO NOTHING"
)
#: SQLAlchemy's default SQLite ``DATETIME`` storage format (``DATETIME._storage_format``).
_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"
_PG_INSERT_NAMES = (
    "INSERT INTO metric_name (name) SELECT DISTINCT unnest(%s::varchar[]) ORDER BY 1 "
    "ON CONFLICT DO NOTHING"
)
_PG_INSERT_SERIES = (
    "INSERT INTO metric_series (execution_id, component_id, attempt, name_id) "
    "SELECT DISTINCT i.execution_id, i.component_id, i.attempt, n.id "
    "FROM unnest(%s::int4[], %s::int4[], %s::int4[], %s::varchar[]) "
    "AS i(execution_id, component_id, attempt, name) "
    "JOIN metric_name n ON n.name = i.name ORDER BY 1, 2, 4, 3 ON CONFLICT DO NOTHING"
)
_PG_SERIES_IDS = (
    "SELECT s.id, s.execution_id, s.component_id, s.attempt, n.name "
    "FROM unnest(%s::int4[], %s::int4[], %s::int4[], %s::varchar[]) "
    "AS i(execution_id, component_id, attempt, name) "
    "JOIN metric_name n ON n.name = i.name "
    "JOIN metric_series s ON s.execution_id = i.execution_id "
    "AND s.component_id = i.component_id AND s.name_id = n.id AND s.attempt = i.attempt"
)
_PG_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS etl_meta_point_stage ("
    "series_id bigint, step bigint, value double precision, recorded_at timestamptz) "
    "ON COMMIT DELETE ROWS"
)
_PG_COPY_STAGE = (
    "COPY etl_meta_point_stage (series_id, step, value, recorded_at) FROM STDIN (FORMAT BINARY)"
)
_PG_COPY_TYPES = ["int8", "int8", "float8", "timestamptz"]
_PG_COPY_POINTS = (
    "COPY metric_point (series_id, step, value, recorded_at) FROM STDIN (FORMAT BINARY)"
)
_PG_SAVEPOINT = "SAVEPOINT etl_meta_copy"
_PG_RELEASE = "RELEASE SAVEPOINT etl_meta_copy"
_PG_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT etl_meta_copy"
#: SQLSTATE of a unique violation: the batch repeats a stored point.
_UNIQUE_VIOLATION = "23505"
_PG_INSERT_FROM_STAGE = (
    "INSERT INTO metric_point (series_id, step, value, recorded_at) "
    "SELECT series_id, step, value, recorded_at FROM etl_meta_point_stage ON CONFLICT DO NOTHING"
)
_PG_EMPTY_STAGE = "TRUNCATE etl_meta_point_stage"
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
# One round trip for a small batch's points, their series known: replays skipped, the inserted
# ones' latest values upserted (the ON CONFLICT clause is _UPSERT_LATEST_TAIL's, spelled out).
# DISTINCT ON keeps one candidate per key: ON CONFLICT DO UPDATE may not touch a row twice in
# one statement. Only inserted points are candidates: a skipped one is stored, so metric_latest
# accounts for it.
_PG_INSERT_ARRAYS = (
    "WITH input AS (SELECT * FROM unnest(%s::int8[], %s::int8[], %s::float8[], "
    "%s::timestamptz[], %s::int4[], %s::int4[], %s::int4[], %s::varchar[]) WITH ORDINALITY "
    "AS i(series_id, step, value, recorded_at, execution_id, component_id, attempt, name, ord)), "
    "new AS (INSERT INTO metric_point (series_id, step, value, recorded_at) "
    # in the batch's order, so ids (from the sequence) follow it
    "SELECT series_id, step, value, recorded_at FROM input ORDER BY ord "
    "ON CONFLICT DO NOTHING RETURNING series_id, step), "
    "latest AS (INSERT INTO metric_latest "
    "(execution_id, component_id, attempt, name, step, value, recorded_at) "
    "SELECT DISTINCT ON (i.execution_id, i.component_id, i.name) i.execution_id, "
    "i.component_id, i.attempt, i.name, i.step, i.value, i.recorded_at "
    "FROM new JOIN input i ON i.series_id = new.series_id AND i.step = new.step "
    "ORDER BY i.execution_id, i.component_id, i.name, i.attempt DESC, i.step DESC "
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
    return write_series_points(driver, dialect, rows)[0]


def write_series_points(
    driver: Any,
    dialect: sa.Dialect,
    rows: Sequence[PointRow],
    known: Mapping[SeriesKey, int] | None = None,
) -> tuple[int, dict[SeriesKey, int]]:
    """:func:`write_points`, taking the series ids in ``known`` as given (ids the caller saw
    committed); returns how many points were new and the series id of every key in ``rows``.
    """
    if not rows:
        return 0, {}
    if len(rows) == 1 and known and dialect.name == "sqlite":
        series_id = known.get((rows[0][0], rows[0][1], rows[0][2], rows[0][3]))
        if series_id is not None:  # an op's next step of a metric, the most common call
            return _write_one_sqlite(driver, dialect, rows[0], series_id)
    keys = _series_keys(rows)
    series = {key: known[key] for key in keys if key in known} if known else {}
    missing = [key for key in keys if key not in series]
    if dialect.name == "postgresql":
        if missing:
            series.update(_ensure_series_postgresql(driver, dialect, missing))
        points = [(series[(e, c, a, n)], step, v, at) for e, c, a, n, step, v, at in rows]
        if len(rows) <= COPY_ABOVE:
            return _insert_postgresql_arrays(driver, dialect, rows, points), series
        inserted = _insert_postgresql(driver, dialect, points)
        if inserted:  # a replay changes nothing, so metric_latest has nothing to learn from it
            _upsert_latest(driver, dialect, rows)
        return inserted, series
    rows = _sqlite_rows(dialect, rows)  # same layout, timestamps as SQLite's text
    with driver_errors(dialect, _SQLITE_INSERT_POINT):
        if missing:
            series.update(_ensure_series_sqlite(driver, missing))
        points = [(series[(e, c, a, n)], step, v, at) for e, c, a, n, step, v, at in rows]
        rowcount: int = driver.executemany(_SQLITE_INSERT_POINT, points).rowcount
        inserted = max(rowcount, 0)
        if inserted:  # metric_latest as _upsert_latest keeps it, in the same error wrapper
            driver.executemany(_SQLITE_UPSERT_LATEST, _candidates(rows))
    return inserted, series


def _write_one_sqlite(
    driver: Any, dialect: sa.Dialect, row: PointRow, series_id: int
) -> tuple[int, dict[SeriesKey, int]]:
    """One point of a known series on SQLite: execute, not executemany, and no lists."""
    key = (row[0], row[1], row[2], row[3])
    (stored,) = _sqlite_rows(dialect, [row])
    with driver_errors(dialect, _SQLITE_INSERT_POINT):
        point = (series_id, stored[4], stored[5], stored[6])
        inserted = max(driver.execute(_SQLITE_INSERT_POINT, point).rowcount, 0)
        if inserted:
            driver.execute(_SQLITE_UPSERT_LATEST, stored)
    return inserted, {key: series_id}


def _series_keys(rows: Sequence[Sequence[Any]]) -> list[SeriesKey]:
    return list(dict.fromkeys((row[0], row[1], row[2], row[3]) for row in rows))


def _ensure_series_sqlite(driver: Any, keys: Sequence[SeriesKey]) -> dict[SeriesKey, int]:
    """The series id of every ``(execution_id, component_id, attempt, name)`` in ``keys``."""
    names: dict[str, int] = {}
    for name in dict.fromkeys(key[3] for key in keys):
        driver.execute(_SQLITE_INSERT_NAME, (name,))
        names[name] = driver.execute(_SQLITE_NAME_ID, (name,)).fetchone()[0]
    series: dict[SeriesKey, int] = {}
    for key in keys:
        named = (key[0], key[1], key[2], names[key[3]])
        driver.execute(_SQLITE_INSERT_SERIES, named)
        series[key] = driver.execute(_SQLITE_SERIES_ID, named).fetchone()[0]
    return series


def _ensure_series_postgresql(
    driver: Any, dialect: sa.Dialect, keys: Sequence[SeriesKey]
) -> dict[SeriesKey, int]:
    """Names, then series, inserted where missing, then every key's series id: three
    statements, each seeing what concurrent writers committed before it started. Sorted, so
    two writers taking the same keys' locks in the same order cannot deadlock on them."""
    columns = [list(column) for column in zip(*keys, strict=True)]
    with driver_errors(dialect, _PG_INSERT_SERIES), driver.cursor() as cursor:
        cursor.execute(_PG_INSERT_NAMES, [columns[3]])
        cursor.execute(_PG_INSERT_SERIES, columns)
        cursor.execute(_PG_SERIES_IDS, columns)
        return {(e, c, a, n): series_id for series_id, e, c, a, n in cursor.fetchall()}


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
        with driver_errors(dialect, _PG_UPSERT_LATEST), driver.cursor() as cursor:
            cursor.executemany(_PG_UPSERT_LATEST, candidates)
        return
    with driver_errors(dialect, _SQLITE_UPSERT_LATEST):
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
    recorded_at = sa.inspect(MetricPointRow).columns["recorded_at"]
    to_db = recorded_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert to_db is not None
    return to_db


def _insert_postgresql_arrays(
    driver: Any, dialect: sa.Dialect, rows: Sequence[PointRow], points: Sequence[Sequence[Any]]
) -> int:
    point_columns = [list(column) for column in zip(*points, strict=True)]
    key_columns = [list(column) for column in zip(*(row[:4] for row in rows), strict=True)]
    with driver_errors(dialect, _PG_INSERT_ARRAYS), driver.cursor() as cursor:
        cursor.execute(_PG_INSERT_ARRAYS, point_columns + key_columns)
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _insert_postgresql(driver: Any, dialect: sa.Dialect, points: Sequence[Sequence[Any]]) -> int:
    # A first write, the common case, is COPY'd straight into metric_point: staging it for
    # INSERT ... ON CONFLICT costs as much again (docs/internals/metric-storage.md). A batch
    # that repeats a stored point, in whole or in part, fails that COPY; back at the savepoint,
    # it takes the staged path, which skips what is stored.
    with driver_errors(dialect, _PG_COPY_POINTS), driver.cursor() as cursor:
        cursor.execute(_PG_SAVEPOINT)
        try:
            with cursor.copy(_PG_COPY_POINTS) as copy:
                copy.set_types(_PG_COPY_TYPES)
                for point in points:
                    copy.write_row(point)
        except dialect.loaded_dbapi.IntegrityError as exc:
            if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            cursor.execute(_PG_ROLLBACK_TO)
        else:
            cursor.execute(_PG_RELEASE)
            return len(points)
    with driver_errors(dialect, _PG_COPY_STAGE), driver.cursor() as cursor:
        cursor.execute(_PG_CREATE_STAGE)
        with cursor.copy(_PG_COPY_STAGE) as copy:
            copy.set_types(_PG_COPY_TYPES)
            for point in points:
                copy.write_row(point)
        cursor.execute(_PG_INSERT_FROM_STAGE)
        inserted: int = cursor.rowcount
        # Several batches may share one transaction: empty the stage now, not at commit.
        cursor.execute(_PG_EMPTY_STAGE)
    return max(inserted, 0)


class driver_errors:
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
