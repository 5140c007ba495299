"""Run an analyst query and hand back a typed pandas DataFrame, fast on each backend.

How a query is read is decided by its shape (:class:`~etl_meta.analytics._compiled.Shaped`)
and by where it runs:

* **Small results** (one run's points, a short page, one metric's aggregates, the latest
  values of recent runs): the shape's statement, compiled once, runs as a plain query — on
  PostgreSQL a server-side prepared statement (``prepare=True``), so it is parsed and planned
  once per connection like a hand-written query psycopg prepares; on SQLite through the
  driver's statement cache. Its rows become the frame column by column (:mod:`._frames`).
* **One run's metric points** (``metrics_frame(run=…)``): the points with ids and the names of
  the run's job (:mod:`._run_points`), on PostgreSQL as one row, the points packed in one
  ``bytea`` that numpy reads (:mod:`._run_packed`): the joined statement's frame, read faster
  (benchmark (a)).
* **Latest values on SQLite** (``latest_metrics``): the recent runs, their values with ids and
  the job's components, in one read transaction (:mod:`._latest_rows`): the joined statement's
  frame without four strings per row (benchmark (c)).
* **Whole metric frames** (no ``run=``, ``limit`` or ``after_id``), on both backends: read as
  ids through ADBC and joined with their names in Arrow (:mod:`._narrow`, :mod:`._adbc`):
  2.2× faster than the joined statement through CSV ``COPY`` on PostgreSQL, 1.8× faster than
  through ``sqlite3`` on SQLite, 7–8× faster than ``pandas.read_sql`` on PostgreSQL.
* **Other large results on PostgreSQL**: binary ``COPY`` decoded into Arrow by the ADBC driver,
  so the server no longer formats every value as text for CSV.
* **Inside** ``store.transaction()`` the read must see the transaction's own writes, which
  ADBC's connections cannot: large results take ``COPY … (FORMAT CSV)`` on PostgreSQL, and on
  SQLite (as for SQLite's other large results) the driver's rows go into Arrow in one call.

Statements built each call (``run_history``, ``success_rate`` …) take the large-result path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from etl_meta.analytics import _adbc, _latest_rows, _run_packed, _run_points
from etl_meta.analytics._compiled import Shaped, compile_statement
from etl_meta.analytics._connections import ReadConnection, read_connection
from etl_meta.analytics._frames import Kind, from_arrow, from_rows
from etl_meta.analytics._tables import conform, copy_csv, rows_table, sorted_by
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Kind", "read_frame"]

#: Up to this many rows, a small result's frame is built column by column in Python (pandas'
#: fixed costs dominate); above it, through one Arrow conversion of all the rows.
ROWS_IN_PYTHON = 1_000


def read_frame(
    store: MetadataStore, query: sa.Select | Shaped, columns: Mapping[str, Kind]
) -> pd.DataFrame:
    """``query``'s rows as a DataFrame with ``columns`` (name → kind), in that order.

    Timestamps are tz-aware UTC; ``category`` columns are pandas categoricals (names repeat a
    lot in metric frames); integers that may be missing come back as nullable ``Int64``.
    """
    shaped = query if isinstance(query, Shaped) else None
    with read_connection(store, small=shaped is not None and shaped.small) as connection:
        dialect, driver = connection.dialect, connection.driver
        if shaped is not None and not connection.in_transaction:
            if shaped.narrow is not None and not shaped.small:
                return _read_narrow(store, connection, shaped.narrow, columns)
            if shaped.run_points is not None and shaped.small:
                if dialect.name == "postgresql":
                    found = _run_packed.read_run(connection, shaped.run_points, columns)
                else:
                    found = _run_points.read_run(
                        connection, shaped.run_points, columns, ROWS_IN_PYTHON
                    )
                if found is not None:
                    return found
            if shaped.latest_rows and dialect.name == "sqlite":
                found = _latest_rows.read_latest(connection, shaped.values, columns)
                if found is not None:
                    return found
        sort_by = None
        if shaped is not None:
            compiled = shaped.compiled(dialect)
            sql, params, small = compiled.sql, compiled.bind(shaped.values), shaped.small
            sort_by = shaped.sort_by
        else:
            compiled = compile_statement(query, dialect)
            sql, params, small = compiled.sql, compiled.bind({}), False
        rows = table = None
        if dialect.name != "postgresql":
            rows = driver.execute(sql, params).fetchall()
            table = None if small else rows_table(rows, columns, "sqlite")
        elif small:
            rows = connection.prepared_rows(sql, params)
        elif connection.in_transaction:
            table = copy_csv(driver, sql, params, columns)
        else:
            with _adbc.arrow_session(_adbc.pool_of(store, driver)) as session:
                table = conform(session.table(_adbc.bind(driver, sql, params)), columns)
    # The connection is back in the pool: build the frame.
    if table is None:
        rows = rows or []
        if len(rows) <= ROWS_IN_PYTHON:
            return from_rows(rows, columns)
        table = rows_table(rows, columns, dialect.name)
    if sort_by is not None:
        table = sorted_by(table, sort_by)
    return from_arrow(table, columns)


def _read_narrow(
    store: MetadataStore, connection: ReadConnection, narrow: Shaped, columns: Mapping[str, Kind]
) -> pd.DataFrame:
    """A whole metric frame as points with ids, then their names, in one snapshot."""
    import pyarrow.compute as pc

    from etl_meta.analytics import _narrow

    dialect, driver = connection.dialect, connection.driver
    pool = _adbc.pool_of(store, driver)

    def statement(shaped: Shaped) -> tuple[str, Any]:
        found = shaped.compiled(dialect)
        params = found.bind(shaped.values)
        if pool.dialect == "postgresql":  # bound by psycopg: ADBC would prepare, not COPY
            return _adbc.bind(driver, found.sql, params), None
        return found.sql, params

    with _adbc.arrow_session(pool, snapshot=True) as session:
        points = session.table(*statement(narrow))
        dimensions = []
        for which, column in (("components", 2), ("executions", 1)):
            ids = pc.unique(points.column(column)).to_pylist()
            dimension = _narrow.dimension_shaped(dialect.name, which, ids)
            dimensions.append(session.table(*statement(dimension)))
    return _narrow.assemble(points, *dimensions, columns)
