"""Run an analyst query and hand back a typed pandas DataFrame, fast on each backend.

Two ways in, decided by the query's shape (:class:`~etl_meta.analytics._compiled.Shaped`):

* **Small results** (one run's points, a short page, one metric's aggregates, the latest
  values of recent runs): the shape's statement, compiled once, runs as a plain query — on
  PostgreSQL a server-side prepared statement (``prepare=True``), so it is parsed and planned
  once per connection like a hand-written query psycopg prepares; on SQLite through the
  driver's statement cache. Its rows become the frame column by column (:mod:`._frames`).
  ``COPY`` cannot be prepared and costs a few milliseconds to set up, which is most of a query
  that returns fifty rows.
* **Large results** on PostgreSQL: ``COPY (query) TO STDOUT`` as CSV, parsed by pyarrow's
  multi-threaded CSV reader — about 3× faster than ``pandas.read_sql`` here, because rows never
  become Python objects. Parameters are bound by psycopg (client-side for ``COPY``), never
  formatted into the SQL by us. On SQLite the driver's rows go into Arrow in one call, and
  timestamps (stored as UTC text) are parsed by pyarrow.

Statements built each call (``run_history``, ``success_rate`` …) take the large-result path.
"""

from __future__ import annotations

import io
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from etl_meta.analytics._compiled import Compiled, Shaped
from etl_meta.analytics._frames import Kind, from_arrow, from_rows
from etl_meta.store import MetadataStore
from etl_meta.store._errors import translate_db_error

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Kind", "read_frame"]

#: Up to this many rows, a small result's frame is built column by column in Python (pandas'
#: fixed costs dominate); above it, through one Arrow conversion of all the rows.
ROWS_IN_PYTHON = 1_000


def _arrow_type(kind: Kind) -> Any:
    import pyarrow as pa

    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "text": pa.string(),
        "category": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "bool": pa.bool_(),
    }[kind]


def read_frame(
    store: MetadataStore, query: sa.Select | Shaped, columns: Mapping[str, Kind]
) -> pd.DataFrame:
    """``query``'s rows as a DataFrame with ``columns`` (name → kind), in that order.

    Timestamps are tz-aware UTC; ``category`` columns are pandas categoricals (names repeat a
    lot in metric frames); integers that may be missing come back as nullable ``Int64``.
    """
    with _read_connection(store) as connection:
        dialect = connection.dialect
        sort_by = None
        if isinstance(query, Shaped):
            compiled = query.compiled(dialect)
            sql, params, small = compiled.sql, compiled.bind(query.values), query.small
            sort_by = query.sort_by
        else:
            compiled = _compile_each_time(query, dialect)
            sql, params, small = compiled.sql, compiled.bind({}), False
        driver: Any = connection.connection.driver_connection
        if dialect.name == "postgresql":
            rows = _prepared_rows(driver, sql, params) if small else None
            table = None if small else _copy_postgresql(driver, sql, params, columns)
        else:
            rows = driver.execute(sql, params).fetchall()
            table = None if small else _rows_table(rows, columns, "sqlite")
    # The connection is back in the pool: build the frame.
    if table is None:
        rows = rows or []
        if len(rows) <= ROWS_IN_PYTHON:
            return from_rows(rows, columns)
        table = _rows_table(rows, columns, dialect.name)
    if sort_by is not None:
        table = _sorted(table, sort_by)
    return from_arrow(table, columns)


def _sorted(table: Any, column: str) -> Any:
    """``table`` in ascending order of ``column`` (unique ids): untouched when it already is,
    which is how an unordered scan of ``metric`` usually returns it."""
    import numpy as np
    import pyarrow.compute as pc

    keys = table.column(column).to_numpy()
    if len(keys) < 2 or bool(np.all(keys[1:] > keys[:-1])):
        return table
    return table.take(pc.sort_indices(table.column(column)))


def _struct(columns: Mapping[str, Kind], stored: Mapping[str, Any]) -> Any:
    import pyarrow as pa

    return pa.struct(
        [pa.field(name, stored.get(kind, _arrow_type(kind))) for name, kind in columns.items()]
    )


def _prepared_rows(driver: Any, sql: str, params: Any) -> list[tuple[Any, ...]]:
    """Rows of a server-side prepared statement (psycopg prepares it once per connection).

    Binary results, with ``timestamptz`` read by the naive timestamp loader: both are
    microseconds since 2000-01-01 on the wire, so this gives the UTC wall clock as a naive
    ``datetime`` in C, whatever the session's time zone, instead of an aware one numpy cannot
    take and pyarrow converts value by value. On this cursor only: the store's own connection
    keeps its loaders.
    """
    from psycopg.types.datetime import TimestampBinaryLoader

    with driver.cursor(binary=True) as cursor:
        cursor.adapters.register_loader("timestamptz", TimestampBinaryLoader)
        return cursor.execute(sql, params, prepare=True).fetchall()


@contextmanager
def _read_connection(store: MetadataStore) -> Iterator[sa.Connection]:
    """A connection for one read statement.

    Inside ``store.transaction()`` it is that transaction's, so the read sees its writes.
    Otherwise a pooled connection runs the one statement on its own (autocommit on
    PostgreSQL; SQLite's driver is in autocommit mode and no ``BEGIN`` is sent): a single
    statement reads one consistent snapshot either way, and a ``BEGIN`` and ``COMMIT`` round
    trip, plus the ORM session around them, cost as much as a small query itself.
    """
    if store.in_transaction():
        with store.transaction(readonly=True) as session:
            yield session.connection()
        return
    engine = _autocommit(store)
    try:
        with engine.connect() as connection:
            yield connection
    except sa.exc.SQLAlchemyError as exc:  # as store.transaction translates them
        translated = translate_db_error(exc)
        raise translated from translated.__cause__


# Keyed by store, not by engine: the option engine refers to its engine, so a map keyed by
# engine would keep every engine alive.
_autocommit_engines: weakref.WeakKeyDictionary[MetadataStore, sa.Engine] = (
    weakref.WeakKeyDictionary()
)


def _autocommit(store: MetadataStore) -> sa.Engine:
    """The store's engine (same pool) with PostgreSQL connections in autocommit, made once per
    store: ``execution_options`` builds a new engine view, which costs ~0.2 ms."""
    engine = store.engine
    if engine.dialect.name != "postgresql":
        return engine
    found = _autocommit_engines.get(store)
    if found is None:
        found = engine.execution_options(isolation_level="AUTOCOMMIT")
        _autocommit_engines[store] = found
    return found


def _compile_each_time(query: sa.Select, dialect: Any) -> Compiled:
    from etl_meta.analytics._compiled import compile_statement

    return compile_statement(query, dialect)


def _copy_postgresql(driver: Any, sql: str, params: Any, columns: Mapping[str, Kind]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    buffer = io.BytesIO()
    with driver.cursor() as cursor:  # noqa: SIM117 (copy needs the open cursor)
        with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT CSV)", params) as copy:
            for chunk in copy:
                buffer.write(chunk)
    names = list(columns)
    if not buffer.tell():  # no rows: pyarrow refuses an empty CSV
        return pa.table(
            {name: pa.array([], type=_arrow_type(kind)) for name, kind in columns.items()}
        )
    # Parse the bytes in place: a Python file object would be read through the GIL, block by
    # block (about a third of the parse time of a million rows).
    return pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(buffer.getbuffer())),
        read_options=pcsv.ReadOptions(column_names=names),
        convert_options=pcsv.ConvertOptions(
            column_types={name: _arrow_type(kind) for name, kind in columns.items()},
            # COPY writes NULL as an empty unquoted field and "" as a quoted one.
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def _rows_table(rows: list[tuple[Any, ...]], columns: Mapping[str, Kind], dialect: str) -> Any:
    """Driver rows as an Arrow table: one conversion of all the rows (tuples as structs),
    faster than a Python list per column once there are more than a few hundred rows.

    Timestamps are the stored UTC text and booleans 0/1 on SQLite, naive UTC datetimes on
    PostgreSQL (see :func:`_prepared_rows`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if dialect == "postgresql":
        naive = pa.array(rows, type=_struct(columns, {"timestamp": pa.timestamp("us")}))
        table = pa.Table.from_struct_array(naive)
        for index, kind in enumerate(columns.values()):
            if kind == "timestamp":
                utc = pc.assume_timezone(table.column(index), "UTC")
                table = table.set_column(index, table.field(index).name, utc)
        return table
    struct = _struct(columns, {"timestamp": pa.string(), "bool": pa.int64()})
    table = pa.Table.from_struct_array(pa.array(rows, type=struct))
    for index, kind in enumerate(columns.values()):
        if kind == "timestamp":
            # "YYYY-MM-DD HH:MM:SS.ffffff" in UTC, as SQLite stores it and bucket expressions
            # render it: an ISO-8601 parse, fractional seconds included.
            parsed = pc.assume_timezone(pc.cast(table.column(index), pa.timestamp("us")), "UTC")
            table = table.set_column(index, table.field(index).name, parsed)
        elif kind == "bool":
            table = table.set_column(
                index, table.field(index).name, pc.cast(table.column(index), pa.bool_())
            )
    return table
